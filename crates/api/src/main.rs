//! `api`: serves the axiquota HTTP API, or with `api token` prints a
//! signed bearer token.
//!
//! Exit codes: 0 after a clean shutdown or a printed token; 1 when the
//! configuration is invalid, the database cannot be reached or the
//! listener fails.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use axiquota_api::{AppState, Auth, Scope, Settings};
use axiquota_core::Secret;
use axiquota_core::config::{DatabaseArgs, LogArgs, VaultArgs};
use clap::{Args, Parser, Subcommand};

/// HTTP JSON API over the mailbox quota and usage stored by the poller.
#[derive(Parser, Debug)]
#[command(version, args_conflicts_with_subcommands = true)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,

    #[command(flatten)]
    serve: ServeArgs,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Print a signed bearer token for the API (needs only API_JWT_SECRET)
    Token(TokenArgs),
}

#[derive(Args, Debug)]
struct AuthArgs {
    /// Secret that signs and checks bearer tokens (HS256), at least 32 bytes
    #[arg(long, env = "API_JWT_SECRET", hide_env_values = true)]
    jwt_secret: Option<Secret>,
}

#[derive(Args, Debug)]
struct ServeArgs {
    /// Address and port to listen on
    #[arg(long, env = "API_LISTEN", default_value = "127.0.0.1:8080")]
    listen: SocketAddr,

    #[command(flatten)]
    auth: AuthArgs,

    /// Serve without authentication: every request may read reports and
    /// change servers. Needed to start without API_JWT_SECRET
    #[arg(long, env = "API_NO_AUTH")]
    no_auth: bool,

    /// Comma-separated origins allowed by CORS, such as
    /// https://reports.example.com; CORS is off when empty
    #[arg(long, env = "API_CORS_ORIGINS", default_value = "")]
    cors_origins: String,

    /// Maximum seconds a request may take before the API responds 503. A streamed report
    /// also stops when the client reads nothing for this long
    #[arg(long, env = "API_REQUEST_TIMEOUT", default_value_t = 30,
          value_parser = clap::value_parser!(u64).range(1..=3600))]
    request_timeout: u64,

    #[command(flatten)]
    database: DatabaseArgs,

    #[command(flatten)]
    vault: VaultArgs,

    #[command(flatten)]
    log: LogArgs,
}

#[derive(Args, Debug)]
struct TokenArgs {
    /// Permission level: read (reports) or admin (reports and server changes)
    #[arg(long, value_parser = parse_scope)]
    scope: Scope,

    /// Lifetime, such as 30d, 12h, 15m or 3600 (seconds)
    #[arg(long, default_value = "30d", value_parser = axiquota_api::parse_ttl)]
    ttl: Duration,

    /// Subject of the token, shown in the API's debug log
    #[arg(long)]
    subject: Option<String>,

    #[command(flatten)]
    auth: AuthArgs,
}

fn parse_scope(text: &str) -> Result<Scope, String> {
    text.parse()
}

fn main() -> ExitCode {
    // `.env` is read before the command line so that its values fill the
    // options that have an environment variable.
    let cli: Cli = axiquota_core::config::parse_args();
    let result = match cli.command {
        Some(Command::Token(args)) => print_token(&args),
        None => run_server(cli.serve),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("api: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn print_token(args: &TokenArgs) -> anyhow::Result<()> {
    let secret = args
        .auth
        .jwt_secret
        .clone()
        .or_else(|| std::env::var("API_JWT_SECRET").ok().map(Secret::new))
        .context(
            "API_JWT_SECRET is not set: set it (or pass --jwt-secret) to the secret the API uses",
        )?;
    let token = axiquota_api::issue_token(&secret, args.scope, args.ttl, args.subject.as_deref())?;
    println!("{token}");
    Ok(())
}

#[tokio::main]
async fn run_server(args: ServeArgs) -> anyhow::Result<()> {
    axiquota_core::telemetry::init(args.log.log_format, "info");

    let auth = match (&args.auth.jwt_secret, args.no_auth) {
        (Some(_), true) => {
            anyhow::bail!("both API_JWT_SECRET and API_NO_AUTH are set: unset one of them")
        }
        (Some(secret), false) => Auth::jwt(secret)?,
        (None, true) => {
            tracing::warn!(
                "authentication is off (API_NO_AUTH): anyone who can reach the API can read reports and add, change or delete servers"
            );
            Auth::Disabled
        }
        (None, false) => anyhow::bail!(
            "API_JWT_SECRET is not set: set it to a secret of at least 32 bytes \
             (for example the output of `head -c 32 /dev/urandom | base64`), or pass --no-auth to serve without authentication"
        ),
    };
    let cors_origins =
        axiquota_api::parse_cors_origins(&args.cors_origins).map_err(anyhow::Error::msg)?;
    let vault = args.vault.vault()?;
    let pool = args.database.connect().await?;

    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {} (API_LISTEN)", args.listen))?;
    let address = listener.local_addr()?;
    tracing::info!(%address, cors = !cors_origins.is_empty(), "api listening");

    let settings = Settings {
        request_timeout: Duration::from_secs(args.request_timeout),
        cors_origins,
    };
    let state = AppState::new(pool.clone(), vault, auth, settings);
    axiquota_api::serve(listener, state, shutdown_signal())
        .await
        .context("server failed")?;
    pool.close().await;
    tracing::info!("api stopped");
    Ok(())
}

/// Resolves on Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(error) = tokio::signal::ctrl_c().await {
            tracing::error!(%error, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(error) => {
                tracing::error!(%error, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();

    tokio::select! {
        () = ctrl_c => {}
        () = terminate => {}
    }
    tracing::info!("shutdown requested; finishing requests in flight");
}

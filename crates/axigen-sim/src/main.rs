//! `axigen-sim`: runs one or many fake Axigen servers until Ctrl-C or
//! SIGTERM, printing their addresses as one JSON line on stdout.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, bail};
use axigen_sim::{
    Behavior, Chunking, GenerateSpec, LatencyKind, MboxSizeUnit, MidReplyTrigger, ServerData,
    SimHandle, SimOptions, SimServer, Stall, Underline, UnlimitedQuota, WebAdminBehavior,
    WebAdminMode,
};
use clap::{Args, Parser, ValueEnum};

/// A fake Axigen Mail Server: the admin CLI and the WebAdmin usage feed
/// (GET /data/accounts), with switches for every reply variant and fault.
#[derive(Debug, Parser)]
#[command(version)]
struct Cli {
    /// Address to listen on.
    #[arg(long, default_value_t = IpAddr::V4(Ipv4Addr::LOCALHOST))]
    bind: IpAddr,
    /// CLI port; 0 picks a free port. With --servers N, server i uses
    /// this port + i unless it is 0.
    #[arg(long, default_value_t = 0)]
    cli_port: u16,
    /// WebAdmin port; 0 picks a free port. With --servers N, server i uses
    /// this port + i unless it is 0.
    #[arg(long, default_value_t = 0)]
    webadmin_port: u16,
    /// Number of servers to run, each on its own pair of ports.
    #[arg(long, default_value_t = 1)]
    servers: usize,

    #[command(flatten)]
    data: DataArgs,

    /// Admin user name for the CLI and WebAdmin.
    #[arg(long, env = "AXIGEN_SIM_USERNAME", default_value = "admin")]
    username: String,
    /// Admin password for the CLI and WebAdmin.
    #[arg(
        long,
        env = "AXIGEN_SIM_PASSWORD",
        default_value = "secret",
        hide_env_values = true
    )]
    password: String,
    /// Speak TLS on the CLI port from the first byte (implicit TLS), with a
    /// self-signed certificate printed in the JSON line.
    #[arg(long)]
    cli_tls: bool,
    /// Protocol of the WebAdmin port: both serves HTTPS and plain HTTP on
    /// the same port.
    #[arg(long, value_enum, default_value_t = WebAdminModeArg::Http)]
    webadmin: WebAdminModeArg,

    #[command(flatten)]
    behavior: BehaviorArgs,

    #[command(flatten)]
    webadmin_behavior: WebAdminArgs,
}

#[derive(Debug, Args)]
#[command(next_help_heading = "Data")]
struct DataArgs {
    /// Serve this JSON file (as written by --write-data) instead of
    /// generated data.
    #[arg(long, conflicts_with_all = ["seed", "domains", "accounts_per_domain"])]
    data: Option<PathBuf>,
    /// Seed of the generated data; server i of --servers uses seed + i.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Number of generated domains per server.
    #[arg(long, default_value_t = 3)]
    domains: usize,
    /// Number of generated accounts per domain.
    #[arg(long, default_value_t = 10)]
    accounts_per_domain: usize,
    /// Generate plain ASCII names only (no UTF-8, IDN, mixed-case or
    /// header-like names).
    #[arg(long)]
    plain_names: bool,
    /// Chance in percent that a generated domain is disabled.
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u8).range(0..=100))]
    disabled_domain_percent: u8,
    /// Write the served data as JSON to this file (an array of data sets
    /// when --servers is above 1).
    #[arg(long)]
    write_data: Option<PathBuf>,
}

#[derive(Debug, Args)]
#[command(next_help_heading = "CLI behavior")]
struct BehaviorArgs {
    /// Send a second banner line, "You must login first.".
    #[arg(long)]
    two_line_banner: bool,
    /// Answer USER with the password prompt alone, without "+OK: Enter
    /// password".
    #[arg(long)]
    no_user_status_line: bool,
    /// Send telnet IAC negotiation bytes before the banner and around the
    /// password prompt.
    #[arg(long)]
    telnet_iac: bool,
    /// Failed logins allowed per session; the next failure closes it.
    #[arg(long, default_value_t = 5)]
    max_auth_errors: u32,
    /// Lines allowed before login; the next line closes the session.
    #[arg(long, default_value_t = 20)]
    max_auth_commands: u32,
    /// -ERR replies after login that close the session when reached.
    #[arg(long, default_value_t = 20)]
    max_errors: u32,
    /// Idle time in milliseconds after which a session is closed silently.
    #[arg(long, default_value_t = 300_000)]
    idle_timeout_ms: u64,
    /// Close every CLI connection right after accepting it.
    #[arg(long)]
    close_on_accept: bool,
    /// Close CLI connections accepted while this many sessions are open.
    #[arg(long)]
    max_sessions: Option<usize>,
    /// Pause in milliseconds before every reply.
    #[arg(long, default_value_t = 0)]
    latency_ms: u64,
    /// Meaning of the latency: the server's time per command, or a network
    /// round trip, which commands sent together share.
    #[arg(long, value_enum, default_value_t = LatencyKindArg::Processing)]
    latency_kind: LatencyKindArg,
    /// Split of replies into socket writes.
    #[arg(long, value_enum, default_value_t = ChunkingArg::Whole)]
    chunking: ChunkingArg,
    /// Seed of the split points of --chunking random.
    #[arg(long, default_value_t = 1)]
    chunk_seed: u64,
    /// Pause in microseconds between the writes of one cut reply.
    #[arg(long, default_value_t = 0)]
    chunk_pause_us: u64,
    /// Cut the reply that follows this many replies after login in half
    /// and close the connection.
    #[arg(long, conflicts_with = "close_mid_reply_on")]
    close_mid_reply_after: Option<u64>,
    /// Cut the reply to the first command starting with this text (any
    /// case) in half and close the connection.
    #[arg(long)]
    close_mid_reply_on: Option<String>,
    /// How many replies in the server's life are cut (default: every
    /// session that meets the trigger).
    #[arg(long)]
    close_mid_reply_times: Option<u64>,
    /// Drop commands that arrive before the reply to the previous one was
    /// sent, unanswered.
    #[arg(long)]
    discard_typeahead: bool,
    /// Start sessions with CONSOLE-CODES on (ANSI sequences around prompts,
    /// status words and headers).
    #[arg(long)]
    console_codes: bool,
    /// Start sessions with QUIET on (tables are rows only).
    #[arg(long)]
    quiet: bool,
    /// Put Latin-1 bytes (invalid UTF-8) into table titles and
    /// SHOW RegistryInformation.
    #[arg(long)]
    invalid_utf8: bool,
    /// Character of the line under table headers.
    #[arg(long, value_enum, default_value_t = UnderlineArg::Dash)]
    underline: UnderlineArg,
    /// Width of the name column of tables, in characters.
    #[arg(long, default_value_t = 32)]
    name_column_width: usize,
    /// Add columns to domain and account tables and lines to
    /// SHOW RegistryInformation.
    #[arg(long)]
    extra_columns: bool,
    /// Domain tables with the name column alone, as older servers print.
    #[arg(long)]
    domain_name_only: bool,
    /// Reply -ERR to LIST AllDomains, as servers without that command do.
    #[arg(long)]
    no_list_all_domains: bool,
    /// Unit of "Mbox size" (mb and gb fall back to KB for sizes that are
    /// not whole MB or GB).
    #[arg(long, value_enum, default_value_t = MboxUnitArg::Bare)]
    mbox_size_unit: MboxUnitArg,
    /// Write the "Mbox size" unit in lower case.
    #[arg(long)]
    mbox_size_unit_lowercase: bool,
    /// Append bracketed inheritance notes to totalMessageSize.
    #[arg(long)]
    quota_notes: bool,
    /// Form of an unlimited quota.
    #[arg(long, value_enum, default_value_t = UnlimitedArg::Zero)]
    unlimited_quota: UnlimitedArg,
    /// Reply -ERR to UPDATE Domain for this domain (repeatable).
    #[arg(long = "vanished-domain", value_name = "DOMAIN")]
    vanished_domains: Vec<String>,
    /// Reply -ERR to UPDATE Account for this local@domain (repeatable).
    #[arg(long = "vanished-account", value_name = "ADDRESS")]
    vanished_accounts: Vec<String>,
    /// Reply -ERR to SHOW RegistryInformation for this local@domain
    /// (repeatable).
    #[arg(long = "registry-error", value_name = "ADDRESS")]
    registry_errors: Vec<String>,
}

#[derive(Debug, Args)]
#[command(next_help_heading = "WebAdmin feed behavior")]
struct WebAdminArgs {
    /// Reply 404 to /data/accounts.
    #[arg(long)]
    webadmin_missing_endpoint: bool,
    /// Reply 401 to every request, even with the right credentials.
    #[arg(long)]
    webadmin_reject_credentials: bool,
    /// Reply 200 with an HTML login page instead of the table.
    #[arg(long)]
    webadmin_html_login: bool,
    /// Reply 302 with this Location instead of the table.
    #[arg(long, value_name = "URL")]
    webadmin_redirect_to: Option<String>,
    /// Leave out the mboxSizeKb column.
    #[arg(long)]
    webadmin_omit_mbox_size: bool,
    /// Add columns before and after the used ones.
    #[arg(long)]
    webadmin_extra_columns: bool,
    /// Make some rows longer and some shorter than the header.
    #[arg(long)]
    webadmin_ragged_rows: bool,
    /// Pad the body with filler rows to at least this many bytes.
    #[arg(long, value_name = "BYTES")]
    webadmin_huge_body: Option<u64>,
    /// Stop sending part way and hold the connection open.
    #[arg(long, value_enum)]
    webadmin_stall: Option<StallArg>,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum WebAdminModeArg {
    Http,
    Https,
    Both,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum LatencyKindArg {
    Processing,
    Network,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum ChunkingArg {
    Whole,
    Random,
    OneByte,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum UnderlineArg {
    Dash,
    Equals,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum MboxUnitArg {
    Bare,
    Kb,
    Bytes,
    Mb,
    Gb,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum UnlimitedArg {
    Zero,
    Missing,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum StallArg {
    BeforeHeaders,
    AfterHeaders,
}

impl BehaviorArgs {
    fn to_behavior(&self, webadmin: WebAdminBehavior) -> Behavior {
        let close_mid_reply = match (&self.close_mid_reply_after, &self.close_mid_reply_on) {
            (Some(count), _) => Some(MidReplyTrigger::AfterReplies(*count)),
            (None, Some(prefix)) => Some(MidReplyTrigger::OnCommand(prefix.clone())),
            (None, None) => None,
        };
        Behavior {
            two_line_banner: self.two_line_banner,
            user_status_line: !self.no_user_status_line,
            telnet_iac: self.telnet_iac,
            max_auth_errors: self.max_auth_errors,
            max_auth_commands: self.max_auth_commands,
            max_errors: self.max_errors,
            idle_timeout: Duration::from_millis(self.idle_timeout_ms),
            close_on_accept: self.close_on_accept,
            max_sessions: self.max_sessions,
            reply_latency: Duration::from_millis(self.latency_ms),
            latency_kind: match self.latency_kind {
                LatencyKindArg::Processing => LatencyKind::Processing,
                LatencyKindArg::Network => LatencyKind::Network,
            },
            chunking: match self.chunking {
                ChunkingArg::Whole => Chunking::Whole,
                ChunkingArg::Random => Chunking::Random {
                    seed: self.chunk_seed,
                },
                ChunkingArg::OneByte => Chunking::OneByte,
            },
            chunk_pause: Duration::from_micros(self.chunk_pause_us),
            close_mid_reply,
            close_mid_reply_times: self.close_mid_reply_times,
            discard_typeahead: self.discard_typeahead,
            console_codes: self.console_codes,
            quiet: self.quiet,
            invalid_utf8: self.invalid_utf8,
            underline: match self.underline {
                UnderlineArg::Dash => Underline::Dash,
                UnderlineArg::Equals => Underline::Equals,
            },
            name_column_width: self.name_column_width,
            extra_columns: self.extra_columns,
            domain_name_only: self.domain_name_only,
            no_list_all_domains: self.no_list_all_domains,
            mbox_size_unit: match self.mbox_size_unit {
                MboxUnitArg::Bare => MboxSizeUnit::Bare,
                MboxUnitArg::Kb => MboxSizeUnit::Kb,
                MboxUnitArg::Bytes => MboxSizeUnit::Bytes,
                MboxUnitArg::Mb => MboxSizeUnit::Mb,
                MboxUnitArg::Gb => MboxSizeUnit::Gb,
            },
            mbox_size_unit_lowercase: self.mbox_size_unit_lowercase,
            quota_notes: self.quota_notes,
            unlimited_quota: match self.unlimited_quota {
                UnlimitedArg::Zero => UnlimitedQuota::Zero,
                UnlimitedArg::Missing => UnlimitedQuota::Missing,
            },
            vanished_domains: self.vanished_domains.clone(),
            vanished_accounts: self.vanished_accounts.clone(),
            registry_errors: self.registry_errors.clone(),
            webadmin,
        }
    }
}

impl WebAdminArgs {
    fn to_behavior(&self) -> WebAdminBehavior {
        WebAdminBehavior {
            missing_endpoint: self.webadmin_missing_endpoint,
            reject_credentials: self.webadmin_reject_credentials,
            html_login_page: self.webadmin_html_login,
            redirect_to: self.webadmin_redirect_to.clone(),
            omit_mbox_size_column: self.webadmin_omit_mbox_size,
            extra_columns: self.webadmin_extra_columns,
            ragged_rows: self.webadmin_ragged_rows,
            huge_body_bytes: self.webadmin_huge_body,
            stall: self.webadmin_stall.map(|stall| match stall {
                StallArg::BeforeHeaders => Stall::BeforeHeaders,
                StallArg::AfterHeaders => Stall::AfterHeaders,
            }),
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();

    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: failed to start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    if cli.servers == 0 {
        bail!("invalid --servers 0: expected at least 1");
    }
    let data_sets = load_data(&cli)?;
    if let Some(path) = &cli.data.write_data {
        write_data(path, &data_sets)?;
    }

    let options = SimOptions {
        username: cli.username.clone(),
        password: cli.password.clone(),
        behavior: cli
            .behavior
            .to_behavior(cli.webadmin_behavior.to_behavior()),
        cli_tls: cli.cli_tls,
        webadmin: match cli.webadmin {
            WebAdminModeArg::Http => WebAdminMode::Http,
            WebAdminModeArg::Https => WebAdminMode::Https,
            WebAdminModeArg::Both => WebAdminMode::Both,
        },
    };

    let mut handles = Vec::with_capacity(cli.servers);
    for (index, data) in data_sets.into_iter().enumerate() {
        let cli_addr = SocketAddr::new(cli.bind, offset_port(cli.cli_port, index, "--cli-port")?);
        let webadmin_addr = SocketAddr::new(
            cli.bind,
            offset_port(cli.webadmin_port, index, "--webadmin-port")?,
        );
        let handle = SimServer::start_on(cli_addr, webadmin_addr, data, options.clone())
            .await
            .with_context(|| {
                format!("failed to start server {index} on {cli_addr} and {webadmin_addr}")
            })?;
        handles.push(handle);
    }

    // Listening starts before the addresses go out, so that a stop signal
    // sent as soon as they are read ends the process cleanly.
    let stop = StopSignals::listen()?;
    println!("{}", addresses_line(&handles));

    stop.wait().await?;
    tracing::info!("stop signal received, shutting down");
    for handle in handles {
        handle.shutdown().await;
    }
    Ok(())
}

fn load_data(cli: &Cli) -> anyhow::Result<Vec<ServerData>> {
    if let Some(path) = &cli.data.data {
        let data = ServerData::from_json_file(path)?;
        return Ok(vec![data; cli.servers]);
    }
    let data_sets = (0..cli.servers)
        .map(|index| {
            ServerData::generate(&GenerateSpec {
                seed: cli.data.seed.wrapping_add(index as u64),
                domains: cli.data.domains,
                accounts_per_domain: cli.data.accounts_per_domain,
                awkward_names: !cli.data.plain_names,
                disabled_domain_percent: cli.data.disabled_domain_percent,
            })
        })
        .collect();
    Ok(data_sets)
}

fn write_data(path: &PathBuf, data_sets: &[ServerData]) -> anyhow::Result<()> {
    if let [single] = data_sets {
        return single.to_json_file(path);
    }
    let text = serde_json::to_string_pretty(data_sets).context("failed to serialise data")?;
    std::fs::write(path, text)
        .with_context(|| format!("failed to write data file {}", path.display()))
}

fn offset_port(base: u16, index: usize, option: &str) -> anyhow::Result<u16> {
    if base == 0 {
        return Ok(0);
    }
    u16::try_from(usize::from(base) + index).with_context(|| {
        format!("invalid {option} {base}: server {index} would need a port above 65535")
    })
}

fn addresses_line(handles: &[SimHandle]) -> serde_json::Value {
    let servers: Vec<serde_json::Value> = handles
        .iter()
        .map(|handle| {
            let webadmin_mode = match handle.webadmin_mode() {
                WebAdminMode::Http => "http",
                WebAdminMode::Https => "https",
                WebAdminMode::Both => "both",
            };
            serde_json::json!({
                "cli": handle.cli_addr().to_string(),
                "webadmin": handle.webadmin_addr().to_string(),
                "cli_tls": handle.cli_tls(),
                "webadmin_mode": webadmin_mode,
                "accounts": handle.data().account_count(),
                "certificate_pem": handle.certificate_pem(),
            })
        })
        .collect();
    serde_json::json!({ "servers": servers })
}

/// SIGTERM and SIGINT (Ctrl-C), caught from the moment of
/// [`StopSignals::listen`] on.
struct StopSignals {
    #[cfg(unix)]
    terminate: tokio::signal::unix::Signal,
    #[cfg(unix)]
    interrupt: tokio::signal::unix::Signal,
}

impl StopSignals {
    fn listen() -> anyhow::Result<Self> {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            Ok(Self {
                terminate: signal(SignalKind::terminate())
                    .context("failed to listen for SIGTERM")?,
                interrupt: signal(SignalKind::interrupt())
                    .context("failed to listen for Ctrl-C")?,
            })
        }
        #[cfg(not(unix))]
        Ok(Self {})
    }

    /// Waits for the first stop signal.
    async fn wait(self) -> anyhow::Result<()> {
        #[cfg(unix)]
        {
            let Self {
                mut terminate,
                mut interrupt,
            } = self;
            tokio::select! {
                _ = terminate.recv() => {}
                _ = interrupt.recv() => {}
            }
        }
        #[cfg(not(unix))]
        tokio::signal::ctrl_c()
            .await
            .context("failed to listen for Ctrl-C")?;
        Ok(())
    }
}

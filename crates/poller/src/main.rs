//! `poller`: collects every registered Axigen server and replaces each
//! server's snapshot. Run it from cron, or with `--every` as a service.

use std::process::ExitCode;
use std::time::Duration;

use axiquota_core::axigen::collector::CollectOptions;
use axiquota_core::config::{self, DatabaseArgs, LogArgs, VaultArgs};
use axiquota_core::telemetry;
use clap::Parser;
use poller::output::{self, OutputFormat};
use poller::{PollSettings, exit_code};
use tokio_util::sync::CancellationToken;
use tracing::{error, info};

/// Polls Axigen servers for mailbox quota and usage and stores the latest
/// snapshot of each in PostgreSQL.
///
/// Prints one line per server on standard output and logs on standard error.
///
/// Exit codes: 0 every server polled (or skipped because another poller had
/// it); 1 nothing could be done (configuration or database error); 2 some
/// servers failed and kept their previous snapshot while the others were
/// written.
#[derive(Parser, Debug)]
#[command(version, about, long_about)]
struct Cli {
    /// Poll only this server (host name, any letter case); repeat for several
    #[arg(
        long = "server",
        value_name = "HOSTNAME",
        env = "POLL_SERVERS",
        value_delimiter = ','
    )]
    servers: Vec<String>,

    /// Collect and print what would be written, without writing anything
    #[arg(long)]
    dry_run: bool,

    /// Keep running and poll on this schedule, for example 15m or 1h; stops
    /// cleanly on SIGTERM or Ctrl-C after finishing the writes under way
    #[arg(long, env = "POLL_EVERY", value_parser = humantime::parse_duration)]
    every: Option<Duration>,

    /// Output format on standard output
    #[arg(long, env = "POLL_OUTPUT", value_enum, default_value_t = OutputFormat::Table)]
    output: OutputFormat,

    /// Servers collected at the same time. The poller uses one database
    /// connection for all their locks, and the pool to write snapshots
    #[arg(long, env = "POLL_MAX_SERVERS", default_value_t = 50,
          value_parser = clap::value_parser!(u16).range(1..=1000))]
    max_servers: u16,

    /// CLI sessions opened to each server at the same time, 1 to 16 (Axigen
    /// allows 20 per client address by default)
    #[arg(long, env = "POLL_SESSIONS_PER_SERVER", default_value_t = 4,
          value_parser = clap::value_parser!(u16).range(1..=16))]
    sessions_per_server: u16,

    /// Send each account's CLI commands in one write instead of waiting
    /// for the prompt after each: one round trip per account instead of
    /// five or six. A server that leaves them unanswered for the reply
    /// timeout is read one command at a time for the rest of the run.
    /// `--send-ahead=false` turns it off when the environment turns it on
    #[arg(long, env = "POLL_SEND_AHEAD", num_args = 0..=1, require_equals = true,
          default_value_t = false, default_missing_value = "true",
          action = clap::ArgAction::Set)]
    send_ahead: bool,

    /// Time allowed for collecting one server, for example 10m
    #[arg(long, env = "POLL_SERVER_TIMEOUT", default_value = "10m", value_parser = humantime::parse_duration)]
    server_timeout: Duration,

    /// Time allowed to open a connection to a server
    #[arg(long, env = "POLL_CONNECT_TIMEOUT", default_value = "10s", value_parser = humantime::parse_duration)]
    connect_timeout: Duration,

    /// Time a server may stay silent in the middle of a reply
    #[arg(long, env = "POLL_REPLY_TIMEOUT", default_value = "30s", value_parser = humantime::parse_duration)]
    reply_timeout: Duration,

    /// Interval of progress lines in the log during a run; 0 turns them off
    #[arg(long, env = "POLL_PROGRESS_INTERVAL", default_value = "30s", value_parser = humantime::parse_duration)]
    progress_interval: Duration,

    #[command(flatten)]
    database: DatabaseArgs,

    #[command(flatten)]
    vault: VaultArgs,

    #[command(flatten)]
    log: LogArgs,
}

impl Cli {
    fn settings(&self) -> PollSettings {
        let collect = CollectOptions {
            sessions_per_server: usize::from(self.sessions_per_server),
            connect_timeout: self.connect_timeout,
            reply_timeout: self.reply_timeout,
            send_ahead: self.send_ahead,
            ..CollectOptions::default()
        };
        PollSettings {
            hostnames: self.servers.clone(),
            max_servers: usize::from(self.max_servers),
            server_timeout: self.server_timeout,
            dry_run: self.dry_run,
            progress_interval: self.progress_interval,
            collect,
        }
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli: Cli = config::parse_args();
    telemetry::init(cli.log.log_format, "info");
    ExitCode::from(run(cli).await)
}

async fn run(cli: Cli) -> u8 {
    let vault = match cli.vault.vault() {
        Ok(vault) => vault,
        Err(error) => {
            eprintln!("error: {error}");
            return exit_code::NOTHING_DONE;
        }
    };
    let pool = match cli.database.connect().await {
        Ok(pool) => pool,
        Err(error) => {
            eprintln!("error: {error:#}");
            return exit_code::NOTHING_DONE;
        }
    };

    let shutdown = CancellationToken::new();
    tokio::spawn(cancel_on_signal(shutdown.clone()));
    let settings = cli.settings();

    loop {
        let code = match poller::poll_once(&pool, &vault, &settings, &shutdown).await {
            Ok(report) => {
                print!("{}", output::render(&report, cli.output));
                report.exit_code()
            }
            Err(run_error) => {
                // Reported once: in the log of a poller that keeps running,
                // or as the last line of a single run.
                if cli.every.is_some() {
                    error!(error = %run_error, "poll run failed");
                } else {
                    eprintln!("error: {run_error}");
                }
                exit_code::NOTHING_DONE
            }
        };

        let Some(every) = cli.every else {
            return code;
        };
        if shutdown.is_cancelled() {
            info!("stopping after the current run");
            return code;
        }
        info!(next_in = %humantime::format_duration(every), "waiting for the next run");
        tokio::select! {
            () = tokio::time::sleep(every) => {}
            () = shutdown.cancelled() => {
                info!("stopping between runs");
                return exit_code::SUCCESS;
            }
        }
    }
}

/// Cancels `shutdown` on SIGTERM or Ctrl-C.
async fn cancel_on_signal(shutdown: CancellationToken) {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut terminate =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(signal) => signal,
                Err(error) => {
                    error!(%error, "cannot listen for SIGTERM");
                    let _ = ctrl_c.await;
                    shutdown.cancel();
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = terminate.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
    info!("shutdown requested: finishing the writes under way");
    shutdown.cancel();
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::Cli;

    fn sends_ahead(args: &[&str]) -> bool {
        let args = std::iter::once("poller").chain(args.iter().copied());
        Cli::try_parse_from(args)
            .expect("valid options")
            .settings()
            .collect
            .send_ahead
    }

    #[test]
    fn send_ahead_flag_forms() {
        assert!(!sends_ahead(&[]));
        assert!(sends_ahead(&["--send-ahead"]));
        assert!(sends_ahead(&["--send-ahead=true"]));
        assert!(!sends_ahead(&["--send-ahead=false"]));
        // Without `=`, the next word is an option, not a value.
        assert!(sends_ahead(&["--send-ahead", "--dry-run"]));
        assert!(Cli::try_parse_from(["poller", "--send-ahead=yes"]).is_err());
    }
}

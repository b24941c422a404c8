//! Logging set-up shared by every binary: `tracing` to standard error,
//! text or JSON, with the level taken from `RUST_LOG`.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::format::FmtSpan;

use crate::config::LogFormat;

/// Installs the global subscriber. `default_directive` applies when
/// `RUST_LOG` is unset, for example `info`. Calling it twice keeps the first
/// subscriber, which lets tests call it freely.
pub fn init(format: LogFormat, default_directive: &str) {
    // rustls-platform-verifier logs every rejected certificate as an error,
    // although the WebAdmin client handles it (it falls back to the CLI and
    // records why), so its messages are off unless RUST_LOG enables them.
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        EnvFilter::new(format!("{default_directive},rustls_platform_verifier=off"))
    });
    // Colours only on a terminal, so that cron mail and log files get plain
    // text; NO_COLOR turns them off everywhere.
    let colour = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(colour)
        .with_writer(std::io::stderr)
        .with_span_events(FmtSpan::NONE);

    let _ = match format {
        LogFormat::Text => builder.with_target(false).try_init(),
        LogFormat::Json => builder.json().with_current_span(true).try_init(),
    };
}

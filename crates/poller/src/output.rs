//! Standard output of the poller: one line per server and a summary line,
//! as a table for people and cron mail or as JSON for scripts.

use std::fmt::Write as _;

use axiquota_core::store::polls::PollStatus;

use crate::RunReport;

#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputFormat {
    Table,
    Json,
}

/// Renders a run in the chosen format, ending with a newline.
pub fn render(report: &RunReport, format: OutputFormat) -> String {
    match format {
        OutputFormat::Table => render_table(report),
        OutputFormat::Json => {
            let mut text = serde_json::to_string(report).unwrap_or_else(|error| {
                format!("{{\"error\":\"cannot serialise the report: {error}\"}}")
            });
            text.push('\n');
            text
        }
    }
}

/// Formats a duration for the table: milliseconds below a second, where
/// tenths of a second would show a fast server as 0.0s.
fn format_duration(milliseconds: i64) -> String {
    if milliseconds < 1000 {
        format!("{milliseconds}ms")
    } else {
        format!("{:.1}s", milliseconds as f64 / 1000.0)
    }
}

fn render_table(report: &RunReport) -> String {
    let width = report
        .servers
        .iter()
        .map(|outcome| outcome.result.hostname.len())
        .max()
        .unwrap_or(0)
        .max("SERVER".len());

    let mut text = String::new();
    let _ = writeln!(
        text,
        "{:<7} {:<width$} {:>7} {:>8} {:>8}  ERROR",
        "STATUS", "SERVER", "DOMAINS", "ACCOUNTS", "DURATION"
    );
    for outcome in &report.servers {
        let result = &outcome.result;
        let _ = writeln!(
            text,
            "{:<7} {:<width$} {:>7} {:>8} {:>8}  {}",
            result.status.as_str(),
            result.hostname,
            result.domains,
            result.accounts,
            format_duration(result.duration_ms),
            result.error.as_deref().unwrap_or("")
        );
        if let Some(snapshot) = &outcome.snapshot {
            for domain in &snapshot.domains {
                let used: i64 = domain.accounts.iter().map(|account| account.used_kb).sum();
                let _ = writeln!(
                    text,
                    "        {} ({}): {} accounts, {} KB used",
                    domain.name,
                    domain.status.as_str(),
                    domain.accounts.len(),
                    used
                );
            }
        }
    }

    let counts = report.counts;
    let dry_run = if report.dry_run {
        " (dry run: nothing written)"
    } else {
        ""
    };
    let _ = writeln!(
        text,
        "{}: {} ok, {} failed, {} locked; {} accounts in {}{dry_run}",
        servers(counts.total),
        counts.ok,
        counts.failed,
        counts.locked,
        report.accounts(),
        format_duration(report.duration_ms)
    );
    if report
        .servers
        .iter()
        .any(|outcome| outcome.result.status == PollStatus::Failed)
    {
        let _ = writeln!(text, "failed servers keep their previous snapshot");
    }
    let cli_fallbacks = report
        .servers
        .iter()
        .filter(|outcome| {
            outcome.result.status == PollStatus::Ok && outcome.result.webadmin_error.is_some()
        })
        .count();
    if cli_fallbacks > 0 {
        let _ = writeln!(
            text,
            "{} read usage over the CLI because the WebAdmin feed failed; GET /servers or \
             --output json gives the reason",
            servers(cli_fallbacks)
        );
    }
    let sent_ahead_dropped = report
        .servers
        .iter()
        .filter(|outcome| outcome.result.sent_ahead_dropped)
        .count();
    if sent_ahead_dropped > 0 {
        let _ = writeln!(
            text,
            "{} left commands sent ahead unanswered and were read one command at a time; \
             poll them without --send-ahead (--output json names them)",
            servers(sent_ahead_dropped)
        );
    }
    text
}

/// Returns the count with "server" or "servers".
fn servers(count: usize) -> String {
    let noun = if count == 1 { "server" } else { "servers" };
    format!("{count} {noun}")
}

#[cfg(test)]
mod tests {
    use axiquota_core::store::polls::{PollResult, RunCounts};
    use chrono::Utc;
    use uuid::Uuid;

    use super::*;
    use crate::ServerOutcome;

    fn outcome(hostname: &str, status: PollStatus, webadmin_error: Option<&str>) -> ServerOutcome {
        ServerOutcome {
            result: PollResult {
                server_id: Uuid::nil(),
                hostname: hostname.to_owned(),
                status,
                error: None,
                started_at: Utc::now(),
                duration_ms: 1500,
                domains: 1,
                accounts: 2,
                skipped: Vec::new(),
                usage_source: Some("cli"),
                webadmin_error: webadmin_error.map(str::to_owned),
                sent_ahead_dropped: false,
            },
            snapshot: None,
        }
    }

    fn report(servers: Vec<ServerOutcome>) -> RunReport {
        RunReport {
            run_id: None,
            dry_run: false,
            started_at: Utc::now(),
            duration_ms: 1500,
            counts: RunCounts {
                total: servers.len(),
                ok: servers.len(),
                ..RunCounts::default()
            },
            servers,
        }
    }

    #[test]
    fn table_notes_cli_fallback() {
        let text = render_table(&report(vec![
            outcome("mx1.example.net", PollStatus::Ok, Some("HTTP 404")),
            outcome("mx2.example.net", PollStatus::Ok, None),
        ]));
        assert!(text.contains("2 servers: 2 ok"), "{text}");
        assert!(
            text.contains(
                "1 server read usage over the CLI because the WebAdmin feed failed; \
                 GET /servers or --output json gives the reason"
            ),
            "{text}"
        );
    }

    #[test]
    fn table_without_fallback_has_no_note() {
        let text = render_table(&report(vec![outcome(
            "mx1.example.net",
            PollStatus::Ok,
            None,
        )]));
        assert!(text.contains("1 server: 1 ok"), "{text}");
        assert!(!text.contains("over the CLI"), "{text}");
        assert!(!text.contains("sent ahead"), "{text}");
    }

    #[test]
    fn table_notes_dropped_sent_ahead() {
        let mut dropped = outcome("mx1.example.net", PollStatus::Ok, None);
        dropped.result.sent_ahead_dropped = true;
        let text = render_table(&report(vec![
            dropped,
            outcome("mx2.example.net", PollStatus::Ok, None),
        ]));
        assert!(
            text.contains(
                "1 server left commands sent ahead unanswered and were read one command at a \
                 time; poll them without --send-ahead (--output json names them)"
            ),
            "{text}"
        );
    }

    #[test]
    fn duration_below_a_second_in_milliseconds() {
        assert_eq!(format_duration(48), "48ms");
        assert_eq!(format_duration(999), "999ms");
        assert_eq!(format_duration(1000), "1.0s");
        assert_eq!(format_duration(1549), "1.5s");
    }
}

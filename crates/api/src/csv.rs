//! CSV output (RFC 4180: comma-separated, CRLF line ends, fields with a
//! comma, quote or line break quoted). Sizes appear twice: raw KB for
//! programs and a readable size for people.

use axum::body::Body;
use axum::http::header::{CONTENT_DISPOSITION, CONTENT_TYPE};
use axum::response::{IntoResponse, Response};

use crate::views::{AccountView, DomainSummaryView, ServerView};

/// Column names of account rows, in order.
pub const ACCOUNT_COLUMNS: &[&str] = &[
    "server_name",
    "server_hostname",
    "domain",
    "email",
    "local_part",
    "quota_kb",
    "used_kb",
    "free_kb",
    "usage_percent",
    "quota_readable",
    "used_readable",
    "message_count",
    "usage_source",
    "collected_at",
];

/// Column names of per-domain rows, in order.
pub const DOMAIN_COLUMNS: &[&str] = &[
    "server_name",
    "server_hostname",
    "domain",
    "status",
    "accounts",
    "used_kb",
    "allocated_kb",
    "used_readable",
    "allocated_readable",
    "unlimited_accounts",
    "accounts_over_threshold",
    "threshold_percent",
    "collected_at",
];

/// Column names of server rows, in order.
pub const SERVER_COLUMNS: &[&str] = &[
    "name",
    "hostname",
    "cli_port",
    "webadmin_port",
    "cli_tls",
    "webadmin_enabled",
    "last_poll_at",
    "last_poll_status",
    "last_poll_error",
    "last_poll_duration_ms",
    "last_success_at",
    "collected_at",
    "domains",
    "accounts",
    "used_kb",
    "used_readable",
];

/// Formats a size in KB with binary units, for example `716.0 MB` for
/// 733184 KB; `unlimited` for `None`.
pub fn readable_size(kb: Option<i64>) -> String {
    let Some(kb) = kb else {
        return "unlimited".to_owned();
    };
    const UNITS: [&str; 4] = ["MB", "GB", "TB", "PB"];
    if kb.abs() < 1024 {
        return format!("{kb} KB");
    }
    let mut value = kb as f64 / 1024.0;
    let mut unit = 0;
    while value.abs() >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

/// Appends the header line for `columns`.
pub fn write_header(out: &mut Vec<u8>, columns: &[&str]) {
    out.extend_from_slice(columns.join(",").as_bytes());
    out.extend_from_slice(b"\r\n");
}

/// Appends one text field, quoted when needed. A leading `=`, `+`, `-` or
/// `@` is prefixed with `'` so that spreadsheets do not run the text as a
/// formula; account and domain names come from the mail servers, not from
/// this program.
fn write_text(out: &mut Vec<u8>, text: &str) {
    let guarded;
    let text = if text.starts_with(['=', '+', '-', '@']) {
        guarded = format!("'{text}");
        guarded.as_str()
    } else {
        text
    };
    if text.contains([',', '"', '\r', '\n']) {
        out.push(b'"');
        out.extend_from_slice(text.replace('"', "\"\"").as_bytes());
        out.push(b'"');
    } else {
        out.extend_from_slice(text.as_bytes());
    }
}

fn write_number<T: ToString>(out: &mut Vec<u8>, value: Option<T>) {
    if let Some(value) = value {
        out.extend_from_slice(value.to_string().as_bytes());
    }
}

/// Appends one account row in [`ACCOUNT_COLUMNS`] order.
pub fn write_account(
    out: &mut Vec<u8>,
    server_name: &str,
    server_hostname: &str,
    view: &AccountView,
) {
    write_text(out, server_name);
    out.push(b',');
    write_text(out, server_hostname);
    out.push(b',');
    write_text(out, &view.domain);
    out.push(b',');
    write_text(out, &view.email);
    out.push(b',');
    write_text(out, &view.local_part);
    out.push(b',');
    write_number(out, view.quota_kb);
    out.push(b',');
    write_number(out, Some(view.used_kb));
    out.push(b',');
    write_number(out, view.quota_kb.map(|quota| quota - view.used_kb));
    out.push(b',');
    write_number(out, view.usage_percent);
    out.push(b',');
    write_text(out, &readable_size(view.quota_kb));
    out.push(b',');
    write_text(out, &readable_size(Some(view.used_kb)));
    out.push(b',');
    write_number(out, view.message_count);
    out.push(b',');
    write_text(out, &view.usage_source);
    out.push(b',');
    write_text(out, &view.collected_at.to_rfc3339());
    out.extend_from_slice(b"\r\n");
}

/// Appends one per-domain row in [`DOMAIN_COLUMNS`] order.
pub fn write_domain(out: &mut Vec<u8>, view: &DomainSummaryView) {
    write_text(out, &view.server_name);
    out.push(b',');
    write_text(out, &view.server_hostname);
    out.push(b',');
    write_text(out, &view.name);
    out.push(b',');
    write_text(out, &view.status);
    out.push(b',');
    write_number(out, Some(view.accounts));
    out.push(b',');
    write_number(out, Some(view.used_kb));
    out.push(b',');
    write_number(out, Some(view.allocated_kb));
    out.push(b',');
    write_text(out, &readable_size(Some(view.used_kb)));
    out.push(b',');
    write_text(out, &readable_size(Some(view.allocated_kb)));
    out.push(b',');
    write_number(out, Some(view.unlimited_accounts));
    out.push(b',');
    write_number(out, Some(view.accounts_over_threshold));
    out.push(b',');
    write_number(out, Some(view.threshold_percent));
    out.push(b',');
    write_text(out, &view.collected_at.to_rfc3339());
    out.extend_from_slice(b"\r\n");
}

/// Appends one server row in [`SERVER_COLUMNS`] order.
pub fn write_server(out: &mut Vec<u8>, view: &ServerView) {
    let time = |time: Option<chrono::DateTime<chrono::Utc>>| {
        time.map(|time| time.to_rfc3339()).unwrap_or_default()
    };
    let last_poll = view.last_poll.as_ref();
    write_text(out, &view.name);
    out.push(b',');
    write_text(out, &view.hostname);
    out.push(b',');
    write_number(out, Some(view.cli_port));
    out.push(b',');
    write_number(out, Some(view.webadmin_port));
    out.push(b',');
    write_number(out, Some(view.cli_tls));
    out.push(b',');
    write_number(out, Some(view.webadmin_enabled));
    out.push(b',');
    write_text(out, &time(last_poll.map(|poll| poll.started_at)));
    out.push(b',');
    write_text(out, last_poll.map_or("", |poll| poll.status.as_str()));
    out.push(b',');
    write_text(out, last_poll.and_then(|poll| poll.error.as_deref()).unwrap_or(""));
    out.push(b',');
    write_number(out, last_poll.and_then(|poll| poll.duration_ms));
    out.push(b',');
    write_text(out, &time(view.last_success_at));
    out.push(b',');
    write_text(out, &time(view.collected_at));
    out.push(b',');
    write_number(out, Some(view.domains));
    out.push(b',');
    write_number(out, Some(view.accounts));
    out.push(b',');
    write_number(out, Some(view.used_kb));
    out.push(b',');
    write_text(out, &readable_size(Some(view.used_kb)));
    out.extend_from_slice(b"\r\n");
}

/// Wraps a CSV body in a response with its content type and a file name
/// for browsers.
pub fn response(body: impl Into<Body>, filename: &str) -> Response {
    (
        [
            (CONTENT_TYPE, "text/csv; charset=utf-8".to_owned()),
            (
                CONTENT_DISPOSITION,
                format!("attachment; filename=\"{filename}\""),
            ),
        ],
        body.into(),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readable_sizes() {
        assert_eq!(readable_size(None), "unlimited");
        assert_eq!(readable_size(Some(0)), "0 KB");
        assert_eq!(readable_size(Some(1023)), "1023 KB");
        assert_eq!(readable_size(Some(733_184)), "716.0 MB");
        assert_eq!(readable_size(Some(1_572_864)), "1.5 GB");
    }

    #[test]
    fn text_fields_quoted_and_guarded() {
        let mut out = Vec::new();
        write_text(&mut out, "a,b \"c\"");
        assert_eq!(out, b"\"a,b \"\"c\"\"\"");
        out.clear();
        write_text(&mut out, "=cmd()");
        assert_eq!(out, b"'=cmd()");
        out.clear();
        write_text(&mut out, "plain");
        assert_eq!(out, b"plain");
    }
}

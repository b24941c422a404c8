//! CSV output (RFC 4180: comma-separated, CRLF line ends, fields with a
//! comma, quote or line break quoted). Sizes appear twice: raw KB for
//! programs and a readable size for people.

use axum::body::Body;
use axum::http::header::{CONTENT_DISPOSITION, CONTENT_TYPE};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};

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

/// One row being appended: fields are separated by commas and the row
/// ends with CRLF.
struct Row<'a> {
    out: &'a mut Vec<u8>,
    first: bool,
}

impl<'a> Row<'a> {
    fn start(out: &'a mut Vec<u8>) -> Self {
        Self { out, first: true }
    }

    fn separate(&mut self) {
        if !self.first {
            self.out.push(b',');
        }
        self.first = false;
    }

    fn text(mut self, text: &str) -> Self {
        self.separate();
        write_text(self.out, text);
        self
    }

    /// Appends a number or a boolean; `None` leaves the field empty.
    fn number<T: ToString>(mut self, value: Option<T>) -> Self {
        self.separate();
        write_number(self.out, value);
        self
    }

    fn end(self) {
        self.out.extend_from_slice(b"\r\n");
    }
}

/// Appends one account row in [`ACCOUNT_COLUMNS`] order.
pub fn write_account(
    out: &mut Vec<u8>,
    server_name: &str,
    server_hostname: &str,
    view: &AccountView,
) {
    Row::start(out)
        .text(server_name)
        .text(server_hostname)
        .text(&view.domain)
        .text(&view.email)
        .text(&view.local_part)
        .number(view.quota_kb)
        .number(Some(view.used_kb))
        .number(view.quota_kb.map(|quota| quota - view.used_kb))
        .number(view.usage_percent)
        .text(&readable_size(view.quota_kb))
        .text(&readable_size(Some(view.used_kb)))
        .number(view.message_count)
        .text(&view.usage_source)
        .text(&view.collected_at.to_rfc3339())
        .end();
}

/// Appends one per-domain row in [`DOMAIN_COLUMNS`] order.
pub fn write_domain(out: &mut Vec<u8>, view: &DomainSummaryView) {
    Row::start(out)
        .text(&view.server_name)
        .text(&view.server_hostname)
        .text(&view.name)
        .text(&view.status)
        .number(Some(view.accounts))
        .number(Some(view.used_kb))
        .number(Some(view.allocated_kb))
        .text(&readable_size(Some(view.used_kb)))
        .text(&readable_size(Some(view.allocated_kb)))
        .number(Some(view.unlimited_accounts))
        .number(Some(view.accounts_over_threshold))
        .number(Some(view.threshold_percent))
        .text(&view.collected_at.to_rfc3339())
        .end();
}

/// Appends one server row in [`SERVER_COLUMNS`] order.
pub fn write_server(out: &mut Vec<u8>, view: &ServerView) {
    let time = |time: Option<DateTime<Utc>>| time.map(|time| time.to_rfc3339()).unwrap_or_default();
    let last_poll = view.last_poll.as_ref();

    Row::start(out)
        .text(&view.name)
        .text(&view.hostname)
        .number(Some(view.cli_port))
        .number(Some(view.webadmin_port))
        .number(Some(view.cli_tls))
        .number(Some(view.webadmin_enabled))
        .text(&time(last_poll.map(|poll| poll.started_at)))
        .text(last_poll.map_or("", |poll| poll.status.as_str()))
        .text(
            last_poll
                .and_then(|poll| poll.error.as_deref())
                .unwrap_or(""),
        )
        .number(last_poll.and_then(|poll| poll.duration_ms))
        .text(&time(view.last_success_at))
        .text(&time(view.collected_at))
        .number(Some(view.domains))
        .number(Some(view.accounts))
        .number(Some(view.used_kb))
        .text(&readable_size(Some(view.used_kb)))
        .end();
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

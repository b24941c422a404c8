//! The WebAdmin usage feed: `GET /data/accounts`, a tab-separated table with
//! a header row, read for the `accountEmail` and `mboxSizeKb` columns.
//!
//! Axigen does not document this endpoint, so any failure is an ordinary
//! outcome that the collector records before falling back to CLI usage.
//! HTTPS is tried first. Plain HTTP, which sends the Basic credentials in
//! clear, is tried only when the server allows it and HTTPS failed before a
//! certificate was seen (nothing listens, or the port does not speak TLS).
//! A certificate that fails verification never leads to plain HTTP, and
//! redirects are never followed.

use std::collections::HashMap;
use std::error::Error as _;
use std::time::Duration;

use reqwest::{StatusCode, header};
use tokio::time::timeout;
use tracing::{debug, warn};

use super::cli::parse::parse_size_kb;
use super::tls;
use crate::model::ServerEndpoint;

/// The path of the usage feed on the WebAdmin port.
pub const FEED_PATH: &str = "/data/accounts";

/// Limits for one feed request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FeedOptions {
    /// Maximum time for the TCP connect.
    pub connect_timeout: Duration,
    /// Maximum time for the whole request, body included.
    pub total_timeout: Duration,
    /// Maximum time without receiving data, for the headers and between
    /// body chunks.
    pub stall_timeout: Duration,
    /// Maximum body size in bytes.
    pub max_body_bytes: usize,
}

impl Default for FeedOptions {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(10),
            total_timeout: Duration::from_secs(120),
            stall_timeout: Duration::from_secs(30),
            max_body_bytes: 256 * 1024 * 1024,
        }
    }
}

/// Why the usage feed could not be used.
#[derive(Debug, thiserror::Error)]
pub enum FeedError {
    #[error("WebAdmin usage feed {url} not found (HTTP 404); this server does not offer it")]
    NotFound { url: String },
    #[error(
        "WebAdmin usage feed {url} rejected the credentials (HTTP {status}); check the username \
         and password stored for this server"
    )]
    Unauthorized { url: String, status: u16 },
    #[error("WebAdmin usage feed {url} is not a tab-separated table: {detail}")]
    NotTsv { url: String, detail: String },
    #[error("WebAdmin usage feed {url} has no \"{column}\" column in its header row")]
    MissingColumn { url: String, column: &'static str },
    #[error("WebAdmin usage feed {url} timed out after {after:?}")]
    TimedOut { url: String, after: Duration },
    #[error("WebAdmin usage feed {url} stalled: no data for {after:?}")]
    Stalled { url: String, after: Duration },
    #[error("WebAdmin usage feed {url} is larger than the limit of {limit} bytes; raise the limit")]
    TooLarge { url: String, limit: usize },
    #[error("WebAdmin usage feed {url} answered HTTP {status}")]
    Http { url: String, status: u16 },
    #[error("connecting to the WebAdmin usage feed {url} failed: {detail}")]
    Connect { url: String, detail: String },
    #[error(
        "TLS with the WebAdmin usage feed {url} failed: {detail}; turn certificate checking off \
         for a self-signed certificate"
    )]
    Tls { url: String, detail: String },
}

/// Usage per mailbox as the feed reports it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UsageFeed {
    /// Usage in KB by lower-cased address.
    usage_kb: HashMap<String, u64>,
    /// Rows without a readable address or size.
    pub skipped_rows: usize,
    /// The URL that served the feed.
    pub url: String,
}

impl UsageFeed {
    /// The usage in KB of `account@domain`, compared case-insensitively.
    pub fn usage_kb(&self, domain: &str, account: &str) -> Option<u64> {
        let address = format!("{account}@{domain}").to_lowercase();
        self.usage_kb.get(&address).copied()
    }

    /// The number of addresses with a usage figure.
    pub fn len(&self) -> usize {
        self.usage_kb.len()
    }

    pub fn is_empty(&self) -> bool {
        self.usage_kb.is_empty()
    }
}

/// Fetches and parses the usage feed of one server, over HTTPS first and
/// over plain HTTP only when the endpoint allows it.
///
/// # Errors
///
/// One [`FeedError`] per kind of failure; see the module documentation for
/// when plain HTTP is tried.
pub async fn fetch_usage(
    endpoint: &ServerEndpoint,
    options: &FeedOptions,
) -> Result<UsageFeed, FeedError> {
    let https_url = feed_url("https", endpoint);
    let https_error = match fetch_from(&https_url, endpoint, options).await {
        Ok(feed) => return Ok(feed),
        Err(error) => error,
    };

    let may_fall_back = matches!(
        &https_error,
        FeedError::Connect { .. } | FeedError::Tls { .. }
    ) && !is_certificate_error(&https_error);
    if !endpoint.webadmin_allow_http || !may_fall_back {
        return Err(https_error);
    }

    warn!(error = %https_error, "HTTPS failed; trying plain HTTP as this server allows");
    fetch_from(&feed_url("http", endpoint), endpoint, options).await
}

fn feed_url(scheme: &str, endpoint: &ServerEndpoint) -> String {
    let host = if endpoint.hostname.contains(':') {
        // An IPv6 address needs brackets in a URL.
        format!("[{}]", endpoint.hostname)
    } else {
        endpoint.hostname.clone()
    };
    format!("{scheme}://{host}:{}{FEED_PATH}", endpoint.webadmin_port)
}

fn is_certificate_error(error: &FeedError) -> bool {
    match error {
        FeedError::Tls { detail, .. } => detail.starts_with(CERTIFICATE_PREFIX),
        _ => false,
    }
}

/// Starts the detail of a [`FeedError::Tls`] caused by the certificate.
const CERTIFICATE_PREFIX: &str = "invalid certificate";

async fn fetch_from(
    url: &str,
    endpoint: &ServerEndpoint,
    options: &FeedOptions,
) -> Result<UsageFeed, FeedError> {
    let tls_config = tls::client_config(endpoint.tls_verify).map_err(|error| FeedError::Tls {
        url: url.to_owned(),
        detail: format!("loading the TLS configuration failed: {error}"),
    })?;
    let client = reqwest::Client::builder()
        .tls_backend_preconfigured(tls_config)
        .redirect(reqwest::redirect::Policy::none())
        // Mail servers are reached directly, like the CLI port.
        .no_proxy()
        .connect_timeout(options.connect_timeout)
        .timeout(options.total_timeout)
        .build()
        .map_err(|error| FeedError::Connect {
            url: url.to_owned(),
            detail: format!("building the HTTP client failed: {error}"),
        })?;

    debug!(url, "requesting the WebAdmin usage feed");
    let request = client
        .get(url)
        .basic_auth(&endpoint.username, Some(endpoint.password.expose()))
        .send();
    let mut response = match timeout(options.stall_timeout, request).await {
        Ok(Ok(response)) => response,
        Ok(Err(error)) => return Err(classify(url, &error, options)),
        Err(_) => {
            return Err(FeedError::Stalled {
                url: url.to_owned(),
                after: options.stall_timeout,
            });
        }
    };

    check_status(url, response.status())?;
    check_headers(url, &response, options)?;

    let mut parser = FeedParser::new(url);
    let mut received = 0usize;
    loop {
        let chunk = match timeout(options.stall_timeout, response.chunk()).await {
            Ok(Ok(Some(chunk))) => chunk,
            Ok(Ok(None)) => break,
            Ok(Err(error)) => return Err(classify(url, &error, options)),
            Err(_) => {
                return Err(FeedError::Stalled {
                    url: url.to_owned(),
                    after: options.stall_timeout,
                });
            }
        };
        received += chunk.len();
        if received > options.max_body_bytes {
            return Err(FeedError::TooLarge {
                url: url.to_owned(),
                limit: options.max_body_bytes,
            });
        }
        parser.push(&chunk)?;
    }
    parser.finish()
}

fn check_status(url: &str, status: StatusCode) -> Result<(), FeedError> {
    let url = url.to_owned();
    match status {
        StatusCode::OK => Ok(()),
        StatusCode::NOT_FOUND => Err(FeedError::NotFound { url }),
        StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => Err(FeedError::Unauthorized {
            url,
            status: status.as_u16(),
        }),
        _ => Err(FeedError::Http {
            url,
            status: status.as_u16(),
        }),
    }
}

fn check_headers(
    url: &str,
    response: &reqwest::Response,
    options: &FeedOptions,
) -> Result<(), FeedError> {
    let content_type = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default();
    if content_type.to_ascii_lowercase().contains("html") {
        return Err(FeedError::NotTsv {
            url: url.to_owned(),
            detail: format!("the server sent \"{content_type}\", probably a login page"),
        });
    }

    if let Some(length) = response.content_length()
        && length > options.max_body_bytes as u64
    {
        return Err(FeedError::TooLarge {
            url: url.to_owned(),
            limit: options.max_body_bytes,
        });
    }
    Ok(())
}

/// Maps a reqwest error to a feed error, looking through its causes for
/// the TLS error behind a failed connection.
fn classify(url: &str, error: &reqwest::Error, options: &FeedOptions) -> FeedError {
    let url = url.to_owned();
    if error.is_timeout() {
        return FeedError::TimedOut {
            url,
            after: options.total_timeout,
        };
    }

    if let Some(tls_error) = find_rustls_error(error) {
        let detail = match tls_error {
            rustls::Error::InvalidCertificate(reason) => {
                format!("{CERTIFICATE_PREFIX}: {reason:?}")
            }
            other => other.to_string(),
        };
        return FeedError::Tls { url, detail };
    }

    FeedError::Connect {
        url,
        detail: error_chain(error),
    }
}

fn find_rustls_error<'a>(
    error: &'a (dyn std::error::Error + 'static),
) -> Option<&'a rustls::Error> {
    let mut current: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(error) = current {
        if let Some(tls_error) = error.downcast_ref::<rustls::Error>() {
            return Some(tls_error);
        }
        if let Some(io_error) = error.downcast_ref::<std::io::Error>()
            && let Some(inner) = io_error.get_ref()
            && let Some(tls_error) = inner.downcast_ref::<rustls::Error>()
        {
            return Some(tls_error);
        }
        current = error.source();
    }
    None
}

fn error_chain(error: &reqwest::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// An incremental parser of the feed body, so the body is never held whole.
struct FeedParser {
    url: String,
    partial: Vec<u8>,
    /// Column positions of `accountEmail` and `mboxSizeKb`, once the header
    /// row has been read.
    columns: Option<(usize, usize)>,
    feed: UsageFeed,
}

impl FeedParser {
    fn new(url: &str) -> Self {
        Self {
            url: url.to_owned(),
            partial: Vec::new(),
            columns: None,
            feed: UsageFeed {
                url: url.to_owned(),
                ..UsageFeed::default()
            },
        }
    }

    fn push(&mut self, chunk: &[u8]) -> Result<(), FeedError> {
        let mut rest = chunk;
        while let Some(newline) = rest.iter().position(|&byte| byte == b'\n') {
            self.partial.extend_from_slice(&rest[..newline]);
            rest = &rest[newline + 1..];
            let line = std::mem::take(&mut self.partial);
            self.line(&line)?;
        }
        self.partial.extend_from_slice(rest);

        // Reject an HTML page early, before reading megabytes of it.
        if self.columns.is_none() && looks_like_html(&self.partial) {
            return Err(self.not_tsv("the body is an HTML page"));
        }
        Ok(())
    }

    fn finish(mut self) -> Result<UsageFeed, FeedError> {
        let line = std::mem::take(&mut self.partial);
        self.line(&line)?;
        if self.columns.is_none() {
            return Err(self.not_tsv("the body is empty"));
        }
        Ok(self.feed)
    }

    fn line(&mut self, raw: &[u8]) -> Result<(), FeedError> {
        let text = String::from_utf8_lossy(raw);
        let line = text.trim_end_matches('\r');
        if line.trim().is_empty() {
            return Ok(());
        }

        let Some((email_column, size_column)) = self.columns else {
            self.columns = Some(self.header(line)?);
            return Ok(());
        };

        let fields: Vec<&str> = line.split('\t').collect();
        let email = fields.get(email_column).map(|field| field.trim());
        let size = fields
            .get(size_column)
            .and_then(|field| parse_size_kb(field.trim()));
        match (email, size) {
            (Some(email), Some(size)) if !email.is_empty() => {
                self.feed.usage_kb.insert(email.to_lowercase(), size);
            }
            _ => self.feed.skipped_rows += 1,
        }
        Ok(())
    }

    fn header(&self, line: &str) -> Result<(usize, usize), FeedError> {
        let line = line.trim_start_matches('\u{feff}');
        if looks_like_html(line.as_bytes()) {
            return Err(self.not_tsv("the body is an HTML page"));
        }

        let names: Vec<&str> = line.split('\t').map(str::trim).collect();
        let find = |wanted: &str| {
            names
                .iter()
                .position(|name| name.eq_ignore_ascii_case(wanted))
        };
        match (find("accountEmail"), find("mboxSizeKb")) {
            (Some(email), Some(size)) => Ok((email, size)),
            (None, None) => Err(self
                .not_tsv("the first line is not a header row naming accountEmail and mboxSizeKb")),
            (None, Some(_)) => Err(FeedError::MissingColumn {
                url: self.url.clone(),
                column: "accountEmail",
            }),
            (Some(_), None) => Err(FeedError::MissingColumn {
                url: self.url.clone(),
                column: "mboxSizeKb",
            }),
        }
    }

    fn not_tsv(&self, detail: &str) -> FeedError {
        FeedError::NotTsv {
            url: self.url.clone(),
            detail: detail.to_owned(),
        }
    }
}

fn looks_like_html(start: &[u8]) -> bool {
    let trimmed = start.trim_ascii_start();
    let trimmed = trimmed
        .strip_prefix("\u{feff}".as_bytes())
        .unwrap_or(trimmed);
    trimmed.first() == Some(&b'<')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(chunks: &[&[u8]]) -> Result<UsageFeed, FeedError> {
        let mut parser = FeedParser::new("http://test/data/accounts");
        for chunk in chunks {
            parser.push(chunk)?;
        }
        parser.finish()
    }

    #[test]
    fn parses_columns_by_header_name() {
        let feed = parse(&[
            b"domain\tmboxSizeKb\taccountEmail\r\n",
            b"a.example\t12\tAlice@A.example\r\nb.exa",
            b"mple\t0\tbob@b.example\n",
        ])
        .unwrap();
        assert_eq!(feed.usage_kb("a.example", "alice"), Some(12));
        assert_eq!(feed.usage_kb("B.example", "BOB"), Some(0));
        assert_eq!(feed.len(), 2);
    }

    #[test]
    fn tolerates_short_and_long_rows() {
        let feed = parse(&[
            b"accountEmail\tmboxSizeKb\n",
            b"a@x\t5\textra\tmore\nb@x\n\nc@x\t7",
        ])
        .unwrap();
        assert_eq!(feed.usage_kb("x", "a"), Some(5));
        assert_eq!(feed.usage_kb("x", "b"), None);
        assert_eq!(feed.usage_kb("x", "c"), Some(7));
        assert_eq!(feed.skipped_rows, 1);
    }

    #[test]
    fn rejects_html_and_missing_header() {
        assert!(matches!(
            parse(&[b"<!DOCTYPE html><html>"]),
            Err(FeedError::NotTsv { .. })
        ));
        assert!(matches!(
            parse(&[b"a@x\t5\n"]),
            Err(FeedError::NotTsv { .. })
        ));
        assert!(matches!(parse(&[b""]), Err(FeedError::NotTsv { .. })));
    }

    #[test]
    fn reports_missing_column() {
        let error = parse(&[b"accountEmail\tquotaKb\na@x\t5\n"]).unwrap_err();
        assert!(
            matches!(
                error,
                FeedError::MissingColumn {
                    column: "mboxSizeKb",
                    ..
                }
            ),
            "{error}"
        );
    }
}

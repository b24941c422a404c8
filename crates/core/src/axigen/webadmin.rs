//! The WebAdmin usage feed: `GET /data/accounts`, a tab-separated table with
//! a header row, read for the `accountEmail` and `mboxSizeKb` columns.
//!
//! Axigen does not document this endpoint, so any failure is an ordinary
//! outcome that the collector records before falling back to CLI usage.
//! HTTPS is tried first. Plain HTTP, which sends the Basic credentials in
//! clear, is used only when the server allows it and the port does not
//! complete a TLS handshake. A certificate that fails verification never
//! leads to plain HTTP, and redirects are never followed.

use std::collections::HashMap;
use std::error::Error as _;
use std::sync::Arc;
use std::time::Duration;

use reqwest::{StatusCode, header};
use rustls::pki_types::ServerName;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::timeout;
use tokio_rustls::TlsConnector;
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

/// A failure of the usage feed request.
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
    #[error("WebAdmin usage feed {url} returned HTTP {status}")]
    Http { url: String, status: u16 },
    #[error("connecting to the WebAdmin usage feed {url} failed: {detail}")]
    Connect { url: String, detail: String },
    #[error("TLS with the WebAdmin usage feed {url} failed: {detail}")]
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
    /// Returns the usage in KB of `account@domain`, compared case-insensitively.
    pub fn usage_kb(&self, domain: &str, account: &str) -> Option<u64> {
        let address = format!("{account}@{domain}").to_lowercase();
        self.usage_kb.get(&address).copied()
    }

    /// Returns the number of addresses with a usage figure.
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
    let scheme = choose_scheme(endpoint, options).await?;
    fetch_from(&feed_url(scheme, endpoint), endpoint, options).await
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

/// How long HTTPS may still take to respond once the port has responded to
/// plain HTTP, for ports that speak both.
const PLAIN_HTTP_GRACE: Duration = Duration::from_secs(1);

/// Decides between `https` and `http` before any credentials are sent.
///
/// A TLS handshake is tried first. A plain HTTP server does not respond to a
/// TLS handshake at all (it waits for the end of a request line that never
/// comes), so when plain HTTP is allowed, a request without credentials is
/// sent at the same time to see whether the port speaks plain HTTP, instead
/// of waiting for the handshake to time out.
async fn choose_scheme(
    endpoint: &ServerEndpoint,
    options: &FeedOptions,
) -> Result<&'static str, FeedError> {
    let https_url = feed_url("https", endpoint);
    let tls = probe_tls(endpoint, options);
    if !endpoint.webadmin_allow_http {
        return tls
            .await
            .map(|()| "https")
            .map_err(|failure| failure.into_error(&https_url, false));
    }

    let plain = probe_plain_http(endpoint, options);
    tokio::pin!(tls, plain);
    let tls_result = tokio::select! {
        result = &mut tls => result,
        speaks_http = &mut plain => {
            if speaks_http {
                match timeout(PLAIN_HTTP_GRACE, &mut tls).await {
                    Ok(result) => result,
                    Err(_) => Err(ProbeFailure::NotTls("no TLS handshake, but plain HTTP responded".to_owned())),
                }
            } else {
                tls.await
            }
        }
    };

    match tls_result {
        Ok(()) => Ok("https"),
        Err(ProbeFailure::NotTls(detail)) => {
            warn!(url = %https_url, %detail, "the WebAdmin port does not speak TLS; using plain HTTP as this server allows");
            Ok("http")
        }
        Err(failure) => Err(failure.into_error(&https_url, true)),
    }
}

/// A failure of the TLS handshake probe on the WebAdmin port.
#[derive(Debug)]
enum ProbeFailure {
    /// Nothing accepted the TCP connection.
    Connect(std::io::Error),
    /// The port speaks TLS but its certificate was rejected.
    Certificate(String),
    /// The port did not complete a TLS handshake.
    NotTls(String),
}

impl ProbeFailure {
    fn into_error(self, url: &str, http_allowed: bool) -> FeedError {
        let url = url.to_owned();
        match self {
            Self::Connect(error) => FeedError::Connect {
                url,
                detail: error.to_string(),
            },
            Self::Certificate(detail) => FeedError::Tls { url, detail },
            Self::NotTls(detail) if http_allowed => FeedError::Tls { url, detail },
            Self::NotTls(detail) => FeedError::Tls {
                url,
                detail: format!(
                    "{detail}; if this port serves plain HTTP, allow plain HTTP for this server \
                     (the credentials then cross the network in clear)"
                ),
            },
        }
    }
}

/// Connects and completes a TLS handshake with the same certificate checks
/// as the feed request, then closes the connection.
async fn probe_tls(endpoint: &ServerEndpoint, options: &FeedOptions) -> Result<(), ProbeFailure> {
    let config = tls::client_config(endpoint).map_err(|error| {
        ProbeFailure::Certificate(format!("loading the TLS configuration failed: {error}"))
    })?;
    let server_name = ServerName::try_from(endpoint.hostname.clone()).map_err(|_| {
        ProbeFailure::Certificate(format!("invalid TLS server name \"{}\"", endpoint.hostname))
    })?;

    let handshake = async {
        let tcp = TcpStream::connect((endpoint.hostname.as_str(), endpoint.webadmin_port))
            .await
            .map_err(ProbeFailure::Connect)?;
        let mut stream = TlsConnector::from(Arc::new(config))
            .connect(server_name, tcp)
            .await
            .map_err(|error| match find_rustls_error(&error) {
                Some(rustls::Error::InvalidCertificate(reason)) => {
                    ProbeFailure::Certificate(format!(
                        "{CERTIFICATE_PREFIX}: {}",
                        tls::describe_certificate_error(reason)
                    ))
                }
                Some(other) => ProbeFailure::NotTls(other.to_string()),
                None => ProbeFailure::NotTls(error.to_string()),
            })?;
        let _ = stream.shutdown().await;
        Ok(())
    };
    match timeout(options.connect_timeout, handshake).await {
        Ok(result) => result,
        Err(_) => Err(ProbeFailure::NotTls(format!(
            "no TLS handshake within {:?}",
            options.connect_timeout
        ))),
    }
}

/// Sends a request without credentials over plain TCP and returns whether
/// an HTTP status line came back. Never sends the password.
async fn probe_plain_http(endpoint: &ServerEndpoint, options: &FeedOptions) -> bool {
    let probe = async {
        let mut tcp =
            TcpStream::connect((endpoint.hostname.as_str(), endpoint.webadmin_port)).await?;
        let request = format!(
            "HEAD {FEED_PATH} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
            endpoint.hostname
        );
        tcp.write_all(request.as_bytes()).await?;
        let mut start = [0u8; 5];
        tcp.read_exact(&mut start).await?;
        Ok::<_, std::io::Error>(&start == b"HTTP/")
    };
    matches!(timeout(options.connect_timeout, probe).await, Ok(Ok(true)))
}

/// Starts the detail of a [`FeedError::Tls`] caused by the certificate.
const CERTIFICATE_PREFIX: &str = "invalid certificate";

async fn fetch_from(
    url: &str,
    endpoint: &ServerEndpoint,
    options: &FeedOptions,
) -> Result<UsageFeed, FeedError> {
    let tls_config = tls::client_config(endpoint).map_err(|error| FeedError::Tls {
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
                format!(
                    "{CERTIFICATE_PREFIX}: {}",
                    tls::describe_certificate_error(reason)
                )
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

//! The WebAdmin usage feed: `GET /data/accounts` with HTTP Basic
//! authentication, returned as tab-separated text with a header row.
//!
//! A minimal HTTP/1.1 server written on the socket, because the faults it
//! must produce (headers without a body, nothing at all, a body that never
//! ends) are below what an HTTP framework lets a handler do. Every response
//! closes the connection.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::behavior::{Stall, WebAdminBehavior};
use crate::data::IndexedData;
use crate::server::Shared;
use crate::stats::StatsCounters;

/// Largest request head accepted.
const MAX_HEAD_BYTES: usize = 16 * 1024;
/// Time allowed to receive a request head.
const HEAD_TIMEOUT: Duration = Duration::from_secs(30);
/// Size of the pieces a streamed (huge) body is written in.
const STREAM_CHUNK_BYTES: usize = 64 * 1024;

const FEED_PATH: &str = "/data/accounts";

const LOGIN_PAGE: &str = "<!DOCTYPE html>\n<html><head><title>AXIGEN WebAdmin</title></head>\n\
<body><form method=\"post\" action=\"/\"><h1>AXIGEN WebAdmin login</h1>\n\
<input name=\"username\"><input name=\"password\" type=\"password\">\n\
<button type=\"submit\">Login</button></form></body></html>\n";

struct Request {
    method: String,
    path: String,
    authorization: Option<String>,
}

/// Serves one request on an accepted (and, for HTTPS, decrypted) stream.
pub(crate) async fn serve_connection<S>(
    shared: Arc<Shared>,
    data: Arc<IndexedData>,
    behavior: Arc<WebAdminBehavior>,
    mut stream: S,
) -> std::io::Result<()>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let request = match tokio::time::timeout(HEAD_TIMEOUT, read_request(&mut stream)).await {
        Ok(Ok(Some(request))) => request,
        Ok(Ok(None)) | Err(_) => return Ok(()),
        Ok(Err(e)) => return Err(e),
    };
    StatsCounters::increment(&shared.stats.webadmin_requests);
    tracing::debug!(method = %request.method, path = %request.path, "webadmin request");

    if behavior.stall == Some(Stall::BeforeHeaders) {
        return hold_until_closed(&mut stream).await;
    }
    if request.method != "GET" {
        return respond(
            &mut stream,
            "405 Method Not Allowed",
            "text/plain",
            &[],
            b"method not allowed\n",
        )
        .await;
    }
    let path = request.path.split('?').next().unwrap_or_default();
    if path != FEED_PATH || behavior.missing_endpoint {
        return respond(
            &mut stream,
            "404 Not Found",
            "text/plain",
            &[],
            b"not found\n",
        )
        .await;
    }
    if behavior.html_login_page {
        return respond(
            &mut stream,
            "200 OK",
            "text/html; charset=utf-8",
            &[],
            LOGIN_PAGE.as_bytes(),
        )
        .await;
    }
    if behavior.reject_credentials || !credentials_match(&shared, request.authorization.as_deref())
    {
        StatsCounters::increment(&shared.stats.webadmin_unauthorized);
        let challenge = [("WWW-Authenticate", "Basic realm=\"AXIGEN WebAdmin\"")];
        return respond(
            &mut stream,
            "401 Unauthorized",
            "text/plain",
            &challenge,
            b"unauthorized\n",
        )
        .await;
    }
    if let Some(location) = &behavior.redirect_to {
        let headers = [("Location", location.as_str())];
        return respond(&mut stream, "302 Found", "text/plain", &headers, b"moved\n").await;
    }

    let body = feed_body(&data, &behavior);
    if behavior.stall == Some(Stall::AfterHeaders) {
        let head = response_head("200 OK", TSV_TYPE, &[], Some(body.len()));
        stream.write_all(head.as_bytes()).await?;
        stream.write_all(&body[..body.len() / 2]).await?;
        stream.flush().await?;
        return hold_until_closed(&mut stream).await;
    }
    match behavior.huge_body_bytes {
        Some(target) if target > body.len() as u64 => {
            send_padded(&mut stream, &body, target, behavior.omit_mbox_size_column).await
        }
        _ => respond(&mut stream, "200 OK", TSV_TYPE, &[], &body).await,
    }
}

const TSV_TYPE: &str = "text/tab-separated-values; charset=utf-8";

async fn read_request<S: AsyncRead + Unpin>(stream: &mut S) -> std::io::Result<Option<Request>> {
    let mut head = Vec::with_capacity(1024);
    let mut buffer = [0u8; 1024];
    while !head.windows(4).any(|window| window == b"\r\n\r\n") {
        if head.len() > MAX_HEAD_BYTES {
            return Ok(None);
        }
        let count = stream.read(&mut buffer).await?;
        if count == 0 {
            return Ok(None);
        }
        head.extend_from_slice(&buffer[..count]);
    }

    let text = String::from_utf8_lossy(&head);
    let mut lines = text.split("\r\n");
    let mut request_line = lines.next().unwrap_or_default().split_whitespace();
    let method = request_line.next().unwrap_or_default().to_string();
    let path = request_line.next().unwrap_or_default().to_string();
    let authorization = lines
        .filter_map(|line| line.split_once(':'))
        .find(|(name, _)| name.trim().eq_ignore_ascii_case("authorization"))
        .map(|(_, value)| value.trim().to_string());
    Ok(Some(Request {
        method,
        path,
        authorization,
    }))
}

fn credentials_match(shared: &Shared, authorization: Option<&str>) -> bool {
    let Some((scheme, encoded)) = authorization.and_then(|value| value.split_once(' ')) else {
        return false;
    };
    if !scheme.eq_ignore_ascii_case("basic") {
        return false;
    }
    let Ok(decoded) = base64::engine::general_purpose::STANDARD.decode(encoded.trim()) else {
        return false;
    };
    let expected = format!("{}:{}", shared.username, shared.password);
    decoded == expected.as_bytes()
}

fn response_head(
    status: &str,
    content_type: &str,
    headers: &[(&str, &str)],
    length: Option<usize>,
) -> String {
    let mut head = format!(
        "HTTP/1.1 {status}\r\nServer: Axigen-Webadmin\r\nContent-Type: {content_type}\r\nConnection: close\r\n"
    );
    match length {
        Some(length) => head.push_str(&format!("Content-Length: {length}\r\n")),
        None => head.push_str("Transfer-Encoding: chunked\r\n"),
    }
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    head
}

async fn respond<S: AsyncWrite + Unpin>(
    stream: &mut S,
    status: &str,
    content_type: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> std::io::Result<()> {
    let head = response_head(status, content_type, headers, Some(body.len()));
    stream.write_all(head.as_bytes()).await?;
    stream.write_all(body).await?;
    stream.flush().await?;
    stream.shutdown().await
}

/// Keeps a stalled connection open until the client gives up and closes it
/// (or the server shuts down).
async fn hold_until_closed<S: AsyncRead + Unpin>(stream: &mut S) -> std::io::Result<()> {
    let mut buffer = [0u8; 1024];
    loop {
        if stream.read(&mut buffer).await? == 0 {
            return Ok(());
        }
    }
}

/// Columns of the feed, in order.
fn feed_columns(behavior: &WebAdminBehavior) -> Vec<&'static str> {
    let mut columns = if behavior.extra_columns {
        vec![
            "id",
            "accountEmail",
            "displayName",
            "mboxSizeKb",
            "messageCount",
            "lastLogin",
            "status",
        ]
    } else {
        vec!["accountEmail", "mboxSizeKb", "messageCount", "lastLogin"]
    };
    if behavior.omit_mbox_size_column {
        columns.retain(|column| *column != "mboxSizeKb");
    }
    columns
}

/// Builds the whole table: one row per account of every domain, disabled
/// domains included.
fn feed_body(data: &IndexedData, behavior: &WebAdminBehavior) -> Vec<u8> {
    let columns = feed_columns(behavior);
    // Ragged short rows stop after the last column a client needs.
    let last_needed = columns
        .iter()
        .rposition(|column| *column == "mboxSizeKb" || *column == "accountEmail")
        .unwrap_or(0);
    let mut body = Vec::with_capacity(64 + data.data.account_count() * 48);
    body.extend_from_slice(columns.join("\t").as_bytes());
    body.extend_from_slice(b"\n");

    let mut row_number = 0usize;
    for domain in &data.data.domains {
        for account in &domain.accounts {
            row_number += 1;
            let mut cells: Vec<String> = columns
                .iter()
                .map(|column| match *column {
                    "id" => row_number.to_string(),
                    "accountEmail" => format!("{}@{}", account.name, domain.name),
                    "displayName" => account.name.clone(),
                    "mboxSizeKb" => account.used_kb.to_string(),
                    "messageCount" => account.message_count.to_string(),
                    "lastLogin" => "2024-05-01 10:00:00".to_string(),
                    "status" => if domain.enabled {
                        "enabled"
                    } else {
                        "disabled"
                    }
                    .to_string(),
                    _ => String::new(),
                })
                .collect();
            if behavior.ragged_rows {
                if row_number % 5 == 0 {
                    cells.truncate(last_needed + 1);
                } else if row_number % 7 == 0 {
                    cells.push("trailing".to_string());
                }
            }
            body.extend_from_slice(cells.join("\t").as_bytes());
            body.extend_from_slice(b"\n");
        }
    }
    body
}

/// Sends `body` followed by filler rows (addresses in the reserved
/// `.invalid` domain) until at least `target` bytes are sent, as one
/// chunked response so that the size is not known up front.
async fn send_padded<S: AsyncWrite + Unpin>(
    stream: &mut S,
    body: &[u8],
    target: u64,
    omit_mbox_size: bool,
) -> std::io::Result<()> {
    let head = response_head("200 OK", TSV_TYPE, &[], None);
    stream.write_all(head.as_bytes()).await?;
    for piece in body.chunks(STREAM_CHUNK_BYTES) {
        write_chunk(stream, piece).await?;
    }

    let mut sent = body.len() as u64;
    let mut filler = 0u64;
    let mut piece = Vec::with_capacity(STREAM_CHUNK_BYTES + 128);
    while sent < target {
        piece.clear();
        while piece.len() < STREAM_CHUNK_BYTES && sent + (piece.len() as u64) < target {
            filler += 1;
            let row = if omit_mbox_size {
                format!("filler{filler}@huge.invalid\n")
            } else {
                format!("filler{filler}@huge.invalid\t0\n")
            };
            piece.extend_from_slice(row.as_bytes());
        }
        write_chunk(stream, &piece).await?;
        sent += piece.len() as u64;
    }
    stream.write_all(b"0\r\n\r\n").await?;
    stream.flush().await?;
    stream.shutdown().await
}

async fn write_chunk<S: AsyncWrite + Unpin>(stream: &mut S, piece: &[u8]) -> std::io::Result<()> {
    stream
        .write_all(format!("{:x}\r\n", piece.len()).as_bytes())
        .await?;
    stream.write_all(piece).await?;
    stream.write_all(b"\r\n").await
}

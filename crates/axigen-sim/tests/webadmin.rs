//! The WebAdmin usage feed and its switches, over raw HTTP and HTTPS.

mod common;

use std::sync::Arc;
use std::time::Duration;

use axigen_sim::{
    Behavior, ServerData, SimHandle, SimOptions, SimServer, Stall, WebAdminBehavior, WebAdminMode,
};
use base64::Engine;
use common::{WAIT, example_data};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

const RIGHT: (&str, &str) = ("admin", "secret");

struct Response {
    head: String,
    body: Vec<u8>,
}

impl Response {
    fn status(&self) -> &str {
        self.head.lines().next().unwrap_or_default()
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.head
            .lines()
            .filter_map(|line| line.split_once(": "))
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value)
    }

    fn text(&self) -> String {
        String::from_utf8(self.body.clone()).unwrap()
    }
}

async fn start(data: ServerData, webadmin: WebAdminBehavior, mode: WebAdminMode) -> SimHandle {
    let options = SimOptions {
        behavior: Behavior {
            webadmin,
            ..Behavior::default()
        },
        webadmin: mode,
        ..SimOptions::default()
    };
    SimServer::start(data, options).await.unwrap()
}

fn request(path: &str, credentials: Option<(&str, &str)>) -> Vec<u8> {
    let mut request = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\n");
    if let Some((user, password)) = credentials {
        let token = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
        request.push_str(&format!("Authorization: Basic {token}\r\n"));
    }
    request.push_str("\r\n");
    request.into_bytes()
}

/// Sends one request and reads the response until the server closes.
async fn exchange<S: AsyncRead + AsyncWrite + Unpin>(mut stream: S, request: &[u8]) -> Response {
    stream.write_all(request).await.unwrap();
    let mut received = Vec::new();
    tokio::time::timeout(WAIT, stream.read_to_end(&mut received))
        .await
        .expect("timed out reading the response")
        .unwrap();
    let split = received
        .windows(4)
        .position(|window| window == b"\r\n\r\n")
        .expect("no end of headers");
    let head = String::from_utf8(received[..split].to_vec()).unwrap();
    let mut body = received[split + 4..].to_vec();
    if head.contains("Transfer-Encoding: chunked") {
        body = dechunk(&body);
    }
    Response { head, body }
}

async fn get(server: &SimHandle, path: &str, credentials: Option<(&str, &str)>) -> Response {
    let stream = TcpStream::connect(server.webadmin_addr()).await.unwrap();
    exchange(stream, &request(path, credentials)).await
}

fn dechunk(mut data: &[u8]) -> Vec<u8> {
    let mut body = Vec::new();
    loop {
        let line_end = data.windows(2).position(|w| w == b"\r\n").unwrap();
        let size =
            usize::from_str_radix(std::str::from_utf8(&data[..line_end]).unwrap(), 16).unwrap();
        data = &data[line_end + 2..];
        if size == 0 {
            return body;
        }
        body.extend_from_slice(&data[..size]);
        data = &data[size + 2..];
    }
}

async fn tls_connect(server: &SimHandle) -> tokio_rustls::client::TlsStream<TcpStream> {
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(rustls::pki_types::CertificateDer::from(
            server.certificate_der().to_vec(),
        ))
        .unwrap();
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = TcpStream::connect(server.webadmin_addr()).await.unwrap();
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    connector.connect(name, tcp).await.unwrap()
}

#[tokio::test]
async fn feed_lists_every_account_with_usage() {
    let server = start(
        example_data(),
        WebAdminBehavior::default(),
        WebAdminMode::Http,
    )
    .await;
    let response = get(&server, "/data/accounts", Some(RIGHT)).await;
    assert_eq!(response.status(), "HTTP/1.1 200 OK");
    assert_eq!(
        response.header("Content-Type"),
        Some("text/tab-separated-values; charset=utf-8")
    );
    assert_eq!(
        response.text(),
        "accountEmail\tmboxSizeKb\tmessageCount\tlastLogin\n\
         alice@example.com\t734003\t5120\t2024-05-01 10:00:00\n\
         postmaster@example.com\t0\t0\t2024-05-01 10:00:00\n"
    );
    assert_eq!(server.stats().webadmin_requests, 1);
}

#[tokio::test]
async fn feed_rejects_wrong_or_missing_credentials() {
    let server = start(
        example_data(),
        WebAdminBehavior::default(),
        WebAdminMode::Http,
    )
    .await;
    let wrong = get(&server, "/data/accounts", Some(("admin", "nope"))).await;
    assert_eq!(wrong.status(), "HTTP/1.1 401 Unauthorized");
    assert_eq!(
        wrong.header("WWW-Authenticate"),
        Some("Basic realm=\"AXIGEN WebAdmin\"")
    );
    let missing = get(&server, "/data/accounts", None).await;
    assert_eq!(missing.status(), "HTTP/1.1 401 Unauthorized");
    assert_eq!(server.stats().webadmin_unauthorized, 2);
}

#[tokio::test]
async fn reject_credentials_answers_401_to_right_ones() {
    let behavior = WebAdminBehavior {
        reject_credentials: true,
        ..WebAdminBehavior::default()
    };
    let server = start(example_data(), behavior, WebAdminMode::Http).await;
    let response = get(&server, "/data/accounts", Some(RIGHT)).await;
    assert_eq!(response.status(), "HTTP/1.1 401 Unauthorized");
}

#[tokio::test]
async fn missing_endpoint_answers_404() {
    let behavior = WebAdminBehavior {
        missing_endpoint: true,
        ..WebAdminBehavior::default()
    };
    let server = start(example_data(), behavior, WebAdminMode::Http).await;
    let response = get(&server, "/data/accounts", Some(RIGHT)).await;
    assert_eq!(response.status(), "HTTP/1.1 404 Not Found");
}

#[tokio::test]
async fn unknown_path_answers_404() {
    let server = start(
        example_data(),
        WebAdminBehavior::default(),
        WebAdminMode::Http,
    )
    .await;
    let response = get(&server, "/data/other", Some(RIGHT)).await;
    assert_eq!(response.status(), "HTTP/1.1 404 Not Found");
}

#[tokio::test]
async fn html_login_page_replaces_table() {
    let behavior = WebAdminBehavior {
        html_login_page: true,
        ..WebAdminBehavior::default()
    };
    let server = start(example_data(), behavior, WebAdminMode::Http).await;
    let response = get(&server, "/data/accounts", Some(RIGHT)).await;
    assert_eq!(response.status(), "HTTP/1.1 200 OK");
    assert_eq!(
        response.header("Content-Type"),
        Some("text/html; charset=utf-8")
    );
    assert!(response.text().starts_with("<!DOCTYPE html>"));
}

#[tokio::test]
async fn redirect_points_elsewhere() {
    let behavior = WebAdminBehavior {
        redirect_to: Some("http://127.0.0.1:1/data/accounts".to_string()),
        ..WebAdminBehavior::default()
    };
    let server = start(example_data(), behavior, WebAdminMode::Http).await;
    let response = get(&server, "/data/accounts", Some(RIGHT)).await;
    assert_eq!(response.status(), "HTTP/1.1 302 Found");
    assert_eq!(
        response.header("Location"),
        Some("http://127.0.0.1:1/data/accounts")
    );
}

#[tokio::test]
async fn omitted_mbox_column_is_gone() {
    let behavior = WebAdminBehavior {
        omit_mbox_size_column: true,
        ..WebAdminBehavior::default()
    };
    let server = start(example_data(), behavior, WebAdminMode::Http).await;
    let text = get(&server, "/data/accounts", Some(RIGHT)).await.text();
    assert!(
        text.starts_with("accountEmail\tmessageCount\tlastLogin\n"),
        "{text}"
    );
    assert!(text.contains("\nalice@example.com\t5120\t"), "{text}");
}

#[tokio::test]
async fn extra_columns_surround_used_ones() {
    let behavior = WebAdminBehavior {
        extra_columns: true,
        ..WebAdminBehavior::default()
    };
    let server = start(example_data(), behavior, WebAdminMode::Http).await;
    let text = get(&server, "/data/accounts", Some(RIGHT)).await.text();
    let mut lines = text.lines();
    assert_eq!(
        lines.next(),
        Some("id\taccountEmail\tdisplayName\tmboxSizeKb\tmessageCount\tlastLogin\tstatus")
    );
    assert_eq!(
        lines.next(),
        Some("1\talice@example.com\talice\t734003\t5120\t2024-05-01 10:00:00\tenabled")
    );
}

#[tokio::test]
async fn ragged_rows_vary_in_length() {
    let data = ServerData::generate(&axigen_sim::GenerateSpec {
        seed: 4,
        domains: 2,
        accounts_per_domain: 10,
        ..axigen_sim::GenerateSpec::default()
    });
    let behavior = WebAdminBehavior {
        ragged_rows: true,
        ..WebAdminBehavior::default()
    };
    let server = start(data.clone(), behavior, WebAdminMode::Http).await;
    let text = get(&server, "/data/accounts", Some(RIGHT)).await.text();

    let widths: Vec<usize> = text
        .lines()
        .skip(1)
        .map(|l| l.split('\t').count())
        .collect();
    assert_eq!(widths.len(), data.account_count());
    assert!(widths.contains(&2), "no short row: {widths:?}");
    assert!(widths.contains(&5), "no long row: {widths:?}");
    assert!(widths.contains(&4), "no regular row: {widths:?}");

    // Every row still carries the address and the usage.
    let usage: Vec<u64> = text
        .lines()
        .skip(1)
        .map(|line| line.split('\t').nth(1).unwrap().parse().unwrap())
        .collect();
    let expected: Vec<u64> = data
        .domains
        .iter()
        .flat_map(|d| d.accounts.iter().map(|a| a.used_kb))
        .collect();
    assert_eq!(usage, expected);
}

#[tokio::test]
async fn huge_body_reaches_requested_size() {
    let behavior = WebAdminBehavior {
        huge_body_bytes: Some(3_000_000),
        ..WebAdminBehavior::default()
    };
    let server = start(example_data(), behavior, WebAdminMode::Http).await;
    let response = get(&server, "/data/accounts", Some(RIGHT)).await;
    assert_eq!(response.status(), "HTTP/1.1 200 OK");
    assert!(
        response.body.len() >= 3_000_000,
        "{} bytes",
        response.body.len()
    );
    assert!(
        response.body.len() < 3_100_000,
        "{} bytes",
        response.body.len()
    );
    let text = response.text();
    assert!(text.starts_with(
        "accountEmail\tmboxSizeKb\tmessageCount\tlastLogin\nalice@example.com\t734003\t"
    ));
    assert!(text.contains("\nfiller1@huge.invalid\t0\n"));
}

#[tokio::test]
async fn stall_before_headers_sends_nothing() {
    let behavior = WebAdminBehavior {
        stall: Some(Stall::BeforeHeaders),
        ..WebAdminBehavior::default()
    };
    let server = start(example_data(), behavior, WebAdminMode::Http).await;
    let mut stream = TcpStream::connect(server.webadmin_addr()).await.unwrap();
    stream
        .write_all(&request("/data/accounts", Some(RIGHT)))
        .await
        .unwrap();
    let mut buffer = [0u8; 1024];
    let read = tokio::time::timeout(Duration::from_millis(300), stream.read(&mut buffer)).await;
    assert!(read.is_err(), "received {read:?} from a stalled server");
    assert_eq!(server.stats().webadmin_requests, 1);
}

#[tokio::test]
async fn stall_after_headers_leaves_body_unfinished() {
    let behavior = WebAdminBehavior {
        stall: Some(Stall::AfterHeaders),
        ..WebAdminBehavior::default()
    };
    let server = start(example_data(), behavior, WebAdminMode::Http).await;
    let mut stream = TcpStream::connect(server.webadmin_addr()).await.unwrap();
    stream
        .write_all(&request("/data/accounts", Some(RIGHT)))
        .await
        .unwrap();

    let mut received = Vec::new();
    let mut buffer = [0u8; 4096];
    let reading = async {
        while !received.windows(4).any(|w| w == b"\r\n\r\n") {
            let count = stream.read(&mut buffer).await.unwrap();
            assert!(count > 0, "closed before the headers");
            received.extend_from_slice(&buffer[..count]);
        }
    };
    tokio::time::timeout(WAIT, reading).await.unwrap();
    let text = String::from_utf8_lossy(&received).into_owned();
    assert!(text.starts_with("HTTP/1.1 200 OK\r\n"), "{text}");
    let length: usize = text
        .lines()
        .find_map(|line| line.strip_prefix("Content-Length: "))
        .unwrap()
        .parse()
        .unwrap();

    // The rest never comes and the connection stays open.
    let more = tokio::time::timeout(Duration::from_millis(300), async {
        loop {
            let count = stream.read(&mut buffer).await.unwrap();
            if count == 0 {
                return;
            }
        }
    })
    .await;
    assert!(more.is_err(), "the stalled response finished or closed");
    let body_start = text.find("\r\n\r\n").unwrap() + 4;
    assert!(received.len() - body_start < length);
}

#[tokio::test]
async fn https_serves_feed_with_exposed_certificate() {
    let server = start(
        example_data(),
        WebAdminBehavior::default(),
        WebAdminMode::Https,
    )
    .await;
    assert!(
        server
            .certificate_pem()
            .starts_with("-----BEGIN CERTIFICATE-----")
    );
    let stream = tls_connect(&server).await;
    let response = exchange(stream, &request("/data/accounts", Some(RIGHT))).await;
    assert_eq!(response.status(), "HTTP/1.1 200 OK");
    assert!(response.text().contains("\nalice@example.com\t734003\t"));
}

#[tokio::test]
async fn https_port_refuses_plain_http() {
    let server = start(
        example_data(),
        WebAdminBehavior::default(),
        WebAdminMode::Https,
    )
    .await;
    let mut stream = TcpStream::connect(server.webadmin_addr()).await.unwrap();
    stream
        .write_all(&request("/data/accounts", Some(RIGHT)))
        .await
        .unwrap();
    let mut received = Vec::new();
    let _ = tokio::time::timeout(WAIT, stream.read_to_end(&mut received))
        .await
        .unwrap();
    assert!(
        !received.starts_with(b"HTTP/1.1 200"),
        "plain HTTP answered on an HTTPS port"
    );
}

#[tokio::test]
async fn both_mode_serves_http_and_https() {
    let server = start(
        example_data(),
        WebAdminBehavior::default(),
        WebAdminMode::Both,
    )
    .await;
    let plain = get(&server, "/data/accounts", Some(RIGHT)).await;
    assert_eq!(plain.status(), "HTTP/1.1 200 OK");
    let secure = exchange(
        tls_connect(&server).await,
        &request("/data/accounts", Some(RIGHT)),
    )
    .await;
    assert_eq!(secure.status(), "HTTP/1.1 200 OK");
    assert_eq!(plain.body, secure.body);
}

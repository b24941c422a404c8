//! Table-driven bad input: each case checks the status, the error body and
//! that nothing stored changed.

mod common;

use common::{TestApp, account, collected_at, domain};
use reqwest::Method;
use sqlx::PgPool;

const VALID: &str = r#""name": "mx9", "username": "admin", "password": "pw""#;

async fn seeded(pool: PgPool) -> TestApp {
    let app = common::spawn(pool).await;
    let id = app.add_server("mx1", "mx1.example.net").await;
    app.store_snapshot(
        id,
        collected_at(),
        vec![domain(
            "example.com",
            vec![account("alice", Some(1024), 10)],
        )],
    )
    .await;
    app
}

/// Method, path, body, expected status, expected field, and text that the
/// message contains.
type Case<'a> = (Method, &'a str, String, u16, Option<&'a str>, &'a str);

fn add_body(extra: &str) -> String {
    format!("{{{VALID}, {extra}}}")
}

/// Checks an error reply: its status, the field it names, a part of its
/// message, and that a password sent as `...QUIT` is not echoed.
fn assert_rejected(
    reply: &common::Reply,
    label: &str,
    status: u16,
    field: Option<&str>,
    text: &str,
) {
    assert_eq!(reply.status, status, "{label}: {}", reply.text);
    let json = reply.json();
    assert_eq!(json["success"], false, "{label}");
    assert_eq!(json["field"].as_str(), field, "{label}: {}", reply.text);
    let message = json["message"].as_str().unwrap();
    assert!(
        message.contains(text),
        "{label}: message {message:?} lacks {text:?}"
    );
    assert!(
        !message.contains("QUIT"),
        "{label}: the password is never echoed"
    );
}

#[sqlx::test(migrations = "../../migrations")]
async fn bad_bodies_rejected_and_nothing_stored(pool: PgPool) {
    let app = seeded(pool).await;
    let before = app.table_counts().await;
    let long_name = format!(
        r#"{{"hostname": "h.example.com", "name": "{}", "username": "a", "password": "p"}}"#,
        "n".repeat(256)
    );
    let long_host = add_body(&format!(r#""hostname": "{}.com""#, "a".repeat(250)));

    let cases: Vec<Case> = vec![
        (
            Method::POST,
            "/add_server",
            "{".into(),
            400,
            None,
            "malformed JSON",
        ),
        (Method::POST, "/add_server", "".into(), 400, None, "empty"),
        (
            Method::POST,
            "/add_server",
            "[1, 2]".into(),
            400,
            None,
            "invalid request body",
        ),
        (
            Method::POST,
            "/add_server",
            "null".into(),
            400,
            None,
            "invalid request body",
        ),
        (
            Method::POST,
            "/add_server",
            format!("{{{VALID}}}"),
            400,
            Some("hostname"),
            "missing field",
        ),
        (
            Method::POST,
            "/add_server",
            r#"{"hostname": "h.example.com", "username": "a", "password": "p"}"#.into(),
            400,
            Some("name"),
            "invalid request body: missing field `name`, which is required; the fields are \
             listed at /docs",
        ),
        (
            Method::POST,
            "/add_server",
            add_body(r#""hostname": "h.example.com", "extra": 1"#),
            400,
            Some("extra"),
            "unknown field",
        ),
        (
            Method::POST,
            "/add_server",
            add_body(r#""hostname": 42"#),
            400,
            Some("hostname"),
            "invalid type",
        ),
        (
            Method::POST,
            "/add_server",
            add_body(r#""hostname": "h.example.com", "cli_port": "7000""#),
            400,
            Some("cli_port"),
            "invalid type",
        ),
        (
            Method::POST,
            "/add_server",
            add_body(r#""hostname": "h.example.com", "cli_port": 7000.5"#),
            400,
            Some("cli_port"),
            "invalid type",
        ),
        (
            Method::POST,
            "/add_server",
            add_body(r#""hostname": "h.example.com", "cli_port": null"#),
            400,
            Some("cli_port"),
            "invalid type",
        ),
        (
            Method::POST,
            "/add_server",
            add_body(r#""hostname": "h.example.com", "cli_port": 0"#),
            400,
            Some("cli_port"),
            "invalid cli_port 0: expected 1-65535",
        ),
        (
            Method::POST,
            "/add_server",
            add_body(r#""hostname": "h.example.com", "cli_port": 70000"#),
            400,
            Some("cli_port"),
            "invalid cli_port 70000: expected 1-65535",
        ),
        (
            Method::POST,
            "/add_server",
            add_body(r#""hostname": "h.example.com", "webadmin_port": -1"#),
            400,
            Some("webadmin_port"),
            "expected 1-65535",
        ),
        (
            Method::POST,
            "/add_server",
            add_body(r#""hostname": "h.example.com", "webadmin_port": 99999999999999999999"#),
            400,
            Some("webadmin_port"),
            "invalid",
        ),
        (
            Method::POST,
            "/add_server",
            add_body(r#""hostname": "h.example.com", "cli_tls": "yes""#),
            400,
            Some("cli_tls"),
            "invalid type",
        ),
        (
            Method::POST,
            "/add_server",
            add_body(r#""hostname": "h.example.com", "tls_fingerprints": ["not hex"]"#),
            400,
            Some("tls_fingerprints"),
            "expected a SHA-256 fingerprint of 64 hex digits",
        ),
        (
            Method::POST,
            "/add_server",
            add_body(&format!(
                r#""hostname": "h.example.com", "tls_fingerprints": [{}]"#,
                vec![format!("\"{}\"", "a".repeat(64)); 9].join(", ")
            )),
            400,
            Some("tls_fingerprints"),
            "9 given, expected at most 8",
        ),
        (
            Method::POST,
            "/add_server",
            add_body(r#""hostname": """#),
            400,
            Some("hostname"),
            "empty",
        ),
        (
            Method::POST,
            "/add_server",
            long_host,
            400,
            Some("hostname"),
            "expected at most 253",
        ),
        (
            Method::POST,
            "/add_server",
            add_body(r#""hostname": "https://h.example.com""#),
            400,
            Some("hostname"),
            "scheme",
        ),
        (
            Method::POST,
            "/add_server",
            add_body(r#""hostname": "h.example.com/admin""#),
            400,
            Some("hostname"),
            "path",
        ),
        (
            Method::POST,
            "/add_server",
            add_body(r#""hostname": "h.example .com""#),
            400,
            Some("hostname"),
            "spaces",
        ),
        (
            Method::POST,
            "/add_server",
            add_body(r#""hostname": "h.example.com\n""#),
            400,
            Some("hostname"),
            "control",
        ),
        (
            Method::POST,
            "/add_server",
            add_body(r#""hostname": "h.example.com:7000""#),
            400,
            Some("hostname"),
            "port",
        ),
        (
            Method::POST,
            "/add_server",
            add_body(r#""hostname": "h..example.com""#),
            400,
            Some("hostname"),
            "empty label",
        ),
        (
            Method::POST,
            "/add_server",
            add_body(r#""hostname": "300.1.1.1""#),
            400,
            Some("hostname"),
            "IPv4",
        ),
        (
            Method::POST,
            "/add_server",
            add_body(r#""hostname": "MX1.EXAMPLE.NET""#),
            409,
            Some("hostname"),
            "already registered",
        ),
        (
            Method::POST,
            "/add_server",
            long_name,
            400,
            Some("name"),
            "at most 255",
        ),
        (
            Method::POST,
            "/add_server",
            r#"{"hostname": "h.example.com", "name": "  ", "username": "a", "password": "p"}"#
                .into(),
            400,
            Some("name"),
            "empty",
        ),
        (
            Method::POST,
            "/add_server",
            r#"{"hostname": "h.example.com", "name": "n", "username": "a\r\n", "password": "p"}"#
                .into(),
            400,
            Some("username"),
            "control",
        ),
        (
            Method::POST,
            "/add_server",
            r#"{"hostname": "h.example.com", "name": "n", "username": "a", "password": ""}"#.into(),
            400,
            Some("password"),
            "empty",
        ),
        (
            Method::POST,
            "/add_server",
            r#"{"hostname": "h.example.com", "name": "n", "username": "a", "password": "p\nQUIT"}"#
                .into(),
            400,
            Some("password"),
            "line breaks",
        ),
        (
            Method::POST,
            "/add_server",
            format!(
                r#"{{"hostname": "h.example.com", "name": "n", "username": "a", "password": "{}"}}"#,
                "x".repeat(20_000)
            ),
            413,
            None,
            "too large",
        ),
        (
            Method::DELETE,
            "/delete_server",
            "{}".into(),
            400,
            Some("hostname"),
            "missing field",
        ),
        (
            Method::DELETE,
            "/delete_server",
            r#"{"hostname": "mx1.example.net", "force": true}"#.into(),
            400,
            Some("force"),
            "unknown field",
        ),
        (
            Method::DELETE,
            "/delete_server",
            r#"{"hostname": ""}"#.into(),
            400,
            Some("hostname"),
            "empty",
        ),
        (
            Method::DELETE,
            "/delete_server",
            r#"{"hostname": "mx1.example.net/x"}"#.into(),
            400,
            Some("hostname"),
            "path",
        ),
        (
            Method::DELETE,
            "/delete_server",
            r#"{"hostname": "mx7.example.net"}"#.into(),
            404,
            Some("hostname"),
            "server not found",
        ),
        (
            Method::DELETE,
            "/delete_server",
            r#"{"hostname": "%"}"#.into(),
            400,
            Some("hostname"),
            "invalid hostname",
        ),
    ];

    for (method, path, body, status, field, text) in cases {
        let reply = app.send_json(method.clone(), path, &body).await;
        let label = format!("{method} {path} {:.80}", body);
        assert_rejected(&reply, &label, status, field, text);
        assert_eq!(
            app.table_counts().await,
            before,
            "{label}: stored data changed"
        );
    }
}

#[sqlx::test(migrations = "../../migrations")]
async fn wrong_content_type_rejected(pool: PgPool) {
    let app = seeded(pool).await;
    let before = app.table_counts().await;
    for content_type in [
        None,
        Some("text/plain"),
        Some("application/x-www-form-urlencoded"),
    ] {
        let mut request = app
            .client
            .post(app.url("/add_server"))
            .bearer_auth(&app.admin_token)
            .body(add_body(r#""hostname": "h.example.com""#));
        if let Some(content_type) = content_type {
            request = request.header("content-type", content_type);
        }
        let reply = app.send(request).await;
        assert_eq!(reply.status, 415, "{content_type:?}: {}", reply.text);
        assert_eq!(reply.json()["success"], false);
    }
    assert_eq!(app.table_counts().await, before);
}

#[sqlx::test(migrations = "../../migrations")]
async fn chunked_oversized_body_rejected(pool: PgPool) {
    let app = seeded(pool).await;
    let before = app.table_counts().await;
    // A streamed body has no Content-Length, so the limit applies while
    // reading.
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
        (0..40).map(|_| Ok(vec![b' '; 1024])).collect();
    let body = reqwest::Body::wrap_stream(futures::stream::iter(chunks));
    let reply = app
        .send(
            app.client
                .post(app.url("/add_server"))
                .bearer_auth(&app.admin_token)
                .header("content-type", "application/json")
                .body(body),
        )
        .await;
    assert_eq!(reply.status, 413, "{}", reply.text);
    assert_eq!(app.table_counts().await, before);
}

#[sqlx::test(migrations = "../../migrations")]
async fn bad_query_values_rejected(pool: PgPool) {
    let app = seeded(pool).await;
    let cases: [(&str, &str); 25] = [
        ("/report?domain=", "domain"),
        ("/report?account=", "account"),
        ("/report?domain=a.com&account=b@a.com", "account"),
        ("/report?domain=a.com&domain=b.com", "domain"),
        ("/report?domian=a.com", "domian"),
        ("/report?format=xml", "format"),
        ("/report?account=a%00b@example.com", "account"),
        ("/accounts?limit=0", "limit"),
        ("/accounts?limit=10001", "limit"),
        ("/accounts?limit=ten", "limit"),
        ("/accounts?limit=99999999999999999999", "limit"),
        ("/accounts?offset=-1", "offset"),
        ("/accounts?offset=1.5", "offset"),
        ("/accounts?min_percent=abc", "min_percent"),
        ("/accounts?min_percent=NaN", "min_percent"),
        ("/accounts?min_percent=inf", "min_percent"),
        ("/accounts?min_percent=-5", "min_percent"),
        ("/accounts?unlimited=yes", "unlimited"),
        ("/accounts?sort=size", "sort"),
        ("/accounts?order=up", "order"),
        ("/accounts?sort=used;DROP TABLE accounts", "sort"),
        ("/domains?threshold=x", "threshold"),
        ("/domains?sort=percent_used", "sort"),
        ("/summary?threshold=-1", "threshold"),
        ("/servers?hostname=mail.example.com", "hostname"),
    ];
    for (path, field) in cases {
        let reply = app.get(path).await;
        assert_eq!(reply.status, 400, "{path}: {}", reply.text);
        let json = reply.json();
        assert_eq!(json["success"], false, "{path}");
        assert_eq!(json["field"], field, "{path}: {}", reply.text);
    }
    assert_eq!(app.table_counts().await.2, 1, "accounts still there");
}

/// Returns every stored column of every server as JSON text, so that a
/// rejected update is seen to change nothing, password and timestamps
/// included.
async fn server_rows(app: &TestApp) -> Vec<String> {
    sqlx::query_scalar("SELECT row_to_json(s)::text FROM servers s ORDER BY id")
        .fetch_all(&app.pool)
        .await
        .unwrap()
}

#[sqlx::test(migrations = "../../migrations")]
async fn invalid_update_changes_nothing(pool: PgPool) {
    let app = seeded(pool).await;
    app.add_server("mx2", "mx2.example.net").await;
    let servers_before = server_rows(&app).await;
    let counts_before = app.table_counts().await;
    let cases: [(&str, u16, Option<&str>, &str); 14] = [
        ("{}", 400, Some("hostname"), "missing field"),
        (
            r#"{"hostname": "mx1.example.net"}"#,
            400,
            None,
            "nothing to update",
        ),
        (
            r#"{"hostname": "mx1.example.net", "name": null}"#,
            400,
            None,
            "nothing to update",
        ),
        (
            r#"{"hostname": "mx1.example.net", "new_name": "mx9"}"#,
            400,
            Some("new_name"),
            "unknown field",
        ),
        (
            r#"{"hostname": "mx1.example.net", "new_hostname": "MX2.example.net"}"#,
            409,
            Some("new_hostname"),
            "host name taken: another server has hostname \"MX2.example.net\"",
        ),
        (
            r#"{"hostname": "mx1.example.net", "new_hostname": "mail 1.example.net"}"#,
            400,
            Some("new_hostname"),
            "invalid new_hostname \"mail 1.example.net\"",
        ),
        (
            r#"{"hostname": "mx1.example.net", "cli_port": 0}"#,
            400,
            Some("cli_port"),
            "invalid cli_port 0: expected 1-65535",
        ),
        (
            r#"{"hostname": "mx1.example.net", "webadmin_port": "9443"}"#,
            400,
            Some("webadmin_port"),
            "invalid type",
        ),
        (
            r#"{"hostname": "mx1.example.net", "name": "  "}"#,
            400,
            Some("name"),
            "invalid name: it is empty",
        ),
        (
            r#"{"hostname": "mx1.example.net", "password": "pw\nQUIT"}"#,
            400,
            Some("password"),
            "line breaks",
        ),
        (
            r#"{"hostname": "mx1.example.net", "tls_verify": "no"}"#,
            400,
            Some("tls_verify"),
            "invalid type",
        ),
        (
            r#"{"hostname": "mx1.example.net", "tls_fingerprints": ["12:34:56"]}"#,
            400,
            Some("tls_fingerprints"),
            "invalid tls_fingerprints entry \"12:34:56\": expected a SHA-256 fingerprint",
        ),
        (
            r#"{"hostname": "mx1.example.net/x", "name": "mx1"}"#,
            400,
            Some("hostname"),
            "path",
        ),
        (
            r#"{"hostname": "mx7.example.net", "name": "mx7"}"#,
            404,
            Some("hostname"),
            "server not found",
        ),
    ];

    for (body, status, field, text) in cases {
        let reply = app.send_json(Method::PATCH, "/update_server", body).await;
        let label = format!("PATCH /update_server {body}");
        assert_rejected(&reply, &label, status, field, text);
        assert_eq!(server_rows(&app).await, servers_before, "{label}");
        assert_eq!(app.table_counts().await, counts_before, "{label}");
    }
}

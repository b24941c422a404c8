//! Bearer-token checks over HTTP: missing, forged, expired and
//! under-scoped tokens, public endpoints, and `--no-auth`.

mod common;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axiquota_api::{Auth, Scope, Settings};
use axiquota_core::Secret;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use reqwest::Method;
use serde_json::json;
use sqlx::PgPool;

fn sign(secret: &str, claims: serde_json::Value) -> String {
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(secret.as_bytes()),
    )
    .unwrap()
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

const PROTECTED: [(&str, &str); 7] = [
    ("GET", "/report"),
    ("GET", "/servers"),
    ("GET", "/summary"),
    ("GET", "/accounts"),
    ("GET", "/domains"),
    ("GET", "/metrics"),
    ("POST", "/add_server"),
];

#[sqlx::test(migrations = "../../migrations")]
async fn bad_tokens_unauthorized(pool: PgPool) {
    let app = common::spawn(pool).await;
    let forged = sign(
        "another-secret-of-more-than-32-bytes-0123456789",
        json!({"scope": "admin", "exp": now() + 3600}),
    );
    let expired = sign(
        common::SECRET,
        json!({"scope": "admin", "exp": now() - 3600}),
    );
    let no_exp = sign(common::SECRET, json!({"scope": "admin"}));
    let bad_scope = sign(
        common::SECRET,
        json!({"scope": "root", "exp": now() + 3600}),
    );
    let cases: [(Option<String>, &str); 7] = [
        (None, "missing bearer token"),
        (
            Some("Basic YWRtaW46YWRtaW4=".to_owned()),
            "missing bearer token",
        ),
        (Some("Bearer not-a-jwt".to_owned()), "invalid token"),
        (Some(format!("Bearer {forged}")), "signature"),
        (Some(format!("Bearer {expired}")), "token expired"),
        (
            Some(format!("Bearer {no_exp}")),
            "\"exp\" claim is required",
        ),
        (
            Some(format!("Bearer {bad_scope}")),
            "invalid scope \"root\"",
        ),
    ];
    let before = app.table_counts().await;
    for (header, text) in &cases {
        for (method, path) in PROTECTED {
            let mut request = app
                .client
                .request(method.parse().unwrap(), app.url(path))
                .header("content-type", "application/json")
                .body(r#"{"name": "n", "hostname": "h.example.com", "username": "a", "password": "p"}"#);
            if let Some(header) = header {
                request = request.header("authorization", header);
            }
            let reply = app.send(request).await;
            assert_eq!(reply.status, 401, "{method} {path} with {header:?}");
            assert_eq!(reply.headers["www-authenticate"], "Bearer");
            let message = reply.json()["message"].as_str().unwrap().to_owned();
            assert!(
                message.contains(text),
                "{method} {path}: {message:?} lacks {text:?}"
            );
        }
    }
    assert_eq!(app.table_counts().await, before, "nothing was added");
}

#[sqlx::test(migrations = "../../migrations")]
async fn read_token_cannot_change_servers(pool: PgPool) {
    let app = common::spawn(pool).await;
    app.add_server("mx1", "mx1.example.net").await;
    let before = app.table_counts().await;
    let cases = [
        (
            Method::POST,
            "/add_server",
            r#"{"name": "n", "hostname": "h.example.com", "username": "a", "password": "p"}"#,
        ),
        (
            Method::PATCH,
            "/update_server",
            r#"{"hostname": "mx1.example.net", "password": "new"}"#,
        ),
        (
            Method::DELETE,
            "/delete_server",
            r#"{"hostname": "mx1.example.net"}"#,
        ),
    ];
    for (method, path, body) in cases {
        let reply = app
            .send(
                app.client
                    .request(method.clone(), app.url(path))
                    .bearer_auth(&app.read_token)
                    .header("content-type", "application/json")
                    .body(body),
            )
            .await;
        assert_eq!(reply.status, 403, "{method} {path}: {}", reply.text);
        assert!(
            reply.json()["message"]
                .as_str()
                .unwrap()
                .contains("admin scope")
        );
    }
    assert_eq!(app.table_counts().await, before);
    let never_updated: bool = sqlx::query_scalar("SELECT updated_at = created_at FROM servers")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert!(never_updated, "the rejected update changed the server");
}

#[sqlx::test(migrations = "../../migrations")]
async fn admin_token_allowed_everywhere(pool: PgPool) {
    let app = common::spawn(pool).await;
    let added = app
        .send_json(
            Method::POST,
            "/add_server",
            r#"{"name": "n", "hostname": "h.example.com", "username": "a", "password": "p"}"#,
        )
        .await;
    assert_eq!(added.status, 201, "{}", added.text);
    for (method, path) in PROTECTED.iter().filter(|(method, _)| *method == "GET") {
        let reply = app.get_admin(path).await;
        assert_eq!(reply.status, 200, "{method} {path}: {}", reply.text);
    }
    let updated = app
        .send_json(
            Method::PATCH,
            "/update_server",
            r#"{"hostname": "h.example.com", "name": "renamed"}"#,
        )
        .await;
    assert_eq!(updated.status, 200, "{}", updated.text);
    let deleted = app
        .send_json(
            Method::DELETE,
            "/delete_server",
            r#"{"hostname": "h.example.com"}"#,
        )
        .await;
    assert_eq!(deleted.status, 200, "{}", deleted.text);
}

#[sqlx::test(migrations = "../../migrations")]
async fn public_endpoints_need_no_token(pool: PgPool) {
    let app = common::spawn(pool).await;
    for path in ["/health", "/ready", "/openapi.json", "/docs/"] {
        let reply = app.send(app.client.get(app.url(path))).await;
        assert_eq!(reply.status, 200, "{path}: {}", reply.text);
    }
}

#[sqlx::test(migrations = "../../migrations")]
async fn issued_token_round_trips(pool: PgPool) {
    let app = common::spawn(pool).await;
    let token = axiquota_api::issue_token(
        &Secret::new(common::SECRET),
        Scope::Read,
        Duration::from_secs(60),
        None,
    )
    .unwrap();
    let reply = app
        .send(app.client.get(app.url("/summary")).bearer_auth(token))
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
}

#[sqlx::test(migrations = "../../migrations")]
async fn no_auth_mode_allows_admin(pool: PgPool) {
    let app = common::spawn_with(pool, Auth::Disabled, Settings::default()).await;
    let reply = app
        .send(
            app.client
                .post(app.url("/add_server"))
                .header("content-type", "application/json")
                .body(r#"{"name": "n", "hostname": "h.example.com", "username": "a", "password": "p"}"#),
        )
        .await;
    assert_eq!(reply.status, 201, "{}", reply.text);
}

#[sqlx::test(migrations = "../../migrations")]
async fn cors_only_for_listed_origins(pool: PgPool) {
    let settings = Settings {
        cors_origins: axiquota_api::parse_cors_origins("https://reports.example.com").unwrap(),
        ..Settings::default()
    };
    let auth = Auth::jwt(&Secret::new(common::SECRET)).unwrap();
    let app = common::spawn_with(pool.clone(), auth, settings).await;
    let allowed = app
        .send(
            app.client
                .get(app.url("/health"))
                .header("origin", "https://reports.example.com"),
        )
        .await;
    assert_eq!(
        allowed.headers["access-control-allow-origin"],
        "https://reports.example.com"
    );
    let other = app
        .send(
            app.client
                .get(app.url("/health"))
                .header("origin", "https://evil.example"),
        )
        .await;
    assert!(!other.headers.contains_key("access-control-allow-origin"));

    let closed = common::spawn(pool).await;
    let reply = closed
        .send(
            closed
                .client
                .get(closed.url("/health"))
                .header("origin", "https://reports.example.com"),
        )
        .await;
    assert!(
        !reply.headers.contains_key("access-control-allow-origin"),
        "CORS is off by default"
    );
}

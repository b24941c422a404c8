//! Shared set-up of the API tests: the real router served on
//! `127.0.0.1:0` against the per-test database that `#[sqlx::test]`
//! creates, a reqwest client, tokens, and helpers that store servers,
//! snapshots and poll results through the core store.

#![allow(dead_code)]

use std::time::Duration;

use axiquota_api::{AppState, Auth, Scope, Settings};
use axiquota_core::model::{
    AccountSnapshot, DomainSnapshot, DomainStatus, NewServer, Snapshot, UsageSource,
};
use axiquota_core::store::{polls, servers, snapshot};
use axiquota_core::{Secret, Vault};
use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::PgPool;
use tokio::sync::oneshot;
use uuid::Uuid;

pub const SECRET: &str = "a-test-secret-of-more-than-32-bytes-0123456789";

/// Upper bound for any single request; tests never rely on it for timing.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(60);

pub struct TestApp {
    pub base: String,
    pub client: reqwest::Client,
    pub pool: PgPool,
    pub vault: Vault,
    pub read_token: String,
    pub admin_token: String,
    _shutdown: oneshot::Sender<()>,
}

/// A response body already read, with its status and headers.
pub struct Reply {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub text: String,
}

impl Reply {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.text)
            .unwrap_or_else(|error| panic!("body is not JSON ({error}): {}", self.text))
    }
}

fn install_crypto() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

pub fn token(scope: Scope) -> String {
    axiquota_api::issue_token(
        &Secret::new(SECRET),
        scope,
        Duration::from_secs(3600),
        Some("tests"),
    )
    .expect("sign token")
}

/// Serves the API with token authentication.
pub async fn spawn(pool: PgPool) -> TestApp {
    let auth = Auth::jwt(&Secret::new(SECRET)).expect("secret accepted");
    spawn_with(pool, auth, Settings::default()).await
}

pub async fn spawn_with(pool: PgPool, auth: Auth, settings: Settings) -> TestApp {
    install_crypto();
    let key = Vault::generate_key();
    let vault = Vault::from_keys(&key).expect("generated key");
    let state = AppState::new(pool.clone(), vault.clone(), auth, settings);

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let address = listener.local_addr().expect("local address");
    let (shutdown, stopped) = oneshot::channel::<()>();
    tokio::spawn(async move {
        axiquota_api::serve(listener, state, async {
            let _ = stopped.await;
        })
        .await
        .expect("serve");
    });

    TestApp {
        base: format!("http://{address}"),
        client: reqwest::Client::builder()
            .timeout(CLIENT_TIMEOUT)
            .build()
            .expect("client"),
        pool,
        vault,
        read_token: token(Scope::Read),
        admin_token: token(Scope::Admin),
        _shutdown: shutdown,
    }
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub async fn send(&self, request: reqwest::RequestBuilder) -> Reply {
        let response = request.send().await.expect("request sent");
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let text = response.text().await.expect("body read");
        Reply {
            status,
            headers,
            text,
        }
    }

    /// GET with the read token.
    pub async fn get(&self, path: &str) -> Reply {
        self.send(
            self.client
                .get(self.url(path))
                .bearer_auth(&self.read_token),
        )
        .await
    }

    /// GET with the admin token.
    pub async fn get_admin(&self, path: &str) -> Reply {
        self.send(
            self.client
                .get(self.url(path))
                .bearer_auth(&self.admin_token),
        )
        .await
    }

    /// Sends a raw JSON body with the admin token.
    pub async fn send_json(&self, method: reqwest::Method, path: &str, body: &str) -> Reply {
        self.send(
            self.client
                .request(method, self.url(path))
                .bearer_auth(&self.admin_token)
                .header("content-type", "application/json")
                .body(body.to_owned()),
        )
        .await
    }

    /// Registers a server through the store and returns its id.
    pub async fn add_server(&self, name: &str, hostname: &str) -> Uuid {
        let server = NewServer {
            name: name.to_owned(),
            hostname: hostname.to_owned(),
            cli_port: 7000,
            webadmin_port: 9000,
            username: "admin".to_owned(),
            password: Secret::new("server-password"),
            cli_tls: false,
            tls_verify: true,
            tls_fingerprints: Vec::new(),
            webadmin_enabled: true,
            webadmin_allow_http: false,
        };
        servers::insert(&self.pool, &self.vault, &server)
            .await
            .expect("insert server")
            .id
    }

    /// Stores a snapshot for a server in one transaction.
    pub async fn store_snapshot(
        &self,
        server_id: Uuid,
        collected_at: DateTime<Utc>,
        domains: Vec<DomainSnapshot>,
    ) {
        let snapshot = Snapshot {
            collected_at,
            domains,
            skipped: Vec::new(),
            webadmin_error: None,
            sent_ahead_dropped: false,
        };
        let mut transaction = self.pool.begin().await.expect("begin");
        snapshot::replace_snapshot(&mut transaction, server_id, &snapshot)
            .await
            .expect("replace snapshot");
        transaction.commit().await.expect("commit");
    }

    /// Records one poll result of a server in a new run.
    pub async fn record_poll(
        &self,
        server_id: Uuid,
        hostname: &str,
        status: polls::PollStatus,
        error: Option<&str>,
        started_at: DateTime<Utc>,
    ) {
        let run_id = polls::start_run(&self.pool, "test-host", false, 1)
            .await
            .expect("start run");
        let result = polls::PollResult {
            server_id,
            hostname: hostname.to_owned(),
            status,
            error: error.map(str::to_owned),
            started_at,
            duration_ms: 1234,
            domains: 1,
            accounts: 1,
            skipped: Vec::new(),
            usage_source: Some("webadmin"),
            webadmin_error: None,
            sent_ahead_dropped: false,
        };
        let mut connection = self.pool.acquire().await.expect("acquire");
        polls::record_result(&mut connection, run_id, &result)
            .await
            .expect("record result");
    }

    /// Row counts of the tables that user input could change.
    pub async fn table_counts(&self) -> (i64, i64, i64) {
        sqlx::query_as(
            "SELECT (SELECT count(*) FROM servers), (SELECT count(*) FROM domains), \
             (SELECT count(*) FROM accounts)",
        )
        .fetch_one(&self.pool)
        .await
        .expect("count rows")
    }
}

pub fn account(name: &str, quota_kb: Option<i64>, used_kb: i64) -> AccountSnapshot {
    AccountSnapshot {
        name: name.to_owned(),
        quota_kb,
        used_kb,
        message_count: Some(7),
        usage_source: UsageSource::Webadmin,
    }
}

pub fn domain(name: &str, accounts: Vec<AccountSnapshot>) -> DomainSnapshot {
    DomainSnapshot {
        name: name.to_owned(),
        status: DomainStatus::Enabled,
        accounts,
    }
}

/// A fixed collection time, so that expected JSON is exact.
pub fn collected_at() -> DateTime<Utc> {
    "2026-12-04T19:00:00Z".parse().expect("timestamp")
}

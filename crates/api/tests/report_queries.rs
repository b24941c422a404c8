//! The full `/report` runs a fixed number of SQL statements, whatever the
//! number of servers, domains and accounts. A proxy between the API and
//! PostgreSQL counts the statements the API sends.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use axiquota_api::{Auth, Settings};
use axiquota_core::Secret;
use chrono::Utc;
use common::{SECRET, account, domain};
use sqlx::PgPool;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions, PgSslMode};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Counts the statements that clients send through it: PostgreSQL's
/// simple-query (`Q`) and extended-protocol execute (`E`) messages.
struct CountingProxy {
    port: u16,
    statements: Arc<AtomicUsize>,
}

impl CountingProxy {
    async fn start(server_host: String, server_port: u16) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let statements = Arc::new(AtomicUsize::new(0));
        let counter = statements.clone();
        tokio::spawn(async move {
            loop {
                let Ok((client, _)) = listener.accept().await else {
                    return;
                };
                let server = TcpStream::connect((server_host.as_str(), server_port))
                    .await
                    .unwrap();
                tokio::spawn(relay(client, server, counter.clone()));
            }
        });
        Self { port, statements }
    }

    fn count(&self) -> usize {
        self.statements.load(Ordering::SeqCst)
    }
}

/// Relays one connection, counting statements in the client's messages.
async fn relay(client: TcpStream, server: TcpStream, statements: Arc<AtomicUsize>) {
    let (mut client_read, mut client_write) = client.into_split();
    let (mut server_read, mut server_write) = server.into_split();
    tokio::spawn(async move {
        let _ = tokio::io::copy(&mut server_read, &mut client_write).await;
    });

    // The start-up message has no type byte: a length, then the rest.
    let mut length = [0u8; 4];
    if client_read.read_exact(&mut length).await.is_err() {
        return;
    }
    let mut startup = vec![0u8; (u32::from_be_bytes(length) as usize).saturating_sub(4)];
    if client_read.read_exact(&mut startup).await.is_err() {
        return;
    }
    if server_write.write_all(&length).await.is_err()
        || server_write.write_all(&startup).await.is_err()
    {
        return;
    }

    // Every later message is a type byte, a length that counts itself, and
    // the payload.
    loop {
        let mut header = [0u8; 5];
        if client_read.read_exact(&mut header).await.is_err() {
            return;
        }
        if header[0] == b'Q' || header[0] == b'E' {
            statements.fetch_add(1, Ordering::SeqCst);
        }
        let length = u32::from_be_bytes([header[1], header[2], header[3], header[4]]) as usize;
        let mut payload = vec![0u8; length.saturating_sub(4)];
        if client_read.read_exact(&mut payload).await.is_err() {
            return;
        }
        if server_write.write_all(&header).await.is_err()
            || server_write.write_all(&payload).await.is_err()
        {
            return;
        }
    }
}

/// Opens a pool to the test database through the proxy, without TLS so that
/// the proxy can read the messages.
async fn pool_through(proxy: &CountingProxy, direct: &PgPool) -> PgPool {
    let options: PgConnectOptions = (*direct.connect_options())
        .clone()
        .host("127.0.0.1")
        .port(proxy.port)
        .ssl_mode(PgSslMode::Disable);
    PgPoolOptions::new()
        .max_connections(2)
        .connect_with(options)
        .await
        .unwrap()
}

/// Fetches the whole report and returns the number of statements it ran,
/// checking that it lists `servers` servers and `accounts` accounts.
async fn count_report_statements(
    app: &common::TestApp,
    proxy: &CountingProxy,
    servers: usize,
    accounts: usize,
) -> usize {
    // A first request opens the pool's connections, whose set-up sends
    // statements of its own; the second one is measured.
    assert_eq!(app.get("/report").await.status, 200);
    let before = proxy.count();
    let reply = app.get("/report").await;
    let after = proxy.count();
    assert_eq!(reply.status, 200);

    let body = reply.json();
    let listed = body["servers"].as_array().unwrap();
    assert_eq!(listed.len(), servers);
    let account_total: usize = listed
        .iter()
        .flat_map(|server| server["domains"].as_array().unwrap())
        .map(|domain| domain["accounts"].as_array().unwrap().len())
        .sum();
    assert_eq!(account_total, accounts);
    after - before
}

#[sqlx::test(migrations = "../../migrations")]
async fn full_report_statement_count_is_fixed(pool: PgPool) {
    let host = pool.connect_options().get_host().to_owned();
    let port = pool.connect_options().get_port();
    let proxy = CountingProxy::start(host, port).await;
    let proxied = pool_through(&proxy, &pool).await;
    let auth = Auth::jwt(&Secret::new(SECRET)).unwrap();
    let app = common::spawn_with(proxied, auth, Settings::default()).await;

    let first = app.add_server("mx1", "mx1.example.net").await;
    app.store_snapshot(
        first,
        Utc::now(),
        vec![domain(
            "one.example",
            vec![account("alice", Some(1024), 10)],
        )],
    )
    .await;
    let small = count_report_statements(&app, &proxy, 1, 1).await;

    for index in 2..=4 {
        let id = app
            .add_server(&format!("mx{index}"), &format!("mx{index}.example.net"))
            .await;
        let domains = (0..5)
            .map(|number| {
                let accounts = (0..20)
                    .map(|user| account(&format!("user{user}"), Some(2048), user))
                    .collect();
                domain(&format!("d{number}.mx{index}.example"), accounts)
            })
            .collect();
        app.store_snapshot(id, Utc::now(), domains).await;
    }
    let large = count_report_statements(&app, &proxy, 4, 1 + 3 * 5 * 20).await;

    assert_eq!(
        small, large,
        "statements grew with the number of servers and domains"
    );
    assert_eq!(small, 1, "the full report ran {small} statements");
}

//! The full report and one domain's report with many accounts: complete
//! content, in order, sent as a stream of chunks.
//!
//! Query count, by design: the full report is one statement
//! (`store::report::stream_full_report`, a join of servers, domains and
//! accounts ordered by server, domain and local part) whatever the number
//! of servers, domains and accounts; `?server=` adds one lookup so that an
//! unknown host name answers 404. The handler loops only over the rows of
//! that one statement, so no per-server or per-domain query exists to grow.
//! `report_queries.rs` counts the statements on the wire.

mod common;

use axiquota_core::model::AccountSnapshot;
use common::{account, collected_at, domain};
use futures::StreamExt;
use serde_json::Value;
use sqlx::PgPool;

const SERVERS: usize = 3;
const DOMAINS: usize = 20;
const ACCOUNTS: usize = 250;

fn quota_of(server: usize, domain: usize, account: usize) -> Option<i64> {
    // Every seventh account is unlimited.
    (account % 7 != 0).then(|| ((server + 1) * 1_000_000 + domain * 1000 + account) as i64)
}

fn used_of(server: usize, domain: usize, account: usize) -> i64 {
    (server * 100_000 + domain * 1000 + account * 3) as i64
}

/// Reads a JSON report that must arrive streamed, without a length up
/// front, and returns it with the number of chunks it came in.
async fn get_streamed(app: &common::TestApp, path: &str) -> (Value, usize) {
    let response = app
        .client
        .get(app.url(path))
        .bearer_auth(&app.read_token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert!(
        response.headers().get("content-length").is_none(),
        "a streamed body has no length up front"
    );
    let mut chunks = 0;
    let mut body = Vec::new();
    let mut stream = response.bytes_stream();
    while let Some(chunk) = stream.next().await {
        body.extend_from_slice(&chunk.unwrap());
        chunks += 1;
    }
    let report = serde_json::from_slice(&body).expect("complete JSON");
    (report, chunks)
}

#[sqlx::test(migrations = "../../migrations")]
async fn full_report_streams_every_account(pool: PgPool) {
    let app = common::spawn(pool).await;
    for server in 0..SERVERS {
        let id = app
            .add_server(&format!("mx{server}"), &format!("mx{server}.example.net"))
            .await;
        let domains = (0..DOMAINS)
            .map(|d| {
                let accounts: Vec<AccountSnapshot> = (0..ACCOUNTS)
                    .map(|a| {
                        account(
                            &format!("user{a:04}"),
                            quota_of(server, d, a),
                            used_of(server, d, a),
                        )
                    })
                    .collect();
                domain(&format!("d{d:02}.example.org"), accounts)
            })
            .collect();
        app.store_snapshot(id, collected_at(), domains).await;
    }

    let (report, chunks) = get_streamed(&app, "/report").await;
    assert!(chunks > 10, "expected many chunks, got {chunks}");

    let servers = report["servers"].as_array().unwrap();
    assert_eq!(servers.len(), SERVERS);
    let mut seen = 0;
    for (s, server) in servers.iter().enumerate() {
        assert_eq!(server["hostname"], format!("mx{s}.example.net"));
        let domains = server["domains"].as_array().unwrap();
        assert_eq!(domains.len(), DOMAINS);
        for (d, domain) in domains.iter().enumerate() {
            assert_eq!(domain["name"], format!("d{d:02}.example.org"));
            assert_eq!(domain["total_accounts"], ACCOUNTS);
            let accounts = domain["accounts"].as_array().unwrap();
            assert_eq!(accounts.len(), ACCOUNTS);
            for (a, account) in accounts.iter().enumerate() {
                let quota = quota_of(s, d, a);
                let used = used_of(s, d, a);
                assert_eq!(account["email"], format!("user{a:04}@d{d:02}.example.org"));
                assert_eq!(account["quota_kb"], serde_json::to_value(quota).unwrap());
                assert_eq!(account["used_kb"], used);
                assert_eq!(account["used_mb"], used / 1024);
                assert_eq!(
                    account["assigned_mb"],
                    serde_json::to_value(quota.map(|q| q / 1024)).unwrap()
                );
                assert_eq!(account["collected_at"], "2026-12-04T19:00:00Z");
                seen += 1;
            }
        }
    }
    assert_eq!(seen, SERVERS * DOMAINS * ACCOUNTS);

    // The CSV form streams the same rows.
    let csv = app.get("/report?format=csv").await;
    assert_eq!(csv.text.lines().count(), 1 + SERVERS * DOMAINS * ACCOUNTS);
}

#[sqlx::test(migrations = "../../migrations")]
async fn domain_report_streams_every_account(pool: PgPool) {
    const DOMAIN_ACCOUNTS: usize = 2_000;
    let app = common::spawn(pool).await;
    let id = app.add_server("mx0", "mx0.example.net").await;
    let accounts: Vec<AccountSnapshot> = (0..DOMAIN_ACCOUNTS)
        .map(|a| account(&format!("user{a:04}"), quota_of(0, 0, a), used_of(0, 0, a)))
        .collect();
    let domains = vec![
        domain("big.example.org", accounts),
        domain("other.example.org", vec![account("solo", None, 1)]),
    ];
    app.store_snapshot(id, collected_at(), domains).await;

    let (report, chunks) = get_streamed(&app, "/report?domain=big.example.org").await;
    assert!(chunks > 1, "expected several chunks, got {chunks}");

    assert_eq!(report["name"], "big.example.org");
    assert_eq!(report["status"], "enabled");
    assert_eq!(report["server_name"], "mx0");
    assert_eq!(report["server_hostname"], "mx0.example.net");
    assert_eq!(report["collected_at"], "2026-12-04T19:00:00Z");
    assert_eq!(report["total_accounts"], DOMAIN_ACCOUNTS);
    let accounts = report["accounts"].as_array().unwrap();
    assert_eq!(accounts.len(), DOMAIN_ACCOUNTS);
    for (a, account) in accounts.iter().enumerate() {
        assert_eq!(account["email"], format!("user{a:04}@big.example.org"));
        assert_eq!(
            account["quota_kb"],
            serde_json::to_value(quota_of(0, 0, a)).unwrap()
        );
        assert_eq!(account["used_kb"], used_of(0, 0, a));
        assert!(account.get("server_hostname").is_none());
    }

    // The CSV form streams the same rows and only this domain's.
    let csv = app.get("/report?domain=big.example.org&format=csv").await;
    assert_eq!(csv.status, 200);
    assert_eq!(csv.text.lines().count(), 1 + DOMAIN_ACCOUNTS);
    assert!(!csv.text.contains("other.example.org"));
}

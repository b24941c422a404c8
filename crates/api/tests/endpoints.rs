//! Every endpoint over HTTP against a fresh database, including the
//! response shapes kept from the earlier implementation, field by field.

mod common;

use axiquota_core::model::SkippedItem;
use axiquota_core::store::polls::{self, PollStatus};
use chrono::Utc;
use common::{TestApp, account, collected_at, domain};
use reqwest::Method;
use serde_json::{Value, json};
use sqlx::PgPool;

/// Two polled servers that share the domain `shared.org`, and one server
/// that has never been polled.
async fn seed(app: &TestApp) {
    let mx1 = app.add_server("mx1", "mx1.example.net").await;
    let mx2 = app.add_server("mx2", "mx2.example.net").await;
    app.add_server("mx3", "mx3.example.net").await;
    app.store_snapshot(
        mx1,
        collected_at(),
        vec![
            domain(
                "Example.com",
                vec![
                    account("alice", Some(1_048_576), 733_184),
                    account("Bob", None, 500),
                    account("carol", Some(2048), 3072),
                ],
            ),
            domain("shared.org", vec![account("dave", Some(10_240), 0)]),
        ],
    )
    .await;
    app.store_snapshot(
        mx2,
        collected_at(),
        vec![
            domain("shared.org", vec![account("dave", Some(20_480), 10_240)]),
            domain("empty.org", vec![]),
        ],
    )
    .await;
    app.record_poll(mx1, "mx1.example.net", PollStatus::Ok, None, collected_at())
        .await;
    app.record_poll(
        mx2,
        "mx2.example.net",
        PollStatus::Failed,
        Some("mx2.example.net: connection refused"),
        collected_at() + chrono::Duration::hours(1),
    )
    .await;
}

async fn seeded(pool: PgPool) -> TestApp {
    let app = common::spawn(pool).await;
    seed(&app).await;
    app
}

#[sqlx::test(migrations = "../../migrations")]
async fn report_account_compatible_shape(pool: PgPool) {
    let app = seeded(pool).await;
    let reply = app.get("/report?account=ALICE@EXAMPLE.COM").await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(
        reply.json(),
        json!({
            "email": "alice@Example.com",
            "local_part": "alice",
            "domain": "Example.com",
            "assigned_mb": 1024,
            "used_mb": 716,
            "free_mb": 308,
            "status": null,
            "quota_kb": 1_048_576,
            "used_kb": 733_184,
            "usage_percent": 69.92,
            "message_count": 7,
            "usage_source": "webadmin",
            "collected_at": "2026-12-04T19:00:00Z",
            "server_name": "mx1",
            "server_hostname": "mx1.example.net"
        })
    );
}

#[sqlx::test(migrations = "../../migrations")]
async fn report_account_unlimited_and_over_quota(pool: PgPool) {
    let app = seeded(pool).await;
    let bob = app.get("/report?account=bob@example.com").await.json();
    assert_eq!(bob["assigned_mb"], Value::Null);
    assert_eq!(bob["free_mb"], Value::Null);
    assert_eq!(bob["quota_kb"], Value::Null);
    assert_eq!(bob["usage_percent"], Value::Null);
    assert_eq!(bob["used_mb"], 0, "500 KB floors to 0 MB, not null");
    assert_eq!(bob["used_kb"], 500);
    assert_eq!(bob["local_part"], "Bob");

    let carol = app.get("/report?account=carol@example.com").await.json();
    assert_eq!(carol["assigned_mb"], 2);
    assert_eq!(carol["used_mb"], 3);
    assert_eq!(carol["free_mb"], -1);
    assert_eq!(carol["usage_percent"], 150.0);
}

#[sqlx::test(migrations = "../../migrations")]
async fn report_domain_compatible_shape(pool: PgPool) {
    let app = seeded(pool).await;
    let reply = app.get("/report?domain=EXAMPLE.com").await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    let body = reply.json();
    assert_eq!(body["name"], "Example.com");
    assert_eq!(body["status"], "enabled");
    assert_eq!(body["total_accounts"], 3);
    assert_eq!(body["collected_at"], "2026-12-04T19:00:00Z");
    assert_eq!(body["server_hostname"], "mx1.example.net");
    let emails: Vec<&str> = body["accounts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|account| account["email"].as_str().unwrap())
        .collect();
    assert_eq!(
        emails,
        ["alice@Example.com", "Bob@Example.com", "carol@Example.com"]
    );
    let alice = &body["accounts"][0];
    assert_eq!(alice["assigned_mb"], 1024);
    assert_eq!(alice["used_mb"], 716);
    assert_eq!(alice["free_mb"], 308);
    assert_eq!(alice["status"], Value::Null);
    assert!(alice.get("server_hostname").is_none());
}

#[sqlx::test(migrations = "../../migrations")]
async fn report_full_compatible_shape(pool: PgPool) {
    let app = seeded(pool).await;
    let reply = app.get("/report").await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(
        reply.headers["content-type"], "application/json",
        "streamed JSON is labelled as JSON"
    );
    let body = reply.json();
    assert!(body["generated_at"].as_str().unwrap().ends_with('Z'));
    let servers = body["servers"].as_array().unwrap();
    assert_eq!(servers.len(), 3);

    let mx1 = &servers[0];
    let mut keys: Vec<&str> = mx1
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        [
            "cli_port",
            "collected_at",
            "domains",
            "hostname",
            "name",
            "webadmin_port"
        ]
    );
    assert_eq!(mx1["name"], "mx1");
    assert_eq!(mx1["hostname"], "mx1.example.net");
    assert_eq!(mx1["cli_port"], 7000);
    assert_eq!(mx1["webadmin_port"], 9000);
    assert_eq!(mx1["collected_at"], "2026-12-04T19:00:00Z");
    assert!(
        mx1.get("username").is_none(),
        "the report never shows the admin user"
    );

    let domains = mx1["domains"].as_array().unwrap();
    assert_eq!(domains.len(), 2);
    assert_eq!(domains[0]["name"], "Example.com");
    assert_eq!(domains[0]["status"], "enabled");
    assert_eq!(domains[0]["total_accounts"], 3);
    assert_eq!(domains[0]["accounts"][0]["email"], "alice@Example.com");
    assert_eq!(domains[0]["accounts"][0]["free_mb"], 308);
    assert_eq!(domains[1]["name"], "shared.org");

    let mx2_domains = servers[1]["domains"].as_array().unwrap();
    assert_eq!(mx2_domains[0]["name"], "empty.org");
    assert_eq!(mx2_domains[0]["total_accounts"], 0);
    assert_eq!(mx2_domains[0]["accounts"], json!([]));

    assert_eq!(servers[2]["name"], "mx3");
    assert_eq!(servers[2]["domains"], json!([]));
    assert_eq!(servers[2]["collected_at"], Value::Null);
}

#[sqlx::test(migrations = "../../migrations")]
async fn report_full_filtered_by_server(pool: PgPool) {
    let app = seeded(pool).await;
    let body = app.get("/report?server=MX2.example.net").await.json();
    let servers = body["servers"].as_array().unwrap();
    assert_eq!(servers.len(), 1);
    assert_eq!(servers[0]["hostname"], "mx2.example.net");
}

#[sqlx::test(migrations = "../../migrations")]
async fn report_ambiguous_name_conflicts(pool: PgPool) {
    let app = seeded(pool).await;
    for path in [
        "/report?domain=shared.org",
        "/report?account=dave@shared.org",
    ] {
        let reply = app.get(path).await;
        assert_eq!(reply.status, 409, "{path}: {}", reply.text);
        let body = reply.json();
        assert_eq!(body["success"], false);
        assert_eq!(body["field"], "server");
        assert_eq!(
            body["servers"],
            json!([
                {"name": "mx1", "hostname": "mx1.example.net"},
                {"name": "mx2", "hostname": "mx2.example.net"}
            ])
        );
        assert!(body["message"].as_str().unwrap().contains("?server="));
    }

    let picked = app
        .get("/report?account=dave@shared.org&server=mx2.example.net")
        .await;
    assert_eq!(picked.status, 200, "{}", picked.text);
    assert_eq!(picked.json()["quota_kb"], 20_480);

    let picked = app
        .get("/report?domain=shared.org&server=MX1.EXAMPLE.NET")
        .await;
    assert_eq!(picked.status, 200, "{}", picked.text);
    assert_eq!(picked.json()["accounts"][0]["quota_kb"], 10_240);
}

#[sqlx::test(migrations = "../../migrations")]
async fn report_unknown_names_not_found(pool: PgPool) {
    let app = seeded(pool).await;
    let cases = [
        ("/report?account=nobody@example.com", "account"),
        ("/report?domain=nowhere.org", "domain"),
        ("/report?domain=shared.org&server=mx9.example.net", "server"),
        ("/report?server=mx9.example.net", "server"),
        ("/accounts?server=mx9.example.net", "server"),
        ("/domains?server=mx9.example.net&format=csv", "server"),
        // A LIKE wildcard is a plain character in exact lookups.
        ("/report?account=al%25@example.com", "account"),
        ("/report?domain=%25", "domain"),
    ];
    for (path, field) in cases {
        let reply = app.get(path).await;
        assert_eq!(reply.status, 404, "{path}: {}", reply.text);
        assert_eq!(reply.json()["field"], field, "{path}");
        assert_eq!(reply.json()["success"], false, "{path}");
    }
}

#[sqlx::test(migrations = "../../migrations")]
async fn add_server_created_with_defaults(pool: PgPool) {
    let app = common::spawn(pool).await;
    let reply = app
        .send_json(
            Method::POST,
            "/add_server",
            r#"{"name": "mx1", "hostname": "mx1.example.net", "username": "admin",
                "password": "s3cret pass"}"#,
        )
        .await;
    assert_eq!(reply.status, 201, "{}", reply.text);
    let body = reply.json();
    assert_eq!(body["success"], true);
    assert_eq!(body["message"], "server mx1 (mx1.example.net) added");
    let server = &body["server"];
    assert_eq!(server["name"], "mx1");
    assert_eq!(server["hostname"], "mx1.example.net");
    assert_eq!(server["cli_port"], 7000);
    assert_eq!(server["webadmin_port"], 9000);
    assert_eq!(server["username"], "admin");
    assert_eq!(server["cli_tls"], false);
    assert_eq!(server["tls_verify"], true);
    assert_eq!(server["webadmin_enabled"], true);
    assert_eq!(server["webadmin_allow_http"], false);
    assert_eq!(server["tls_fingerprints"], json!([]));
    assert_eq!(server["last_poll"], Value::Null);
    assert!(
        !reply.text.contains("s3cret"),
        "the password is never returned"
    );

    let stored: (String, i32, bool) = sqlx::query_as(
        "SELECT password_encrypted, cli_port, tls_verify FROM servers WHERE hostname = 'mx1.example.net'",
    )
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert!(
        !stored.0.contains("s3cret"),
        "the password is stored encrypted"
    );
    assert_eq!(
        app.vault.decrypt(&stored.0).unwrap().expose(),
        "s3cret pass"
    );
    assert_eq!(stored.1, 7000);
    assert!(stored.2);
}

#[sqlx::test(migrations = "../../migrations")]
async fn add_server_accepts_every_option(pool: PgPool) {
    let app = common::spawn(pool).await;
    let reply = app
        .send_json(
            Method::POST,
            "/add_server/",
            r#"{"name": "Main", "hostname": "192.0.2.10", "cli_port": 7001,
                "webadmin_port": 9443, "username": "admin", "password": "pw",
                "cli_tls": true, "tls_verify": false, "webadmin_enabled": false,
                "webadmin_allow_http": true,
                "tls_fingerprints": [
                  "sha256 Fingerprint=3F:0A:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF:00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:9C",
                  "3f0a112233445566778899aabbccddeeff00112233445566778899aabbccdd9c",
                  "  AB 0A 11 22 33 44 55 66 77 88 99 AA BB CC DD EE FF 00 11 22 33 44 55 66 77 88 99 AA BB CC DD 9C "
                ]}"#,
        )
        .await;
    assert_eq!(reply.status, 201, "{}", reply.text);
    let server = &reply.json()["server"];
    assert_eq!(server["hostname"], "192.0.2.10");
    assert_eq!(
        server["tls_fingerprints"],
        json!([
            "3f0a112233445566778899aabbccddeeff00112233445566778899aabbccdd9c",
            "ab0a112233445566778899aabbccddeeff00112233445566778899aabbccdd9c"
        ]),
        "normalized, without repeats"
    );
    assert_eq!(server["cli_port"], 7001);
    assert_eq!(server["webadmin_port"], 9443);
    assert_eq!(server["cli_tls"], true);
    assert_eq!(server["tls_verify"], false);
    assert_eq!(server["webadmin_enabled"], false);
    assert_eq!(server["webadmin_allow_http"], true);
}

#[sqlx::test(migrations = "../../migrations")]
async fn delete_server_removes_snapshot(pool: PgPool) {
    let app = seeded(pool).await;
    let reply = app
        .send_json(
            Method::DELETE,
            "/delete_server",
            r#"{"hostname": "MX1.example.net"}"#,
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    let body = reply.json();
    assert_eq!(body["success"], true);
    assert_eq!(
        body["message"],
        "server mx1 (mx1.example.net) deleted with its snapshot and poll history"
    );
    assert_eq!(body.as_object().unwrap().len(), 2);

    let (servers, domains, accounts) = app.table_counts().await;
    assert_eq!(servers, 2);
    assert_eq!(domains, 2, "only mx2's domains remain");
    assert_eq!(accounts, 1);
    let gone = app.get("/report?account=alice@example.com").await;
    assert_eq!(gone.status, 404);

    let again = app
        .send_json(
            Method::DELETE,
            "/delete_server",
            r#"{"hostname": "mx1.example.net"}"#,
        )
        .await;
    assert_eq!(again.status, 404, "{}", again.text);
    assert_eq!(again.json()["field"], "hostname");
}

#[sqlx::test(migrations = "../../migrations")]
async fn servers_list_shows_poll_outcome(pool: PgPool) {
    let app = seeded(pool).await;
    let reply = app.get("/servers").await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    let body = reply.json();
    let servers = body["servers"].as_array().unwrap();
    assert_eq!(servers.len(), 3);
    assert!(
        servers
            .iter()
            .all(|server| server.get("username").is_none()),
        "a read token never sees the admin user"
    );
    assert!(!reply.text.contains("password"));

    let mx1 = &servers[0];
    assert_eq!(mx1["hostname"], "mx1.example.net");
    assert_eq!(mx1["last_poll"]["status"], "ok");
    assert_eq!(mx1["last_poll"]["started_at"], "2026-12-04T19:00:00Z");
    assert_eq!(mx1["last_poll"]["duration_ms"], 1234);
    assert_eq!(mx1["last_success_at"], "2026-12-04T19:00:00Z");
    assert_eq!(mx1["collected_at"], "2026-12-04T19:00:00Z");
    assert_eq!(mx1["domains"], 2);
    assert_eq!(mx1["accounts"], 4);
    assert_eq!(mx1["used_kb"], 733_184 + 500 + 3072);

    let mx2 = &servers[1];
    assert_eq!(mx2["last_poll"]["status"], "failed");
    assert_eq!(
        mx2["last_poll"]["error"],
        "mx2.example.net: connection refused"
    );
    assert_eq!(mx2["last_success_at"], Value::Null);

    assert_eq!(servers[2]["last_poll"], Value::Null);
    assert_eq!(servers[2]["collected_at"], Value::Null);

    let admin = app.get_admin("/servers").await.json();
    assert_eq!(admin["servers"][0]["username"], "admin");
}

#[sqlx::test(migrations = "../../migrations")]
async fn servers_list_shows_skipped_items(pool: PgPool) {
    let app = common::spawn(pool).await;
    let id = app.add_server("mx1", "mx1.example.net").await;
    let run_id = polls::start_run(&app.pool, "test-host", false, 1)
        .await
        .unwrap();
    let result = polls::PollResult {
        server_id: id,
        hostname: "mx1.example.net".to_owned(),
        status: polls::PollStatus::Ok,
        error: None,
        started_at: Utc::now(),
        duration_ms: 10,
        domains: 1,
        accounts: 0,
        skipped: vec![
            SkippedItem {
                domain: "example.com".to_owned(),
                account: Some("gone".to_owned()),
                reason: "UPDATE Account was rejected: -ERR: no such account".to_owned(),
            },
            SkippedItem {
                domain: "old.example".to_owned(),
                account: None,
                reason: "UPDATE Domain was rejected".to_owned(),
            },
        ],
        usage_source: Some("none"),
        webadmin_error: None,
        sent_ahead_dropped: false,
    };
    let mut connection = app.pool.acquire().await.unwrap();
    polls::record_result(&mut connection, run_id, &result)
        .await
        .unwrap();

    let body = app.get("/servers").await.json();
    let skipped = &body["servers"][0]["last_poll"]["skipped"];
    assert_eq!(
        skipped,
        &json!([
            {"domain": "example.com", "account": "gone",
             "reason": "UPDATE Account was rejected: -ERR: no such account"},
            {"domain": "old.example", "account": null, "reason": "UPDATE Domain was rejected"},
        ])
    );
}

#[sqlx::test(migrations = "../../migrations")]
async fn accounts_listing_filters_sorts_pages(pool: PgPool) {
    let app = seeded(pool).await;

    let all = app.get("/accounts").await.json();
    assert_eq!(all["total"], 5);
    assert_eq!(all["limit"], 100);
    assert_eq!(all["offset"], 0);
    let order: Vec<(&str, &str)> = all["accounts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            (
                a["email"].as_str().unwrap(),
                a["server_hostname"].as_str().unwrap(),
            )
        })
        .collect();
    // Default: percent used, highest first, unlimited last.
    assert_eq!(
        order,
        [
            ("carol@Example.com", "mx1.example.net"),
            ("alice@Example.com", "mx1.example.net"),
            ("dave@shared.org", "mx2.example.net"),
            ("dave@shared.org", "mx1.example.net"),
            ("Bob@Example.com", "mx1.example.net"),
        ]
    );

    let page = app
        .get("/accounts?sort=address&order=asc&limit=2&offset=1")
        .await
        .json();
    assert_eq!(page["total"], 5);
    let emails: Vec<&str> = page["accounts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["email"].as_str().unwrap())
        .collect();
    assert_eq!(emails, ["Bob@Example.com", "carol@Example.com"]);

    let cases: [(&str, i64); 10] = [
        ("/accounts?server=MX2.example.net", 1),
        ("/accounts?domain=example.COM", 3),
        ("/accounts?address=DAVE@shared.org", 2),
        ("/accounts?q=CAR", 1),
        ("/accounts?q=AR", 3),
        ("/accounts?q=%25", 0),
        ("/accounts?min_percent=50", 3),
        ("/accounts?min_percent=100", 1),
        ("/accounts?unlimited=true", 1),
        ("/accounts?unlimited=false&domain=example.com", 2),
    ];
    for (path, total) in cases {
        let reply = app.get(path).await;
        assert_eq!(reply.status, 200, "{path}: {}", reply.text);
        assert_eq!(reply.json()["total"], total, "{path}");
    }

    let by_used = app.get("/accounts?sort=used&limit=1").await.json();
    assert_eq!(by_used["accounts"][0]["email"], "alice@Example.com");
    let by_quota = app
        .get("/accounts?sort=quota&order=desc&limit=1")
        .await
        .json();
    assert_eq!(by_quota["accounts"][0]["email"], "Bob@Example.com");
    let past_end = app.get("/accounts?offset=50").await.json();
    assert_eq!(past_end["total"], 5);
    assert_eq!(past_end["accounts"], json!([]));
}

#[sqlx::test(migrations = "../../migrations")]
async fn domains_aggregates(pool: PgPool) {
    let app = seeded(pool).await;
    let reply = app.get("/domains?threshold=60").await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    let body = reply.json();
    assert_eq!(body["total"], 4);
    let domains = body["domains"].as_array().unwrap();
    let names: Vec<(&str, &str)> = domains
        .iter()
        .map(|d| {
            (
                d["name"].as_str().unwrap(),
                d["server_hostname"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        names,
        [
            ("empty.org", "mx2.example.net"),
            ("Example.com", "mx1.example.net"),
            ("shared.org", "mx1.example.net"),
            ("shared.org", "mx2.example.net"),
        ]
    );
    let example = &domains[1];
    assert_eq!(example["accounts"], 3);
    assert_eq!(example["used_kb"], 733_184 + 500 + 3072);
    assert_eq!(example["used_mb"], (733_184 + 500 + 3072) / 1024);
    assert_eq!(example["allocated_kb"], 1_048_576 + 2048);
    assert_eq!(example["unlimited_accounts"], 1);
    assert_eq!(example["accounts_over_threshold"], 2);
    assert_eq!(example["threshold_percent"], 60.0);
    assert_eq!(example["collected_at"], "2026-12-04T19:00:00Z");
    assert_eq!(domains[0]["accounts"], 0);
    assert_eq!(domains[0]["used_kb"], 0);

    let sorted = app.get("/domains?sort=used&limit=1").await.json();
    assert_eq!(sorted["total"], 4);
    assert_eq!(sorted["domains"][0]["name"], "Example.com");
    let one = app
        .get("/domains?server=mx2.example.net&domain=SHARED.org")
        .await
        .json();
    assert_eq!(one["total"], 1);
    assert_eq!(one["domains"][0]["accounts_over_threshold"], 0);
}

#[sqlx::test(migrations = "../../migrations")]
async fn summary_totals(pool: PgPool) {
    let app = seeded(pool).await;
    let reply = app.get("/summary").await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    let body = reply.json();
    assert_eq!(body["servers"], 3);
    assert_eq!(body["servers_with_snapshot"], 2);
    assert_eq!(body["servers_failing"], 1);
    assert_eq!(body["domains"], 4);
    assert_eq!(body["accounts"], 5);
    assert_eq!(body["used_kb"], 733_184 + 500 + 3072 + 10_240);
    assert_eq!(body["allocated_kb"], 1_048_576 + 2048 + 10_240 + 20_480);
    assert_eq!(body["unlimited_accounts"], 1);
    assert_eq!(
        body["accounts_over_threshold"], 1,
        "only carol is at 90% or more"
    );
    assert_eq!(body["threshold_percent"], 90.0);
    assert_eq!(body["oldest_collected_at"], "2026-12-04T19:00:00Z");
    assert_eq!(body["last_run"]["poller_host"], "test-host");

    let lower = app.get("/summary?threshold=50").await.json();
    assert_eq!(lower["accounts_over_threshold"], 3);
}

#[sqlx::test(migrations = "../../migrations")]
async fn csv_output_has_kb_and_readable_sizes(pool: PgPool) {
    let app = seeded(pool).await;
    let reply = app.get("/report?format=csv").await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(reply.headers["content-type"], "text/csv; charset=utf-8");
    let lines: Vec<&str> = reply.text.split("\r\n").collect();
    assert_eq!(
        lines[0],
        "server_name,server_hostname,domain,email,local_part,quota_kb,used_kb,free_kb,\
         usage_percent,quota_readable,used_readable,message_count,usage_source,collected_at"
    );
    assert_eq!(
        lines[1],
        "mx1,mx1.example.net,Example.com,alice@Example.com,alice,1048576,733184,315392,69.92,\
         1.0 GB,716.0 MB,7,webadmin,2026-12-04T19:00:00+00:00"
    );
    assert_eq!(
        lines[2],
        "mx1,mx1.example.net,Example.com,Bob@Example.com,Bob,,500,,,unlimited,500 KB,7,webadmin,\
         2026-12-04T19:00:00+00:00"
    );
    assert_eq!(
        lines.len(),
        1 + 5 + 1,
        "header, five accounts, final empty line"
    );

    let accepted = app
        .send(
            app.client
                .get(app.url("/accounts?domain=example.com"))
                .bearer_auth(&app.read_token)
                .header("accept", "text/csv"),
        )
        .await;
    assert_eq!(accepted.headers["content-type"], "text/csv; charset=utf-8");
    assert_eq!(accepted.text.lines().count(), 4);

    let domain = app.get("/report?domain=example.com&format=csv").await;
    assert_eq!(domain.text.lines().count(), 4);
    let account = app
        .get("/report?account=alice@example.com&format=csv")
        .await;
    assert_eq!(account.text.lines().count(), 2);

    let domains = app.get("/domains?format=csv").await;
    assert!(
        domains
            .text
            .starts_with("server_name,server_hostname,domain,status,accounts,")
    );
    assert_eq!(domains.text.lines().count(), 5);

    let servers = app.get("/servers?format=csv").await;
    assert_eq!(servers.status, 200, "{}", servers.text);
    assert_eq!(servers.headers["content-type"], "text/csv; charset=utf-8");
    let lines: Vec<&str> = servers.text.split("\r\n").collect();
    assert_eq!(
        lines[0],
        "name,hostname,cli_port,webadmin_port,cli_tls,webadmin_enabled,last_poll_at,\
         last_poll_status,last_poll_error,last_poll_duration_ms,last_success_at,collected_at,\
         domains,accounts,used_kb,used_readable"
    );
    assert_eq!(
        lines[2],
        "mx2,mx2.example.net,7000,9000,false,true,2026-12-04T20:00:00+00:00,failed,\
         mx2.example.net: connection refused,1234,,2026-12-04T19:00:00+00:00,2,1,10240,10.0 MB"
    );
    // A server never polled has empty poll columns.
    assert_eq!(
        lines[3],
        "mx3,mx3.example.net,7000,9000,false,true,,,,,,,0,0,0,0 KB"
    );
    assert_eq!(
        lines.len(),
        1 + 3 + 1,
        "header, three servers, final empty line"
    );
}

#[sqlx::test(migrations = "../../migrations")]
async fn health_ready_and_metrics(pool: PgPool) {
    let app = seeded(pool).await;
    let health = app.send(app.client.get(app.url("/health"))).await;
    assert_eq!(health.status, 200);
    assert_eq!(health.json(), json!({"status": "ok"}));
    let ready = app.send(app.client.get(app.url("/ready/"))).await;
    assert_eq!(ready.status, 200);
    assert_eq!(ready.json(), json!({"status": "ready"}));
    assert!(
        health.headers.contains_key("x-request-id"),
        "every response carries its request id"
    );

    app.get("/report?domain=example.com").await;
    app.get("/report?domain=example.com").await;
    app.get("/no/such/path").await;
    let metrics = app.get("/metrics").await;
    assert_eq!(metrics.status, 200, "{}", metrics.text);
    assert!(
        metrics.headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain")
    );
    let text = metrics.text;
    for expected in [
        "axiquota_http_requests_total{method=\"GET\",route=\"/report\",status=\"200\"} 2",
        "axiquota_http_requests_total{method=\"GET\",route=\"unmatched\",status=\"404\"} 1",
        "axiquota_http_request_duration_seconds_count{method=\"GET\",route=\"/report\"} 2",
        "axiquota_servers 3",
        "axiquota_server_last_poll_success{server=\"mx1.example.net\",name=\"mx1\"} 1",
        "axiquota_server_last_poll_success{server=\"mx2.example.net\",name=\"mx2\"} 0",
        "axiquota_server_accounts{server=\"mx1.example.net\",name=\"mx1\"} 4",
        "axiquota_server_used_kilobytes{server=\"mx2.example.net\",name=\"mx2\"} 10240",
        "axiquota_domain_accounts{server=\"mx1.example.net\",domain=\"example.com\"} 3",
        "axiquota_domain_used_kilobytes{server=\"mx2.example.net\",domain=\"shared.org\"} 10240",
    ] {
        assert!(text.contains(expected), "missing {expected:?} in:\n{text}");
    }
    assert!(text.contains("axiquota_server_snapshot_age_seconds{server=\"mx1.example.net\""));
    assert!(text.contains("axiquota_server_last_poll_age_seconds{server=\"mx2.example.net\""));
    assert!(!text.contains("alice"), "no per-mailbox series");
    assert!(
        !text.contains("/no/such/path"),
        "unmatched paths share one label"
    );
}

#[sqlx::test(migrations = "../../migrations")]
async fn trailing_slash_optional(pool: PgPool) {
    let app = seeded(pool).await;
    for path in [
        "/report/?domain=example.com",
        "/servers/",
        "/summary/",
        "/accounts/",
        "/domains/",
        "/health/",
        "/openapi.json/",
    ] {
        let reply = app.get(path).await;
        assert_eq!(reply.status, 200, "{path}: {}", reply.text);
    }
}

#[sqlx::test(migrations = "../../migrations")]
async fn ready_fails_without_database(pool: PgPool) {
    let app = common::spawn(pool.clone()).await;
    pool.close().await;
    let reply = app.send(app.client.get(app.url("/ready"))).await;
    assert_eq!(reply.status, 503, "{}", reply.text);
    assert_eq!(reply.json()["message"], "service unavailable");
}

#[sqlx::test(migrations = "../../migrations")]
async fn full_report_without_database_is_unavailable(pool: PgPool) {
    let app = common::spawn(pool.clone()).await;
    pool.close().await;
    for path in ["/report", "/report?format=csv"] {
        let reply = app.get(path).await;
        assert_eq!(reply.status, 503, "{path}: {}", reply.text);
    }
}

#[sqlx::test(migrations = "../../migrations")]
async fn update_server_keeps_snapshot(pool: PgPool) {
    let app = seeded(pool).await;
    let counts_before = app.table_counts().await;
    let reply = app
        .send_json(
            Method::PATCH,
            "/update_server/",
            r#"{"hostname": "MX1.example.net", "name": "mx1-new", "cli_port": 7001,
                "password": "rotated secret", "tls_verify": false}"#,
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    let body = reply.json();
    assert_eq!(body["success"], true);
    assert_eq!(body["message"], "server mx1-new (mx1.example.net) updated");
    let server = &body["server"];
    assert_eq!(server["name"], "mx1-new");
    assert_eq!(server["hostname"], "mx1.example.net");
    assert_eq!(server["cli_port"], 7001);
    assert_eq!(server["tls_verify"], false);
    assert_eq!(server["webadmin_port"], 9000, "fields left out are kept");
    assert_eq!(server["username"], "admin");
    assert!(server["accounts"].as_i64().unwrap() > 0, "{server}");
    assert!(!reply.text.contains("rotated secret"));

    assert_eq!(
        app.table_counts().await,
        counts_before,
        "the snapshot stays"
    );
    let account = app.get("/report?account=alice@example.com").await;
    assert_eq!(account.status, 200, "{}", account.text);

    let (encrypted, updated_later): (String, bool) = sqlx::query_as(
        "SELECT password_encrypted, updated_at > created_at FROM servers \
         WHERE hostname = 'mx1.example.net'",
    )
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!(
        app.vault.decrypt(&encrypted).unwrap().expose(),
        "rotated secret"
    );
    assert!(updated_later);

    let pinned = app
        .send_json(
            Method::PATCH,
            "/update_server",
            r#"{"hostname": "mx1.example.net",
                "tls_fingerprints": ["AB0A112233445566778899AABBCCDDEEFF00112233445566778899AABBCCDD9C"]}"#,
        )
        .await;
    assert_eq!(pinned.status, 200, "{}", pinned.text);
    assert_eq!(
        pinned.json()["server"]["tls_fingerprints"],
        json!(["ab0a112233445566778899aabbccddeeff00112233445566778899aabbccdd9c"])
    );
    assert_eq!(
        pinned.json()["server"]["name"],
        "mx1-new",
        "other fields kept"
    );
    let cleared = app
        .send_json(
            Method::PATCH,
            "/update_server",
            r#"{"hostname": "mx1.example.net", "tls_fingerprints": []}"#,
        )
        .await;
    assert_eq!(cleared.status, 200, "{}", cleared.text);
    assert_eq!(cleared.json()["server"]["tls_fingerprints"], json!([]));

    let unknown = app
        .send_json(
            Method::PATCH,
            "/update_server",
            r#"{"hostname": "mx9.example.net", "name": "x"}"#,
        )
        .await;
    assert_eq!(unknown.status, 404, "{}", unknown.text);

    // A new host name keeps the snapshot under the same server.
    let renamed = app
        .send_json(
            Method::PATCH,
            "/update_server",
            r#"{"hostname": "mx1.example.net", "new_hostname": "mail1.example.net"}"#,
        )
        .await;
    assert_eq!(renamed.status, 200, "{}", renamed.text);
    assert_eq!(renamed.json()["server"]["hostname"], "mail1.example.net");
    assert_eq!(
        renamed.json()["message"],
        "server mx1-new (mail1.example.net) updated"
    );
    assert_eq!(app.table_counts().await, counts_before);
    let on_new_name = app
        .get("/report?account=alice@example.com&server=mail1.example.net")
        .await;
    assert_eq!(on_new_name.status, 200, "{}", on_new_name.text);
    let on_old_name = app.get("/report?server=mx1.example.net").await;
    assert_eq!(on_old_name.status, 404, "{}", on_old_name.text);
}

#[sqlx::test(migrations = "../../migrations")]
async fn report_lookup_accepts_either_idn_form(pool: PgPool) {
    let app = common::spawn(pool).await;
    let mx1 = app.add_server("mx1", "mx1.example.net").await;
    // One server lists its domain in Unicode, the other in punycode.
    app.store_snapshot(
        mx1,
        collected_at(),
        vec![
            domain("bücher.example", vec![account("jürgen", Some(1024), 10)]),
            domain(
                "xn--mnchen-3ya.example",
                vec![account("anna", Some(1024), 20)],
            ),
        ],
    )
    .await;

    let cases = [
        (
            "/report?account=jürgen@xn--bcher-kva.example",
            "jürgen@bücher.example",
        ),
        (
            "/report?account=J%C3%BCrgen@B%C3%BCcher.example",
            "jürgen@bücher.example",
        ),
        (
            "/report?account=anna@münchen.example",
            "anna@xn--mnchen-3ya.example",
        ),
    ];
    for (path, email) in cases {
        let reply = app.get(path).await;
        assert_eq!(reply.status, 200, "{path}: {}", reply.text);
        assert_eq!(reply.json()["email"], email, "{path}");
    }
    let domain_reply = app.get("/report?domain=XN--BCHER-KVA.example").await;
    assert_eq!(domain_reply.status, 200, "{}", domain_reply.text);
    assert_eq!(domain_reply.json()["name"], "bücher.example");
    let other = app.get("/report?domain=münchen.example").await;
    assert_eq!(other.status, 200, "{}", other.text);
    assert_eq!(other.json()["total_accounts"], 1);
}

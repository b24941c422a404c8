//! The store against a real PostgreSQL database, one fresh database per test.

use axiquota_core::model::{
    AccountSnapshot, DomainSnapshot, DomainStatus, NewServer, Snapshot, UsageSource,
};
use axiquota_core::store::{polls, servers, snapshot};
use axiquota_core::{Secret, Vault};
use chrono::{TimeZone, Utc};
use sqlx::PgPool;
use uuid::Uuid;

fn vault() -> Vault {
    Vault::from_keys(&Vault::generate_key()).unwrap()
}

fn new_server(hostname: &str) -> NewServer {
    NewServer {
        name: hostname.split('.').next().unwrap().to_owned(),
        hostname: hostname.to_owned(),
        cli_port: 7000,
        webadmin_port: 9000,
        username: "admin".to_owned(),
        password: Secret::new("secret"),
        cli_tls: false,
        tls_verify: true,
        tls_fingerprints: Vec::new(),
        webadmin_enabled: true,
        webadmin_allow_http: false,
    }
}

fn account(name: &str, quota_kb: Option<i64>, used_kb: i64) -> AccountSnapshot {
    AccountSnapshot {
        name: name.to_owned(),
        quota_kb,
        used_kb,
        message_count: Some(3),
        usage_source: UsageSource::Cli,
    }
}

fn sample_snapshot(suffix: &str) -> Snapshot {
    Snapshot {
        collected_at: Utc.with_ymd_and_hms(2026, 12, 4, 19, 0, 0).unwrap(),
        domains: vec![
            DomainSnapshot {
                name: format!("Example-{suffix}.COM"),
                status: DomainStatus::Enabled,
                accounts: vec![
                    account("Alice", Some(1_048_576), 734_003),
                    account("bob", Some(0), 0),
                    account("carol", None, 512),
                ],
            },
            DomainSnapshot {
                name: format!("old-{suffix}.example"),
                status: DomainStatus::Disabled,
                accounts: vec![],
            },
        ],
        skipped: vec![],
        webadmin_error: None,
        sent_ahead_dropped: false,
    }
}

type AccountRow = (String, Option<String>, String, Option<i64>, i64, String);

async fn account_rows(pool: &PgPool, server_id: Uuid) -> Vec<AccountRow> {
    sqlx::query_as(
        "SELECT local_part, display_local_part, email, quota_kb, used_kb, usage_source \
         FROM accounts WHERE server_id = $1 ORDER BY email",
    )
    .bind(server_id)
    .fetch_all(pool)
    .await
    .unwrap()
}

#[sqlx::test(migrations = "../../migrations")]
async fn duplicate_hostname_in_other_case_is_rejected(pool: PgPool) {
    let vault = vault();
    servers::insert(&pool, &vault, &new_server("mx1.example.net"))
        .await
        .unwrap();

    let error = servers::insert(&pool, &vault, &new_server("MX1.Example.NET"))
        .await
        .unwrap_err();
    assert!(
        matches!(error, servers::SaveServerError::Duplicate(_)),
        "{error}"
    );
    assert_eq!(servers::list(&pool).await.unwrap().len(), 1);
}

#[sqlx::test(migrations = "../../migrations")]
async fn password_is_stored_encrypted(pool: PgPool) {
    let vault = vault();
    let server = servers::insert(&pool, &vault, &new_server("mx1.example.net"))
        .await
        .unwrap();

    let stored: String = sqlx::query_scalar("SELECT password_encrypted FROM servers WHERE id = $1")
        .bind(server.id)
        .fetch_one(&pool)
        .await
        .unwrap();
    assert!(!stored.contains("secret"));
    assert_eq!(vault.decrypt(&stored).unwrap().expose(), "secret");
}

#[sqlx::test(migrations = "../../migrations")]
async fn ports_outside_range_are_rejected_by_schema(pool: PgPool) {
    for port in [0, 65536, -1] {
        let outcome = sqlx::query(
            "INSERT INTO servers (name, hostname, cli_port, username, password_encrypted) \
             VALUES ('x', 'x.example', $1, 'admin', 'token')",
        )
        .bind(port)
        .execute(&pool)
        .await;
        assert!(outcome.is_err(), "cli_port {port} was accepted");
    }
}

#[sqlx::test(migrations = "../../migrations")]
async fn snapshot_replaces_rows_of_that_server_only(pool: PgPool) {
    let vault = vault();
    let first = servers::insert(&pool, &vault, &new_server("mx1.example.net"))
        .await
        .unwrap();
    let second = servers::insert(&pool, &vault, &new_server("mx2.example.net"))
        .await
        .unwrap();

    let mut conn = pool.acquire().await.unwrap();
    snapshot::replace_snapshot(&mut conn, first.id, &sample_snapshot("a"))
        .await
        .unwrap();
    snapshot::replace_snapshot(&mut conn, second.id, &sample_snapshot("b"))
        .await
        .unwrap();
    let second_before = account_rows(&pool, second.id).await;

    let mut changed = sample_snapshot("a");
    changed.domains[0].accounts.truncate(1);
    changed.domains[0].accounts[0].used_kb = 1;
    let counts = snapshot::replace_snapshot(&mut conn, first.id, &changed)
        .await
        .unwrap();
    assert_eq!(
        counts,
        snapshot::WriteCounts {
            domains: 2,
            accounts: 1
        }
    );

    let first_rows = account_rows(&pool, first.id).await;
    assert_eq!(
        first_rows,
        vec![(
            "alice".to_owned(),
            Some("Alice".to_owned()),
            "alice@example-a.com".to_owned(),
            Some(1_048_576),
            1,
            "cli".to_owned()
        )]
    );
    assert_eq!(account_rows(&pool, second.id).await, second_before);
}

/// Registers a server under `hostname`, stores the sample snapshot "a"
/// for it and returns its id.
async fn server_with_snapshot(pool: &PgPool, vault: &Vault, hostname: &str) -> Uuid {
    let server = servers::insert(pool, vault, &new_server(hostname))
        .await
        .unwrap();
    let mut conn = pool.acquire().await.unwrap();
    snapshot::replace_snapshot(&mut conn, server.id, &sample_snapshot("a"))
        .await
        .unwrap();
    server.id
}

/// Returns (id, name, display name, status) of a server's domains by name.
async fn domain_rows(pool: &PgPool, server_id: Uuid) -> Vec<(i64, String, Option<String>, String)> {
    sqlx::query_as(
        "SELECT id, name, display_name, status FROM domains WHERE server_id = $1 ORDER BY name",
    )
    .bind(server_id)
    .fetch_all(pool)
    .await
    .unwrap()
}

#[sqlx::test(migrations = "../../migrations")]
async fn snapshot_updates_kept_domains_and_drops_vanished(pool: PgPool) {
    let vault = vault();
    let server_id = server_with_snapshot(&pool, &vault, "mx1.example.net").await;
    let mut conn = pool.acquire().await.unwrap();
    let before = domain_rows(&pool, server_id).await;
    assert_eq!(before.len(), 2);

    // The first domain comes back in other letter case and disabled; the
    // second is gone and a new one appears.
    let mut changed = sample_snapshot("a");
    changed.domains[0].name = "example-a.com".to_owned();
    changed.domains[0].status = DomainStatus::Disabled;
    changed.domains[1].name = "new-a.example".to_owned();
    snapshot::replace_snapshot(&mut conn, server_id, &changed)
        .await
        .unwrap();

    let after = domain_rows(&pool, server_id).await;
    let names: Vec<&str> = after.iter().map(|row| row.1.as_str()).collect();
    assert_eq!(names, ["example-a.com", "new-a.example"]);
    assert_eq!(after[0].0, before[0].0, "a kept domain keeps its id");
    assert_eq!(
        after[0].2, None,
        "the display spelling follows the new name"
    );
    assert_eq!(after[0].3, "disabled");
    let kept_accounts: i64 =
        sqlx::query_scalar("SELECT count(*) FROM accounts WHERE domain_id = $1")
            .bind(after[0].0)
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(kept_accounts, 3);
    let stray_accounts: i64 =
        sqlx::query_scalar("SELECT count(*) FROM accounts WHERE domain_id <> ALL($1)")
            .bind(after.iter().map(|row| row.0).collect::<Vec<_>>())
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(stray_accounts, 0);
}

#[sqlx::test(migrations = "../../migrations")]
async fn snapshot_stores_unlimited_as_null_and_zero_usage(pool: PgPool) {
    let vault = vault();
    let server = servers::insert(&pool, &vault, &new_server("mx1.example.net"))
        .await
        .unwrap();
    let mut conn = pool.acquire().await.unwrap();
    snapshot::replace_snapshot(&mut conn, server.id, &sample_snapshot("a"))
        .await
        .unwrap();

    let rows = account_rows(&pool, server.id).await;
    let bob = rows.iter().find(|row| row.0 == "bob").unwrap();
    assert_eq!(bob.3, None, "quota 0 must be stored as unlimited");
    assert_eq!(bob.4, 0, "usage 0 must stay 0");
    let carol = rows.iter().find(|row| row.0 == "carol").unwrap();
    assert_eq!(carol.3, None);
    assert_eq!(carol.1, None, "a lower-case name keeps no display copy");

    let domains: Vec<(String, Option<String>, String)> = sqlx::query_as(
        "SELECT name, display_name, status FROM domains WHERE server_id = $1 ORDER BY name",
    )
    .bind(server.id)
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(
        domains,
        vec![
            (
                "example-a.com".to_owned(),
                Some("Example-a.COM".to_owned()),
                "enabled".to_owned()
            ),
            ("old-a.example".to_owned(), None, "disabled".to_owned()),
        ]
    );
}

#[sqlx::test(migrations = "../../migrations")]
async fn failed_write_keeps_previous_snapshot(pool: PgPool) {
    let vault = vault();
    let server = servers::insert(&pool, &vault, &new_server("mx1.example.net"))
        .await
        .unwrap();
    let mut conn = pool.acquire().await.unwrap();
    snapshot::replace_snapshot(&mut conn, server.id, &sample_snapshot("a"))
        .await
        .unwrap();
    let before = account_rows(&pool, server.id).await;

    // Two accounts that differ only in letter case violate the unique key
    // halfway through the write.
    let mut broken = sample_snapshot("a");
    broken.domains[0].accounts.push(account("ALICE", None, 1));
    let mut transaction = pool.begin().await.unwrap();
    let outcome = snapshot::replace_snapshot(&mut transaction, server.id, &broken).await;
    assert!(outcome.is_err());
    drop(transaction);

    assert_eq!(account_rows(&pool, server.id).await, before);
}

#[sqlx::test(migrations = "../../migrations")]
async fn deleting_server_removes_its_snapshot(pool: PgPool) {
    let vault = vault();
    let server = servers::insert(&pool, &vault, &new_server("mx1.example.net"))
        .await
        .unwrap();
    let mut conn = pool.acquire().await.unwrap();
    snapshot::replace_snapshot(&mut conn, server.id, &sample_snapshot("a"))
        .await
        .unwrap();

    let deleted = servers::delete_by_hostname(&pool, "MX1.example.net")
        .await
        .unwrap();
    assert_eq!(deleted.map(|server| server.id), Some(server.id));
    let remaining: i64 = sqlx::query_scalar("SELECT count(*) FROM accounts")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(remaining, 0);
    assert!(
        servers::delete_by_hostname(&pool, "mx1.example.net")
            .await
            .unwrap()
            .is_none()
    );
}

#[sqlx::test(migrations = "../../migrations")]
async fn account_in_foreign_domain_is_rejected(pool: PgPool) {
    let vault = vault();
    let first_id = server_with_snapshot(&pool, &vault, "mx1.example.net").await;
    let second = servers::insert(&pool, &vault, &new_server("mx2.example.net"))
        .await
        .unwrap();

    let error = sqlx::query(
        "INSERT INTO accounts (server_id, domain_id, local_part, email, used_kb, usage_source, \
         collected_at) \
         SELECT $1, id, 'mallory', 'mallory@' || name, 0, 'cli', now() FROM domains LIMIT 1",
    )
    .bind(second.id)
    .execute(&pool)
    .await
    .expect_err("an account of the second server in a domain of the first");
    let constraint = error
        .as_database_error()
        .and_then(|e| e.constraint())
        .map(str::to_owned);
    assert_eq!(constraint.as_deref(), Some("accounts_domain_fkey"));
    assert_eq!(account_rows(&pool, second.id).await.len(), 0);
    assert_eq!(account_rows(&pool, first_id).await.len(), 3);
}

#[sqlx::test(migrations = "../../migrations")]
async fn rotation_reencrypts_with_first_key(pool: PgPool) {
    let old_key = Vault::generate_key();
    let new_key = Vault::generate_key();
    let old_vault = Vault::from_keys(&old_key).unwrap();
    servers::insert(&pool, &old_vault, &new_server("mx1.example.net"))
        .await
        .unwrap();
    servers::insert(&pool, &old_vault, &new_server("mx2.example.net"))
        .await
        .unwrap();

    let both = Vault::from_keys(&Secret::new(format!(
        "{},{}",
        new_key.expose(),
        old_key.expose()
    )))
    .unwrap();
    let report = servers::reencrypt_passwords(&pool, &both).await.unwrap();
    assert_eq!(
        report,
        servers::RotationReport {
            total: 2,
            reencrypted: 2,
            already_current: 0
        }
    );

    let new_only = Vault::from_keys(&new_key).unwrap();
    for stored in servers::list_with_passwords(&pool, &[]).await.unwrap() {
        assert_eq!(
            new_only
                .decrypt(&stored.password_encrypted)
                .unwrap()
                .expose(),
            "secret"
        );
    }
    let again = servers::reencrypt_passwords(&pool, &both).await.unwrap();
    assert_eq!(
        again,
        servers::RotationReport {
            total: 2,
            reencrypted: 0,
            already_current: 2
        }
    );
}

#[sqlx::test(migrations = "../../migrations")]
async fn rotation_changes_nothing_when_a_key_is_missing(pool: PgPool) {
    let lost_vault = vault();
    let kept_vault = vault();
    servers::insert(&pool, &lost_vault, &new_server("lost.example.net"))
        .await
        .unwrap();
    servers::insert(&pool, &kept_vault, &new_server("kept.example.net"))
        .await
        .unwrap();
    let before = servers::list_with_passwords(&pool, &[]).await.unwrap();

    let error = servers::reencrypt_passwords(&pool, &kept_vault)
        .await
        .unwrap_err();
    let message = error.to_string();
    assert!(message.contains("lost.example.net"), "{message}");
    assert!(!message.contains("kept.example.net"), "{message}");

    let after = servers::list_with_passwords(&pool, &[]).await.unwrap();
    let tokens = |rows: &[servers::ServerWithPassword]| -> Vec<String> {
        rows.iter()
            .map(|row| row.password_encrypted.clone())
            .collect()
    };
    assert_eq!(tokens(&after), tokens(&before));
}

#[sqlx::test(migrations = "../../migrations")]
async fn poll_lock_admits_one_holder(pool: PgPool) {
    let server_id = Uuid::new_v4();
    let mut first = pool.acquire().await.unwrap();
    let mut second = pool.acquire().await.unwrap();

    assert!(polls::try_lock_server(&mut first, server_id).await.unwrap());
    assert!(
        !polls::try_lock_server(&mut second, server_id)
            .await
            .unwrap()
    );
    assert!(
        polls::try_lock_server(&mut second, Uuid::new_v4())
            .await
            .unwrap()
    );

    assert!(polls::unlock_server(&mut first, server_id).await.unwrap());
    assert!(
        polls::try_lock_server(&mut second, server_id)
            .await
            .unwrap()
    );
}

#[sqlx::test(migrations = "../../migrations")]
async fn list_with_passwords_filters_by_hostname(pool: PgPool) {
    let vault = vault();
    servers::insert(&pool, &vault, &new_server("mx1.example.net"))
        .await
        .unwrap();
    servers::insert(&pool, &vault, &new_server("mx2.example.net"))
        .await
        .unwrap();

    let selected = servers::list_with_passwords(&pool, &["MX2.example.net".to_owned()])
        .await
        .unwrap();
    let hostnames: Vec<&str> = selected
        .iter()
        .map(|row| row.server.hostname.as_str())
        .collect();
    assert_eq!(hostnames, ["mx2.example.net"]);
    let debug = format!("{selected:?}");
    assert!(!debug.contains(&selected[0].password_encrypted));
}

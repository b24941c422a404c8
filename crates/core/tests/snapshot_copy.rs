//! Account rows written through COPY come back from PostgreSQL exactly as
//! collected, whatever characters the names contain.

use axiquota_core::model::{
    AccountSnapshot, DomainSnapshot, DomainStatus, NewServer, Snapshot, UsageSource,
};
use axiquota_core::store::{servers, snapshot};
use axiquota_core::{Secret, Vault};
use chrono::{TimeZone, Utc};
use sqlx::PgPool;

fn account(name: &str, quota_kb: Option<i64>, message_count: Option<i64>) -> AccountSnapshot {
    AccountSnapshot {
        name: name.to_owned(),
        quota_kb,
        used_kb: 42,
        message_count,
        usage_source: UsageSource::Cli,
    }
}

#[sqlx::test(migrations = "../../migrations")]
async fn copy_round_trips_awkward_names(pool: PgPool) {
    let vault = Vault::from_keys(&Vault::generate_key()).unwrap();
    let server = servers::insert(
        &pool,
        &vault,
        &NewServer {
            name: "mx1".to_owned(),
            hostname: "mx1.example.net".to_owned(),
            cli_port: 7000,
            webadmin_port: 9000,
            username: "admin".to_owned(),
            password: Secret::new("secret"),
            cli_tls: false,
            tls_verify: true,
            tls_fingerprints: Vec::new(),
            webadmin_enabled: true,
            webadmin_allow_http: false,
        },
    )
    .await
    .unwrap();
    let collected_at = Utc.with_ymd_and_hms(2026, 12, 4, 19, 0, 0).unwrap()
        + chrono::Duration::microseconds(123_456);
    let names = [
        "back\\slash",
        "tab\there",
        "new\nline",
        "cr\rhere",
        "Jürgen",
        "null\\N",
        "quote\"d",
    ];
    let snapshot = Snapshot {
        collected_at,
        domains: vec![DomainSnapshot {
            name: "Bücher.Example".to_owned(),
            status: DomainStatus::Enabled,
            accounts: names
                .iter()
                .map(|name| account(name, Some(1024), None))
                .chain([account("plain", Some(0), Some(7))])
                .collect(),
        }],
        skipped: Vec::new(),
        webadmin_error: None,
        sent_ahead_dropped: false,
    };

    let mut connection = pool.acquire().await.unwrap();
    let counts = snapshot::replace_snapshot(&mut connection, server.id, &snapshot)
        .await
        .unwrap();
    assert_eq!(counts.accounts, names.len() + 1);

    type Row = (
        String,
        Option<String>,
        String,
        Option<i64>,
        i64,
        Option<i64>,
        chrono::DateTime<Utc>,
    );
    let rows: Vec<Row> = sqlx::query_as(
        "SELECT local_part, display_local_part, email, quota_kb, used_kb, message_count, \
         collected_at FROM accounts WHERE server_id = $1",
    )
    .bind(server.id)
    .fetch_all(&pool)
    .await
    .unwrap();

    for name in names {
        let lowered = name.to_lowercase();
        let row = rows
            .iter()
            .find(|row| row.0 == lowered)
            .unwrap_or_else(|| panic!("no row for {name:?} in {rows:?}"));
        let display = (lowered != name).then(|| name.to_owned());
        assert_eq!(row.1, display, "display form of {name:?}");
        assert_eq!(row.2, format!("{lowered}@bücher.example"));
        assert_eq!(row.3, Some(1024));
        assert_eq!(row.4, 42);
        assert_eq!(row.5, None);
        assert_eq!(row.6, collected_at);
    }
    let plain = rows.iter().find(|row| row.0 == "plain").unwrap();
    assert_eq!(plain.3, None, "a quota of 0 is stored as unlimited");
    assert_eq!(plain.5, Some(7));
}

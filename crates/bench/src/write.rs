//! The write-path benchmark: `replace_snapshot` of one large snapshot
//! against PostgreSQL's own `COPY` of the same rows into the same table.

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use anyhow::Context;
use axiquota_core::Secret;
use axiquota_core::Vault;
use axiquota_core::model::{
    AccountSnapshot, DomainSnapshot, DomainStatus, NewServer, Snapshot, UsageSource,
};
use axiquota_core::store::{servers, snapshot};
use chrono::{DateTime, Utc};
use sqlx::{Acquire, PgPool};
use uuid::Uuid;

/// Median timings of the write path, each over `rounds` runs.
#[derive(Debug, Clone, Copy)]
pub struct WriteFigures {
    pub accounts: usize,
    pub rounds: usize,
    /// `replace_snapshot` (deletes and inserts) plus the commit.
    pub replace: Duration,
    /// `DELETE` of the server's accounts, the first step of the COPY round.
    pub delete: Duration,
    /// `COPY accounts FROM STDIN` of the same rows, plus the commit.
    pub copy: Duration,
}

/// Builds a snapshot of `domains` x `accounts_per_domain` plain accounts.
pub fn build_snapshot(domains: usize, accounts_per_domain: usize) -> Snapshot {
    let domains = (0..domains)
        .map(|d| DomainSnapshot {
            name: format!("domain{d:03}.example"),
            status: DomainStatus::Enabled,
            accounts: (0..accounts_per_domain)
                .map(|a| AccountSnapshot {
                    name: format!("user{a:05}"),
                    quota_kb: Some(1_048_576),
                    used_kb: i64::try_from(a * 37 % 1_000_000).unwrap_or(0),
                    message_count: None,
                    usage_source: UsageSource::Webadmin,
                })
                .collect(),
        })
        .collect();
    Snapshot {
        collected_at: Utc::now(),
        domains,
        skipped: Vec::new(),
        webadmin_error: None,
        sent_ahead_dropped: false,
    }
}

/// Measures the write path on a server row of its own, which it deletes
/// again at the end.
///
/// # Errors
///
/// Database errors.
pub async fn measure(
    pool: &PgPool,
    vault: &Vault,
    snapshot: &Snapshot,
    rounds: usize,
) -> anyhow::Result<WriteFigures> {
    let server = servers::insert(
        pool,
        vault,
        &NewServer {
            name: "write-path".to_owned(),
            hostname: "write-path.bench.invalid".to_owned(),
            cli_port: 7000,
            webadmin_port: 9000,
            username: "admin".to_owned(),
            password: Secret::new("unused"),
            cli_tls: false,
            tls_verify: true,
            tls_fingerprints: Vec::new(),
            webadmin_enabled: true,
            webadmin_allow_http: false,
        },
    )
    .await?;
    let server_id = server.id;
    let mut connection = pool.acquire().await?;

    // The first write fills the table, so every timed round replaces a
    // snapshot of the same size, as a poll does.
    let mut transaction = connection.begin().await?;
    snapshot::replace_snapshot(&mut transaction, server_id, snapshot).await?;
    transaction.commit().await?;

    let mut replace_times = Vec::with_capacity(rounds);
    let mut delete_times = Vec::with_capacity(rounds);
    let mut copy_times = Vec::with_capacity(rounds);
    for _ in 0..rounds {
        let start = Instant::now();
        let mut transaction = connection.begin().await?;
        snapshot::replace_snapshot(&mut transaction, server_id, snapshot).await?;
        transaction.commit().await?;
        replace_times.push(start.elapsed());

        // The limit: the same rows through COPY, with the domain ids
        // already known, so only the table's own work remains.
        let domain_ids: Vec<(i64, String)> =
            sqlx::query_as("SELECT id, name FROM domains WHERE server_id = $1")
                .bind(server_id)
                .fetch_all(&mut *connection)
                .await?;
        let payload = copy_payload(server_id, snapshot, &domain_ids, snapshot.collected_at)?;

        let mut transaction = connection.begin().await?;
        let start = Instant::now();
        sqlx::query("DELETE FROM accounts WHERE server_id = $1")
            .bind(server_id)
            .execute(&mut *transaction)
            .await?;
        delete_times.push(start.elapsed());

        let start = Instant::now();
        let mut copy = transaction
            .copy_in_raw(
                "COPY accounts (server_id, domain_id, local_part, display_local_part, email, \
                 quota_kb, used_kb, message_count, usage_source, collected_at) FROM STDIN",
            )
            .await?;
        copy.send(payload.as_bytes()).await?;
        copy.finish().await?;
        transaction.commit().await?;
        copy_times.push(start.elapsed());
    }

    drop(connection);
    servers::delete_by_hostname(pool, "write-path.bench.invalid").await?;
    Ok(WriteFigures {
        accounts: snapshot.account_count(),
        rounds,
        replace: median(&mut replace_times),
        delete: median(&mut delete_times),
        copy: median(&mut copy_times),
    })
}

/// Formats the snapshot's accounts as COPY text. The generated names need
/// no escaping.
fn copy_payload(
    server_id: Uuid,
    snapshot: &Snapshot,
    domain_ids: &[(i64, String)],
    collected_at: DateTime<Utc>,
) -> anyhow::Result<String> {
    let collected_at = collected_at.to_rfc3339();
    let mut payload = String::with_capacity(snapshot.account_count() * 120);
    for domain in &snapshot.domains {
        let domain_id = domain_ids
            .iter()
            .find(|(_, name)| *name == domain.name)
            .map(|(id, _)| *id)
            .with_context(|| format!("domain {} was not written", domain.name))?;
        for account in &domain.accounts {
            let quota = account
                .quota_kb
                .map_or_else(|| "\\N".to_owned(), |kb| kb.to_string());
            writeln!(
                payload,
                "{server_id}\t{domain_id}\t{name}\t\\N\t{name}@{domain}\t{quota}\t{used}\t\\N\t{source}\t{collected_at}",
                name = account.name,
                domain = domain.name,
                used = account.used_kb,
                source = account.usage_source.as_str(),
            )?;
        }
    }
    Ok(payload)
}

fn median(times: &mut [Duration]) -> Duration {
    times.sort();
    times[times.len() / 2]
}

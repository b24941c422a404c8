//! Poll history: one `poll_runs` row per poller run and one `poll_results`
//! row per server in it, plus the per-server lock that keeps two pollers
//! from writing the same server at once.

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use crate::model::SkippedItem;

/// Advisory-lock namespace of the per-server poll lock. The second key is
/// a hash of the server id, so the pair is unique to this use.
const POLL_LOCK_NAMESPACE: i32 = 0x6178_7100;

/// The outcome of one server in one run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PollStatus {
    /// The snapshot was replaced.
    Ok,
    /// Collection or writing failed; the previous snapshot was kept.
    Failed,
    /// Another poller held the server's lock.
    Locked,
}

impl PollStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::Failed => "failed",
            Self::Locked => "locked",
        }
    }
}

/// One `poll_results` row.
#[derive(Debug, Clone, serde::Serialize)]
pub struct PollResult {
    pub server_id: Uuid,
    pub hostname: String,
    pub status: PollStatus,
    pub error: Option<String>,
    pub started_at: DateTime<Utc>,
    pub duration_ms: i64,
    pub domains: usize,
    pub accounts: usize,
    pub skipped: Vec<SkippedItem>,
    pub usage_source: Option<&'static str>,
    pub webadmin_error: Option<String>,
    /// Whether the server left commands sent ahead unanswered. Shown in
    /// the poller's output only, not stored.
    pub sent_ahead_dropped: bool,
}

/// Counts per outcome, written to `poll_runs` when a run ends.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct RunCounts {
    pub total: usize,
    pub ok: usize,
    pub failed: usize,
    pub locked: usize,
}

fn to_i32(value: usize) -> i32 {
    i32::try_from(value).unwrap_or(i32::MAX)
}

/// Records the start of a run and returns its id.
///
/// # Errors
///
/// Database errors.
pub async fn start_run(
    pool: &PgPool,
    poller_host: &str,
    dry_run: bool,
    servers_total: usize,
) -> sqlx::Result<Uuid> {
    sqlx::query_scalar(
        "INSERT INTO poll_runs (poller_host, dry_run, servers_total) VALUES ($1, $2, $3) \
         RETURNING id",
    )
    .bind(poller_host)
    .bind(dry_run)
    .bind(to_i32(servers_total))
    .fetch_one(pool)
    .await
}

/// Records the end of a run with its counts.
///
/// # Errors
///
/// Database errors.
pub async fn finish_run(pool: &PgPool, run_id: Uuid, counts: RunCounts) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE poll_runs SET finished_at = now(), servers_total = $2, servers_ok = $3, \
         servers_failed = $4, servers_locked = $5 WHERE id = $1",
    )
    .bind(run_id)
    .bind(to_i32(counts.total))
    .bind(to_i32(counts.ok))
    .bind(to_i32(counts.failed))
    .bind(to_i32(counts.locked))
    .execute(pool)
    .await?;
    Ok(())
}

/// Inserts one server's result. Pass the snapshot transaction for a
/// successful server so the result commits with the rows it describes.
///
/// # Errors
///
/// Database errors.
pub async fn record_result(
    conn: &mut PgConnection,
    run_id: Uuid,
    result: &PollResult,
) -> sqlx::Result<()> {
    let skipped_items = serde_json::to_value(&result.skipped).unwrap_or_default();
    sqlx::query(
        "INSERT INTO poll_results (run_id, server_id, hostname, status, error, started_at, \
         duration_ms, domains, accounts, skipped, skipped_items, usage_source, webadmin_error) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
    )
    .bind(run_id)
    .bind(result.server_id)
    .bind(&result.hostname)
    .bind(result.status.as_str())
    .bind(&result.error)
    .bind(result.started_at)
    .bind(result.duration_ms)
    .bind(to_i32(result.domains))
    .bind(to_i32(result.accounts))
    .bind(to_i32(result.skipped.len()))
    .bind(skipped_items)
    .bind(result.usage_source)
    .bind(&result.webadmin_error)
    .execute(conn)
    .await?;
    Ok(())
}

/// Tries to take the poll lock of a server on this connection, without
/// waiting. The lock is a session-level advisory lock: it stays held while
/// the connection lives, is released by [`unlock_server`], and PostgreSQL
/// drops it when the connection ends, so a killed poller leaves no lock.
///
/// # Errors
///
/// Database errors.
pub async fn try_lock_server(conn: &mut PgConnection, server_id: Uuid) -> sqlx::Result<bool> {
    sqlx::query_scalar("SELECT pg_try_advisory_lock($1, hashtext($2::text))")
        .bind(POLL_LOCK_NAMESPACE)
        .bind(server_id)
        .fetch_one(conn)
        .await
}

/// Releases a lock taken by [`try_lock_server`] on the same connection.
///
/// # Errors
///
/// Database errors.
pub async fn unlock_server(conn: &mut PgConnection, server_id: Uuid) -> sqlx::Result<bool> {
    sqlx::query_scalar("SELECT pg_advisory_unlock($1, hashtext($2::text))")
        .bind(POLL_LOCK_NAMESPACE)
        .bind(server_id)
        .fetch_one(conn)
        .await
}

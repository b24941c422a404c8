//! The poller: collects every registered Axigen server concurrently and
//! replaces each server's snapshot in one transaction.
//!
//! The binary in `main.rs` reads the configuration and calls [`poll_once`]
//! once, or on a schedule; tests call it directly.

mod locks;
pub mod output;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use axiquota_core::axigen::collector::{self, CollectOptions};
use axiquota_core::model::{ServerEndpoint, Snapshot};
use axiquota_core::store::polls::{self, PollResult, PollStatus, RunCounts};
use axiquota_core::store::servers::{self, ServerWithPassword};
use axiquota_core::store::{describe_sqlx_error, snapshot};
use axiquota_core::{Secret, Vault};
use chrono::{DateTime, Utc};
use futures::StreamExt;
use serde::Serialize;
use sqlx::PgPool;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, info, info_span, warn};
use uuid::Uuid;

use crate::locks::PollLocks;

/// Exit codes that cron and scripts read.
pub mod exit_code {
    /// Every server was polled (or was being polled by another poller).
    pub const SUCCESS: u8 = 0;
    /// Nothing could be done: bad configuration or no database.
    pub const NOTHING_DONE: u8 = 1;
    /// Some servers failed and kept their previous snapshot; the others
    /// were written.
    pub const SOME_FAILED: u8 = 2;
}

/// Settings of one poll run.
#[derive(Debug, Clone)]
pub struct PollSettings {
    /// Host names to poll; empty polls every registered server.
    pub hostnames: Vec<String>,
    /// Servers collected at the same time.
    pub max_servers: usize,
    /// Time allowed for collecting one server, all sessions included.
    pub server_timeout: Duration,
    /// Collect and report, but write nothing to the database.
    pub dry_run: bool,
    /// Interval of progress lines in the log while a run lasts.
    pub progress_interval: Duration,
    pub collect: CollectOptions,
}

/// One server's outcome, with the snapshot kept for dry runs.
#[derive(Debug, Clone, Serialize)]
pub struct ServerOutcome {
    #[serde(flatten)]
    pub result: PollResult,
    /// The collected data, kept only in dry runs so it can be printed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub snapshot: Option<Snapshot>,
}

/// The outcome of one run.
#[derive(Debug, Clone, Serialize)]
pub struct RunReport {
    /// `None` for a dry run, which records nothing.
    pub run_id: Option<Uuid>,
    pub dry_run: bool,
    pub started_at: DateTime<Utc>,
    pub duration_ms: i64,
    pub counts: RunCounts,
    pub servers: Vec<ServerOutcome>,
}

impl RunReport {
    /// Returns the exit code for this run, as listed in [`exit_code`].
    pub fn exit_code(&self) -> u8 {
        if self.counts.failed > 0 {
            exit_code::SOME_FAILED
        } else {
            exit_code::SUCCESS
        }
    }

    pub fn accounts(&self) -> usize {
        self.servers
            .iter()
            .map(|outcome| outcome.result.accounts)
            .sum()
    }
}

/// Errors that stop a run before any server is polled.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(
        "no registered server has the host name {}{hint}: list them with GET /servers",
        .hostnames.join(", ")
    )]
    UnknownServers {
        hostnames: Vec<String>,
        /// Notes giving the host names of servers whose label was given instead.
        hint: String,
    },
    #[error("cannot read the registered servers: {0}")]
    Database(String),
    #[error("cannot open the database connection that holds the poll locks: {0}")]
    LockConnection(String),
}

fn elapsed_ms(start: Instant) -> i64 {
    i64::try_from(start.elapsed().as_millis()).unwrap_or(i64::MAX)
}

/// Polls the selected servers once.
///
/// Servers are collected concurrently, at most `settings.max_servers` at a
/// time. Each successful server's snapshot and poll result commit in one
/// transaction. A server that fails, times out or is interrupted by
/// `shutdown` keeps its previous snapshot. Once a write has begun it
/// finishes even when `shutdown` fires.
///
/// # Errors
///
/// [`RunError`] when the server list cannot be read or names unknown hosts.
/// Failures of single servers are reported in the [`RunReport`] instead.
pub async fn poll_once(
    pool: &PgPool,
    vault: &Vault,
    settings: &PollSettings,
    shutdown: &CancellationToken,
) -> Result<RunReport, RunError> {
    let started_at = Utc::now();
    let start = Instant::now();

    let servers = servers::list_with_passwords(pool, &settings.hostnames)
        .await
        .map_err(|error| RunError::Database(describe_sqlx_error(&error)))?;
    let unknown: Vec<String> = settings
        .hostnames
        .iter()
        .filter(|wanted| {
            !servers
                .iter()
                .any(|row| row.server.hostname.eq_ignore_ascii_case(wanted))
        })
        .cloned()
        .collect();
    if !unknown.is_empty() {
        let hint = label_hint(pool, &unknown).await;
        return Err(RunError::UnknownServers {
            hostnames: unknown,
            hint,
        });
    }

    let locks = PollLocks::open(pool)
        .await
        .map_err(|error| RunError::LockConnection(describe_sqlx_error(&error)))?;
    let write_slots = (pool.options().get_max_connections() as usize)
        .saturating_sub(1)
        .max(1);

    let run_id = if settings.dry_run {
        None
    } else {
        let host = poller_host();
        Some(
            polls::start_run(pool, &host, false, servers.len())
                .await
                .map_err(|error| RunError::Database(describe_sqlx_error(&error)))?,
        )
    };
    match run_id {
        Some(run_id) => info!(%run_id, servers = servers.len(), "poll run started"),
        None => info!(
            servers = servers.len(),
            "dry run started: nothing is written"
        ),
    }

    let progress = Progress::new(servers.len());
    let reporter = progress.spawn_reporter(settings.progress_interval);

    let mut collect_options = settings.collect.clone();
    collect_options.progress = Some(progress.accounts.clone());
    let run = Arc::new(RunContext {
        pool: pool.clone(),
        locks,
        write_slots: Semaphore::new(write_slots),
        vault: vault.clone(),
        settings: settings.clone(),
        collect_options,
        run_id,
        shutdown: shutdown.clone(),
    });
    let outcomes: Vec<ServerOutcome> = futures::stream::iter(servers)
        .map(|row| {
            let span = info_span!("server", server = %row.server.hostname);
            let run = run.clone();
            let servers_done = progress.servers_done.clone();
            // Each server is its own task, so the servers being polled
            // spread over every worker thread of the runtime instead of
            // sharing the one thread that runs this function.
            let server_task = tokio::spawn(
                async move {
                    let outcome = run.server_task().poll(row).await;
                    servers_done.fetch_add(1, Ordering::Relaxed);
                    outcome
                }
                .instrument(span),
            );
            async move {
                match server_task.await {
                    Ok(outcome) => outcome,
                    // A panic in a server's task stops the run as it
                    // would without the task; the tasks are never aborted.
                    Err(error) => std::panic::resume_unwind(error.into_panic()),
                }
            }
        })
        .buffer_unordered(settings.max_servers.max(1))
        .collect()
        .await;
    reporter.abort();
    // Every server task has ended, so this is the last reference.
    if let Ok(run) = Arc::try_unwrap(run) {
        run.locks.close().await;
    }

    let mut outcomes = outcomes;
    outcomes.sort_by(|left, right| left.result.hostname.cmp(&right.result.hostname));
    let counts = count_outcomes(&outcomes);

    if let Some(run_id) = run_id {
        if let Err(error) = polls::finish_run(pool, run_id, counts).await {
            warn!(%run_id, error = %describe_sqlx_error(&error), "cannot record the end of the run");
        }
    }
    let report = RunReport {
        run_id,
        dry_run: settings.dry_run,
        started_at,
        duration_ms: elapsed_ms(start),
        counts,
        servers: outcomes,
    };
    info!(
        ok = counts.ok,
        failed = counts.failed,
        locked = counts.locked,
        accounts = report.accounts(),
        duration_ms = report.duration_ms,
        "poll run finished"
    );
    Ok(report)
}

/// Returns, for values that are a server's label rather than its host
/// name, a note that gives the host name; empty when there is none.
async fn label_hint(pool: &PgPool, values: &[String]) -> String {
    let Ok(registered) = servers::list(pool).await else {
        return String::new();
    };
    let hints: Vec<String> = values
        .iter()
        .filter_map(|value| {
            let server = registered
                .iter()
                .find(|server| server.name.eq_ignore_ascii_case(value))?;
            Some(format!(
                "; {value:?} is the name of the server with host name {}",
                server.hostname
            ))
        })
        .collect();
    hints.concat()
}

fn count_outcomes(outcomes: &[ServerOutcome]) -> RunCounts {
    let mut counts = RunCounts {
        total: outcomes.len(),
        ..RunCounts::default()
    };
    for outcome in outcomes {
        match outcome.result.status {
            PollStatus::Ok => counts.ok += 1,
            PollStatus::Failed => counts.failed += 1,
            PollStatus::Locked => counts.locked += 1,
        }
    }
    counts
}

/// Returns the host name of this machine. It is recorded with each run so
/// that several poller instances can be distinguished.
fn poller_host() -> String {
    std::env::var("HOSTNAME")
        .ok()
        .filter(|name| !name.is_empty())
        .or_else(|| {
            std::fs::read_to_string("/etc/hostname")
                .ok()
                .map(|name| name.trim().to_owned())
        })
        .unwrap_or_default()
}

/// Counters that the progress reporter logs while a run lasts.
struct Progress {
    total: usize,
    servers_done: Arc<AtomicUsize>,
    accounts: Arc<AtomicU64>,
}

impl Progress {
    fn new(total: usize) -> Self {
        Self {
            total,
            servers_done: Arc::new(AtomicUsize::new(0)),
            accounts: Arc::new(AtomicU64::new(0)),
        }
    }

    /// Logs one progress line per interval, so a person watching a long
    /// run can follow it while a short run under cron logs none.
    fn spawn_reporter(&self, interval: Duration) -> tokio::task::JoinHandle<()> {
        let total = self.total;
        let servers_done = self.servers_done.clone();
        let accounts = self.accounts.clone();
        tokio::spawn(async move {
            if interval.is_zero() {
                return;
            }
            let mut ticker = tokio::time::interval(interval);
            ticker.tick().await;
            loop {
                ticker.tick().await;
                info!(
                    servers_done = servers_done.load(Ordering::Relaxed),
                    servers_total = total,
                    accounts_collected = accounts.load(Ordering::Relaxed),
                    "poll in progress"
                );
            }
        })
    }
}

/// State that every server task of one run shares.
struct RunContext {
    pool: PgPool,
    locks: PollLocks,
    /// Snapshot writes that may run at once: one fewer than the pool's
    /// connections, so that failures can still be recorded meanwhile.
    write_slots: Semaphore,
    vault: Vault,
    settings: PollSettings,
    collect_options: CollectOptions,
    run_id: Option<Uuid>,
    shutdown: CancellationToken,
}

impl RunContext {
    fn server_task(&self) -> ServerTask<'_> {
        ServerTask {
            pool: &self.pool,
            locks: &self.locks,
            write_slots: &self.write_slots,
            vault: &self.vault,
            settings: &self.settings,
            collect_options: &self.collect_options,
            run_id: self.run_id,
            shutdown: &self.shutdown,
        }
    }
}

/// Shared state of one server's poll, borrowed from the run.
struct ServerTask<'a> {
    pool: &'a PgPool,
    locks: &'a PollLocks,
    write_slots: &'a Semaphore,
    vault: &'a Vault,
    settings: &'a PollSettings,
    collect_options: &'a CollectOptions,
    run_id: Option<Uuid>,
    shutdown: &'a CancellationToken,
}

impl ServerTask<'_> {
    async fn poll(&self, row: ServerWithPassword) -> ServerOutcome {
        let started_at = Utc::now();
        let start = Instant::now();
        let server_id = row.server.id;
        let hostname = row.server.hostname.clone();
        let base = PollResult {
            server_id,
            hostname: hostname.clone(),
            status: PollStatus::Failed,
            error: None,
            started_at,
            duration_ms: 0,
            domains: 0,
            accounts: 0,
            skipped: Vec::new(),
            usage_source: None,
            webadmin_error: None,
            sent_ahead_dropped: false,
        };

        // The lock is held for the whole poll, so that a second poller
        // skips this server instead of collecting it again.
        match self.locks.try_lock(server_id).await {
            Ok(true) => {}
            Ok(false) => {
                info!("server skipped: another poller has its lock");
                let result = PollResult {
                    status: PollStatus::Locked,
                    error: Some(format!("{hostname}: another poller is polling this server")),
                    duration_ms: elapsed_ms(start),
                    ..base
                };
                self.record_outside_snapshot(&result).await;
                return ServerOutcome {
                    result,
                    snapshot: None,
                };
            }
            Err(error) => {
                let message = format!(
                    "{hostname}: cannot take the poll lock: {}",
                    describe_sqlx_error(&error)
                );
                return self.fail(base, start, message).await;
            }
        }

        let outcome = self.collect_and_write(row, base, start).await;
        self.locks.unlock(server_id).await;
        outcome
    }

    async fn collect_and_write(
        &self,
        row: ServerWithPassword,
        base: PollResult,
        start: Instant,
    ) -> ServerOutcome {
        let hostname = row.server.hostname.clone();
        let password = match self.vault.decrypt(&row.password_encrypted) {
            Ok(password) => password,
            Err(error) => {
                return self.fail(base, start, format!("{hostname}: {error}")).await;
            }
        };
        let endpoint = endpoint_of(&row, password);

        let collection = tokio::select! {
            outcome = tokio::time::timeout(
                self.settings.server_timeout,
                collector::collect(&endpoint, self.collect_options),
            ) => outcome,
            () = self.shutdown.cancelled() => {
                let message = format!("{hostname}: interrupted by shutdown before collection finished");
                return self.fail(base, start, message).await;
            }
        };
        let snapshot = match collection {
            Ok(Ok(snapshot)) => snapshot,
            Ok(Err(error)) => {
                return self.fail(base, start, error.to_string()).await;
            }
            Err(_) => {
                let message = format!(
                    "{hostname}: timed out after {} collecting the server; raise --server-timeout if it is large or slow",
                    humantime::format_duration(self.settings.server_timeout)
                );
                return self.fail(base, start, message).await;
            }
        };

        let result = PollResult {
            status: PollStatus::Ok,
            domains: snapshot.domains.len(),
            accounts: snapshot.account_count(),
            skipped: snapshot.skipped.clone(),
            usage_source: Some(snapshot.usage_source_summary()),
            webadmin_error: snapshot.webadmin_error.clone(),
            sent_ahead_dropped: snapshot.sent_ahead_dropped,
            ..base
        };
        if self.settings.dry_run {
            let result = PollResult {
                duration_ms: elapsed_ms(start),
                ..result
            };
            info!(
                domains = result.domains,
                accounts = result.accounts,
                "collected (dry run, nothing written)"
            );
            return ServerOutcome {
                result,
                snapshot: Some(snapshot),
            };
        }

        match self.write(&snapshot, result.clone(), start).await {
            Ok(result) => {
                info!(
                    domains = result.domains,
                    accounts = result.accounts,
                    duration_ms = result.duration_ms,
                    "snapshot replaced"
                );
                ServerOutcome {
                    result,
                    snapshot: None,
                }
            }
            Err(error) => {
                let message = format!(
                    "{hostname}: writing the snapshot failed: {}",
                    describe_sqlx_error(&error)
                );
                let failed = PollResult {
                    status: PollStatus::Failed,
                    domains: 0,
                    accounts: 0,
                    ..result
                };
                self.fail(failed, start, message).await
            }
        }
    }

    /// Replaces the snapshot and records the result in one transaction.
    async fn write(
        &self,
        snapshot: &Snapshot,
        result: PollResult,
        start: Instant,
    ) -> sqlx::Result<PollResult> {
        // Servers wait here rather than in the pool, whose wait is limited
        // by the connect timeout, so a burst of large writes waits its turn
        // instead of failing.
        let _slot = self
            .write_slots
            .acquire()
            .await
            .map_err(|_| sqlx::Error::PoolClosed)?;
        let mut transaction = self.pool.begin().await?;
        let counts =
            snapshot::replace_snapshot(&mut transaction, result.server_id, snapshot).await?;
        let result = PollResult {
            domains: counts.domains,
            accounts: counts.accounts,
            duration_ms: elapsed_ms(start),
            ..result
        };
        if let Some(run_id) = self.run_id {
            polls::record_result(&mut transaction, run_id, &result).await?;
        }
        transaction.commit().await?;
        Ok(result)
    }

    async fn fail(&self, base: PollResult, start: Instant, message: String) -> ServerOutcome {
        warn!(error = %message, "server failed; its previous snapshot is kept");
        let result = PollResult {
            status: PollStatus::Failed,
            error: Some(message),
            duration_ms: elapsed_ms(start),
            ..base
        };
        self.record_outside_snapshot(&result).await;
        ServerOutcome {
            result,
            snapshot: None,
        }
    }

    /// Records a result that comes with no snapshot (failed or locked).
    async fn record_outside_snapshot(&self, result: &PollResult) {
        let Some(run_id) = self.run_id else {
            return;
        };
        let outcome = match self.pool.acquire().await {
            Ok(mut connection) => polls::record_result(&mut connection, run_id, result).await,
            Err(error) => Err(error),
        };
        if let Err(error) = outcome {
            warn!(error = %describe_sqlx_error(&error), "cannot record the poll result");
        }
    }
}

fn endpoint_of(row: &ServerWithPassword, password: Secret) -> ServerEndpoint {
    let server = &row.server;
    ServerEndpoint {
        hostname: server.hostname.clone(),
        cli_port: u16::try_from(server.cli_port).unwrap_or(7000),
        webadmin_port: u16::try_from(server.webadmin_port).unwrap_or(9000),
        username: server.username.clone(),
        password,
        cli_tls: server.cli_tls,
        tls_verify: server.tls_verify,
        tls_fingerprints: server.tls_fingerprints.clone(),
        webadmin_enabled: server.webadmin_enabled,
        webadmin_allow_http: server.webadmin_allow_http,
    }
}

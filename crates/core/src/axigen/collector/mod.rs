//! The collector: one server's CLI and WebAdmin replies turned into one
//! complete [`Snapshot`], or an error.
//!
//! A first CLI session lists the domains while the WebAdmin usage feed is
//! fetched. Then up to `sessions_per_server` sessions share the work through
//! a queue: first each domain's account list, then the accounts in chunks.
//! Quotas always come from the CLI; usage comes from the feed when it worked
//! and lists the account, and from `SHOW RegistryInformation` otherwise.
//!
//! Domains and accounts that the server no longer has when they are
//! entered (`-ERR` on `UPDATE`) are recorded in [`Snapshot::skipped`]. A
//! session that is lost (closed or silent) is replaced once per position and
//! the work goes on where it stopped; a second loss at the same position, or
//! any other error, fails the whole server.

mod state;
mod worker;

use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::{Duration, Instant};

use chrono::Utc;
use futures::future::try_join_all;
use tracing::{info, instrument, warn};

use super::cli::{CliClient, CliError, ConnectOptions};
use super::webadmin::{self, FeedOptions};
use crate::model::{ServerEndpoint, Snapshot};
pub use state::ACCOUNT_CHUNK;
use state::{CollectState, Job};
use worker::Worker;

/// Limits and parallelism for collecting one server.
#[derive(Debug, Clone)]
pub struct CollectOptions {
    /// CLI sessions opened in parallel to one server. Real servers allow 20
    /// connections per client address by default, so keep this small.
    pub sessions_per_server: usize,
    /// Maximum time to open a TCP connection (and the TLS handshake).
    pub connect_timeout: Duration,
    /// Maximum time without data while a CLI reply is expected; also the
    /// stall timeout of the WebAdmin feed.
    pub reply_timeout: Duration,
    /// Maximum size of one CLI reply in bytes. A `LIST Accounts` reply for
    /// 100,000 accounts is a few megabytes.
    pub max_reply_bytes: usize,
    /// Maximum `-ERR` replies in one CLI session. A session that could pass
    /// it with its next step is replaced by a new one first. Keep it below
    /// the server's `maxErrors` (20 by default), which ends the session.
    /// Values below 3 count as 3, the most one step can receive, or below 5
    /// as 5 with `send_ahead`.
    pub max_errors_per_session: u32,
    /// Maximum time for the whole WebAdmin feed request.
    pub webadmin_timeout: Duration,
    /// Maximum size of the WebAdmin feed body in bytes.
    pub max_webadmin_bytes: usize,
    /// Sends each account's commands in one write instead of waiting for
    /// the prompt after each: one round trip per account instead of five or
    /// six. A server that leaves a command sent ahead unanswered for
    /// `reply_timeout` is read one command at a time for the rest of the
    /// collection.
    pub send_ahead: bool,
    /// Incremented once per account read or skipped, for progress reports.
    pub progress: Option<Arc<AtomicU64>>,
}

impl Default for CollectOptions {
    fn default() -> Self {
        Self {
            sessions_per_server: 3,
            connect_timeout: Duration::from_secs(10),
            reply_timeout: Duration::from_secs(30),
            max_reply_bytes: 64 * 1024 * 1024,
            max_errors_per_session: 10,
            webadmin_timeout: Duration::from_secs(120),
            max_webadmin_bytes: 256 * 1024 * 1024,
            send_ahead: false,
            progress: None,
        }
    }
}

impl CollectOptions {
    fn connect_options(&self) -> ConnectOptions {
        ConnectOptions {
            connect_timeout: self.connect_timeout,
            reply_timeout: self.reply_timeout,
            max_reply_bytes: self.max_reply_bytes,
        }
    }

    fn feed_options(&self) -> FeedOptions {
        FeedOptions {
            connect_timeout: self.connect_timeout,
            total_timeout: self.webadmin_timeout,
            stall_timeout: self.reply_timeout.min(self.webadmin_timeout),
            max_body_bytes: self.max_webadmin_bytes,
        }
    }
}

/// Collecting one server failed; no part of its data is returned.
#[derive(Debug, thiserror::Error)]
#[error("collecting server {hostname} failed: {source}")]
pub struct CollectError {
    pub hostname: String,
    #[source]
    pub source: CliError,
}

/// Collects one server's domains, accounts, quotas and usage.
///
/// # Errors
///
/// [`CollectError`] with the host name and the CLI error that stopped the
/// collection. A failing WebAdmin feed is not an error: it is recorded in
/// [`Snapshot::webadmin_error`] and CLI usage is used instead.
#[instrument(skip_all, fields(server = %endpoint.hostname))]
pub async fn collect(
    endpoint: &ServerEndpoint,
    options: &CollectOptions,
) -> Result<Snapshot, CollectError> {
    let started = Instant::now();
    let collected_at = Utc::now();
    let fail = |source: CliError| CollectError {
        hostname: endpoint.hostname.clone(),
        source,
    };

    // The feed request runs while the first session logs in and lists the
    // domains, so its latency is mostly hidden.
    let feed = async {
        if !endpoint.webadmin_enabled {
            return None;
        }
        Some(webadmin::fetch_usage(endpoint, &options.feed_options()).await)
    };
    let (feed, first) = tokio::join!(feed, list_domains(endpoint, options));
    let (first_client, domains) = first.map_err(fail)?;

    let (feed, webadmin_error) = match feed {
        Some(Ok(feed)) => {
            info!(url = %feed.url, accounts = feed.len(), skipped_rows = feed.skipped_rows, "read the WebAdmin usage feed");
            (Some(feed), None)
        }
        Some(Err(error)) => {
            warn!(%error, "WebAdmin usage feed failed; reading usage over the CLI");
            (None, Some(error.to_string()))
        }
        None => (None, None),
    };

    let state = CollectState::new(domains, feed, options.send_ahead);
    let mut workers: Vec<Worker<'_>> = (0..options.sessions_per_server.max(1))
        .map(|id| Worker::new(id, endpoint, options, &state))
        .collect();
    workers[0].adopt(first_client);

    // Phase one: every domain's account list. Phase two: the accounts.
    state.push_jobs((0..state.domain_count()).map(Job::ListAccounts));
    run_phase(&mut workers, &state).await.map_err(fail)?;
    state.push_account_jobs();
    run_phase(&mut workers, &state).await.map_err(fail)?;

    futures::future::join_all(workers.into_iter().map(Worker::quit)).await;

    let snapshot = state
        .into_snapshot(collected_at, webadmin_error)
        .map_err(fail)?;
    info!(
        domains = snapshot.domains.len(),
        accounts = snapshot.account_count(),
        skipped = snapshot.skipped.len(),
        usage_source = snapshot.usage_source_summary(),
        elapsed_ms = started.elapsed().as_millis() as u64,
        "collected"
    );
    Ok(snapshot)
}

/// Opens the first session and lists the domains, replacing the session
/// once if it is lost.
async fn list_domains(
    endpoint: &ServerEndpoint,
    options: &CollectOptions,
) -> Result<(CliClient, Vec<super::cli::ListedDomain>), CliError> {
    let connect = options.connect_options();
    let mut retried = false;
    loop {
        let attempt = async {
            let mut client = CliClient::login(endpoint, &connect).await?;
            let domains = client.list_domains().await?;
            Ok::<_, CliError>((client, domains))
        };
        match attempt.await {
            Ok(result) => return Ok(result),
            Err(error) if error.is_connection_lost() && !retried => {
                warn!(%error, "CLI session lost while listing domains; retrying on a new session");
                retried = true;
            }
            Err(error) => return Err(error),
        }
    }
}

/// Runs the workers until the queue is empty. A worker that could not open
/// its first session puts its job back, so the others run again for it.
async fn run_phase(workers: &mut [Worker<'_>], state: &CollectState) -> Result<(), CliError> {
    loop {
        try_join_all(
            workers
                .iter_mut()
                .filter(|worker| worker.is_active())
                .map(Worker::run),
        )
        .await?;
        if !state.has_jobs() {
            return Ok(());
        }
    }
}

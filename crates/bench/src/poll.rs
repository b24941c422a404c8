//! The poll benchmark: the real `poller` binary against the fake fleet for
//! the end-to-end figures and its peak memory, then the same work split into
//! its two halves in this process (every server collected, then every
//! snapshot written) to show where the time goes.

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use axiquota_core::Vault;
use axiquota_core::axigen::collector::{self, CollectOptions};
use axiquota_core::model::{ServerEndpoint, Snapshot};
use axiquota_core::store::servers;
use axiquota_core::store::snapshot;
use futures::{StreamExt, TryStreamExt};
use sqlx::{Acquire, PgPool};

use crate::process::{self, ChildUsage};

/// Concurrency of one poll and whether CLI commands are sent ahead,
/// passed to the poller as command-line options.
#[derive(Debug, Clone, Copy)]
pub struct Concurrency {
    pub max_servers: usize,
    pub sessions_per_server: usize,
    pub send_ahead: bool,
}

/// Runs the `poller` binary once against every registered server.
///
/// # Errors
///
/// When the poller cannot start or does not exit with 0 (every server
/// polled).
pub async fn run_poller(
    binary: &Path,
    database_url: &str,
    fernet_key: &str,
    concurrency: Concurrency,
    only: Option<&str>,
    log_file: &Path,
) -> anyhow::Result<ChildUsage> {
    let log = std::fs::File::create(log_file)
        .with_context(|| format!("creating {} failed", log_file.display()))?;
    let mut command = std::process::Command::new(binary);
    command
        .arg("--progress-interval")
        .arg("0")
        .arg("--max-servers")
        .arg(concurrency.max_servers.to_string())
        .arg("--sessions-per-server")
        .arg(concurrency.sessions_per_server.to_string())
        .env("DATABASE_URL", database_url)
        .env("FERNET_KEY", fernet_key)
        .env("RUST_LOG", "info")
        .env("LOG_FORMAT", "json")
        .stdout(Stdio::null())
        .stderr(log);
    if concurrency.send_ahead {
        command.arg("--send-ahead");
    }
    if let Some(hostname) = only {
        command.arg("--server").arg(hostname);
    }
    let usage = tokio::task::spawn_blocking(move || process::run_measured(&mut command))
        .await
        .context("the poller's waiting task failed")??;
    if !usage.status.success() {
        bail!(
            "the poller exited with {}; its log is in {}",
            usage.status,
            log_file.display()
        );
    }
    Ok(usage)
}

/// Wall time of the two halves of a poll done one after the other.
#[derive(Debug, Clone, Copy)]
pub struct Split {
    /// Every server collected, `max_servers` at a time, nothing written.
    pub collection: Duration,
    /// Every snapshot written, one transaction per server, `max_servers`
    /// at a time.
    pub writes: Duration,
    pub accounts: usize,
}

/// Collects every registered server in this process, then writes every
/// snapshot, timing each half.
///
/// # Errors
///
/// When a server fails to collect or a write fails.
pub async fn split_poll(
    pool: &PgPool,
    vault: &Vault,
    concurrency: Concurrency,
) -> anyhow::Result<Split> {
    let rows = servers::list_with_passwords(pool, &[]).await?;
    let options = CollectOptions {
        sessions_per_server: concurrency.sessions_per_server,
        send_ahead: concurrency.send_ahead,
        ..CollectOptions::default()
    };

    let mut endpoints = Vec::with_capacity(rows.len());
    for row in rows {
        let server = &row.server;
        endpoints.push((
            server.id,
            ServerEndpoint {
                hostname: server.hostname.clone(),
                cli_port: u16::try_from(server.cli_port)?,
                webadmin_port: u16::try_from(server.webadmin_port)?,
                username: server.username.clone(),
                password: vault.decrypt(&row.password_encrypted)?,
                cli_tls: server.cli_tls,
                tls_verify: server.tls_verify,
                tls_fingerprints: server.tls_fingerprints.clone(),
                webadmin_enabled: server.webadmin_enabled,
                webadmin_allow_http: server.webadmin_allow_http,
            },
        ));
    }

    // One task per server, as the poller runs them.
    let start = Instant::now();
    let snapshots: Vec<(uuid::Uuid, Snapshot)> = futures::stream::iter(endpoints)
        .map(|(server_id, endpoint)| {
            let options = options.clone();
            let task = tokio::spawn(async move {
                let snapshot = collector::collect(&endpoint, &options).await?;
                anyhow::Ok((server_id, snapshot))
            });
            async move { task.await? }
        })
        .buffer_unordered(concurrency.max_servers.max(1))
        .try_collect()
        .await?;
    let collection = start.elapsed();
    let accounts = snapshots.iter().map(|(_, s)| s.account_count()).sum();

    let start = Instant::now();
    futures::stream::iter(snapshots)
        .map(|(server_id, snapshot)| async move {
            let mut connection = pool.acquire().await?;
            let mut transaction = connection.begin().await?;
            snapshot::replace_snapshot(&mut transaction, server_id, &snapshot).await?;
            transaction.commit().await?;
            anyhow::Ok(())
        })
        .buffer_unordered(concurrency.max_servers.max(1))
        .try_collect::<Vec<()>>()
        .await?;
    let writes = start.elapsed();

    Ok(Split {
        collection,
        writes,
        accounts,
    })
}

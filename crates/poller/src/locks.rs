//! The poll locks of one run, held together on one connection of their own.
//!
//! A poll lock is a session-level advisory lock in PostgreSQL, so it lasts
//! as long as the connection that took it. Holding every lock of a run on
//! one connection keeps the number of servers polled at once independent
//! of the pool size: servers use pool connections only to write.

use std::collections::HashSet;
use std::time::Duration;

use axiquota_core::store::{describe_sqlx_error, polls};
use sqlx::postgres::PgConnectOptions;
use sqlx::{Connection, PgConnection, PgPool};
use tokio::sync::Mutex;
use tracing::{debug, info, warn};
use uuid::Uuid;

// NOTE: every lock of a run hangs on this one connection. If it breaks,
// PostgreSQL releases the locks of the servers being polled, and they stay
// released until a server starts or ends and the run opens a new
// connection, which takes them back. Another poller that reaches those
// servers in that window may collect them too.
pub(crate) struct PollLocks {
    state: Mutex<LockState>,
    options: PgConnectOptions,
}

/// The lock connection and the servers being polled.
struct LockState {
    connection: PgConnection,
    /// The connection's server process, ended when the connection is
    /// replaced so that its locks do not outlive it.
    backend_pid: Option<i32>,
    /// Servers being polled whose lock the connection holds.
    locked: HashSet<Uuid>,
    /// Servers being polled whose lock went with a broken connection and
    /// could not be taken back yet, because another session holds it.
    lost: HashSet<Uuid>,
}

impl PollLocks {
    /// Opens the connection that holds the locks, with the pool's settings
    /// but outside the pool.
    pub(crate) async fn open(pool: &PgPool) -> sqlx::Result<Self> {
        let options = (*pool.connect_options()).clone();
        let mut connection = PgConnection::connect_with(&options).await?;
        let backend_pid = backend_pid(&mut connection).await;
        Ok(Self {
            state: Mutex::new(LockState {
                connection,
                backend_pid,
                locked: HashSet::new(),
                lost: HashSet::new(),
            }),
            options,
        })
    }

    /// Takes the lock of one server. Returns `false` when another poller
    /// has it. A lock connection that fails a ping after an error is
    /// replaced first, and the new one takes back the locks of the servers
    /// being polled.
    pub(crate) async fn try_lock(&self, server_id: Uuid) -> sqlx::Result<bool> {
        let mut state = self.state.lock().await;
        self.retake_lost(&mut state).await;
        let taken = match polls::try_lock_server(&mut state.connection, server_id).await {
            Ok(taken) => taken,
            Err(error) => {
                if !self.replace_if_broken(&mut state, &error).await? {
                    return Err(error);
                }
                polls::try_lock_server(&mut state.connection, server_id).await?
            }
        };
        if taken {
            state.locked.insert(server_id);
        }
        Ok(taken)
    }

    /// Releases the lock of one server. A lock that cannot be released
    /// ends with the connection when the run closes it.
    pub(crate) async fn unlock(&self, server_id: Uuid) {
        let mut state = self.state.lock().await;
        state.lost.remove(&server_id);
        self.retake_lost(&mut state).await;
        if !state.locked.remove(&server_id) {
            // The lock went with a broken connection and was never taken
            // back, so there is nothing to release.
            return;
        }
        let Err(error) = polls::unlock_server(&mut state.connection, server_id).await else {
            return;
        };
        // A broken connection released this lock with the others, and its
        // replacement takes back those of the servers still being polled.
        match self.replace_if_broken(&mut state, &error).await {
            Ok(true) => {}
            Ok(false) => {
                warn!(%server_id, error = %describe_sqlx_error(&error), "cannot release the poll lock; it ends with the run");
            }
            Err(error) => log_reconnect_failure(&error),
        }
    }

    /// Tries again to take the locks lost with a broken connection, when
    /// there are any. A connection that fails on the way is replaced.
    async fn retake_lost(&self, state: &mut LockState) {
        if state.lost.is_empty() {
            return;
        }
        let Err(error) = take_back(state, false).await else {
            return;
        };
        match self.replace_if_broken(state, &error).await {
            Ok(true) => {}
            Ok(false) => {
                warn!(error = %describe_sqlx_error(&error), "taking back the poll locks failed");
            }
            Err(error) => log_reconnect_failure(&error),
        }
    }

    /// Replaces the lock connection when it fails a ping after `error`.
    /// Returns `false` when the connection still works.
    async fn replace_if_broken(
        &self,
        state: &mut LockState,
        error: &sqlx::Error,
    ) -> sqlx::Result<bool> {
        if state.connection.ping().await.is_ok() {
            return Ok(false);
        }
        warn!(
            error = %describe_sqlx_error(error),
            servers_being_polled = state.locked.len() + state.lost.len(),
            "the poll lock connection failed; opening a new one and taking back the locks of the servers being polled"
        );
        let broken = std::mem::take(&mut state.locked);
        state.lost.extend(broken);
        state.connection = PgConnection::connect_with(&self.options).await?;
        let old_pid = state.backend_pid.take();
        state.backend_pid = backend_pid(&mut state.connection).await;
        if let Some(old_pid) = old_pid {
            end_backend(&mut state.connection, old_pid).await;
        }
        take_back(state, true).await?;
        Ok(true)
    }

    /// Closes the connection, which releases any lock still held.
    pub(crate) async fn close(self) {
        if let Err(error) = self.state.into_inner().connection.close().await {
            warn!(error = %describe_sqlx_error(&error), "closing the poll lock connection failed");
        }
    }
}

fn log_reconnect_failure(error: &sqlx::Error) {
    warn!(error = %describe_sqlx_error(error), "opening a new poll lock connection failed, so the servers being polled hold no lock until the next server starts or ends");
}

/// Returns the server process id of `connection`, or `None` when the
/// query fails.
async fn backend_pid(connection: &mut PgConnection) -> Option<i32> {
    match sqlx::query_scalar("SELECT pg_backend_pid()")
        .fetch_one(connection)
        .await
    {
        Ok(pid) => Some(pid),
        Err(error) => {
            debug!(error = %describe_sqlx_error(&error), "reading the lock connection's process id failed");
            None
        }
    }
}

/// Ends the server process of a broken lock connection, in case PostgreSQL
/// has not noticed the break yet, and waits up to a second for it to go, so
/// that its locks are free to take back.
async fn end_backend(connection: &mut PgConnection, pid: i32) {
    let ended = sqlx::query_scalar::<_, bool>("SELECT pg_terminate_backend($1)")
        .bind(pid)
        .fetch_one(&mut *connection)
        .await;
    match ended {
        Ok(true) => {}
        Ok(false) => return,
        Err(error) => {
            debug!(pid, error = %describe_sqlx_error(&error), "ending the broken lock connection's process failed");
            return;
        }
    }
    for _ in 0..20 {
        let alive = sqlx::query_scalar::<_, bool>(
            "SELECT EXISTS (SELECT 1 FROM pg_stat_activity WHERE pid = $1)",
        )
        .bind(pid)
        .fetch_one(&mut *connection)
        .await;
        if !matches!(alive, Ok(true)) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Takes the lock of every server in `lost` on the current connection. A
/// lock that another session holds stays lost, and is logged as a warning
/// on the `first_try` after a reconnect. That session is another poller,
/// unless the broken connection's process could not be ended.
async fn take_back(state: &mut LockState, first_try: bool) -> sqlx::Result<()> {
    let lost: Vec<Uuid> = state.lost.iter().copied().collect();
    for server_id in lost {
        if polls::try_lock_server(&mut state.connection, server_id).await? {
            state.lost.remove(&server_id);
            state.locked.insert(server_id);
            info!(%server_id, "took back the poll lock on the new lock connection");
        } else if first_try {
            warn!(%server_id, "another session holds this server's lock, which the broken lock connection held; another poller may poll the server too");
        } else {
            debug!(%server_id, "another session still holds this server's lock");
        }
    }
    Ok(())
}

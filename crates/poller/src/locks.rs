//! The poll locks of one run, held together on one connection of their own.
//!
//! A poll lock is a session-level advisory lock in PostgreSQL, so it lasts
//! as long as the connection that took it. Holding every lock of a run on
//! one connection keeps the number of servers polled at once independent
//! of the pool size: servers use pool connections only to write.

use std::collections::HashSet;

use axiquota_core::store::{describe_sqlx_error, polls};
use sqlx::postgres::PgConnectOptions;
use sqlx::{Connection, PgConnection, PgPool};
use tokio::sync::Mutex;
use tracing::warn;
use uuid::Uuid;

// NOTE: every lock of a run hangs on this one connection. If it breaks,
// PostgreSQL releases the locks of the servers being polled, and they stay
// released until a server starts or ends and the run opens a new
// connection, which takes them back. A second poller that starts in that
// window may collect those servers too.
pub(crate) struct PollLocks {
    state: Mutex<LockState>,
    options: PgConnectOptions,
}

/// The lock connection and the servers whose locks it should hold.
struct LockState {
    connection: PgConnection,
    held: HashSet<Uuid>,
}

impl PollLocks {
    /// Opens the connection that holds the locks, with the pool's settings
    /// but outside the pool.
    pub(crate) async fn open(pool: &PgPool) -> sqlx::Result<Self> {
        let options = (*pool.connect_options()).clone();
        let connection = PgConnection::connect_with(&options).await?;
        Ok(Self {
            state: Mutex::new(LockState {
                connection,
                held: HashSet::new(),
            }),
            options,
        })
    }

    /// Takes the lock of one server. Returns `false` when another poller
    /// has it. A lock connection that fails a ping after an error is
    /// replaced first.
    pub(crate) async fn try_lock(&self, server_id: Uuid) -> sqlx::Result<bool> {
        let mut state = self.state.lock().await;
        let error = match polls::try_lock_server(&mut state.connection, server_id).await {
            Err(error) if state.connection.ping().await.is_err() => error,
            result => {
                if let Ok(true) = result {
                    state.held.insert(server_id);
                }
                return result;
            }
        };
        self.reconnect(&mut state, &error).await?;
        let taken = polls::try_lock_server(&mut state.connection, server_id).await?;
        if taken {
            state.held.insert(server_id);
        }
        Ok(taken)
    }

    /// Releases the lock of one server. A lock that cannot be released
    /// ends with the connection when the run closes it.
    pub(crate) async fn unlock(&self, server_id: Uuid) {
        let mut state = self.state.lock().await;
        state.held.remove(&server_id);
        let Err(error) = polls::unlock_server(&mut state.connection, server_id).await else {
            return;
        };
        if state.connection.ping().await.is_ok() {
            warn!(%server_id, error = %describe_sqlx_error(&error), "cannot release the poll lock; it ends with the run");
            return;
        }
        // The broken connection released this lock with the others, and
        // the servers still being polled need theirs back.
        if let Err(error) = self.reconnect(&mut state, &error).await {
            warn!(error = %describe_sqlx_error(&error), "opening a new poll lock connection failed, so the servers being polled hold no lock until the next server starts or ends");
        }
    }

    /// Replaces a broken lock connection and takes back the locks of the
    /// servers still being polled. A lock that another poller took in the
    /// meantime is logged and forgotten.
    async fn reconnect(&self, state: &mut LockState, error: &sqlx::Error) -> sqlx::Result<()> {
        warn!(
            error = %describe_sqlx_error(error),
            servers_being_polled = state.held.len(),
            "the poll lock connection failed; opening a new one and taking back the locks of the servers being polled"
        );
        state.connection = PgConnection::connect_with(&self.options).await?;
        let mut lost = Vec::new();
        for &server_id in &state.held {
            match polls::try_lock_server(&mut state.connection, server_id).await {
                Ok(true) => {}
                Ok(false) => {
                    warn!(%server_id, "another poller took this server's lock while the lock connection was down, so both may poll it");
                    lost.push(server_id);
                }
                Err(error) => {
                    warn!(%server_id, error = %describe_sqlx_error(&error), "taking back the poll lock failed");
                    lost.push(server_id);
                }
            }
        }
        for server_id in lost {
            state.held.remove(&server_id);
        }
        Ok(())
    }

    /// Closes the connection, which releases any lock still held.
    pub(crate) async fn close(self) {
        if let Err(error) = self.state.into_inner().connection.close().await {
            warn!(error = %describe_sqlx_error(&error), "closing the poll lock connection failed");
        }
    }
}

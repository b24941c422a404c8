//! The poll locks of one run, held together on one connection of their own.
//!
//! A poll lock is a session-level advisory lock in PostgreSQL, so it lasts
//! as long as the connection that took it. Holding every lock of a run on
//! one connection keeps the number of servers polled at once independent
//! of the pool size: servers use pool connections only to write.

use axiquota_core::store::{describe_sqlx_error, polls};
use sqlx::postgres::PgConnectOptions;
use sqlx::{Connection, PgConnection, PgPool};
use tokio::sync::Mutex;
use tracing::warn;
use uuid::Uuid;

// NOTE: every lock of a run hangs on this one connection. If it breaks in
// the middle of a run, PostgreSQL releases the locks of the servers being
// polled, so a second poller may collect them too. The next server to start
// opens a new connection for its lock and the locks after it.
pub(crate) struct PollLocks {
    connection: Mutex<PgConnection>,
    options: PgConnectOptions,
}

impl PollLocks {
    /// Opens the connection that holds the locks, with the pool's settings
    /// but outside the pool.
    pub(crate) async fn open(pool: &PgPool) -> sqlx::Result<Self> {
        let options = (*pool.connect_options()).clone();
        let connection = PgConnection::connect_with(&options).await?;
        Ok(Self {
            connection: Mutex::new(connection),
            options,
        })
    }

    /// Takes the lock of one server. Returns `false` when another poller
    /// has it. A lock connection that fails a ping after an error is
    /// replaced first.
    pub(crate) async fn try_lock(&self, server_id: Uuid) -> sqlx::Result<bool> {
        let mut connection = self.connection.lock().await;
        let error = match polls::try_lock_server(&mut connection, server_id).await {
            Err(error) if connection.ping().await.is_err() => error,
            result => return result,
        };
        warn!(error = %describe_sqlx_error(&error), "the poll lock connection failed; opening a new one, so the servers being polled have lost their locks");
        *connection = PgConnection::connect_with(&self.options).await?;
        polls::try_lock_server(&mut connection, server_id).await
    }

    /// Releases the lock of one server. A lock that cannot be released
    /// ends with the connection when the run closes it.
    pub(crate) async fn unlock(&self, server_id: Uuid) {
        let mut connection = self.connection.lock().await;
        if let Err(error) = polls::unlock_server(&mut connection, server_id).await {
            warn!(%server_id, error = %describe_sqlx_error(&error), "cannot release the poll lock; it ends with the run");
        }
    }

    /// Closes the connection, which releases any lock still held.
    pub(crate) async fn close(self) {
        if let Err(error) = self.connection.into_inner().close().await {
            warn!(error = %describe_sqlx_error(&error), "closing the poll lock connection failed");
        }
    }
}

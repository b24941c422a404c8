//! The `servers` table: registration, removal, listing and key rotation.

use std::fmt;

use sqlx::PgPool;
use uuid::Uuid;

use crate::model::{NewServer, Server};
use crate::vault::Vault;

/// The columns of [`Server`], as a literal so that queries stay `&'static str`.
macro_rules! server_columns {
    () => {
        "id, name, hostname, cli_port, webadmin_port, username, cli_tls, tls_verify, \
         webadmin_enabled, webadmin_allow_http, created_at, updated_at"
    };
}

#[derive(Debug, thiserror::Error)]
pub enum InsertServerError {
    #[error("a server with hostname {0:?} is already registered (host names ignore letter case)")]
    Duplicate(String),
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

/// Registers a server, encrypting its password with the vault's first key.
///
/// # Errors
///
/// [`InsertServerError::Duplicate`] when the host name exists in any letter
/// case; database errors otherwise.
pub async fn insert(
    pool: &PgPool,
    vault: &Vault,
    server: &NewServer,
) -> Result<Server, InsertServerError> {
    let password_encrypted = vault.encrypt(&server.password);
    let query = concat!(
        "INSERT INTO servers (name, hostname, cli_port, webadmin_port, username, \
         password_encrypted, cli_tls, tls_verify, webadmin_enabled, webadmin_allow_http) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING ",
        server_columns!()
    );
    sqlx::query_as::<_, Server>(query)
        .bind(&server.name)
        .bind(&server.hostname)
        .bind(i32::from(server.cli_port))
        .bind(i32::from(server.webadmin_port))
        .bind(&server.username)
        .bind(password_encrypted)
        .bind(server.cli_tls)
        .bind(server.tls_verify)
        .bind(server.webadmin_enabled)
        .bind(server.webadmin_allow_http)
        .fetch_one(pool)
        .await
        .map_err(|error| {
            if super::is_unique_violation(&error) {
                InsertServerError::Duplicate(server.hostname.clone())
            } else {
                InsertServerError::Database(error)
            }
        })
}

/// Deletes a server, matched by host name in any letter case, together with
/// its snapshot and poll history. Returns the deleted server, or `None` when
/// no server has that host name.
///
/// # Errors
///
/// Database errors.
pub async fn delete_by_hostname(pool: &PgPool, hostname: &str) -> sqlx::Result<Option<Server>> {
    let query = concat!(
        "DELETE FROM servers WHERE lower(hostname) = lower($1) RETURNING ",
        server_columns!()
    );
    sqlx::query_as::<_, Server>(query)
        .bind(hostname)
        .fetch_optional(pool)
        .await
}

/// Finds a server by host name in any letter case.
///
/// # Errors
///
/// Database errors.
pub async fn find_by_hostname(pool: &PgPool, hostname: &str) -> sqlx::Result<Option<Server>> {
    let query = concat!(
        "SELECT ",
        server_columns!(),
        " FROM servers WHERE lower(hostname) = lower($1)"
    );
    sqlx::query_as::<_, Server>(query)
        .bind(hostname)
        .fetch_optional(pool)
        .await
}

/// Lists every server, ordered by name and then host name.
///
/// # Errors
///
/// Database errors.
pub async fn list(pool: &PgPool) -> sqlx::Result<Vec<Server>> {
    let query = concat!(
        "SELECT ",
        server_columns!(),
        " FROM servers ORDER BY name, lower(hostname)"
    );
    sqlx::query_as::<_, Server>(query).fetch_all(pool).await
}

/// A server together with its encrypted password, as the poller needs it.
#[derive(Clone, sqlx::FromRow)]
pub struct ServerWithPassword {
    #[sqlx(flatten)]
    pub server: Server,
    pub password_encrypted: String,
}

impl fmt::Debug for ServerWithPassword {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerWithPassword")
            .field("server", &self.server)
            .field("password_encrypted", &"[redacted]")
            .finish()
    }
}

/// Lists the servers to poll with their encrypted passwords. An empty
/// `hostnames` selects every server; otherwise only those host names (any
/// letter case) are returned.
///
/// # Errors
///
/// Database errors.
pub async fn list_with_passwords(
    pool: &PgPool,
    hostnames: &[String],
) -> sqlx::Result<Vec<ServerWithPassword>> {
    let lowered: Vec<String> = hostnames.iter().map(|name| name.to_lowercase()).collect();
    let query = concat!(
        "SELECT ",
        server_columns!(),
        ", password_encrypted FROM servers \
         WHERE cardinality($1::text[]) = 0 OR lower(hostname) = ANY($1) \
         ORDER BY name, lower(hostname)"
    );
    sqlx::query_as::<_, ServerWithPassword>(query)
        .bind(&lowered)
        .fetch_all(pool)
        .await
}

/// What a key rotation did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RotationReport {
    pub total: usize,
    pub reencrypted: usize,
    pub already_current: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum RotationError {
    #[error(
        "cannot decrypt the password of {}: add the key it was encrypted with to FERNET_KEY \
         (after the new key) and run the rotation again; nothing was changed",
        .0.join(", ")
    )]
    Undecryptable(Vec<String>),
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

/// Re-encrypts every stored password with the vault's first key, in one
/// transaction. Passwords already encrypted with the first key are left as
/// they are. If any password cannot be decrypted, nothing is changed.
///
/// # Errors
///
/// [`RotationError::Undecryptable`] naming every server whose password no
/// key opens; database errors.
pub async fn reencrypt_passwords(
    pool: &PgPool,
    vault: &Vault,
) -> Result<RotationReport, RotationError> {
    let mut transaction = pool.begin().await?;
    let rows: Vec<(Uuid, String, String)> = sqlx::query_as(
        "SELECT id, hostname, password_encrypted FROM servers ORDER BY hostname FOR UPDATE",
    )
    .fetch_all(&mut *transaction)
    .await?;

    let mut report = RotationReport {
        total: rows.len(),
        ..RotationReport::default()
    };
    let mut updates: Vec<(Uuid, String)> = Vec::new();
    let mut failed: Vec<String> = Vec::new();
    for (id, hostname, token) in rows {
        if vault.is_current(&token) {
            report.already_current += 1;
            continue;
        }
        match vault.reencrypt(&token) {
            Ok(new_token) => updates.push((id, new_token)),
            Err(_) => failed.push(hostname),
        }
    }
    if !failed.is_empty() {
        return Err(RotationError::Undecryptable(failed));
    }

    let (ids, tokens): (Vec<Uuid>, Vec<String>) = updates.into_iter().unzip();
    report.reencrypted = ids.len();
    sqlx::query(
        "UPDATE servers SET password_encrypted = new.token, updated_at = now() \
         FROM UNNEST($1::uuid[], $2::text[]) AS new (id, token) WHERE servers.id = new.id",
    )
    .bind(&ids)
    .bind(&tokens)
    .execute(&mut *transaction)
    .await?;
    transaction.commit().await?;
    Ok(report)
}

//! The `servers` table: registration, changes, removal, listing and key
//! rotation.

use std::fmt;

use sqlx::PgPool;
use uuid::Uuid;

use crate::model::{NewServer, Server};
use crate::secret::Secret;
use crate::vault::Vault;

/// The columns of [`Server`], as a literal so that queries stay `&'static str`.
macro_rules! server_columns {
    () => {
        "id, name, hostname, cli_port, webadmin_port, username, cli_tls, tls_verify, \
         tls_fingerprints, webadmin_enabled, webadmin_allow_http, created_at, updated_at"
    };
}

/// Failure to add or change a server.
#[derive(Debug, thiserror::Error)]
pub enum SaveServerError {
    #[error("a server with hostname {0:?} is already registered (host names ignore letter case)")]
    Duplicate(String),
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

/// Registers a server, encrypting its password with the vault's first key.
///
/// # Errors
///
/// [`SaveServerError::Duplicate`] when the host name exists in any letter
/// case; database errors otherwise.
pub async fn insert(
    pool: &PgPool,
    vault: &Vault,
    server: &NewServer,
) -> Result<Server, SaveServerError> {
    let password_encrypted = vault.encrypt(&server.password);
    let query = concat!(
        "INSERT INTO servers (name, hostname, cli_port, webadmin_port, username, \
         password_encrypted, cli_tls, tls_verify, webadmin_enabled, webadmin_allow_http, \
         tls_fingerprints) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) RETURNING ",
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
        .bind(&server.tls_fingerprints)
        .fetch_one(pool)
        .await
        .map_err(|error| {
            if super::is_unique_violation(&error) {
                SaveServerError::Duplicate(server.hostname.clone())
            } else {
                SaveServerError::Database(error)
            }
        })
}

/// Changes to a registered server. `None` keeps the stored value.
#[derive(Debug, Default)]
pub struct ServerChanges {
    /// A new host name, unique in any letter case like every host name.
    pub hostname: Option<String>,
    pub name: Option<String>,
    pub cli_port: Option<u16>,
    pub webadmin_port: Option<u16>,
    pub username: Option<String>,
    /// Encrypted with the vault's first key before it is stored.
    pub password: Option<Secret>,
    pub cli_tls: Option<bool>,
    pub tls_verify: Option<bool>,
    /// SHA-256 fingerprints as lower-case hex; an empty list removes them.
    pub tls_fingerprints: Option<Vec<String>>,
    pub webadmin_enabled: Option<bool>,
    pub webadmin_allow_http: Option<bool>,
}

impl ServerChanges {
    /// Returns whether no field would change.
    pub fn is_empty(&self) -> bool {
        self.hostname.is_none()
            && self.name.is_none()
            && self.cli_port.is_none()
            && self.webadmin_port.is_none()
            && self.username.is_none()
            && self.password.is_none()
            && self.cli_tls.is_none()
            && self.tls_verify.is_none()
            && self.tls_fingerprints.is_none()
            && self.webadmin_enabled.is_none()
            && self.webadmin_allow_http.is_none()
    }
}

/// Applies `changes` to the server with this host name in any letter case,
/// keeping its snapshot and poll history. Returns the changed server, or
/// `None` when no server has that host name.
///
/// # Errors
///
/// [`SaveServerError::Duplicate`] when the new host name belongs to another
/// server in any letter case; database errors otherwise.
pub async fn update_by_hostname(
    pool: &PgPool,
    vault: &Vault,
    hostname: &str,
    changes: &ServerChanges,
) -> Result<Option<Server>, SaveServerError> {
    let password_encrypted = changes
        .password
        .as_ref()
        .map(|password| vault.encrypt(password));
    let query = concat!(
        "UPDATE servers SET name = coalesce($2, name), cli_port = coalesce($3, cli_port), \
         webadmin_port = coalesce($4, webadmin_port), username = coalesce($5, username), \
         password_encrypted = coalesce($6, password_encrypted), \
         cli_tls = coalesce($7, cli_tls), tls_verify = coalesce($8, tls_verify), \
         webadmin_enabled = coalesce($9, webadmin_enabled), \
         webadmin_allow_http = coalesce($10, webadmin_allow_http), \
         tls_fingerprints = coalesce($11, tls_fingerprints), \
         hostname = coalesce($12, hostname), updated_at = now() \
         WHERE lower(hostname) = lower($1) RETURNING ",
        server_columns!()
    );
    sqlx::query_as::<_, Server>(query)
        .bind(hostname)
        .bind(changes.name.as_deref())
        .bind(changes.cli_port.map(i32::from))
        .bind(changes.webadmin_port.map(i32::from))
        .bind(changes.username.as_deref())
        .bind(password_encrypted)
        .bind(changes.cli_tls)
        .bind(changes.tls_verify)
        .bind(changes.webadmin_enabled)
        .bind(changes.webadmin_allow_http)
        .bind(changes.tls_fingerprints.as_deref())
        .bind(changes.hostname.as_deref())
        .fetch_optional(pool)
        .await
        .map_err(|error| match &changes.hostname {
            Some(new_hostname) if super::is_unique_violation(&error) => {
                SaveServerError::Duplicate(new_hostname.clone())
            }
            _ => SaveServerError::Database(error),
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

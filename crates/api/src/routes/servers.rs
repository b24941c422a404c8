//! Registration of Axigen servers: add, update, delete, list.

use axiquota_core::Secret;
use axiquota_core::model::NewServer;
use axiquota_core::store::report::{self, ServerStatus};
use axiquota_core::store::servers::{self, SaveServerError, ServerChanges};
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::server_not_found;
use crate::AppState;
use crate::auth::{AdminAccess, ReadAccess, Scope};
use crate::csv;
use crate::error::{ApiError, ErrorBody};
use crate::extract::{AcceptHeader, Format, JsonBody, QueryParams};
use crate::validate;
use crate::views::{ServerListing, ServerView};

fn default_cli_port() -> i64 {
    7000
}

fn default_webadmin_port() -> i64 {
    9000
}

fn enabled() -> bool {
    true
}

/// A server to register. Unknown fields are rejected.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AddServerRequest {
    /// Label shown in reports, which need not be unique.
    #[schema(example = "mx1")]
    pub name: String,
    /// Host name or IP address, without scheme, port or path; unique in any
    /// letter case.
    #[schema(example = "mx1.example.net")]
    pub hostname: String,
    /// Port of the Axigen admin CLI.
    #[serde(default = "default_cli_port")]
    #[schema(default = 7000, minimum = 1, maximum = 65535)]
    pub cli_port: i64,
    /// Port of WebAdmin, used for the usage feed.
    #[serde(default = "default_webadmin_port")]
    #[schema(default = 9000, minimum = 1, maximum = 65535)]
    pub webadmin_port: i64,
    /// Admin user for the CLI and WebAdmin.
    #[schema(example = "admin")]
    pub username: String,
    /// Admin password; stored encrypted, never returned.
    #[schema(format = Password)]
    pub password: String,
    /// The CLI listener speaks TLS from the first byte.
    #[serde(default)]
    #[schema(default = false)]
    pub cli_tls: bool,
    /// Check TLS certificates against the system's trusted CAs. For a
    /// self-signed certificate, set `tls_fingerprints` or turn this off.
    #[serde(default = "enabled")]
    #[schema(default = true)]
    pub tls_verify: bool,
    /// SHA-256 fingerprints of the certificates to accept (at most 8), as
    /// `openssl x509 -noout -fingerprint -sha256` prints them. When set,
    /// only these certificates are accepted and `tls_verify` has no effect.
    #[serde(default)]
    #[schema(example = json!(["3f:0a:...:9c"]))]
    pub tls_fingerprints: Vec<String>,
    /// Read usage from the WebAdmin feed (one request per server) before
    /// falling back to the CLI.
    #[serde(default = "enabled")]
    #[schema(default = true)]
    pub webadmin_enabled: bool,
    /// Allow the WebAdmin feed over plain HTTP when HTTPS fails; the
    /// credentials then cross the network in clear.
    #[serde(default)]
    #[schema(default = false)]
    pub webadmin_allow_http: bool,
}

impl std::fmt::Debug for AddServerRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AddServerRequest")
            .field("name", &self.name)
            .field("hostname", &self.hostname)
            .field("password", &"[redacted]")
            .finish_non_exhaustive()
    }
}

impl AddServerRequest {
    /// Checks every field and builds the store's input.
    fn validate(self) -> Result<NewServer, ApiError> {
        validate::text("name", &self.name, validate::MAX_TEXT_LEN)?;
        validate::hostname("hostname", &self.hostname)?;
        let cli_port = validate::port("cli_port", self.cli_port)?;
        let webadmin_port = validate::port("webadmin_port", self.webadmin_port)?;
        validate::text("username", &self.username, validate::MAX_TEXT_LEN)?;
        validate::password(&self.password)?;
        let tls_fingerprints = validate::fingerprints(&self.tls_fingerprints)?;
        Ok(NewServer {
            name: self.name,
            hostname: self.hostname,
            cli_port,
            webadmin_port,
            username: self.username,
            password: Secret::new(self.password),
            cli_tls: self.cli_tls,
            tls_verify: self.tls_verify,
            tls_fingerprints,
            webadmin_enabled: self.webadmin_enabled,
            webadmin_allow_http: self.webadmin_allow_http,
        })
    }
}

/// Response to a successful registration or change: the server as stored.
#[derive(Debug, Serialize, ToSchema)]
pub struct ServerResponse {
    /// Always `true`.
    pub success: bool,
    pub message: String,
    pub server: ServerView,
}

/// Registers an Axigen server. Its password is encrypted with FERNET_KEY
/// before it is stored. The server is collected by the next poller run.
#[utoipa::path(
    post,
    path = "/add_server",
    tag = "servers",
    request_body = AddServerRequest,
    security(("bearer" = [])),
    responses(
        (status = 201, description = "Server registered", body = ServerResponse),
        (status = 400, description = "Malformed JSON, a missing, unknown or invalid field", body = ErrorBody),
        (status = 401, description = "Missing, invalid or expired token", body = ErrorBody),
        (status = 403, description = "The token lacks the admin scope", body = ErrorBody),
        (status = 409, description = "A server with this host name (in any letter case) exists", body = ErrorBody),
        (status = 413, description = "Body larger than 16 KiB", body = ErrorBody),
        (status = 415, description = "Body is not application/json", body = ErrorBody),
        (status = 500, description = "Internal error; the cause is logged", body = ErrorBody),
    )
)]
pub async fn add_server(
    _admin: AdminAccess,
    State(state): State<AppState>,
    JsonBody(request): JsonBody<AddServerRequest>,
) -> Result<(StatusCode, Json<ServerResponse>), ApiError> {
    let new_server = request.validate()?;
    let server = servers::insert(&state.pool, &state.vault, &new_server)
        .await
        .map_err(|error| {
            save_error(error, "hostname", |hostname| {
                format!(
                    "server already registered: a server with hostname {hostname:?} exists (host names ignore letter case); change it with PATCH /update_server"
                )
            })
        })?;
    tracing::info!(server = %server.hostname, id = %server.id, "server registered");

    let message = format!("server {} ({}) added", server.name, server.hostname);
    let status = ServerStatus {
        server,
        last_poll_at: None,
        last_poll_status: None,
        last_poll_error: None,
        last_poll_duration_ms: None,
        last_poll_usage_source: None,
        last_poll_webadmin_error: None,
        last_poll_skipped: None,
        last_poll_skipped_items: None,
        last_success_at: None,
        collected_at: None,
        domains: 0,
        accounts: 0,
        used_kb: 0,
    };
    Ok((
        StatusCode::CREATED,
        Json(ServerResponse {
            success: true,
            message,
            server: ServerView::new(status, true),
        }),
    ))
}

/// Changes to a registered server, found by its host name. Fields left out
/// (or null) keep their stored value. Unknown fields are rejected.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateServerRequest {
    /// Host name of the server to change, in any letter case.
    #[schema(example = "mx1.example.net")]
    pub hostname: String,
    /// A new host name for the server, for example after its DNS name
    /// changed. It must not belong to another server.
    #[schema(example = "mail1.example.net")]
    pub new_hostname: Option<String>,
    /// Label shown in reports.
    pub name: Option<String>,
    /// Port of the Axigen admin CLI.
    #[schema(minimum = 1, maximum = 65535)]
    pub cli_port: Option<i64>,
    /// Port of WebAdmin, used for the usage feed.
    #[schema(minimum = 1, maximum = 65535)]
    pub webadmin_port: Option<i64>,
    /// Admin user for the CLI and WebAdmin.
    pub username: Option<String>,
    /// Admin password, stored encrypted and never returned.
    #[schema(format = Password)]
    pub password: Option<String>,
    /// The CLI listener speaks TLS from the first byte.
    pub cli_tls: Option<bool>,
    /// Check TLS certificates against the system's trusted CAs.
    pub tls_verify: Option<bool>,
    /// SHA-256 fingerprints of the certificates to accept. An empty list
    /// removes them.
    pub tls_fingerprints: Option<Vec<String>>,
    /// Read usage from the WebAdmin feed before falling back to the CLI.
    pub webadmin_enabled: Option<bool>,
    /// Allow the WebAdmin feed over plain HTTP when HTTPS fails.
    pub webadmin_allow_http: Option<bool>,
}

impl std::fmt::Debug for UpdateServerRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UpdateServerRequest")
            .field("hostname", &self.hostname)
            .field("new_hostname", &self.new_hostname)
            .field("name", &self.name)
            .field("password", &self.password.as_ref().map(|_| "[redacted]"))
            .finish_non_exhaustive()
    }
}

impl UpdateServerRequest {
    /// Checks every field given and builds the store's changes.
    fn validate(self) -> Result<(String, ServerChanges), ApiError> {
        validate::hostname("hostname", &self.hostname)?;
        if let Some(new_hostname) = &self.new_hostname {
            validate::hostname("new_hostname", new_hostname)?;
        }
        if let Some(name) = &self.name {
            validate::text("name", name, validate::MAX_TEXT_LEN)?;
        }
        let cli_port = self
            .cli_port
            .map(|port| validate::port("cli_port", port))
            .transpose()?;
        let webadmin_port = self
            .webadmin_port
            .map(|port| validate::port("webadmin_port", port))
            .transpose()?;
        if let Some(username) = &self.username {
            validate::text("username", username, validate::MAX_TEXT_LEN)?;
        }
        if let Some(password) = &self.password {
            validate::password(password)?;
        }
        let tls_fingerprints = self
            .tls_fingerprints
            .as_deref()
            .map(validate::fingerprints)
            .transpose()?;
        let changes = ServerChanges {
            hostname: self.new_hostname,
            name: self.name,
            cli_port,
            webadmin_port,
            username: self.username,
            password: self.password.map(Secret::new),
            cli_tls: self.cli_tls,
            tls_verify: self.tls_verify,
            tls_fingerprints,
            webadmin_enabled: self.webadmin_enabled,
            webadmin_allow_http: self.webadmin_allow_http,
        };
        if changes.is_empty() {
            return Err(ApiError::bad_request(
                None,
                "nothing to update: give at least one field to change besides hostname, \
                 such as password, cli_port or new_hostname",
            ));
        }
        Ok((self.hostname, changes))
    }
}

/// Changes a registered server's settings or credentials. Its stored
/// snapshot and poll history stay, and the next poller run uses the new
/// settings.
#[utoipa::path(
    patch,
    path = "/update_server",
    tag = "servers",
    request_body = UpdateServerRequest,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Server changed", body = ServerResponse),
        (status = 400, description = "Malformed JSON, an unknown or invalid field, or nothing to change", body = ErrorBody),
        (status = 401, description = "Missing, invalid or expired token", body = ErrorBody),
        (status = 403, description = "The token lacks the admin scope", body = ErrorBody),
        (status = 404, description = "No server has this host name", body = ErrorBody),
        (status = 409, description = "`new_hostname` belongs to another server", body = ErrorBody),
        (status = 413, description = "Body larger than 16 KiB", body = ErrorBody),
        (status = 415, description = "Body is not application/json", body = ErrorBody),
        (status = 500, description = "Internal error; the cause is logged", body = ErrorBody),
    )
)]
pub async fn update_server(
    _admin: AdminAccess,
    State(state): State<AppState>,
    JsonBody(request): JsonBody<UpdateServerRequest>,
) -> Result<Json<ServerResponse>, ApiError> {
    let (hostname, changes) = request.validate()?;
    let updated = servers::update_by_hostname(&state.pool, &state.vault, &hostname, &changes)
        .await
        .map_err(|error| {
            save_error(error, "new_hostname", |taken| {
                format!(
                    "host name taken: another server has hostname {taken:?} (host names ignore letter case); pick another new_hostname or delete that server first"
                )
            })
        })?;
    let Some(server) = updated else {
        return Err(server_not_found("hostname", &hostname));
    };
    tracing::info!(
        server = %server.hostname,
        id = %server.id,
        previous_hostname = %hostname,
        password_changed = changes.password.is_some(),
        "server updated"
    );
    // A delete between the two statements leaves nothing to show.
    let Some(status) = report::server_status(&state.pool, server.id).await? else {
        return Err(server_not_found("hostname", &hostname));
    };
    Ok(Json(ServerResponse {
        success: true,
        message: format!("server {} ({}) updated", server.name, server.hostname),
        server: ServerView::new(status, true),
    }))
}

/// The server to delete. Unknown fields are rejected.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DeleteServerRequest {
    /// Host name of the server, in any letter case.
    #[schema(example = "mx1.example.net")]
    pub hostname: String,
}

/// Response to a successful deletion.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeleteServerResponse {
    /// Always `true`.
    pub success: bool,
    pub message: String,
}

/// Deletes a server together with its stored snapshot and poll history.
#[utoipa::path(
    delete,
    path = "/delete_server",
    tag = "servers",
    request_body = DeleteServerRequest,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Server deleted", body = DeleteServerResponse),
        (status = 400, description = "Malformed JSON or an invalid hostname", body = ErrorBody),
        (status = 401, description = "Missing, invalid or expired token", body = ErrorBody),
        (status = 403, description = "The token lacks the admin scope", body = ErrorBody),
        (status = 404, description = "No server has this host name", body = ErrorBody),
        (status = 413, description = "Body larger than 16 KiB", body = ErrorBody),
        (status = 415, description = "Body is not application/json", body = ErrorBody),
        (status = 500, description = "Internal error; the cause is logged", body = ErrorBody),
    )
)]
pub async fn delete_server(
    _admin: AdminAccess,
    State(state): State<AppState>,
    JsonBody(request): JsonBody<DeleteServerRequest>,
) -> Result<Json<DeleteServerResponse>, ApiError> {
    validate::hostname("hostname", &request.hostname)?;
    let Some(server) = servers::delete_by_hostname(&state.pool, &request.hostname).await? else {
        return Err(server_not_found("hostname", &request.hostname));
    };
    tracing::info!(server = %server.hostname, id = %server.id, "server deleted");
    Ok(Json(DeleteServerResponse {
        success: true,
        message: format!(
            "server {} ({}) deleted with its snapshot and poll history",
            server.name, server.hostname
        ),
    }))
}

/// Lists the registered servers with their latest poll outcome and the
/// size of their stored snapshot. Passwords are never shown; the admin
/// user name is shown to admin tokens only.
#[utoipa::path(
    get,
    path = "/servers",
    tag = "servers",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Every registered server; CSV has one row per server",
            content((ServerListing = "application/json"), (String = "text/csv"))),
        (status = 400, description = "Invalid or unknown query parameter", body = ErrorBody),
        (status = 401, description = "Missing, invalid or expired token", body = ErrorBody),
        (status = 500, description = "Internal error; the cause is logged", body = ErrorBody),
        (status = 503, description = "Database unavailable", body = ErrorBody),
    )
)]
pub async fn list_servers(
    ReadAccess(scope): ReadAccess,
    State(state): State<AppState>,
    params: QueryParams,
    AcceptHeader(accept): AcceptHeader,
) -> Result<Response, ApiError> {
    // A filter the listing does not have would otherwise be ignored
    // silently, and a script would read every server as the filtered ones.
    params.check_known(&["format"])?;
    let format = Format::negotiate(&params, accept.as_deref())?;
    let rows = report::list_server_status(&state.pool).await?;
    let show_username = scope == Scope::Admin;
    let servers: Vec<ServerView> = rows
        .into_iter()
        .map(|row| ServerView::new(row, show_username))
        .collect();
    if format == Format::Csv {
        let mut out = Vec::new();
        csv::write_header(&mut out, csv::SERVER_COLUMNS);
        for server in &servers {
            csv::write_server(&mut out, server);
        }
        return Ok(csv::response(out, "servers.csv"));
    }
    Ok(Json(ServerListing { servers }).into_response())
}

/// Maps a failed save to its response: a host name taken by another server
/// is a 409 on `field`, with the message that `message` builds from it.
fn save_error(
    error: SaveServerError,
    field: &str,
    message: impl FnOnce(&str) -> String,
) -> ApiError {
    match error {
        SaveServerError::Duplicate(hostname) => ApiError::Conflict {
            message: message(&hostname),
            field: Some(field.to_owned()),
            servers: None,
        },
        SaveServerError::Database(error) => ApiError::from(error),
    }
}

//! The one error type of the API. Each variant has its status code; the
//! body is `{"success": false, "message": ..., "field": ...}` so that a
//! client can tell which input to fix. Server-side failures send a generic
//! message and log their cause inside the request span.

use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

/// A server that hosts the requested name, listed when the name is ambiguous.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct ServerRef {
    pub name: String,
    pub hostname: String,
}

/// The JSON body of every error response.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    /// Always `false`.
    pub success: bool,
    /// Description of the failure and of the fix.
    pub message: String,
    /// The request field or query parameter at fault, when there is one.
    pub field: Option<String>,
    /// For an ambiguous name: the servers that hold it. Pick one with
    /// `?server=<hostname>`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub servers: Option<Vec<ServerRef>>,
}

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// Malformed or invalid input; `field` names it when known.
    #[error("{message}")]
    BadRequest {
        message: String,
        field: Option<String>,
    },
    #[error("{0}")]
    Unauthorized(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{message}")]
    NotFound {
        message: String,
        field: Option<String>,
    },
    /// A name held by several servers, or a duplicate registration.
    #[error("{message}")]
    Conflict {
        message: String,
        field: Option<String>,
        servers: Option<Vec<ServerRef>>,
    },
    #[error("request body too large: the limit is {limit} bytes")]
    PayloadTooLarge { limit: usize },
    #[error("unsupported content type {0:?}: send the body as application/json")]
    UnsupportedMediaType(String),
    #[error("request timed out after {0} seconds")]
    Timeout(u64),
    /// The database is unreachable. The cause is logged, not sent.
    #[error("service unavailable")]
    Unavailable(#[source] anyhow::Error),
    /// Any other server-side failure; the cause is logged, not sent.
    #[error("internal error")]
    Internal(#[source] anyhow::Error),
}

impl ApiError {
    pub fn bad_request(field: impl Into<Option<&'static str>>, message: impl Into<String>) -> Self {
        Self::BadRequest {
            message: message.into(),
            field: field.into().map(str::to_owned),
        }
    }

    pub fn not_found(field: impl Into<Option<&'static str>>, message: impl Into<String>) -> Self {
        Self::NotFound {
            message: message.into(),
            field: field.into().map(str::to_owned),
        }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            Self::BadRequest { .. } => StatusCode::BAD_REQUEST,
            Self::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            Self::Forbidden(_) => StatusCode::FORBIDDEN,
            Self::NotFound { .. } => StatusCode::NOT_FOUND,
            Self::Conflict { .. } => StatusCode::CONFLICT,
            Self::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Self::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::Timeout(_) | Self::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn field(&self) -> Option<String> {
        match self {
            Self::BadRequest { field, .. }
            | Self::NotFound { field, .. }
            | Self::Conflict { field, .. } => field.clone(),
            _ => None,
        }
    }
}

impl From<sqlx::Error> for ApiError {
    fn from(error: sqlx::Error) -> Self {
        let detail = axiquota_core::store::describe_sqlx_error(&error);
        match error {
            sqlx::Error::PoolTimedOut | sqlx::Error::Io(_) | sqlx::Error::PoolClosed => {
                Self::Unavailable(anyhow::anyhow!("database unavailable: {detail}"))
            }
            _ => Self::Internal(anyhow::anyhow!("database query failed: {detail}")),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        match &self {
            // Server-side causes go to the log, inside the request span, and
            // never into the body.
            Self::Internal(cause) => {
                tracing::error!(error = format!("{cause:#}"), "request failed")
            }
            Self::Unavailable(cause) => {
                tracing::warn!(
                    error = format!("{cause:#}"),
                    "request failed: service unavailable"
                )
            }
            Self::Timeout(_) => tracing::warn!("{self}"),
            _ => tracing::debug!(status = status.as_u16(), "rejected request: {self}"),
        }
        let servers = match &self {
            Self::Conflict { servers, .. } => servers.clone(),
            _ => None,
        };
        let body = ErrorBody {
            success: false,
            message: self.to_string(),
            field: self.field(),
            servers,
        };
        let mut response = (status, axum::Json(body)).into_response();
        if status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                "Bearer".parse().expect("static header"),
            );
        }
        response
    }
}

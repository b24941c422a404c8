//! Operations endpoints: liveness, readiness, metrics and the OpenAPI
//! document.

use std::sync::Arc;

use axiquota_core::store::report;
use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use chrono::Utc;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa::openapi::OpenApi as OpenApiSpec;

use crate::AppState;
use crate::auth::ReadAccess;
use crate::error::{ApiError, ErrorBody};

/// The body of `/health` and `/ready`.
#[derive(Debug, Serialize, ToSchema)]
pub struct StatusBody {
    /// `ok` or `ready`.
    pub status: String,
}

/// Tells that the process is up. Does not touch the database.
#[utoipa::path(
    get,
    path = "/health",
    tag = "operations",
    security(()),
    responses((status = 200, description = "The process is up", body = StatusBody))
)]
pub async fn health() -> Json<StatusBody> {
    Json(StatusBody {
        status: "ok".to_owned(),
    })
}

/// Reports whether the API can serve requests, that is whether the database responds.
#[utoipa::path(
    get,
    path = "/ready",
    tag = "operations",
    security(()),
    responses(
        (status = 200, description = "The database responds", body = StatusBody),
        (status = 503, description = "The database does not respond. The cause is logged", body = ErrorBody),
    )
)]
pub async fn ready(State(state): State<AppState>) -> Result<Json<StatusBody>, ApiError> {
    report::ping(&state.pool).await.map_err(|error| {
        ApiError::Unavailable(anyhow::anyhow!(
            "readiness check failed: {}",
            axiquota_core::store::describe_sqlx_error(&error)
        ))
    })?;
    Ok(Json(StatusBody {
        status: "ready".to_owned(),
    }))
}

/// Prometheus metrics in the text format: request counts and latency per
/// route, and per server and per domain the poll outcome, snapshot age,
/// accounts and used KB. No per-mailbox series.
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "operations",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Metrics", content_type = "text/plain; version=0.0.4", body = String),
        (status = 401, description = "Missing, invalid or expired token", body = ErrorBody),
        (status = 500, description = "Internal error; the cause is logged", body = ErrorBody),
        (status = 503, description = "Database unavailable", body = ErrorBody),
    )
)]
pub async fn get_metrics(
    _read: ReadAccess,
    State(state): State<AppState>,
) -> Result<Response, ApiError> {
    let servers = report::list_server_status(&state.pool).await?;
    let domains = report::list_domain_aggregates(
        &state.pool,
        &report::DomainFilter::default(),
        100.0,
        report::DomainSort::Name,
        report::SortOrder::Asc,
        None,
    )
    .await?;

    let mut out = String::with_capacity(4096);
    state.metrics.render(&mut out);
    crate::metrics::render_store(&mut out, &servers, &domains.rows, Utc::now());
    Ok((
        [(CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")],
        out,
    )
        .into_response())
}

/// This OpenAPI document.
#[utoipa::path(
    get,
    path = "/openapi.json",
    tag = "operations",
    security(()),
    responses((status = 200, description = "The OpenAPI 3.1 document of this API", content_type = "application/json", body = Object))
)]
pub async fn openapi_document(Extension(spec): Extension<Arc<OpenApiSpec>>) -> Json<OpenApiSpec> {
    Json(spec.as_ref().clone())
}

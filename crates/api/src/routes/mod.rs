//! The API routes, one module per resource. Each handler carries its
//! OpenAPI description, and [`api_router`] registers route and description
//! together.

pub mod listings;
pub mod ops;
pub mod report;
pub mod servers;

use axiquota_core::store::servers as server_store;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::AppState;
use crate::error::ApiError;
use crate::openapi::ApiDoc;

/// Builds the API routes and their OpenAPI document, without Swagger UI.
pub fn api_router() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(servers::add_server))
        .routes(routes!(servers::update_server))
        .routes(routes!(servers::delete_server))
        .routes(routes!(servers::list_servers))
        .routes(routes!(report::get_report))
        .routes(routes!(listings::list_accounts))
        .routes(routes!(listings::list_domains))
        .routes(routes!(listings::get_summary))
        .routes(routes!(ops::health))
        .routes(routes!(ops::ready))
        .routes(routes!(ops::get_metrics))
        .routes(routes!(ops::openapi_document))
}

/// Fails with 404 when no server has `hostname`.
pub(crate) async fn require_server(state: &AppState, hostname: &str) -> Result<(), ApiError> {
    match server_store::find_by_hostname(&state.pool, hostname).await? {
        Some(_) => Ok(()),
        None => Err(server_not_found("server", hostname)),
    }
}

/// Builds the 404 for a host name, given in `field`, that no server has.
pub(crate) fn server_not_found(field: &'static str, hostname: &str) -> ApiError {
    ApiError::not_found(
        field,
        format!(
            "server not found: no server has hostname {hostname:?}; list servers with GET /servers"
        ),
    )
}

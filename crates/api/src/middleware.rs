//! Assembly of the router and its layers.
//!
//! The API routes live in an inner router that is reached through a
//! fallback which strips trailing slashes, so `/report/` and `/report`
//! are the same route. Swagger UI is routed before that fallback because it
//! needs its own `/docs/` path. Layers, from the outside in: CORS (only
//! when origins are configured), request id, trace span, request timeout,
//! metrics.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{Method, Uri, header};
use axum::middleware::{Next, from_fn, from_fn_with_state};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Router};
use tower::ServiceExt as _;
use tower_http::cors::CorsLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::{DefaultOnResponse, TraceLayer};
use tracing::Level;
use utoipa_swagger_ui::{Config, SwaggerUi};

use crate::error::ApiError;
use crate::{AppState, metrics, openapi, routes};

/// Path of the OpenAPI document, served by the API router.
pub const OPENAPI_PATH: &str = "/openapi.json";
/// Path of Swagger UI.
pub const DOCS_PATH: &str = "/docs";

/// Builds the full application; see the module documentation.
pub fn build(state: AppState) -> Router {
    let (api, spec) = routes::api_router().split_for_parts();
    let spec = Arc::new(openapi::finish(spec));

    let api = api
        .fallback(unknown_route)
        .layer(from_fn(metrics::label_route))
        .layer(Extension(spec))
        .with_state(state.clone());
    let api = api.map_request(trim_trailing_slash);

    let docs: Router = SwaggerUi::new(DOCS_PATH)
        .config(Config::new([OPENAPI_PATH]))
        .into();

    let mut router = Router::new()
        .merge(docs)
        .fallback_service(api)
        .layer(from_fn_with_state(state.clone(), metrics::track))
        .layer(from_fn_with_state(state.clone(), enforce_timeout))
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(make_span)
                .on_response(DefaultOnResponse::new().level(Level::INFO)),
        )
        .layer(PropagateRequestIdLayer::x_request_id())
        .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid));

    if !state.settings.cors_origins.is_empty() {
        router = router.layer(
            CorsLayer::new()
                .allow_origin(state.settings.cors_origins.clone())
                .allow_methods([Method::GET, Method::POST, Method::PATCH, Method::DELETE])
                .allow_headers([header::AUTHORIZATION, header::CONTENT_TYPE, header::ACCEPT]),
        );
    }
    router
}

/// Opens the span that every log line of a request carries: method, path,
/// request id, and the matched route once routing has happened.
fn make_span(request: &Request) -> tracing::Span {
    let request_id = request
        .headers()
        .get("x-request-id")
        .and_then(|value| value.to_str().ok())
        .unwrap_or("-");
    tracing::info_span!(
        "request",
        method = %request.method(),
        path = %request.uri().path(),
        request_id = %request_id,
        route = tracing::field::Empty,
    )
}

/// Removes trailing slashes from the path, keeping the query.
fn trim_trailing_slash(mut request: Request) -> Request {
    let path = request.uri().path();
    if path.len() <= 1 || !path.ends_with('/') {
        return request;
    }
    let trimmed = path.trim_end_matches('/');
    let trimmed = if trimmed.is_empty() { "/" } else { trimmed };
    let path_and_query = match request.uri().query() {
        Some(query) => format!("{trimmed}?{query}"),
        None => trimmed.to_owned(),
    };
    let mut parts = request.uri().clone().into_parts();
    if let Ok(value) = path_and_query.parse() {
        parts.path_and_query = Some(value);
        if let Ok(uri) = Uri::from_parts(parts) {
            *request.uri_mut() = uri;
        }
    }
    request
}

/// Rejects requests to paths that no route serves with 404.
async fn unknown_route(uri: Uri) -> ApiError {
    ApiError::not_found(
        None,
        format!(
            "no such endpoint {:?}: see {DOCS_PATH} for the list of endpoints",
            uri.path()
        ),
    )
}

/// Responds 503 when a handler takes longer than the configured timeout to
/// produce its response headers. A streamed body is bounded separately by
/// its idle timeout.
async fn enforce_timeout(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let limit = state.settings.request_timeout;
    match tokio::time::timeout(limit, next.run(request)).await {
        Ok(response) => response,
        Err(_) => ApiError::Timeout(limit.as_secs()).into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trimmed(uri: &str) -> String {
        let request = Request::builder()
            .uri(uri)
            .body(axum::body::Body::empty())
            .unwrap();
        trim_trailing_slash(request).uri().to_string()
    }

    #[test]
    fn trailing_slashes_removed() {
        assert_eq!(trimmed("/report/"), "/report");
        assert_eq!(trimmed("/report//?domain=a.b"), "/report?domain=a.b");
        assert_eq!(trimmed("/report"), "/report");
        assert_eq!(trimmed("/"), "/");
    }
}

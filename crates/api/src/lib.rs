//! The HTTP JSON API of axiquota: reports over the stored snapshots, flat
//! listings for large installations, server registration, health checks,
//! Prometheus metrics and the OpenAPI description with Swagger UI.
//!
//! [`router`] builds the whole application from an [`AppState`];
//! [`serve`] runs it on a bound listener until a shutdown future resolves.
//! Tests bind `127.0.0.1:0` and call [`serve`] in a task.

pub mod auth;
pub mod csv;
pub mod error;
pub mod extract;
pub mod metrics;
pub mod middleware;
pub mod openapi;
pub mod report_stream;
pub mod routes;
pub mod validate;
pub mod views;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axiquota_core::Vault;
use axum::Router;
use axum::http::HeaderValue;
use sqlx::PgPool;
use tokio::net::TcpListener;

pub use auth::{Auth, Scope, issue_token, parse_ttl};
pub use error::ApiError;

/// Settings that shape the router, taken from the command line.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Maximum time a handler may take to produce response headers. A
    /// streamed report also stops when the client reads nothing for this
    /// long.
    pub request_timeout: Duration,
    /// Origins allowed by CORS; empty turns CORS off (no CORS headers).
    pub cors_origins: Vec<HeaderValue>,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            request_timeout: Duration::from_secs(30),
            cors_origins: Vec::new(),
        }
    }
}

/// Everything a handler needs; cheap to clone.
#[derive(Clone)]
pub struct AppState {
    pub pool: PgPool,
    pub vault: Arc<Vault>,
    pub auth: Arc<Auth>,
    pub metrics: Arc<metrics::HttpMetrics>,
    pub settings: Arc<Settings>,
}

impl AppState {
    pub fn new(pool: PgPool, vault: Vault, auth: Auth, settings: Settings) -> Self {
        Self {
            pool,
            vault: Arc::new(vault),
            auth: Arc::new(auth),
            metrics: Arc::new(metrics::HttpMetrics::default()),
            settings: Arc::new(settings),
        }
    }
}

/// Builds the application: the API routes (trailing slash optional), the
/// Swagger UI at `/docs`, and the layers for request ids, tracing, metrics,
/// timeouts and CORS.
pub fn router(state: AppState) -> Router {
    middleware::build(state)
}

/// Serves the application on `listener` until `shutdown` resolves, then
/// lets requests in flight finish.
///
/// # Errors
///
/// I/O errors of the listener.
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(state))
        .with_graceful_shutdown(shutdown)
        .await
}

/// Parses `API_CORS_ORIGINS`: comma-separated origins such as
/// `https://reports.example.com`.
///
/// # Errors
///
/// A message quoting the first origin that is not `http(s)://host[:port]`.
pub fn parse_cors_origins(text: &str) -> Result<Vec<HeaderValue>, String> {
    let mut origins = Vec::new();
    for origin in text
        .split(',')
        .map(str::trim)
        .filter(|origin| !origin.is_empty())
    {
        let rest = origin
            .strip_prefix("https://")
            .or_else(|| origin.strip_prefix("http://"));
        let valid = rest.is_some_and(|host| {
            !host.is_empty() && !host.contains('/') && !host.contains(char::is_whitespace)
        });
        let value = HeaderValue::from_str(origin).ok().filter(|_| valid);
        let Some(value) = value else {
            return Err(format!(
                "invalid API_CORS_ORIGINS entry {origin:?}: expected an origin such as https://reports.example.com, without a path"
            ));
        };
        origins.push(value);
    }
    Ok(origins)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cors_origins_parse() {
        let origins = parse_cors_origins("https://a.example, http://b.example:8080").unwrap();
        assert_eq!(origins.len(), 2);
        assert_eq!(origins[1], "http://b.example:8080");
        assert!(parse_cors_origins("a.example").is_err());
        assert!(parse_cors_origins("https://a.example/path").is_err());
        assert!(parse_cors_origins("").unwrap().is_empty());
    }
}

//! Prometheus metrics in the text exposition format (version 0.0.4).
//! Request counts and latency histograms are kept in memory per method and
//! matched route; poll and snapshot figures are read from the database at
//! scrape time, per server and per domain, never per mailbox.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::sync::Mutex;
use std::time::Instant;

use axiquota_core::store::report::{DomainAggregate, ServerStatus};
use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use chrono::{DateTime, Utc};

use crate::AppState;

/// Upper bounds of the latency histogram buckets, in seconds.
const LATENCY_BUCKETS: [f64; 12] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// Route label of requests that matched no route, so that scanners cannot
/// create a series per path they try.
pub const UNMATCHED_ROUTE: &str = "unmatched";

#[derive(Default)]
struct RouteStats {
    by_status: BTreeMap<u16, u64>,
    /// Cumulative counts per bucket of [`LATENCY_BUCKETS`].
    buckets: [u64; LATENCY_BUCKETS.len()],
    sum_seconds: f64,
    count: u64,
}

/// Request counters and latency histograms.
#[derive(Default)]
pub struct HttpMetrics {
    routes: Mutex<HashMap<(String, String), RouteStats>>,
}

impl HttpMetrics {
    pub fn record(&self, method: &str, route: &str, status: u16, seconds: f64) {
        let mut routes = self
            .routes
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        let stats = routes
            .entry((method.to_owned(), route.to_owned()))
            .or_default();
        *stats.by_status.entry(status).or_default() += 1;
        for (bucket, bound) in stats.buckets.iter_mut().zip(LATENCY_BUCKETS) {
            if seconds <= bound {
                *bucket += 1;
            }
        }
        stats.sum_seconds += seconds;
        stats.count += 1;
    }

    /// Appends the request series.
    pub fn render(&self, out: &mut String) {
        let routes = self
            .routes
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        let mut keys: Vec<&(String, String)> = routes.keys().collect();
        keys.sort();

        header(
            out,
            "axiquota_http_requests_total",
            "counter",
            "HTTP requests by method, matched route and status code.",
        );
        for key in &keys {
            let stats = &routes[*key];
            for (status, count) in &stats.by_status {
                let _ = writeln!(
                    out,
                    "axiquota_http_requests_total{{method=\"{}\",route=\"{}\",status=\"{status}\"}} {count}",
                    escape(&key.0),
                    escape(&key.1)
                );
            }
        }

        header(
            out,
            "axiquota_http_request_duration_seconds",
            "histogram",
            "Time from request to response headers by method and matched route; a streamed body may take longer.",
        );
        for key in &keys {
            let stats = &routes[*key];
            let labels = format!("method=\"{}\",route=\"{}\"", escape(&key.0), escape(&key.1));
            for (count, bound) in stats.buckets.iter().zip(LATENCY_BUCKETS) {
                let _ = writeln!(
                    out,
                    "axiquota_http_request_duration_seconds_bucket{{{labels},le=\"{bound}\"}} {count}"
                );
            }
            let _ = writeln!(
                out,
                "axiquota_http_request_duration_seconds_bucket{{{labels},le=\"+Inf\"}} {}",
                stats.count
            );
            let _ = writeln!(
                out,
                "axiquota_http_request_duration_seconds_sum{{{labels}}} {}",
                stats.sum_seconds
            );
            let _ = writeln!(
                out,
                "axiquota_http_request_duration_seconds_count{{{labels}}} {}",
                stats.count
            );
        }
    }
}

/// The route template that served a request, passed from the inner API
/// router to the outer metrics layer in the response extensions.
#[derive(Debug, Clone)]
pub struct RouteLabel(pub String);

/// Middleware of the API router: stores the matched route template in the
/// response and in the request's log span.
pub async fn label_route(request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|path| path.as_str().to_owned());
    if let Some(route) = &route {
        tracing::Span::current().record("route", route.as_str());
    }
    let mut response = next.run(request).await;
    if let Some(route) = route {
        response.extensions_mut().insert(RouteLabel(route));
    }
    response
}

/// Outer middleware: counts every request and records its latency.
pub async fn track(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = request.method().as_str().to_owned();
    let outer_route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|path| path.as_str().to_owned());
    if let Some(route) = &outer_route {
        tracing::Span::current().record("route", route.as_str());
    }

    let response = next.run(request).await;

    let route = response
        .extensions()
        .get::<RouteLabel>()
        .map(|label| label.0.clone())
        .or(outer_route)
        .unwrap_or_else(|| UNMATCHED_ROUTE.to_owned());
    state.metrics.record(
        &method,
        &route,
        response.status().as_u16(),
        started.elapsed().as_secs_f64(),
    );
    response
}

fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

/// Escapes a label value: backslash, double quote and line feed.
fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn age_seconds(now: DateTime<Utc>, then: DateTime<Utc>) -> f64 {
    (now - then).num_milliseconds() as f64 / 1000.0
}

/// Appends the per-server and per-domain series read from the database.
pub fn render_store(
    out: &mut String,
    servers: &[ServerStatus],
    domains: &[DomainAggregate],
    now: DateTime<Utc>,
) {
    let server_labels = |status: &ServerStatus| {
        format!(
            "server=\"{}\",name=\"{}\"",
            escape(&status.server.hostname),
            escape(&status.server.name)
        )
    };

    header(
        out,
        "axiquota_servers",
        "gauge",
        "Registered Axigen servers.",
    );
    let _ = writeln!(out, "axiquota_servers {}", servers.len());

    header(
        out,
        "axiquota_server_last_poll_success",
        "gauge",
        "1 when the latest poll of the server stored a snapshot, 0 when it failed or was locked; absent before the first poll.",
    );
    for status in servers {
        if let Some(outcome) = &status.last_poll_status {
            let value = u8::from(outcome == "ok");
            let _ = writeln!(
                out,
                "axiquota_server_last_poll_success{{{}}} {value}",
                server_labels(status)
            );
        }
    }

    header(
        out,
        "axiquota_server_last_poll_age_seconds",
        "gauge",
        "Seconds since the latest poll of the server started, whatever its outcome.",
    );
    for status in servers {
        if let Some(at) = status.last_poll_at {
            let _ = writeln!(
                out,
                "axiquota_server_last_poll_age_seconds{{{}}} {}",
                server_labels(status),
                age_seconds(now, at)
            );
        }
    }

    header(
        out,
        "axiquota_server_snapshot_age_seconds",
        "gauge",
        "Seconds since the stored snapshot of the server was collected.",
    );
    for status in servers {
        if let Some(at) = status.collected_at {
            let _ = writeln!(
                out,
                "axiquota_server_snapshot_age_seconds{{{}}} {}",
                server_labels(status),
                age_seconds(now, at)
            );
        }
    }

    header(
        out,
        "axiquota_server_accounts",
        "gauge",
        "Mailboxes in the stored snapshot of the server.",
    );
    for status in servers {
        let _ = writeln!(
            out,
            "axiquota_server_accounts{{{}}} {}",
            server_labels(status),
            status.accounts
        );
    }

    header(
        out,
        "axiquota_server_used_kilobytes",
        "gauge",
        "Sum of mailbox sizes in KB in the stored snapshot of the server.",
    );
    for status in servers {
        let _ = writeln!(
            out,
            "axiquota_server_used_kilobytes{{{}}} {}",
            server_labels(status),
            status.used_kb
        );
    }

    let domain_labels = |domain: &DomainAggregate| {
        format!(
            "server=\"{}\",domain=\"{}\"",
            escape(&domain.server_hostname),
            escape(&domain.name)
        )
    };
    header(
        out,
        "axiquota_domain_accounts",
        "gauge",
        "Mailboxes of the domain in the stored snapshot.",
    );
    for domain in domains {
        let _ = writeln!(
            out,
            "axiquota_domain_accounts{{{}}} {}",
            domain_labels(domain),
            domain.accounts
        );
    }
    header(
        out,
        "axiquota_domain_used_kilobytes",
        "gauge",
        "Sum of mailbox sizes in KB of the domain in the stored snapshot.",
    );
    for domain in domains {
        let _ = writeln!(
            out,
            "axiquota_domain_used_kilobytes{{{}}} {}",
            domain_labels(domain),
            domain.used_kb
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_are_cumulative() {
        let metrics = HttpMetrics::default();
        metrics.record("GET", "/report", 200, 0.003);
        metrics.record("GET", "/report", 200, 0.2);
        metrics.record("GET", "/report", 404, 60.0);
        let mut out = String::new();
        metrics.render(&mut out);
        assert!(out.contains(
            "axiquota_http_requests_total{method=\"GET\",route=\"/report\",status=\"200\"} 2"
        ));
        assert!(out.contains(
            "axiquota_http_request_duration_seconds_bucket{method=\"GET\",route=\"/report\",le=\"0.005\"} 1"
        ));
        assert!(out.contains(
            "axiquota_http_request_duration_seconds_bucket{method=\"GET\",route=\"/report\",le=\"0.25\"} 2"
        ));
        assert!(out.contains(
            "axiquota_http_request_duration_seconds_bucket{method=\"GET\",route=\"/report\",le=\"+Inf\"} 3"
        ));
    }

    #[test]
    fn label_values_escaped() {
        assert_eq!(escape("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}

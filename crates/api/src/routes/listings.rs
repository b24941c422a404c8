//! Flat, paginated listings for large installations: accounts across
//! servers, per-domain totals, and the fleet summary.

use axiquota_core::store::report::{
    self, AccountFilter, AccountSort, DomainFilter, DomainSort, Page, SortOrder,
};
use axum::Json;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use utoipa::IntoParams;

use super::require_server;
use crate::AppState;
use crate::auth::ReadAccess;
use crate::csv;
use crate::error::{ApiError, ErrorBody};
use crate::extract::{AcceptHeader, Format, QueryParams};
use crate::validate::MAX_HOSTNAME_LEN;
use crate::views::{AccountListing, AccountView, DomainListing, DomainSummaryView, SummaryView};

/// Rows per page when `limit` is not given.
pub const DEFAULT_LIMIT: i64 = 100;
/// Largest accepted `limit`.
pub const MAX_LIMIT: i64 = 10_000;
/// Usage share, in percent, at which an account counts as "over threshold"
/// when `threshold` is not given.
pub const DEFAULT_THRESHOLD: f64 = 90.0;
/// Largest accepted percentage; accounts can exceed their quota.
const MAX_PERCENT: f64 = 100_000.0;

fn parse_page(params: &QueryParams) -> Result<Page, ApiError> {
    let limit = params
        .parse::<i64>("limit", &format!("an integer from 1 to {MAX_LIMIT}"))?
        .unwrap_or(DEFAULT_LIMIT);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(ApiError::bad_request(
            "limit",
            format!("invalid limit {limit}: expected 1-{MAX_LIMIT}"),
        ));
    }
    let offset = params
        .parse::<i64>("offset", "an integer of 0 or more")?
        .unwrap_or(0);
    if offset < 0 {
        return Err(ApiError::bad_request(
            "offset",
            format!("invalid offset {offset}: expected 0 or more"),
        ));
    }
    Ok(Page { limit, offset })
}

fn parse_percent(params: &QueryParams, name: &'static str) -> Result<Option<f64>, ApiError> {
    let expected = format!("a number from 0 to {MAX_PERCENT}");
    let Some(value) = params.parse::<f64>(name, &expected)? else {
        return Ok(None);
    };
    if !value.is_finite() || !(0.0..=MAX_PERCENT).contains(&value) {
        return Err(ApiError::bad_request(
            name,
            format!("invalid {name} {value}: expected {expected}"),
        ));
    }
    Ok(Some(value))
}

fn parse_order(params: &QueryParams, default: SortOrder) -> Result<SortOrder, ApiError> {
    let Some(text) = params.text("order", 16)? else {
        return Ok(default);
    };
    match text {
        "asc" => Ok(SortOrder::Asc),
        "desc" => Ok(SortOrder::Desc),
        other => Err(ApiError::bad_request(
            "order",
            format!("invalid order {other:?}: expected asc or desc"),
        )),
    }
}

fn owned(value: Option<&str>) -> Option<String> {
    value.map(str::to_owned)
}

/// Query parameters of `GET /accounts`.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub struct AccountParams {
    /// Only accounts of the server with this host name.
    server: Option<String>,
    /// Only accounts of this domain (exact, any letter case).
    domain: Option<String>,
    /// Only this address (exact, any letter case).
    address: Option<String>,
    /// Only addresses that contain this text (any letter case; `%` and `_`
    /// are plain characters).
    q: Option<String>,
    /// Only accounts with a quota whose usage is at least this percentage.
    min_percent: Option<f64>,
    /// `true`: only accounts without a quota; `false`: only accounts with one.
    unlimited: Option<bool>,
    /// `percent_used` (default; unlimited accounts last), `used`, `quota`
    /// (unlimited sorts as largest) or `address`.
    sort: Option<String>,
    /// `desc` (default) or `asc`.
    order: Option<String>,
    /// Rows per page, 1-10000, default 100.
    limit: Option<i64>,
    /// Rows to skip, default 0.
    offset: Option<i64>,
    /// `json` (default) or `csv`. `Accept: text/csv` also selects CSV.
    format: Option<String>,
}

/// Lists accounts across every server with filters, sorting and paging.
/// `total` counts every match, not just the page.
#[utoipa::path(
    get,
    path = "/accounts",
    tag = "reports",
    params(AccountParams),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "One page of accounts; CSV has one row per account",
            content((AccountListing = "application/json"), (String = "text/csv"))),
        (status = 400, description = "Invalid, empty, repeated or unknown query parameter", body = ErrorBody),
        (status = 401, description = "Missing, invalid or expired token", body = ErrorBody),
        (status = 404, description = "`server` names no registered server", body = ErrorBody),
        (status = 500, description = "Internal error; the cause is logged", body = ErrorBody),
        (status = 503, description = "Database unavailable", body = ErrorBody),
    )
)]
pub async fn list_accounts(
    _read: ReadAccess,
    State(state): State<AppState>,
    params: QueryParams,
    AcceptHeader(accept): AcceptHeader,
) -> Result<Response, ApiError> {
    params.check_known(&[
        "server",
        "domain",
        "address",
        "q",
        "min_percent",
        "unlimited",
        "sort",
        "order",
        "limit",
        "offset",
        "format",
    ])?;
    let format = Format::negotiate(&params, accept.as_deref())?;
    let filter = AccountFilter {
        server_hostname: owned(params.text("server", MAX_HOSTNAME_LEN)?),
        domain: owned(params.text("domain", MAX_HOSTNAME_LEN)?),
        email: owned(params.text("address", 320)?),
        email_contains: owned(params.text("q", 320)?),
        min_percent: parse_percent(&params, "min_percent")?,
        unlimited: params.parse::<bool>("unlimited", "true or false")?,
    };
    let sort = match params.text("sort", 32)? {
        None | Some("percent_used") => AccountSort::PercentUsed,
        Some("used") => AccountSort::Used,
        Some("quota") => AccountSort::Quota,
        Some("address") => AccountSort::Address,
        Some(other) => {
            return Err(ApiError::bad_request(
                "sort",
                format!("invalid sort {other:?}: expected percent_used, used, quota or address"),
            ));
        }
    };
    let order = parse_order(&params, SortOrder::Desc)?;
    let page = parse_page(&params)?;

    let listing = report::list_accounts(&state.pool, &filter, sort, order, page).await?;
    // An empty listing may come from a mistyped host name rather than a
    // server without matches, so only then is the server looked up.
    if listing.total == 0
        && let Some(hostname) = &filter.server_hostname
    {
        require_server(&state, hostname).await?;
    }
    if format == Format::Csv {
        let mut out = Vec::new();
        csv::write_header(&mut out, csv::ACCOUNT_COLUMNS);
        for row in &listing.rows {
            let view = AccountView::from_row(row, false);
            csv::write_account(&mut out, &row.server_name, &row.server_hostname, &view);
        }
        return Ok(csv::response(out, "accounts.csv"));
    }
    Ok(Json(AccountListing {
        total: listing.total,
        limit: page.limit,
        offset: page.offset,
        accounts: listing
            .rows
            .iter()
            .map(|row| AccountView::from_row(row, true))
            .collect(),
    })
    .into_response())
}

/// Query parameters of `GET /domains`.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub struct DomainParams {
    /// Only domains of the server with this host name.
    server: Option<String>,
    /// Only this domain (exact, any letter case).
    domain: Option<String>,
    /// Usage percentage at which an account counts in
    /// `accounts_over_threshold`, default 90.
    threshold: Option<f64>,
    /// `name` (default), `accounts`, `used`, `allocated` or `over_threshold`.
    sort: Option<String>,
    /// `asc` (default for `name`) or `desc` (default otherwise).
    order: Option<String>,
    /// Rows per page, 1-10000, default 100.
    limit: Option<i64>,
    /// Rows to skip, default 0.
    offset: Option<i64>,
    /// `json` (default) or `csv`. `Accept: text/csv` also selects CSV.
    format: Option<String>,
}

/// Lists per-domain totals: accounts, used and allocated KB, unlimited
/// accounts and accounts over a usage threshold.
#[utoipa::path(
    get,
    path = "/domains",
    tag = "reports",
    params(DomainParams),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "One page of domains; CSV has one row per domain",
            content((DomainListing = "application/json"), (String = "text/csv"))),
        (status = 400, description = "Invalid, empty, repeated or unknown query parameter", body = ErrorBody),
        (status = 401, description = "Missing, invalid or expired token", body = ErrorBody),
        (status = 404, description = "`server` names no registered server", body = ErrorBody),
        (status = 500, description = "Internal error; the cause is logged", body = ErrorBody),
        (status = 503, description = "Database unavailable", body = ErrorBody),
    )
)]
pub async fn list_domains(
    _read: ReadAccess,
    State(state): State<AppState>,
    params: QueryParams,
    AcceptHeader(accept): AcceptHeader,
) -> Result<Response, ApiError> {
    params.check_known(&[
        "server",
        "domain",
        "threshold",
        "sort",
        "order",
        "limit",
        "offset",
        "format",
    ])?;
    let format = Format::negotiate(&params, accept.as_deref())?;
    let filter = DomainFilter {
        server_hostname: owned(params.text("server", MAX_HOSTNAME_LEN)?),
        domain: owned(params.text("domain", MAX_HOSTNAME_LEN)?),
    };
    let threshold = parse_percent(&params, "threshold")?.unwrap_or(DEFAULT_THRESHOLD);
    let sort = match params.text("sort", 32)? {
        None | Some("name") => DomainSort::Name,
        Some("accounts") => DomainSort::Accounts,
        Some("used") => DomainSort::Used,
        Some("allocated") => DomainSort::Allocated,
        Some("over_threshold") => DomainSort::OverThreshold,
        Some(other) => {
            return Err(ApiError::bad_request(
                "sort",
                format!(
                    "invalid sort {other:?}: expected name, accounts, used, allocated or over_threshold"
                ),
            ));
        }
    };
    let default_order = if sort == DomainSort::Name {
        SortOrder::Asc
    } else {
        SortOrder::Desc
    };
    let order = parse_order(&params, default_order)?;
    let page = parse_page(&params)?;

    let listing =
        report::list_domain_aggregates(&state.pool, &filter, threshold, sort, order, Some(page))
            .await?;
    // An empty listing may come from a mistyped host name rather than a
    // server without matches, so only then is the server looked up.
    if listing.total == 0
        && let Some(hostname) = &filter.server_hostname
    {
        require_server(&state, hostname).await?;
    }
    let views: Vec<DomainSummaryView> = listing
        .rows
        .iter()
        .map(|row| DomainSummaryView::new(row, threshold))
        .collect();
    if format == Format::Csv {
        let mut out = Vec::new();
        csv::write_header(&mut out, csv::DOMAIN_COLUMNS);
        for view in &views {
            csv::write_domain(&mut out, view);
        }
        return Ok(csv::response(out, "domains.csv"));
    }
    Ok(Json(DomainListing {
        total: listing.total,
        limit: page.limit,
        offset: page.offset,
        domains: views,
    })
    .into_response())
}

/// Query parameters of `GET /summary`.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub struct SummaryParams {
    /// Usage percentage at which an account counts in
    /// `accounts_over_threshold`, default 90.
    threshold: Option<f64>,
}

/// Totals over every server, the freshness of the stored snapshots and the
/// latest poller run.
#[utoipa::path(
    get,
    path = "/summary",
    tag = "reports",
    params(SummaryParams),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Totals", body = SummaryView),
        (status = 400, description = "Invalid or unknown query parameter", body = ErrorBody),
        (status = 401, description = "Missing, invalid or expired token", body = ErrorBody),
        (status = 500, description = "Internal error; the cause is logged", body = ErrorBody),
        (status = 503, description = "Database unavailable", body = ErrorBody),
    )
)]
pub async fn get_summary(
    _read: ReadAccess,
    State(state): State<AppState>,
    params: QueryParams,
) -> Result<Json<SummaryView>, ApiError> {
    params.check_known(&["threshold"])?;
    let threshold = parse_percent(&params, "threshold")?.unwrap_or(DEFAULT_THRESHOLD);
    let totals = report::totals(&state.pool, threshold).await?;
    let last_run = report::latest_run(&state.pool).await?;
    Ok(Json(SummaryView {
        servers: totals.servers,
        servers_with_snapshot: totals.servers_with_snapshot,
        servers_failing: totals.servers_failing,
        domains: totals.domains,
        accounts: totals.accounts,
        used_kb: totals.used_kb,
        used_mb: crate::views::kb_to_mb(totals.used_kb),
        allocated_kb: totals.allocated_kb,
        allocated_mb: crate::views::kb_to_mb(totals.allocated_kb),
        unlimited_accounts: totals.unlimited_accounts,
        accounts_over_threshold: totals.accounts_over_threshold,
        threshold_percent: threshold,
        oldest_collected_at: totals.oldest_collected_at,
        newest_collected_at: totals.newest_collected_at,
        last_run: last_run.map(Into::into),
        generated_at: Utc::now(),
    }))
}

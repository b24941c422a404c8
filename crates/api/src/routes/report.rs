//! `GET /report`: the full report or one domain (both streamed), or one
//! account.

use axiquota_core::store::report::{self, AccountRow, DomainRow};
use axum::Json;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use utoipa::IntoParams;

use super::require_server;
use crate::AppState;
use crate::auth::ReadAccess;
use crate::csv;
use crate::error::{ApiError, ErrorBody, ServerRef};
use crate::extract::{AcceptHeader, Format, QueryParams};
use crate::report_stream::{self, Scope};
use crate::views::{AccountView, DomainView, FullReport};

/// Longest accepted e-mail address, in bytes (RFC 5321 path limit).
const MAX_ADDRESS_LEN: usize = 320;

/// Query parameters of `GET /report`.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub struct ReportParams {
    /// One domain with its accounts (exact name, any letter case).
    domain: Option<String>,
    /// One account (exact address, any letter case).
    account: Option<String>,
    /// Host name of the server to report on; picks one when the domain or
    /// account exists on several servers, or limits the full report.
    server: Option<String>,
    /// `json` (default) or `csv`. `Accept: text/csv` also selects CSV.
    format: Option<String>,
}

/// Reports stored usage. Without parameters: every server with its domains
/// and accounts, streamed. With `domain`: that domain and its accounts. With
/// `account`: that account. A name present on several servers gets 409 with
/// the list of servers, and `server` picks one.
#[utoipa::path(
    get,
    path = "/report",
    tag = "reports",
    params(ReportParams),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The full report (no domain or account), a domain (`domain`) or an account (`account`); CSV has one row per account with KB and readable sizes. The full and domain reports are streamed: a failure after the first byte breaks the response instead of ending it as a complete document",
            content(
                (FullReport = "application/json"),
                (DomainView = "application/json"),
                (AccountView = "application/json"),
                (String = "text/csv")
            )),
        (status = 400, description = "Invalid, empty, repeated or unknown query parameter, or both domain and account", body = ErrorBody),
        (status = 401, description = "Missing, invalid or expired token", body = ErrorBody),
        (status = 404, description = "No such domain, account or server", body = ErrorBody),
        (status = 409, description = "The name exists on several servers; `servers` lists them", body = ErrorBody),
        (status = 500, description = "Internal error; the cause is logged", body = ErrorBody),
        (status = 503, description = "Database unavailable", body = ErrorBody),
    )
)]
pub async fn get_report(
    _read: ReadAccess,
    State(state): State<AppState>,
    params: QueryParams,
    AcceptHeader(accept): AcceptHeader,
) -> Result<Response, ApiError> {
    params.check_known(&["domain", "account", "server", "format"])?;
    let format = Format::negotiate(&params, accept.as_deref())?;
    let domain = params.text("domain", crate::validate::MAX_HOSTNAME_LEN)?;
    let account = params.text("account", MAX_ADDRESS_LEN)?;
    let server = params.text("server", crate::validate::MAX_HOSTNAME_LEN)?;

    match (domain, account) {
        (Some(_), Some(_)) => Err(ApiError::bad_request(
            "account",
            "give either domain or account, not both",
        )),
        (None, Some(account)) => account_report(&state, account, server, format).await,
        (Some(domain), None) => domain_report(&state, domain, server, format).await,
        (None, None) => {
            if let Some(server) = server {
                require_server(&state, server).await?;
            }
            let scope = Scope::Full {
                server_hostname: server.map(str::to_owned),
            };
            report_response(&state, scope, format, "report.csv").await
        }
    }
}

/// Starts streaming a report in `format`; a CSV download is named
/// `csv_filename`.
async fn report_response(
    state: &AppState,
    scope: Scope,
    format: Format,
    csv_filename: &str,
) -> Result<Response, ApiError> {
    let body =
        report_stream::report_body(&state.pool, scope, format, state.settings.request_timeout)
            .await?;
    Ok(match format {
        Format::Json => (
            [(axum::http::header::CONTENT_TYPE, "application/json")],
            body,
        )
            .into_response(),
        Format::Csv => csv::response(body, csv_filename),
    })
}

fn ambiguous(kind: &str, name: &str, holders: Vec<ServerRef>) -> ApiError {
    let hostnames: Vec<&str> = holders
        .iter()
        .map(|server| server.hostname.as_str())
        .collect();
    ApiError::Conflict {
        message: format!(
            "{kind} {name:?} exists on {} servers ({}); choose one with ?server=<hostname>",
            holders.len(),
            hostnames.join(", ")
        ),
        field: Some("server".to_owned()),
        servers: Some(holders),
    }
}

async fn account_report(
    state: &AppState,
    address: &str,
    server: Option<&str>,
    format: Format,
) -> Result<Response, ApiError> {
    let mut rows: Vec<AccountRow> = report::find_accounts(&state.pool, address, server).await?;
    if rows.is_empty() {
        if let Some(server) = server {
            require_server(state, server).await?;
        }
        return Err(ApiError::not_found(
            "account",
            format!("account not found: no stored snapshot has the address {address:?}"),
        ));
    }
    if rows.len() > 1 {
        let holders = rows
            .iter()
            .map(|row| ServerRef {
                name: row.server_name.clone(),
                hostname: row.server_hostname.clone(),
            })
            .collect();
        return Err(ambiguous("account", address, holders));
    }
    let row = rows.remove(0);
    let view = AccountView::from_row(&row, true);
    Ok(match format {
        Format::Json => Json(view).into_response(),
        Format::Csv => {
            let mut out = Vec::new();
            csv::write_header(&mut out, csv::ACCOUNT_COLUMNS);
            csv::write_account(&mut out, &row.server_name, &row.server_hostname, &view);
            csv::response(out, "account.csv")
        }
    })
}

async fn domain_report(
    state: &AppState,
    name: &str,
    server: Option<&str>,
    format: Format,
) -> Result<Response, ApiError> {
    let mut domains: Vec<DomainRow> = report::find_domains(&state.pool, name, server).await?;
    if domains.is_empty() {
        if let Some(server) = server {
            require_server(state, server).await?;
        }
        return Err(ApiError::not_found(
            "domain",
            format!("domain not found: no stored snapshot has the domain {name:?}"),
        ));
    }
    if domains.len() > 1 {
        let holders = domains
            .iter()
            .map(|row| ServerRef {
                name: row.server_name.clone(),
                hostname: row.server_hostname.clone(),
            })
            .collect();
        return Err(ambiguous("domain", name, holders));
    }
    let domain = domains.remove(0);
    report_response(state, Scope::Domain(domain), format, "domain.csv").await
}

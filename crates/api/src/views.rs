//! Response bodies and the conversions from store rows. Field names of the
//! account, domain and full-report objects are kept from the earlier
//! implementation so that existing scripts keep working.

use axiquota_core::store::report::{AccountRow, DomainAggregate, ReportRow, RunRow, ServerStatus};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

/// Whole megabytes in a size given in KB, rounded down (1 MB = 1024 KB).
pub fn kb_to_mb(kb: i64) -> i64 {
    kb.div_euclid(1024)
}

/// Usage as a percentage of the quota with two decimals; `None` when the
/// quota is unlimited.
pub fn usage_percent(quota_kb: Option<i64>, used_kb: i64) -> Option<f64> {
    let quota = quota_kb.filter(|quota| *quota > 0)?;
    let percent = used_kb as f64 * 100.0 / quota as f64;
    Some((percent * 100.0).round() / 100.0)
}

/// One mailbox.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct AccountView {
    /// Full address, spelled as the server spells it.
    #[schema(example = "alice@example.com")]
    pub email: String,
    #[schema(example = "alice")]
    pub local_part: String,
    /// Domain name, spelled as the server spells it.
    #[schema(example = "example.com")]
    pub domain: String,
    /// Quota in whole MB (KB / 1024, rounded down); null when unlimited.
    #[schema(example = 1024)]
    pub assigned_mb: Option<i64>,
    /// Mailbox size in whole MB (KB / 1024, rounded down).
    #[schema(example = 716)]
    pub used_mb: i64,
    /// `assigned_mb - used_mb`, negative when over quota; null when unlimited.
    #[schema(example = 308)]
    pub free_mb: Option<i64>,
    /// Kept for compatibility; always null because the account status is
    /// not collected.
    pub status: Option<String>,
    /// Quota in KB as Axigen reports it; null when unlimited.
    pub quota_kb: Option<i64>,
    /// Mailbox size in KB.
    pub used_kb: i64,
    /// `used_kb / quota_kb * 100`, two decimals; null when unlimited.
    pub usage_percent: Option<f64>,
    pub message_count: Option<i64>,
    /// Source of the usage figure: `webadmin` or `cli`.
    pub usage_source: String,
    /// When the poll that stored this row collected the server.
    pub collected_at: DateTime<Utc>,
    /// Label of the server that hosts the account; only in flat listings
    /// and single-account lookups.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server_name: Option<String>,
    /// Host name of the server; only in flat listings and single-account
    /// lookups.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server_hostname: Option<String>,
}

/// The account columns shared by the store's row types.
pub struct AccountFields<'a> {
    pub domain: &'a str,
    pub domain_display_name: Option<&'a str>,
    pub local_part: &'a str,
    pub display_local_part: Option<&'a str>,
    pub quota_kb: Option<i64>,
    pub used_kb: i64,
    pub message_count: Option<i64>,
    pub usage_source: &'a str,
    pub collected_at: DateTime<Utc>,
}

impl AccountView {
    pub fn new(fields: AccountFields<'_>) -> Self {
        let domain = fields.domain_display_name.unwrap_or(fields.domain);
        let local_part = fields.display_local_part.unwrap_or(fields.local_part);
        let quota_kb = fields.quota_kb.filter(|quota| *quota > 0);
        let used_mb = kb_to_mb(fields.used_kb);
        let assigned_mb = quota_kb.map(kb_to_mb);
        Self {
            email: format!("{local_part}@{domain}"),
            local_part: local_part.to_owned(),
            domain: domain.to_owned(),
            assigned_mb,
            used_mb,
            free_mb: assigned_mb.map(|assigned| assigned - used_mb),
            status: None,
            quota_kb,
            used_kb: fields.used_kb,
            usage_percent: usage_percent(quota_kb, fields.used_kb),
            message_count: fields.message_count,
            usage_source: fields.usage_source.to_owned(),
            collected_at: fields.collected_at,
            server_name: None,
            server_hostname: None,
        }
    }

    /// Builds the view of an account row, with its server when
    /// `with_server` is set.
    pub fn from_row(row: &AccountRow, with_server: bool) -> Self {
        let mut view = Self::new(AccountFields {
            domain: &row.domain,
            domain_display_name: row.domain_display_name.as_deref(),
            local_part: &row.local_part,
            display_local_part: row.display_local_part.as_deref(),
            quota_kb: row.quota_kb,
            used_kb: row.used_kb,
            message_count: row.message_count,
            usage_source: &row.usage_source,
            collected_at: row.collected_at,
        });
        if with_server {
            view.server_name = Some(row.server_name.clone());
            view.server_hostname = Some(row.server_hostname.clone());
        }
        view
    }

    /// Builds the view of the account part of a full-report row, or `None`
    /// for a row without an account.
    pub fn from_report_row(row: &ReportRow) -> Option<Self> {
        Some(Self::new(AccountFields {
            domain: row.domain.as_deref()?,
            domain_display_name: row.domain_display_name.as_deref(),
            local_part: row.local_part.as_deref()?,
            display_local_part: row.display_local_part.as_deref(),
            quota_kb: row.quota_kb,
            used_kb: row.used_kb?,
            message_count: row.message_count,
            usage_source: row.usage_source.as_deref()?,
            collected_at: row.collected_at?,
        }))
    }
}

/// One domain with its accounts.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct DomainView {
    /// Domain name, spelled as the server spells it.
    #[schema(example = "example.com")]
    pub name: String,
    /// `enabled` or `disabled`.
    #[schema(example = "enabled")]
    pub status: String,
    pub total_accounts: usize,
    pub accounts: Vec<AccountView>,
    /// When the poll that stored this domain collected the server.
    pub collected_at: DateTime<Utc>,
    /// Only in the single-domain lookup.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server_name: Option<String>,
    /// Only in the single-domain lookup.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server_hostname: Option<String>,
}

/// One server in the full report. The body is streamed; this type
/// documents its shape.
#[derive(Debug, Serialize, ToSchema)]
pub struct ReportServerView {
    #[schema(example = "mx1")]
    pub name: String,
    #[schema(example = "mx1.example.net")]
    pub hostname: String,
    #[schema(example = 7000)]
    pub cli_port: i32,
    #[schema(example = 9000)]
    pub webadmin_port: i32,
    pub domains: Vec<DomainView>,
    /// When the stored snapshot was collected; null when the server has
    /// never been polled successfully (or has no domains).
    pub collected_at: Option<DateTime<Utc>>,
}

/// The full report: every server with its domains and accounts.
#[derive(Debug, Serialize, ToSchema)]
pub struct FullReport {
    pub servers: Vec<ReportServerView>,
    /// When the report was generated.
    pub generated_at: DateTime<Utc>,
}

/// A page of the flat account listing.
#[derive(Debug, Serialize, ToSchema)]
pub struct AccountListing {
    /// Accounts that match the filters, over all pages.
    pub total: i64,
    pub limit: i64,
    pub offset: i64,
    pub accounts: Vec<AccountView>,
}

/// Totals of one domain.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct DomainSummaryView {
    /// Domain name, spelled as the server spells it.
    pub name: String,
    pub status: String,
    pub server_name: String,
    pub server_hostname: String,
    pub accounts: i64,
    /// Sum of mailbox sizes in KB.
    pub used_kb: i64,
    pub used_mb: i64,
    /// Sum of the quotas in KB of the accounts that have one.
    pub allocated_kb: i64,
    pub allocated_mb: i64,
    pub unlimited_accounts: i64,
    /// Accounts whose usage is at least `threshold_percent` of their quota.
    pub accounts_over_threshold: i64,
    pub threshold_percent: f64,
    pub collected_at: DateTime<Utc>,
}

impl DomainSummaryView {
    pub fn new(row: &DomainAggregate, threshold_percent: f64) -> Self {
        Self {
            name: row.display_name.clone().unwrap_or_else(|| row.name.clone()),
            status: row.status.clone(),
            server_name: row.server_name.clone(),
            server_hostname: row.server_hostname.clone(),
            accounts: row.accounts,
            used_kb: row.used_kb,
            used_mb: kb_to_mb(row.used_kb),
            allocated_kb: row.allocated_kb,
            allocated_mb: kb_to_mb(row.allocated_kb),
            unlimited_accounts: row.unlimited_accounts,
            accounts_over_threshold: row.accounts_over_threshold,
            threshold_percent,
            collected_at: row.collected_at,
        }
    }
}

/// A page of the per-domain totals.
#[derive(Debug, Serialize, ToSchema)]
pub struct DomainListing {
    /// Domains that match the filters, over all pages.
    pub total: i64,
    pub limit: i64,
    pub offset: i64,
    pub domains: Vec<DomainSummaryView>,
}

/// The latest poller run.
#[derive(Debug, Serialize, ToSchema)]
pub struct RunView {
    pub id: Uuid,
    pub started_at: DateTime<Utc>,
    /// Null while the run is going on, or when the poller was killed.
    pub finished_at: Option<DateTime<Utc>>,
    pub poller_host: String,
    pub dry_run: bool,
    pub servers_total: i32,
    pub servers_ok: i32,
    pub servers_failed: i32,
    pub servers_locked: i32,
}

impl From<RunRow> for RunView {
    fn from(row: RunRow) -> Self {
        Self {
            id: row.id,
            started_at: row.started_at,
            finished_at: row.finished_at,
            poller_host: row.poller_host,
            dry_run: row.dry_run,
            servers_total: row.servers_total,
            servers_ok: row.servers_ok,
            servers_failed: row.servers_failed,
            servers_locked: row.servers_locked,
        }
    }
}

/// Totals over every server.
#[derive(Debug, Serialize, ToSchema)]
pub struct SummaryView {
    pub servers: i64,
    /// Servers with at least one stored domain.
    pub servers_with_snapshot: i64,
    /// Servers whose latest poll failed; their previous snapshot is shown.
    pub servers_failing: i64,
    pub domains: i64,
    pub accounts: i64,
    pub used_kb: i64,
    pub used_mb: i64,
    pub allocated_kb: i64,
    pub allocated_mb: i64,
    pub unlimited_accounts: i64,
    /// Accounts whose usage is at least `threshold_percent` of their quota.
    pub accounts_over_threshold: i64,
    pub threshold_percent: f64,
    /// The oldest and newest collection times among stored snapshots.
    pub oldest_collected_at: Option<DateTime<Utc>>,
    pub newest_collected_at: Option<DateTime<Utc>>,
    pub last_run: Option<RunView>,
    pub generated_at: DateTime<Utc>,
}

/// The latest poll of one server.
#[derive(Debug, Serialize, ToSchema)]
pub struct PollView {
    pub started_at: DateTime<Utc>,
    /// `ok`, `failed` or `locked`.
    pub status: String,
    /// Error of a failed poll.
    pub error: Option<String>,
    pub duration_ms: Option<i64>,
    /// `webadmin`, `cli`, `mixed` or `none`.
    pub usage_source: Option<String>,
    /// Error that kept the WebAdmin feed from being used although enabled.
    pub webadmin_error: Option<String>,
    /// Domains and accounts listed by the server but gone when they were
    /// read, so they are missing from the snapshot.
    pub skipped: Vec<SkippedView>,
}

/// A domain or account that a poll skipped, with the reason.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct SkippedView {
    pub domain: String,
    /// Null when the whole domain was skipped.
    pub account: Option<String>,
    pub reason: String,
}

/// A registered server, without its password.
#[derive(Debug, Serialize, ToSchema)]
pub struct ServerView {
    pub id: Uuid,
    pub name: String,
    pub hostname: String,
    pub cli_port: i32,
    pub webadmin_port: i32,
    /// The admin user; shown to admin tokens only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    pub cli_tls: bool,
    /// Check certificates against the system's trusted CAs when no
    /// fingerprint is set.
    pub tls_verify: bool,
    /// SHA-256 fingerprints (lower-case hex) of the certificates accepted.
    pub tls_fingerprints: Vec<String>,
    pub webadmin_enabled: bool,
    pub webadmin_allow_http: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// Null until the server has been polled.
    pub last_poll: Option<PollView>,
    /// When the latest successful poll started.
    pub last_success_at: Option<DateTime<Utc>>,
    /// When the stored snapshot was collected.
    pub collected_at: Option<DateTime<Utc>>,
    pub domains: i64,
    pub accounts: i64,
    pub used_kb: i64,
}

impl ServerView {
    pub fn new(row: ServerStatus, show_username: bool) -> Self {
        let last_poll = match (row.last_poll_at, row.last_poll_status) {
            (Some(started_at), Some(status)) => Some(PollView {
                started_at,
                status,
                error: row.last_poll_error,
                duration_ms: row.last_poll_duration_ms,
                usage_source: row.last_poll_usage_source,
                webadmin_error: row.last_poll_webadmin_error,
                skipped: row
                    .last_poll_skipped_items
                    .as_deref()
                    .and_then(|items| serde_json::from_str(items).ok())
                    .unwrap_or_default(),
            }),
            _ => None,
        };
        let server = row.server;
        Self {
            id: server.id,
            name: server.name,
            hostname: server.hostname,
            cli_port: server.cli_port,
            webadmin_port: server.webadmin_port,
            username: show_username.then_some(server.username),
            cli_tls: server.cli_tls,
            tls_verify: server.tls_verify,
            tls_fingerprints: server.tls_fingerprints,
            webadmin_enabled: server.webadmin_enabled,
            webadmin_allow_http: server.webadmin_allow_http,
            created_at: server.created_at,
            updated_at: server.updated_at,
            last_poll,
            last_success_at: row.last_success_at,
            collected_at: row.collected_at,
            domains: row.domains,
            accounts: row.accounts,
            used_kb: row.used_kb,
        }
    }
}

/// The server list.
#[derive(Debug, Serialize, ToSchema)]
pub struct ServerListing {
    pub servers: Vec<ServerView>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn megabytes_round_down() {
        assert_eq!(kb_to_mb(0), 0);
        assert_eq!(kb_to_mb(1023), 0);
        assert_eq!(kb_to_mb(1024), 1);
        assert_eq!(kb_to_mb(733_184), 716);
    }

    #[test]
    fn percent_two_decimals() {
        assert_eq!(usage_percent(Some(1_048_576), 733_184), Some(69.92));
        assert_eq!(usage_percent(None, 5), None);
        assert_eq!(usage_percent(Some(3), 1), Some(33.33));
    }
}

//! Types shared by the collector, the store, the poller and the API.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::secret::Secret;

/// Domain state. `LIST AllDomains` lists enabled and disabled domains. A
/// server without that command lists only active domains with
/// `LIST Domains`, and those are stored as `enabled`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DomainStatus {
    Enabled,
    Disabled,
}

impl DomainStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Enabled => "enabled",
            Self::Disabled => "disabled",
        }
    }
}

/// Source of an account's usage figure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum UsageSource {
    /// The WebAdmin `/data/accounts` feed, one request per server.
    Webadmin,
    /// `SHOW RegistryInformation` over the CLI, one round trip per account.
    Cli,
}

impl UsageSource {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Webadmin => "webadmin",
            Self::Cli => "cli",
        }
    }
}

/// Address, credentials and connection settings of one Axigen server.
#[derive(Debug, Clone)]
pub struct ServerEndpoint {
    pub hostname: String,
    pub cli_port: u16,
    pub webadmin_port: u16,
    pub username: String,
    pub password: Secret,
    /// The CLI listener speaks TLS from the first byte.
    pub cli_tls: bool,
    /// Check TLS certificates (CLI over TLS and WebAdmin over HTTPS).
    pub tls_verify: bool,
    /// SHA-256 fingerprints (lower-case hex) of the certificates to accept.
    /// When any is set, a certificate is accepted only if its fingerprint
    /// is one of them, and `tls_verify` has no effect.
    pub tls_fingerprints: Vec<String>,
    /// Read usage from the WebAdmin feed before falling back to the CLI.
    pub webadmin_enabled: bool,
    /// Allow the WebAdmin feed over plain HTTP when HTTPS fails. The
    /// credentials then cross the network in clear.
    pub webadmin_allow_http: bool,
}

/// One server's complete state as collected at one time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    pub collected_at: DateTime<Utc>,
    pub domains: Vec<DomainSnapshot>,
    /// Domains and accounts that were listed but gone by the time they were
    /// read.
    pub skipped: Vec<SkippedItem>,
    /// Reason the WebAdmin feed was not used although it was enabled.
    pub webadmin_error: Option<String>,
    /// Whether commands sent ahead went unanswered, so that the rest of
    /// the server was read one command at a time.
    #[serde(default)]
    pub sent_ahead_dropped: bool,
}

impl Snapshot {
    pub fn account_count(&self) -> usize {
        self.domains
            .iter()
            .map(|domain| domain.accounts.len())
            .sum()
    }

    /// Summarises where usage figures came from: `webadmin`, `cli`,
    /// `mixed`, or `none` when there are no accounts.
    pub fn usage_source_summary(&self) -> &'static str {
        let mut webadmin = false;
        let mut cli = false;
        for account in self.domains.iter().flat_map(|domain| &domain.accounts) {
            match account.usage_source {
                UsageSource::Webadmin => webadmin = true,
                UsageSource::Cli => cli = true,
            }
        }
        match (webadmin, cli) {
            (true, true) => "mixed",
            (true, false) => "webadmin",
            (false, true) => "cli",
            (false, false) => "none",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DomainSnapshot {
    /// The name as the server spells it.
    pub name: String,
    pub status: DomainStatus,
    pub accounts: Vec<AccountSnapshot>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountSnapshot {
    /// The local part as the server spells it.
    pub name: String,
    /// Quota in KB; `None` when the server shows none or 0 (unlimited).
    pub quota_kb: Option<i64>,
    /// Mailbox size in KB.
    pub used_kb: i64,
    pub message_count: Option<i64>,
    pub usage_source: UsageSource,
}

/// A domain or account that was listed but could not be read, with why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SkippedItem {
    pub domain: String,
    /// `None` when the whole domain was skipped.
    pub account: Option<String>,
    pub reason: String,
}

/// A registered server as stored, without its password.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct Server {
    pub id: Uuid,
    pub name: String,
    pub hostname: String,
    pub cli_port: i32,
    pub webadmin_port: i32,
    pub username: String,
    pub cli_tls: bool,
    pub tls_verify: bool,
    pub tls_fingerprints: Vec<String>,
    pub webadmin_enabled: bool,
    pub webadmin_allow_http: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// The fields needed to register a server. The password is plaintext here
/// and is encrypted by the store before it is written.
#[derive(Debug, Clone)]
pub struct NewServer {
    pub name: String,
    pub hostname: String,
    pub cli_port: u16,
    pub webadmin_port: u16,
    pub username: String,
    pub password: Secret,
    pub cli_tls: bool,
    pub tls_verify: bool,
    /// SHA-256 fingerprints as lower-case hex, 64 digits each.
    pub tls_fingerprints: Vec<String>,
    pub webadmin_enabled: bool,
    pub webadmin_allow_http: bool,
}

//! Helpers shared by the tests that run the collector against the fake
//! Axigen server.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::time::Duration;

use axigen_sim::{
    Behavior, GenerateSpec, ServerData, SimHandle, SimOptions, SimServer, WebAdminMode,
};
use axiquota_core::Secret;
use axiquota_core::axigen::collector::CollectOptions;
use axiquota_core::model::{DomainStatus, ServerEndpoint, Snapshot, UsageSource};

/// One account as compared: name, quota KB, used KB, message count, source.
pub type AccountRow = (String, Option<i64>, i64, Option<i64>, UsageSource);

/// A snapshot or a server's data, sorted and flattened for comparison.
pub type Comparable = BTreeMap<String, (DomainStatus, Vec<AccountRow>)>;

/// Generated data with awkward names: IDN and UTF-8 names, mixed case,
/// names that begin with `name` or `list`, unlimited and zero figures.
/// Six domains take every awkward domain name the generator has.
pub fn sample_data(seed: u64) -> ServerData {
    ServerData::generate(&GenerateSpec {
        seed,
        domains: 6,
        accounts_per_domain: 12,
        ..GenerateSpec::default()
    })
}

pub async fn start(data: ServerData, behavior: Behavior) -> SimHandle {
    start_with(data, behavior, false, WebAdminMode::Http).await
}

pub async fn start_with(
    data: ServerData,
    behavior: Behavior,
    cli_tls: bool,
    webadmin: WebAdminMode,
) -> SimHandle {
    SimServer::start(
        data,
        SimOptions {
            behavior,
            cli_tls,
            webadmin,
            ..SimOptions::default()
        },
    )
    .await
    .expect("the fake server starts")
}

/// The endpoint of a fake server, CLI only, with certificate checks off
/// (the fake server's certificate is self-signed).
pub fn endpoint(server: &SimHandle) -> ServerEndpoint {
    ServerEndpoint {
        hostname: "127.0.0.1".to_owned(),
        cli_port: server.cli_addr().port(),
        webadmin_port: server.webadmin_addr().port(),
        username: "admin".to_owned(),
        password: Secret::new("secret"),
        cli_tls: server.cli_tls(),
        tls_verify: false,
        tls_fingerprints: Vec::new(),
        webadmin_enabled: false,
        webadmin_allow_http: false,
    }
}

/// Options with short timeouts: every fault test must end well within a
/// few seconds.
pub fn quick_options() -> CollectOptions {
    CollectOptions {
        connect_timeout: Duration::from_secs(2),
        reply_timeout: Duration::from_millis(300),
        webadmin_timeout: Duration::from_secs(2),
        ..CollectOptions::default()
    }
}

/// Options for runs that must succeed even on a loaded machine: the
/// timeouts are upper bounds only.
pub fn patient_options() -> CollectOptions {
    CollectOptions {
        connect_timeout: Duration::from_secs(10),
        reply_timeout: Duration::from_secs(10),
        webadmin_timeout: Duration::from_secs(10),
        ..CollectOptions::default()
    }
}

/// What a snapshot of `data` must contain: every domain (only the enabled
/// ones when `enabled_only`), every account with its figures. `source`
/// gives each account's expected usage source; CLI usage carries the
/// message count, feed usage does not.
pub fn expected(
    data: &ServerData,
    enabled_only: bool,
    source: impl Fn(&str, &str) -> UsageSource,
) -> Comparable {
    data.domains
        .iter()
        .filter(|domain| domain.enabled || !enabled_only)
        .map(|domain| {
            let status = if domain.enabled {
                DomainStatus::Enabled
            } else {
                DomainStatus::Disabled
            };
            let mut accounts: Vec<AccountRow> = domain
                .accounts
                .iter()
                .map(|account| {
                    let source = source(&domain.name, &account.name);
                    let messages = match source {
                        UsageSource::Cli => Some(account.message_count as i64),
                        UsageSource::Webadmin => None,
                    };
                    (
                        account.name.clone(),
                        account.quota_kb.filter(|&kb| kb != 0).map(|kb| kb as i64),
                        account.used_kb as i64,
                        messages,
                        source,
                    )
                })
                .collect();
            accounts.sort_by(|a, b| a.0.cmp(&b.0));
            (domain.name.clone(), (status, accounts))
        })
        .collect()
}

pub fn expected_cli(data: &ServerData) -> Comparable {
    expected(data, false, |_, _| UsageSource::Cli)
}

pub fn comparable(snapshot: &Snapshot) -> Comparable {
    snapshot
        .domains
        .iter()
        .map(|domain| {
            let mut accounts: Vec<AccountRow> = domain
                .accounts
                .iter()
                .map(|account| {
                    (
                        account.name.clone(),
                        account.quota_kb,
                        account.used_kb,
                        account.message_count,
                        account.usage_source,
                    )
                })
                .collect();
            accounts.sort_by(|a, b| a.0.cmp(&b.0));
            (domain.name.clone(), (domain.status, accounts))
        })
        .collect()
}

/// Asserts that the fake server never received a writing command.
pub fn assert_read_only(server: &SimHandle) {
    let stats = server.stats();
    assert_eq!(
        stats.writing_commands, 0,
        "writing commands: {:?}",
        stats.writing_command_lines
    );
    assert_eq!(stats.command_count("COMMIT"), 0);
    assert_eq!(stats.command_count("SET"), 0);
}

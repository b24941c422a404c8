//! The collector against the fake Axigen server: every reply variant the
//! server can produce gives exactly the data it serves, and the client never
//! sends a writing command.

mod axigen_common;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axigen_sim::{Behavior, Chunking, MboxSizeUnit, Underline, UnlimitedQuota, WebAdminMode};
use axiquota_core::axigen::collector::{CollectOptions, collect};
use axiquota_core::model::UsageSource;

use axigen_common::*;

/// A named variant: how the server behaves, whether its CLI uses TLS, and
/// whether only enabled domains can be seen.
struct Variant {
    name: &'static str,
    behavior: Behavior,
    cli_tls: bool,
    enabled_only: bool,
}

fn variant(name: &'static str, change: impl FnOnce(&mut Behavior)) -> Variant {
    let mut behavior = Behavior::default();
    change(&mut behavior);
    Variant {
        name,
        behavior,
        cli_tls: false,
        enabled_only: false,
    }
}

fn variants() -> Vec<Variant> {
    let mut variants = vec![
        variant("default", |_| {}),
        variant("two-line banner", |b| b.two_line_banner = true),
        variant("USER without status line", |b| b.user_status_line = false),
        variant("telnet IAC bytes", |b| b.telnet_iac = true),
        variant("random chunks", |b| {
            b.chunking = Chunking::Random { seed: 7 }
        }),
        variant("one byte per write", |b| b.chunking = Chunking::OneByte),
        variant("reply latency", |b| {
            b.reply_latency = Duration::from_millis(2)
        }),
        variant("console codes", |b| b.console_codes = true),
        variant("quiet tables", |b| b.quiet = true),
        variant("invalid UTF-8 in text", |b| b.invalid_utf8 = true),
        variant("= underline", |b| b.underline = Underline::Equals),
        variant("narrow name column", |b| b.name_column_width = 3),
        variant("wide name column", |b| b.name_column_width = 80),
        variant("extra columns", |b| b.extra_columns = true),
        variant("domain names only", |b| b.domain_name_only = true),
        variant("Mbox size in KB", |b| b.mbox_size_unit = MboxSizeUnit::Kb),
        variant("Mbox size in bytes", |b| {
            b.mbox_size_unit = MboxSizeUnit::Bytes
        }),
        variant("Mbox size in MB", |b| b.mbox_size_unit = MboxSizeUnit::Mb),
        variant("Mbox size in GB, lower case", |b| {
            b.mbox_size_unit = MboxSizeUnit::Gb;
            b.mbox_size_unit_lowercase = true;
        }),
        variant("quota inheritance notes", |b| b.quota_notes = true),
        variant("unlimited as missing attribute", |b| {
            b.unlimited_quota = UnlimitedQuota::Missing
        }),
        variant("one session allowed", |b| b.max_sessions = Some(1)),
        variant("everything at once", |b| {
            b.two_line_banner = true;
            b.user_status_line = false;
            b.telnet_iac = true;
            b.chunking = Chunking::Random { seed: 11 };
            b.console_codes = true;
            b.invalid_utf8 = true;
            b.underline = Underline::Equals;
            b.name_column_width = 5;
            b.extra_columns = true;
            b.mbox_size_unit = MboxSizeUnit::Mb;
            b.quota_notes = true;
            b.unlimited_quota = UnlimitedQuota::Missing;
        }),
    ];

    let mut without_all_domains = variant("no LIST AllDomains", |b| b.no_list_all_domains = true);
    without_all_domains.enabled_only = true;
    variants.push(without_all_domains);

    let mut quiet_old = variant("quiet, names only, no LIST AllDomains", |b| {
        b.quiet = true;
        b.domain_name_only = true;
        b.no_list_all_domains = true;
    });
    quiet_old.enabled_only = true;
    variants.push(quiet_old);

    let mut tls = variant("implicit TLS", |b| {
        b.chunking = Chunking::Random { seed: 3 }
    });
    tls.cli_tls = true;
    variants.push(tls);
    variants
}

/// Collects every variant with `options` and checks the snapshot against
/// the served data. Returns how many commands the servers saw sent ahead.
async fn collect_every_variant(options: &CollectOptions) -> u64 {
    let mut sent_ahead = 0;
    for (index, variant) in variants().into_iter().enumerate() {
        let data = sample_data(100 + index as u64);
        let server = start_with(
            data.clone(),
            variant.behavior,
            variant.cli_tls,
            WebAdminMode::Http,
        )
        .await;

        let snapshot = collect(&endpoint(&server), options)
            .await
            .unwrap_or_else(|error| panic!("variant \"{}\": {error}", variant.name));

        let want = expected(&data, variant.enabled_only, |_, _| UsageSource::Cli);
        assert_eq!(comparable(&snapshot), want, "variant \"{}\"", variant.name);
        assert!(
            snapshot.skipped.is_empty(),
            "variant \"{}\": {:?}",
            variant.name,
            snapshot.skipped
        );
        assert_eq!(
            snapshot.webadmin_error, None,
            "variant \"{}\"",
            variant.name
        );
        assert_read_only(&server);
        assert!(!snapshot.sent_ahead_dropped, "variant \"{}\"", variant.name);
        sent_ahead += server.stats().commands_sent_ahead;
        server.shutdown().await;
    }
    sent_ahead
}

#[tokio::test]
async fn every_variant_gives_served_data() {
    let sent_ahead = collect_every_variant(&patient_options()).await;
    assert_eq!(sent_ahead, 0, "commands were sent before their prompt");
}

#[tokio::test]
async fn every_variant_gives_served_data_when_sending_ahead() {
    let options = CollectOptions {
        send_ahead: true,
        ..patient_options()
    };
    let sent_ahead = collect_every_variant(&options).await;
    assert!(sent_ahead > 0, "no command was sent ahead");
}

#[tokio::test]
async fn sample_data_has_awkward_cases() {
    // The variants above prove little unless the data has the hard cases.
    let data = sample_data(100);
    let accounts: Vec<_> = data
        .domains
        .iter()
        .flat_map(|domain| &domain.accounts)
        .collect();
    assert!(data.domains.iter().any(|domain| !domain.enabled));
    assert!(data.domains.iter().any(|domain| !domain.name.is_ascii()));
    assert!(accounts.iter().any(|account| account.quota_kb.is_none()));
    assert!(accounts.iter().any(|account| account.used_kb == 0));
    assert!(
        accounts
            .iter()
            .any(|account| account.used_kb > 0 && account.used_kb < 1024)
    );
    let awkward = |name: &str| {
        let lower = name.to_lowercase();
        lower.starts_with("name") || lower.starts_with("list")
    };
    assert!(
        data.domains.iter().any(|domain| awkward(&domain.name))
            || accounts.iter().any(|account| awkward(&account.name))
    );
}

#[tokio::test]
async fn sessions_share_the_work() {
    let data = sample_data(7);
    let server = start(data.clone(), Behavior::default()).await;
    let progress = Arc::new(AtomicU64::new(0));
    let options = axiquota_core::axigen::collector::CollectOptions {
        sessions_per_server: 3,
        progress: Some(progress.clone()),
        ..patient_options()
    };

    let snapshot = collect(&endpoint(&server), &options).await.unwrap();
    assert_eq!(comparable(&snapshot), expected_cli(&data));
    assert_eq!(
        progress.load(Ordering::Relaxed),
        data.account_count() as u64
    );

    let stats = server.stats();
    assert_eq!(stats.logins_succeeded, 3);
    assert_eq!(stats.cli_sessions_active, 0, "every session ends with QUIT");
    assert_eq!(stats.command_count("QUIT"), 3);
    assert_eq!(stats.command_count("COMMIT"), 0);
    assert_read_only(&server);
}

#[tokio::test]
async fn empty_server_gives_empty_snapshot() {
    let data = axigen_sim::ServerData {
        domains: Vec::new(),
    };
    let server = start(data, Behavior::default()).await;
    let snapshot = collect(&endpoint(&server), &patient_options())
        .await
        .unwrap();
    assert!(snapshot.domains.is_empty());
    assert_eq!(snapshot.account_count(), 0);
}

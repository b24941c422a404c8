//! The generator is deterministic and realistic, and data survives a JSON
//! round trip.

mod common;

use std::collections::HashSet;
use std::path::PathBuf;

use axigen_sim::{Domain, GenerateSpec, ServerData};
use common::account;

fn spec(seed: u64, domains: usize, accounts_per_domain: usize) -> GenerateSpec {
    GenerateSpec {
        seed,
        domains,
        accounts_per_domain,
        ..GenerateSpec::default()
    }
}

fn temp_path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("axigen-sim-{name}-{}.json", std::process::id()))
}

fn all_accounts(data: &ServerData) -> impl Iterator<Item = &axigen_sim::Account> {
    data.domains
        .iter()
        .flat_map(|domain| domain.accounts.iter())
}

#[test]
fn generate_is_deterministic_for_seed() {
    let first = ServerData::generate(&spec(42, 8, 50));
    let second = ServerData::generate(&spec(42, 8, 50));
    assert_eq!(first, second);
    let other = ServerData::generate(&spec(43, 8, 50));
    assert_ne!(first, other);
}

#[test]
fn generate_makes_requested_counts() {
    let data = ServerData::generate(&spec(5, 7, 13));
    assert_eq!(data.domains.len(), 7);
    assert_eq!(data.account_count(), 91);
    assert!(
        data.domains
            .iter()
            .all(|domain| domain.accounts.len() == 13)
    );
}

#[test]
fn generate_includes_awkward_names() {
    let data = ServerData::generate(&spec(0, 8, 40));
    let domains: Vec<&str> = data.domains.iter().map(|d| d.name.as_str()).collect();
    for expected in [
        "name-server.com",
        "list.example",
        "bücher.example",
        "xn--mnchen-3ya.example",
        "Total-Mail.Example",
        "domain.test",
    ] {
        assert!(
            domains.contains(&expected),
            "{expected} missing from {domains:?}"
        );
    }
    let accounts: HashSet<&str> = all_accounts(&data).map(|a| a.name.as_str()).collect();
    for expected in [
        "name",
        "list",
        "total",
        "domain",
        "jürgen",
        "Alice.Smith",
        "ÉLODIE",
    ] {
        assert!(accounts.contains(expected), "account {expected} missing");
    }
}

#[test]
fn generate_names_unique_ignoring_case() {
    let data = ServerData::generate(&spec(3, 20, 500));
    let mut domains = HashSet::new();
    for domain in &data.domains {
        assert!(
            domains.insert(domain.name.to_lowercase()),
            "duplicate {}",
            domain.name
        );
        let mut accounts = HashSet::new();
        for account in &domain.accounts {
            assert!(
                accounts.insert(account.name.to_lowercase()),
                "duplicate {} in {}",
                account.name,
                domain.name
            );
        }
    }
    data.validate().unwrap();
}

#[test]
fn generate_spreads_quotas_and_usage() {
    let data = ServerData::generate(&spec(11, 4, 400));
    let accounts: Vec<_> = all_accounts(&data).collect();
    assert!(
        accounts.iter().any(|a| a.quota_kb.is_none()),
        "no unlimited quota"
    );
    assert!(accounts.iter().any(|a| a.used_kb == 0), "no empty mailbox");
    assert!(
        accounts.iter().any(|a| (1..1024).contains(&a.used_kb)),
        "no usage under 1 MB"
    );
    assert!(
        accounts
            .iter()
            .any(|a| a.quota_kb.is_some_and(|quota| a.used_kb > quota)),
        "no usage over quota"
    );
    assert!(
        accounts
            .iter()
            .any(|a| a.used_kb > 0 && a.used_kb % 1024 == 0),
        "no whole-MB usage"
    );
    assert!(
        accounts
            .iter()
            .any(|a| a.name.chars().any(char::is_uppercase)),
        "no mixed-case account"
    );
    assert!(
        accounts
            .iter()
            .all(|a| (a.used_kb == 0) == (a.message_count == 0)),
        "message counts disagree with usage"
    );
}

#[test]
fn generate_has_enabled_and_disabled_domains() {
    for seed in 0..20 {
        let data = ServerData::generate(&spec(seed, 2, 1));
        assert!(
            data.domains.iter().any(|d| d.enabled),
            "seed {seed}: none enabled"
        );
        assert!(
            data.domains.iter().any(|d| !d.enabled),
            "seed {seed}: none disabled"
        );
    }
}

#[test]
fn generate_plain_names_are_ascii() {
    let data = ServerData::generate(&GenerateSpec {
        awkward_names: false,
        ..spec(1, 5, 50)
    });
    for domain in &data.domains {
        assert!(domain.name.is_ascii(), "{}", domain.name);
        assert!(!domain.name.starts_with("xn--"), "{}", domain.name);
    }
}

#[test]
fn json_round_trip_keeps_data() {
    let data = ServerData::generate(&spec(9, 4, 30));
    let path = temp_path("round-trip");
    data.to_json_file(&path).unwrap();
    let loaded = ServerData::from_json_file(&path).unwrap();
    std::fs::remove_file(&path).unwrap();
    assert_eq!(loaded, data);
}

#[test]
fn json_keeps_unlimited_as_null() {
    let data = ServerData {
        domains: vec![Domain {
            name: "bücher.example".to_string(),
            enabled: true,
            accounts: vec![account("jürgen", None, 0, 0)],
        }],
    };
    let text = serde_json::to_string(&data).unwrap();
    assert!(text.contains("\"quota_kb\":null"), "{text}");
    assert!(text.contains("\"used_kb\":0"), "{text}");
}

#[test]
fn from_json_rejects_case_insensitive_duplicates() {
    let path = temp_path("duplicates");
    let text = r#"{"domains": [{"name": "a.example", "enabled": true, "accounts": [
        {"name": "Bob", "quota_kb": null, "used_kb": 1, "message_count": 1},
        {"name": "bob", "quota_kb": 10, "used_kb": 1, "message_count": 1}]}]}"#;
    std::fs::write(&path, text).unwrap();
    let error = ServerData::from_json_file(&path).unwrap_err();
    std::fs::remove_file(&path).unwrap();
    let message = format!("{error:#}");
    assert!(message.contains("duplicate account \"bob\""), "{message}");
}

#[test]
fn from_json_rejects_names_with_spaces() {
    let path = temp_path("spaces");
    let text = r#"{"domains": [{"name": "a b.example", "enabled": true, "accounts": []}]}"#;
    std::fs::write(&path, text).unwrap();
    let error = ServerData::from_json_file(&path).unwrap_err();
    std::fs::remove_file(&path).unwrap();
    assert!(
        format!("{error:#}").contains("\"a b.example\""),
        "{error:#}"
    );
}

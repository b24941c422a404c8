//! The mailbox data a simulated server serves, and a deterministic generator
//! of realistic data sets.

use std::collections::{HashMap, HashSet};
use std::path::Path;

use anyhow::{Context, bail};
use serde::{Deserialize, Serialize};

use crate::rng::SplitMix64;

/// The data one simulated server serves: its domains and their accounts.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerData {
    pub domains: Vec<Domain>,
}

/// A mail domain. Disabled domains appear only in `LIST AllDomains`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Domain {
    pub name: String,
    pub enabled: bool,
    pub accounts: Vec<Account>,
}

/// A mailbox. Sizes are in KB, as the Axigen CLI reports them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Account {
    /// Local part, spelled as the server stores it.
    pub name: String,
    /// Mailbox quota (`totalMessageSize`); `None` is unlimited.
    pub quota_kb: Option<u64>,
    /// Mailbox usage (`Mbox size`).
    pub used_kb: u64,
    pub message_count: u64,
}

/// Parameters of [`ServerData::generate`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GenerateSpec {
    pub seed: u64,
    pub domains: usize,
    pub accounts_per_domain: usize,
    /// Mix in awkward names: UTF-8 and IDN domains, mixed case, and names
    /// that begin with `name`, `list`, `total` or `domain`.
    pub awkward_names: bool,
    /// Chance in percent that a domain is disabled. With two or more domains
    /// at least one is disabled and at least one enabled whatever this is.
    pub disabled_domain_percent: u8,
}

impl Default for GenerateSpec {
    fn default() -> Self {
        Self {
            seed: 1,
            domains: 3,
            accounts_per_domain: 10,
            awkward_names: true,
            disabled_domain_percent: 20,
        }
    }
}

/// Domain names that have broken table parsers before: they begin with words
/// found in table headers, contain non-ASCII letters or use the IDN form.
const AWKWARD_DOMAINS: &[&str] = &[
    "name-server.com",
    "list.example",
    "bücher.example",
    "xn--mnchen-3ya.example",
    "Total-Mail.Example",
    "domain.test",
];

const AWKWARD_ACCOUNTS: &[&str] = &[
    "postmaster",
    "name",
    "list",
    "total",
    "domain",
    "jürgen",
    "Alice.Smith",
    "ÉLODIE",
    "names-and-lists",
];

const DOMAIN_WORDS: &[&str] = &[
    "acme", "north", "blue", "river", "stone", "pixel", "harbor", "maple", "orbit", "cedar",
];
const DOMAIN_SUFFIXES: &[&str] = &["com", "net", "org", "example", "test"];
const FIRST_NAMES: &[&str] = &[
    "alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi", "ivan", "judy", "mallory",
    "oscar", "peggy", "rupert", "sybil", "trent", "victor", "walter",
];
const LAST_NAMES: &[&str] = &[
    "smith", "jones", "brown", "taylor", "wilson", "davies", "evans", "thomas", "roberts", "walker",
];

/// Quota choices in KB, from 100 MB to the largest value Axigen accepts
/// (4294967295 KB, 1 KB under 4096 GB).
const QUOTAS_KB: &[u64] = &[
    102_400,
    512_000,
    1_048_576,
    2_097_152,
    5_242_880,
    10_485_760,
    4_294_967_295,
];

impl ServerData {
    /// Generates a data set; the same spec always gives the same data.
    pub fn generate(spec: &GenerateSpec) -> ServerData {
        let mut rng = SplitMix64::new(spec.seed);
        let mut domain_names = HashSet::new();
        let mut domains = Vec::with_capacity(spec.domains);

        for index in 0..spec.domains {
            let name = unique_name(&mut domain_names, domain_name(spec, index, &mut rng));
            let enabled = !rng.percent(u64::from(spec.disabled_domain_percent));
            let accounts = generate_accounts(spec, index, &mut rng);
            domains.push(Domain {
                name,
                enabled,
                accounts,
            });
        }

        // Make both kinds of domain appear whenever there is room for them.
        if domains.len() >= 2 {
            if domains.iter().all(|domain| domain.enabled) {
                let last = domains.len() - 1;
                domains[last].enabled = false;
            }
            if domains.iter().all(|domain| !domain.enabled) {
                domains[0].enabled = true;
            }
        }
        ServerData { domains }
    }

    /// Reads data written by [`ServerData::to_json_file`] (or by hand) and
    /// checks it with [`ServerData::validate`].
    pub fn from_json_file(path: impl AsRef<Path>) -> anyhow::Result<ServerData> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("failed to read data file {}", path.display()))?;
        let data: ServerData = serde_json::from_str(&text).with_context(|| {
            format!(
                "invalid data file {}: expected {{\"domains\": [{{\"name\", \"enabled\", \"accounts\": [...]}}]}}",
                path.display()
            )
        })?;
        data.validate()
            .with_context(|| format!("invalid data file {}", path.display()))?;
        Ok(data)
    }

    /// Writes the data as pretty-printed JSON.
    pub fn to_json_file(&self, path: impl AsRef<Path>) -> anyhow::Result<()> {
        let path = path.as_ref();
        let text = serde_json::to_string_pretty(self).context("failed to serialise data")?;
        std::fs::write(path, text)
            .with_context(|| format!("failed to write data file {}", path.display()))
    }

    pub fn account_count(&self) -> usize {
        self.domains
            .iter()
            .map(|domain| domain.accounts.len())
            .sum()
    }

    /// Checks that every name can be served: not empty, free of whitespace
    /// and control characters, and unique case-insensitively within its
    /// scope (domains on the server, accounts in their domain).
    ///
    /// # Errors
    ///
    /// Names the first offending domain or account.
    pub fn validate(&self) -> anyhow::Result<()> {
        let mut domain_names = HashSet::new();
        for domain in &self.domains {
            check_name("domain", &domain.name)?;
            if !domain_names.insert(domain.name.to_lowercase()) {
                bail!(
                    "duplicate domain {:?}: domain names must be unique ignoring case",
                    domain.name
                );
            }
            let mut account_names = HashSet::new();
            for account in &domain.accounts {
                check_name("account", &account.name)?;
                if !account_names.insert(account.name.to_lowercase()) {
                    bail!(
                        "duplicate account {:?} in domain {:?}: account names must be unique ignoring case",
                        account.name,
                        domain.name
                    );
                }
            }
        }
        Ok(())
    }
}

fn check_name(kind: &str, name: &str) -> anyhow::Result<()> {
    if name.is_empty() {
        bail!("invalid {kind} name \"\": names must not be empty");
    }
    if name.chars().any(|c| c.is_whitespace() || c.is_control()) {
        bail!(
            "invalid {kind} name {name:?}: names must not contain whitespace or control characters"
        );
    }
    Ok(())
}

/// Appends a number to `name` until it is unique ignoring case.
fn unique_name(taken: &mut HashSet<String>, name: String) -> String {
    if taken.insert(name.to_lowercase()) {
        return name;
    }
    let mut suffix = 2;
    loop {
        let candidate = format!("{name}{suffix}");
        if taken.insert(candidate.to_lowercase()) {
            return candidate;
        }
        suffix += 1;
    }
}

fn domain_name(spec: &GenerateSpec, index: usize, rng: &mut SplitMix64) -> String {
    if spec.awkward_names && index < AWKWARD_DOMAINS.len() {
        // Rotate by the seed so that small data sets differ in which awkward
        // names they get.
        let rotated = (index + spec.seed as usize) % AWKWARD_DOMAINS.len();
        return AWKWARD_DOMAINS[rotated].to_string();
    }
    let word = rng.pick(DOMAIN_WORDS);
    let suffix = rng.pick(DOMAIN_SUFFIXES);
    format!("{word}{index}.{suffix}")
}

fn generate_accounts(
    spec: &GenerateSpec,
    domain_index: usize,
    rng: &mut SplitMix64,
) -> Vec<Account> {
    let mut taken = HashSet::with_capacity(spec.accounts_per_domain);
    let mut accounts = Vec::with_capacity(spec.accounts_per_domain);
    for index in 0..spec.accounts_per_domain {
        let name = unique_name(&mut taken, account_name(spec, domain_index, index, rng));
        let quota_kb = if rng.percent(15) {
            None
        } else {
            Some(realistic_quota(*rng.pick(QUOTAS_KB), index))
        };
        let used_kb = usage_kb(quota_kb, rng);
        let message_count = if used_kb == 0 {
            0
        } else {
            (used_kb / rng.range(20, 200)).max(1)
        };
        accounts.push(Account {
            name,
            quota_kb,
            used_kb,
            message_count,
        });
    }
    accounts
}

fn account_name(
    spec: &GenerateSpec,
    domain_index: usize,
    index: usize,
    rng: &mut SplitMix64,
) -> String {
    if spec.awkward_names && index < AWKWARD_ACCOUNTS.len() {
        let rotated = (index + domain_index + spec.seed as usize) % AWKWARD_ACCOUNTS.len();
        return AWKWARD_ACCOUNTS[rotated].to_string();
    }
    let first = rng.pick(FIRST_NAMES);
    let last = rng.pick(LAST_NAMES);
    let name = match rng.below(3) {
        0 => format!("{first}.{last}"),
        1 => format!("{first}{}", rng.range(1, 999)),
        _ => format!("{}{last}", &first[..1]),
    };
    // A few names keep capitals, as when an administrator typed them so.
    if rng.percent(5) {
        capitalise(&name)
    } else {
        name
    }
}

fn capitalise(name: &str) -> String {
    let mut chars = name.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// Keeps the largest quota for one account in a hundred of those that drew it
/// and gives the others 10 GB, so that the largest value still appears but
/// allocated totals stay plausible. It draws no random number, so the rest
/// of the data stays as it was.
fn realistic_quota(drawn_kb: u64, account_index: usize) -> u64 {
    let largest = QUOTAS_KB[QUOTAS_KB.len() - 1];
    if drawn_kb == largest && account_index % 100 != 0 {
        10_485_760
    } else {
        drawn_kb
    }
}

/// Picks a usage that covers the cases reports get wrong: exactly 0, under
/// 1 MB, whole MB and GB figures, and usage over the quota.
fn usage_kb(quota_kb: Option<u64>, rng: &mut SplitMix64) -> u64 {
    // Unlimited mailboxes get usage up to 4 GB.
    let ceiling = quota_kb.unwrap_or(4_194_304).min(20_971_520);
    let roll = rng.below(100);
    match roll {
        0..10 => 0,
        10..25 => rng.range(1, 1023),
        // Over quota by up to a quarter, at most 1 GB, as a mailbox that
        // kept receiving after its quota was lowered. The largest quotas
        // (up to 4 TB) are never exceeded, which keeps totals realistic.
        25..35 => match quota_kb {
            Some(quota) if quota <= 20_971_520 => {
                quota + rng.range(1, (quota / 4).clamp(1, 1_048_576))
            }
            _ => rng.range(1024, ceiling),
        },
        35..43 => rng.range(1, (ceiling / 1024).max(1)) * 1024,
        43..45 => rng.range(1, (ceiling / 1_048_576).max(1)) * 1_048_576,
        _ => rng.range(1024, ceiling.max(1024)),
    }
}

/// Data with case-insensitive lookups by name, built once per data change so
/// that sessions resolve `UPDATE Domain` and `UPDATE Account` in constant
/// time even for domains with 100,000 accounts.
#[derive(Debug)]
pub(crate) struct IndexedData {
    pub(crate) data: ServerData,
    domains: HashMap<String, usize>,
    accounts: Vec<HashMap<String, usize>>,
}

impl IndexedData {
    pub(crate) fn new(data: ServerData) -> Self {
        let domains = data
            .domains
            .iter()
            .enumerate()
            .map(|(index, domain)| (domain.name.to_lowercase(), index))
            .collect();
        let accounts = data
            .domains
            .iter()
            .map(|domain| {
                domain
                    .accounts
                    .iter()
                    .enumerate()
                    .map(|(index, account)| (account.name.to_lowercase(), index))
                    .collect()
            })
            .collect();
        Self {
            data,
            domains,
            accounts,
        }
    }

    pub(crate) fn find_domain(&self, name: &str) -> Option<usize> {
        self.domains.get(&name.to_lowercase()).copied()
    }

    pub(crate) fn find_account(&self, domain: usize, name: &str) -> Option<usize> {
        self.accounts[domain].get(&name.to_lowercase()).copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usage_over_quota_exceeds_quota() {
        let mut rng = SplitMix64::new(3);
        let mut seen_over = false;
        for _ in 0..2000 {
            let used = usage_kb(Some(1_048_576), &mut rng);
            seen_over |= used > 1_048_576;
        }
        assert!(seen_over, "no usage over the quota in 2000 draws");
    }

    #[test]
    fn unique_name_appends_number_on_case_clash() {
        let mut taken = HashSet::new();
        assert_eq!(unique_name(&mut taken, "Name".into()), "Name");
        assert_eq!(unique_name(&mut taken, "name".into()), "name2");
    }
}

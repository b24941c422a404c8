//! The bodies of replies that show data: LIST tables, SHOW blocks, HELP and
//! the `Mbox size` and quota values.

use super::{DOMAIN_DEFAULT_QUOTA_KB, Session, State};
use crate::behavior::{MboxSizeUnit, UnlimitedQuota};
use crate::cli::command::wildcard_matches;
use crate::cli::facts;
use crate::cli::reply::{Reply, TableLayout, write_show_block};

impl Session {
    pub(super) fn help(&self, reply: &mut Reply) {
        let commands: &[&str] = match self.state {
            State::Login | State::Password => &[
                "USER <name>",
                "GET VERSION",
                "SET CONSOLE-CODES on|off",
                "SET QUIET on|off",
                "SHOW",
                "HELP",
                "QUIT",
            ],
            State::Root => &[
                "LIST Domains [wildcard]",
                "LIST AllDomains [wildcard]",
                "UPDATE Domain [name] <domain>",
                "GET VERSION",
                "SHOW",
                "HELP",
                "QUIT",
            ],
            State::Domain(_) => &[
                "LIST Accounts [wildcard]",
                "UPDATE Account [name] <account>",
                "CONFIG accountDefaultQuotas",
                "SHOW",
                "BACK",
                "QUIT",
            ],
            State::Account(..) => &[
                "SHOW RegistryInformation",
                "CONFIG Quotas",
                "SHOW",
                "BACK",
                "QUIT",
            ],
            State::AccountQuotas(..) | State::DomainDefaultQuotas(_) => {
                &["SHOW", "SHOW ATTR <attribute>", "BACK", "QUIT"]
            }
        };
        reply.line("Available commands:");
        for command in commands {
            reply.line(&format!("  {command}"));
        }
        reply.ok("command successful");
    }

    pub(super) fn show_session(&self, reply: &mut Reply) {
        let on_off = |on: bool| if on { b"on".to_vec() } else { b"off".to_vec() };
        let pairs = vec![
            ("consoleCodes".to_string(), on_off(self.console_codes)),
            ("quiet".to_string(), on_off(self.quiet)),
        ];
        write_show_block(reply, "Session settings:", &pairs);
        reply.ok("command successful");
    }

    pub(super) fn table_title(&self, text: &str) -> Vec<u8> {
        let mut title = text.as_bytes().to_vec();
        if self.behavior.invalid_utf8 {
            // "(Übersicht)" in Latin-1: 0xDC is not valid UTF-8 on its own.
            title.extend_from_slice(b" (\xdcbersicht)");
        }
        title
    }

    pub(super) fn list_domains(&self, reply: &mut Reply, wildcard: Option<&String>, all: bool) {
        let width = self.behavior.name_column_width;
        let columns: &[(&str, usize)] = if self.behavior.domain_name_only {
            &[("name", 0)]
        } else if self.behavior.extra_columns {
            &[
                ("name", width),
                ("accounts", 10),
                ("usedKB", 14),
                ("quotaKB", 14),
                ("status", 0),
            ]
        } else {
            &[("name", width), ("status", 12), ("accounts", 0)]
        };
        let layout = TableLayout {
            columns,
            underline: self.behavior.underline,
            quiet: self.quiet,
        };
        layout.write_head(reply, &self.table_title("The list of domains:"));

        for domain in &self.data.data.domains {
            if !all && !domain.enabled {
                continue;
            }
            if let Some(pattern) = wildcard
                && !wildcard_matches(pattern, &domain.name)
            {
                continue;
            }
            let status = if domain.enabled {
                "enabled"
            } else {
                "disabled"
            };
            let count = domain.accounts.len().to_string();
            if self.behavior.domain_name_only {
                layout.write_row(reply, &[&domain.name]);
            } else if self.behavior.extra_columns {
                let used: u64 = domain.accounts.iter().map(|a| a.used_kb).sum();
                let quota: u64 = domain.accounts.iter().filter_map(|a| a.quota_kb).sum();
                let (used, quota) = (used.to_string(), quota.to_string());
                layout.write_row(reply, &[&domain.name, &count, &used, &quota, status]);
            } else {
                layout.write_row(reply, &[&domain.name, status, &count]);
            }
        }
        layout.write_tail(reply);
    }

    pub(super) fn list_accounts(
        &self,
        reply: &mut Reply,
        domain: usize,
        wildcard: Option<&String>,
    ) {
        let width = self.behavior.name_column_width;
        let columns: &[(&str, usize)] = if self.behavior.extra_columns {
            &[("name", width), ("status", 12), ("created", 0)]
        } else {
            &[("name", 0)]
        };
        let layout = TableLayout {
            columns,
            underline: self.behavior.underline,
            quiet: self.quiet,
        };
        let domain_name = &self.domain(domain).name;
        layout.write_head(reply, &self.table_title("The list of accounts:"));
        // Reserve about 24 bytes per row up front, so that a domain with
        // 100,000 accounts grows the buffer a few times, not hundreds.
        reply.bytes.reserve(self.domain(domain).accounts.len() * 24);

        for account in &self.domain(domain).accounts {
            if let Some(pattern) = wildcard
                && !wildcard_matches(pattern, &account.name)
            {
                continue;
            }
            if self.behavior.extra_columns {
                let created =
                    facts::format_iso_date(facts::creation_time(domain_name, &account.name));
                layout.write_row(reply, &[&account.name, "enabled", &created]);
            } else {
                layout.write_row(reply, &[&account.name]);
            }
        }
        layout.write_tail(reply);
    }

    pub(super) fn show_domain(&self, reply: &mut Reply, domain: usize) {
        let domain = self.domain(domain);
        let pairs = vec![
            ("name".to_string(), quoted(&domain.name)),
            (
                "status".to_string(),
                if domain.enabled {
                    b"enabled".to_vec()
                } else {
                    b"disabled".to_vec()
                },
            ),
            (
                "accountCount".to_string(),
                domain.accounts.len().to_string().into_bytes(),
            ),
        ];
        write_show_block(reply, "Domain settings:", &pairs);
    }

    pub(super) fn show_account(&self, reply: &mut Reply, domain: usize, account: usize) {
        let account = self.account(domain, account);
        let pairs = vec![
            ("name".to_string(), quoted(&account.name)),
            ("enabled".to_string(), b"yes".to_vec()),
        ];
        write_show_block(reply, "Account settings:", &pairs);
    }

    pub(super) fn show_registry(&self, reply: &mut Reply, domain: usize, account: usize) {
        let domain_name = &self.domain(domain).name;
        let account = self.account(domain, account);
        let created = facts::creation_time(domain_name, &account.name);
        let mut pairs = vec![(
            "Creation Date".to_string(),
            facts::format_date(created).into_bytes(),
        )];
        if self.behavior.extra_columns {
            pairs.push((
                "Last login date (IMAP)".to_string(),
                facts::format_date(created + 86_400 * 30).into_bytes(),
            ));
            pairs.push(("Mbox Storage Status".to_string(), b"available".to_vec()));
        }
        pairs.push((
            "Mbox size".to_string(),
            self.format_mbox_size(account.used_kb).into_bytes(),
        ));
        pairs.push((
            "Mbox message count".to_string(),
            account.message_count.to_string().into_bytes(),
        ));
        let folders = facts::folder_count(domain_name, &account.name, account.message_count);
        pairs.push((
            "Mbox folder count".to_string(),
            folders.to_string().into_bytes(),
        ));
        if self.behavior.invalid_utf8 {
            // "Jürgen Müller" in Latin-1.
            pairs.push(("Display name".to_string(), b"J\xfcrgen M\xfcller".to_vec()));
        }
        write_show_block(reply, "Registry information:", &pairs);
    }

    /// Writes a KB figure in the configured unit, always exactly equal to it.
    pub(super) fn format_mbox_size(&self, kb: u64) -> String {
        const KB_PER_MB: u64 = 1024;
        const KB_PER_GB: u64 = 1024 * 1024;
        let (value, unit) = match self.behavior.mbox_size_unit {
            MboxSizeUnit::Bare => return kb.to_string(),
            MboxSizeUnit::Kb => (kb, "KB"),
            MboxSizeUnit::Bytes => (kb * 1024, "B"),
            MboxSizeUnit::Gb if kb % KB_PER_GB == 0 => (kb / KB_PER_GB, "GB"),
            MboxSizeUnit::Mb | MboxSizeUnit::Gb if kb % KB_PER_MB == 0 => (kb / KB_PER_MB, "MB"),
            MboxSizeUnit::Mb | MboxSizeUnit::Gb => (kb, "KB"),
        };
        if self.behavior.mbox_size_unit_lowercase {
            format!("{value} {}", unit.to_lowercase())
        } else {
            format!("{value} {unit}")
        }
    }

    pub(super) fn account_quota_pairs(
        &self,
        domain: usize,
        account: usize,
    ) -> Vec<(String, Vec<u8>)> {
        let quota = self.account(domain, account).quota_kb;
        let mut pairs = match (quota, self.behavior.unlimited_quota) {
            (None, UnlimitedQuota::Missing) => quota_pairs(None),
            (quota, _) => quota_pairs(Some(quota.unwrap_or(0))),
        };
        if self.behavior.quota_notes
            && let Some((_, value)) = pairs.iter_mut().find(|(key, _)| key == "totalMessageSize")
        {
            let note = if quota == Some(DOMAIN_DEFAULT_QUOTA_KB) {
                " [inherited]".to_string()
            } else {
                format!(" [explicit, overrides inherited value: {DOMAIN_DEFAULT_QUOTA_KB}]")
            };
            value.extend_from_slice(note.as_bytes());
        }
        pairs
    }
}

/// Lists the quota attributes of an account or of a domain's defaults. A
/// `None` total leaves `totalMessageSize` out.
pub(super) fn quota_pairs(total_kb: Option<u64>) -> Vec<(String, Vec<u8>)> {
    let mut pairs = vec![("maxMessageSize".to_string(), b"51200".to_vec())];
    if let Some(total) = total_kb {
        pairs.push((
            "totalMessageSize".to_string(),
            total.to_string().into_bytes(),
        ));
    }
    pairs.push(("totalMessageCount".to_string(), b"0".to_vec()));
    pairs.push(("quotaLimitNotificationEnabled".to_string(), b"yes".to_vec()));
    pairs.push((
        "quotaLimitNotificationInterval".to_string(),
        b"1440".to_vec(),
    ));
    pairs
}

fn quoted(text: &str) -> Vec<u8> {
    format!("\"{text}\"").into_bytes()
}

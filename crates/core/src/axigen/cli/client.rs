//! A typed, read-only client over one CLI [`Connection`].
//!
//! It sends only reading and navigation commands (`LIST`, `UPDATE` to enter
//! a context, `CONFIG` to enter a sub-context, `SHOW`, `BACK`, `QUIT`). It
//! leaves every context with `BACK`, which discards changes, and never sends
//! `COMMIT`, `DONE`, `SET`, `ADD` or any other writing command.

use std::collections::HashSet;

use super::connection::{CliError, ConnectOptions, Connection, Reply};
use super::parse;
use crate::model::{DomainStatus, ServerEndpoint};

/// A domain as `LIST AllDomains` or `LIST Domains` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedDomain {
    /// The name as the server spells it.
    pub name: String,
    pub status: DomainStatus,
}

/// The usage figures of `SHOW RegistryInformation`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RegistryInformation {
    /// `Mbox size`, converted to KB.
    pub mbox_size_kb: u64,
    /// `Mbox message count`, when the server shows it.
    pub message_count: Option<u64>,
}

/// The context the session is in, as entered through this client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Context {
    Root,
    Domain(String),
    Account { domain: String, account: String },
}

/// A logged-in, read-only CLI session.
#[derive(Debug)]
pub struct CliClient {
    connection: Connection,
    context: Context,
    /// Cleared after the first `-ERR` to `SHOW ATTR`, so later quotas are
    /// read with `SHOW` without spending more errors.
    show_attr_supported: bool,
    /// The prompt path shown right after login.
    root_prompt: String,
}

/// Figures of one account read by [`CliClient::read_account_ahead`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AccountFigures {
    /// Present when usage was requested.
    pub registry: Option<RegistryInformation>,
    /// `None` means unlimited.
    pub quota_kb: Option<u64>,
}

impl CliClient {
    /// Connects and logs in with the endpoint's credentials. A rejected
    /// password is returned at once and never retried.
    ///
    /// # Errors
    ///
    /// Connection and reply errors, or [`CliError::AuthenticationFailed`].
    pub async fn login(
        endpoint: &ServerEndpoint,
        options: &ConnectOptions,
    ) -> Result<Self, CliError> {
        let mut connection = Connection::connect(endpoint, options).await?;
        connection
            .login(&endpoint.username, &endpoint.password)
            .await?;
        let root_prompt = connection.prompt().to_owned();
        Ok(Self {
            connection,
            context: Context::Root,
            show_attr_supported: true,
            root_prompt,
        })
    }

    /// Lists every domain with its status.
    ///
    /// Sends `LIST AllDomains` and, when the server rejects it, `LIST
    /// Domains`, whose domains are all enabled. When `LIST AllDomains` has no
    /// usable status column, `LIST Domains` decides: a domain missing from it
    /// is disabled.
    ///
    /// # Errors
    ///
    /// [`CliError::Rejected`] when `LIST Domains` is rejected too, or any
    /// connection error.
    pub async fn list_domains(&mut self) -> Result<Vec<ListedDomain>, CliError> {
        let all = match self.connection.command("LIST AllDomains").await {
            Ok(reply) => parse::parse_domain_table(&reply.lines),
            Err(CliError::Rejected { .. }) => {
                let reply = self.connection.command("LIST Domains").await?;
                return Ok(parse::parse_domain_table(&reply.lines)
                    .into_iter()
                    .map(|row| ListedDomain {
                        name: row.name,
                        status: DomainStatus::Enabled,
                    })
                    .collect());
            }
            Err(error) => return Err(error),
        };

        let active: Option<HashSet<String>> = if all.iter().any(|row| row.status.is_none()) {
            let reply = self.connection.command("LIST Domains").await?;
            let table = parse::parse_table(&reply.lines);
            Some(
                parse::row_names(&table)
                    .iter()
                    .map(|name| name.to_lowercase())
                    .collect(),
            )
        } else {
            None
        };

        Ok(all
            .into_iter()
            .map(|row| {
                let status = match (row.status, &active) {
                    (Some(status), _) => status,
                    (None, Some(active)) if active.contains(&row.name.to_lowercase()) => {
                        DomainStatus::Enabled
                    }
                    (None, _) => DomainStatus::Disabled,
                };
                ListedDomain {
                    name: row.name,
                    status,
                }
            })
            .collect())
    }

    /// Enters a domain's context with `UPDATE Domain name "<domain>"`. Must
    /// be called at the root.
    ///
    /// # Errors
    ///
    /// [`CliError::Rejected`] when the domain does not exist (any more).
    pub async fn enter_domain(&mut self, domain: &str) -> Result<(), CliError> {
        self.expect_context_depth(0, "UPDATE Domain")?;
        let command = format!("UPDATE Domain name {}", quote(domain)?);
        self.connection.command(&command).await?;
        self.context = Context::Domain(domain.to_owned());
        Ok(())
    }

    /// Lists the account names (local parts) of the current domain.
    ///
    /// # Errors
    ///
    /// Reply and connection errors.
    pub async fn list_accounts(&mut self) -> Result<Vec<String>, CliError> {
        self.expect_context_depth(1, "LIST Accounts")?;
        let reply = self.connection.command("LIST Accounts").await?;
        Ok(parse::row_names(&parse::parse_table(&reply.lines)))
    }

    /// Enters an account's context with `UPDATE Account name "<account>"`.
    /// Must be called in a domain context.
    ///
    /// # Errors
    ///
    /// [`CliError::Rejected`] when the account does not exist (any more).
    pub async fn enter_account(&mut self, account: &str) -> Result<(), CliError> {
        let Context::Domain(domain) = &self.context else {
            return Err(self.context_error("UPDATE Account"));
        };
        let domain = domain.clone();
        let command = format!("UPDATE Account name {}", quote(account)?);
        self.connection.command(&command).await?;
        self.context = Context::Account {
            domain,
            account: account.to_owned(),
        };
        Ok(())
    }

    /// Reads the current account's usage with `SHOW RegistryInformation`.
    ///
    /// # Errors
    ///
    /// [`CliError::Protocol`] when the reply has no readable `Mbox size`.
    pub async fn registry_information(&mut self) -> Result<RegistryInformation, CliError> {
        self.expect_context_depth(2, "SHOW RegistryInformation")?;
        let reply = self.connection.command("SHOW RegistryInformation").await?;
        registry_from(&reply)
    }

    /// Reads an account of the current domain with its commands sent
    /// together: `UPDATE Account`, `SHOW RegistryInformation` when `usage`
    /// is set, `CONFIG Quotas`, the quota's `SHOW ATTR` (or `SHOW`), and
    /// `BACK` twice. One round trip instead of five or six, for servers that
    /// read commands sent ahead of their prompt in order, as a line-based
    /// service does.
    ///
    /// Afterwards the session is back in the domain or, when a command was
    /// rejected and the server's context went astray, at the root.
    ///
    /// # Errors
    ///
    /// [`CliError::Rejected`] for the first rejected command: the caller
    /// skips the account when it is `UPDATE Account`, and otherwise reads
    /// the account again one command at a time. Protocol errors as for the
    /// single commands.
    // NOTE: Axigen does not document how its CLI treats commands sent
    // before its prompt. This was tried against the fake server only, which
    // reads them in order; a real server that drops them costs one reply
    // timeout before the collector stops sending ahead.
    pub async fn read_account_ahead(
        &mut self,
        account: &str,
        usage: bool,
    ) -> Result<AccountFigures, CliError> {
        let Context::Domain(_) = &self.context else {
            return Err(self.context_error("UPDATE Account"));
        };
        let domain_prompt = self.connection.prompt().to_owned();
        let enter = format!("UPDATE Account name {}", quote(account)?);
        let show_quota = if self.show_attr_supported {
            "SHOW ATTR totalMessageSize"
        } else {
            "SHOW"
        };
        let mut commands = vec![enter.as_str()];
        if usage {
            commands.push("SHOW RegistryInformation");
        }
        commands.extend(["CONFIG Quotas", show_quota, "BACK", "BACK"]);

        let replies = self.connection.commands(&commands).await?;
        // `SHOW ATTR` rejected inside the quotas context: read with `SHOW`
        // from now on, as the one-command-at-a-time path does.
        let show_at = commands.len() - 3;
        let in_quotas = replies[0].is_ok() && replies[show_at - 1].is_ok();
        let quota_rejected = replies[show_at].is_err();
        if show_quota != "SHOW" && in_quotas && quota_rejected {
            self.show_attr_supported = false;
        }
        if self.connection.prompt() != domain_prompt {
            self.return_to_root().await?;
        }
        let mut replies = replies.into_iter();
        let mut next = || replies.next().expect("one reply per command");
        next()?;
        let registry = if usage {
            Some(registry_from(&next()?)?)
        } else {
            None
        };
        next()?;
        let quota = next()?;
        next()?;
        next()?;
        let quota_kb = quota_from(parse::find_value(&quota.lines, "totalMessageSize"))?;
        Ok(AccountFigures { registry, quota_kb })
    }

    /// Sends `BACK` until the server shows the prompt it showed after
    /// login, for a session whose context is not known any more.
    async fn return_to_root(&mut self) -> Result<(), CliError> {
        /// Deeper than any context this client enters.
        const MAX_LEVELS: usize = 4;
        for _ in 0..MAX_LEVELS {
            if self.connection.prompt() == self.root_prompt {
                self.context = Context::Root;
                return Ok(());
            }
            match self.connection.command("BACK").await {
                Ok(_) | Err(CliError::Rejected { .. }) => {}
                Err(error) => return Err(error),
            }
        }
        Err(CliError::Protocol {
            line: format!("<{}> ", self.connection.prompt()),
            detail: format!(
                "the session did not return to the root prompt <{}> after {MAX_LEVELS} BACK commands",
                self.root_prompt
            ),
        })
    }

    /// Reads the current account's quota (`totalMessageSize`, in KB) from
    /// its quotas context and leaves that context again. `None` means
    /// unlimited: the attribute is missing or 0.
    ///
    /// Sends `CONFIG Quotas`, then `SHOW ATTR totalMessageSize` (or `SHOW`
    /// when the server rejects `SHOW ATTR`), then `BACK`.
    ///
    /// # Errors
    ///
    /// [`CliError::Rejected`] for `CONFIG Quotas` or `SHOW`,
    /// [`CliError::Protocol`] for a value that is not a number.
    pub async fn quota(&mut self) -> Result<Option<u64>, CliError> {
        self.expect_context_depth(2, "CONFIG Quotas")?;
        self.connection.command("CONFIG Quotas").await?;

        let read = self.read_total_message_size().await;
        // Leave the quotas context whatever the read gave, unless the
        // connection itself is gone.
        if matches!(read, Ok(_) | Err(CliError::Rejected { .. })) {
            self.connection.command("BACK").await?;
        }
        quota_from(read?.as_deref())
    }

    async fn read_total_message_size(&mut self) -> Result<Option<String>, CliError> {
        if self.show_attr_supported {
            match self.connection.command("SHOW ATTR totalMessageSize").await {
                Ok(reply) => {
                    return Ok(
                        parse::find_value(&reply.lines, "totalMessageSize").map(str::to_owned)
                    );
                }
                Err(CliError::Rejected { .. }) => self.show_attr_supported = false,
                Err(error) => return Err(error),
            }
        }
        let reply = self.connection.command("SHOW").await?;
        Ok(parse::find_value(&reply.lines, "totalMessageSize").map(str::to_owned))
    }

    /// Leaves the current context with `BACK`, discarding any change.
    ///
    /// # Errors
    ///
    /// Reply and connection errors.
    pub async fn back(&mut self) -> Result<(), CliError> {
        self.connection.command("BACK").await?;
        self.context = match std::mem::replace(&mut self.context, Context::Root) {
            Context::Account { domain, .. } => Context::Domain(domain),
            Context::Domain(_) | Context::Root => Context::Root,
        };
        Ok(())
    }

    /// Sends `QUIT` and closes the connection.
    pub async fn quit(self) {
        self.connection.quit().await;
    }

    /// Returns the context entered through this client.
    pub fn context(&self) -> &Context {
        &self.context
    }

    /// Returns the number of `-ERR` replies received in this session. Servers close
    /// a session after a configured number of them (20 by default).
    pub fn rejected_count(&self) -> u32 {
        self.connection.rejected_count()
    }

    fn expect_context_depth(&self, depth: usize, command: &str) -> Result<(), CliError> {
        let current = match self.context {
            Context::Root => 0,
            Context::Domain(_) => 1,
            Context::Account { .. } => 2,
        };
        if current == depth {
            Ok(())
        } else {
            Err(self.context_error(command))
        }
    }

    fn context_error(&self, command: &str) -> CliError {
        CliError::Protocol {
            line: command.to_owned(),
            detail: format!(
                "command used in the wrong context ({:?}); this is a bug in the client",
                self.context
            ),
        }
    }
}

/// Reads the usage figures from a reply to `SHOW RegistryInformation`.
fn registry_from(reply: &Reply) -> Result<RegistryInformation, CliError> {
    let raw_size =
        parse::find_value(&reply.lines, "Mbox size").ok_or_else(|| CliError::Protocol {
            line: reply.lines.first().cloned().unwrap_or_default(),
            detail: "no \"Mbox size\" line in the reply to SHOW RegistryInformation".to_owned(),
        })?;
    let mbox_size_kb = parse::parse_size_kb(parse::attribute_value(raw_size)).ok_or_else(|| {
        CliError::Protocol {
            line: format!("Mbox size = {raw_size}"),
            detail: "invalid mailbox size; expected a number with an optional B, KB, MB or GB unit"
                .to_owned(),
        }
    })?;
    let message_count = parse::find_value(&reply.lines, "Mbox message count")
        .and_then(|raw| parse::attribute_value(raw).parse().ok());

    Ok(RegistryInformation {
        mbox_size_kb,
        message_count,
    })
}

/// Reads a quota in KB from the raw `totalMessageSize` value; a missing
/// value and 0 mean unlimited.
fn quota_from(raw: Option<&str>) -> Result<Option<u64>, CliError> {
    let Some(raw) = raw else {
        return Ok(None);
    };
    let value = parse::attribute_value(raw);
    let kb: u64 = value.parse().map_err(|_| CliError::Protocol {
        line: format!("totalMessageSize = {raw}"),
        detail: "invalid quota; expected a whole number of KB".to_owned(),
    })?;
    Ok((kb != 0).then_some(kb))
}

/// Quotes a name for a command: double quotes, with `\` and `"` escaped.
///
/// # Errors
///
/// [`CliError::Protocol`] when the name contains a control character, which
/// could end the command line early.
pub fn quote(name: &str) -> Result<String, CliError> {
    if name.chars().any(char::is_control) {
        return Err(CliError::Protocol {
            line: name.escape_default().to_string(),
            detail: "a name contains a control character and cannot be sent".to_owned(),
        });
    }
    let mut quoted = String::with_capacity(name.len() + 2);
    quoted.push('"');
    for c in name.chars() {
        if c == '"' || c == '\\' {
            quoted.push('\\');
        }
        quoted.push(c);
    }
    quoted.push('"');
    Ok(quoted)
}

/// Quotes `value` only when it contains whitespace, quotes or backslashes,
/// so a plain username is sent as `USER admin`.
pub(crate) fn quote_if_needed(value: &str) -> String {
    let plain = value
        .chars()
        .all(|c| !c.is_whitespace() && c != '"' && c != '\'' && c != '\\');
    if plain {
        value.to_owned()
    } else {
        quote(value).unwrap_or_else(|_| value.to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quote_escapes_quotes_and_backslashes() {
        assert_eq!(quote("example.com").unwrap(), "\"example.com\"");
        assert_eq!(quote(r#"a"b\c"#).unwrap(), r#""a\"b\\c""#);
        assert_eq!(quote("jürgen").unwrap(), "\"jürgen\"");
    }

    #[test]
    fn quote_rejects_line_breaks() {
        assert!(matches!(quote("a\rCOMMIT"), Err(CliError::Protocol { .. })));
    }

    #[test]
    fn username_quoted_only_when_needed() {
        assert_eq!(quote_if_needed("admin"), "admin");
        assert_eq!(quote_if_needed("my admin"), "\"my admin\"");
    }
}

//! One CLI session of a collection, taking jobs from the shared queue.

use std::ops::Range;
use std::sync::atomic::Ordering;

use tracing::{debug, warn};

use super::CollectOptions;
use super::state::{CollectState, Job};
use crate::axigen::cli::{CliClient, CliError, Context};
use crate::model::{AccountSnapshot, ServerEndpoint, UsageSource};

/// The most `-ERR` replies one step can receive: `SHOW ATTR`, `SHOW` and
/// `BACK` inside one account, or `LIST AllDomains` and `LIST Domains`.
const MAX_ERRORS_PER_STEP: u32 = 3;

/// The same when an account's commands are sent together: every command
/// of the batch but one `BACK`, when `UPDATE Account` is rejected and the
/// rest runs in the domain and then at the root. Reading the account again
/// one command at a time is a step of its own.
const MAX_ERRORS_PER_STEP_AHEAD: u32 = 5;

/// The outcome of reading one account.
enum AccountOutcome {
    Read(AccountSnapshot),
    /// The server rejected a command for this account, named in the reason.
    Skipped(String),
    /// The account's domain vanished.
    DomainGone,
}

pub(super) struct Worker<'a> {
    id: usize,
    endpoint: &'a ServerEndpoint,
    options: &'a CollectOptions,
    state: &'a CollectState,
    client: Option<CliClient>,
    /// Whether this worker ever had a session. One that never got one (the
    /// server's connection limit) leaves the work to the others.
    ever_connected: bool,
    retired: bool,
}

impl<'a> Worker<'a> {
    pub(super) fn new(
        id: usize,
        endpoint: &'a ServerEndpoint,
        options: &'a CollectOptions,
        state: &'a CollectState,
    ) -> Self {
        Self {
            id,
            endpoint,
            options,
            state,
            client: None,
            ever_connected: false,
            retired: false,
        }
    }

    /// Hands this worker a session that is already logged in.
    pub(super) fn adopt(&mut self, client: CliClient) {
        self.client = Some(client);
        self.ever_connected = true;
    }

    /// Tells whether this worker still takes jobs.
    pub(super) fn is_active(&self) -> bool {
        !self.retired
    }

    /// Takes jobs until the queue is empty.
    ///
    /// # Errors
    ///
    /// The first error that fails the collection.
    pub(super) async fn run(&mut self) -> Result<(), CliError> {
        if self.retired {
            return Ok(());
        }
        while let Some(job) = self.state.next_job() {
            if !self.ever_connected {
                match self.open_session().await {
                    Ok(()) => {}
                    Err(error)
                        if error.is_connection_lost()
                            || matches!(error, CliError::Connect { .. }) =>
                    {
                        warn!(session = self.id, %error, "could not open an extra CLI session; continuing with fewer");
                        self.state.return_job(job);
                        self.retired = true;
                        return Ok(());
                    }
                    Err(error) => return Err(error),
                }
            }

            match job {
                Job::ListAccounts(domain) => self.list_accounts(domain).await?,
                Job::Accounts { domain, range } => self.read_accounts(domain, range).await?,
            }
        }
        Ok(())
    }

    /// Ends the session with `QUIT`.
    pub(super) async fn quit(self) {
        if let Some(client) = self.client {
            client.quit().await;
        }
    }

    async fn open_session(&mut self) -> Result<(), CliError> {
        debug!(session = self.id, "opening a CLI session");
        let client = CliClient::login(self.endpoint, &self.options.connect_options()).await?;
        self.adopt(client);
        Ok(())
    }

    /// Makes sure a session is open and far enough from the server's error
    /// limit for one more step. Called only between steps, because a new
    /// session starts at the root context.
    async fn prepare_session(&mut self) -> Result<&mut CliClient, CliError> {
        let per_step = if self.state.sends_ahead() {
            MAX_ERRORS_PER_STEP_AHEAD
        } else {
            MAX_ERRORS_PER_STEP
        };
        let limit = self.options.max_errors_per_session.max(per_step);
        let near_limit = self
            .client
            .as_ref()
            .is_some_and(|client| client.rejected_count() + per_step > limit);
        if near_limit && let Some(client) = self.client.take() {
            debug!(
                session = self.id,
                rejected = client.rejected_count(),
                "replacing a CLI session near its error limit"
            );
            client.quit().await;
        }

        if self.client.is_none() {
            self.open_session().await?;
        }
        Ok(self.client.as_mut().expect("a session was just opened"))
    }

    /// Drops a lost session so that the next step opens a new one.
    fn drop_session(&mut self, error: &CliError) {
        warn!(session = self.id, %error, "CLI session lost; continuing on a new session");
        self.client = None;
    }

    /// Moves the session into the domain's context. Returns false when the
    /// server rejects the domain, which is then recorded as gone.
    async fn enter_domain(&mut self, domain: usize) -> Result<bool, CliError> {
        let name = self.state.domain_name(domain);
        let client = self.prepare_session().await?;
        loop {
            match client.context() {
                Context::Domain(current) if *current == name => return Ok(true),
                Context::Root => break,
                Context::Domain(_) | Context::Account { .. } => client.back().await?,
            }
        }

        match client.enter_domain(&name).await {
            Ok(()) => Ok(true),
            Err(CliError::Rejected { command, status }) => {
                self.state
                    .mark_domain_gone(domain, format!("{command} rejected: {status}"));
                Ok(false)
            }
            Err(error) => Err(error),
        }
    }

    async fn list_accounts(&mut self, domain: usize) -> Result<(), CliError> {
        let mut retried = false;
        loop {
            let attempt = async {
                if !self.enter_domain(domain).await? {
                    return Ok(None);
                }
                let client = self
                    .client
                    .as_mut()
                    .expect("a session is open after entering a domain");
                client.list_accounts().await.map(Some)
            };
            match attempt.await {
                Ok(Some(names)) => {
                    self.state.set_accounts(domain, names);
                    return Ok(());
                }
                Ok(None) => return Ok(()),
                Err(error) if error.is_connection_lost() && !retried => {
                    self.drop_session(&error);
                    retried = true;
                }
                Err(error) => return Err(error),
            }
        }
    }

    async fn read_accounts(&mut self, domain: usize, range: Range<usize>) -> Result<(), CliError> {
        let names = self.state.account_names(domain);
        let domain_name = self.state.domain_name(domain);
        let mut retried_at = None;
        let mut batch_lost_at = None;
        let mut index = range.start;

        while index < range.end {
            if self.state.is_gone(domain) {
                return Ok(());
            }
            let account = &names[index];
            let ahead = self.state.sends_ahead() && batch_lost_at != Some(index);
            match self
                .read_account(domain, &domain_name, account, ahead)
                .await
            {
                Ok(AccountOutcome::Read(snapshot)) => {
                    self.state.record_account(domain, index, snapshot);
                }
                Ok(AccountOutcome::Skipped(reason)) => {
                    warn!(domain = %domain_name, account = %account, %reason, "skipping account");
                    self.state.skip_account(domain, index, reason);
                }
                Ok(AccountOutcome::DomainGone) => return Ok(()),
                Err(error) if error.is_connection_lost() && ahead => {
                    // Read this account again one command at a time on a
                    // new session. That attempt does not depend on the
                    // server taking commands sent ahead, and a vanished
                    // account costs it one error instead of five, so a
                    // server with a low error limit lets it through.
                    if matches!(error, CliError::TimedOut { .. }) {
                        // The timed-out batch is already in the log.
                        debug!(session = self.id, %error, "replacing the CLI session of a timed-out batch");
                        self.client = None;
                    } else {
                        self.drop_session(&error);
                    }
                    batch_lost_at = Some(index);
                    continue;
                }
                Err(error) if error.is_connection_lost() && retried_at != Some(index) => {
                    // Retry this account once on a new session.
                    self.drop_session(&error);
                    retried_at = Some(index);
                    continue;
                }
                Err(error) => return Err(error),
            }

            if let Some(progress) = &self.options.progress {
                progress.fetch_add(1, Ordering::Relaxed);
            }
            index += 1;
        }
        Ok(())
    }

    async fn read_account(
        &mut self,
        domain: usize,
        domain_name: &str,
        account: &str,
        ahead: bool,
    ) -> Result<AccountOutcome, CliError> {
        if !self.enter_domain(domain).await? {
            return Ok(AccountOutcome::DomainGone);
        }
        if ahead {
            if let Some(outcome) = self.read_account_ahead(domain_name, account).await? {
                return Ok(outcome);
            }
            // A command other than UPDATE Account was rejected, so the
            // account is read again one command at a time to find which.
            if !self.enter_domain(domain).await? {
                return Ok(AccountOutcome::DomainGone);
            }
        }
        let state = self.state;
        let client = self
            .client
            .as_mut()
            .expect("a session is open after entering a domain");

        match client.enter_account(account).await {
            Ok(()) => {}
            Err(CliError::Rejected { command, status }) => {
                return Ok(AccountOutcome::Skipped(format!(
                    "{command} rejected: {status}"
                )));
            }
            Err(error) => return Err(error),
        }

        let read = read_entered_account(client, state, domain_name, account).await;
        // Leave the account context while the session is still in step.
        if matches!(read, Ok(_) | Err(CliError::Rejected { .. })) {
            client.back().await?;
        }
        match read {
            Ok(snapshot) => Ok(AccountOutcome::Read(snapshot)),
            Err(CliError::Rejected { command, status }) => Ok(AccountOutcome::Skipped(format!(
                "{command} rejected: {status}"
            ))),
            Err(error) => Err(error),
        }
    }

    /// Reads an account with its commands sent together. Returns `None`
    /// when the account has to be read again one command at a time.
    async fn read_account_ahead(
        &mut self,
        domain_name: &str,
        account: &str,
    ) -> Result<Option<AccountOutcome>, CliError> {
        let feed_usage = self.state.feed_usage_kb(domain_name, account);
        let client = self
            .client
            .as_mut()
            .expect("a session is open after entering a domain");
        let figures = match client
            .read_account_ahead(account, feed_usage.is_none())
            .await
        {
            Ok(figures) => figures,
            Err(CliError::Rejected { command, status }) if command.starts_with("UPDATE ") => {
                return Ok(Some(AccountOutcome::Skipped(format!(
                    "{command} rejected: {status}"
                ))));
            }
            Err(error @ CliError::Rejected { .. }) => {
                debug!(session = self.id, domain = %domain_name, account = %account, %error, "a command sent ahead was rejected; reading the account one command at a time");
                return Ok(None);
            }
            Err(error @ CliError::TimedOut { .. }) => {
                // Every session with a batch in flight times out, and only
                // the first one to give up logs it.
                if self.state.stop_sending_ahead() {
                    warn!(session = self.id, %error, "commands sent ahead timed out; reading this server one command at a time");
                }
                return Err(error);
            }
            Err(error) => return Err(error),
        };
        let (used_kb, message_count, usage_source) = match (feed_usage, figures.registry) {
            (Some(used_kb), _) => (used_kb, None, UsageSource::Webadmin),
            (None, Some(info)) => (info.mbox_size_kb, info.message_count, UsageSource::Cli),
            (None, None) => {
                unreachable!("usage is read over the CLI when the feed lacks the account")
            }
        };
        let snapshot = account_snapshot(
            domain_name,
            account,
            used_kb,
            message_count,
            usage_source,
            figures.quota_kb,
        )?;
        Ok(Some(AccountOutcome::Read(snapshot)))
    }
}

/// Reads usage (from the feed when it lists the account, else over the
/// CLI) and the quota of the account whose context the session is in.
async fn read_entered_account(
    client: &mut CliClient,
    state: &CollectState,
    domain_name: &str,
    account: &str,
) -> Result<AccountSnapshot, CliError> {
    let (used_kb, message_count, usage_source) = match state.feed_usage_kb(domain_name, account) {
        Some(used_kb) => (used_kb, None, UsageSource::Webadmin),
        None => {
            let info = client.registry_information().await?;
            (info.mbox_size_kb, info.message_count, UsageSource::Cli)
        }
    };
    let quota_kb = client.quota().await?;
    account_snapshot(
        domain_name,
        account,
        used_kb,
        message_count,
        usage_source,
        quota_kb,
    )
}

/// Builds an account's snapshot, refusing figures beyond what the database
/// stores.
fn account_snapshot(
    domain_name: &str,
    account: &str,
    used_kb: u64,
    message_count: Option<u64>,
    usage_source: UsageSource,
    quota_kb: Option<u64>,
) -> Result<AccountSnapshot, CliError> {
    let to_i64 = |value: u64, what: &str| {
        i64::try_from(value).map_err(|_| CliError::Protocol {
            line: format!("{what} = {value}"),
            detail: format!("the {what} of {account}@{domain_name} is out of range"),
        })
    };
    Ok(AccountSnapshot {
        name: account.to_owned(),
        quota_kb: quota_kb.map(|kb| to_i64(kb, "quota")).transpose()?,
        used_kb: to_i64(used_kb, "mailbox size")?,
        message_count: message_count
            .map(|count| to_i64(count, "message count"))
            .transpose()?,
        usage_source,
    })
}

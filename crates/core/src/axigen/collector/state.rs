//! The work queue and the results of one collection, shared by its sessions.
//!
//! All sessions of a server run in one task, so the mutex is only ever held
//! for a few field updates, never across an `.await`.

use std::collections::VecDeque;
use std::ops::Range;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use chrono::{DateTime, Utc};

use crate::axigen::cli::{CliError, ListedDomain};
use crate::axigen::webadmin::UsageFeed;
use crate::model::{AccountSnapshot, DomainSnapshot, SkippedItem, Snapshot};

/// Accounts handed to a session at a time. Small enough to spread a large
/// domain over every session, large enough to keep queue traffic low.
pub const ACCOUNT_CHUNK: usize = 100;

/// One unit of work for a session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Job {
    /// List the accounts of the domain at this index.
    ListAccounts(usize),
    /// Read these accounts of the domain at this index.
    Accounts { domain: usize, range: Range<usize> },
}

/// The outcome of reading one listed account.
#[derive(Debug)]
enum Slot {
    Pending,
    Read(AccountSnapshot),
    Skipped,
}

#[derive(Debug)]
struct DomainResult {
    listed: ListedDomain,
    /// The account names as listed; shared with the sessions reading them.
    names: Arc<Vec<String>>,
    slots: Vec<Slot>,
    /// Set when the domain vanished; its accounts are then dropped.
    gone: bool,
}

#[derive(Debug)]
struct Inner {
    jobs: VecDeque<Job>,
    domains: Vec<DomainResult>,
    skipped: Vec<SkippedItem>,
}

/// The shared state of one collection.
#[derive(Debug)]
pub(super) struct CollectState {
    inner: Mutex<Inner>,
    feed: Option<UsageFeed>,
    /// Whether sessions send an account's commands together; cleared for
    /// the rest of the collection when the server leaves them unanswered.
    send_ahead: AtomicBool,
    /// Whether the collection started out sending ahead.
    send_ahead_requested: bool,
}

impl CollectState {
    pub(super) fn new(
        domains: Vec<ListedDomain>,
        feed: Option<UsageFeed>,
        send_ahead: bool,
    ) -> Self {
        let domains = domains
            .into_iter()
            .map(|listed| DomainResult {
                listed,
                names: Arc::new(Vec::new()),
                slots: Vec::new(),
                gone: false,
            })
            .collect();
        Self {
            inner: Mutex::new(Inner {
                jobs: VecDeque::new(),
                domains,
                skipped: Vec::new(),
            }),
            feed,
            send_ahead: AtomicBool::new(send_ahead),
            send_ahead_requested: send_ahead,
        }
    }

    pub(super) fn sends_ahead(&self) -> bool {
        self.send_ahead.load(Ordering::Relaxed)
    }

    /// Makes every session of this collection send one command at a time.
    /// Returns whether sessions were sending ahead until now.
    pub(super) fn stop_sending_ahead(&self) -> bool {
        self.send_ahead.swap(false, Ordering::Relaxed)
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock would already have failed the
        // collection, so a poisoned lock holds nothing worth refusing.
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub(super) fn domain_count(&self) -> usize {
        self.lock().domains.len()
    }

    pub(super) fn domain_name(&self, domain: usize) -> String {
        self.lock().domains[domain].listed.name.clone()
    }

    pub(super) fn account_names(&self, domain: usize) -> Arc<Vec<String>> {
        self.lock().domains[domain].names.clone()
    }

    pub(super) fn push_jobs(&self, jobs: impl IntoIterator<Item = Job>) {
        self.lock().jobs.extend(jobs);
    }

    /// Queues the accounts of every listed domain, in chunks.
    pub(super) fn push_account_jobs(&self) {
        let mut inner = self.lock();
        let mut jobs = Vec::new();
        for (index, domain) in inner.domains.iter().enumerate() {
            if domain.gone {
                continue;
            }
            let count = domain.names.len();
            let mut start = 0;
            while start < count {
                let end = (start + ACCOUNT_CHUNK).min(count);
                jobs.push(Job::Accounts {
                    domain: index,
                    range: start..end,
                });
                start = end;
            }
        }
        inner.jobs.extend(jobs);
    }

    pub(super) fn has_jobs(&self) -> bool {
        !self.lock().jobs.is_empty()
    }

    pub(super) fn next_job(&self) -> Option<Job> {
        self.lock().jobs.pop_front()
    }

    /// Puts back a job that a session could not start, for another session.
    pub(super) fn return_job(&self, job: Job) {
        self.lock().jobs.push_front(job);
    }

    pub(super) fn set_accounts(&self, domain: usize, names: Vec<String>) {
        let mut inner = self.lock();
        let result = &mut inner.domains[domain];
        result.slots = std::iter::repeat_with(|| Slot::Pending)
            .take(names.len())
            .collect();
        result.names = Arc::new(names);
    }

    pub(super) fn is_gone(&self, domain: usize) -> bool {
        self.lock().domains[domain].gone
    }

    /// Records that a domain vanished, once, with the server's reason.
    pub(super) fn mark_domain_gone(&self, domain: usize, reason: String) {
        let mut inner = self.lock();
        let result = &mut inner.domains[domain];
        if result.gone {
            return;
        }
        result.gone = true;
        let name = result.listed.name.clone();
        inner.skipped.push(SkippedItem {
            domain: name,
            account: None,
            reason,
        });
    }

    pub(super) fn record_account(&self, domain: usize, index: usize, account: AccountSnapshot) {
        self.lock().domains[domain].slots[index] = Slot::Read(account);
    }

    pub(super) fn skip_account(&self, domain: usize, index: usize, reason: String) {
        let mut inner = self.lock();
        let result = &mut inner.domains[domain];
        result.slots[index] = Slot::Skipped;
        let item = SkippedItem {
            domain: result.listed.name.clone(),
            account: Some(result.names[index].clone()),
            reason,
        };
        inner.skipped.push(item);
    }

    /// Returns the feed's usage for an account, when the feed worked and lists it.
    pub(super) fn feed_usage_kb(&self, domain: &str, account: &str) -> Option<u64> {
        self.feed.as_ref()?.usage_kb(domain, account)
    }

    /// Builds the snapshot. Every account must have been read or skipped.
    ///
    /// # Errors
    ///
    /// [`CliError::Protocol`] naming an account that was never read, which
    /// would otherwise vanish from the snapshot unnoticed.
    pub(super) fn into_snapshot(
        self,
        collected_at: DateTime<Utc>,
        webadmin_error: Option<String>,
    ) -> Result<Snapshot, CliError> {
        let sent_ahead_dropped = self.send_ahead_requested && !self.sends_ahead();
        let inner = self
            .inner
            .into_inner()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let mut domains = Vec::with_capacity(inner.domains.len());
        for result in inner.domains {
            if result.gone {
                continue;
            }
            let mut accounts = Vec::with_capacity(result.slots.len());
            for (index, slot) in result.slots.into_iter().enumerate() {
                match slot {
                    Slot::Read(account) => accounts.push(account),
                    Slot::Skipped => {}
                    Slot::Pending => {
                        return Err(CliError::Protocol {
                            line: format!("{}@{}", result.names[index], result.listed.name),
                            detail: "an account was listed but never read; this is a bug in the collector"
                                .to_owned(),
                        });
                    }
                }
            }
            domains.push(DomainSnapshot {
                name: result.listed.name,
                status: result.listed.status,
                accounts,
            });
        }

        Ok(Snapshot {
            collected_at,
            domains,
            skipped: inner.skipped,
            webadmin_error,
            sent_ahead_dropped,
        })
    }
}

//! Counters of what clients did, so tests can check a client's behaviour
//! (for example that a read-only client never sent a writing command).

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// A copy of one server's counters at one moment.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SimStats {
    /// CLI connections accepted, including those closed at once.
    pub cli_connections: u64,
    /// CLI sessions open now.
    pub cli_sessions_active: u64,
    /// Most CLI sessions open at the same time so far.
    pub cli_sessions_peak: u64,
    /// Commands received, by upper-cased first word. Password lines are not
    /// commands and are not counted.
    pub commands: BTreeMap<String, u64>,
    /// Writing commands received (COMMIT, DONE, SET other than CONSOLE-CODES
    /// and QUIET, ADD, CREATE, DELETE, ...). A read-only client keeps this 0.
    pub writing_commands: u64,
    /// The writing command lines themselves, in order of arrival.
    pub writing_command_lines: Vec<String>,
    pub logins_succeeded: u64,
    pub logins_failed: u64,
    /// Sessions closed because they reached an auth or error limit.
    pub sessions_closed_by_limit: u64,
    /// Sessions closed by the idle timeout.
    pub sessions_timed_out: u64,
    /// Replies cut in the middle by `close_mid_reply`.
    pub mid_reply_closes: u64,
    /// Socket writes made for CLI replies, one per piece when `chunking`
    /// splits them.
    pub cli_writes: u64,
    /// Command lines already read from the socket, with an earlier line,
    /// before the reply to that earlier line was sent: commands a client
    /// sent ahead of the prompt.
    pub commands_sent_ahead: u64,
    /// Replies sent after a reply latency pause.
    pub delayed_replies: u64,
    /// Microseconds from the start of each such pause to the end of the
    /// reply's write, summed, so that a benchmark can compute how long the
    /// replies really took.
    pub delayed_reply_micros: u64,
    /// WebAdmin HTTP requests received (any path).
    pub webadmin_requests: u64,
    /// WebAdmin requests rejected with 401.
    pub webadmin_unauthorized: u64,
}

impl SimStats {
    /// Returns how many commands with this first word (any case) arrived.
    pub fn command_count(&self, verb: &str) -> u64 {
        self.commands
            .get(&verb.to_ascii_uppercase())
            .copied()
            .unwrap_or(0)
    }
}

#[derive(Debug, Default)]
pub(crate) struct StatsCounters {
    pub(crate) cli_connections: AtomicU64,
    pub(crate) cli_sessions_active: AtomicU64,
    pub(crate) cli_sessions_peak: AtomicU64,
    commands: Mutex<BTreeMap<String, u64>>,
    writing_command_lines: Mutex<Vec<String>>,
    pub(crate) logins_succeeded: AtomicU64,
    pub(crate) logins_failed: AtomicU64,
    pub(crate) sessions_closed_by_limit: AtomicU64,
    pub(crate) sessions_timed_out: AtomicU64,
    pub(crate) mid_reply_closes: AtomicU64,
    pub(crate) cli_writes: AtomicU64,
    pub(crate) commands_sent_ahead: AtomicU64,
    pub(crate) delayed_replies: AtomicU64,
    pub(crate) delayed_reply_micros: AtomicU64,
    pub(crate) webadmin_requests: AtomicU64,
    pub(crate) webadmin_unauthorized: AtomicU64,
}

impl StatsCounters {
    pub(crate) fn record_command(&self, verb: &str) {
        let mut commands = self.commands.lock().unwrap_or_else(|e| e.into_inner());
        *commands.entry(verb.to_ascii_uppercase()).or_insert(0) += 1;
    }

    pub(crate) fn record_writing_command(&self, line: &str) {
        let mut lines = self
            .writing_command_lines
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        lines.push(line.to_string());
    }

    /// Counts a session as open and returns how many were open before it.
    pub(crate) fn session_opened(&self) -> u64 {
        let before = self.cli_sessions_active.fetch_add(1, Ordering::SeqCst);
        self.cli_sessions_peak
            .fetch_max(before + 1, Ordering::SeqCst);
        before
    }

    pub(crate) fn session_closed(&self) {
        self.cli_sessions_active.fetch_sub(1, Ordering::SeqCst);
    }

    pub(crate) fn increment(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::SeqCst);
    }

    pub(crate) fn record_delayed_reply(&self, took: Duration) {
        self.delayed_replies.fetch_add(1, Ordering::Relaxed);
        let micros = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
        self.delayed_reply_micros
            .fetch_add(micros, Ordering::Relaxed);
    }

    pub(crate) fn snapshot(&self) -> SimStats {
        let load = |counter: &AtomicU64| counter.load(Ordering::SeqCst);
        let commands = self
            .commands
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let writing_command_lines = self
            .writing_command_lines
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        SimStats {
            cli_connections: load(&self.cli_connections),
            cli_sessions_active: load(&self.cli_sessions_active),
            cli_sessions_peak: load(&self.cli_sessions_peak),
            commands,
            writing_commands: writing_command_lines.len() as u64,
            writing_command_lines,
            logins_succeeded: load(&self.logins_succeeded),
            logins_failed: load(&self.logins_failed),
            sessions_closed_by_limit: load(&self.sessions_closed_by_limit),
            sessions_timed_out: load(&self.sessions_timed_out),
            mid_reply_closes: load(&self.mid_reply_closes),
            cli_writes: load(&self.cli_writes),
            commands_sent_ahead: load(&self.commands_sent_ahead),
            delayed_replies: load(&self.delayed_replies),
            delayed_reply_micros: load(&self.delayed_reply_micros),
            webadmin_requests: load(&self.webadmin_requests),
            webadmin_unauthorized: load(&self.webadmin_unauthorized),
        }
    }
}

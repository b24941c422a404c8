//! Switches that make the simulated server produce each reply variant and
//! fault a client must survive. `Behavior::default()` is the documented
//! default shape with no faults.

use std::time::Duration;

/// Reply variants and faults of the CLI and the WebAdmin feed. Sessions and
/// requests read the behavior when their connection is accepted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Behavior {
    // --- Login ---
    /// Send a second banner line, `You must login first.`.
    pub two_line_banner: bool,
    /// Answer `USER` with `+OK: Enter password` before the `<password> `
    /// prompt; when false the prompt comes alone.
    pub user_status_line: bool,
    /// Send telnet IAC negotiation bytes before the banner and around the
    /// password prompt.
    pub telnet_iac: bool,
    /// Failed logins allowed in one session; the failure after them closes
    /// the connection.
    pub max_auth_errors: u32,
    /// Lines allowed before a successful login; the line after them closes
    /// the connection.
    pub max_auth_commands: u32,

    // --- Session ---
    /// `-ERR` replies allowed after login: the reply that reaches this count
    /// is sent, then the connection is closed.
    pub max_errors: u32,
    /// A session that receives nothing for this long is closed silently.
    pub idle_timeout: Duration,
    /// Close every connection right after accepting it, as a server at its
    /// connection limit does.
    pub close_on_accept: bool,
    /// Close connections accepted while this many CLI sessions are open.
    pub max_sessions: Option<usize>,
    /// Pause before sending each reply, the banner included. It lasts the
    /// given time to within tens of microseconds, not rounded up to whole
    /// milliseconds as tokio's timer would.
    pub reply_latency: Duration,
    /// What `reply_latency` models, which matters for commands a client
    /// sends ahead of the prompt.
    pub latency_kind: LatencyKind,
    /// Split of replies into socket writes.
    pub chunking: Chunking,
    /// Pause between two writes of one reply when `chunking` splits it.
    /// Zero only yields to the runtime.
    pub chunk_pause: Duration,
    /// Send half of one reply, then close the connection.
    pub close_mid_reply: Option<MidReplyTrigger>,
    /// How many times `close_mid_reply` fires from the moment this behavior
    /// is set; `None` fires in every session that meets the trigger.
    pub close_mid_reply_times: Option<u64>,
    /// Drop command lines that arrived before the reply to the previous
    /// command was sent, as a server that flushes its input after each
    /// command would. They get no reply.
    pub discard_typeahead: bool,

    // --- Text ---
    /// Start sessions with CONSOLE-CODES on: ANSI colour sequences around
    /// prompts, status words and table headers. `SET CONSOLE-CODES` still
    /// changes it per session.
    pub console_codes: bool,
    /// Start sessions with QUIET on: tables are rows only. `SET QUIET` still
    /// changes it per session.
    pub quiet: bool,
    /// Put Latin-1 bytes (invalid UTF-8) into table titles and into an extra
    /// `SHOW RegistryInformation` line. Names stay valid UTF-8.
    pub invalid_utf8: bool,

    // --- Tables ---
    /// Character of the line under table headers.
    pub underline: Underline,
    /// Width of the name column, in characters. Names at least this long
    /// are followed by a single space.
    pub name_column_width: usize,
    /// Add columns: domains get `accounts`, `usedKB`, `quotaKB` and move
    /// `status` last; accounts get `status` and `created`.
    pub extra_columns: bool,
    /// Domain tables with the name column alone, as older servers print.
    pub domain_name_only: bool,
    /// Reply `-ERR` to `LIST AllDomains`, as servers without that command
    /// do, so only the enabled domains of `LIST Domains` can be read.
    pub no_list_all_domains: bool,

    // --- Values ---
    /// Unit in which `Mbox size` is written.
    pub mbox_size_unit: MboxSizeUnit,
    /// Write the unit suffix of `Mbox size` in lower case (`kb`, `mb`).
    pub mbox_size_unit_lowercase: bool,
    /// Append a bracketed inheritance note to `totalMessageSize`.
    pub quota_notes: bool,
    /// Form of an unlimited quota.
    pub unlimited_quota: UnlimitedQuota,

    // --- Vanished objects ---
    /// Domains (any case) whose `UPDATE Domain` gets `-ERR`, as if deleted
    /// after they were listed.
    pub vanished_domains: Vec<String>,
    /// Accounts as `local@domain` (any case) whose `UPDATE Account` gets
    /// `-ERR`.
    pub vanished_accounts: Vec<String>,
    /// Accounts as `local@domain` (any case) whose `SHOW RegistryInformation`
    /// gets `-ERR`.
    pub registry_errors: Vec<String>,

    /// The WebAdmin usage feed.
    pub webadmin: WebAdminBehavior,
}

impl Default for Behavior {
    fn default() -> Self {
        Self {
            two_line_banner: false,
            user_status_line: true,
            telnet_iac: false,
            max_auth_errors: 5,
            max_auth_commands: 20,
            max_errors: 20,
            idle_timeout: Duration::from_secs(300),
            close_on_accept: false,
            max_sessions: None,
            reply_latency: Duration::ZERO,
            latency_kind: LatencyKind::Processing,
            chunking: Chunking::Whole,
            chunk_pause: Duration::ZERO,
            close_mid_reply: None,
            close_mid_reply_times: None,
            discard_typeahead: false,
            console_codes: false,
            quiet: false,
            invalid_utf8: false,
            underline: Underline::Dash,
            name_column_width: 32,
            extra_columns: false,
            domain_name_only: false,
            no_list_all_domains: false,
            mbox_size_unit: MboxSizeUnit::Bare,
            mbox_size_unit_lowercase: false,
            quota_notes: false,
            unlimited_quota: UnlimitedQuota::Zero,
            vanished_domains: Vec::new(),
            vanished_accounts: Vec::new(),
            registry_errors: Vec::new(),
            webadmin: WebAdminBehavior::default(),
        }
    }
}

/// Meaning of the reply latency of [`Behavior`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum LatencyKind {
    /// Time the server spends on each command: the replies to commands sent
    /// together leave one latency after another.
    #[default]
    Processing,
    /// A network round trip: each reply leaves one latency after its
    /// command arrived, so the replies to commands sent together leave
    /// together.
    Network,
}

/// Split of one reply into writes, each flushed on its own.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Chunking {
    /// One write per reply.
    #[default]
    Whole,
    /// Writes of 1 to 64 bytes at pseudo-random split points, which fall
    /// inside CRLF pairs and prompts too. The points depend on `seed` and
    /// on the session's order of arrival.
    Random { seed: u64 },
    /// One byte per write.
    OneByte,
}

/// When a reply is cut in the middle.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MidReplyTrigger {
    /// After this many complete replies since login (the login reply not
    /// counted), the next one is cut.
    AfterReplies(u64),
    /// The reply to the first command that starts with this text (compared
    /// ignoring case, e.g. `SHOW RegistryInformation`) is cut.
    OnCommand(String),
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Underline {
    /// `-----`
    #[default]
    Dash,
    /// `=====`
    Equals,
}

impl Underline {
    pub(crate) fn char(self) -> char {
        match self {
            Underline::Dash => '-',
            Underline::Equals => '=',
        }
    }
}

/// Unit of `Mbox size` in `SHOW RegistryInformation`. Every variant writes a
/// value equal to the data's KB figure.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum MboxSizeUnit {
    /// A bare number of KB: `Mbox size = 734003`.
    #[default]
    Bare,
    /// `Mbox size = 734003 KB`.
    Kb,
    /// Bytes: `Mbox size = 751619072 B`.
    Bytes,
    /// Whole MB when the KB figure is a multiple of 1024, otherwise KB with
    /// its suffix.
    Mb,
    /// Whole GB when the KB figure is a multiple of 1048576, otherwise as
    /// [`MboxSizeUnit::Mb`].
    Gb,
}

/// Form of an unlimited quota (`quota_kb: None`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum UnlimitedQuota {
    /// `totalMessageSize = 0`.
    #[default]
    Zero,
    /// No `totalMessageSize` line at all; `SHOW ATTR totalMessageSize`
    /// returns `+OK` with no body.
    Missing,
}

/// Switches of the WebAdmin usage feed (`GET /data/accounts`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WebAdminBehavior {
    /// Reply 404 to `/data/accounts`.
    pub missing_endpoint: bool,
    /// Reply 401 to every request, even with the right credentials.
    pub reject_credentials: bool,
    /// Reply 200 with an HTML login page instead of the table.
    pub html_login_page: bool,
    /// Reply 302 with this `Location` instead of the table.
    pub redirect_to: Option<String>,
    /// Leave out the `mboxSizeKb` column.
    pub omit_mbox_size_column: bool,
    /// Add columns before and after the used ones (`id` first), so the used
    /// columns are found only by their header names.
    pub extra_columns: bool,
    /// Make some rows longer than the header (a trailing field) and some
    /// shorter (trailing fields after the used columns left out).
    pub ragged_rows: bool,
    /// Pad the body with filler rows until it is at least this many bytes.
    pub huge_body_bytes: Option<u64>,
    /// Stop sending part way and hold the connection open.
    pub stall: Option<Stall>,
}

/// Point at which a stalled WebAdmin response stops.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stall {
    /// Read the request, then send nothing.
    BeforeHeaders,
    /// Send the status line, the headers and part of the body, then nothing.
    AfterHeaders,
}

//! One CLI session: reads command lines, keeps the login state and the
//! current context, and sends one reply per line.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, BufReader};

use super::command::split_words;
use super::reply::{Reply, write_pair, write_show_block};
use super::writer::ReplyWriter;
use crate::behavior::{Behavior, MidReplyTrigger};
use crate::data::{Account, Domain, IndexedData};
use crate::server::Shared;
use crate::stats::StatsCounters;
use views::quota_pairs;

mod views;

/// Maximum length of a command line; a longer one closes the session.
const MAX_LINE_BYTES: u64 = 64 * 1024;

/// Quota every domain gives its accounts by default, in KB (1 GB).
const DOMAIN_DEFAULT_QUOTA_KB: u64 = 1_048_576;

const VERSION: &str = "10.6.30|Linux|x86_64";

/// Verbs that change server state. The simulator rejects them all and counts
/// them, so that tests can prove a client is read-only. `SET` is writing
/// except for the session settings CONSOLE-CODES and QUIET.
const WRITING_VERBS: &[&str] = &[
    "COMMIT",
    "DONE",
    "SET",
    "ADD",
    "CREATE",
    "DELETE",
    "REMOVE",
    "RENAME",
    "ENABLE",
    "DISABLE",
    "REGISTER",
    "UNREGISTER",
    "RESET",
    "SAVE",
    "MOVE",
    "IMPORT",
    "PURGE",
    "CLEAR",
    "KILL",
    "APPLY",
    "CHANGE",
];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Login,
    Password,
    Root,
    Domain(usize),
    Account(usize, usize),
    AccountQuotas(usize, usize),
    DomainDefaultQuotas(usize),
}

impl State {
    fn prompt(self) -> &'static str {
        match self {
            State::Login => "login",
            State::Password => "password",
            State::Root => "#",
            State::Domain(_) => "domain#",
            State::Account(..) => "domain-account#",
            State::AccountQuotas(..) => "domain-account-quotas#",
            State::DomainDefaultQuotas(_) => "domain-accountDefaultQuotas#",
        }
    }

    fn logged_in(self) -> bool {
        !matches!(self, State::Login | State::Password)
    }
}

/// Action taken after a reply is sent.
#[derive(Debug, PartialEq, Eq)]
enum After {
    Continue,
    /// Close the connection; `by_limit` when an auth or error limit caused it.
    Close {
        by_limit: bool,
    },
}

pub(crate) struct Session {
    shared: Arc<Shared>,
    data: Arc<IndexedData>,
    behavior: Arc<Behavior>,
    state: State,
    console_codes: bool,
    quiet: bool,
    pending_user: Option<String>,
    auth_errors: u32,
    lines_before_login: u32,
    errors: u32,
    replies_since_login: u64,
}

impl Session {
    pub(crate) fn new(
        shared: Arc<Shared>,
        data: Arc<IndexedData>,
        behavior: Arc<Behavior>,
    ) -> Self {
        Self {
            console_codes: behavior.console_codes,
            quiet: behavior.quiet,
            shared,
            data,
            behavior,
            state: State::Login,
            pending_user: None,
            auth_errors: 0,
            lines_before_login: 0,
            errors: 0,
            replies_since_login: 0,
        }
    }

    /// Runs the session until the client quits, a limit or fault closes it,
    /// or the idle timeout passes.
    pub(crate) async fn run<S>(mut self, stream: S, session_number: u64) -> std::io::Result<()>
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        let (read_half, write_half) = tokio::io::split(stream);
        let mut reader = BufReader::new(read_half);
        let mut writer = ReplyWriter::new(
            write_half,
            self.behavior.chunking,
            self.behavior.chunk_pause,
            self.behavior.reply_latency,
            self.behavior.latency_kind,
            session_number,
            self.shared.clone(),
        );

        writer.send(&self.banner(), Instant::now()).await?;
        let mut line = Vec::new();
        // When the last read from the socket ended.
        let mut arrived = Instant::now();
        loop {
            line.clear();
            // The buffer fills only in a read, so any bytes in it now
            // arrived before the previous reply went out.
            let buffered = reader.buffer().len();
            let sent_ahead = buffered > 0 && !self.behavior.discard_typeahead;
            if sent_ahead {
                StatsCounters::increment(&self.shared.stats.commands_sent_ahead);
            } else if buffered > 0 {
                reader.consume(buffered);
            }
            let mut limited = (&mut reader).take(MAX_LINE_BYTES);
            let read = limited.read_until(b'\n', &mut line);
            let count = match tokio::time::timeout(self.behavior.idle_timeout, read).await {
                Ok(result) => result?,
                Err(_) => {
                    // A real server drops idle sessions without a word.
                    StatsCounters::increment(&self.shared.stats.sessions_timed_out);
                    tracing::debug!("cli session closed by the idle timeout");
                    return Ok(());
                }
            };
            if count == 0 {
                return Ok(());
            }
            if !sent_ahead {
                arrived = Instant::now();
            }
            if line.last() != Some(&b'\n') && count as u64 >= MAX_LINE_BYTES {
                tracing::debug!("cli session closed: command line over {MAX_LINE_BYTES} bytes");
                return Ok(());
            }
            let text = String::from_utf8_lossy(&line);
            let text = text.trim_end_matches(['\r', '\n']);

            // The login reply itself is neither cut nor counted.
            let logged_in_before = self.state.logged_in();
            let cut = logged_in_before && self.takes_mid_reply_cut(text);
            let (reply, after) = self.handle_line(text);
            if cut {
                StatsCounters::increment(&self.shared.stats.mid_reply_closes);
                tracing::debug!("cli reply cut in the middle by the close-mid-reply switch");
                return writer.send_half_and_close(&reply.bytes, arrived).await;
            }
            writer.send(&reply.bytes, arrived).await?;
            if logged_in_before {
                self.replies_since_login += 1;
            }
            if let After::Close { by_limit } = after {
                if by_limit {
                    StatsCounters::increment(&self.shared.stats.sessions_closed_by_limit);
                }
                return writer.close().await;
            }
        }
    }

    fn banner(&self) -> Vec<u8> {
        let mut reply = Reply::new(self.console_codes);
        if self.behavior.telnet_iac {
            // IAC WILL ECHO, IAC WILL SUPPRESS-GO-AHEAD, IAC DO TERMINAL-TYPE.
            reply.raw(&[0xff, 0xfb, 0x01, 0xff, 0xfb, 0x03, 0xff, 0xfd, 0x18]);
        }
        reply.emphasised_line("Welcome to AXIGEN's Command Line Interface");
        if self.behavior.two_line_banner {
            reply.line("You must login first.");
        }
        reply.prompt(State::Login.prompt());
        reply.bytes
    }

    /// Decides whether the reply to `line` is the one to cut, and if so
    /// takes one of the server-wide allowed cuts.
    fn takes_mid_reply_cut(&self, line: &str) -> bool {
        let Some(trigger) = &self.behavior.close_mid_reply else {
            return false;
        };
        let triggered = match trigger {
            MidReplyTrigger::AfterReplies(count) => self.replies_since_login == *count,
            MidReplyTrigger::OnCommand(prefix) => {
                let line = line.trim_start();
                line.len() >= prefix.len()
                    && line.is_char_boundary(prefix.len())
                    && line[..prefix.len()].eq_ignore_ascii_case(prefix)
            }
        };
        if !triggered {
            return false;
        }
        let fired = self.shared.mid_reply_fired.fetch_add(1, Ordering::SeqCst);
        match self.behavior.close_mid_reply_times {
            Some(times) => fired < times,
            None => true,
        }
    }

    fn handle_line(&mut self, line: &str) -> (Reply, After) {
        let mut reply = Reply::new(self.console_codes);

        if !self.state.logged_in() {
            self.lines_before_login += 1;
            if self.lines_before_login > self.behavior.max_auth_commands {
                reply.err("Too many commands before login, closing connection");
                return (reply, After::Close { by_limit: true });
            }
        }
        if self.state == State::Password {
            return self.handle_password(line, reply);
        }

        let words = match split_words(line) {
            Ok(words) => words,
            Err(problem) => {
                return self.error(reply, &format!("Invalid command syntax: {problem}"));
            }
        };
        let Some(verb) = words.first() else {
            // An empty line repeats the prompt, as a shell does.
            reply.prompt(self.state.prompt());
            return (reply, After::Continue);
        };
        let verb = verb.to_ascii_uppercase();
        self.shared.stats.record_command(&verb);

        if is_writing(&verb, &words) {
            self.shared.stats.record_writing_command(line);
            tracing::warn!(command = %verb, "cli writing command rejected");
            return self.error(
                reply,
                &format!("Command {verb} is not allowed: this simulated server is read-only"),
            );
        }
        self.dispatch(&verb, &words, reply)
    }

    fn dispatch(&mut self, verb: &str, words: &[String], mut reply: Reply) -> (Reply, After) {
        let second = words.get(1).map(|word| word.to_ascii_uppercase());
        match (verb, second.as_deref()) {
            ("QUIT" | "EXIT", _) => {
                reply.ok("have a nice day");
                return (reply, After::Close { by_limit: false });
            }
            ("HELP", _) => self.help(&mut reply),
            ("GET", Some("VERSION")) => {
                reply.line(VERSION).ok("command successful");
            }
            ("SET", Some("CONSOLE-CODES" | "QUIET")) => match parse_on_off(words.get(2)) {
                Some(on) => {
                    if second.as_deref() == Some("QUIET") {
                        self.quiet = on;
                    } else {
                        self.console_codes = on;
                    }
                    reply = Reply::new(self.console_codes);
                    reply.ok("command successful");
                }
                None => return self.error(reply, "Expected on or off"),
            },
            ("USER", _) if self.state == State::Login => return self.handle_user(words, reply),
            ("SHOW", None) if !self.state.logged_in() || self.state == State::Root => {
                self.show_session(&mut reply)
            }
            _ if !self.state.logged_in() => {
                return self.error(reply, "You must login first");
            }
            _ => return self.dispatch_in_context(verb, second.as_deref(), words, reply),
        }
        reply.prompt(self.state.prompt());
        (reply, After::Continue)
    }

    fn dispatch_in_context(
        &mut self,
        verb: &str,
        second: Option<&str>,
        words: &[String],
        mut reply: Reply,
    ) -> (Reply, After) {
        match (self.state, verb, second) {
            (_, "BACK", None) => match self.state {
                State::Root => return self.error(reply, "Already in the top context"),
                State::Domain(_) => self.state = State::Root,
                State::Account(domain, _) | State::DomainDefaultQuotas(domain) => {
                    self.state = State::Domain(domain)
                }
                State::AccountQuotas(domain, account) => {
                    self.state = State::Account(domain, account)
                }
                State::Login | State::Password => unreachable!("handled before login"),
            },
            (State::Root, "LIST", Some("ALLDOMAINS")) => {
                if self.behavior.no_list_all_domains {
                    return self.error(reply, "Unknown command");
                }
                self.list_domains(&mut reply, words.get(2), true);
            }
            (State::Root, "LIST", Some("DOMAINS")) => {
                self.list_domains(&mut reply, words.get(2), false)
            }
            (State::Root, "UPDATE", Some("DOMAIN")) => {
                let Some(name) = object_name(words) else {
                    return self.error(reply, "Expected a domain name");
                };
                match self.find_domain(name) {
                    Some(domain) => self.state = State::Domain(domain),
                    None => return self.error(reply, &format!("Domain {name} does not exist")),
                }
            }
            (State::Domain(domain), "LIST", Some("ACCOUNTS")) => {
                self.list_accounts(&mut reply, domain, words.get(2))
            }
            (State::Domain(domain), "UPDATE", Some("ACCOUNT")) => {
                let Some(name) = object_name(words) else {
                    return self.error(reply, "Expected an account name");
                };
                match self.find_account(domain, name) {
                    Some(account) => self.state = State::Account(domain, account),
                    None => return self.error(reply, &format!("Account {name} does not exist")),
                }
            }
            (State::Domain(domain), "CONFIG", Some("ACCOUNTDEFAULTQUOTAS")) => {
                self.state = State::DomainDefaultQuotas(domain)
            }
            (State::Domain(domain), "SHOW", None) => self.show_domain(&mut reply, domain),
            (State::Account(domain, account), "SHOW", Some("REGISTRYINFORMATION")) => {
                if self.registry_fails(domain, account) {
                    return self.error(reply, "Could not read the registry information");
                }
                self.show_registry(&mut reply, domain, account);
            }
            (State::Account(domain, account), "CONFIG", Some("QUOTAS")) => {
                self.state = State::AccountQuotas(domain, account)
            }
            (State::Account(domain, account), "SHOW", None) => {
                self.show_account(&mut reply, domain, account)
            }
            (State::AccountQuotas(domain, account), "SHOW", None) => {
                let pairs = self.account_quota_pairs(domain, account);
                write_show_block(&mut reply, "Quotas of the account:", &pairs);
            }
            (State::DomainDefaultQuotas(_), "SHOW", None) => {
                let pairs = quota_pairs(Some(DOMAIN_DEFAULT_QUOTA_KB));
                write_show_block(
                    &mut reply,
                    "Default quotas of the domain's accounts:",
                    &pairs,
                );
            }
            (State::AccountQuotas(..) | State::DomainDefaultQuotas(_), "SHOW", Some("ATTR")) => {
                let Some(attribute) = words.get(2) else {
                    return self.error(reply, "Expected an attribute name");
                };
                let pairs = match self.state {
                    State::AccountQuotas(domain, account) => {
                        self.account_quota_pairs(domain, account)
                    }
                    _ => quota_pairs(Some(DOMAIN_DEFAULT_QUOTA_KB)),
                };
                match pairs
                    .iter()
                    .find(|(key, _)| key.eq_ignore_ascii_case(attribute))
                {
                    Some((key, value)) => write_pair(&mut reply, key, value),
                    // An unset quota (the Missing variant) has no line at all.
                    None if attribute.eq_ignore_ascii_case("totalMessageSize") => {}
                    None => {
                        return self.error(reply, &format!("Unknown attribute {attribute}"));
                    }
                }
            }
            _ => return self.error(reply, "Unknown command"),
        }
        reply.ok("command successful");
        reply.prompt(self.state.prompt());
        (reply, After::Continue)
    }

    fn handle_user(&mut self, words: &[String], mut reply: Reply) -> (Reply, After) {
        let Some(user) = words.get(1) else {
            return self.error(reply, "Expected a user name");
        };
        self.pending_user = Some(user.clone());
        self.state = State::Password;
        if self.behavior.user_status_line {
            reply.ok("Enter password");
        }
        if self.behavior.telnet_iac {
            // IAC WILL ECHO: the client should stop echoing the password.
            reply.raw(&[0xff, 0xfb, 0x01]);
        }
        reply.prompt(self.state.prompt());
        (reply, After::Continue)
    }

    fn handle_password(&mut self, password: &str, mut reply: Reply) -> (Reply, After) {
        let user = self.pending_user.take().unwrap_or_default();
        if user == self.shared.username && password == self.shared.password {
            StatsCounters::increment(&self.shared.stats.logins_succeeded);
            self.state = State::Root;
            if self.behavior.telnet_iac {
                // IAC WONT ECHO: echoing may resume.
                reply.raw(&[0xff, 0xfc, 0x01]);
            }
            reply.ok("Authentication successful");
            reply.prompt(self.state.prompt());
            return (reply, After::Continue);
        }

        StatsCounters::increment(&self.shared.stats.logins_failed);
        tracing::debug!(user = %user, "cli login failed");
        self.auth_errors += 1;
        self.state = State::Login;
        reply.err("Authentication failed");
        if self.auth_errors > self.behavior.max_auth_errors {
            reply.err("Too many authentication errors, closing connection");
            return (reply, After::Close { by_limit: true });
        }
        reply.prompt(self.state.prompt());
        (reply, After::Continue)
    }

    /// Builds an `-ERR` reply and counts it toward `max_errors` once logged
    /// in. The error that reaches the limit closes the session.
    fn error(&mut self, mut reply: Reply, text: &str) -> (Reply, After) {
        reply.err(text);
        if self.state.logged_in() {
            self.errors += 1;
            if self.errors >= self.behavior.max_errors {
                return (reply, After::Close { by_limit: true });
            }
        }
        reply.prompt(self.state.prompt());
        (reply, After::Continue)
    }

    fn find_domain(&self, name: &str) -> Option<usize> {
        let vanished = self
            .behavior
            .vanished_domains
            .iter()
            .any(|gone| gone.to_lowercase() == name.to_lowercase());
        if vanished {
            return None;
        }
        self.data.find_domain(name)
    }

    fn find_account(&self, domain: usize, name: &str) -> Option<usize> {
        let address = format!("{name}@{}", self.domain(domain).name).to_lowercase();
        let vanished = self
            .behavior
            .vanished_accounts
            .iter()
            .any(|gone| gone.to_lowercase() == address);
        if vanished {
            return None;
        }
        self.data.find_account(domain, name)
    }

    fn registry_fails(&self, domain: usize, account: usize) -> bool {
        let address = self.address(domain, account).to_lowercase();
        self.behavior
            .registry_errors
            .iter()
            .any(|failing| failing.to_lowercase() == address)
    }

    fn domain(&self, index: usize) -> &Domain {
        &self.data.data.domains[index]
    }

    fn account(&self, domain: usize, account: usize) -> &Account {
        &self.domain(domain).accounts[account]
    }

    fn address(&self, domain: usize, account: usize) -> String {
        format!(
            "{}@{}",
            self.account(domain, account).name,
            self.domain(domain).name
        )
    }
}

fn is_writing(verb: &str, words: &[String]) -> bool {
    if verb == "SET" {
        let setting = words.get(1).map(|word| word.to_ascii_uppercase());
        return !matches!(setting.as_deref(), Some("CONSOLE-CODES" | "QUIET"));
    }
    WRITING_VERBS.contains(&verb)
}

fn parse_on_off(word: Option<&String>) -> Option<bool> {
    match word.map(|word| word.to_ascii_lowercase()).as_deref() {
        Some("on") => Some(true),
        Some("off") => Some(false),
        _ => None,
    }
}

/// Returns the object name of `UPDATE Domain|Account [name] <value>`. The
/// keyword `name` is optional, so `UPDATE Account name` (three words) names
/// an account called `name`.
fn object_name(words: &[String]) -> Option<&str> {
    match words {
        [_, _, keyword, value] if keyword.eq_ignore_ascii_case("name") => Some(value),
        [_, _, value] => Some(value),
        _ => None,
    }
}

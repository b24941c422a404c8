//! Sans-I/O reply framing for the Axigen CLI: bytes in, replies out.
//!
//! The reader is fed whatever each socket read returned and decides when a
//! reply is complete by its content alone, never by the size of a read. A
//! reply after login is complete when its last full line is a status line
//! (`+OK...` or `-ERR...`) and the data read so far ends with a prompt
//! (`<path> `, no newline). Terminal control codes are removed first, so a
//! code split across reads or wrapped around a prompt changes nothing.
//!
//! When commands were sent ahead (pipelined), the next reply may follow a
//! prompt in the same read. The connection then sets how many replies to
//! expect, and a status line followed by a whole prompt ends a reply even
//! with more data after it.

use std::collections::VecDeque;

/// Maximum length of an accepted prompt path. Real paths are short
/// (`domain-account-quotas`), so a longer `<...> ` tail is body text.
const MAX_PROMPT_PATH: usize = 128;

/// The longest ESC or telnet sequence tracked. Longer ones end there, so a
/// stray ESC cannot swallow the rest of a reply.
const MAX_SEQUENCE: usize = 64;

/// Removes ANSI escape sequences and telnet IAC sequences from a byte
/// stream. Its state survives between calls, so a sequence split across two
/// reads is removed whole.
#[derive(Debug, Default)]
pub(crate) struct ControlFilter {
    state: FilterState,
    /// Bytes consumed by the current sequence, bounded by [`MAX_SEQUENCE`].
    sequence_len: usize,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum FilterState {
    #[default]
    Text,
    /// After ESC.
    Escape,
    /// After `ESC [`: parameter and intermediate bytes up to a final byte.
    Csi,
    /// After `ESC ]`: text up to BEL or `ESC \`.
    Osc,
    /// Inside an OSC string, after an ESC that may start `ESC \`.
    OscEscape,
    /// After `ESC` and an intermediate byte (0x20-0x2F), up to a final byte.
    EscapeIntermediate,
    /// After IAC (0xFF).
    Iac,
    /// After IAC WILL/WONT/DO/DONT: one option byte follows.
    IacOption,
    /// After IAC SB: subnegotiation data up to IAC SE.
    Subnegotiation,
    /// Inside a subnegotiation, after an IAC.
    SubnegotiationIac,
}

const ESC: u8 = 0x1b;
const BEL: u8 = 0x07;
const IAC: u8 = 0xff;
const IAC_SB: u8 = 250;
const IAC_SE: u8 = 240;

impl ControlFilter {
    /// Appends the text bytes of `input` to `output`, dropping control
    /// sequences, NUL and BEL.
    pub(crate) fn filter(&mut self, input: &[u8], output: &mut Vec<u8>) {
        for &byte in input {
            if self.state != FilterState::Text {
                self.sequence_len += 1;
                if self.sequence_len > MAX_SEQUENCE {
                    self.state = FilterState::Text;
                }
            }

            self.state = match self.state {
                FilterState::Text => match byte {
                    ESC => self.start_sequence(FilterState::Escape),
                    IAC => self.start_sequence(FilterState::Iac),
                    0 | BEL => FilterState::Text,
                    _ => {
                        output.push(byte);
                        FilterState::Text
                    }
                },
                FilterState::Escape => match byte {
                    b'[' => FilterState::Csi,
                    b']' => FilterState::Osc,
                    0x20..=0x2f => FilterState::EscapeIntermediate,
                    _ => FilterState::Text,
                },
                FilterState::Csi => match byte {
                    // Parameter (0x30-0x3F) and intermediate (0x20-0x2F) bytes.
                    0x20..=0x3f => FilterState::Csi,
                    _ => FilterState::Text,
                },
                FilterState::EscapeIntermediate => match byte {
                    0x20..=0x2f => FilterState::EscapeIntermediate,
                    _ => FilterState::Text,
                },
                FilterState::Osc => match byte {
                    BEL => FilterState::Text,
                    ESC => FilterState::OscEscape,
                    _ => FilterState::Osc,
                },
                FilterState::OscEscape => match byte {
                    b'\\' => FilterState::Text,
                    _ => FilterState::Osc,
                },
                FilterState::Iac => match byte {
                    // IAC IAC is an escaped 0xFF data byte. It is never valid
                    // UTF-8, so lossy decoding later turns it into U+FFFD.
                    IAC => {
                        output.push(IAC);
                        FilterState::Text
                    }
                    251..=254 => FilterState::IacOption,
                    IAC_SB => FilterState::Subnegotiation,
                    _ => FilterState::Text,
                },
                FilterState::IacOption => FilterState::Text,
                FilterState::Subnegotiation => match byte {
                    IAC => FilterState::SubnegotiationIac,
                    _ => FilterState::Subnegotiation,
                },
                FilterState::SubnegotiationIac => match byte {
                    IAC_SE => FilterState::Text,
                    _ => FilterState::Subnegotiation,
                },
            };
        }
    }

    fn start_sequence(&mut self, state: FilterState) -> FilterState {
        self.sequence_len = 0;
        state
    }
}

/// A status line: `+OK...` or `-ERR...`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    pub ok: bool,
    /// The whole line as the server sent it.
    pub line: String,
}

impl Status {
    /// Classifies a line as a status line by its prefix alone, because the
    /// wording after the prefix differs between servers.
    pub(crate) fn parse(line: &str) -> Option<Self> {
        let ok = if has_status_prefix(line, "+OK") {
            true
        } else if has_status_prefix(line, "-ERR") {
            false
        } else {
            return None;
        };
        Some(Self {
            ok,
            line: line.to_owned(),
        })
    }
}

fn has_status_prefix(line: &str, prefix: &str) -> bool {
    match line.strip_prefix(prefix) {
        Some(rest) => rest.is_empty() || rest.starts_with(':') || rest.starts_with(' '),
        None => false,
    }
}

/// One reply as framed by the reader.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// Lines before the status line, decoded lossily as UTF-8, without line
    /// endings.
    pub lines: Vec<String>,
    /// `None` only for login-phase replies that carry no status line.
    pub status: Option<Status>,
    /// The prompt path between `<` and `> `; `None` when the server closed
    /// the connection after the status line (the reply to `QUIT`).
    pub prompt: Option<String>,
}

/// Kind of line that ends the reply being read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FrameMode {
    /// A status line and then any prompt (every reply after login).
    Command,
    /// A `<login> ` or `<password> ` prompt, with or without a status line
    /// before it (the banner and the reply to `USER`).
    Login,
}

/// Splits the filtered byte stream into lines and recognises the end of a
/// reply.
#[derive(Debug, Default)]
pub(crate) struct ReplyReader {
    filter: ControlFilter,
    /// Filtered bytes of the current, unfinished line.
    partial: Vec<u8>,
    lines: Vec<String>,
    /// Raw bytes received since the current reply began, for the size limit.
    raw_len: usize,
    /// Scratch space for filtered bytes.
    filtered: Vec<u8>,
    /// Replies still expected after the one being read, for commands sent
    /// ahead. While it is above zero, a prompt after a status line ends a
    /// reply even when more data follows it.
    ahead: usize,
    /// Replies ended that way, oldest first.
    ready: VecDeque<Frame>,
}

impl ReplyReader {
    /// Feeds the bytes of one read.
    pub(crate) fn push(&mut self, data: &[u8]) {
        self.raw_len += data.len();
        self.filtered.clear();
        self.filter.filter(data, &mut self.filtered);

        let filtered = std::mem::take(&mut self.filtered);
        let mut rest = filtered.as_slice();
        loop {
            if self.ahead > 0 && self.ends_with_status() {
                rest = self.end_at_prompt(rest);
            }
            let Some(newline) = rest.iter().position(|&byte| byte == b'\n') else {
                break;
            };
            self.partial.extend_from_slice(&rest[..newline]);
            rest = &rest[newline + 1..];

            let mut line = std::mem::take(&mut self.partial);
            if line.last() == Some(&b'\r') {
                line.pop();
            }
            self.lines.push(decode(line));
        }
        self.partial.extend_from_slice(rest);
        self.filtered = filtered;
    }

    /// Expects `count` more replies after the one being read, to commands
    /// that were sent ahead.
    pub(crate) fn expect_ahead(&mut self, count: usize) {
        self.ahead = count;
    }

    /// Moves the bytes of a prompt from the start of `rest` into the
    /// unfinished line. When the prompt is whole and more data follows, the
    /// reply ends there and waits in `ready`. Returns the bytes not taken.
    fn end_at_prompt<'a>(&mut self, mut rest: &'a [u8]) -> &'a [u8] {
        while prompt_path(&self.partial).is_none() {
            let Some((&byte, tail)) = rest.split_first() else {
                return rest;
            };
            if !extends_prompt(&self.partial, byte) {
                return rest;
            }
            self.partial.push(byte);
            rest = tail;
        }
        if rest.is_empty() {
            // A prompt at the end of the data: take_frame ends the reply.
            return rest;
        }
        let prompt = prompt_path(&self.partial).map(str::to_owned);
        self.partial.clear();
        let frame = self.finish(prompt);
        self.ready.push_back(frame);
        self.ahead -= 1;
        // The next reply's bytes of this read count towards its size limit.
        self.raw_len = rest.len();
        rest
    }

    /// Raw bytes received for the current reply so far.
    pub(crate) fn raw_len(&self) -> usize {
        self.raw_len
    }

    /// Returns the last line received, whole or partial, for error messages.
    pub(crate) fn last_line(&self) -> Option<String> {
        if self.partial.is_empty() {
            self.lines.last().cloned()
        } else {
            Some(String::from_utf8_lossy(&self.partial).into_owned())
        }
    }

    /// Returns the prompt path when the unfinished line is exactly a prompt.
    pub(crate) fn pending_prompt(&self) -> Option<&str> {
        prompt_path(&self.partial)
    }

    /// Tells whether the last full line is a status line.
    pub(crate) fn ends_with_status(&self) -> bool {
        self.lines
            .last()
            .is_some_and(|line| Status::parse(line).is_some())
    }

    /// Takes the complete reply when the data read so far ends one.
    pub(crate) fn take_frame(&mut self, mode: FrameMode) -> Option<Frame> {
        if let Some(frame) = self.ready.pop_front() {
            return Some(frame);
        }
        let prompt = self.pending_prompt()?;
        let complete = match mode {
            FrameMode::Command => self.ends_with_status(),
            FrameMode::Login => {
                prompt.eq_ignore_ascii_case("login") || prompt.eq_ignore_ascii_case("password")
            }
        };
        if !complete {
            return None;
        }

        let prompt = prompt.to_owned();
        self.partial.clear();
        self.ahead = self.ahead.saturating_sub(1);
        Some(self.finish(Some(prompt)))
    }

    /// Takes the reply at the end of the stream: complete only when the last
    /// full line is a status line and nothing follows it (the reply to
    /// `QUIT`).
    pub(crate) fn take_final_frame(&mut self) -> Option<Frame> {
        let trailing_text = self.partial.iter().any(|byte| !byte.is_ascii_whitespace());
        if trailing_text || !self.ends_with_status() {
            return None;
        }
        self.partial.clear();
        Some(self.finish(None))
    }

    fn finish(&mut self, prompt: Option<String>) -> Frame {
        let mut lines = std::mem::take(&mut self.lines);
        let status = match lines.last().and_then(|line| Status::parse(line)) {
            Some(status) => {
                lines.pop();
                Some(status)
            }
            None => None,
        };
        self.raw_len = 0;
        Frame {
            lines,
            status,
            prompt,
        }
    }
}

fn decode(bytes: Vec<u8>) -> String {
    match String::from_utf8(bytes) {
        Ok(text) => text,
        Err(error) => String::from_utf8_lossy(error.as_bytes()).into_owned(),
    }
}

/// Tells whether `partial` followed by `byte` can still become a prompt.
fn extends_prompt(partial: &[u8], byte: u8) -> bool {
    match partial.last() {
        None => byte == b'<',
        _ if partial[0] != b'<' => false,
        Some(b'>') => byte == b' ',
        Some(_) => partial.len() <= MAX_PROMPT_PATH && byte != b'<' && !byte.is_ascii_control(),
    }
}

/// Returns the path of a prompt `<path> ` when `tail` is exactly one.
fn prompt_path(tail: &[u8]) -> Option<&str> {
    let inner = tail.strip_prefix(b"<")?.strip_suffix(b"> ")?;
    if inner.len() > MAX_PROMPT_PATH {
        return None;
    }
    let plain = inner
        .iter()
        .all(|&byte| byte != b'<' && byte != b'>' && !byte.is_ascii_control());
    if !plain {
        return None;
    }
    std::str::from_utf8(inner).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn filter_all(chunks: &[&[u8]]) -> Vec<u8> {
        let mut filter = ControlFilter::default();
        let mut output = Vec::new();
        for chunk in chunks {
            filter.filter(chunk, &mut output);
        }
        output
    }

    #[test]
    fn filter_removes_csi_split_across_reads() {
        let output = filter_all(&[b"a\x1b[", b"1;3", b"2mb\x1b", b"[0mc"]);
        assert_eq!(output, b"abc");
    }

    #[test]
    fn filter_removes_telnet_negotiation() {
        let output = filter_all(&[
            b"\xff\xfb\x01we\xff",
            b"\xfd",
            b"\x03lcome\xff\xfa\x18\x01\xff\xf0!",
        ]);
        assert_eq!(output, b"welcome!");
    }

    #[test]
    fn filter_keeps_escaped_iac_byte() {
        assert_eq!(filter_all(&[b"a\xff\xffb"]), b"a\xffb");
    }

    #[test]
    fn filter_removes_osc_and_charset_selection() {
        let output = filter_all(&[b"x\x1b]0;title\x07y\x1b(Bz\x1b]2;t\x1b\\!"]);
        assert_eq!(output, b"xyz!");
    }

    #[test]
    fn filter_bounds_unterminated_sequence() {
        let mut input = b"\x1b[".to_vec();
        input.extend(std::iter::repeat_n(b'1', MAX_SEQUENCE + 10));
        input.extend_from_slice(b"tail");
        let output = filter_all(&[&input]);
        assert!(output.ends_with(b"tail"), "{output:?}");
    }

    #[test]
    fn status_prefix_needs_separator() {
        assert!(Status::parse("+OK: done").unwrap().ok);
        assert!(!Status::parse("-ERR: no").unwrap().ok);
        assert!(Status::parse("+OK").is_some());
        assert!(Status::parse("+OKAY").is_none());
        assert!(Status::parse("-ERRATA").is_none());
    }

    #[test]
    fn reader_waits_for_prompt_after_status() {
        let mut reader = ReplyReader::default();
        reader.push(b"body\r\n+OK: command successful\r\n<#");
        assert!(reader.take_frame(FrameMode::Command).is_none());
        reader.push(b">");
        assert!(reader.take_frame(FrameMode::Command).is_none());
        reader.push(b" ");
        let frame = reader.take_frame(FrameMode::Command).unwrap();
        assert_eq!(frame.lines, vec!["body".to_owned()]);
        assert_eq!(frame.status.unwrap().line, "+OK: command successful");
        assert_eq!(frame.prompt.as_deref(), Some("#"));
    }

    #[test]
    fn reader_ignores_prompt_shape_without_status() {
        let mut reader = ReplyReader::default();
        reader.push(b"line one\r\n<tag> ");
        assert!(reader.take_frame(FrameMode::Command).is_none());
        reader.push(b"more text\r\n+OK: done\r\n<domain#> ");
        let frame = reader.take_frame(FrameMode::Command).unwrap();
        assert_eq!(frame.lines, vec!["line one", "<tag> more text"]);
    }

    #[test]
    fn reader_takes_login_prompt_without_status() {
        let mut reader = ReplyReader::default();
        reader.push(b"Welcome to AXIGEN's Command Line Interface\r\n<login> ");
        let frame = reader.take_frame(FrameMode::Login).unwrap();
        assert_eq!(frame.status, None);
        assert_eq!(frame.prompt.as_deref(), Some("login"));
    }

    #[test]
    fn reader_decodes_invalid_utf8_lossily() {
        let mut reader = ReplyReader::default();
        reader.push(b"caf\xe9\r\n+OK\r\n<#> ");
        let frame = reader.take_frame(FrameMode::Command).unwrap();
        assert_eq!(frame.lines, vec!["caf\u{fffd}"]);
    }

    #[test]
    fn reader_final_frame_needs_status() {
        let mut reader = ReplyReader::default();
        reader.push(b"+OK: have a nice day\r\n");
        assert_eq!(reader.take_final_frame().unwrap().prompt, None);

        let mut reader = ReplyReader::default();
        reader.push(b"partial row");
        assert!(reader.take_final_frame().is_none());
    }

    /// Feeds `replies` with every reply cut at `cuts` and returns the frames,
    /// checking after each piece as the connection does after each read.
    /// A frame may end before the last piece when only control codes
    /// follow its prompt.
    fn frames_with_cuts(replies: &[(&[u8], FrameMode)], cuts: &[usize]) -> Vec<Frame> {
        let mut reader = ReplyReader::default();
        let mut frames = Vec::new();
        for (index, (reply, mode)) in replies.iter().enumerate() {
            let mut points: Vec<usize> = cuts
                .iter()
                .skip(index * 6)
                .take(6)
                .map(|cut| cut % reply.len())
                .collect();
            points.push(reply.len());
            points.sort_unstable();
            let mut start = 0;
            let mut frame = None;
            for point in points {
                reader.push(&reply[start..point]);
                start = point;
                if frame.is_none() {
                    frame = reader.take_frame(*mode);
                }
            }
            // Only control codes may follow the prompt of a reply.
            assert!(
                reader.partial.is_empty() && reader.lines.is_empty(),
                "reply {index} left text"
            );
            frames.push(frame.unwrap_or_else(|| panic!("reply {index} never ended")));
        }
        frames
    }

    const SESSION: &[(&[u8], FrameMode)] = &[
        (b"\xff\xfb\x01Welcome to AXIGEN's Command Line Interface\r\n\x1b[1m<login> \x1b[0m", FrameMode::Login),
        (b"<password> ", FrameMode::Login),
        (b"+OK: Authentication successful\r\n<#> ", FrameMode::Command),
        (b"Title:\r\n\r\nname\r\n----\r\nn\xc3\xa4me\r\n<x> y\r\n\r\n+OK: ok\r\n\x1b[32m<#> \x1b[0m", FrameMode::Command),
        (b"-ERR: no such domain\r\n<#> ", FrameMode::Command),
        (b"Mbox size = 5 \xff\xff KB\r\n+OK\r\n<domain-account#> ", FrameMode::Command),
    ];

    proptest::proptest! {
        #[test]
        fn any_split_gives_same_frames(cuts in proptest::collection::vec(0usize..512, 0..40)) {
            let whole = frames_with_cuts(SESSION, &[]);
            proptest::prop_assert_eq!(frames_with_cuts(SESSION, &cuts), whole);
        }
    }

    #[test]
    fn session_frames_read_as_expected() {
        let frames = frames_with_cuts(SESSION, &[]);
        assert_eq!(frames[0].prompt.as_deref(), Some("login"));
        assert_eq!(
            frames[0].lines,
            vec!["Welcome to AXIGEN's Command Line Interface"]
        );
        assert_eq!(frames[1].status, None);
        assert_eq!(
            frames[3].lines,
            vec!["Title:", "", "name", "----", "näme", "<x> y", ""]
        );
        assert!(!frames[4].status.as_ref().unwrap().ok);
        assert_eq!(frames[5].lines, vec!["Mbox size = 5 \u{fffd} KB"]);
        assert_eq!(frames[5].prompt.as_deref(), Some("domain-account#"));
    }

    #[test]
    fn one_byte_pushes_give_same_frames() {
        let mut reader = ReplyReader::default();
        let mut frames = Vec::new();
        for (reply, mode) in SESSION {
            for byte in reply.iter() {
                reader.push(std::slice::from_ref(byte));
                if let Some(frame) = reader.take_frame(*mode) {
                    frames.push(frame);
                }
            }
        }
        assert_eq!(frames, frames_with_cuts(SESSION, &[]));
    }

    /// Replies to commands sent together: the account's quota read.
    const AHEAD: &[&[u8]] = &[
        b"+OK: command successful\r\n<domain-account#> ",
        b"+OK: command successful\r\n\x1b[1m<domain-account-quotas#> \x1b[0m",
        b"totalMessageSize = 1048576 [explicit]\r\n+OK: command successful\r\n<domain-account-quotas#> ",
        b"-ERR: no such attribute\r\n<domain-account#> ",
        b"+OK: command successful\r\n<domain#> ",
    ];

    /// Feeds the replies in `AHEAD` as one stream cut at `cuts`, telling
    /// the reader to expect them all, and returns every frame taken.
    fn frames_ahead(cuts: &[usize]) -> Vec<Frame> {
        let stream = AHEAD.concat();
        let mut points: Vec<usize> = cuts.iter().map(|cut| cut % stream.len()).collect();
        points.push(stream.len());
        points.sort_unstable();

        let mut reader = ReplyReader::default();
        reader.expect_ahead(AHEAD.len() - 1);
        let mut frames = Vec::new();
        let mut start = 0;
        for point in points {
            reader.push(&stream[start..point]);
            start = point;
            while let Some(frame) = reader.take_frame(FrameMode::Command) {
                frames.push(frame);
            }
        }
        assert!(
            reader.partial.is_empty() && reader.lines.is_empty(),
            "text left after the last reply"
        );
        assert_eq!(reader.ahead, 0, "replies still expected after the last one");
        frames
    }

    #[test]
    fn replies_sent_ahead_end_at_each_prompt() {
        let one_by_one: Vec<(&[u8], FrameMode)> = AHEAD
            .iter()
            .map(|reply| (*reply, FrameMode::Command))
            .collect();
        let frames = frames_ahead(&[]);
        assert_eq!(frames, frames_with_cuts(&one_by_one, &[]));
        assert_eq!(
            frames[2].lines,
            vec!["totalMessageSize = 1048576 [explicit]"]
        );
        assert!(!frames[3].status.as_ref().unwrap().ok);
        let prompts: Vec<_> = frames.iter().map(|frame| frame.prompt.as_deref()).collect();
        assert_eq!(
            prompts,
            [
                Some("domain-account#"),
                Some("domain-account-quotas#"),
                Some("domain-account-quotas#"),
                Some("domain-account#"),
                Some("domain#"),
            ]
        );
    }

    proptest::proptest! {
        #[test]
        fn replies_sent_ahead_survive_any_split(cuts in proptest::collection::vec(0usize..512, 0..40)) {
            proptest::prop_assert_eq!(frames_ahead(&cuts), frames_ahead(&[]));
        }
    }

    #[test]
    fn unexpected_data_after_prompt_not_split() {
        let mut reader = ReplyReader::default();
        reader.push(b"+OK: done\r\n<#> +OK: done\r\n<#> ");
        // Without replies expected ahead, the first prompt is body text of
        // one unfinished reply.
        assert!(reader.take_frame(FrameMode::Command).is_none());
    }
}

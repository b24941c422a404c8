//! Builds the bytes of CLI replies: lines ending in CRLF, status lines,
//! prompts, LIST tables and SHOW blocks, with optional console codes.

use crate::behavior::Underline;

pub(crate) const BOLD: &str = "\x1b[1m";
const BLUE_BOLD: &str = "\x1b[1;34m";
const GREEN: &str = "\x1b[32m";
const RED: &str = "\x1b[31m";
const RESET: &str = "\x1b[0m";

/// Minimum length of the line under a table header.
const MIN_UNDERLINE: usize = 54;

/// One reply being assembled. Replies are built whole before sending so
/// that chunking and mid-reply closes apply to exact bytes.
pub(crate) struct Reply {
    pub(crate) bytes: Vec<u8>,
    console_codes: bool,
}

impl Reply {
    pub(crate) fn new(console_codes: bool) -> Self {
        Self {
            bytes: Vec::new(),
            console_codes,
        }
    }

    pub(crate) fn raw(&mut self, bytes: &[u8]) -> &mut Self {
        self.bytes.extend_from_slice(bytes);
        self
    }

    pub(crate) fn line(&mut self, text: &str) -> &mut Self {
        self.line_bytes(text.as_bytes())
    }

    pub(crate) fn line_bytes(&mut self, text: &[u8]) -> &mut Self {
        self.bytes.extend_from_slice(text);
        self.bytes.extend_from_slice(b"\r\n");
        self
    }

    /// Appends a line, in bold when console codes are on.
    pub(crate) fn emphasised_line(&mut self, text: &str) -> &mut Self {
        if self.console_codes {
            let wrapped = format!("{BOLD}{text}{RESET}");
            self.line(&wrapped)
        } else {
            self.line(text)
        }
    }

    pub(crate) fn ok(&mut self, text: &str) -> &mut Self {
        self.status("+OK:", GREEN, text)
    }

    pub(crate) fn err(&mut self, text: &str) -> &mut Self {
        self.status("-ERR:", RED, text)
    }

    fn status(&mut self, word: &str, colour: &str, text: &str) -> &mut Self {
        let line = if self.console_codes {
            format!("{colour}{word}{RESET} {text}")
        } else {
            format!("{word} {text}")
        };
        self.line(&line)
    }

    /// `<context> ` with no newline, e.g. `<#> ` or `<domain#> `.
    pub(crate) fn prompt(&mut self, context: &str) -> &mut Self {
        let prompt = if self.console_codes {
            format!("{BLUE_BOLD}<{context}>{RESET} ")
        } else {
            format!("<{context}> ")
        };
        self.raw(prompt.as_bytes())
    }
}

/// Layout of one LIST table.
pub(crate) struct TableLayout<'a> {
    /// Header names with the width of their column; the last column is not
    /// padded.
    pub(crate) columns: &'a [(&'a str, usize)],
    pub(crate) underline: Underline,
    /// Rows only: no title, header, underline or closing blank line.
    pub(crate) quiet: bool,
}

impl TableLayout<'_> {
    /// Writes the title and header part: title, two blank lines, header,
    /// underline.
    pub(crate) fn write_head(&self, reply: &mut Reply, title: &[u8]) {
        if self.quiet {
            return;
        }
        reply.line_bytes(title).line("").line("");
        let header: Vec<&str> = self.columns.iter().map(|(name, _)| *name).collect();
        let header = self.format_row(&header);
        let underline_length = header.chars().count().max(MIN_UNDERLINE);
        reply.emphasised_line(&header);
        let underline: String =
            std::iter::repeat_n(self.underline.char(), underline_length).collect();
        reply.line(&underline);
    }

    pub(crate) fn write_row(&self, reply: &mut Reply, cells: &[&str]) {
        let row = self.format_row(cells);
        reply.line(&row);
    }

    /// Writes the blank line that closes a table.
    pub(crate) fn write_tail(&self, reply: &mut Reply) {
        if !self.quiet {
            reply.line("");
        }
    }

    /// Pads every cell but the last to its column width, counting
    /// characters rather than bytes. A cell that fills its column gets a
    /// single space after it.
    fn format_row(&self, cells: &[&str]) -> String {
        let mut row = String::new();
        let last = cells.len().saturating_sub(1);
        for (index, cell) in cells.iter().enumerate() {
            row.push_str(cell);
            if index == last {
                break;
            }
            let width = self.columns.get(index).map_or(0, |(_, width)| *width);
            let length = cell.chars().count();
            let padding = if length < width { width - length } else { 1 };
            row.extend(std::iter::repeat_n(' ', padding));
        }
        row
    }
}

/// Writes a SHOW block: two heading lines, `key = value` lines, a blank
/// line.
pub(crate) fn write_show_block(reply: &mut Reply, heading: &str, pairs: &[(String, Vec<u8>)]) {
    reply.line(heading);
    let underline: String = std::iter::repeat_n('-', heading.chars().count()).collect();
    reply.line(&underline);
    for (key, value) in pairs {
        write_pair(reply, key, value);
    }
    reply.line("");
}

pub(crate) fn write_pair(reply: &mut Reply, key: &str, value: &[u8]) {
    reply.raw(key.as_bytes()).raw(b" = ").line_bytes(value);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn narrow_column_keeps_one_space() {
        let layout = TableLayout {
            columns: &[("name", 4), ("status", 0)],
            underline: Underline::Dash,
            quiet: false,
        };
        assert_eq!(
            layout.format_row(&["example.com", "enabled"]),
            "example.com enabled"
        );
    }

    #[test]
    fn padding_counts_characters_not_bytes() {
        let layout = TableLayout {
            columns: &[("name", 10), ("status", 0)],
            underline: Underline::Dash,
            quiet: false,
        };
        assert_eq!(layout.format_row(&["jürgen", "x"]), "jürgen    x");
    }
}

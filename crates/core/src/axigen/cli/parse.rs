//! Parsers for the bodies of CLI replies: LIST tables, `key = value`
//! blocks, sizes with units and attribute values.
//!
//! Tables are delimited by layout alone: the underline (a line of `-` or
//! `=`) below the header, then rows up to the first blank line. A row is
//! never skipped because of what its name looks like, because domains such
//! as `name-server.com` or `list.example` are real.

use crate::model::DomainStatus;

/// The rows of a LIST table and the header words above its underline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Table<'a> {
    /// Header words in order; empty for the QUIET shape (rows only).
    pub header: Vec<&'a str>,
    pub rows: Vec<&'a str>,
}

/// A domain as listed, with its status when the table has a status column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct DomainRow {
    pub name: String,
    pub status: Option<DomainStatus>,
}

/// Splits a LIST reply body into header and rows.
///
/// With an underline, rows are the lines after it up to the first blank
/// line. Without one (QUIET on), every non-blank line is a row.
pub(crate) fn parse_table(lines: &[String]) -> Table<'_> {
    let Some(mut underline) = lines.iter().position(|line| is_underline(line)) else {
        return Table {
            header: Vec::new(),
            rows: lines
                .iter()
                .map(|line| line.trim())
                .filter(|line| !line.is_empty())
                .collect(),
        };
    };

    // A boxed header (underline, header, underline) uses the second one.
    if underline + 2 < lines.len()
        && is_underline(&lines[underline + 2])
        && !lines[underline + 1].trim().is_empty()
    {
        underline += 2;
    }

    let header = match underline.checked_sub(1) {
        Some(index) => lines[index].split_whitespace().collect(),
        None => Vec::new(),
    };
    let rows = lines[underline + 1..]
        .iter()
        .map(|line| line.trim())
        .take_while(|line| !line.is_empty())
        .collect();
    Table { header, rows }
}

fn is_underline(line: &str) -> bool {
    let line = line.trim();
    line.len() >= 3 && (line.bytes().all(|b| b == b'-') || line.bytes().all(|b| b == b'='))
}

/// The first whitespace-separated field of each row.
pub(crate) fn row_names(table: &Table<'_>) -> Vec<String> {
    table
        .rows
        .iter()
        .filter_map(|row| row.split_whitespace().next())
        .map(str::to_owned)
        .collect()
}

/// Reads a domain table, taking each row's status from the column the header
/// names `status`, when there is one.
pub(crate) fn parse_domain_table(lines: &[String]) -> Vec<DomainRow> {
    let table = parse_table(lines);
    let status_column = table
        .header
        .iter()
        .position(|word| word.eq_ignore_ascii_case("status"));

    table
        .rows
        .iter()
        .filter_map(|row| {
            let fields: Vec<&str> = row.split_whitespace().collect();
            let name = (*fields.first()?).to_owned();
            let status =
                status_column.and_then(|column| status_of_row(&fields, column, table.header.len()));
            Some(DomainRow { name, status })
        })
        .collect()
}

/// Reads the status of one row. When the row has as many fields as the
/// header, the status column is used; otherwise (an empty or overflowing
/// cell shifted the fields) the one field after the name that is a status
/// word is used.
fn status_of_row(fields: &[&str], column: usize, header_len: usize) -> Option<DomainStatus> {
    if fields.len() == header_len {
        return fields.get(column).and_then(|field| status_word(field));
    }
    let mut found = fields.iter().skip(1).filter_map(|field| status_word(field));
    let status = found.next()?;
    found.next().is_none().then_some(status)
}

fn status_word(field: &str) -> Option<DomainStatus> {
    if field.eq_ignore_ascii_case("enabled") || field.eq_ignore_ascii_case("active") {
        Some(DomainStatus::Enabled)
    } else if field.eq_ignore_ascii_case("disabled") || field.eq_ignore_ascii_case("inactive") {
        Some(DomainStatus::Disabled)
    } else {
        None
    }
}

/// Finds the raw value of `key` in `key = value` lines. Keys compare
/// case-insensitively and the value is everything after the first ` = `.
pub(crate) fn find_value<'a>(lines: &'a [String], key: &str) -> Option<&'a str> {
    lines.iter().find_map(|line| {
        let (line_key, value) = line.split_once(" = ").or_else(|| line.split_once('='))?;
        line_key.trim().eq_ignore_ascii_case(key).then_some(value)
    })
}

/// Cleans an attribute value: cut at ` [` (an inheritance note such as
/// `[explicit, overrides inherited value: 1048576]`), trimmed, with one layer
/// of surrounding double quotes removed.
pub(crate) fn attribute_value(raw: &str) -> &str {
    let value = match raw.find(" [") {
        Some(index) => &raw[..index],
        None => raw,
    };
    let value = value.trim();
    value
        .strip_prefix('"')
        .and_then(|inner| inner.strip_suffix('"'))
        .unwrap_or(value)
}

/// Parses a size in KB with an optional unit (`B`, `KB`, `MB`, `GB`, any
/// case, with or without a space) and returns KB, rounded to the nearest KB.
/// A bare number is KB. Decimal fractions are accepted (`1.5 MB`).
pub(crate) fn parse_size_kb(text: &str) -> Option<u64> {
    let text = text.trim();
    let number_end = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(number_end);

    // Bytes per unit, with KB = 1024 bytes as Axigen counts.
    let unit_bytes: u128 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "kb" | "k" | "kib" => 1024,
        "b" => 1,
        "mb" | "m" | "mib" => 1024 * 1024,
        "gb" | "g" | "gib" => 1024 * 1024 * 1024,
        _ => return None,
    };

    let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
    if whole.is_empty() || fraction.contains('.') || fraction.len() > 12 {
        return None;
    }
    let whole: u128 = whole.parse().ok()?;
    let fraction_value: u128 = if fraction.is_empty() {
        0
    } else {
        fraction.parse().ok()?
    };
    let scale = 10u128.pow(fraction.len() as u32);

    // bytes * scale, then divide by (1024 * scale) rounding half up.
    let scaled_bytes = whole
        .checked_mul(scale)?
        .checked_add(fraction_value)?
        .checked_mul(unit_bytes)?;
    let divisor = 1024 * scale;
    let kb = (scaled_bytes + divisor / 2) / divisor;
    u64::try_from(kb).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(text: &str) -> Vec<String> {
        text.lines().map(str::to_owned).collect()
    }

    #[test]
    fn table_with_title_header_and_trailer() {
        let body = lines(
            "The list of domains:\n\n\nname    status    accounts\n--------------------------\n\
             name-server.com   enabled   2\nlist.example  disabled 0\n\nTotal: 2",
        );
        let table = parse_table(&body);
        assert_eq!(table.header, vec!["name", "status", "accounts"]);
        assert_eq!(row_names(&table), vec!["name-server.com", "list.example"]);
    }

    #[test]
    fn table_quiet_shape_keeps_every_row() {
        let body = lines("name\nlist\ntotal\n");
        let table = parse_table(&body);
        assert!(table.header.is_empty());
        assert_eq!(row_names(&table), vec!["name", "list", "total"]);
    }

    #[test]
    fn table_with_equals_underline_and_empty_list() {
        let body = lines("Accounts:\nname\n=====\n\n");
        let table = parse_table(&body);
        assert_eq!(table.header, vec!["name"]);
        assert!(table.rows.is_empty());
    }

    #[test]
    fn table_with_boxed_header() {
        let body = lines("-----\nname\n-----\nalice\nbob\n");
        assert_eq!(row_names(&parse_table(&body)), vec!["alice", "bob"]);
    }

    #[test]
    fn domain_table_reads_status_column() {
        let body =
            lines("name  status accounts\n----\na.example enabled 1\nb.example disabled 0\n");
        let rows = parse_domain_table(&body);
        assert_eq!(rows[0].status, Some(DomainStatus::Enabled));
        assert_eq!(rows[1].status, Some(DomainStatus::Disabled));
    }

    #[test]
    fn domain_table_without_status_column() {
        let body = lines("name\n----\na.example\n");
        assert_eq!(parse_domain_table(&body)[0].status, None);
    }

    #[test]
    fn domain_table_status_after_shifted_cells() {
        let body = lines("name accounts status used\n----\na.example disabled 3\n");
        assert_eq!(
            parse_domain_table(&body)[0].status,
            Some(DomainStatus::Disabled)
        );
    }

    #[test]
    fn find_value_is_case_insensitive() {
        let body = lines("Mbox size = 12 KB\nMbox message count = 5");
        assert_eq!(find_value(&body, "mbox SIZE"), Some("12 KB"));
        assert_eq!(find_value(&body, "Mbox message count"), Some("5"));
        assert_eq!(find_value(&body, "Mbox folder count"), None);
    }

    #[test]
    fn attribute_value_cuts_note_and_quotes() {
        assert_eq!(
            attribute_value("2097152 [explicit, overrides inherited value: 1048576]"),
            "2097152"
        );
        assert_eq!(attribute_value(" \"1024\" "), "1024");
        assert_eq!(attribute_value("a = b"), "a = b");
    }

    #[test]
    fn size_units_convert_to_kb() {
        assert_eq!(parse_size_kb("734003"), Some(734003));
        assert_eq!(parse_size_kb("734003 KB"), Some(734003));
        assert_eq!(parse_size_kb("12kb"), Some(12));
        assert_eq!(parse_size_kb("2 MB"), Some(2048));
        assert_eq!(parse_size_kb("1.5 mb"), Some(1536));
        assert_eq!(parse_size_kb("1 GB"), Some(1024 * 1024));
        assert_eq!(parse_size_kb("2048 B"), Some(2));
        assert_eq!(parse_size_kb("0"), Some(0));
        assert_eq!(parse_size_kb("4294967295"), Some(4294967295));
        assert_eq!(parse_size_kb("12 TB"), None);
        assert_eq!(parse_size_kb("KB"), None);
        assert_eq!(parse_size_kb("-5"), None);
        assert_eq!(parse_size_kb("1.2.3"), None);
    }
}

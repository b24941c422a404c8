//! Writing a server's snapshot: its domains and accounts replace the
//! previous ones, inside a transaction that the caller owns.

use std::collections::HashMap;
use std::fmt::Write as _;

use chrono::SecondsFormat;
use sqlx::PgConnection;
use uuid::Uuid;

use crate::model::Snapshot;

/// Rows written by [`replace_snapshot`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WriteCounts {
    pub domains: usize,
    pub accounts: usize,
}

/// Replaces the domains and accounts of one server with `snapshot`: one
/// delete of the accounts, one upsert of the domains, one delete of the
/// domains no longer listed and one `COPY` of the accounts, whatever the
/// size. A domain keeps its row, and so its id, from poll to poll.
///
/// Run it inside a transaction: on any error the caller drops the
/// transaction and the previous snapshot stays as it was.
///
/// # Errors
///
/// Database errors, including one when the snapshot lists the same domain,
/// or the same account in one domain, twice in different letter case.
pub async fn replace_snapshot(
    conn: &mut PgConnection,
    server_id: Uuid,
    snapshot: &Snapshot,
) -> sqlx::Result<WriteCounts> {
    // Accounts go first: deleting a domain that still has accounts would
    // cascade to them one domain at a time.
    sqlx::query("DELETE FROM accounts WHERE server_id = $1")
        .bind(server_id)
        .execute(&mut *conn)
        .await?;

    let domain_ids = upsert_domains(conn, server_id, snapshot).await?;
    let listed: Vec<&str> = domain_ids.keys().map(String::as_str).collect();
    sqlx::query("DELETE FROM domains WHERE server_id = $1 AND name <> ALL($2)")
        .bind(server_id)
        .bind(&listed)
        .execute(&mut *conn)
        .await?;

    let accounts = insert_accounts(conn, server_id, snapshot, &domain_ids).await?;
    Ok(WriteCounts {
        domains: domain_ids.len(),
        accounts,
    })
}

/// Returns `Some(original)` when lower-casing changes the name, so only
/// names that differ from their lookup form keep a display copy.
fn display_form(original: &str, lowered: &str) -> Option<String> {
    (original != lowered).then(|| original.to_owned())
}

async fn upsert_domains(
    conn: &mut PgConnection,
    server_id: Uuid,
    snapshot: &Snapshot,
) -> sqlx::Result<HashMap<String, i64>> {
    let count = snapshot.domains.len();
    let mut names = Vec::with_capacity(count);
    let mut display_names = Vec::with_capacity(count);
    let mut statuses = Vec::with_capacity(count);
    for domain in &snapshot.domains {
        let lowered = domain.name.to_lowercase();
        display_names.push(display_form(&domain.name, &lowered));
        names.push(lowered);
        statuses.push(domain.status.as_str());
    }

    let rows: Vec<(i64, String)> = sqlx::query_as(
        "INSERT INTO domains (server_id, name, display_name, status, collected_at) \
         SELECT $1, name, display_name, status, $5 \
         FROM UNNEST($2::text[], $3::text[], $4::text[]) AS d (name, display_name, status) \
         ON CONFLICT (server_id, name) DO UPDATE SET display_name = EXCLUDED.display_name, \
         status = EXCLUDED.status, collected_at = EXCLUDED.collected_at \
         RETURNING id, name",
    )
    .bind(server_id)
    .bind(&names)
    .bind(&display_names)
    .bind(&statuses)
    .bind(snapshot.collected_at)
    .fetch_all(&mut *conn)
    .await?;
    Ok(rows.into_iter().map(|(id, name)| (name, id)).collect())
}

/// Bytes of COPY data collected before they are sent, so that a snapshot of
/// any size is written with bounded memory.
const COPY_CHUNK_BYTES: usize = 256 * 1024;

/// Writes the accounts with `COPY ... FROM STDIN` in text format, which
/// PostgreSQL parses with far less work per row than `UNNEST` of bound
/// arrays.
async fn insert_accounts(
    conn: &mut PgConnection,
    server_id: Uuid,
    snapshot: &Snapshot,
    domain_ids: &HashMap<String, i64>,
) -> sqlx::Result<usize> {
    let mut copy = conn
        .copy_in_raw(
            "COPY accounts (server_id, domain_id, local_part, display_local_part, email, \
             quota_kb, used_kb, message_count, usage_source, collected_at) FROM STDIN",
        )
        .await?;

    // Every row has the same collection time, so it is formatted once.
    let collected_at = snapshot
        .collected_at
        .to_rfc3339_opts(SecondsFormat::Micros, true);
    let mut buffer = String::with_capacity(COPY_CHUNK_BYTES + 1024);
    for domain in &snapshot.domains {
        let domain_name = domain.name.to_lowercase();
        let domain_id = domain_ids[&domain_name];
        for account in &domain.accounts {
            let lowered = account.name.to_lowercase();
            let row = CopyRow {
                server_id,
                domain_id,
                local_part: &lowered,
                display_local_part: (account.name != lowered).then_some(account.name.as_str()),
                domain: &domain_name,
                // Axigen shows an unlimited quota as 0 or not at all; both
                // are stored as NULL so that no report divides by zero.
                quota_kb: account.quota_kb.filter(|quota| *quota > 0),
                used_kb: account.used_kb,
                message_count: account.message_count,
                usage_source: account.usage_source.as_str(),
                collected_at: &collected_at,
            };
            row.write_to(&mut buffer);
            if buffer.len() >= COPY_CHUNK_BYTES {
                copy.send(buffer.as_bytes()).await?;
                buffer.clear();
            }
        }
    }
    if !buffer.is_empty() {
        copy.send(buffer.as_bytes()).await?;
    }
    let rows = copy.finish().await?;
    Ok(usize::try_from(rows).unwrap_or(usize::MAX))
}

/// One account row in the column order of the COPY statement.
struct CopyRow<'a> {
    server_id: Uuid,
    domain_id: i64,
    local_part: &'a str,
    display_local_part: Option<&'a str>,
    domain: &'a str,
    quota_kb: Option<i64>,
    used_kb: i64,
    message_count: Option<i64>,
    usage_source: &'a str,
    collected_at: &'a str,
}

impl CopyRow<'_> {
    /// Appends the row as one line of COPY text format: tab-separated
    /// columns, `\N` for NULL, ending in a newline.
    fn write_to(&self, out: &mut String) {
        // Writing to a String cannot fail.
        let _ = write!(out, "{}\t{}\t", self.server_id, self.domain_id);
        push_text(out, self.local_part);
        out.push('\t');
        match self.display_local_part {
            Some(name) => push_text(out, name),
            None => out.push_str("\\N"),
        }
        out.push('\t');
        push_text(out, self.local_part);
        out.push('@');
        push_text(out, self.domain);
        out.push('\t');
        push_optional_number(out, self.quota_kb);
        let _ = write!(out, "\t{}\t", self.used_kb);
        push_optional_number(out, self.message_count);
        out.push('\t');
        out.push_str(self.usage_source);
        out.push('\t');
        out.push_str(self.collected_at);
        out.push('\n');
    }
}

/// Appends `value` escaped for COPY text format, where a backslash starts
/// an escape and tab, newline and carriage return end a column or row.
fn push_text(out: &mut String, value: &str) {
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            other => out.push(other),
        }
    }
}

fn push_optional_number(out: &mut String, value: Option<i64>) {
    match value {
        Some(number) => {
            let _ = write!(out, "{number}");
        }
        None => out.push_str("\\N"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copy_text_escapes_separators_and_backslashes() {
        let mut out = String::new();
        push_text(&mut out, "a\tb\nc\rd\\e\u{e9}");
        assert_eq!(out, "a\\tb\\nc\\rd\\\\e\u{e9}");
    }

    #[test]
    fn copy_row_writes_nulls_and_columns_in_order() {
        let server_id = Uuid::nil();
        let row = CopyRow {
            server_id,
            domain_id: 7,
            local_part: "alice",
            display_local_part: None,
            domain: "example.com",
            quota_kb: None,
            used_kb: 0,
            message_count: Some(3),
            usage_source: "cli",
            collected_at: "2026-12-04T19:00:00.000000Z",
        };
        let mut out = String::new();
        row.write_to(&mut out);
        assert_eq!(
            out,
            "00000000-0000-0000-0000-000000000000\t7\talice\t\\N\talice@example.com\t\\N\t0\t3\tcli\t2026-12-04T19:00:00.000000Z\n"
        );
    }
}

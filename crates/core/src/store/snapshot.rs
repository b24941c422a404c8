//! Writing a server's snapshot: its domains and accounts replace the
//! previous ones, inside a transaction that the caller owns.

use std::collections::HashMap;

use sqlx::PgConnection;
use uuid::Uuid;

use crate::model::Snapshot;

/// Rows written by [`replace_snapshot`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WriteCounts {
    pub domains: usize,
    pub accounts: usize,
}

/// Replaces the domains and accounts of one server with `snapshot`, using
/// two deletes and one bulk insert per table, whatever the size.
///
/// Run it inside a transaction: on any error the caller drops the
/// transaction and the previous snapshot stays as it was.
///
/// # Errors
///
/// Database errors, including a unique violation when the snapshot lists
/// the same domain, or the same account in one domain, twice in different
/// letter case.
pub async fn replace_snapshot(
    conn: &mut PgConnection,
    server_id: Uuid,
    snapshot: &Snapshot,
) -> sqlx::Result<WriteCounts> {
    // Accounts go first: deleting domains alone would cascade to accounts
    // one row at a time.
    sqlx::query("DELETE FROM accounts WHERE server_id = $1")
        .bind(server_id)
        .execute(&mut *conn)
        .await?;
    sqlx::query("DELETE FROM domains WHERE server_id = $1")
        .bind(server_id)
        .execute(&mut *conn)
        .await?;

    let domain_ids = insert_domains(conn, server_id, snapshot).await?;
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

async fn insert_domains(
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

async fn insert_accounts(
    conn: &mut PgConnection,
    server_id: Uuid,
    snapshot: &Snapshot,
    domain_ids: &HashMap<String, i64>,
) -> sqlx::Result<usize> {
    let count = snapshot.account_count();
    let mut domain_column = Vec::with_capacity(count);
    let mut local_parts = Vec::with_capacity(count);
    let mut display_local_parts = Vec::with_capacity(count);
    let mut emails = Vec::with_capacity(count);
    let mut quotas = Vec::with_capacity(count);
    let mut used = Vec::with_capacity(count);
    let mut message_counts = Vec::with_capacity(count);
    let mut sources = Vec::with_capacity(count);

    for domain in &snapshot.domains {
        let domain_name = domain.name.to_lowercase();
        let domain_id = domain_ids[&domain_name];
        for account in &domain.accounts {
            let lowered = account.name.to_lowercase();
            emails.push(format!("{lowered}@{domain_name}"));
            display_local_parts.push(display_form(&account.name, &lowered));
            local_parts.push(lowered);
            domain_column.push(domain_id);
            // Axigen shows an unlimited quota as 0 or not at all; both are
            // stored as NULL so that no report divides by zero.
            quotas.push(account.quota_kb.filter(|quota| *quota > 0));
            used.push(account.used_kb);
            message_counts.push(account.message_count);
            sources.push(account.usage_source.as_str());
        }
    }

    let result = sqlx::query(
        "INSERT INTO accounts (server_id, domain_id, local_part, display_local_part, email, \
         quota_kb, used_kb, message_count, usage_source, collected_at) \
         SELECT $1, domain_id, local_part, display_local_part, email, quota_kb, used_kb, \
         message_count, usage_source, $10 \
         FROM UNNEST($2::bigint[], $3::text[], $4::text[], $5::text[], $6::bigint[], \
         $7::bigint[], $8::bigint[], $9::text[]) \
         AS a (domain_id, local_part, display_local_part, email, quota_kb, used_kb, \
         message_count, usage_source)",
    )
    .bind(server_id)
    .bind(&domain_column)
    .bind(&local_parts)
    .bind(&display_local_parts)
    .bind(&emails)
    .bind(&quotas)
    .bind(&used)
    .bind(&message_counts)
    .bind(&sources)
    .bind(snapshot.collected_at)
    .execute(&mut *conn)
    .await?;
    Ok(usize::try_from(result.rows_affected()).unwrap_or(usize::MAX))
}

//! Reads behind the reports and listings of the API. Every function runs a
//! fixed number of statements whatever the number of servers, domains or
//! accounts, and the full report is a single streamed statement.

use chrono::{DateTime, Utc};
use futures::Stream;
use sqlx::{AssertSqlSafe, PgConnection, PgPool};
use uuid::Uuid;

use crate::model::Server;

/// One row of the full report: a server, optionally one of its domains and
/// optionally one account of that domain. A server without domains yields
/// one row with every domain and account column `None`; a domain without
/// accounts yields one row with every account column `None`.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct ReportRow {
    pub server_id: Uuid,
    pub server_name: String,
    pub server_hostname: String,
    pub cli_port: i32,
    pub webadmin_port: i32,
    pub domain_id: Option<i64>,
    /// Domain name in lower case.
    pub domain: Option<String>,
    pub domain_display_name: Option<String>,
    pub domain_status: Option<String>,
    pub domain_collected_at: Option<DateTime<Utc>>,
    pub local_part: Option<String>,
    pub display_local_part: Option<String>,
    pub email: Option<String>,
    pub quota_kb: Option<i64>,
    pub used_kb: Option<i64>,
    pub message_count: Option<i64>,
    pub usage_source: Option<String>,
    pub collected_at: Option<DateTime<Utc>>,
}

/// Streams the whole current snapshot of every server, ordered by server
/// (name, then host name), domain and local part, so that a caller can
/// write nested output row by row without holding it in memory.
///
/// This is one statement: PostgreSQL sends the rows as they are produced
/// and sqlx reads them from the socket as the stream is polled, so memory
/// stays bounded by the socket buffers, not by the number of accounts.
/// `server_hostname` limits the report to one server (any letter case).
pub fn stream_full_report(
    conn: &mut PgConnection,
    server_hostname: Option<String>,
) -> impl Stream<Item = sqlx::Result<ReportRow>> + '_ {
    sqlx::query_as::<_, ReportRow>(
        "SELECT s.id AS server_id, s.name AS server_name, s.hostname AS server_hostname, \
         s.cli_port, s.webadmin_port, \
         d.id AS domain_id, d.name AS domain, d.display_name AS domain_display_name, \
         d.status AS domain_status, d.collected_at AS domain_collected_at, \
         a.local_part, a.display_local_part, a.email, a.quota_kb, a.used_kb, \
         a.message_count, a.usage_source, a.collected_at \
         FROM servers s \
         LEFT JOIN domains d ON d.server_id = s.id \
         LEFT JOIN accounts a ON a.domain_id = d.id \
         WHERE $1::text IS NULL OR lower(s.hostname) = lower($1) \
         ORDER BY s.name, lower(s.hostname), s.id, d.name, a.local_part",
    )
    .bind(server_hostname)
    .fetch(conn)
}

/// One account with the server and domain that contain it.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct AccountRow {
    pub server_id: Uuid,
    pub server_name: String,
    pub server_hostname: String,
    /// Domain name in lower case.
    pub domain: String,
    pub domain_display_name: Option<String>,
    pub local_part: String,
    pub display_local_part: Option<String>,
    /// Full address in lower case.
    pub email: String,
    pub quota_kb: Option<i64>,
    pub used_kb: i64,
    pub message_count: Option<i64>,
    pub usage_source: String,
    pub collected_at: DateTime<Utc>,
}

/// The columns of [`AccountRow`] over `accounts a`, `domains d`, `servers s`.
macro_rules! account_columns {
    () => {
        "s.id AS server_id, s.name AS server_name, s.hostname AS server_hostname, \
         d.name AS domain, d.display_name AS domain_display_name, \
         a.local_part, a.display_local_part, a.email, a.quota_kb, a.used_kb, \
         a.message_count, a.usage_source, a.collected_at"
    };
}

/// The start of a domain lookup by name in any spelling (`$1`), without
/// an order.
macro_rules! domain_lookup {
    () => {
        "SELECT d.id AS domain_id, s.id AS server_id, s.name AS server_name, \
         s.hostname AS server_hostname, d.name, d.display_name, d.status, d.collected_at \
         FROM domains d JOIN servers s ON s.id = d.server_id \
         WHERE d.name = ANY(ARRAY(SELECT lower(v) FROM unnest($1::text[]) v))"
    };
}

/// The start of an account lookup by address in any spelling (`$1`),
/// without an order.
macro_rules! account_lookup {
    () => {
        concat!(
            "SELECT ",
            account_columns!(),
            " FROM accounts a JOIN domains d ON d.id = a.domain_id \
             JOIN servers s ON s.id = a.server_id \
             WHERE a.email = ANY(ARRAY(SELECT lower(v) FROM unnest($1::text[]) v))"
        )
    };
}

// The lookups with and without a server are separate statements. One
// statement with `($2 IS NULL OR lower(s.hostname) = lower($2))` made the
// generic plan, which PostgreSQL may use from a prepared statement's sixth
// run on, start from the servers and scan every server's accounts.

/// Accounts by address on every server.
const ACCOUNT_LOOKUP: &str = concat!(account_lookup!(), " ORDER BY s.name, lower(s.hostname)");

/// Accounts by address on the server with host name `$2`.
const ACCOUNT_LOOKUP_ON_SERVER: &str = concat!(
    account_lookup!(),
    " AND lower(s.hostname) = lower($2) ORDER BY s.name, lower(s.hostname)"
);

/// One domain with the server that hosts it.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct DomainRow {
    pub domain_id: i64,
    pub server_id: Uuid,
    pub server_name: String,
    pub server_hostname: String,
    /// Domain name in lower case.
    pub name: String,
    pub display_name: Option<String>,
    pub status: String,
    pub collected_at: DateTime<Utc>,
}

/// Finds a domain by name (exact, any letter case, in Unicode or in
/// punycode) on every server, or on the server with host name
/// `server_hostname` only.
///
/// # Errors
///
/// Database errors.
pub async fn find_domains(
    pool: &PgPool,
    name: &str,
    server_hostname: Option<&str>,
) -> sqlx::Result<Vec<DomainRow>> {
    let query = match server_hostname {
        None => concat!(domain_lookup!(), " ORDER BY s.name, lower(s.hostname)"),
        Some(_) => concat!(
            domain_lookup!(),
            " AND lower(s.hostname) = lower($2) ORDER BY s.name, lower(s.hostname)"
        ),
    };
    let mut statement = sqlx::query_as::<_, DomainRow>(query).bind(domain_spellings(name));
    if let Some(hostname) = server_hostname {
        statement = statement.bind(hostname);
    }
    statement.fetch_all(pool).await
}

/// Returns the spellings under which a domain may be stored: as given, and
/// in the other form of an internationalised name (Unicode for a punycode
/// `xn--` name, punycode for a Unicode one), since a server may list either.
fn domain_spellings(domain: &str) -> Vec<String> {
    let mut spellings = vec![domain.to_owned()];
    let other = if domain.is_ascii() {
        let (unicode, result) = idna::domain_to_unicode(domain);
        result.ok().map(|()| unicode)
    } else {
        idna::domain_to_ascii(domain).ok()
    };
    if let Some(other) = other
        && !other.eq_ignore_ascii_case(domain)
    {
        spellings.push(other);
    }
    spellings
}

/// Streams the accounts of one domain row, ordered by local part, from one
/// statement.
pub fn stream_domain_accounts(
    conn: &mut PgConnection,
    domain_id: i64,
) -> impl Stream<Item = sqlx::Result<AccountRow>> + '_ {
    let query = concat!(
        "SELECT ",
        account_columns!(),
        " FROM accounts a JOIN domains d ON d.id = a.domain_id JOIN servers s ON s.id = a.server_id \
         WHERE a.domain_id = $1 ORDER BY a.local_part"
    );
    sqlx::query_as::<_, AccountRow>(query)
        .bind(domain_id)
        .fetch(conn)
}

/// Finds an account by address (exact, any letter case, its domain in
/// Unicode or in punycode) on every server, or on the server with host name
/// `server_hostname` only.
///
/// # Errors
///
/// Database errors.
pub async fn find_accounts(
    pool: &PgPool,
    email: &str,
    server_hostname: Option<&str>,
) -> sqlx::Result<Vec<AccountRow>> {
    let query = match server_hostname {
        None => ACCOUNT_LOOKUP,
        Some(_) => ACCOUNT_LOOKUP_ON_SERVER,
    };
    let spellings: Vec<String> = match email.rsplit_once('@') {
        Some((local_part, domain)) => domain_spellings(domain)
            .into_iter()
            .map(|domain| format!("{local_part}@{domain}"))
            .collect(),
        None => vec![email.to_owned()],
    };
    let mut statement = sqlx::query_as::<_, AccountRow>(query).bind(spellings);
    if let Some(hostname) = server_hostname {
        statement = statement.bind(hostname);
    }
    statement.fetch_all(pool).await
}

/// Filters of the flat account listing. `None` means "no filter".
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AccountFilter {
    /// Server host name, exact, any letter case.
    pub server_hostname: Option<String>,
    /// Domain name, exact, any letter case.
    pub domain: Option<String>,
    /// Full address, exact, any letter case.
    pub email: Option<String>,
    /// Text that the address contains, any letter case. Matched as plain
    /// text, so `%` and `_` have no special meaning.
    pub email_contains: Option<String>,
    /// Only accounts with a quota whose usage is at least this percentage.
    pub min_percent: Option<f64>,
    /// `Some(true)`: only accounts without a quota; `Some(false)`: only
    /// accounts with one.
    pub unlimited: Option<bool>,
}

/// Sort keys of the flat account listing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AccountSort {
    /// Usage as a share of the quota; accounts without a quota come last in
    /// both orders.
    #[default]
    PercentUsed,
    Used,
    /// Quota in KB; an unlimited quota sorts as the largest.
    Quota,
    Address,
}

/// Sort direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SortOrder {
    Asc,
    #[default]
    Desc,
}

impl SortOrder {
    fn sql(self) -> &'static str {
        match self {
            Self::Asc => "ASC",
            Self::Desc => "DESC",
        }
    }
}

/// A window of a listing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Page {
    pub limit: i64,
    pub offset: i64,
}

/// Rows of one page and the number of rows that match without paging.
#[derive(Debug, Clone, PartialEq)]
pub struct Listing<T> {
    pub total: i64,
    pub rows: Vec<T>,
}

/// The WHERE clause of the account listing over `accounts a`, `domains d`,
/// `servers s`, with parameters `$1` to `$6` in [`AccountFilter`] order.
const ACCOUNT_FILTER_SQL: &str = " WHERE ($1::text IS NULL OR lower(s.hostname) = lower($1)) \
     AND ($2::text IS NULL OR d.name = lower($2)) \
     AND ($3::text IS NULL OR a.email = lower($3)) \
     AND ($4::text IS NULL OR strpos(a.email, lower($4)) > 0) \
     AND ($5::float8 IS NULL OR (a.quota_kb IS NOT NULL \
          AND a.used_kb::float8 * 100 >= $5 * a.quota_kb::float8)) \
     AND ($6::bool IS NULL OR (a.quota_kb IS NULL) = $6)";

const ACCOUNT_FROM_SQL: &str = " FROM accounts a JOIN domains d ON d.id = a.domain_id \
     JOIN servers s ON s.id = a.server_id";

/// Lists accounts across servers with filters, a sort key and a page, plus
/// the number of accounts that match the filters. Two statements.
///
/// # Errors
///
/// Database errors.
pub async fn list_accounts(
    pool: &PgPool,
    filter: &AccountFilter,
    sort: AccountSort,
    order: SortOrder,
    page: Page,
) -> sqlx::Result<Listing<AccountRow>> {
    let direction = order.sql();
    // The ORDER BY is built from the enums above only, never from input text.
    let sort_sql = match sort {
        AccountSort::PercentUsed => format!(
            "CASE WHEN a.quota_kb IS NULL THEN NULL ELSE a.used_kb::float8 / a.quota_kb END \
             {direction} NULLS LAST"
        ),
        AccountSort::Used => format!("a.used_kb {direction}"),
        AccountSort::Quota => format!("a.quota_kb {direction}"),
        AccountSort::Address => format!("a.email {direction}"),
    };
    let select = format!(
        "SELECT {}{ACCOUNT_FROM_SQL}{ACCOUNT_FILTER_SQL} \
         ORDER BY {sort_sql}, a.email, lower(s.hostname) LIMIT $7 OFFSET $8",
        account_columns!()
    );
    let rows = bind_account_filter(
        sqlx::query_as::<_, AccountRow>(AssertSqlSafe(select)),
        filter,
    )
    .bind(page.limit)
    .bind(page.offset)
    .fetch_all(pool)
    .await?;

    let count = format!("SELECT count(*){ACCOUNT_FROM_SQL}{ACCOUNT_FILTER_SQL}");
    let total: i64 = bind_account_filter_scalar(sqlx::query_scalar(AssertSqlSafe(count)), filter)
        .fetch_one(pool)
        .await?;
    Ok(Listing { total, rows })
}

type QueryAs<'q, T> = sqlx::query::QueryAs<'q, sqlx::Postgres, T, sqlx::postgres::PgArguments>;
type QueryScalar<'q, T> =
    sqlx::query::QueryScalar<'q, sqlx::Postgres, T, sqlx::postgres::PgArguments>;

fn bind_account_filter<'q, T>(query: QueryAs<'q, T>, filter: &'q AccountFilter) -> QueryAs<'q, T> {
    query
        .bind(filter.server_hostname.as_deref())
        .bind(filter.domain.as_deref())
        .bind(filter.email.as_deref())
        .bind(filter.email_contains.as_deref())
        .bind(filter.min_percent)
        .bind(filter.unlimited)
}

fn bind_account_filter_scalar<'q, T>(
    query: QueryScalar<'q, T>,
    filter: &'q AccountFilter,
) -> QueryScalar<'q, T> {
    query
        .bind(filter.server_hostname.as_deref())
        .bind(filter.domain.as_deref())
        .bind(filter.email.as_deref())
        .bind(filter.email_contains.as_deref())
        .bind(filter.min_percent)
        .bind(filter.unlimited)
}

/// Filters of the per-domain aggregates.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DomainFilter {
    /// Server host name, exact, any letter case.
    pub server_hostname: Option<String>,
    /// Domain name, exact, any letter case.
    pub domain: Option<String>,
}

/// Sort keys of the per-domain aggregates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DomainSort {
    #[default]
    Name,
    Accounts,
    Used,
    Allocated,
    OverThreshold,
}

/// Totals of one domain.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct DomainAggregate {
    pub server_id: Uuid,
    pub server_name: String,
    pub server_hostname: String,
    /// Domain name in lower case.
    pub name: String,
    pub display_name: Option<String>,
    pub status: String,
    pub collected_at: DateTime<Utc>,
    pub accounts: i64,
    /// Sum of mailbox sizes in KB.
    pub used_kb: i64,
    /// Sum of the quotas in KB of the accounts that have one.
    pub allocated_kb: i64,
    pub unlimited_accounts: i64,
    /// Accounts with a quota whose usage is at least the threshold.
    pub accounts_over_threshold: i64,
}

const DOMAIN_FILTER_SQL: &str = " WHERE ($1::text IS NULL OR lower(s.hostname) = lower($1)) \
     AND ($2::text IS NULL OR d.name = lower($2))";

/// Lists per-domain totals with filters, a sort key and a page (`None`
/// for every domain), plus the number of domains that match. Accounts over
/// `threshold_percent` are counted per domain. Two statements.
///
/// # Errors
///
/// Database errors.
pub async fn list_domain_aggregates(
    pool: &PgPool,
    filter: &DomainFilter,
    threshold_percent: f64,
    sort: DomainSort,
    order: SortOrder,
    page: Option<Page>,
) -> sqlx::Result<Listing<DomainAggregate>> {
    let direction = order.sql();
    let sort_sql = match sort {
        DomainSort::Name => format!("d.name {direction}"),
        DomainSort::Accounts => format!("accounts {direction}"),
        DomainSort::Used => format!("used_kb {direction}"),
        DomainSort::Allocated => format!("allocated_kb {direction}"),
        DomainSort::OverThreshold => format!("accounts_over_threshold {direction}"),
    };
    let select = format!(
        "SELECT s.id AS server_id, s.name AS server_name, s.hostname AS server_hostname, \
         d.name, d.display_name, d.status, d.collected_at, \
         count(a.domain_id) AS accounts, \
         coalesce(sum(a.used_kb), 0)::bigint AS used_kb, \
         coalesce(sum(a.quota_kb), 0)::bigint AS allocated_kb, \
         count(a.domain_id) FILTER (WHERE a.quota_kb IS NULL) AS unlimited_accounts, \
         count(a.domain_id) FILTER (WHERE a.quota_kb IS NOT NULL \
             AND a.used_kb::float8 * 100 >= $3 * a.quota_kb::float8) AS accounts_over_threshold \
         FROM domains d JOIN servers s ON s.id = d.server_id \
         LEFT JOIN accounts a ON a.domain_id = d.id{DOMAIN_FILTER_SQL} \
         GROUP BY d.id, s.id \
         ORDER BY {sort_sql}, d.name, s.name, lower(s.hostname) LIMIT $4 OFFSET $5"
    );
    let page = page.unwrap_or(Page {
        limit: i64::MAX,
        offset: 0,
    });
    let rows = sqlx::query_as::<_, DomainAggregate>(AssertSqlSafe(select))
        .bind(filter.server_hostname.as_deref())
        .bind(filter.domain.as_deref())
        .bind(threshold_percent)
        .bind(page.limit)
        .bind(page.offset)
        .fetch_all(pool)
        .await?;

    let count = format!(
        "SELECT count(*) FROM domains d JOIN servers s ON s.id = d.server_id{DOMAIN_FILTER_SQL}"
    );
    let total: i64 = sqlx::query_scalar(AssertSqlSafe(count))
        .bind(filter.server_hostname.as_deref())
        .bind(filter.domain.as_deref())
        .fetch_one(pool)
        .await?;
    Ok(Listing { total, rows })
}

/// Totals over every server.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct Totals {
    pub servers: i64,
    /// Servers that have at least one domain stored.
    pub servers_with_snapshot: i64,
    /// Servers whose latest poll result is `failed`.
    pub servers_failing: i64,
    pub domains: i64,
    pub accounts: i64,
    pub used_kb: i64,
    pub allocated_kb: i64,
    pub unlimited_accounts: i64,
    pub accounts_over_threshold: i64,
    /// The oldest and newest collection times among the stored snapshots.
    pub oldest_collected_at: Option<DateTime<Utc>>,
    pub newest_collected_at: Option<DateTime<Utc>>,
}

/// The latest poller run.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct RunRow {
    pub id: Uuid,
    pub started_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    pub poller_host: String,
    pub dry_run: bool,
    pub servers_total: i32,
    pub servers_ok: i32,
    pub servers_failed: i32,
    pub servers_locked: i32,
}

/// Computes totals over every server, counting accounts whose usage is at
/// least `threshold_percent` of their quota. One statement.
///
/// # Errors
///
/// Database errors.
pub async fn totals(pool: &PgPool, threshold_percent: f64) -> sqlx::Result<Totals> {
    sqlx::query_as::<_, Totals>(
        "SELECT \
         (SELECT count(*) FROM servers) AS servers, \
         (SELECT count(DISTINCT server_id) FROM domains) AS servers_with_snapshot, \
         (SELECT count(*) FROM servers s WHERE (SELECT r.status FROM poll_results r \
             WHERE r.server_id = s.id ORDER BY r.started_at DESC, r.id DESC LIMIT 1) = 'failed') \
             AS servers_failing, \
         (SELECT count(*) FROM domains) AS domains, \
         count(a.domain_id) AS accounts, \
         coalesce(sum(a.used_kb), 0)::bigint AS used_kb, \
         coalesce(sum(a.quota_kb), 0)::bigint AS allocated_kb, \
         count(a.domain_id) FILTER (WHERE a.quota_kb IS NULL) AS unlimited_accounts, \
         count(a.domain_id) FILTER (WHERE a.quota_kb IS NOT NULL \
             AND a.used_kb::float8 * 100 >= $1 * a.quota_kb::float8) AS accounts_over_threshold, \
         (SELECT min(collected_at) FROM domains) AS oldest_collected_at, \
         (SELECT max(collected_at) FROM domains) AS newest_collected_at \
         FROM accounts a",
    )
    .bind(threshold_percent)
    .fetch_one(pool)
    .await
}

/// Returns the latest poller run, if any.
///
/// # Errors
///
/// Database errors.
pub async fn latest_run(pool: &PgPool) -> sqlx::Result<Option<RunRow>> {
    sqlx::query_as::<_, RunRow>(
        "SELECT id, started_at, finished_at, poller_host, dry_run, servers_total, servers_ok, \
         servers_failed, servers_locked FROM poll_runs ORDER BY started_at DESC, id LIMIT 1",
    )
    .fetch_optional(pool)
    .await
}

/// A registered server with its latest poll outcome and its stored snapshot
/// sizes.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct ServerStatus {
    #[sqlx(flatten)]
    pub server: Server,
    /// When the latest poll of this server started, and how it ended.
    pub last_poll_at: Option<DateTime<Utc>>,
    pub last_poll_status: Option<String>,
    pub last_poll_error: Option<String>,
    pub last_poll_duration_ms: Option<i64>,
    pub last_poll_usage_source: Option<String>,
    pub last_poll_webadmin_error: Option<String>,
    /// Domains and accounts the latest poll skipped because they vanished
    /// between listing and reading, and the JSON array that names them.
    pub last_poll_skipped: Option<i32>,
    pub last_poll_skipped_items: Option<String>,
    /// When the latest successful poll started.
    pub last_success_at: Option<DateTime<Utc>>,
    /// When the stored snapshot was collected; `None` without a snapshot.
    pub collected_at: Option<DateTime<Utc>>,
    pub domains: i64,
    pub accounts: i64,
    pub used_kb: i64,
}

/// The query of [`ServerStatus`] rows without its filter and order, as a
/// literal so that queries stay `&'static str`.
macro_rules! server_status_select {
    () => {
        "SELECT s.id, s.name, s.hostname, s.cli_port, s.webadmin_port, s.username, s.cli_tls, \
         s.tls_verify, s.tls_fingerprints, s.webadmin_enabled, s.webadmin_allow_http, \
         s.created_at, s.updated_at, \
         last.started_at AS last_poll_at, last.status AS last_poll_status, \
         last.error AS last_poll_error, last.duration_ms AS last_poll_duration_ms, \
         last.usage_source AS last_poll_usage_source, \
         last.webadmin_error AS last_poll_webadmin_error, \
         last.skipped AS last_poll_skipped, last.skipped_items::text AS last_poll_skipped_items, \
         ok.started_at AS last_success_at, \
         snap.collected_at, snap.domains, acc.accounts, acc.used_kb \
         FROM servers s \
         LEFT JOIN LATERAL (SELECT r.started_at, r.status, r.error, r.duration_ms, \
             r.usage_source, r.webadmin_error, r.skipped, r.skipped_items \
             FROM poll_results r WHERE r.server_id = s.id \
             ORDER BY r.started_at DESC, r.id DESC LIMIT 1) last ON true \
         LEFT JOIN LATERAL (SELECT max(r.started_at) AS started_at FROM poll_results r \
             WHERE r.server_id = s.id AND r.status = 'ok') ok ON true \
         LEFT JOIN LATERAL (SELECT max(d.collected_at) AS collected_at, count(*) AS domains \
             FROM domains d WHERE d.server_id = s.id) snap ON true \
         LEFT JOIN LATERAL (SELECT count(*) AS accounts, \
             coalesce(sum(a.used_kb), 0)::bigint AS used_kb \
             FROM accounts a WHERE a.server_id = s.id) acc ON true"
    };
}

/// Lists every server with its latest poll outcome and snapshot sizes,
/// ordered by name and then host name. One statement.
///
/// # Errors
///
/// Database errors.
pub async fn list_server_status(pool: &PgPool) -> sqlx::Result<Vec<ServerStatus>> {
    let query = concat!(
        server_status_select!(),
        " ORDER BY s.name, lower(s.hostname)"
    );
    sqlx::query_as::<_, ServerStatus>(query)
        .fetch_all(pool)
        .await
}

/// Returns one server with its latest poll outcome and snapshot sizes, or
/// `None` when no server has this id.
///
/// # Errors
///
/// Database errors.
pub async fn server_status(pool: &PgPool, server_id: Uuid) -> sqlx::Result<Option<ServerStatus>> {
    let query = concat!(server_status_select!(), " WHERE s.id = $1");
    sqlx::query_as::<_, ServerStatus>(query)
        .bind(server_id)
        .fetch_optional(pool)
        .await
}

/// Checks that the database responds to a trivial statement.
///
/// # Errors
///
/// Database errors, including a pool timeout.
pub async fn ping(pool: &PgPool) -> sqlx::Result<()> {
    sqlx::query("SELECT 1").execute(pool).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use sqlx::{AssertSqlSafe, PgPool};

    use super::{ACCOUNT_LOOKUP, ACCOUNT_LOOKUP_ON_SERVER, domain_spellings};

    /// Stores 20 servers of 4 domains with 250 accounts each and analyses
    /// them, so that the planner's estimates match a real snapshot.
    async fn seed_accounts(pool: &PgPool) {
        sqlx::raw_sql(
            "INSERT INTO servers (name, hostname, username, password_encrypted) \
             SELECT 'server' || i, 'mail' || i || '.example', 'admin', 'x' \
             FROM generate_series(1, 20) i; \
             INSERT INTO domains (server_id, name, status, collected_at) \
             SELECT s.id, 'd' || j || '-' || s.name || '.example', 'enabled', now() \
             FROM servers s, generate_series(1, 4) j; \
             INSERT INTO accounts (server_id, domain_id, local_part, email, used_kb, \
             usage_source, collected_at) \
             SELECT d.server_id, d.id, 'user' || k, 'user' || k || '@' || d.name, 1, 'cli', now() \
             FROM domains d, generate_series(1, 250) k; \
             ANALYZE;",
        )
        .execute(pool)
        .await
        .expect("seed accounts");
    }

    /// Returns the generic plan of `query` run with `arguments`, as
    /// PostgreSQL may use for a prepared statement from its sixth run on.
    async fn generic_plan(
        pool: &PgPool,
        name: &str,
        query: &str,
        types: &str,
        arguments: &str,
    ) -> String {
        let mut connection = pool.acquire().await.expect("connection");
        sqlx::raw_sql("SET plan_cache_mode = force_generic_plan")
            .execute(&mut *connection)
            .await
            .expect("set plan cache mode");
        sqlx::raw_sql(AssertSqlSafe(format!(
            "PREPARE {name} ({types}) AS {query}"
        )))
        .execute(&mut *connection)
        .await
        .expect("prepare");
        let lines: Vec<String> = sqlx::query_scalar(AssertSqlSafe(format!(
            "EXPLAIN EXECUTE {name} ({arguments})"
        )))
        .fetch_all(&mut *connection)
        .await
        .expect("explain");
        lines.join("\n")
    }

    #[sqlx::test(migrations = "../../migrations")]
    async fn account_lookup_plan_uses_address_index(pool: PgPool) {
        seed_accounts(&pool).await;

        let plan = generic_plan(
            &pool,
            "lookup_everywhere",
            ACCOUNT_LOOKUP,
            "text[]",
            "ARRAY['user7@d2-server5.example']",
        )
        .await;
        assert!(plan.contains("accounts_email_idx"), "{plan}");
        assert!(!plan.contains("accounts_server_id_idx"), "{plan}");

        let plan = generic_plan(
            &pool,
            "lookup_on_server",
            ACCOUNT_LOOKUP_ON_SERVER,
            "text[], text",
            "ARRAY['user7@d2-server5.example'], 'mail5.example'",
        )
        .await;
        assert!(plan.contains("accounts_email_idx"), "{plan}");
    }

    #[test]
    fn domain_spellings_cover_both_idn_forms() {
        assert_eq!(
            domain_spellings("xn--bcher-kva.example"),
            ["xn--bcher-kva.example", "bücher.example"]
        );
        assert_eq!(
            domain_spellings("Bücher.example"),
            ["Bücher.example", "xn--bcher-kva.example"]
        );
        assert_eq!(domain_spellings("example.com"), ["example.com"]);
        // A name that is not a valid IDN is looked up as given only.
        assert_eq!(domain_spellings("xn--zz.example"), ["xn--zz.example"]);
    }
}

//! The migrator binary against real PostgreSQL databases.

use std::process::{Command, Output};

use sqlx::PgPool;

/// Builds a URL for the test's own database from DATABASE_URL, which points
/// at the server that `#[sqlx::test]` created it on.
fn database_url(pool: &PgPool) -> String {
    let base = std::env::var("DATABASE_URL").expect("DATABASE_URL is set for sqlx::test");
    let database = pool.connect_options().get_database().unwrap().to_owned();
    let without_query = base.split('?').next().unwrap();
    let server = without_query.rsplit_once('/').unwrap().0;
    format!("{server}/{database}")
}

fn migrator(args: &[&str], database_url: Option<&str>) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_migrator"));
    command
        .args(args)
        .env_remove("DATABASE_URL")
        .env_remove("FERNET_KEY");
    // Run where no .env file can change the outcome.
    command.current_dir(env!("CARGO_TARGET_TMPDIR"));
    if let Some(url) = database_url {
        command.env("DATABASE_URL", url);
    }
    command.output().expect("migrator runs")
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// A textual description of the schema: tables, columns, constraints,
/// indexes and comments, sorted so that two descriptions compare equal
/// exactly when the schemas are the same.
async fn describe_schema(pool: &PgPool) -> Vec<String> {
    sqlx::query_scalar(
        "SELECT 'column ' || table_name || '.' || column_name || ' ' || data_type || ' ' \
                || is_nullable || ' ' || coalesce(column_default, '') \
         FROM information_schema.columns WHERE table_schema = 'public' \
         UNION ALL \
         SELECT 'constraint ' || conrelid::regclass || ' ' || conname || ' ' \
                || pg_get_constraintdef(oid) \
         FROM pg_constraint WHERE connamespace = 'public'::regnamespace \
         UNION ALL \
         SELECT 'index ' || indexdef FROM pg_indexes WHERE schemaname = 'public' \
         UNION ALL \
         SELECT 'comment ' || c.relname || '.' || coalesce(a.attname, '') || ' ' || d.description \
         FROM pg_description d JOIN pg_class c ON c.oid = d.objoid \
         LEFT JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = d.objsubid \
         WHERE c.relnamespace = 'public'::regnamespace \
         ORDER BY 1",
    )
    .fetch_all(pool)
    .await
    .unwrap()
}

#[sqlx::test(migrations = false)]
async fn second_run_changes_nothing(pool: PgPool) {
    let url = database_url(&pool);

    let first = migrator(&["run"], Some(&url));
    assert!(first.status.success(), "{}", stderr(&first));
    assert!(
        stdout(&first).contains("applied 20261204000001 create servers"),
        "{}",
        stdout(&first)
    );
    let schema_after_first = describe_schema(&pool).await;
    assert!(
        schema_after_first
            .iter()
            .any(|line| line.starts_with("column accounts.quota_kb"))
    );

    let second = migrator(&[], Some(&url));
    assert!(second.status.success(), "{}", stderr(&second));
    assert!(
        stdout(&second).contains("up to date"),
        "{}",
        stdout(&second)
    );
    assert_eq!(describe_schema(&pool).await, schema_after_first);
}

#[sqlx::test(migrations = false)]
async fn every_column_has_a_comment(pool: PgPool) {
    let url = database_url(&pool);
    let output = migrator(&["run"], Some(&url));
    assert!(output.status.success(), "{}", stderr(&output));

    let uncommented: Vec<String> = sqlx::query_scalar(
        "SELECT c.relname || '.' || a.attname FROM pg_attribute a \
         JOIN pg_class c ON c.oid = a.attrelid \
         WHERE c.relnamespace = 'public'::regnamespace AND c.relkind = 'r' \
           AND c.relname <> '_sqlx_migrations' AND a.attnum > 0 AND NOT a.attisdropped \
           AND col_description(c.oid, a.attnum) IS NULL",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(uncommented, Vec::<String>::new());
}

#[sqlx::test(migrations = false)]
async fn status_lists_pending_then_applied(pool: PgPool) {
    let url = database_url(&pool);
    let before = migrator(&["status"], Some(&url));
    assert!(before.status.success(), "{}", stderr(&before));
    assert!(
        stdout(&before).starts_with("pending"),
        "{}",
        stdout(&before)
    );

    assert!(migrator(&["run"], Some(&url)).status.success());
    let after = migrator(&["status"], Some(&url));
    assert!(!stdout(&after).contains("pending"), "{}", stdout(&after));
    assert_eq!(
        stdout(&after).lines().count(),
        axiquota_core::store::MIGRATOR.iter().count()
    );
}

#[test]
fn missing_database_url_names_variable() {
    let output = migrator(&["run"], None);
    assert_eq!(output.status.code(), Some(1));
    let message = stderr(&output);
    assert!(message.contains("DATABASE_URL is not set"), "{message}");
}

#[test]
fn unreachable_database_fails_with_target() {
    // Port 1 on loopback has no listener, so the connection is refused at once.
    let output = migrator(
        &["run", "--database-connect-timeout", "2"],
        Some("postgres://someone:topsecret@127.0.0.1:1/nowhere"),
    );
    assert_eq!(output.status.code(), Some(1));
    let message = stderr(&output);
    assert!(
        message.contains("cannot connect to PostgreSQL at 127.0.0.1:1/nowhere"),
        "{message}"
    );
    assert!(!message.contains("topsecret"), "{message}");
}

#[test]
fn invalid_database_url_is_explained() {
    let output = migrator(&["run"], Some("mysql://root:topsecret@localhost/db"));
    assert_eq!(output.status.code(), Some(1));
    let message = stderr(&output);
    assert!(message.contains("invalid DATABASE_URL"), "{message}");
    assert!(!message.contains("topsecret"), "{message}");
}

#[test]
fn generate_key_prints_usable_key() {
    let output = migrator(&["generate-key"], None);
    assert!(output.status.success());
    let key = stdout(&output).trim().to_owned();
    assert_eq!(key.len(), 44);
    let vault = axiquota_core::Vault::from_keys(&axiquota_core::Secret::new(key)).unwrap();
    assert_eq!(vault.key_count(), 1);
}

#[test]
fn rotate_key_without_key_names_variable() {
    let output = migrator(&["rotate-key"], Some("postgres://postgres@127.0.0.1:1/x"));
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output).contains("FERNET_KEY is not set"),
        "{}",
        stderr(&output)
    );
}

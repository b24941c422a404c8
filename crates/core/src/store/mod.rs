//! All SQL of the project. Every function takes a pool or a transaction so
//! that callers decide where transactions begin and end.

pub mod polls;
pub mod report;
pub mod servers;
pub mod snapshot;

use sqlx::migrate::Migrator;

/// The migrations in `migrations/` at the workspace root, embedded at build
/// time. `sqlx migrate run` applies the same files.
pub static MIGRATOR: Migrator = sqlx::migrate!("../../migrations");

/// Renders a database error for a log line or a message. sqlx's own text
/// never contains the connection password.
pub fn describe_sqlx_error(error: &sqlx::Error) -> String {
    match error {
        sqlx::Error::PoolTimedOut => "timed out waiting for a database connection".to_owned(),
        // An undefined table means the schema was never created here.
        sqlx::Error::Database(db) if db.code().as_deref() == Some("42P01") => format!(
            "{} (SQLSTATE 42P01); the database has no axiquota tables: run `migrator run` \
             against it first",
            db.message()
        ),
        sqlx::Error::Database(db) => match db.code() {
            Some(code) => format!("{} (SQLSTATE {code})", db.message()),
            None => db.message().to_owned(),
        },
        other => other.to_string(),
    }
}

/// Tells whether an error is a unique-constraint violation (SQLSTATE 23505).
pub fn is_unique_violation(error: &sqlx::Error) -> bool {
    matches!(error, sqlx::Error::Database(db) if db.code().as_deref() == Some("23505"))
}

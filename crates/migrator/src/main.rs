//! `migrator`: applies the database migrations, makes Fernet keys and
//! re-encrypts stored passwords after a key rotation.

use std::collections::HashSet;
use std::process::ExitCode;

use anyhow::Context;
use axiquota_core::config::{self, DatabaseArgs, LogArgs, VaultArgs};
use axiquota_core::store::{self, MIGRATOR, servers};
use axiquota_core::{Vault, telemetry};
use clap::{Parser, Subcommand};
use sqlx::PgPool;

/// Applies the axiquota database migrations and manages the key that
/// encrypts stored server passwords.
///
/// Exit codes: 0 on success, 1 on any error (the message names what failed).
#[derive(Parser, Debug)]
#[command(version, about, long_about)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,

    #[command(flatten)]
    database: DatabaseArgs,

    #[command(flatten)]
    log: LogArgs,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Apply every pending migration (the default). Running it again changes nothing
    Run,
    /// List the migrations and whether each is applied
    Status,
    /// Print a new random Fernet key for FERNET_KEY
    GenerateKey,
    /// Re-encrypt every stored server password with the first key of FERNET_KEY.
    /// To rotate: put the new key first and the old one after it, run this,
    /// then drop the old key
    RotateKey {
        #[command(flatten)]
        vault: VaultArgs,
    },
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli: Cli = config::parse_args();
    telemetry::init(cli.log.log_format, "warn");

    match run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command.unwrap_or(Command::Run) {
        Command::GenerateKey => {
            println!("{}", Vault::generate_key().expose());
            Ok(())
        }
        Command::Run => {
            let pool = cli.database.connect().await?;
            apply_migrations(&pool).await
        }
        Command::Status => {
            let pool = cli.database.connect().await?;
            print_status(&pool).await
        }
        Command::RotateKey { vault } => {
            let vault = vault.vault()?;
            let pool = cli.database.connect().await?;
            rotate_key(&pool, &vault).await
        }
    }
}

/// Versions recorded in sqlx's bookkeeping table, empty on a new database.
async fn applied_versions(pool: &PgPool) -> anyhow::Result<HashSet<i64>> {
    let table_exists: bool =
        sqlx::query_scalar("SELECT to_regclass('_sqlx_migrations') IS NOT NULL")
            .fetch_one(pool)
            .await
            .context("cannot read the migration state")?;
    if !table_exists {
        return Ok(HashSet::new());
    }
    let versions: Vec<i64> =
        sqlx::query_scalar("SELECT version FROM _sqlx_migrations WHERE success")
            .fetch_all(pool)
            .await
            .context("cannot read the migration state")?;
    Ok(versions.into_iter().collect())
}

async fn apply_migrations(pool: &PgPool) -> anyhow::Result<()> {
    let before = applied_versions(pool).await?;
    MIGRATOR.run(pool).await.map_err(|error| {
        anyhow::anyhow!(
            "applying migrations failed: {}",
            describe_migrate_error(&error)
        )
    })?;

    let mut applied = 0;
    for migration in MIGRATOR.iter() {
        if !before.contains(&migration.version) {
            println!("applied {} {}", migration.version, migration.description);
            applied += 1;
        }
    }
    if applied == 0 {
        println!(
            "database is up to date: all {} migrations were already applied",
            MIGRATOR.iter().count()
        );
    } else {
        println!("applied {applied} migrations");
    }
    Ok(())
}

fn describe_migrate_error(error: &sqlx::migrate::MigrateError) -> String {
    use sqlx::migrate::MigrateError;
    match error {
        MigrateError::VersionMismatch(version) => format!(
            "migration {version} was changed after it was applied; restore the original file \
             and add the change as a new migration"
        ),
        MigrateError::VersionMissing(version) => format!(
            "the database has migration {version}, which this build does not know; \
             run the migrator of the newer release"
        ),
        MigrateError::Execute(inner) | MigrateError::ExecuteMigration(inner, _) => {
            store::describe_sqlx_error(inner)
        }
        other => other.to_string(),
    }
}

async fn print_status(pool: &PgPool) -> anyhow::Result<()> {
    let applied = applied_versions(pool).await?;
    for migration in MIGRATOR.iter() {
        let state = if applied.contains(&migration.version) {
            "applied"
        } else {
            "pending"
        };
        println!("{state:8} {} {}", migration.version, migration.description);
    }
    Ok(())
}

async fn rotate_key(pool: &PgPool, vault: &Vault) -> anyhow::Result<()> {
    let report = servers::reencrypt_passwords(pool, vault).await?;
    println!(
        "re-encrypted {} of {} server passwords with the first key; {} already used it",
        report.reencrypted, report.total, report.already_current
    );
    Ok(())
}

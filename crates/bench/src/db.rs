//! The benchmark's own database: created fresh on the server that
//! `DATABASE_URL` names, migrated, and dropped at the end, so no other data
//! is read or changed.

use std::str::FromStr;

use anyhow::Context;
use axiquota_core::Secret;
use axiquota_core::Vault;
use axiquota_core::model::NewServer;
use axiquota_core::store::{self, servers};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{ConnectOptions, Connection, PgConnection, PgPool};

use crate::fake::FakeServer;

/// A database created for one benchmark run.
pub struct BenchDatabase {
    admin: PgConnectOptions,
    pub name: String,
    /// URL of the new database, for the child processes.
    pub url: String,
    pub pool: PgPool,
}

impl BenchDatabase {
    /// Creates and migrates a database named `axiquota_bench_<random>`.
    ///
    /// # Errors
    ///
    /// When `admin_url` is invalid, the server is unreachable or the role
    /// may not create databases.
    pub async fn create(admin_url: &str) -> anyhow::Result<Self> {
        let admin = PgConnectOptions::from_str(admin_url).context(
            "invalid DATABASE_URL: expected postgres://user[:password]@host[:port]/database",
        )?;
        let name = format!("axiquota_bench_{}", uuid::Uuid::new_v4().simple());
        let mut connection = admin
            .connect()
            .await
            .context("connecting to DATABASE_URL failed")?;
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&mut connection)
            .await
            .context("creating the benchmark database failed: the role needs CREATEDB")?;
        connection.close().await?;

        let options = admin.clone().database(&name);
        let url = options.to_url_lossy().to_string();
        let pool = PgPoolOptions::new()
            .max_connections(20)
            .connect_with(options)
            .await
            .context("connecting to the benchmark database failed")?;
        store::MIGRATOR
            .run(&pool)
            .await
            .context("migrating the benchmark database failed")?;
        Ok(Self {
            admin,
            name,
            url,
            pool,
        })
    }

    /// Drops the database.
    ///
    /// # Errors
    ///
    /// When the database cannot be dropped; it is then left behind under
    /// its name.
    pub async fn drop_database(self) -> anyhow::Result<()> {
        self.pool.close().await;
        let mut connection: PgConnection = self.admin.connect().await?;
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
            "DROP DATABASE IF EXISTS {} WITH (FORCE)",
            self.name
        )))
        .execute(&mut connection)
        .await
        .with_context(|| format!("dropping the benchmark database {} failed", self.name))?;
        Ok(())
    }
}

/// Registers the fleet's servers, or points the already registered ones at
/// the fleet's new ports.
///
/// # Errors
///
/// Database errors.
pub async fn register_fleet(
    pool: &PgPool,
    vault: &Vault,
    fleet: &[FakeServer],
) -> anyhow::Result<()> {
    for (index, server) in fleet.iter().enumerate() {
        let updated =
            sqlx::query("UPDATE servers SET cli_port = $2, webadmin_port = $3 WHERE hostname = $1")
                .bind(&server.host)
                .bind(i32::from(server.cli_port))
                .bind(i32::from(server.webadmin_port))
                .execute(pool)
                .await?;
        if updated.rows_affected() > 0 {
            continue;
        }
        let new_server = NewServer {
            name: format!("fake{:03}", index + 1),
            hostname: server.host.clone(),
            cli_port: server.cli_port,
            webadmin_port: server.webadmin_port,
            username: "admin".to_owned(),
            password: Secret::new("secret"),
            cli_tls: false,
            // The fake servers' certificates are self-signed.
            tls_verify: false,
            tls_fingerprints: Vec::new(),
            webadmin_enabled: true,
            webadmin_allow_http: false,
        };
        servers::insert(pool, vault, &new_server)
            .await
            .with_context(|| format!("registering {} failed", server.host))?;
    }
    Ok(())
}

/// Counts the stored accounts.
///
/// # Errors
///
/// Database errors.
pub async fn account_count(pool: &PgPool) -> anyhow::Result<i64> {
    Ok(sqlx::query_scalar("SELECT count(*) FROM accounts")
        .fetch_one(pool)
        .await?)
}

//! Configuration shared by every binary: the `.env` file, the database and
//! the vault key. Each binary adds its own options next to these with clap,
//! so every setting is both an environment variable and a flag.

use std::str::FromStr;
use std::time::Duration;

use sqlx::Connection;
use sqlx::postgres::{PgConnectOptions, PgConnection, PgPool, PgPoolOptions};

use crate::secret::Secret;
use crate::vault::{Vault, VaultError};

/// A setting that is missing or invalid. The message names the environment
/// variable and the fix, and never contains a secret value.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{variable} is not set: {hint}")]
    Missing {
        variable: &'static str,
        hint: &'static str,
    },
    #[error("invalid {variable}: {detail}")]
    Invalid {
        variable: &'static str,
        detail: String,
    },
    #[error(transparent)]
    Vault(#[from] VaultError),
}

/// Reads `.env` from the working directory when it exists. Variables that
/// are already set in the environment win over the file.
///
/// # Errors
///
/// A `.env` that exists but cannot be read or parsed. The message gives the
/// position of the bad line, not its text, which may hold a secret.
pub fn load_dotenv() -> Result<(), ConfigError> {
    match dotenvy::dotenv() {
        Ok(_) => Ok(()),
        Err(error) if error.not_found() => Ok(()),
        Err(dotenvy::Error::LineParse(_, index)) => Err(ConfigError::Invalid {
            variable: ".env",
            detail: format!(
                "cannot parse the file at character {index}; write each line as NAME=value"
            ),
        }),
        Err(error) => Err(ConfigError::Invalid {
            variable: ".env",
            detail: format!("cannot read the file: {}", redact_dotenv_error(&error)),
        }),
    }
}

/// Reads `.env`, then parses the command line and environment into `T`.
///
/// Configuration errors end the process with exit code 1, which every
/// binary of the project uses for "nothing could be done". clap's own
/// default would be 2, and the poller uses 2 for failed servers. `--help`
/// and `--version` print and exit with 0.
pub fn parse_args<T: clap::Parser>() -> T {
    if let Err(error) = load_dotenv() {
        eprintln!("error: {error}");
        std::process::exit(1);
    }
    match T::try_parse() {
        Ok(args) => args,
        Err(error) => {
            use clap::error::ErrorKind;
            let exit_code = match error.kind() {
                ErrorKind::DisplayHelp
                | ErrorKind::DisplayVersion
                | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => 0,
                _ => 1,
            };
            let _ = error.print();
            if exit_code != 0 {
                match env_source::<T>(&error) {
                    Some(variable) => eprintln!(
                        "note: this value comes from the environment variable {variable} (or \
                         .env); correct or unset it"
                    ),
                    None => eprintln!(
                        "note: every option can also come from the environment variable named \
                         in --help, or from .env"
                    ),
                }
            }
            std::process::exit(exit_code);
        }
    }
}

/// Returns the environment variable that supplied the value clap rejected,
/// when the option was not on the command line but its variable is set.
fn env_source<T: clap::CommandFactory>(error: &clap::Error) -> Option<String> {
    use clap::error::{ContextKind, ContextValue};

    let Some(ContextValue::String(argument)) = error.get(ContextKind::InvalidArg) else {
        return None;
    };
    // clap names the option as "--output <OUTPUT>".
    let long = argument.strip_prefix("--")?.split([' ', '=']).next()?;
    let command = T::command();
    let option = command
        .get_arguments()
        .chain(
            command
                .get_subcommands()
                .flat_map(clap::Command::get_arguments),
        )
        .find(|option| option.get_long() == Some(long))?;
    let variable = option.get_env()?.to_str()?.to_owned();
    let flag = format!("--{long}");
    let on_command_line =
        std::env::args().any(|arg| arg == flag || arg.starts_with(&format!("{flag}=")));
    (!on_command_line && std::env::var_os(&variable).is_some()).then_some(variable)
}

fn redact_dotenv_error(error: &dotenvy::Error) -> String {
    match error {
        dotenvy::Error::Io(io) => io.to_string(),
        _ => "unexpected content".to_owned(),
    }
}

/// The PostgreSQL connection.
#[derive(clap::Args, Debug, Clone)]
pub struct DatabaseArgs {
    /// PostgreSQL connection URL, for example postgres://axiquota@localhost:5432/axiquota
    #[arg(long, env = "DATABASE_URL", hide_env_values = true, global = true)]
    pub database_url: Option<Secret>,

    /// Maximum number of pooled database connections
    #[arg(long, env = "DATABASE_MAX_CONNECTIONS", default_value_t = 10, global = true,
          value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub database_max_connections: u32,

    /// Seconds to wait for a free database connection or for the server to respond
    #[arg(long, env = "DATABASE_CONNECT_TIMEOUT", default_value_t = 10, global = true,
          value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub database_connect_timeout: u64,
}

impl DatabaseArgs {
    /// Parses `DATABASE_URL` without connecting.
    ///
    /// # Errors
    ///
    /// [`ConfigError::Missing`] or [`ConfigError::Invalid`] naming `DATABASE_URL`.
    pub fn connect_options(&self) -> Result<PgConnectOptions, ConfigError> {
        let url = self
            .database_url
            .as_ref()
            .filter(|url| !url.is_empty())
            .ok_or(ConfigError::Missing {
                variable: "DATABASE_URL",
                hint: "set it (or pass --database-url) to a PostgreSQL URL such as \
                       postgres://axiquota@localhost:5432/axiquota",
            })?;
        let scheme_ok =
            url.expose().starts_with("postgres://") || url.expose().starts_with("postgresql://");
        if !scheme_ok {
            return Err(ConfigError::Invalid {
                variable: "DATABASE_URL",
                detail: "expected a URL that starts with postgres:// or postgresql://".to_owned(),
            });
        }
        PgConnectOptions::from_str(url.expose()).map_err(|error| ConfigError::Invalid {
            variable: "DATABASE_URL",
            detail: format!(
                "not a PostgreSQL URL ({}); expected postgres://user[:password]@host[:port]/database",
                sqlx_url_error_kind(&error)
            ),
        })
    }

    /// Connects a pool and checks that the database responds.
    ///
    /// # Errors
    ///
    /// An invalid URL, or a server that cannot be reached. The message names
    /// the host, port and database but never the password.
    pub async fn connect(&self) -> anyhow::Result<PgPool> {
        let options = self.connect_options()?;
        let target = describe_target(&options);
        let timeout = Duration::from_secs(self.database_connect_timeout);
        let fail = |cause: String| {
            anyhow::anyhow!(
                "cannot connect to PostgreSQL at {target}: {cause}; check DATABASE_URL and that the server is running"
            )
        };

        // One direct connection first: a pool retries until its timeout and
        // then reports only that it timed out, which hides causes such as a
        // refused connection or a rejected password.
        match tokio::time::timeout(timeout, PgConnection::connect_with(&options)).await {
            Ok(Ok(connection)) => {
                let _ = connection.close().await;
            }
            Ok(Err(error)) => return Err(fail(crate::store::describe_sqlx_error(&error))),
            Err(_) => return Err(fail(format!("timed out after {}s", timeout.as_secs()))),
        }

        PgPoolOptions::new()
            .max_connections(self.database_max_connections)
            .acquire_timeout(timeout)
            .connect_with(options)
            .await
            .map_err(|error| fail(crate::store::describe_sqlx_error(&error)))
    }
}

/// Describes where a connection goes, without user name or password.
pub fn describe_target(options: &PgConnectOptions) -> String {
    format!(
        "{}:{}/{}",
        options.get_host(),
        options.get_port(),
        options.get_database().unwrap_or("(default database)")
    )
}

fn sqlx_url_error_kind(error: &sqlx::Error) -> &'static str {
    match error {
        sqlx::Error::Configuration(_) => "bad format",
        _ => "unreadable",
    }
}

/// The Fernet key or keys that encrypt stored server passwords.
#[derive(clap::Args, Debug, Clone)]
pub struct VaultArgs {
    /// Fernet key for server passwords; several comma-separated keys rotate
    /// them (the first encrypts, all decrypt). Make one with `migrator generate-key`
    #[arg(long, env = "FERNET_KEY", hide_env_values = true)]
    pub fernet_key: Option<Secret>,
}

impl VaultArgs {
    /// Builds the vault from `FERNET_KEY`.
    ///
    /// # Errors
    ///
    /// [`ConfigError::Missing`] when unset, [`ConfigError::Vault`] when a key
    /// is malformed.
    pub fn vault(&self) -> Result<Vault, ConfigError> {
        let keys = self.fernet_key.as_ref().ok_or(ConfigError::Missing {
            variable: "FERNET_KEY",
            hint: "set it (or pass --fernet-key) to a key made by `migrator generate-key`",
        })?;
        Ok(Vault::from_keys(keys)?)
    }
}

/// Log output settings.
#[derive(clap::Args, Debug, Clone)]
pub struct LogArgs {
    /// Log format on standard error: `text` for people, `json` for log
    /// collectors. The level comes from RUST_LOG (default `info`)
    #[arg(long, env = "LOG_FORMAT", value_enum, default_value_t = LogFormat::Text, global = true)]
    pub log_format: LogFormat,
}

#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

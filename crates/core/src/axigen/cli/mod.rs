//! The Axigen admin CLI client: a framing layer ([`connection`]) under a
//! typed, read-only client ([`client`]).

pub mod client;
pub mod connection;
mod framing;
pub(crate) mod parse;

pub use client::{CliClient, Context, ListedDomain, RegistryInformation};
pub use connection::{CliError, ConnectOptions, Connection, Reply};

//! The shared library of axiquota: models, configuration, the credential
//! vault, the Axigen clients, the collector and the store (all SQL).

pub mod axigen;
pub mod config;
pub mod model;
pub mod secret;
pub mod store;
pub mod telemetry;
pub mod vault;

pub use secret::Secret;
pub use vault::Vault;

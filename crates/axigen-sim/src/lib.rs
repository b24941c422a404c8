//! A fake Axigen Mail Server for tests, demos and benchmarks.
//!
//! It speaks the admin CLI (plain TCP or implicit TLS) and serves the
//! WebAdmin usage feed (`GET /data/accounts`) from generated or file-based
//! [`ServerData`]. Every reply variant and fault that a client must survive
//! is a switch of [`Behavior`]; `Behavior::default()` produces the default
//! session shape. The replies are written by this crate's own code and share
//! nothing with the project's client, so that a misreading cannot hide in
//! code used by both sides.
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! use axigen_sim::{GenerateSpec, ServerData, SimOptions, SimServer};
//!
//! let data = ServerData::generate(&GenerateSpec::default());
//! let server = SimServer::start(data, SimOptions::default()).await?;
//! println!("CLI on {}, WebAdmin on {}", server.cli_addr(), server.webadmin_addr());
//! server.shutdown().await;
//! # Ok(())
//! # }
//! ```

mod behavior;
mod cli;
mod data;
mod delay;
mod rng;
mod server;
mod stats;
mod tls;
mod webadmin;

pub use behavior::{
    Behavior, Chunking, LatencyKind, MboxSizeUnit, MidReplyTrigger, Stall, Underline,
    UnlimitedQuota, WebAdminBehavior,
};
pub use data::{Account, Domain, GenerateSpec, ServerData};
pub use server::{SimHandle, SimOptions, SimServer, WebAdminMode, start_many};
pub use stats::SimStats;

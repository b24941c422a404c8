//! Clients for the Axigen admin CLI and the WebAdmin usage feed, and the
//! collector that turns their replies into a snapshot.

pub mod cli;
pub mod collector;
pub mod tls;
pub mod webadmin;

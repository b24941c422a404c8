//! The admin CLI (plain TCP or implicit TLS): accepting connections and
//! running sessions.

mod command;
mod facts;
mod reply;
mod session;
mod writer;

pub(crate) use session::Session;

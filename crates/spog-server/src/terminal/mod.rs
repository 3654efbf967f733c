//! The web terminal (SPEC 13): a browser's WebSocket relayed to a PTY the host's agent opens
//! on one of its channels, every byte recorded on the way by the instance that holds the
//! agent's connection.

mod channel;
pub(crate) mod cluster;
mod link;
pub mod open;
mod relay;
mod relays;
pub mod shell;

pub use link::AgentLink;
pub use relays::Relays;

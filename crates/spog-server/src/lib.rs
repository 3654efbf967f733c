//! The spog server: HTTP API, console, WebSocket hub and background workers.

pub mod admin;
pub mod agents;
pub mod alerting;
pub mod app;
pub mod audit_streams;
pub mod auth;
pub mod backup;
pub mod blocking;
pub mod bootstrap;
pub mod chain;
pub mod config;
pub mod console;
pub mod delivery;
pub mod error;
pub mod events;
pub mod extract;
pub mod http;
pub mod hub;
pub mod keys;
pub mod metrics;
pub mod open_files;
pub mod openapi;
pub mod private_files;
pub mod recordings;
pub mod secrets;
pub mod sso;
pub mod state;
pub mod terminal;
#[cfg(feature = "testing")]
pub mod testing;
pub mod trace;
pub mod transport;
pub mod workers;

pub use app::{Running, launch};
pub use config::Config;

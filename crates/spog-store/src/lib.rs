//! Persistence for spog on SQLite (the embedded default) and PostgreSQL (for several
//! instances), chosen by the database URL. Both backends share one schema shape (text ids,
//! integer microseconds, integer flags, JSON as text) so queries are written once; the few
//! dialect differences stay in [`Backend`].

pub mod agents;
pub mod alerting;
pub mod audit;
pub mod audit_streams;
mod backup;
mod by_organization;
pub mod channels;
pub mod cluster;
pub mod deliveries;
mod error;
pub mod events;
pub mod identity;
pub mod metrics;
mod migrations;
pub mod notifications;
pub mod recordings;
mod rows;
pub mod signals;
mod sql;
mod store;
#[cfg(feature = "testing")]
pub mod testing;
mod tx;
pub mod webhooks;

pub use error::{StoreError, StoreResult};
pub use migrations::SchemaStatus;
pub use sql::Sql;
pub use store::{Backend, Store, StoreOptions};
pub use tx::Tx;

/// A connection that can run queries: a pooled read connection or a transaction.
pub type Conn = sqlx::AnyConnection;

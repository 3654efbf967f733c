//! The pure domain of spog: identifiers, time, permissions, validation, the audit chain,
//! events and the delivery rules. Nothing here performs I/O, so every rule can be tested in
//! isolation.

pub mod alerts;
pub mod audit;
pub mod audit_streams;
pub mod channels;
pub mod delivery;
pub mod events;
pub mod fair_share;
pub mod id;
pub mod list;
pub mod metrics;
pub mod model;
pub mod notification;
pub mod page;
pub mod permission;
pub mod read_object;
pub mod recordings;
pub mod redact;
mod schema;
pub mod sso;
pub mod time;
pub mod utf8_stream;
pub mod validate;
pub mod webhooks;

pub use id::Id;
pub use list::{BoundedList, BoundedMap, UniqueList};
pub use permission::{BuiltinRole, Permission, PermissionSet};
pub use time::Timestamp;
pub use validate::{FieldError, FieldErrors};

//! The pure domain of spog: identifiers, time, permissions, validation and the audit
//! chain. Nothing here performs I/O, so every rule can be tested in isolation.

pub mod audit;
pub mod id;
pub mod model;
pub mod notification;
pub mod page;
pub mod permission;
pub mod redact;
mod schema;
pub mod time;
pub mod validate;

pub use id::Id;
pub use permission::{BuiltinRole, Permission, PermissionSet};
pub use time::Timestamp;
pub use validate::{FieldError, FieldErrors};

//! The audit trail's storage: entries recorded with their change, linked into each account's
//! chain by group commit, and read back for search, statistics, export and verification.

mod link;
mod record;
mod row;

pub use link::link_pending;
pub use record::{record, record_all};
pub use row::get;

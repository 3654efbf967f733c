//! The audit trail's storage: entries recorded with their change, linked into each account's
//! chain by group commit, and read back for search, statistics, export and verification.

mod batch;
pub mod checkpoints;
mod group;
mod link;
mod query;
mod record;
mod row;
mod stats;
mod walk;

pub use batch::ChainBatch;
pub use group::GroupCommit;
pub use link::{Linked, link_pending};
pub(crate) use query::like_literal;
pub use query::{ActionFilter, AuditFilter, head, list};
pub use record::{insert_entries, record, record_all};
pub use row::{get, latest_about};
pub use stats::{ActorCount, AuditStats, Count, DayCount, stats};
pub use walk::{range, walk};

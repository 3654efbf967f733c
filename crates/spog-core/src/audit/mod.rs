//! The audit entry, its canonical form, the hash chain and its verification (SPEC 3).

mod canonical;
mod chain;
pub mod checkpoint;
mod entry;
pub mod namespace;
mod snapshot;

pub use canonical::{canonical_json, chain_hash, write_canonical_json, write_entry_json};
pub use chain::{BrokenLink, BrokenReason, ChainVerifier, GENESIS_HASH, VerifyReport};
pub use entry::{ActorType, AuditEntry, EntryFields, Outcome, Source};
pub use snapshot::Snapshot;

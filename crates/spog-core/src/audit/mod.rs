//! The audit entry, its canonical form, the hash chain and its verification (SPEC 3).

mod action;
mod actor;
mod audited;
mod canonical;
mod chain;
pub mod checkpoint;
mod entry;
mod snapshot;

pub use action::{Action, RESERVED_NAMESPACES, is_server_action, namespace};
pub use actor::Actor;
pub use audited::{Audited, KeptRecording};
pub use canonical::{canonical_json, chain_hash, write_canonical_json, write_entry_json};
pub use chain::{BrokenLink, BrokenReason, ChainVerifier, GENESIS_HASH, VerifyReport};
pub use entry::{ActorType, AuditEntry, EntryFields, Outcome, Source};
pub use snapshot::Snapshot;

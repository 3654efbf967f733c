//! Deleting a recording, one way for every caller: a user through the API (`manual`) or the
//! retention job (`retention`). Its row goes in a transaction with the audit entry, which keeps
//! the recording as `before`; its content goes after the commit (SPEC 8.3).

use serde_json::json;
use spog_core::Id;
use spog_core::audit::Actor;
use spog_store::StoreResult;
use spog_store::identity::hosts::HostScope;
use spog_store::recordings;

use super::kind::Recorded;
use super::remove_content;
use crate::state::AppState;

/// Why a recording is deleted, as its entry's `metadata.reason` says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Why {
    Manual,
    Retention,
}

impl Why {
    pub const fn as_str(self) -> &'static str {
        match self {
            Why::Manual => "manual",
            Why::Retention => "retention",
        }
    }
}

/// What became of a deletion.
#[derive(Debug)]
pub enum Deletion<R> {
    /// Deleted, as it was.
    Deleted(R),
    /// Still being recorded.
    Active,
    /// On legal hold.
    Held,
}

/// Deletes recording `id` of `by`'s account, on record as done by `by` for `why`. `NotFound`
/// when there is no such recording (or another instance deleted it first: only the one whose
/// delete took the row records it).
pub async fn delete<R: Recorded>(
    state: &AppState,
    by: &Actor,
    id: Id<R>,
    why: Why,
) -> StoreResult<Deletion<R>> {
    let mut tx = state.store.begin().await?;
    let recording: R = recordings::get(&mut tx, by.account, id, &HostScope::All).await?;
    if !recording.has_ended() {
        return Ok(Deletion::Active);
    }
    if recording.is_held() {
        return Ok(Deletion::Held);
    }
    if !recordings::delete::<R>(&mut tx, by.account, id).await? {
        // Held, or deleted, since it was read.
        let now: R = recordings::get(&mut tx, by.account, id, &HostScope::All).await?;
        return Ok(if now.is_held() {
            Deletion::Held
        } else {
            Deletion::Active
        });
    }
    let entry = by
        .did(R::DELETED, &recording.kept())
        .before(&recording)
        .metadata(json!({"reason": why.as_str()}));
    tx.record(entry).await?;
    tx.commit().await?;
    if let Err(error) = remove_content(state, by.account, &recording).await {
        tracing::warn!(%error, recording = %id, "removing a deleted {} recording's content", R::NAME);
    }
    Ok(Deletion::Deleted(recording))
}

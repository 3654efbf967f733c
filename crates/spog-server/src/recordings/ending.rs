//! Ending a recording, one way for every caller: its source through the API, or the idle job
//! once the source went silent. The recorder on this instance is closed (what it wrote last
//! is kept as the recording's progress), the recording marked ended, and the end audited,
//! in one transaction.

use serde_json::json;
use spog_core::audit::Actor;
use spog_core::{Id, Timestamp};
use spog_store::StoreResult;
use spog_store::recordings::{self, EndReason};

use super::kind::Recorded;
use crate::state::AppState;

/// Ends recording `id` of `by`'s account, on record as done by `by`: its source (`was`, the
/// recording as it found it, is the entry's `before`) or the idle job (the entry says how
/// long the source was silent). A recording that has already ended is a conflict.
pub async fn end<R: Recorded>(
    state: &AppState,
    by: &Actor,
    id: Id<R>,
    was: Option<&R>,
    reason: EndReason,
    now: Timestamp,
) -> StoreResult<R> {
    let progress = state.recorders.close(id).await;
    let mut tx = state.store.begin().await?;
    let ended = recordings::end(&mut tx, by.account, id, progress.as_ref(), reason, now).await?;
    let mut entry = by.did(R::ENDED, &ended).after(&ended);
    if let Some(was) = was {
        entry = entry.before(&was.while_running());
    }
    if reason == EndReason::Idle {
        let silent_for = state.config.recording_idle_timeout.as_secs();
        entry = entry.metadata(json!({"reason": "idle", "silent_for_seconds": silent_for}));
    }
    tx.record(entry).await?;
    tx.commit().await?;
    Ok(ended)
}

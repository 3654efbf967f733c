//! Ending a recording, one way for every caller: its source through the API, the idle job
//! once the source went silent, or the web terminal's relay (SPEC 13.1). The recorder on this
//! instance is closed (what it wrote last is kept as the recording's progress), the recording
//! marked ended, the end audited with its reason and its event published, in one transaction.

use serde_json::json;
use spog_core::audit::Actor;
use spog_core::{Id, Timestamp};
use spog_store::StoreResult;
use spog_store::recordings::{self, EndReason};

use super::kind::Recorded;
use crate::events::{self, Announcements};
use crate::state::AppState;

/// Why a recording ends.
#[derive(Clone, Copy, Debug)]
pub struct Ending {
    pub reason: EndReason,
    /// A terminal's shell exit status.
    pub exit_code: Option<i32>,
    /// Some of the session's bytes were lost before spog had them (a `spog-agent shell`
    /// spool that filled up): on record with the end.
    pub truncated: bool,
}

impl From<EndReason> for Ending {
    fn from(reason: EndReason) -> Self {
        Self {
            reason,
            exit_code: None,
            truncated: false,
        }
    }
}

/// Ends recording `id` of `by`'s account, on record as done by `by`: its source (`was`, the
/// recording as it found it, is the entry's `before`), the idle job (the entry says how long
/// the source was silent) or the relay. A recording that has already ended is a conflict.
pub async fn end<R: Recorded>(
    state: &AppState,
    by: &Actor,
    id: Id<R>,
    was: Option<&R>,
    ending: Ending,
    now: Timestamp,
) -> StoreResult<R> {
    let progress = state.recorders.close(id).await;
    R::before_end(state, by.account, id).await;
    let mut announcements = Announcements::default();
    let mut tx = state.store.begin().await?;
    let ended = recordings::end(
        &mut tx,
        by.account,
        id,
        progress.as_ref(),
        ending.reason,
        ending.exit_code,
        now,
    )
    .await?;
    let mut entry = by.did(R::ENDED, &ended).after(&ended);
    if let Some(was) = was {
        entry = entry.before(&was.while_running());
    }
    let mut metadata = json!({"reason": ending.reason.as_str()});
    if let Some(code) = ending.exit_code {
        metadata["exit_code"] = json!(code);
    }
    if ending.truncated {
        metadata["truncated"] = json!(true);
    }
    if ending.reason == EndReason::Idle {
        let silent_for = state.config.recording_idle_timeout.as_secs();
        metadata["silent_for_seconds"] = json!(silent_for);
    }
    entry = entry.metadata(metadata);
    tx.record(entry).await?;
    if let Some(event) = ended.lifecycle_event(by.account, now) {
        events::publish(&mut tx, event, now, &mut announcements).await?;
    }
    tx.commit().await?;
    announcements.send(&state.bus).await;
    if let Some(event) = R::ended_on_bus(id) {
        state.bus.publish(event).await;
    }
    Ok(ended)
}

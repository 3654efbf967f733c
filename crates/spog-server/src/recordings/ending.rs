//! Ending a recording, one way for every caller: its source through the API, the idle job
//! once the source went silent, or the web terminal's relay (SPEC 13.1). The recorder on this
//! instance is closed (what it wrote last is kept as the recording's progress), the recording
//! marked ended, the end audited with its reason and its event published, in one transaction.

use serde_json::json;
use spog_core::audit::Actor;
use spog_core::{Id, Timestamp};
use spog_store::identity::hosts::HostScope;
use spog_store::recordings::{self, EndReason};
use spog_store::{StoreError, StoreResult};

use super::kind::Recorded;
use super::{parts, seal};
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
///
/// Its content is sealed first (SPEC 8.3): the spool file (restored from object storage when
/// the instance writing it was lost) is closed, hashed and compressed, and the end records the
/// hash; after the commit the compressed content moves to the storage.
pub async fn end<R: Recorded>(
    state: &AppState,
    by: &Actor,
    id: Id<R>,
    was: Option<&R>,
    ending: Ending,
    now: Timestamp,
) -> StoreResult<R> {
    let mut recording: R = {
        let mut conn = state.store.conn().await?;
        recordings::get(&mut conn, by.account, id, &HostScope::All).await?
    };
    if recording.has_ended() {
        // Ended by another instance while written here: what this one wrote is sealed now.
        if state.recorders.open(id).is_some() {
            seal::after_end(state, by.account, id).await?;
        }
        return Err(StoreError::Conflict(format!(
            "the {} has already ended",
            R::NOUN
        )));
    }
    let spool_relative = recording.file_path().to_owned();
    let spool = state.recorders.path(&spool_relative);
    let mut here = state.recorders.open(id).is_some() || seal::exists(state, &spool).await;
    if !here && ending.reason == EndReason::InstanceLost {
        // Its writer is gone: what it uploaded is all there is (perhaps nothing).
        parts::restore(state, by.account, id, &spool).await?;
        here = true;
    }
    // Written by another instance that lives: that one seals it once it sees the end.
    let (progress, sealed) = match here {
        true => {
            let (progress, sealed) = seal::prepare(state, &mut recording, &spool).await?;
            (progress, Some(sealed))
        }
        false => (None, None),
    };
    let backend = state.storage.current;
    let location = state.storage.current().shown(&seal::key(by.account, id));
    let mut announcements = Announcements::default();
    let mut tx = state.store.begin().await?;
    let closing = recordings::Closing {
        progress: progress.as_ref(),
        reason: ending.reason,
        exit_code: ending.exit_code,
        sealed: sealed.as_ref().map(|sealed| sealed.row(backend, &location)),
    };
    let ended = recordings::end(&mut tx, by.account, id, &closing, now).await?;
    let mut entry = by.did(R::ENDED, &ended).after(&ended);
    if let Some(was) = was {
        entry = entry.before(&was.while_running());
    }
    let mut metadata = json!({"reason": ending.reason.as_str()});
    if let Some(sealed) = &sealed {
        metadata["sha256"] = json!(sealed.sha256);
        metadata["size"] = json!(sealed.size);
    }
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
    if sealed.is_some() {
        seal::store(state, by.account, id, &spool_relative, backend).await;
    }
    announcements.send(&state.bus).await;
    if let Some(event) = R::ended_on_bus(id) {
        state.bus.publish(event).await;
    }
    Ok(ended)
}

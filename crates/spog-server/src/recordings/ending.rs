//! Ending a recording, one way for every caller: its source through the API, or the idle job
//! once the source went silent. The recorder on this instance is closed (what it wrote last
//! is kept as the recording's progress), the recording marked ended, and the end audited,
//! in one transaction.

use std::future::Future;

use serde::Serialize;
use serde_json::json;
use spog_core::audit::{Action, Actor, Audited};
use spog_core::model::Account;
use spog_core::recordings::{DesktopRecording, TerminalRecording};
use spog_core::{Id, Timestamp};
use spog_store::recordings::{EndReason, desktop, terminal};
use spog_store::{StoreResult, Tx};

use super::Recorders;
use crate::state::AppState;

/// A kind of recording, as ending one needs it.
pub trait Ends: Audited + Serialize + Sized + Send + Sync {
    const ENDED: Action;
    type Progress: Send + Sync;

    /// Closes the recording's recorder on this instance, if it has one, with its progress.
    fn close(
        recorders: &Recorders,
        id: Id<Self>,
    ) -> impl Future<Output = Option<Self::Progress>> + Send;

    fn end(
        tx: &mut Tx,
        account: Id<Account>,
        id: Id<Self>,
        progress: Option<&Self::Progress>,
        reason: EndReason,
        now: Timestamp,
    ) -> impl Future<Output = StoreResult<Self>> + Send;

    /// The recording as the API shows it while it runs (its entry's `before`).
    fn while_running(&self) -> impl Serialize + '_;
}

/// Ends recording `id` of `by`'s account, on record as done by `by`: its source (`was`, the
/// recording as it found it, is the entry's `before`) or the idle job (the entry says how
/// long the source was silent). A recording that has already ended is a conflict.
pub async fn end<R: Ends>(
    state: &AppState,
    by: &Actor,
    id: Id<R>,
    was: Option<&R>,
    reason: EndReason,
    now: Timestamp,
) -> StoreResult<R> {
    let progress = R::close(&state.recorders, id).await;
    let mut tx = state.store.begin().await?;
    let ended = R::end(&mut tx, by.account, id, progress.as_ref(), reason, now).await?;
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

impl Ends for TerminalRecording {
    const ENDED: Action = Action::TerminalSessionEnd;
    type Progress = terminal::Progress;

    async fn close(recorders: &Recorders, id: Id<Self>) -> Option<Self::Progress> {
        recorders.close_cast(id).await
    }

    async fn end(
        tx: &mut Tx,
        account: Id<Account>,
        id: Id<Self>,
        progress: Option<&Self::Progress>,
        reason: EndReason,
        now: Timestamp,
    ) -> StoreResult<Self> {
        terminal::end(tx, account, id, progress, reason, now).await
    }

    /// A running terminal recording is its session.
    fn while_running(&self) -> impl Serialize + '_ {
        self.session()
    }
}

impl Ends for DesktopRecording {
    const ENDED: Action = Action::DesktopRecordingEnd;
    type Progress = desktop::Progress;

    async fn close(recorders: &Recorders, id: Id<Self>) -> Option<Self::Progress> {
        recorders.close_frames(id).await
    }

    async fn end(
        tx: &mut Tx,
        account: Id<Account>,
        id: Id<Self>,
        progress: Option<&Self::Progress>,
        reason: EndReason,
        now: Timestamp,
    ) -> StoreResult<Self> {
        desktop::end(tx, account, id, progress, reason, now).await
    }

    fn while_running(&self) -> impl Serialize + '_ {
        self
    }
}

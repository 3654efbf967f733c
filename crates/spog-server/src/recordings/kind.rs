//! What the server does alike for every kind of recording: a recorder per active recording
//! written here, flushed and synced by the recordings worker, closed when the recording ends
//! (see [`super::ending`]). A kind names its recorder (the format: `cast.rs`, `frames.rs`) and
//! what its end is audited as; the rows are the store's [`RecordingKind`].

use std::collections::HashMap;
use std::io;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicUsize;

use parking_lot::Mutex;
use serde::Serialize;
use spog_core::audit::{Action, Audited};
use spog_core::events::EventType;
use spog_core::model::Account;
use spog_core::recordings::{DesktopRecording, TerminalRecording};
use spog_core::{Id, Timestamp};
use spog_store::recordings::RecordingKind;
use tokio::sync::Notify;

use super::handles::FileHandles;
use super::{CastRecorder, FrameRecorder, Recorders, RecordingError};
use crate::events::NewEvent;
use crate::hub::bus::BusEvent;
use crate::state::AppState;

/// A kind of recording as the server writes and ends it.
pub trait Recorded: RecordingKind + Audited + Serialize + Clone {
    /// What its start and end are audited as.
    const STARTED: Action;
    const ENDED: Action;
    /// What its recorders are called in the logs.
    const NAME: &'static str;
    type Recorder: Recorder<Self>;

    /// The recorders of this kind open on this instance.
    fn open_here(recorders: &Recorders) -> &Mutex<HashMap<Id<Self>, Arc<Self::Recorder>>>;

    /// Its file, relative to the data directory (absolute once the API shows it).
    fn file_path(&self) -> &str;
    fn file_path_mut(&mut self) -> &mut String;
    fn has_ended(&self) -> bool;

    /// What its start's entry notes beside the recording as it runs.
    fn started_metadata(&self) -> Option<serde_json::Value>;

    /// The recording as the API shows it while it runs (its end's `before`).
    fn while_running(&self) -> impl Serialize + '_;

    /// The event its start or end publishes (`ended` once it has ended), if its kind has one.
    fn lifecycle_event(&self, account: Id<Account>, now: Timestamp) -> Option<NewEvent>;

    /// What tells every instance that it ended, if anything running there must know.
    fn ended_on_bus(id: Id<Self>) -> Option<BusEvent>;

    /// What is done once its recorder here is closed, before its end is stored: a terminal
    /// recording's text is indexed to its end, while its file is sure to be there.
    fn before_end(
        state: &AppState,
        account: Id<Account>,
        id: Id<Self>,
    ) -> impl Future<Output = ()> + Send;
}

/// Appends a recording's file in its format and reports how far it has grown.
pub trait Recorder<K: RecordingKind>: Sized + Send + Sync + 'static {
    /// Opens the file of `recording`, recovering what a previous writer left.
    /// Blocking: call it off the async threads.
    fn open(recording: &K, path: PathBuf, handles: Arc<FileHandles>) -> io::Result<Self>;
    fn is_closed(&self) -> bool;
    /// Writes what is buffered.
    fn flush(&self) -> Result<(), RecordingError>;
    /// Flushes and syncs to the disk, without holding the recorder meanwhile.
    fn sync(&self) -> Result<(), RecordingError>;
    /// Notes that a connected source is alive though it sends nothing.
    fn touch(&self);
    /// Progress as far as the file holds it, if it changed since the last call.
    fn take_progress(&self) -> Option<K::Progress>;
    /// Stops taking writes: flushes, syncs, wakes streams. Returns the final progress.
    fn close(&self) -> K::Progress;
    fn id(&self) -> Id<K>;
    /// Sources streaming into it now.
    fn streams(&self) -> &AtomicUsize;
    /// Woken when it closes.
    fn closing(&self) -> &Notify;
}

impl Recorded for TerminalRecording {
    const STARTED: Action = Action::TerminalSessionStart;
    const ENDED: Action = Action::TerminalSessionEnd;
    const NAME: &'static str = "terminal";
    type Recorder = CastRecorder;

    fn open_here(recorders: &Recorders) -> &Mutex<HashMap<Id<Self>, Arc<CastRecorder>>> {
        &recorders.casts
    }

    fn file_path(&self) -> &str {
        &self.file_path
    }

    fn file_path_mut(&mut self) -> &mut String {
        &mut self.file_path
    }

    fn has_ended(&self) -> bool {
        self.ended_at.is_some()
    }

    /// The session's entry names its recording, where it started and as whom it runs.
    fn started_metadata(&self) -> Option<serde_json::Value> {
        Some(
            serde_json::json!({"recording_id": self.id, "origin": self.origin,
            "os_user": self.os_user}),
        )
    }

    /// A running terminal recording is its session.
    fn while_running(&self) -> impl Serialize + '_ {
        self.session()
    }

    /// A relayed web terminal hangs up (SPEC 13.4).
    fn ended_on_bus(id: Id<Self>) -> Option<BusEvent> {
        Some(BusEvent::TerminalEnded { recording: id })
    }

    async fn before_end(state: &AppState, account: Id<Account>, id: Id<Self>) {
        super::text::catch_up(state, account, id).await;
    }

    /// `terminal_session.started` / `terminal_session.ended` (SPEC 11.1).
    fn lifecycle_event(&self, account: Id<Account>, now: Timestamp) -> Option<NewEvent> {
        let event_type = if self.has_ended() {
            EventType::TerminalSessionEnded
        } else {
            EventType::TerminalSessionStarted
        };
        let data = serde_json::json!({"session_id": self.session_id, "host_id": self.host_id,
            "hostname": self.hostname, "origin": self.origin, "user_email": self.user_email,
            "os_user": self.os_user, "end_reason": self.end_reason, "exit_code": self.exit_code});
        Some(NewEvent::new(
            account,
            self.organization_id,
            event_type,
            now,
            data,
        ))
    }
}

impl Recorded for DesktopRecording {
    const STARTED: Action = Action::DesktopRecordingStart;
    const ENDED: Action = Action::DesktopRecordingEnd;
    const NAME: &'static str = "desktop";
    type Recorder = FrameRecorder;

    fn open_here(recorders: &Recorders) -> &Mutex<HashMap<Id<Self>, Arc<FrameRecorder>>> {
        &recorders.frames
    }

    fn file_path(&self) -> &str {
        &self.file_path
    }

    fn file_path_mut(&mut self) -> &mut String {
        &mut self.file_path
    }

    fn has_ended(&self) -> bool {
        self.ended_at.is_some()
    }

    fn started_metadata(&self) -> Option<serde_json::Value> {
        None
    }

    fn while_running(&self) -> impl Serialize + '_ {
        self
    }

    fn lifecycle_event(&self, _: Id<Account>, _: Timestamp) -> Option<NewEvent> {
        None
    }

    fn ended_on_bus(_: Id<Self>) -> Option<BusEvent> {
        None
    }

    async fn before_end(_: &AppState, _: Id<Account>, _: Id<Self>) {}
}

/// When a recorder's source was last heard from, and whether its progress changed since it
/// was last recorded in the database.
#[derive(Clone, Copy)]
pub struct Activity {
    pub last: Timestamp,
    unreported: bool,
}

/// Heard from now, as a recorder is opened.
impl Default for Activity {
    fn default() -> Self {
        Self {
            last: Timestamp::now(),
            unreported: false,
        }
    }
}

impl Activity {
    /// The source was heard from: a write, or a sign of life.
    pub fn heard(&mut self) {
        self.last = Timestamp::now();
        self.unreported = true;
    }

    /// Whether progress changed since the last call.
    pub fn take_unreported(&mut self) -> bool {
        std::mem::take(&mut self.unreported)
    }
}

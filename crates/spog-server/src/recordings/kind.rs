//! What the server does alike for every kind of recording: a recorder per active recording
//! written here, flushed and synced by the recordings worker, closed when the recording ends
//! (see [`super::ending`]). A kind names its recorder (the format: `cast.rs`, `frames.rs`) and
//! what its end is audited as; the rows are the store's [`RecordingKind`].

use std::collections::HashMap;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::AtomicUsize;

use parking_lot::Mutex;
use serde::Serialize;
use spog_core::audit::{Action, Audited, KeptRecording};
use spog_core::events::EventType;
use spog_core::model::Account;
use spog_core::recordings::{DesktopRecording, Stored, TerminalRecording, download_header};
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
    /// What a check of its stored content is audited as.
    const VERIFIED: Action;
    /// What its sealing is audited as when another instance ended it.
    const SEALED: Action;
    /// What its deletion, legal hold and release are audited as.
    const DELETED: Action;
    const HELD: Action;
    const RELEASED: Action;
    /// What a move of its sealed content to another storage is audited as.
    const MOVED: Action;
    /// What its recorders are called in the logs.
    const NAME: &'static str;
    /// Its content starts with a header line, which sealing writes anew (the rest is the
    /// spool's, byte for byte).
    const HEADER_LINE: bool;
    type Recorder: Recorder<Self>;

    /// The recorders of this kind open on this instance.
    fn open_here(recorders: &Recorders) -> &Mutex<HashMap<Id<Self>, Arc<Self::Recorder>>>;

    /// Its spool file, relative to the data directory (absolute once the API shows it); once
    /// sealed, its object as the API shows it.
    fn file_path(&self) -> &str;
    fn file_path_mut(&mut self) -> &mut String;
    fn has_ended(&self) -> bool;
    /// How it is kept once sealed.
    fn stored(&self) -> &Stored;
    /// Takes the progress its recorder reports.
    fn progressed(&mut self, progress: &Self::Progress);

    /// Writes its content as sealed (what a download serves from then on) from its spool
    /// file. Blocking.
    fn write_content(&self, spool: &Path, out: &mut dyn Write) -> io::Result<()>;
    /// On legal hold: nothing deletes it.
    fn is_held(&self) -> bool;

    /// What its start's entry notes beside the recording as it runs.
    fn started_metadata(&self) -> Option<serde_json::Value>;

    /// The recording as the API shows it while it runs (its end's `before`).
    fn while_running(&self) -> impl Serialize + '_;

    /// What its deletion and legal hold are on record about.
    fn kept(&self) -> impl Audited + '_;

    /// The event its start or end publishes (`ended` once it has ended), if its kind has one.
    fn lifecycle_event(&self, account: Id<Account>, now: Timestamp) -> Option<NewEvent>;

    /// What tells every instance that it ended, if anything running there must know.
    fn ended_on_bus(id: Id<Self>) -> Option<BusEvent>;

    /// Indexes its spool file's text for search (a terminal recording's; others have none),
    /// at most `budget` bytes: true once the index has reached the file's end, and the spool
    /// may go.
    fn index_text(
        state: &AppState,
        account: Id<Account>,
        id: Id<Self>,
        budget: Option<u64>,
    ) -> impl Future<Output = bool> + Send;
}

/// Appends a recording's file in its format and reports how far it has grown.
pub trait Recorder<K: RecordingKind>: Sized + Send + Sync + 'static {
    /// Opens the file of `recording`, recovering what a previous writer left.
    /// Blocking: call it off the async threads.
    fn open(recording: &K, path: PathBuf, handles: Arc<FileHandles>) -> io::Result<Self>;
    fn is_closed(&self) -> bool;
    /// Its spool file.
    fn path(&self) -> &Path;
    /// The account of its recording: the spool file's directory is named after it.
    fn account(&self) -> Option<Id<Account>> {
        self.path().parent()?.file_name()?.to_str()?.parse().ok()
    }
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
    const VERIFIED: Action = Action::TerminalRecordingVerify;
    const SEALED: Action = Action::TerminalRecordingSeal;
    const HEADER_LINE: bool = true;
    const DELETED: Action = Action::TerminalRecordingDelete;
    const HELD: Action = Action::TerminalRecordingLegalHold;
    const RELEASED: Action = Action::TerminalRecordingLegalHoldRelease;
    const MOVED: Action = Action::TerminalRecordingMove;
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

    fn stored(&self) -> &Stored {
        &self.stored
    }

    fn progressed(&mut self, progress: &Self::Progress) {
        self.duration_seconds = progress.duration_micros as f64 / 1e6;
        self.bytes_in = progress.bytes_in;
        self.bytes_out = progress.bytes_out;
        self.event_count = progress.event_count;
    }

    /// The `.cast` download: its header as the download writes it, then the spool's events.
    fn write_content(&self, spool: &Path, out: &mut dyn Write) -> io::Result<()> {
        out.write_all(download_header(self, self.duration_seconds).as_bytes())?;
        out.write_all(b"\n")?;
        let (_, offset) = super::cast::read_header(spool)?;
        let mut result = Ok(());
        super::cast::read_lines(spool, offset, None, super::read::CHUNK, |chunk| {
            result = out.write_all(chunk);
            result.is_ok()
        })?;
        result
    }

    fn is_held(&self) -> bool {
        self.legal_hold
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

    /// Once its session is over it is on record as the recording (`terminal_recording.*`).
    fn kept(&self) -> impl Audited + '_ {
        KeptRecording(self)
    }

    /// A relayed web terminal hangs up (SPEC 13.4).
    fn ended_on_bus(id: Id<Self>) -> Option<BusEvent> {
        Some(BusEvent::TerminalEnded { recording: id })
    }

    async fn index_text(
        state: &AppState,
        account: Id<Account>,
        id: Id<Self>,
        budget: Option<u64>,
    ) -> bool {
        super::text::catch_up(state, account, id, budget).await
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
    const VERIFIED: Action = Action::DesktopRecordingVerify;
    const SEALED: Action = Action::DesktopRecordingSeal;
    const HEADER_LINE: bool = false;
    const DELETED: Action = Action::DesktopRecordingDelete;
    const HELD: Action = Action::DesktopRecordingLegalHold;
    const RELEASED: Action = Action::DesktopRecordingLegalHoldRelease;
    const MOVED: Action = Action::DesktopRecordingMove;
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

    fn stored(&self) -> &Stored {
        &self.stored
    }

    fn progressed(&mut self, progress: &Self::Progress) {
        self.duration_seconds = progress.duration_ms as f64 / 1e3;
        self.frame_count = progress.frame_count;
        self.total_bytes = progress.total_bytes;
    }

    /// Its frames file as it is (the seek index is rebuilt from it when read).
    fn write_content(&self, spool: &Path, out: &mut dyn Write) -> io::Result<()> {
        let mut file = std::fs::File::open(spool)?;
        io::copy(&mut file, out).map(|_| ())
    }

    fn is_held(&self) -> bool {
        self.legal_hold
    }

    fn started_metadata(&self) -> Option<serde_json::Value> {
        None
    }

    fn while_running(&self) -> impl Serialize + '_ {
        self
    }

    fn kept(&self) -> impl Audited + '_ {
        self
    }

    fn lifecycle_event(&self, _: Id<Account>, _: Timestamp) -> Option<NewEvent> {
        None
    }

    fn ended_on_bus(_: Id<Self>) -> Option<BusEvent> {
        None
    }

    async fn index_text(_: &AppState, _: Id<Account>, _: Id<Self>, _: Option<u64>) -> bool {
        true
    }
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

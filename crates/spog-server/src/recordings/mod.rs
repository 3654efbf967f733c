//! Session recordings on disk (SPEC 8): one open recorder per recording being written on this
//! instance, each appending to its file under the data directory. Appends through HTTP reach
//! the file before the request is answered; stream appends are flushed by the recordings
//! worker at least every quarter second and synced to the disk every second, so a crash loses
//! at most the last second and what was written stays playable.

mod append;
pub mod cast;
pub mod frames;

use std::collections::HashMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use parking_lot::Mutex;
use spog_core::recordings::{DesktopRecording, TerminalRecording};
use spog_core::{FieldError, FieldErrors, Id};

use crate::error::ApiError;
pub use cast::{Appended, CastRecorder};
pub use frames::FrameRecorder;

/// Why an append was refused.
#[derive(Debug)]
pub enum RecordingError {
    Invalid(FieldErrors),
    /// The session or recording has ended.
    Ended,
    /// The disk holding the recordings is full.
    StorageFull,
    Io(io::Error),
}

impl From<io::Error> for RecordingError {
    fn from(error: io::Error) -> Self {
        if error.kind() == io::ErrorKind::StorageFull {
            RecordingError::StorageFull
        } else {
            RecordingError::Io(error)
        }
    }
}

impl From<FieldError> for RecordingError {
    fn from(error: FieldError) -> Self {
        RecordingError::Invalid(error.into())
    }
}

impl From<FieldErrors> for RecordingError {
    fn from(errors: FieldErrors) -> Self {
        RecordingError::Invalid(errors)
    }
}

impl std::fmt::Display for RecordingError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RecordingError::Invalid(errors) => {
                let fields: Vec<String> = errors.iter().map(|(f, m)| format!("{f} {m}")).collect();
                write!(f, "{}", fields.join("; "))
            }
            RecordingError::Ended => f.write_str("the recording has ended"),
            RecordingError::StorageFull => f.write_str(STORAGE_FULL),
            RecordingError::Io(error) => write!(f, "writing the recording failed: {error}"),
        }
    }
}

const STORAGE_FULL: &str =
    "the disk holding recordings is full; what was recorded before is kept, retry later";

impl From<RecordingError> for ApiError {
    fn from(error: RecordingError) -> Self {
        match error {
            RecordingError::Invalid(errors) => ApiError::Validation(errors),
            RecordingError::Ended => ApiError::Conflict("the recording has ended".to_owned()),
            RecordingError::StorageFull => ApiError::Unavailable(STORAGE_FULL.to_owned()),
            RecordingError::Io(error) => ApiError::internal(error),
        }
    }
}

/// The recorders open on this instance.
pub struct Recorders {
    data_dir: PathBuf,
    casts: Mutex<HashMap<Id<TerminalRecording>, Arc<CastRecorder>>>,
    frames: Mutex<HashMap<Id<DesktopRecording>, Arc<FrameRecorder>>>,
}

impl Recorders {
    pub fn new(data_dir: &Path) -> Self {
        Self {
            data_dir: data_dir.to_owned(),
            casts: Mutex::default(),
            frames: Mutex::default(),
        }
    }

    /// The absolute path of a file named relative to the data directory.
    pub fn path(&self, relative: &str) -> PathBuf {
        self.data_dir.join(relative)
    }

    /// The recorder of an active terminal recording, opened if needed.
    pub fn cast(&self, recording: &TerminalRecording) -> Result<Arc<CastRecorder>, RecordingError> {
        let mut casts = self.casts.lock();
        if let Some(recorder) = casts.get(&recording.id)
            && !recorder.is_closed()
        {
            return Ok(recorder.clone());
        }
        let recorder = Arc::new(CastRecorder::open(
            recording,
            self.path(&recording.file_path),
        )?);
        casts.insert(recording.id, recorder.clone());
        Ok(recorder)
    }

    /// The recorder of a terminal recording if it is open here.
    pub fn open_cast(&self, id: Id<TerminalRecording>) -> Option<Arc<CastRecorder>> {
        self.casts.lock().get(&id).cloned()
    }

    pub fn open_frames(&self, id: Id<DesktopRecording>) -> Option<Arc<FrameRecorder>> {
        self.frames.lock().get(&id).cloned()
    }

    pub fn frames(
        &self,
        recording: &DesktopRecording,
    ) -> Result<Arc<FrameRecorder>, RecordingError> {
        let mut frames = self.frames.lock();
        if let Some(recorder) = frames.get(&recording.id)
            && !recorder.is_closed()
        {
            return Ok(recorder.clone());
        }
        let recorder = Arc::new(FrameRecorder::open(
            recording.id,
            &self.path(&recording.file_path),
        )?);
        frames.insert(recording.id, recorder.clone());
        Ok(recorder)
    }

    /// Closes a terminal recorder open here; its final progress.
    pub fn close_cast(
        &self,
        id: Id<TerminalRecording>,
    ) -> Option<spog_store::recordings::terminal::Progress> {
        let recorder = self.casts.lock().remove(&id)?;
        Some(recorder.close())
    }

    pub fn close_frames(
        &self,
        id: Id<DesktopRecording>,
    ) -> Option<spog_store::recordings::desktop::Progress> {
        let recorder = self.frames.lock().remove(&id)?;
        Some(recorder.close())
    }

    pub fn casts(&self) -> Vec<Arc<CastRecorder>> {
        self.casts.lock().values().cloned().collect()
    }

    pub fn all_frames(&self) -> Vec<Arc<FrameRecorder>> {
        self.frames.lock().values().cloned().collect()
    }

    /// Closes every recorder (at shutdown): everything written reaches the disk.
    pub fn close_all(&self) {
        let casts: Vec<_> = self.casts.lock().drain().collect();
        for (_, recorder) in casts {
            recorder.close();
        }
        let frames: Vec<_> = self.frames.lock().drain().collect();
        for (_, recorder) in frames {
            recorder.close();
        }
    }
}

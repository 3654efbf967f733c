//! Session recordings on disk (SPEC 8): one open recorder per recording being written on this
//! instance, each appending to its file under the data directory. Appends through HTTP reach
//! the file before the request is answered; stream appends are flushed by the recordings
//! worker at least every quarter second and synced to the disk every second, so a crash loses
//! at most the last second and what was written stays playable.

mod append;
pub mod cast;
pub mod content;
pub mod copy_to_storage;
pub mod deletion;
pub mod ending;
pub mod frames;
mod handles;
pub mod kind;
pub mod parts;
pub mod read;
pub mod remote;
mod remove;
pub mod seal;
pub mod storage;
pub mod text;

use std::collections::HashMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use parking_lot::Mutex;
use spog_core::recordings::{DesktopRecording, TerminalRecording};
use spog_core::{FieldError, FieldErrors, Id};

use crate::blocking::Blocking;
use crate::error::ApiError;
pub use cast::{Appended, CastRecorder};
pub use frames::FrameRecorder;
use handles::FileHandles;
use kind::{Recorded, Recorder};
pub use remove::remove_content;

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

impl From<RecordingError> for io::Error {
    fn from(error: RecordingError) -> Self {
        match error {
            RecordingError::Io(error) => error,
            RecordingError::StorageFull => io::Error::new(io::ErrorKind::StorageFull, STORAGE_FULL),
            other => io::Error::other(other.to_string()),
        }
    }
}

pub(crate) const STORAGE_FULL: &str =
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

/// The recorders open on this instance: one per active recording written here, their files
/// behind a bounded cache of descriptors, their file work on the bounded blocking pool.
pub struct Recorders {
    data_dir: PathBuf,
    handles: Arc<FileHandles>,
    blocking: Blocking,
    casts: Mutex<HashMap<Id<TerminalRecording>, Arc<CastRecorder>>>,
    frames: Mutex<HashMap<Id<DesktopRecording>, Arc<FrameRecorder>>>,
}

impl Recorders {
    /// `open_files`: recording files kept open at once.
    pub fn new(data_dir: &Path, open_files: usize, blocking: Blocking) -> Self {
        Self {
            data_dir: data_dir.to_owned(),
            handles: Arc::new(FileHandles::new(open_files)),
            blocking,
            casts: Mutex::default(),
            frames: Mutex::default(),
        }
    }

    /// The absolute path of a file named relative to the data directory.
    pub fn path(&self, relative: &str) -> PathBuf {
        self.data_dir.join(relative)
    }

    /// Recording files with a descriptor open now.
    pub fn open_files(&self) -> usize {
        self.handles.len()
    }

    /// The recorder of an active recording, opened (its files created) if needed.
    pub async fn recorder<K: Recorded>(
        &self,
        recording: &K,
    ) -> Result<Arc<K::Recorder>, RecordingError> {
        let id = recording.id();
        if let Some(recorder) = self.open(id).filter(|r| !r.is_closed()) {
            return Ok(recorder);
        }
        let (opened, path, handles) = (
            recording.clone(),
            self.path(recording.file_path()),
            self.handles.clone(),
        );
        let recorder = self
            .blocking
            .run(move || K::Recorder::open(&opened, path, handles))
            .await?;
        let mut open = K::open_here(self).lock();
        match open.get(&id) {
            // Opened meanwhile by another request: the same file, so either will do.
            Some(existing) if !existing.is_closed() => Ok(existing.clone()),
            _ => {
                let recorder = Arc::new(recorder);
                open.insert(id, recorder.clone());
                Ok(recorder)
            }
        }
    }

    /// The recorder of a recording if it is open here.
    pub fn open<K: Recorded>(&self, id: Id<K>) -> Option<Arc<K::Recorder>> {
        K::open_here(self).lock().get(&id).cloned()
    }

    /// Every recorder of a kind open here.
    pub fn all<K: Recorded>(&self) -> Vec<Arc<K::Recorder>> {
        K::open_here(self).lock().values().cloned().collect()
    }

    /// Closes a recorder open here; its final progress.
    pub async fn close<K: Recorded>(&self, id: Id<K>) -> Option<K::Progress> {
        let recorder = K::open_here(self).lock().remove(&id)?;
        Some(self.blocking.run(move || recorder.close()).await)
    }

    /// Undoes the opening of a recording whose row never committed: its recorder is closed
    /// and its files removed, so nothing is left of it.
    pub async fn discard<K: Recorded>(&self, id: Id<K>, relative_path: &str) {
        self.close(id).await;
        if let Err(error) = self.remove_files(relative_path).await {
            tracing::warn!(%error, file = relative_path, "removing a recording that did not start");
        }
    }

    /// Removes a recording's files (a desktop recording's seek index with its frames); files
    /// already gone are not an error.
    pub(crate) async fn remove_files(&self, relative_path: &str) -> io::Result<()> {
        let path = self.path(relative_path);
        self.blocking
            .run(move || {
                for file in [frames::index_path(&path), path.clone()] {
                    match std::fs::remove_file(&file) {
                        Err(e) if e.kind() != io::ErrorKind::NotFound => {
                            return Err(io::Error::new(
                                e.kind(),
                                format!("{}: {e}", file.display()),
                            ));
                        }
                        _ => {}
                    }
                }
                Ok(())
            })
            .await
    }

    /// Closes every recorder (at shutdown): everything written reaches the disk.
    pub async fn close_all(&self) {
        let casts: Vec<_> = self.casts.lock().drain().map(|(_, r)| r).collect();
        let frames: Vec<_> = self.frames.lock().drain().map(|(_, r)| r).collect();
        self.blocking
            .run(move || {
                for recorder in casts {
                    recorder.close();
                }
                for recorder in frames {
                    recorder.close();
                }
            })
            .await;
    }
}

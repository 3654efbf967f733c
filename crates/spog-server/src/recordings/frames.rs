//! Desktop recordings: a frames file of records `[elapsed_ms u64 LE][len u32 LE][image]` and
//! beside it a seek index of `[elapsed_ms u64 LE][offset u64 LE][len u32 LE]` per frame. The
//! frames file is the truth: the index may lag it by the last unflushed frames, and readers
//! scan past the index's end for them.

use std::io::{self, Read};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use parking_lot::Mutex;
use spog_core::recordings::DesktopRecording;
use spog_core::{FieldError, Id};
use spog_store::recordings::desktop::Progress;
use tokio::sync::Notify;

use super::RecordingError;
use super::append::AppendFile;
use super::handles::FileHandles;
use super::kind::{Activity, Recorder};

const HEADER: usize = 12;
const ENTRY: usize = 20;
const FLUSH_AT: usize = 1024 * 1024;

/// One frame's place in the frames file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Frame {
    pub elapsed_ms: u64,
    /// Offset of the image (after the record header).
    pub offset: u64,
    pub len: u32,
}

pub fn index_path(frames: &Path) -> PathBuf {
    frames.with_extension("index")
}

pub struct FrameRecorder {
    pub id: Id<DesktopRecording>,
    pub path: PathBuf,
    state: Mutex<State>,
    closed: AtomicBool,
    pub closing: Notify,
    pub streams: AtomicUsize,
}

#[derive(Clone, Copy, Default)]
struct Counters {
    last_ms: u64,
    frames: i64,
    bytes: i64,
}

struct State {
    frames: AppendFile,
    index: AppendFile,
    now: Counters,
    flushed: Counters,
    activity: Activity,
}

impl Recorder<DesktopRecording> for FrameRecorder {
    fn open(
        recording: &DesktopRecording,
        path: PathBuf,
        handles: Arc<FileHandles>,
    ) -> io::Result<Self> {
        Self::recover(recording.id, &path, handles)
    }

    fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    fn path(&self) -> &Path {
        &self.path
    }

    fn flush(&self) -> Result<(), RecordingError> {
        flush_locked(&mut self.state.lock())
    }

    /// Flushes and syncs to the disk; the sync runs without holding the recorder.
    fn sync(&self) -> Result<(), RecordingError> {
        let unsynced = {
            let mut state = self.state.lock();
            flush_locked(&mut state)?;
            [state.frames.take_unsynced()?, state.index.take_unsynced()?]
        };
        for file in unsynced.into_iter().flatten() {
            file.sync_data()?;
        }
        Ok(())
    }

    fn touch(&self) {
        self.state.lock().activity.heard();
    }

    fn take_progress(&self) -> Option<Progress> {
        let mut state = self.state.lock();
        state.activity.take_unreported().then(|| progress(&state))
    }

    fn close(&self) -> Progress {
        let mut state = self.state.lock();
        self.closed.store(true, Ordering::Release);
        let synced = flush_locked(&mut state).and_then(|()| {
            state.frames.sync()?;
            state.index.sync()?;
            Ok(())
        });
        if let Err(error) = synced {
            tracing::warn!(recording = %self.id, %error, "closing a desktop recording");
        }
        state.frames.release();
        state.index.release();
        self.closing.notify_waiters();
        progress(&state)
    }

    fn id(&self) -> Id<DesktopRecording> {
        self.id
    }

    fn streams(&self) -> &AtomicUsize {
        &self.streams
    }

    fn closing(&self) -> &Notify {
        &self.closing
    }
}

impl FrameRecorder {
    /// Opens the files of a recording, recovering what an earlier writer left: the frames
    /// file is cut after its last complete frame and the index rebuilt from it.
    /// Blocking: call it off the async threads.
    fn recover(
        id: Id<DesktopRecording>,
        path: &Path,
        handles: Arc<FileHandles>,
    ) -> io::Result<Self> {
        let (frames_list, len) = match std::fs::File::open(path) {
            Ok(file) => scan(&file, 0, file.metadata()?.len())?,
            Err(e) if e.kind() == io::ErrorKind::NotFound => (Vec::new(), 0),
            Err(e) => return Err(e),
        };
        let frames = AppendFile::open(path, Some(len), handles.clone())?;
        let mut index = AppendFile::open(&index_path(path), Some(0), handles)?;
        let mut entries = Vec::with_capacity(frames_list.len() * ENTRY);
        let mut counters = Counters::default();
        for frame in &frames_list {
            push_entry(&mut entries, frame);
            counters.last_ms = frame.elapsed_ms;
            counters.frames += 1;
            counters.bytes += i64::from(frame.len);
        }
        index.rewrite(&entries)?;
        Ok(Self {
            id,
            path: path.to_owned(),
            state: Mutex::new(State {
                frames,
                index,
                now: counters,
                flushed: counters,
                activity: Activity::default(),
            }),
            closed: AtomicBool::new(false),
            closing: Notify::new(),
            streams: AtomicUsize::new(0),
        })
    }

    /// Records one frame (an image already checked) taken `elapsed_ms` after the start.
    pub fn append(
        &self,
        elapsed_ms: u64,
        image: &[u8],
        field: &str,
        flush: bool,
    ) -> Result<i64, RecordingError> {
        let mut state = self.state.lock();
        if self.is_closed() {
            return Err(RecordingError::Ended);
        }
        if elapsed_ms < state.now.last_ms {
            return Err(FieldError::new(
                field,
                format!(
                    "is earlier than the frame before it ({} ms); frames must be in time order",
                    state.now.last_ms
                ),
            )
            .into());
        }
        let len = u32::try_from(image.len())
            .map_err(|_| FieldError::new("body", "is too large for one frame"))?;
        let state = &mut *state;
        let frame = Frame {
            elapsed_ms,
            offset: state.frames.end() + HEADER as u64,
            len,
        };
        let buffer = state.frames.buffer();
        buffer.extend_from_slice(&elapsed_ms.to_le_bytes());
        buffer.extend_from_slice(&len.to_le_bytes());
        buffer.extend_from_slice(image);
        push_entry(state.index.buffer(), &frame);
        state.now.last_ms = elapsed_ms;
        state.now.frames += 1;
        state.now.bytes += i64::from(len);
        state.activity.heard();
        if flush || state.frames.pending() >= FLUSH_AT {
            flush_locked(state)?;
        }
        Ok(state.now.frames)
    }
}

fn flush_locked(state: &mut State) -> Result<(), RecordingError> {
    if let Err(error) = state.frames.flush() {
        // The index must not point at frames that never reached the file.
        state.index.buffer().clear();
        state.now = state.flushed;
        return Err(error.into());
    }
    state.flushed = state.now;
    // The frames are safe; an index that fails to grow is rebuilt on the next open.
    if let Err(error) = state.index.flush() {
        tracing::warn!(%error, "writing a desktop recording's index");
    }
    Ok(())
}

fn progress(state: &State) -> Progress {
    Progress {
        duration_ms: state.flushed.last_ms as i64,
        frame_count: state.flushed.frames,
        total_bytes: state.flushed.bytes,
        last_activity_at: state.activity.last,
    }
}

fn push_entry(out: &mut Vec<u8>, frame: &Frame) {
    out.extend_from_slice(&frame.elapsed_ms.to_le_bytes());
    out.extend_from_slice(&frame.offset.to_le_bytes());
    out.extend_from_slice(&frame.len.to_le_bytes());
}

/// Complete frames of the frames file between `from` and `end`, and where the last ends.
pub fn scan(file: &std::fs::File, from: u64, end: u64) -> io::Result<(Vec<Frame>, u64)> {
    let mut frames = Vec::new();
    let mut position = from;
    let mut header = [0u8; HEADER];
    while position + HEADER as u64 <= end {
        file.read_exact_at(&mut header, position)?;
        let elapsed_ms = u64::from_le_bytes(header[..8].try_into().expect("8 bytes"));
        let len = u32::from_le_bytes(header[8..].try_into().expect("4 bytes"));
        let next = position + HEADER as u64 + u64::from(len);
        if next > end
            || frames
                .last()
                .is_some_and(|f: &Frame| f.elapsed_ms > elapsed_ms)
        {
            break;
        }
        frames.push(Frame {
            elapsed_ms,
            offset: position + HEADER as u64,
            len,
        });
        position = next;
    }
    Ok((frames, position))
}

/// The frames of a recording as far as its files hold complete ones: the index, then any
/// frames written after the index's end.
pub fn load(path: &Path) -> io::Result<Vec<Frame>> {
    let file = std::fs::File::open(path)?;
    let end = file.metadata()?.len();
    let mut bytes = Vec::new();
    match std::fs::File::open(index_path(path)) {
        Ok(mut index) => {
            index.read_to_end(&mut bytes)?;
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    let mut frames: Vec<Frame> = bytes
        .chunks_exact(ENTRY)
        .map(|entry| Frame {
            elapsed_ms: u64::from_le_bytes(entry[..8].try_into().expect("8 bytes")),
            offset: u64::from_le_bytes(entry[8..16].try_into().expect("8 bytes")),
            len: u32::from_le_bytes(entry[16..].try_into().expect("4 bytes")),
        })
        .take_while(|f| f.offset + u64::from(f.len) <= end)
        .collect();
    let from = frames
        .last()
        .map(|f| f.offset + u64::from(f.len))
        .unwrap_or(0);
    let (more, _) = scan(&file, from, end)?;
    frames.extend(more);
    Ok(frames)
}

/// The image of `frame`.
pub fn read(file: &std::fs::File, frame: &Frame) -> io::Result<Vec<u8>> {
    let mut image = vec![0u8; frame.len as usize];
    file.read_exact_at(&mut image, frame.offset)?;
    Ok(image)
}

/// The index of the frame showing at `ms`: the last one at or before it.
pub fn at(frames: &[Frame], ms: u64) -> usize {
    frames
        .partition_point(|f| f.elapsed_ms <= ms)
        .saturating_sub(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_torn_last_frame_is_cut_off_and_the_index_rebuilt_on_reopen() {
        let dir = std::env::temp_dir().join(format!("spog-frames-{}", uuid::Uuid::now_v7()));
        let path = dir.join("r.frames");
        let id = Id::new();
        let handles = || Arc::new(FileHandles::new(4));
        let recorder = FrameRecorder::recover(id, &path, handles()).unwrap();
        recorder.append(0, b"\xFF\xD8\xFFone", "f", false).unwrap();
        recorder.append(40, b"\xFF\xD8\xFFtwo", "f", true).unwrap();
        assert!(recorder.append(30, b"\xFF\xD8\xFFold", "f", true).is_err());
        drop(recorder);
        // A frame whose header made it to the disk but not all of its image.
        let mut torn = 80u64.to_le_bytes().to_vec();
        torn.extend(1000u32.to_le_bytes());
        torn.extend(b"\xFF\xD8");
        let mut file = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap();
        std::io::Write::write_all(&mut file, &torn).unwrap();
        std::fs::remove_file(index_path(&path)).unwrap();

        let loaded = load(&path).unwrap();
        assert_eq!(loaded.len(), 2, "readers stop at the torn frame");
        let recorder = FrameRecorder::recover(id, &path, handles()).unwrap();
        recorder
            .append(60, b"\xFF\xD8\xFFthree", "f", true)
            .unwrap();
        let progress = recorder.close();
        assert_eq!(progress.frame_count, 3);
        assert_eq!(progress.duration_ms, 60);
        let loaded = load(&path).unwrap();
        let file = std::fs::File::open(&path).unwrap();
        let images: Vec<Vec<u8>> = loaded.iter().map(|f| read(&file, f).unwrap()).collect();
        assert_eq!(images[2], b"\xFF\xD8\xFFthree");
        assert_eq!(at(&loaded, 50), 1);
        assert_eq!(at(&loaded, 0), 0);
        std::fs::remove_dir_all(dir).unwrap();
    }
}

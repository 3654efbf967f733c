//! Terminal recordings as asciicast v2 files: a header line, then one event per line. The
//! recorder appends checked events; readers take complete lines only, so a recording being
//! written (or cut short by a crash) always reads as a valid file.

use std::io::{self, BufRead, BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use parking_lot::Mutex;
use spog_core::recordings::{
    CastEvent, EventCode, RawEvent, TerminalRecording, check_event, file_header, write_event,
};
use spog_core::{FieldErrors, Id};
use spog_store::recordings::terminal::Progress;
use tokio::sync::Notify;

use super::RecordingError;
use super::append::AppendFile;
use super::handles::FileHandles;
use super::kind::{Activity, Recorder};

/// Buffered bytes beyond which an append writes at once.
const FLUSH_AT: usize = 256 * 1024;

pub struct CastRecorder {
    pub id: Id<TerminalRecording>,
    pub path: PathBuf,
    state: Mutex<State>,
    closed: AtomicBool,
    /// Woken when the recorder closes (an ingest stream then ends).
    pub closing: Notify,
    /// Woken after bytes reach the file (live followers read them).
    pub written: Notify,
    /// Ingest streams connected: a connected source is not silent.
    pub streams: AtomicUsize,
}

#[derive(Clone, Copy, Default)]
struct Counters {
    last_time: f64,
    bytes_in: i64,
    bytes_out: i64,
    events: i64,
}

struct State {
    file: AppendFile,
    /// What the buffered events add up to.
    now: Counters,
    /// What the file holds.
    flushed: Counters,
    activity: Activity,
}

/// What one append did.
#[derive(Debug, Default, serde::Serialize, utoipa::ToSchema)]
pub struct Appended {
    /// Events accepted.
    pub accepted: usize,
    /// Input events accepted but not recorded (input capture is off).
    pub dropped: usize,
}

impl Recorder<TerminalRecording> for CastRecorder {
    /// Opens the file of `recording`, writing its header if new, or recovering what a
    /// previous writer left (counters, and a torn last line cut off).
    /// Blocking: call it off the async threads.
    fn open(
        recording: &TerminalRecording,
        path: PathBuf,
        handles: Arc<FileHandles>,
    ) -> io::Result<Self> {
        let (len, counters) = match std::fs::File::open(&path) {
            Ok(file) => recover(file)?,
            Err(e) if e.kind() == io::ErrorKind::NotFound => (None, Counters::default()),
            Err(e) => return Err(e),
        };
        let mut file = AppendFile::open(&path, len, handles)?;
        if file.end() == 0 {
            let header = file_header(
                recording.width,
                recording.height,
                recording.started_at,
                &recording.shell,
            );
            file.buffer().extend_from_slice(header.as_bytes());
            file.buffer().push(b'\n');
            file.flush()?;
        }
        Ok(Self {
            id: recording.id,
            path,
            state: Mutex::new(State {
                file,
                now: counters,
                flushed: counters,
                activity: Activity::default(),
            }),
            closed: AtomicBool::new(false),
            closing: Notify::new(),
            written: Notify::new(),
            streams: AtomicUsize::new(0),
        })
    }

    fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    fn path(&self) -> &Path {
        &self.path
    }

    /// Writes what is buffered.
    fn flush(&self) -> Result<(), RecordingError> {
        let mut state = self.state.lock();
        self.flush_locked(&mut state)
    }

    /// Flushes and syncs to the disk; the sync runs without holding the recorder, so
    /// appends go on meanwhile.
    fn sync(&self) -> Result<(), RecordingError> {
        let unsynced = {
            let mut state = self.state.lock();
            self.flush_locked(&mut state)?;
            state.file.take_unsynced()?
        };
        if let Some(file) = unsynced {
            file.sync_data()?;
        }
        Ok(())
    }

    /// Notes that a connected source is alive though it sends nothing.
    fn touch(&self) {
        self.state.lock().activity.heard();
    }

    /// Progress as far as the file holds it, if it changed since the last call.
    fn take_progress(&self) -> Option<Progress> {
        let mut state = self.state.lock();
        state.activity.take_unreported().then(|| progress(&state))
    }

    /// Stops taking events: flushes, syncs, wakes streams. Returns the final progress.
    fn close(&self) -> Progress {
        let mut state = self.state.lock();
        self.closed.store(true, Ordering::Release);
        if let Err(error) = self.flush_locked(&mut state).and_then(|()| {
            state.file.sync()?;
            Ok(())
        }) {
            tracing::warn!(recording = %self.id, %error, "closing a terminal recording");
        }
        state.file.release();
        self.closing.notify_waiters();
        self.written.notify_waiters();
        progress(&state)
    }

    fn id(&self) -> Id<TerminalRecording> {
        self.id
    }

    fn streams(&self) -> &AtomicUsize {
        &self.streams
    }

    fn closing(&self) -> &Notify {
        &self.closing
    }
}

impl CastRecorder {
    /// Checks `events` as a whole, then records them; with `flush`, they are in the file
    /// when this returns. Input events are dropped here when `record_input` is off.
    pub fn append(
        &self,
        events: Vec<RawEvent>,
        record_input: bool,
        field: &str,
        flush: bool,
    ) -> Result<Appended, RecordingError> {
        let mut state = self.state.lock();
        if self.is_closed() {
            return Err(RecordingError::Ended);
        }
        let mut previous = state.now.last_time;
        let mut checked = Vec::with_capacity(events.len());
        let mut errors = FieldErrors::new();
        for (i, raw) in events.into_iter().enumerate() {
            match check_event("", raw, previous) {
                Ok(event) => {
                    previous = event.time;
                    checked.push(event);
                }
                Err(error) => {
                    // The event's place is named only when something is wrong with it.
                    errors.add(spog_core::FieldError::new(
                        format!("{field}[{i}]{}", error.field),
                        error.message,
                    ));
                    break;
                }
            }
        }
        errors.into_result()?;
        let mut appended = Appended::default();
        let state = &mut *state;
        for event in &checked {
            appended.accepted += 1;
            state.now.last_time = event.time;
            if event.code == EventCode::Input && !record_input {
                appended.dropped += 1;
                continue;
            }
            count(&mut state.now, event);
            write_event(state.file.buffer(), event);
        }
        state.activity.heard();
        if flush || state.file.pending() >= FLUSH_AT {
            self.flush_locked(state)?;
        }
        Ok(appended)
    }

    /// Records one event of a session spog relays itself (SPEC 13.2), taken as it is: the
    /// relay made it. Its time is moved up to the last event's when the clock of the other
    /// side (agent or hub) is behind. True when enough is buffered that the caller should
    /// [`Recorder::flush`] it off the async threads.
    pub fn record(&self, time: f64, code: EventCode, data: String) -> Result<bool, RecordingError> {
        let mut state = self.state.lock();
        if self.is_closed() {
            return Err(RecordingError::Ended);
        }
        let event = CastEvent {
            time: time.max(state.now.last_time),
            code,
            data,
        };
        state.now.last_time = event.time;
        count(&mut state.now, &event);
        write_event(state.file.buffer(), &event);
        state.activity.heard();
        Ok(state.file.pending() >= FLUSH_AT)
    }

    fn flush_locked(&self, state: &mut State) -> Result<(), RecordingError> {
        if state.file.pending() == 0 {
            return Ok(());
        }
        match state.file.flush() {
            Ok(()) => {
                state.flushed = state.now;
                self.written.notify_waiters();
                Ok(())
            }
            Err(error) => {
                state.now = state.flushed;
                Err(error.into())
            }
        }
    }

    pub fn progress(&self) -> Progress {
        progress(&self.state.lock())
    }

    /// Length of the file up to its last complete line.
    pub fn flushed_len(&self) -> u64 {
        self.state.lock().file.flushed()
    }
}

fn progress(state: &State) -> Progress {
    Progress {
        duration_micros: (state.flushed.last_time * 1e6).round() as i64,
        bytes_in: state.flushed.bytes_in,
        bytes_out: state.flushed.bytes_out,
        event_count: state.flushed.events,
        last_activity_at: state.activity.last,
    }
}

fn count(counters: &mut Counters, event: &CastEvent) {
    counters.events += 1;
    match event.code {
        EventCode::Input => counters.bytes_in += event.data.len() as i64,
        EventCode::Output => counters.bytes_out += event.data.len() as i64,
        EventCode::Resize | EventCode::Marker => {}
    }
}

/// Reads a recording file left by an earlier writer: the length up to its last valid line
/// and what it holds.
fn recover(file: std::fs::File) -> io::Result<(Option<u64>, Counters)> {
    let mut reader = BufReader::with_capacity(256 * 1024, file);
    let mut counters = Counters::default();
    let mut line = Vec::new();
    let mut good = 0u64;
    let mut first = true;
    loop {
        line.clear();
        let n = reader.read_until(b'\n', &mut line)?;
        if n == 0 || line.last() != Some(&b'\n') {
            break;
        }
        if first {
            first = false;
            if serde_json::from_slice::<serde_json::Value>(&line).is_err() {
                // Not even a header: start the file again.
                return Ok((Some(0), Counters::default()));
            }
        } else {
            let Ok(raw) = serde_json::from_slice::<RawEvent>(&line) else {
                break;
            };
            let Ok(event) = check_event("event", raw, counters.last_time) else {
                break;
            };
            counters.last_time = event.time;
            count(&mut counters, &event);
        }
        good += n as u64;
    }
    Ok((Some(good), counters))
}

/// The header line of a recording file and where its events start.
pub fn read_header(path: &Path) -> io::Result<(String, u64)> {
    read_header_of(&std::fs::File::open(path)?)
}

/// [`read_header`] of a file already open.
pub fn read_header_of(mut file: &std::fs::File) -> io::Result<(String, u64)> {
    file.seek(SeekFrom::Start(0))?;
    let mut reader = BufReader::new(file.take(64 * 1024));
    let mut header = String::new();
    reader.read_line(&mut header)?;
    if !header.ends_with('\n') {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "the recording file has no header line",
        ));
    }
    let offset = header.len() as u64;
    header.pop();
    Ok((header, offset))
}

/// Reads complete lines from `offset` up to `end`, in chunks of about `chunk` bytes, calling
/// `each` with every chunk; stops early when `each` returns false. Returns where it stopped
/// (the end of the last complete line).
pub fn read_lines(
    path: &Path,
    offset: u64,
    end: Option<u64>,
    chunk: usize,
    each: impl FnMut(&[u8]) -> bool,
) -> io::Result<u64> {
    read_lines_of(&std::fs::File::open(path)?, offset, end, chunk, each)
}

/// [`read_lines`] of a file already open (a reader that must outlive the file's name).
pub fn read_lines_of(
    mut file: &std::fs::File,
    offset: u64,
    end: Option<u64>,
    chunk: usize,
    mut each: impl FnMut(&[u8]) -> bool,
) -> io::Result<u64> {
    let end = match end {
        Some(end) => end,
        None => file.metadata()?.len(),
    };
    file.seek(SeekFrom::Start(offset))?;
    let mut position = offset;
    let mut buf = vec![0u8; chunk];
    let mut carry = 0usize;
    while position + (carry as u64) < end {
        let want = ((end - position) as usize - carry).min(buf.len() - carry);
        if want == 0 {
            // A single line longer than the buffer: grow it.
            buf.resize(buf.len() * 2, 0);
            continue;
        }
        let n = file.read(&mut buf[carry..carry + want])?;
        if n == 0 {
            break;
        }
        let filled = carry + n;
        let Some(last) = buf[..filled].iter().rposition(|&b| b == b'\n') else {
            carry = filled;
            continue;
        };
        if !each(&buf[..=last]) {
            return Ok(position + last as u64 + 1);
        }
        position += last as u64 + 1;
        buf.copy_within(last + 1..filled, 0);
        carry = filled - last - 1;
    }
    Ok(position)
}

//! The spool of `spog-agent shell` sessions (SPEC 13.3): `{state_dir}/spool/`, one pair of files
//! per session: `{id}.json` (what `shell_start` says, and the end) and `{id}.rec` (its records,
//! as the client sent them). The user's shell never waits on the hub: the agent appends here,
//! fsyncs at least every second, and uploads from here once connected. All sessions together
//! hold at most `shell.buffer_limit` bytes; past it a session's newer bytes are dropped and it
//! is marked truncated. Files are removed once the hub has acknowledged every byte.
//!
//! Blocking (files): used from the sessions' own threads and from the blocking pool.

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use tokio::sync::Notify;

use super::record::{Record, RecordReader, Tag};
use crate::facts::rfc3339;

/// Written data reaches the disk at least this often.
const SYNC_EVERY: Duration = Duration::from_secs(1);

/// What `shell_start` and `shell_end` say about a session.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionMeta {
    /// Even: the agent's.
    pub channel: u32,
    pub os_user: String,
    pub client_addr: Option<String>,
    pub shell: String,
    pub cols: u16,
    pub rows: u16,
    pub started_at: String,
    /// Set once the session ended (the client closed its socket, or the agent restarted).
    pub ended_at: Option<String>,
    /// Bytes were dropped because the spool was full.
    pub truncated: bool,
}

/// A session as the spool knows it.
#[derive(Clone, Debug)]
pub struct Spooled {
    pub id: String,
    pub meta: SessionMeta,
    /// Bytes of complete records in `{id}.rec`.
    pub written: u64,
}

pub struct Spool {
    dir: PathBuf,
    limit: u64,
    state: Mutex<State>,
    /// A session started: the connection starts its upload.
    pub started: Notify,
    /// A session grew or ended: its upload reads on.
    pub changed: Notify,
}

struct State {
    /// Bytes of every `.rec` file.
    used: u64,
    sessions: BTreeMap<String, Spooled>,
    next_channel: u32,
}

impl Spool {
    /// Opens (creating it 0700) the spool directory. Sessions a previous run left are ended:
    /// their clients were talking to that run.
    pub fn open(dir: &Path, limit: u64) -> io::Result<Self> {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)?;
        let mut sessions = BTreeMap::new();
        let mut used = 0;
        let mut next_channel = 2;
        for entry in fs::read_dir(dir)? {
            let path = entry?.path();
            if path.extension().is_none_or(|e| e != "json") {
                continue;
            }
            let Some(id) = path.file_stem().and_then(|s| s.to_str()).map(str::to_owned) else {
                continue;
            };
            match recover(dir, &id) {
                Ok(spooled) => {
                    used += fs::metadata(rec_path(dir, &id)).map_or(0, |m| m.len());
                    next_channel = next_channel.max(spooled.meta.channel.saturating_add(2));
                    sessions.insert(id, spooled);
                }
                Err(e) => {
                    tracing::warn!(session = %id, error = %e, "dropped an unreadable spooled session");
                    let _ = fs::remove_file(meta_path(dir, &id));
                    let _ = fs::remove_file(rec_path(dir, &id));
                }
            }
        }
        if !sessions.is_empty() {
            tracing::info!(
                sessions = sessions.len(),
                bytes = used,
                "spooled shell sessions to upload"
            );
        }
        Ok(Self {
            dir: dir.to_owned(),
            limit,
            state: Mutex::new(State {
                used,
                sessions,
                next_channel,
            }),
            started: Notify::new(),
            changed: Notify::new(),
        })
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Every session in the spool, oldest first.
    pub fn sessions(&self) -> Vec<Spooled> {
        self.state().sessions.values().cloned().collect()
    }

    pub fn session(&self, id: &str) -> Option<Spooled> {
        self.state().sessions.get(id).cloned()
    }

    /// Starts a session: gives it a channel and its files.
    pub fn start(self: &Arc<Self>, mut meta: SessionMeta) -> io::Result<SessionWriter> {
        let (id, channel) = {
            let mut state = self.state();
            let channel = state.next_channel;
            state.next_channel = channel.checked_add(2).unwrap_or(2);
            let micros = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap_or_default()
                .as_micros();
            (format!("{micros:020}-{channel}"), channel)
        };
        meta.channel = channel;
        write_meta(&self.dir, &id, &meta)?;
        let file = OpenOptions::new()
            .create_new(true)
            .append(true)
            .mode(0o600)
            .open(rec_path(&self.dir, &id))?;
        self.state().sessions.insert(
            id.clone(),
            Spooled {
                id: id.clone(),
                meta: meta.clone(),
                written: 0,
            },
        );
        // A permit is kept when the connection is not waiting at this moment.
        self.started.notify_one();
        Ok(SessionWriter {
            spool: self.clone(),
            id,
            meta,
            file,
            dirty: false,
            last_sync: Instant::now(),
        })
    }

    /// Up to `max` bytes of a session's records from `offset`, complete records only up to
    /// what was written.
    pub fn read(&self, id: &str, offset: u64, max: usize) -> io::Result<Vec<u8>> {
        let written = self.session(id).map_or(0, |s| s.written);
        let len = written.saturating_sub(offset).min(max as u64) as usize;
        let mut bytes = vec![0u8; len];
        if len > 0 {
            let mut file = File::open(rec_path(&self.dir, id))?;
            file.seek(SeekFrom::Start(offset))?;
            file.read_exact(&mut bytes)?;
        }
        Ok(bytes)
    }

    /// The hub has every byte of an ended session: its files go, and their room with them.
    pub fn remove(&self, id: &str) -> io::Result<()> {
        let size = fs::metadata(rec_path(&self.dir, id)).map_or(0, |m| m.len());
        fs::remove_file(rec_path(&self.dir, id))?;
        fs::remove_file(meta_path(&self.dir, id))?;
        let mut state = self.state();
        state.sessions.remove(id);
        state.used = state.used.saturating_sub(size);
        Ok(())
    }

    /// Room for `len` more bytes; taken when there is.
    fn reserve(&self, len: u64) -> bool {
        let mut state = self.state();
        if state.used + len > self.limit {
            return false;
        }
        state.used += len;
        true
    }

    fn update(&self, id: &str, change: impl FnOnce(&mut Spooled)) {
        if let Some(spooled) = self.state().sessions.get_mut(id) {
            change(spooled);
        }
        self.changed.notify_waiters();
    }
}

/// Appends one session's records, from the thread that reads its client.
pub struct SessionWriter {
    spool: Arc<Spool>,
    id: String,
    meta: SessionMeta,
    file: File,
    dirty: bool,
    last_sync: Instant,
}

impl SessionWriter {
    pub fn channel(&self) -> u32 {
        self.meta.channel
    }

    /// Appends a record; when the spool is full, drops it and every later one (the exit is
    /// always kept: it is a few bytes) and marks the session truncated. A recording has at
    /// most one gap, at its end.
    pub fn append(&mut self, record: &Record) -> io::Result<()> {
        let len = record.encoded_len();
        if self.meta.truncated && record.tag != Tag::Exit {
            return Ok(());
        }
        if !self.spool.reserve(len) {
            if record.tag != Tag::Exit {
                self.truncate()?;
                return Ok(());
            }
            self.spool.state().used += len;
        }
        self.file.write_all(&record.encode())?;
        self.dirty = true;
        self.spool.update(&self.id, |s| s.written += len);
        self.sync_if_due()
    }

    fn truncate(&mut self) -> io::Result<()> {
        if !self.meta.truncated {
            tracing::warn!(
                channel = self.meta.channel,
                "the shell spool is full: dropping this session's newer bytes"
            );
            self.meta.truncated = true;
            write_meta(&self.spool.dir, &self.id, &self.meta)?;
            self.spool.update(&self.id, |s| s.meta.truncated = true);
        }
        Ok(())
    }

    /// fsync when data waits and the last one is a second old.
    pub fn sync_if_due(&mut self) -> io::Result<()> {
        if self.dirty && self.last_sync.elapsed() >= SYNC_EVERY {
            self.file.sync_data()?;
            self.dirty = false;
            self.last_sync = Instant::now();
        }
        Ok(())
    }

    /// The client is gone: the session ends now.
    pub fn finish(mut self) -> io::Result<()> {
        self.file.sync_data()?;
        self.meta.ended_at = Some(rfc3339(SystemTime::now()));
        write_meta(&self.spool.dir, &self.id, &self.meta)?;
        let ended_at = self.meta.ended_at.clone();
        self.spool.update(&self.id, |s| s.meta.ended_at = ended_at);
        Ok(())
    }
}

/// A session a previous run left: its complete records, ended if it was not.
fn recover(dir: &Path, id: &str) -> io::Result<Spooled> {
    let text = fs::read_to_string(meta_path(dir, id))?;
    let mut meta: SessionMeta = serde_json::from_str(&text).map_err(io::Error::other)?;
    let rec = rec_path(dir, id);
    let mut file = File::open(&rec)?;
    let mut reader = RecordReader::default();
    let mut written = 0;
    loop {
        match reader.next(&mut file) {
            Ok(Some(record)) => written += record.encoded_len(),
            Ok(None) => break,
            // A record cut short by a crash: what came before it is the session.
            Err(e) if e.kind() == io::ErrorKind::InvalidData => break,
            Err(e) => return Err(e),
        }
    }
    if fs::metadata(&rec)?.len() != written {
        OpenOptions::new()
            .write(true)
            .open(&rec)?
            .set_len(written)?;
    }
    if meta.ended_at.is_none() {
        let modified = fs::metadata(&rec)?
            .modified()
            .unwrap_or_else(|_| SystemTime::now());
        meta.ended_at = Some(rfc3339(modified));
        write_meta(dir, id, &meta)?;
    }
    Ok(Spooled {
        id: id.to_owned(),
        meta,
        written,
    })
}

fn meta_path(dir: &Path, id: &str) -> PathBuf {
    dir.join(format!("{id}.json"))
}

fn rec_path(dir: &Path, id: &str) -> PathBuf {
    dir.join(format!("{id}.rec"))
}

/// Written whole or not at all: a temporary file, fsynced, renamed over.
fn write_meta(dir: &Path, id: &str, meta: &SessionMeta) -> io::Result<()> {
    let path = meta_path(dir, id);
    let temporary = dir.join(format!("{id}.json.tmp"));
    let mut file = OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .mode(0o600)
        .open(&temporary)?;
    file.write_all(&serde_json::to_vec(meta).map_err(io::Error::other)?)?;
    file.sync_all()?;
    fs::rename(&temporary, &path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shell::record::Ending;

    fn meta() -> SessionMeta {
        SessionMeta {
            channel: 0,
            os_user: "alice".into(),
            client_addr: Some("192.0.2.7:50022".into()),
            shell: "/bin/bash".into(),
            cols: 80,
            rows: 24,
            started_at: "2026-12-07T10:00:00.000000Z".into(),
            ended_at: None,
            truncated: false,
        }
    }

    fn output(text: &str) -> Record {
        Record {
            tag: Tag::Output,
            elapsed_us: 1,
            data: text.as_bytes().to_vec(),
        }
    }

    #[test]
    fn sessions_get_even_channels_and_their_records_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let spool = Arc::new(Spool::open(dir.path(), 1 << 20).unwrap());
        let mut first = spool.start(meta()).unwrap();
        let second = spool.start(meta()).unwrap();
        assert_eq!((first.channel(), second.channel()), (2, 4));
        first.append(&output("hello")).unwrap();
        first.append(&Record::exit(2, Ending::Code(0))).unwrap();
        first.finish().unwrap();

        let sessions = spool.sessions();
        assert_eq!(sessions.len(), 2);
        let bytes = spool.read(&sessions[0].id, 0, 1 << 20).unwrap();
        assert_eq!(bytes.len() as u64, sessions[0].written);
        let (record, used) = Record::parse(&bytes).unwrap().unwrap();
        assert_eq!(record, output("hello"));
        assert_eq!(
            Record::parse(&bytes[used..]).unwrap().unwrap().0.ending(),
            Some(Ending::Code(0))
        );
        assert!(sessions[0].meta.ended_at.is_some());

        spool.remove(&sessions[0].id).unwrap();
        assert_eq!(spool.sessions().len(), 1);
    }

    #[test]
    fn a_full_spool_drops_newer_bytes_keeps_the_exit_and_marks_the_session_truncated() {
        let dir = tempfile::tempdir().unwrap();
        let spool = Arc::new(Spool::open(dir.path(), 100).unwrap());
        let mut writer = spool.start(meta()).unwrap();
        writer.append(&output(&"x".repeat(60))).unwrap();
        writer.append(&output(&"y".repeat(60))).unwrap();
        // Room for this one, but the session lost bytes before it.
        writer.append(&output("z")).unwrap();
        writer.append(&Record::exit(3, Ending::Code(1))).unwrap();
        writer.finish().unwrap();
        let session = &spool.sessions()[0];
        assert!(session.meta.truncated);
        assert_eq!(session.written, 73 + 18);
    }

    #[test]
    fn a_restart_ends_the_sessions_left_and_drops_a_record_cut_short() {
        let dir = tempfile::tempdir().unwrap();
        {
            let spool = Arc::new(Spool::open(dir.path(), 1 << 20).unwrap());
            let mut writer = spool.start(meta()).unwrap();
            writer.append(&output("kept")).unwrap();
            // A crash in the middle of the next record.
            let id = spool.sessions()[0].id.clone();
            let mut file = OpenOptions::new()
                .append(true)
                .open(rec_path(dir.path(), &id))
                .unwrap();
            file.write_all(&output("lost").encode()[..7]).unwrap();
        }
        let spool = Spool::open(dir.path(), 1 << 20).unwrap();
        let sessions = spool.sessions();
        assert_eq!(sessions.len(), 1);
        assert_eq!(sessions[0].written, 17);
        assert!(sessions[0].meta.ended_at.is_some());
        let reopened = Arc::new(spool);
        assert_eq!(reopened.start(meta()).unwrap().channel(), 4);
    }
}

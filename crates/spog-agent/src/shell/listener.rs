//! The agent's local socket (`socket_path`, mode 0666) that `spog-agent shell` streams to. The
//! OS user comes from the socket peer's credentials (SO_PEERCRED), never from the client. Each
//! session is read by a thread of its own that appends to the spool: reading a socket and
//! writing and fsyncing a file are blocking by nature, and a thread per login keeps one slow
//! disk write from holding up the runtime or another session.

use std::io::{self, Read, Write};
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, PermissionsExt};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};
use tokio::net::UnixListener;

use super::record::RecordReader;
use super::spool::{SessionMeta, Spool};
use crate::facts::rfc3339;
use crate::terminal::account;

/// More concurrent local sessions than this are refused (the client then follows
/// `shell.on_unavailable`).
const MAX_LOCAL_SESSIONS: usize = 1024;
/// The client's first line must come this soon.
const HELLO_TIMEOUT: Duration = Duration::from_secs(5);
/// The longest first line.
const MAX_HELLO: usize = 4096;
/// How often an idle session's reader wakes to fsync what it wrote.
const IDLE_WAKE: Duration = Duration::from_secs(1);

/// The client's first line.
#[derive(Debug, Serialize, Deserialize)]
pub struct Hello {
    pub shell: String,
    pub cols: u16,
    pub rows: u16,
    /// `ip:port` from `SSH_CONNECTION`.
    pub client_addr: Option<String>,
}

/// The agent's answer line.
#[derive(Debug, Serialize, Deserialize)]
pub struct Answer {
    pub ok: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// Binds `path` (its directory created 0755 when missing, a stale socket replaced) with mode
/// 0666: every local user may start a recorded session. Blocking.
pub fn bind(path: &Path) -> io::Result<std::os::unix::net::UnixListener> {
    if let Some(dir) = path.parent() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o755)
            .create(dir)?;
    }
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_socket() => std::fs::remove_file(path)?,
        Ok(_) => {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!("{} exists and is not a socket", path.display()),
            ));
        }
        Err(_) => {}
    }
    let listener = std::os::unix::net::UnixListener::bind(path)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o666))?;
    listener.set_nonblocking(true)?;
    Ok(listener)
}

/// Accepts local sessions until the agent stops.
pub async fn serve(listener: UnixListener, spool: Arc<Spool>) {
    let sessions = Arc::new(AtomicUsize::new(0));
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(e) => {
                tracing::warn!(error = %e, "accepting a local shell session failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let uid = match stream.peer_cred() {
            Ok(credentials) => credentials.uid(),
            Err(e) => {
                tracing::warn!(error = %e, "a local shell session without peer credentials");
                continue;
            }
        };
        if sessions.load(Ordering::Relaxed) >= MAX_LOCAL_SESSIONS {
            tracing::warn!(uid, "too many local shell sessions: refused one");
            continue;
        }
        let stream = match stream.into_std().and_then(|s| {
            s.set_nonblocking(false)?;
            Ok(s)
        }) {
            Ok(stream) => stream,
            Err(e) => {
                tracing::warn!(error = %e, "a local shell session could not be read");
                continue;
            }
        };
        sessions.fetch_add(1, Ordering::Relaxed);
        let (spool, count) = (spool.clone(), sessions.clone());
        let spawned = std::thread::Builder::new()
            .name("shell-session".into())
            .stack_size(256 * 1024)
            .spawn(move || {
                if let Err(e) = record_session(stream, uid, &spool) {
                    tracing::warn!(uid, error = %e, "a local shell session failed");
                }
                count.fetch_sub(1, Ordering::Relaxed);
            });
        if let Err(e) = spawned {
            sessions.fetch_sub(1, Ordering::Relaxed);
            tracing::warn!(error = %e, "cannot start a thread for a local shell session");
        }
    }
}

/// One session: the client's hello, the answer, then its records into the spool until it
/// closes the socket.
fn record_session(mut stream: UnixStream, uid: libc::uid_t, spool: &Arc<Spool>) -> io::Result<()> {
    stream.set_read_timeout(Some(HELLO_TIMEOUT))?;
    stream.set_write_timeout(Some(HELLO_TIMEOUT))?;
    let line = read_line(&mut stream)?;
    let hello: Hello =
        serde_json::from_slice(&line).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
    let os_user = account::name_of(uid).unwrap_or_else(|| uid.to_string());
    let meta = SessionMeta {
        channel: 0,
        os_user: os_user.clone(),
        client_addr: hello.client_addr,
        shell: hello.shell,
        cols: hello.cols,
        rows: hello.rows,
        started_at: rfc3339(SystemTime::now()),
        ended_at: None,
        truncated: false,
    };
    let mut writer = match spool.start(meta) {
        Ok(writer) => writer,
        Err(e) => {
            let answer = Answer {
                ok: false,
                channel: None,
                message: Some(format!("the agent cannot spool the session: {e}")),
            };
            return answer_line(&mut stream, &answer);
        }
    };
    let channel = writer.channel();
    tracing::info!(channel, %os_user, "local shell session started");
    let answer = Answer {
        ok: true,
        channel: Some(channel),
        message: None,
    };
    answer_line(&mut stream, &answer)?;

    stream.set_read_timeout(Some(IDLE_WAKE))?;
    let mut reader = RecordReader::default();
    let ended = loop {
        match reader.next(&mut stream) {
            Ok(Some(record)) => {
                if let Err(e) = writer.append(&record) {
                    break Err(e);
                }
            }
            Ok(None) => break Ok(()),
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                writer.sync_if_due()?;
            }
            Err(e) => break Err(e),
        }
    };
    writer.finish()?;
    tracing::info!(channel, "local shell session ended");
    ended
}

fn read_line(stream: &mut UnixStream) -> io::Result<Vec<u8>> {
    let mut line = Vec::new();
    let mut byte = [0u8];
    loop {
        if stream.read(&mut byte)? == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        if byte[0] == b'\n' {
            return Ok(line);
        }
        if line.len() >= MAX_HELLO {
            return Err(io::Error::new(io::ErrorKind::InvalidData, "hello too long"));
        }
        line.push(byte[0]);
    }
}

fn answer_line(stream: &mut UnixStream, answer: &Answer) -> io::Result<()> {
    let mut line = serde_json::to_vec(answer).map_err(io::Error::other)?;
    line.push(b'\n');
    stream.write_all(&line)
}

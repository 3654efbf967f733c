//! The `syslog` sink: RFC 5424 messages over TCP, octet-counted (RFC 6587 3.4.1:
//! `LEN SP MSG`). TCP has no acknowledgement: a batch counts once written. Each stream keeps
//! its connection, and the batches written on it in the last 5 s; when the connection breaks,
//! those are written again on the next one, since the peer may not have read them.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use spog_core::Id;
use spog_core::audit::EntryFields;
use spog_core::audit_streams::{AuditStream, Format, SyslogSink};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::sync::Mutex;

use super::{Batch, Outcome, format_entry};
use crate::delivery::guard::Refused;
use crate::state::AppState;

/// How far back batches are written again after a broken connection.
const REWRITE_WINDOW: Duration = Duration::from_secs(5);
/// Bytes of recent batches kept per stream, at most.
const REWRITE_MAX_BYTES: usize = 64 << 20;

/// A stream's connection and what it wrote recently.
#[derive(Default)]
struct Connection {
    socket: Option<TcpStream>,
    recent: VecDeque<(Instant, Arc<Vec<u8>>)>,
    /// A write failed: the recent batches go again first.
    broken: bool,
}

/// Every syslog stream's connection on this instance.
#[derive(Default)]
pub struct Connections(parking_lot::Mutex<HashMap<Id<AuditStream>, Arc<Mutex<Connection>>>>);

impl Connections {
    fn of(&self, stream: Id<AuditStream>) -> Arc<Mutex<Connection>> {
        self.0.lock().entry(stream).or_default().clone()
    }
}

/// Escapes an SD-PARAM value: `"`, `\` and `]`.
fn sd_value(text: &str, out: &mut String) {
    for c in text.chars() {
        if matches!(c, '"' | '\\' | ']') {
            out.push('\\');
        }
        out.push(c);
    }
}

/// One octet-counted message. Over `max_message_bytes`, the entry goes without its
/// snapshots and says `truncated="true"`.
pub fn frame(
    sink: &SyslogSink,
    format: Format,
    account: &str,
    entry: &EntryFields<'_>,
    out: &mut Vec<u8>,
) {
    let mut message = message_of(sink, format, account, entry, false);
    if message.len() > sink.max_message_bytes as usize {
        let mut bare = *entry;
        (bare.before, bare.after, bare.metadata) = (None, None, None);
        message = message_of(sink, format, account, &bare, true);
    }
    out.extend_from_slice(format!("{} ", message.len()).as_bytes());
    out.extend_from_slice(&message);
}

fn message_of(
    sink: &SyslogSink,
    format: Format,
    account: &str,
    entry: &EntryFields<'_>,
    truncated: bool,
) -> Vec<u8> {
    let severity = if entry.outcome == "failure" { 4 } else { 5 };
    let pri = u32::from(sink.facility_code()) * 8 + severity;
    let msgid: String = entry.action.chars().take(32).collect();
    let mut head = format!(
        "<{pri}>1 {} {} {} - {msgid} [spog@32473",
        entry.occurred_at, sink.hostname, sink.app_name
    );
    if let Some(seq) = entry.seq {
        head.push_str(&format!(" seq=\"{seq}\""));
    }
    for (name, value) in [
        ("id", entry.id),
        ("account", account),
        ("outcome", entry.outcome),
    ] {
        head.push_str(&format!(" {name}=\""));
        sd_value(value, &mut head);
        head.push('"');
    }
    if truncated {
        head.push_str(" truncated=\"true\"");
    }
    head.push_str("] ");
    let mut out = head.into_bytes();
    format_entry(format, entry, &mut out);
    out
}

/// The first address of `host` the outbound guard allows.
async fn resolve(state: &AppState, host: &str, port: u16) -> Result<SocketAddr, String> {
    let resolved: Vec<SocketAddr> = tokio::net::lookup_host((host, port))
        .await
        .map_err(|e| format!("cannot resolve {host}: {e}"))?
        .collect();
    let mut refusal = None;
    for address in &resolved {
        match state.engine.http.guard().check(address.ip()) {
            Ok(()) => return Ok(*address),
            Err(reason) => {
                refusal.get_or_insert(Refused {
                    target: format!("{host} ({})", address.ip()),
                    reason,
                });
            }
        }
    }
    Err(match refusal {
        Some(refused) => refused.to_string(),
        None => format!("cannot resolve {host}: no address"),
    })
}

pub async fn send(
    state: &AppState,
    sink: &SyslogSink,
    batch: &Batch,
    timeout: Duration,
) -> Outcome {
    let started = Instant::now();
    let body = Arc::new(batch.entries.concat());
    let bytes = body.len();
    let connection = state.syslog.of(batch.stream_id);
    let mut connection = connection.lock().await;
    let written = tokio::time::timeout(timeout, write(state, sink, &mut connection, &body)).await;
    let error = match written {
        Ok(Ok(())) => None,
        Ok(Err(error)) => Some(error),
        Err(_) => Some(format!("timed out after {}s", timeout.as_secs())),
    };
    if error.is_some() {
        connection.socket = None;
        connection.broken = true;
    } else {
        let now = Instant::now();
        connection.recent.push_back((now, body));
        let mut kept: usize = connection.recent.iter().map(|(_, b)| b.len()).sum();
        while let Some((at, oldest)) = connection.recent.front() {
            if now.duration_since(*at) <= REWRITE_WINDOW && kept <= REWRITE_MAX_BYTES {
                break;
            }
            kept -= oldest.len();
            connection.recent.pop_front();
        }
    }
    Outcome {
        success: error.is_none(),
        status_code: None,
        error,
        bytes,
        duration: started.elapsed(),
        retry_after: None,
        too_large: false,
    }
}

async fn write(
    state: &AppState,
    sink: &SyslogSink,
    connection: &mut Connection,
    body: &[u8],
) -> Result<(), String> {
    if connection.socket.is_none() {
        let address = resolve(state, &sink.host, sink.port).await?;
        let socket = TcpStream::connect(address)
            .await
            .map_err(|e| format!("cannot connect to {}:{}: {e}", sink.host, sink.port))?;
        socket.set_nodelay(true).ok();
        connection.socket = Some(socket);
        if connection.broken {
            // What the broken connection may have lost goes again, oldest first.
            let cutoff = Instant::now() - REWRITE_WINDOW;
            let again: Vec<Arc<Vec<u8>>> = connection
                .recent
                .iter()
                .filter(|(at, _)| *at >= cutoff)
                .map(|(_, b)| b.clone())
                .collect();
            let socket = connection.socket.as_mut().expect("just connected");
            for batch in again {
                socket
                    .write_all(&batch)
                    .await
                    .map_err(|e| format!("writing: {e}"))?;
            }
            connection.broken = false;
        }
    }
    let socket = connection.socket.as_mut().expect("connected");
    socket
        .write_all(body)
        .await
        .map_err(|e| format!("writing: {e}"))?;
    socket.flush().await.map_err(|e| format!("writing: {e}"))
}

//! Sources streaming a recording over a WebSocket, alike for every kind: control messages keep
//! the source alive, each data message is read by the kind and appended off the async threads,
//! and the socket closes with the reason when the recording ends or a message breaks the rules.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::extract::ws::{CloseFrame, Message, WebSocket};

use crate::blocking::Blocking;
use crate::hub::POLICY_VIOLATION;
use crate::hub::sockets::SocketLease;
use crate::recordings::RecordingError;
use crate::recordings::kind::{Recorded, Recorder};

/// Close codes of RFC 6455.
pub const NORMAL: u16 = 1000;
pub const UNSUPPORTED: u16 = 1003;
pub const INVALID: u16 = 1007;
pub const TRY_LATER: u16 = 1013;

pub async fn close(socket: &mut WebSocket, code: u16, reason: &str) {
    let mut end = reason.len().min(120);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    let frame = CloseFrame {
        code,
        reason: reason[..end].into(),
    };
    let _ = socket.send(Message::Close(Some(frame))).await;
}

/// Records what a source streams into `recorder` until either ends. `read` turns a text or
/// binary message into what `append` writes, or says why the socket closes (code, reason).
pub async fn ingest<K: Recorded, P: Send + 'static>(
    blocking: Blocking,
    recorder: Arc<K::Recorder>,
    mut socket: WebSocket,
    lease: SocketLease,
    read: impl Fn(Message) -> Result<P, (u16, String)>,
    append: impl Fn(&K::Recorder, P) -> Result<(), RecordingError> + Clone + Send + 'static,
) {
    let ended = format!("the {} has ended", K::NOUN);
    recorder.streams().fetch_add(1, Ordering::AcqRel);
    let closing = recorder.closing().notified();
    tokio::pin!(closing);
    closing.as_mut().enable();
    loop {
        if recorder.is_closed() {
            close(&mut socket, NORMAL, &ended).await;
            break;
        }
        let message = tokio::select! {
            _ = &mut closing => continue,
            reason = lease.ended() => {
                close(&mut socket, POLICY_VIOLATION, reason).await;
                break;
            }
            message = socket.recv() => message,
        };
        let payload = match message {
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => {
                recorder.touch();
                continue;
            }
            // A close, or a connection that dropped (perhaps mid-message): what arrived
            // whole is recorded.
            Some(Ok(Message::Close(_))) | Some(Err(_)) | None => break,
            Some(Ok(data)) => read(data),
        };
        let appended = match payload {
            Ok(payload) => {
                let (appending, append) = (recorder.clone(), append.clone());
                blocking.run(move || append(&appending, payload)).await
            }
            Err((code, reason)) => {
                close(&mut socket, code, &reason).await;
                break;
            }
        };
        match appended {
            Ok(()) => {}
            Err(RecordingError::Ended) => {
                close(&mut socket, NORMAL, &ended).await;
                break;
            }
            Err(error @ RecordingError::Invalid(_)) => {
                close(&mut socket, INVALID, &error.to_string()).await;
                break;
            }
            Err(error) => {
                tracing::warn!(recording = %recorder.id(), %error, "recording a {} stream", K::NAME);
                close(&mut socket, TRY_LATER, &error.to_string()).await;
                break;
            }
        }
    }
    let flushing = recorder.clone();
    if let Err(error) = blocking.run(move || flushing.flush()).await {
        tracing::warn!(recording = %recorder.id(), %error, "flushing a {} stream", K::NAME);
    }
    recorder.streams().fetch_sub(1, Ordering::AcqRel);
}

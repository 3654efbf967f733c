//! `GET /terminal/sessions/{id}/watch`: follows a session live over a WebSocket in the
//! asciinema player's `v2.asciicast` protocol: a header, then one event per message. What was
//! recorded before the viewer joined is sent at time 0 (the screen as it is now); later
//! events carry the time since the viewer joined. Closes with 1000 when the session ends.

use std::sync::Arc;
use std::time::Instant;

use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{Message, WebSocket};
use axum::extract::{State, WebSocketUpgrade};
use axum::http::HeaderMap;
use axum::response::Response;
use serde_json::json;
use spog_core::recordings::{RawEvent, TerminalRecording, TerminalSession};
use spog_core::{Id, Permission, model::Account};
use spog_store::identity::hosts::HostScope;
use spog_store::recordings;
use tracing::{Instrument, Span};

use super::lifecycle::visible;
use super::stream::{NORMAL, close};
use super::terminal::FOLLOW_POLL;
use crate::auth::Require;
use crate::auth::permissions::SessionRecordingsView;
use crate::error::ApiResult;
use crate::extract::AppPath;
use crate::http::ws::admit;
use crate::hub::POLICY_VIOLATION;
use crate::hub::sockets::SocketLease;
use crate::recordings::kind::Recorder;
use crate::recordings::{cast, content};
use crate::state::AppState;

/// Most bytes read for one round of sending.
const ROUND: usize = 1024 * 1024;

/// Follow a terminal session live (WebSocket, subprotocol `v2.asciicast`).
#[utoipa::path(get, path = "/terminal/sessions/{id}/watch", tag = "recordings",
    params(("id" = String, Path)), responses((status = 101, description = "WebSocket")))]
pub async fn watch_session(
    State(state): State<AppState>,
    auth: Require<SessionRecordingsView>,
    AppPath(id): AppPath<Id<TerminalSession>>,
    headers: HeaderMap,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> ApiResult<Response> {
    let upgrade = super::websocket(upgrade)?;
    let lease = admit(
        &state,
        &auth.principal,
        &headers,
        Some(Permission::SessionRecordingsView),
    )?;
    let recording: TerminalRecording = visible(&state, &auth, id).await?;
    let account = auth.account();
    let span = Span::current();
    Ok(upgrade
        .protocols(["v2.asciicast"])
        .on_upgrade(move |socket| {
            follow(state, account, recording, socket, lease).instrument(span)
        }))
}

async fn follow(
    state: AppState,
    account: Id<Account>,
    recording: TerminalRecording,
    mut socket: WebSocket,
    lease: SocketLease,
) {
    let header = json!({"version": 2, "width": recording.width, "height": recording.height,
        "timestamp": recording.started_at.unix_seconds()});
    if socket
        .send(Message::Text(header.to_string().into()))
        .await
        .is_err()
    {
        return;
    }
    // What the source sent just before the viewer joined belongs to the screen so far.
    if let Some(recorder) = state.recorders.open(recording.id) {
        let _ = state.blocking.run(move || recorder.flush()).await;
    }
    // The file stays open while followed: sealing removes the spool file's name when the
    // session ends, and the last events are read after that.
    let mut readable = match content::readable(&state, account, &recording).await {
        Ok(readable) => readable,
        Err(error) => {
            tracing::warn!(%error, "following a terminal session");
            close(&mut socket, 1011, "the recording cannot be read").await;
            return;
        }
    };
    let mut file: Option<Arc<std::fs::File>> = None;
    let joined = Instant::now();
    let mut offset = None;
    let mut history = true;
    let mut last_check = Instant::now();
    let mut ended = recording.ended_at.is_some();
    loop {
        let recorder = state.recorders.open(recording.id);
        let woken = async {
            match &recorder {
                Some(recorder) => recorder.written.notified().await,
                None => std::future::pending().await,
            }
        };
        if let Err(error) = readable.pull(&state).await {
            tracing::warn!(%error, "following a terminal session another instance records");
            close(&mut socket, 1011, "the recording cannot be read").await;
            return;
        }
        if file.is_none() {
            let path = readable.path().to_owned();
            file = match state.blocking.run(move || std::fs::File::open(path)).await {
                Ok(opened) => Some(Arc::new(opened)),
                // Nothing written yet.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
                Err(error) => {
                    tracing::warn!(%error, "following a terminal session");
                    close(&mut socket, 1011, "the recording cannot be read").await;
                    return;
                }
            };
        }
        // Read what is there; after the first round, only what is new.
        let (lines, next) = match &file {
            Some(file) => match read_round(&state, file.clone(), offset).await {
                Ok(read) => read,
                Err(error) => {
                    tracing::warn!(%error, "following a terminal session");
                    close(&mut socket, 1011, "the recording cannot be read").await;
                    return;
                }
            },
            None => (Vec::new(), None),
        };
        offset = next.or(offset);
        let now = joined.elapsed().as_secs_f64();
        let time = if history { 0.0 } else { now };
        for (_, code, data) in lines {
            let event = json!([time, code, data]);
            if socket
                .send(Message::Text(event.to_string().into()))
                .await
                .is_err()
            {
                return;
            }
        }
        history = false;
        if ended {
            // Everything up to the end has been sent.
            close(&mut socket, NORMAL, "the session has ended").await;
            return;
        }
        tokio::select! {
            reason = lease.ended() => {
                close(&mut socket, POLICY_VIOLATION, reason).await;
                return;
            }
            _ = woken => {}
            _ = tokio::time::sleep(FOLLOW_POLL) => {}
            message = socket.recv() => match message {
                Some(Ok(Message::Close(_))) | Some(Err(_)) | None => return,
                _ => {}
            },
        }
        if last_check.elapsed() >= std::time::Duration::from_secs(1)
            || recorder.as_ref().is_some_and(|r| r.is_closed())
        {
            last_check = Instant::now();
            if let Ok(mut conn) = state.store.conn().await
                && let Ok(now) =
                    recordings::get(&mut conn, account, recording.id, &HostScope::All).await
            {
                // One more round reads the last events before closing.
                ended = now.ended_at.is_some();
                if ended && let Err(error) = readable.complete(&state, account, &now).await {
                    tracing::warn!(%error, "completing a session another instance recorded");
                }
            }
        }
    }
}

/// Complete events from `offset` (from the first event when None), and the offset after them.
async fn read_round(
    state: &AppState,
    file: Arc<std::fs::File>,
    offset: Option<u64>,
) -> std::io::Result<(Vec<RawEvent>, Option<u64>)> {
    state
        .blocking
        .run(move || {
            let offset = match offset {
                Some(offset) => offset,
                None => cast::read_header_of(&file)?.1,
            };
            let mut events = Vec::new();
            let mut read = 0usize;
            let next = cast::read_lines_of(&file, offset, None, 256 * 1024, |chunk| {
                read += chunk.len();
                for line in chunk.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
                    if let Ok(event) = serde_json::from_slice::<RawEvent>(line) {
                        events.push(event);
                    }
                }
                read < ROUND
            })?;
            Ok((events, Some(next)))
        })
        .await
}

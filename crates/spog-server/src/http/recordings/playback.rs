//! `GET /desktop/recordings/{id}/stream`: plays a desktop recording over a WebSocket at its
//! recorded pace (SPEC 8.2).
//!
//! The server sends a text message `{"type": "meta", "width", "height", "frame_count",
//! "duration_ms", "start_ms", "speed"}`, then each frame as a binary message: its elapsed
//! milliseconds (8 bytes, big-endian) and the image, at `start + (elapsed - start_ms) / speed`;
//! after the last frame a text message `{"type": "end"}`. The socket stays open: the viewer
//! controls playback with text messages `{"type": "seek", "ms": N}` (the frame showing at N is
//! sent at once, and pacing continues from there), `{"type": "pause"}`, `{"type": "play"}`,
//! `{"type": "speed", "value": X}` and `{"type": "idle", "ms": N | null}`. With an idle limit
//! (`idle_ms`), a gap between frames longer than it is cut to it (as the asciinema player's
//! `idleTimeLimit` does for terminal recordings): frames keep their recorded times, they only
//! come sooner.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{Message, WebSocket};
use axum::extract::{State, WebSocketUpgrade};
use axum::http::HeaderMap;
use axum::response::Response;
use serde::Deserialize;
use serde_json::json;
use spog_core::recordings::DesktopRecording;
use spog_core::{Id, Permission};
use tokio::time::Instant;
use tracing::{Instrument, Span};
use utoipa::IntoParams;

use super::lifecycle::visible;
use crate::auth::Require;
use crate::auth::permissions::SessionRecordingsView;
use crate::blocking::Blocking;
use crate::error::{ApiError, ApiResult};
use crate::extract::{AppPath, AppQuery};
use crate::http::ws::admit;
use crate::hub::POLICY_VIOLATION;
use crate::hub::sockets::SocketLease;
use crate::recordings::frames::{self, Frame};
use crate::recordings::kind::Recorder;
use crate::state::AppState;

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct PlayParams {
    /// Playback speed, above 0 and at most 16 (default 1).
    pub speed: Option<f64>,
    /// Where to start, in milliseconds from the recording's start (default 0).
    pub start_ms: Option<u64>,
    /// Longest wait between two frames in milliseconds, 1 to 3,600,000 (default: as recorded).
    pub idle_ms: Option<u64>,
}

const MAX_SPEED: f64 = 16.0;

fn idle_limit(field: &str, value: Option<u64>) -> ApiResult<Option<u64>> {
    match value {
        Some(ms) if !(1..=3_600_000).contains(&ms) => Err(ApiError::field(
            field,
            "must be between 1 and 3600000 milliseconds",
        )),
        value => Ok(value),
    }
}

fn speed(field: &str, value: f64) -> ApiResult<f64> {
    if value.is_finite() && value > 0.0 && value <= MAX_SPEED {
        Ok(value)
    } else {
        Err(ApiError::field(field, "must be above 0 and at most 16"))
    }
}

/// Play a desktop recording at its recorded pace (WebSocket; see the module documentation for
/// the messages).
#[utoipa::path(get, path = "/desktop/recordings/{id}/stream", tag = "recordings",
    params(("id" = String, Path), PlayParams),
    responses((status = 101, description = "WebSocket")))]
pub async fn play(
    State(state): State<AppState>,
    auth: Require<SessionRecordingsView>,
    AppPath(id): AppPath<Id<DesktopRecording>>,
    AppQuery(params): AppQuery<PlayParams>,
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
    let speed = speed("speed", params.speed.unwrap_or(1.0))?;
    let idle_ms = idle_limit("idle_ms", params.idle_ms)?;
    let recording: DesktopRecording = visible(&state, &auth, id).await?;
    let path = state.recorders.path(&recording.file_path);
    let recorder = state.recorders.open(recording.id);
    let loading = path.clone();
    let frames = state
        .blocking
        .run(move || {
            if let Some(recorder) = recorder {
                recorder.flush()?;
            }
            match frames::load(&loading) {
                Ok(frames) => Ok(frames),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
                Err(e) => Err(crate::recordings::RecordingError::from(e)),
            }
        })
        .await?;
    let start = params.start_ms.unwrap_or(0);
    let blocking = state.blocking.clone();
    let span = Span::current();
    Ok(upgrade.on_upgrade(move |socket| {
        let player = Player {
            frames,
            path: Arc::new(path),
            blocking,
            speed,
            idle_ms,
        };
        player.run(recording, start, socket, lease).instrument(span)
    }))
}

/// Frames are read one at a time on the bounded blocking pool, the file opened for each, so
/// a paused or slow viewer holds neither a thread nor a descriptor.
struct Player {
    frames: Vec<Frame>,
    path: Arc<std::path::PathBuf>,
    blocking: Blocking,
    speed: f64,
    /// Gaps between frames longer than this are cut to it.
    idle_ms: Option<u64>,
}

#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
enum Control {
    Seek { ms: u64 },
    Pause,
    Play,
    Speed { value: f64 },
    Idle { ms: Option<u64> },
}

impl Player {
    async fn message(&self, index: usize) -> std::io::Result<Message> {
        let frame = self.frames[index];
        let path = self.path.clone();
        let image = self
            .blocking
            .run(move || frames::read(&std::fs::File::open(path.as_path())?, &frame))
            .await?;
        let mut bytes = Vec::with_capacity(8 + frame.len as usize);
        bytes.extend_from_slice(&frame.elapsed_ms.to_be_bytes());
        bytes.extend_from_slice(&image);
        Ok(Message::Binary(bytes.into()))
    }

    async fn run(
        mut self,
        recording: DesktopRecording,
        start: u64,
        mut socket: WebSocket,
        lease: SocketLease,
    ) {
        let duration_ms = self.frames.last().map(|f| f.elapsed_ms).unwrap_or(0);
        let meta = json!({"type": "meta", "width": recording.width, "height": recording.height,
            "frame_count": self.frames.len(), "duration_ms": duration_ms, "start_ms": start,
            "speed": self.speed, "idle_ms": self.idle_ms});
        if socket
            .send(Message::Text(meta.to_string().into()))
            .await
            .is_err()
        {
            return;
        }
        // Media time `anchor.1` was showing at instant `anchor.0`.
        let mut anchor = (Instant::now(), start);
        let mut paused_at: Option<u64> = None;
        let mut next = self.seek(start);
        let mut ended_sent = false;
        loop {
            if next >= self.frames.len() && !ended_sent {
                ended_sent = true;
                let end = json!({"type": "end"}).to_string();
                if socket.send(Message::Text(end.into())).await.is_err() {
                    return;
                }
            }
            let due = (paused_at.is_none() && next < self.frames.len()).then(|| {
                let ahead = self.frames[next].elapsed_ms.saturating_sub(anchor.1);
                let ahead = self.idle_ms.map_or(ahead, |limit| ahead.min(limit));
                anchor.0 + Duration::from_secs_f64(ahead as f64 / 1000.0 / self.speed)
            });
            // Read before waiting, so the frame leaves on time.
            let message = match due {
                Some(_) => match self.message(next).await {
                    Ok(message) => Some(message),
                    Err(error) => {
                        tracing::warn!(%error, "reading a desktop recording");
                        return;
                    }
                },
                None => None,
            };
            tokio::select! {
                reason = lease.ended() => {
                    super::stream::close(&mut socket, POLICY_VIOLATION, reason).await;
                    return;
                }
                _ = tokio::time::sleep_until(due.unwrap_or_else(Instant::now)), if due.is_some() => {
                    if let Some(message) = message
                        && socket.send(message).await.is_err()
                    {
                        return;
                    }
                    if self.idle_ms.is_some() {
                        // Paced from each frame, so a gap cut short shifts what follows.
                        anchor = (Instant::now(), self.frames[next].elapsed_ms.max(anchor.1));
                    }
                    next += 1;
                }
                incoming = socket.recv() => {
                    let text = match incoming {
                        Some(Ok(Message::Text(text))) => text,
                        Some(Ok(Message::Close(_))) | Some(Err(_)) | None => return,
                        Some(Ok(_)) => continue,
                    };
                    let Ok(control) = serde_json::from_str::<Control>(&text) else {
                        super::stream::close(&mut socket, super::stream::INVALID,
                            "controls are seek, pause, play, speed and idle").await;
                        return;
                    };
                    let now_ms = paused_at.unwrap_or_else(|| media_time(anchor, self.speed));
                    match control {
                        Control::Seek { ms } => {
                            next = self.seek(ms);
                            anchor = (Instant::now(), ms);
                            ended_sent = false;
                            if paused_at.is_some() {
                                // Paused: show the frame at once, and stay paused there.
                                paused_at = Some(ms);
                                if next < self.frames.len() && self.frames[next].elapsed_ms <= ms {
                                    match self.message(next).await {
                                        Ok(message) => {
                                            if socket.send(message).await.is_err() {
                                                return;
                                            }
                                        }
                                        Err(_) => return,
                                    }
                                    next += 1;
                                }
                            }
                        }
                        Control::Pause => paused_at = Some(now_ms),
                        Control::Play => {
                            if let Some(at) = paused_at.take() {
                                anchor = (Instant::now(), at);
                            }
                        }
                        Control::Speed { value } => {
                            if let Ok(value) = speed("value", value) {
                                anchor = (Instant::now(), now_ms);
                                self.speed = value;
                            }
                        }
                        Control::Idle { ms } => {
                            if let Ok(ms) = idle_limit("ms", ms) {
                                anchor = (Instant::now(), now_ms);
                                self.idle_ms = ms;
                            }
                        }
                    }
                }
            }
        }
    }

    /// The frame showing at `ms` (due at once), or the first frame when none is yet.
    fn seek(&self, ms: u64) -> usize {
        frames::at(&self.frames, ms)
    }
}

fn media_time(anchor: (Instant, u64), speed: f64) -> u64 {
    anchor.1 + (anchor.0.elapsed().as_secs_f64() * 1000.0 * speed) as u64
}

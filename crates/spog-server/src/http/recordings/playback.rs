//! `GET /desktop/recordings/{id}/stream`: plays a desktop recording over a WebSocket at its
//! recorded pace (SPEC 8.2).
//!
//! The server sends a text message `{"type": "meta", "width", "height", "frame_count",
//! "duration_ms", "start_ms", "speed"}`, then each frame as a binary message: its elapsed
//! milliseconds (8 bytes, big-endian) and the image, at `start + (elapsed - start_ms) / speed`;
//! after the last frame a text message `{"type": "end"}`. An active recording plays live (SPEC
//! 8.3): `meta` says `"active": true`, frames recorded later follow as they arrive, and `end`
//! comes once it has ended and its last frame was sent; `?live=true` starts at the newest. The socket stays open: the viewer
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
use spog_core::model::Account;
use spog_core::recordings::DesktopRecording;
use spog_core::{Id, Permission};
use spog_store::identity::hosts::HostScope;
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
use crate::recordings::content::{self, Readable};
use crate::recordings::frames::{self, Frame};
use crate::recordings::kind::{Recorded, Recorder};
use crate::state::AppState;

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct PlayParams {
    /// Playback speed, above 0 and at most 16 (default 1).
    pub speed: Option<f64>,
    /// Where to start, in milliseconds from the recording's start (default 0).
    pub start_ms: Option<u64>,
    /// Start at the newest frame (an active recording, watched as it is recorded).
    pub live: Option<bool>,
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
    if let Some(recorder) = state.recorders.open(recording.id) {
        state.blocking.run(move || recorder.flush()).await?;
    }
    let readable = content::readable(&state, auth.account(), &recording)
        .await
        .map_err(ApiError::internal)?;
    let path = readable.path().to_owned();
    // The file stays open while played: sealing removes the spool file's name at the end.
    let (frames, file) = state
        .blocking
        .run(move || match std::fs::File::open(&path) {
            Ok(file) => Ok((frames::load(&path)?, Some(file))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok((Vec::new(), None)),
            Err(e) => Err(crate::recordings::RecordingError::from(e)),
        })
        .await?;
    let start = match params.live {
        Some(true) => frames.last().map(|f| f.elapsed_ms).unwrap_or(0),
        _ => params.start_ms.unwrap_or(0),
    };
    let live = (!recording.has_ended()).then(|| Live {
        state: state.clone(),
        account: auth.account(),
        scanned: frames
            .last()
            .map(|f| f.offset + u64::from(f.len))
            .unwrap_or(0),
        checked: Instant::now(),
    });
    let blocking = state.blocking.clone();
    let span = Span::current();
    Ok(upgrade.on_upgrade(move |socket| {
        let player = Player {
            frames,
            file: file.map(Arc::new),
            readable,
            blocking,
            speed,
            live,
            idle_ms,
        };
        player.run(recording, start, socket, lease).instrument(span)
    }))
}

/// An active recording followed as it is written on this instance.
struct Live {
    state: AppState,
    account: Id<Account>,
    /// How far the frames file has been read.
    scanned: u64,
    /// When it was last asked whether the recording ended.
    checked: Instant,
}

/// How often a live player looks for new frames.
const LIVE_POLL: Duration = Duration::from_millis(250);

/// Frames are read one at a time on the bounded blocking pool, so a paused or slow viewer
/// holds no thread.
struct Player {
    frames: Vec<Frame>,
    file: Option<Arc<std::fs::File>>,
    /// A sealed or relayed recording's copy lives as long as its player.
    readable: Readable,
    blocking: Blocking,
    speed: f64,
    /// Until the recording ends.
    live: Option<Live>,
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
        let file = self.file.clone().ok_or(std::io::ErrorKind::NotFound)?;
        let image = self
            .blocking
            .run(move || frames::read(&file, &frame))
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
            "speed": self.speed, "active": self.live.is_some(), "idle_ms": self.idle_ms});
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
            if next >= self.frames.len() && !ended_sent && self.live.is_none() {
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
                _ = tokio::time::sleep(LIVE_POLL), if self.live.is_some() => {
                    if let Err(error) = self.grow(recording.id).await {
                        tracing::warn!(%error, "following a desktop recording");
                        return;
                    }
                }
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

    /// Takes the frames recorded since the last look; once the recording has ended (asked at
    /// most once a second) and its last frames are taken, it is no longer live.
    async fn grow(&mut self, id: Id<DesktopRecording>) -> std::io::Result<()> {
        let Some(live) = &mut self.live else {
            return Ok(());
        };
        let mut ended = false;
        if live.checked.elapsed() >= Duration::from_secs(1) {
            live.checked = Instant::now();
            if let Ok(mut conn) = live.state.store.conn().await
                && let Ok(now) = spog_store::recordings::get::<DesktopRecording>(
                    &mut conn,
                    live.account,
                    id,
                    &HostScope::All,
                )
                .await
            {
                ended = now.ended_at.is_some();
                if ended {
                    self.readable
                        .complete(&live.state, live.account, &now)
                        .await?;
                }
            }
        }
        if !ended {
            self.readable.pull(&live.state).await?;
        }
        if self.file.is_none() {
            return Ok(());
        }
        let recorder = live.state.recorders.open(id);
        let (file, from) = (self.file.clone(), live.scanned);
        let (more, scanned) = self
            .blocking
            .run(move || {
                if let Some(recorder) = recorder {
                    recorder.flush().map_err(std::io::Error::from)?;
                }
                let file = file.ok_or(std::io::ErrorKind::NotFound)?;
                let end = file.metadata()?.len();
                frames::scan(&file, from, end)
            })
            .await?;
        live.scanned = scanned;
        self.frames.extend(more);
        if ended {
            self.live = None;
        }
        Ok(())
    }

    /// The frame showing at `ms` (due at once), or the first frame when none is yet.
    fn seek(&self, ms: u64) -> usize {
        frames::at(&self.frames, ms)
    }
}

fn media_time(anchor: (Instant, u64), speed: f64) -> u64 {
    anchor.1 + (anchor.0.elapsed().as_secs_f64() * 1000.0 * speed) as u64
}

//! The relay of one console terminal (SPEC 13.1–13.2), on the instance that holds the agent's
//! connection: browser bytes go to the agent's channel as input frames, the agent's output
//! goes to the browser unchanged, and every byte is recorded before it is passed on. The
//! browser's socket is read only while the agent has window for more input, and output is
//! acknowledged to the agent only once recorded and sent: a slow browser slows the program,
//! nothing is dropped and nothing grows without bound.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket};
use serde::Deserialize;
use serde_json::json;
use spog_core::Timestamp;
use spog_core::audit::Actor;
use spog_core::recordings::{EventCode, TerminalRecording};
use spog_core::utf8_stream::Utf8Stream;
use spog_protocol::{CHANNEL_WINDOW_BYTES, HubMessage, OpenErrorCode};
use spog_store::recordings::EndReason;
use tokio::time::{Instant, sleep_until, timeout};
use tokio_util::sync::CancellationToken;

use super::channel::{Channel, FromAgent};
use super::link::AgentLink;
use crate::hub::sockets::SocketLease;
use crate::recordings::CastRecorder;
use crate::recordings::ending::{self, Ending};
use crate::recordings::kind::Recorder;
use crate::state::AppState;

/// The agent answers `open` this soon or the session fails.
const OPEN_TIMEOUT: Duration = Duration::from_secs(15);
/// After `close` the agent hangs up the PTY (SIGKILL after 5 s) and says `exit`.
const EXIT_TIMEOUT: Duration = Duration::from_secs(7);
/// A browser that takes no output for this long has gone.
const SEND_TIMEOUT: Duration = Duration::from_secs(30);
const NORMAL: u16 = 1000;
const INVALID: u16 = 1007;
const INTERNAL: u16 = 1011;

/// A session that was started and asked of the agent, to be relayed.
pub struct Opened {
    pub link: Arc<AgentLink>,
    pub channel: Arc<Channel>,
    pub recording: TerminalRecording,
    pub recorder: Arc<CastRecorder>,
    /// The user who opened it: its end is on record as theirs.
    pub by: Actor,
    /// When the hub sent `open`: input and resize times count from it.
    pub opened_at: Instant,
}

/// How the session ended, and what the browser is told.
struct Outcome {
    reason: EndReason,
    exit_code: Option<i32>,
    /// `open_error`: its code and message.
    refused: Option<(OpenErrorCode, String)>,
}

impl Outcome {
    fn because(reason: EndReason) -> Self {
        Self {
            reason,
            exit_code: None,
            refused: None,
        }
    }
}

/// What the browser sends as text.
#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
enum Control {
    Resize { cols: u16, rows: u16 },
    Ping,
}

/// Serves the browser's socket until the session ends, then ends the session on record.
pub async fn serve(state: AppState, mut socket: WebSocket, opened: Opened, lease: SocketLease) {
    opened.recorder.streams().fetch_add(1, Ordering::AcqRel);
    let place = state.bus.relays.register(opened.recording.id);
    let mut relay = Relay {
        state: &state,
        opened: &opened,
        utf8: Utf8Stream::default(),
        input_unacked: 0,
        browser_open: true,
        closing: None,
        pid: None,
        passed_on: 0,
    };
    let outcome = relay.run(&mut socket, &place.ended).await;
    opened.link.forget(opened.channel.number);
    opened.recorder.streams().fetch_sub(1, Ordering::AcqRel);
    let ending = Ending {
        reason: outcome.reason,
        exit_code: outcome.exit_code,
        truncated: false,
    };
    finish(&state, &opened, ending).await;
    if relay.browser_open {
        tell_browser(&mut socket, &outcome).await;
    }
    drop(lease);
}

/// Ends the session on record (unless an administrator ended it already).
pub async fn finish(state: &AppState, opened: &Opened, ending: Ending) {
    let recording = &opened.recording;
    let ended = ending::end(
        state,
        &opened.by,
        recording.id,
        Some(recording),
        ending,
        Timestamp::now(),
    )
    .await;
    match ended {
        Ok(_) | Err(spog_store::StoreError::Conflict(_)) => {}
        Err(error) => {
            tracing::error!(%error, session = %recording.session_id, "ending a terminal session")
        }
    }
}

/// The last words to the browser: an `error` for a refused open (close 1011), else `exit`
/// (close 1000).
async fn tell_browser(socket: &mut WebSocket, outcome: &Outcome) {
    let (message, code) = match &outcome.refused {
        Some((code, message)) => (
            json!({"type": "error", "code": code, "message": message}),
            INTERNAL,
        ),
        None => (
            json!({"type": "exit", "reason": outcome.reason.as_str(),
                "exit_code": outcome.exit_code}),
            NORMAL,
        ),
    };
    let _ = timeout(Duration::from_secs(2), async {
        socket
            .send(Message::Text(Utf8Bytes::from(message.to_string())))
            .await?;
        socket
            .send(Message::Close(Some(CloseFrame {
                code,
                reason: Utf8Bytes::from_static(""),
            })))
            .await
    })
    .await;
}

struct Relay<'a> {
    state: &'a AppState,
    opened: &'a Opened,
    utf8: Utf8Stream,
    /// Input sent to the agent and not yet written to the PTY.
    input_unacked: u64,
    browser_open: bool,
    /// Why the hub asked the agent to close the channel, and until when it waits.
    closing: Option<(EndReason, Instant)>,
    pid: Option<u32>,
    /// Output recorded and passed on since the agent was last told.
    passed_on: u64,
}

impl Relay<'_> {
    /// Relays until the session ends; `ended_on_record` fires when it was ended on record
    /// by someone else (an administrator, on any instance).
    async fn run(
        &mut self,
        socket: &mut WebSocket,
        ended_on_record: &CancellationToken,
    ) -> Outcome {
        let opened = self.opened;
        let open_deadline = opened.opened_at + OPEN_TIMEOUT;
        let idle_timeout = self.state.config.terminal_idle_timeout;
        let mut idle_deadline = Instant::now() + idle_timeout;
        loop {
            if opened.recorder.is_closed() && self.closing.is_none() {
                // Ended by an administrator (the recording was closed under the relay).
                self.close(EndReason::Ended).await;
            }
            let reading = self.browser_open
                && self.closing.is_none()
                && self.pid.is_some()
                && self.input_unacked < CHANNEL_WINDOW_BYTES;
            tokio::select! {
                items = opened.channel.take() => {
                    for item in items {
                        if let Some(outcome) = self.heard_from_agent(socket, item).await {
                            return outcome;
                        }
                    }
                    self.acknowledge().await;
                }
                incoming = socket.recv(), if reading => {
                    idle_deadline = Instant::now() + idle_timeout;
                    if let Err(code) = self.heard_from_browser(socket, incoming).await {
                        if let Some(code) = code {
                            let frame = CloseFrame { code, reason: Utf8Bytes::from_static("not a terminal message") };
                            let _ = socket.send(Message::Close(Some(frame))).await;
                        }
                        self.browser_open = false;
                        self.close(EndReason::Closed).await;
                    }
                }
                _ = ended_on_record.cancelled(), if self.closing.is_none() => {
                    self.close(EndReason::Ended).await;
                }
                _ = sleep_until(idle_deadline), if !idle_timeout.is_zero() && self.closing.is_none() && self.pid.is_some() => {
                    self.close(EndReason::Idle).await;
                }
                _ = sleep_until(open_deadline), if self.pid.is_none() && self.closing.is_none() => {
                    self.close(EndReason::SpawnFailed).await;
                    return Outcome {
                        refused: Some((OpenErrorCode::SpawnFailed, "the agent did not answer".to_owned())),
                        ..Outcome::because(EndReason::SpawnFailed)
                    };
                }
                _ = sleep_until(self.closing.map_or(open_deadline, |(_, until)| until)), if self.closing.is_some() => {
                    let (reason, _) = self.closing.unwrap_or((EndReason::Closed, open_deadline));
                    return Outcome::because(reason);
                }
            }
        }
    }

    /// Lets the agent send as much more output as was recorded and passed on: one `window`
    /// for all the frames taken at once.
    async fn acknowledge(&mut self) {
        let bytes = std::mem::take(&mut self.passed_on);
        if bytes == 0 {
            return;
        }
        self.opened.channel.acknowledge(bytes);
        let window = HubMessage::Window {
            channel: self.opened.channel.number,
            bytes,
        };
        let _ = self.opened.link.send(&window).await;
    }

    /// Asks the agent to hang up; the relay then waits for its `exit`, still recording.
    async fn close(&mut self, reason: EndReason) {
        if self.closing.is_some() {
            return;
        }
        self.closing = Some((reason, Instant::now() + EXIT_TIMEOUT));
        let close = HubMessage::Close {
            channel: self.opened.channel.number,
            reason: reason.as_str().to_owned(),
        };
        let _ = self.opened.link.send(&close).await;
    }

    fn elapsed(&self) -> f64 {
        self.opened.opened_at.elapsed().as_secs_f64()
    }

    fn elapsed_us(&self) -> u64 {
        u64::try_from(self.opened.opened_at.elapsed().as_micros()).unwrap_or(u64::MAX)
    }

    /// Records an event; a recording that cannot take it ends the session (`ended`: spog
    /// does not relay what it cannot record).
    async fn record(&mut self, time: f64, code: EventCode, data: String) {
        if data.is_empty() {
            return;
        }
        let recorder = &self.opened.recorder;
        let flush = match recorder.record(time, code, data) {
            Ok(flush) => flush,
            Err(error) => {
                if !recorder.is_closed() {
                    tracing::error!(%error, session = %self.opened.recording.session_id,
                        "a terminal session cannot be recorded; ending it");
                }
                self.close(EndReason::Ended).await;
                return;
            }
        };
        if flush {
            let recorder = recorder.clone();
            if let Err(error) = self.state.blocking.run(move || recorder.flush()).await {
                tracing::error!(%error, session = %self.opened.recording.session_id,
                    "writing a terminal recording failed; ending the session");
                self.close(EndReason::Ended).await;
            }
        }
    }

    async fn heard_from_agent(
        &mut self,
        socket: &mut WebSocket,
        item: FromAgent,
    ) -> Option<Outcome> {
        match item {
            FromAgent::Opened { pid } => {
                self.pid = Some(pid);
                let recording = &self.opened.recording;
                let hello = json!({"type": "session", "session_id": recording.session_id,
                    "recording_id": recording.id, "host_id": recording.host_id,
                    "hostname": recording.hostname, "os_user": recording.os_user,
                    "cols": recording.width, "rows": recording.height});
                self.send_browser(socket, Message::Text(Utf8Bytes::from(hello.to_string())))
                    .await;
                None
            }
            FromAgent::Refused { code, message } => Some(Outcome {
                refused: Some((code, message)),
                ..Outcome::because(EndReason::SpawnFailed)
            }),
            FromAgent::Output { elapsed_us, bytes } => {
                let text = self.utf8.decode(&bytes);
                self.record(elapsed_us as f64 / 1e6, EventCode::Output, text)
                    .await;
                self.passed_on += bytes.len() as u64;
                if self.browser_open {
                    self.send_browser(socket, Message::Binary(bytes)).await;
                }
                None
            }
            FromAgent::Exited { exit_code, signal } => {
                let tail = self.utf8.finish();
                let time = self.elapsed();
                self.record(time, EventCode::Output, tail).await;
                let reason = self.closing.map_or(EndReason::Exited, |(reason, _)| reason);
                // A shell killed by a signal reads as 128 + the signal, as shells report it.
                let exit_code = exit_code.or(signal.map(|s| 128 + s));
                Some(Outcome {
                    exit_code,
                    ..Outcome::because(reason)
                })
            }
            FromAgent::Window(bytes) => {
                self.input_unacked = self.input_unacked.saturating_sub(bytes);
                None
            }
            FromAgent::Lost => Some(Outcome::because(EndReason::AgentDisconnected)),
            // Only on channels the agent opened (`spog-agent shell`), never on this one.
            FromAgent::Input { .. } | FromAgent::ShellEnded { .. } => None,
        }
    }

    async fn send_browser(&mut self, socket: &mut WebSocket, message: Message) {
        match timeout(SEND_TIMEOUT, socket.send(message)).await {
            Ok(Ok(())) => {}
            _ => {
                self.browser_open = false;
                self.close(EndReason::Closed).await;
            }
        }
    }

    /// One message of the browser; `Err` when the browser has gone or broke the rules (with
    /// the close code to send).
    async fn heard_from_browser(
        &mut self,
        socket: &mut WebSocket,
        incoming: Option<Result<Message, axum::Error>>,
    ) -> Result<(), Option<u16>> {
        let number = self.opened.channel.number;
        match incoming {
            None | Some(Err(_)) | Some(Ok(Message::Close(_))) => Err(None),
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => Ok(()),
            Some(Ok(Message::Binary(bytes))) => {
                if bytes.is_empty() {
                    return Ok(());
                }
                if self.state.config.record_input {
                    let text = String::from_utf8_lossy(&bytes).into_owned();
                    let time = self.elapsed();
                    self.record(time, EventCode::Input, text).await;
                }
                self.input_unacked += bytes.len() as u64;
                let elapsed_us = self.elapsed_us();
                if self
                    .opened
                    .link
                    .send_input(number, elapsed_us, &bytes)
                    .await
                    .is_err()
                {
                    // The agent's connection is gone: its `Lost` follows.
                    tracing::debug!(channel = number, "input for a lost agent");
                }
                Ok(())
            }
            Some(Ok(Message::Text(text))) => match serde_json::from_str::<Control>(&text) {
                Ok(Control::Ping) => {
                    let pong = Message::Text(Utf8Bytes::from_static(r#"{"type":"pong"}"#));
                    self.send_browser(socket, pong).await;
                    Ok(())
                }
                Ok(Control::Resize { cols, rows })
                    if (1..=1000).contains(&cols) && (1..=1000).contains(&rows) =>
                {
                    let time = self.elapsed();
                    self.record(time, EventCode::Resize, format!("{cols}x{rows}"))
                        .await;
                    let resize = HubMessage::Resize {
                        channel: number,
                        cols,
                        rows,
                    };
                    let _ = self.opened.link.send(&resize).await;
                    Ok(())
                }
                _ => Err(Some(INVALID)),
            },
        }
    }
}

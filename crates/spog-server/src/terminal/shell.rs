//! Sessions that start on the host (SPEC 13.3): `spog-agent shell` runs the user's shell and
//! its agent streams it on a channel it opens (even), possibly long after the fact from its
//! spool. The hub records it as a session of origin `ssh` or `local`, with the OS user and the
//! SSH client the agent vouches for and no spog user, at the agent's original times. It
//! answers `shell_ack` with how many bytes it holds, so that an upload resumed after a
//! reconnect has no gap and no duplicate; the agent drops its spool at the last ack.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use spog_core::Timestamp;
use spog_core::recordings::{EventCode, TerminalRecording};
use spog_core::utf8_stream::Utf8Stream;
use spog_protocol::HubMessage;
use spog_store::recordings::EndReason;
use spog_store::recordings::terminal::{self, Origin, SessionStart};

use super::channel::{Channel, FromAgent};
use super::link::AgentLink;
use crate::auth::Auth;
use crate::error::ApiResult;
use crate::http::recordings::lifecycle::{self, Start};
use crate::recordings::CastRecorder;
use crate::recordings::ending::{self, Ending};
use crate::recordings::kind::Recorder;
use crate::state::AppState;

/// What `shell_start` said.
pub struct ShellStart {
    pub os_user: String,
    pub client_addr: Option<String>,
    pub shell: String,
    pub cols: u16,
    pub rows: u16,
    pub started_at: String,
}

/// Records one `spog-agent shell` session on `channel` of the agent's connection.
pub async fn serve(
    state: AppState,
    agent: Auth,
    link: Arc<AgentLink>,
    channel: Arc<Channel>,
    start: ShellStart,
) {
    let number = channel.number;
    let key = format!("{}@{}", number, start.started_at);
    let upload = format!("{}/{key}", link.host);
    match begin(&state, &agent, &link, &key, &upload, &start).await {
        Ok((recording, recorder, acked)) => {
            let mut session = Upload {
                state: &state,
                link: &link,
                channel: &channel,
                recording,
                recorder,
                acked,
                upload,
                utf8: Utf8Stream::default(),
                exit_code: None,
            };
            session.run(&agent).await;
        }
        Err(error) => {
            tracing::warn!(%error, host = %link.host, channel = number,
                "a spog-agent shell session could not be recorded");
        }
    }
    link.forget(number);
}

/// The session to record into and how many of its bytes are recorded: the one this instance
/// was recording when the agent's connection dropped, or a new one. A session this instance
/// does not know how far it got (recorded before a restart) ends as it is and the upload
/// starts a new one from the beginning: a duplicate beginning rather than a gap.
async fn begin(
    state: &AppState,
    agent: &Auth,
    link: &AgentLink,
    key: &str,
    upload: &str,
    start: &ShellStart,
) -> ApiResult<(TerminalRecording, Arc<CastRecorder>, u64)> {
    let found = {
        let mut conn = state.store.conn().await?;
        terminal::by_source(&mut conn, agent.account(), link.host, key).await?
    };
    if let Some(recording) = found {
        if let Some((id, acked)) = state.bus.relays.upload(upload)
            && id == recording.id
        {
            let recorder = state.recorders.recorder(&recording).await?;
            return Ok((recording, recorder, acked));
        }
        let ending = Ending::from(EndReason::AgentDisconnected);
        let now = Timestamp::now();
        if let Err(error) =
            ending::end(state, &agent.actor(), recording.id, None, ending, now).await
        {
            tracing::warn!(%error, session = %recording.session_id,
                "ending a shell session whose upload starts over");
        }
    }
    let origin = if start.client_addr.is_some() {
        Origin::Ssh
    } else {
        Origin::Local
    };
    let at = Timestamp::parse(&start.started_at).unwrap_or_else(Timestamp::now);
    let new = Start {
        host: link.host,
        user: None,
        width: i64::from(start.cols.clamp(1, 1000)),
        height: i64::from(start.rows.clamp(1, 1000)),
        at,
    };
    let own = SessionStart {
        shell: &start.shell,
        origin,
        os_user: Some(&start.os_user),
        client_addr: start.client_addr.as_deref(),
        source_key: Some(key),
    };
    let recording = lifecycle::start(state, agent, new, own).await?;
    let recorder = state.recorders.recorder(&recording).await?;
    Ok((recording, recorder, 0))
}

struct Upload<'a> {
    state: &'a AppState,
    link: &'a AgentLink,
    channel: &'a Channel,
    recording: TerminalRecording,
    recorder: Arc<CastRecorder>,
    /// Bytes of the session (output and input) recorded.
    acked: u64,
    upload: String,
    utf8: Utf8Stream,
    exit_code: Option<i32>,
}

impl Upload<'_> {
    async fn run(&mut self, agent: &Auth) {
        self.recorder.streams().fetch_add(1, Ordering::AcqRel);
        let acked = self.acked;
        self.ack(acked).await;
        let truncated = loop {
            let mut ended = None;
            for item in self.channel.take().await {
                match item {
                    FromAgent::Output { elapsed_us, bytes } => {
                        let text = self.utf8.decode(&bytes);
                        self.record(elapsed_us, EventCode::Output, text, bytes.len())
                            .await;
                    }
                    FromAgent::Input { elapsed_us, bytes } => {
                        let text = String::from_utf8_lossy(&bytes).into_owned();
                        self.record(elapsed_us, EventCode::Input, text, bytes.len())
                            .await;
                    }
                    FromAgent::Exited { exit_code, signal } => {
                        self.exit_code = exit_code.or(signal.map(|s| 128 + s));
                    }
                    FromAgent::ShellEnded { truncated } => ended = Some(Some(truncated)),
                    FromAgent::Lost => ended = Some(None),
                    FromAgent::Opened { .. } | FromAgent::Refused { .. } | FromAgent::Window(_) => {
                    }
                }
            }
            if let Some(ended) = ended {
                break ended;
            }
        };
        self.recorder.streams().fetch_sub(1, Ordering::AcqRel);
        let Some(truncated) = truncated else {
            // The connection dropped: the agent uploads the rest once it reconnects.
            let progress = Some((self.recording.id, self.acked));
            self.state.bus.relays.uploaded(&self.upload, progress);
            return;
        };
        let tail = self.utf8.finish();
        let time = self.recorder.progress().duration_micros as f64 / 1e6;
        if !tail.is_empty()
            && let Err(error) = self.recorder.record(time, EventCode::Output, tail)
        {
            tracing::warn!(%error, "recording a shell session's last bytes");
        }
        if truncated {
            tracing::warn!(session = %self.recording.session_id,
                "the agent's spool was full: the recording of this session is truncated");
        }
        let ending = Ending {
            reason: EndReason::Exited,
            exit_code: self.exit_code,
            truncated,
        };
        let ended = ending::end(
            self.state,
            &agent.actor(),
            self.recording.id,
            Some(&self.recording),
            ending,
            Timestamp::now(),
        )
        .await;
        if let Err(error) = ended {
            tracing::warn!(%error, session = %self.recording.session_id, "ending a shell session");
            return;
        }
        self.state.bus.relays.uploaded(&self.upload, None);
        let acked = self.acked;
        self.ack(acked).await;
    }

    async fn ack(&self, acked_bytes: u64) {
        let ack = HubMessage::ShellAck {
            channel: self.channel.number,
            session_id: self.recording.session_id.to_string(),
            acked_bytes,
        };
        let _ = self.link.send(&ack).await;
    }

    /// Records bytes of the session at the agent's time, then lets the agent send as many more.
    async fn record(&mut self, elapsed_us: u64, code: EventCode, text: String, len: usize) {
        let record_input = self.state.config.record_input;
        if !text.is_empty() && (code != EventCode::Input || record_input) {
            match self.recorder.record(elapsed_us as f64 / 1e6, code, text) {
                Ok(true) => {
                    let recorder = self.recorder.clone();
                    if let Err(error) = self.state.blocking.run(move || recorder.flush()).await {
                        tracing::warn!(%error, "writing a shell session's recording");
                    }
                }
                Ok(false) => {}
                Err(error) => tracing::warn!(%error, "recording a shell session"),
            }
        }
        self.acked += len as u64;
        self.channel.acknowledge(len as u64);
        let window = HubMessage::Window {
            channel: self.channel.number,
            bytes: len as u64,
        };
        let _ = self.link.send(&window).await;
    }
}

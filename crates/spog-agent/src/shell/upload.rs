//! Uploading spooled `spog-agent shell` sessions over one connection (SPEC 12.3, 13.3). For each
//! session: `shell_start`; the hub's first `shell_ack` says how many of its bytes it already has
//! (0 for a new session, more after a reconnect); the frames after those, with their original
//! times, under the channel's window; `exit` when the program's end is known and `shell_end`
//! once every record is sent; the spool keeps the session until a `shell_ack` after
//! `shell_end` acknowledges every byte.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use spog_protocol::{AgentMessage, CHANNEL_WINDOW_BYTES, Frame, FrameKind, MAX_FRAME_PAYLOAD};
use tokio::sync::{Notify, mpsc};
use tokio::task::spawn_blocking;

use super::record::{Ending, Record, Tag};
use super::spool::{Spool, Spooled};
use crate::terminal::Outgoing;

/// Spool bytes read at a time.
const READ_CHUNK: usize = 256 * 1024;
/// A session still being written is looked at again at least this often.
const POLL: Duration = Duration::from_secs(1);

#[derive(Default)]
struct Control {
    state: Mutex<ControlState>,
    wake: Notify,
}

#[derive(Default)]
struct ControlState {
    /// The hub's latest `acked_bytes`, and how many `shell_ack`s came.
    acked: Option<u64>,
    acks: u64,
    /// Bytes sent and not yet acknowledged with `window`.
    unacked: u64,
    /// The connection is gone.
    detached: bool,
    /// Every byte is acknowledged and the spool is cleared.
    done: bool,
}

impl Control {
    fn state(&self) -> MutexGuard<'_, ControlState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn change(&self, change: impl FnOnce(&mut ControlState)) {
        change(&mut self.state());
        self.wake.notify_one();
    }

    /// Waits until `ready` gives a value; `None` once the connection is gone.
    async fn wait_for<T>(&self, ready: impl Fn(&ControlState) -> Option<T>) -> Option<T> {
        loop {
            let notified = self.wake.notified();
            {
                let state = self.state();
                if state.detached {
                    return None;
                }
                if let Some(value) = ready(&state) {
                    return Some(value);
                }
            }
            notified.await;
        }
    }
}

/// The uploads of one connection, by channel.
pub struct Uploads {
    spool: Arc<Spool>,
    active: HashMap<u32, Arc<Control>>,
    outgoing: mpsc::Sender<Outgoing>,
}

impl Uploads {
    pub fn new(spool: Arc<Spool>, outgoing: mpsc::Sender<Outgoing>) -> Self {
        Self {
            spool,
            active: HashMap::new(),
            outgoing,
        }
    }

    /// Starts an upload for every spooled session that has none.
    pub fn start_new(&mut self) {
        self.active.retain(|_, control| !control.state().done);
        for spooled in self.spool.sessions() {
            let channel = spooled.meta.channel;
            if self.active.contains_key(&channel) {
                continue;
            }
            let control = Arc::new(Control::default());
            self.active.insert(channel, control.clone());
            let upload = Upload {
                spool: self.spool.clone(),
                id: spooled.id.clone(),
                channel,
                control,
                outgoing: self.outgoing.clone(),
            };
            tokio::spawn(upload.run(spooled));
        }
    }

    pub fn shell_ack(&mut self, channel: u32, session_id: &str, acked_bytes: u64) {
        match self.active.get(&channel) {
            Some(control) => {
                tracing::debug!(channel, session_id, acked_bytes, "shell_ack");
                control.change(|state| {
                    state.acked = Some(acked_bytes);
                    state.acks += 1;
                });
            }
            None => tracing::debug!(channel, "shell_ack for no shell session"),
        }
    }

    pub fn window(&mut self, channel: u32, bytes: u64) {
        match self.active.get(&channel) {
            Some(control) => control.change(|state| {
                state.unacked = state.unacked.saturating_sub(bytes);
            }),
            None => tracing::debug!(channel, "window for no shell session"),
        }
    }
}

impl Drop for Uploads {
    fn drop(&mut self) {
        for control in self.active.values() {
            control.change(|state| state.detached = true);
        }
    }
}

struct Upload {
    spool: Arc<Spool>,
    id: String,
    channel: u32,
    control: Arc<Control>,
    outgoing: mpsc::Sender<Outgoing>,
}

impl Upload {
    async fn run(self, spooled: Spooled) {
        let channel = self.channel;
        match self.upload(spooled).await {
            Ok(()) => {}
            Err(Stop::Detached) => {
                tracing::debug!(channel, "upload paused: the connection is gone");
            }
            Err(Stop::Failed(why)) => {
                tracing::warn!(channel, %why, "upload of a shell session failed");
            }
        }
    }

    async fn upload(&self, spooled: Spooled) -> Result<(), Stop> {
        let meta = &spooled.meta;
        self.send(AgentMessage::ShellStart {
            channel: self.channel,
            os_user: meta.os_user.clone(),
            client_addr: meta.client_addr.clone(),
            shell: meta.shell.clone(),
            cols: meta.cols,
            rows: meta.rows,
            started_at: meta.started_at.clone(),
        })
        .await?;
        let resume_after = self
            .control
            .wait_for(|state| state.acked)
            .await
            .ok_or(Stop::Detached)?;
        if resume_after > 0 {
            tracing::info!(
                channel = self.channel,
                resume_after,
                "resuming a shell session upload"
            );
        }

        let mut offset = 0u64;
        let mut counted = 0u64;
        let mut pending: Vec<u8> = Vec::new();
        let mut ending = None;
        let spooled = loop {
            let spooled = self
                .spool
                .session(&self.id)
                .ok_or_else(|| Stop::Failed("the session left the spool".into()))?;
            if offset < spooled.written {
                let (spool, id) = (self.spool.clone(), self.id.clone());
                let chunk = spawn_blocking(move || spool.read(&id, offset, READ_CHUNK))
                    .await
                    .map_err(|e| Stop::Failed(e.to_string()))?
                    .map_err(|e| Stop::Failed(e.to_string()))?;
                offset += chunk.len() as u64;
                pending.extend_from_slice(&chunk);
                let mut used_total = 0;
                while let Some((record, used)) = Record::parse(&pending[used_total..])
                    .map_err(|e| Stop::Failed(e.to_string()))?
                {
                    used_total += used;
                    if record.tag == Tag::Exit {
                        ending = record.ending();
                    } else if record.tag.carries_bytes() {
                        let skip = resume_after
                            .saturating_sub(counted)
                            .min(record.data.len() as u64);
                        counted += record.data.len() as u64;
                        self.send_bytes(&record, skip as usize).await?;
                    }
                    // Resizes stay in the spool: the protocol has no message for them yet.
                }
                pending.drain(..used_total);
                continue;
            }
            if spooled.meta.ended_at.is_some() {
                break spooled;
            }
            let changed = self.spool.changed.notified();
            tokio::select! {
                _ = changed => {}
                _ = tokio::time::sleep(POLL) => {}
                // Returns only once the connection is gone.
                _ = self.control.wait_for(|_| None::<()>) => return Err(Stop::Detached),
            }
        };

        if let Some(ending) = ending {
            let (exit_code, signal) = match ending {
                Ending::Code(code) => (Some(code), None),
                Ending::Signal(signal) => (None, Some(signal)),
            };
            self.send(AgentMessage::Exit {
                channel: self.channel,
                exit_code,
                signal,
            })
            .await?;
        }
        let acks_before = self.control.state().acks;
        self.send(AgentMessage::ShellEnd {
            channel: self.channel,
            ended_at: spooled.meta.ended_at.clone().unwrap_or_default(),
            truncated: spooled.meta.truncated,
        })
        .await?;
        let total = counted;
        self.control
            .wait_for(|state| {
                (state.acks > acks_before && state.acked.is_some_and(|a| a >= total)).then_some(())
            })
            .await
            .ok_or(Stop::Detached)?;
        let (spool, id) = (self.spool.clone(), self.id.clone());
        spawn_blocking(move || spool.remove(&id))
            .await
            .map_err(|e| Stop::Failed(e.to_string()))?
            .map_err(|e| Stop::Failed(e.to_string()))?;
        self.control.change(|state| state.done = true);
        tracing::info!(
            channel = self.channel,
            bytes = total,
            "shell session uploaded"
        );
        Ok(())
    }

    /// A record's bytes after the first `skip`, in frames within the window.
    async fn send_bytes(&self, record: &Record, skip: usize) -> Result<(), Stop> {
        let kind = match record.tag {
            Tag::Input => FrameKind::Input,
            _ => FrameKind::Output,
        };
        let mut rest = &record.data[skip..];
        while !rest.is_empty() {
            let room = self
                .control
                .wait_for(|state| {
                    let room = CHANNEL_WINDOW_BYTES.saturating_sub(state.unacked);
                    (room > 0).then_some(room)
                })
                .await
                .ok_or(Stop::Detached)?;
            let len = rest.len().min(MAX_FRAME_PAYLOAD).min(room as usize);
            let frame = Frame {
                channel: self.channel,
                kind,
                elapsed_us: record.elapsed_us,
                data: &rest[..len],
            }
            .encode()
            .map_err(|e| Stop::Failed(e.to_string()))?;
            self.control.state().unacked += len as u64;
            self.outgoing
                .send(Outgoing::Frame(frame))
                .await
                .map_err(|_| Stop::Detached)?;
            rest = &rest[len..];
        }
        Ok(())
    }

    async fn send(&self, message: AgentMessage) -> Result<(), Stop> {
        self.outgoing
            .send(Outgoing::Message(Box::new(message)))
            .await
            .map_err(|_| Stop::Detached)
    }
}

enum Stop {
    /// The connection ended: the next one starts the upload again.
    Detached,
    Failed(String),
}

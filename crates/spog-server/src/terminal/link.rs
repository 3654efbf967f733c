//! The hub's end of one agent connection as terminals use it (SPEC 12.3): what the agent can
//! do (its `hello` capabilities), the channels open on it, and the bounded outbox the
//! connection's task writes to the socket. Relays send through the outbox; the connection's
//! task hands what the agent sends to the channel it names.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use axum::extract::ws::{Message, Utf8Bytes};
use bytes::Bytes;
use parking_lot::Mutex;
use spog_core::Id;
use spog_core::model::Host;
use spog_protocol::{
    AgentMessage, Capabilities, FRAME_HEADER_LEN, Frame, FrameKind, HubMessage, MAX_FRAME_PAYLOAD,
    encode_message,
};
use tokio::sync::mpsc;

use super::channel::{Channel, FromAgent, Violation};

/// Messages waiting for the agent's socket. Input frames are at most 64 KiB, so a full
/// outbox holds at most a few MiB; senders wait for room.
const OUTBOX: usize = 64;

/// The agent's connection is gone.
#[derive(Debug)]
pub struct Gone;

pub struct AgentLink {
    pub host: Id<Host>,
    /// The agent serves console terminals (`terminal.enabled`).
    pub terminal: bool,
    /// The local account and program its terminals run, as its `hello` said.
    pub os_user: Option<String>,
    pub shell: Option<String>,
    outbox: mpsc::Sender<Message>,
    channels: Mutex<HashMap<u32, Arc<Channel>>>,
    /// The next odd channel number.
    next: AtomicU32,
}

impl AgentLink {
    /// A link and the receiving end of its outbox, for the connection's task.
    pub fn new(host: Id<Host>, can: &Capabilities) -> (Arc<Self>, mpsc::Receiver<Message>) {
        let (outbox, receiver) = mpsc::channel(OUTBOX);
        let link = Arc::new(Self {
            host,
            terminal: can.terminal,
            os_user: can.terminal_user.clone(),
            shell: can.terminal_shell.clone(),
            outbox,
            channels: Mutex::default(),
            next: AtomicU32::new(1),
        });
        (link, receiver)
    }

    /// A new channel (odd: the hub opened it), registered so that what the agent sends for it
    /// reaches it.
    pub fn channel(&self) -> Arc<Channel> {
        let number = self.next.fetch_add(2, Ordering::Relaxed);
        let channel = Arc::new(Channel::new(number));
        self.channels.lock().insert(number, channel.clone());
        channel
    }

    /// The channel is done: what the agent still sends for it is dropped.
    pub fn forget(&self, number: u32) {
        self.channels.lock().remove(&number);
    }

    pub async fn send(&self, message: &HubMessage) -> Result<(), Gone> {
        let text = encode_message(message).map_err(|_| Gone)?;
        self.outbox
            .send(Message::Text(Utf8Bytes::from(text)))
            .await
            .map_err(|_| Gone)
    }

    /// Sends input for the channel's PTY, in frames of at most 64 KiB.
    pub async fn send_input(
        &self,
        channel: u32,
        elapsed_us: u64,
        bytes: &[u8],
    ) -> Result<(), Gone> {
        for piece in bytes.chunks(MAX_FRAME_PAYLOAD) {
            let frame = Frame {
                channel,
                kind: FrameKind::Input,
                elapsed_us,
                data: piece,
            };
            let encoded = frame.encode().map_err(|_| Gone)?;
            self.outbox
                .send(Message::Binary(Bytes::from(encoded)))
                .await
                .map_err(|_| Gone)?;
        }
        Ok(())
    }

    /// A channel the agent opened (`shell_start`, even); `None` if it is not even or is
    /// open already.
    pub fn accept(&self, number: u32) -> Option<Arc<Channel>> {
        if spog_protocol::opened_by_hub(number) {
            return None;
        }
        let mut channels = self.channels.lock();
        if channels.contains_key(&number) {
            return None;
        }
        let channel = Arc::new(Channel::new(number));
        channels.insert(number, channel.clone());
        Some(channel)
    }

    /// A frame of the agent, from the connection's task: output, or the input of a session
    /// the agent opened. Frames for a channel no longer open (its relay ended first) are
    /// dropped.
    pub fn frame(&self, message: Bytes) -> Result<(), Violation> {
        let frame = Frame::decode(&message).map_err(|_| Violation)?;
        // The payload is a slice of the message as received: no copy per frame.
        let bytes = message.slice(FRAME_HEADER_LEN..);
        let elapsed_us = frame.elapsed_us;
        let item = match frame.kind {
            FrameKind::Output => FromAgent::Output { elapsed_us, bytes },
            // Input typed at the host: only in sessions the agent opened.
            FrameKind::Input if !spog_protocol::opened_by_hub(frame.channel) => {
                FromAgent::Input { elapsed_us, bytes }
            }
            FrameKind::Input => return Err(Violation),
        };
        let Some(channel) = self.channels.lock().get(&frame.channel).cloned() else {
            return Ok(());
        };
        channel.push(item)
    }

    /// A message of the agent about a channel; other messages are not the link's.
    pub fn message(&self, message: AgentMessage) -> Result<(), Violation> {
        let (number, item) = match message {
            AgentMessage::OpenOk { channel, pid } => (channel, FromAgent::Opened { pid }),
            AgentMessage::OpenError {
                channel,
                code,
                message,
            } => (channel, FromAgent::Refused { code, message }),
            AgentMessage::Exit {
                channel,
                exit_code,
                signal,
            } => (channel, FromAgent::Exited { exit_code, signal }),
            AgentMessage::Window { channel, bytes } => (channel, FromAgent::Window(bytes)),
            AgentMessage::ShellEnd {
                channel, truncated, ..
            } => (channel, FromAgent::ShellEnded { truncated }),
            _ => return Ok(()),
        };
        match self.channels.lock().get(&number) {
            Some(channel) => channel.push(item),
            None => Ok(()),
        }
    }

    /// The connection dropped: every channel ends (`agent_disconnected`).
    pub fn lost(&self) {
        for (_, channel) in self.channels.lock().drain() {
            let _ = channel.push(FromAgent::Lost);
        }
    }
}

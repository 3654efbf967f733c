//! Console terminals (SPEC 12.3, 13.1): the hub opens a channel, the agent starts a login shell
//! on a new PTY and carries its bytes both ways under per-channel flow control.
//!
//! `Terminals` lives as long as the agent (the settings, and a count of channel tasks still
//! alive, also those of a lost connection whose shells are being hung up); `Channels` lives as
//! long as one connection and routes the hub's messages to its channels. Channel tasks answer
//! through one bounded queue of [`Outgoing`] messages that the connection loop writes out.

pub mod account;
mod channel;
pub mod pty;

use std::collections::HashMap;
use std::ffi::OsString;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use spog_protocol::{AgentMessage, Capabilities, Frame, FrameKind, OpenErrorCode};
use tokio::sync::{mpsc, watch};

use crate::config::TerminalConfig;
use channel::Control;
use pty::ShellRequest;

/// Messages the channels may have waiting for the socket: at most 32 frames of 64 KiB.
const OUTGOING_QUEUE: usize = 32;

/// What a channel task hands to the connection loop to send.
#[derive(Debug)]
pub enum Outgoing {
    /// Boxed: most of the queue is frames.
    Message(Box<AgentMessage>),
    /// An encoded binary frame.
    Frame(Vec<u8>),
}

/// The agent's terminal settings and its live channel tasks.
pub struct Terminals {
    enabled: bool,
    user: String,
    shell: Option<PathBuf>,
    max_sessions: u32,
    lang: Option<OsString>,
    live: Arc<watch::Sender<usize>>,
}

impl Terminals {
    pub fn new(config: &TerminalConfig) -> Self {
        Self {
            enabled: config.enabled,
            user: config.user.clone().unwrap_or_default(),
            shell: config.shell.clone(),
            max_sessions: config.max_sessions,
            lang: std::env::var_os("LANG"),
            live: Arc::new(watch::channel(0).0),
        }
    }

    /// What `hello` says about terminals: whether they are on, and as whom and with which
    /// program they run, so that the hub records it from a session's start. The account is
    /// looked up each time (passwd may change while the agent runs); an unknown one is left
    /// out (`open` then fails with `no_such_user`).
    pub fn capabilities(&self) -> Capabilities {
        let (terminal_user, terminal_shell) = if self.enabled {
            let shell = self.shell.clone().or_else(|| {
                account::lookup(&self.user)
                    .ok()
                    .and_then(|account| account.shell)
            });
            let shell = shell.unwrap_or_else(|| PathBuf::from(pty::FALLBACK_SHELL));
            (Some(self.user.clone()), Some(shell.display().to_string()))
        } else {
            (None, None)
        };
        Capabilities {
            terminal: self.enabled,
            shell: false,
            max_sessions: self.max_sessions,
            terminal_user,
            terminal_shell,
        }
    }

    /// The channels of one connection, and the queue their messages come out of.
    pub fn connection(&self) -> (Channels<'_>, mpsc::Receiver<Outgoing>) {
        let (outgoing, receiver) = mpsc::channel(OUTGOING_QUEUE);
        let channels = Channels {
            terminals: self,
            open: HashMap::new(),
            outgoing,
        };
        (channels, receiver)
    }

    /// Waits (at most `within`) until every channel task has ended: on shutdown, so that no
    /// shell outlives the agent. False if some are still there.
    pub async fn wait_until_all_ended(&self, within: Duration) -> bool {
        let mut live = self.live.subscribe();
        tokio::time::timeout(within, live.wait_for(|n| *n == 0))
            .await
            .is_ok()
    }
}

/// Held by each channel task: counts it as alive until dropped.
pub struct LiveGuard(Arc<watch::Sender<usize>>);

impl LiveGuard {
    fn new(live: &Arc<watch::Sender<usize>>) -> Self {
        live.send_modify(|n| *n += 1);
        Self(live.clone())
    }
}

impl Clone for LiveGuard {
    fn clone(&self) -> Self {
        Self::new(&self.0)
    }
}

impl Drop for LiveGuard {
    fn drop(&mut self) {
        self.0.send_modify(|n| *n = n.saturating_sub(1));
    }
}

/// The hub broke the protocol on a channel: the connection closes with 1008.
#[derive(Debug)]
pub struct Violation(pub String);

/// The open channels of one connection, by number.
pub struct Channels<'a> {
    terminals: &'a Terminals,
    open: HashMap<u32, Arc<Control>>,
    outgoing: mpsc::Sender<Outgoing>,
}

impl Channels<'_> {
    /// Where others with something to send on this connection (the shell uploads) queue it.
    pub fn sender(&self) -> mpsc::Sender<Outgoing> {
        self.outgoing.clone()
    }
    /// `open`: starts a channel, or says at once why not. An even channel, or one already open,
    /// is a protocol violation.
    pub fn open(
        &mut self,
        channel: u32,
        cols: u16,
        rows: u16,
        term: String,
    ) -> Result<Option<AgentMessage>, Violation> {
        if !spog_protocol::opened_by_hub(channel) {
            return Err(Violation(format!(
                "open on channel {channel}: the hub's channels are odd"
            )));
        }
        if self.open.contains_key(&channel) {
            return Err(Violation(format!(
                "open on channel {channel}, which is already open"
            )));
        }
        let terminals = self.terminals;
        let refuse = |code, message: String| {
            tracing::info!(channel, ?code, %message, "refused a terminal");
            Ok(Some(AgentMessage::OpenError {
                channel,
                code,
                message,
            }))
        };
        if !terminals.enabled {
            return refuse(
                OpenErrorCode::TerminalDisabled,
                "web terminals are not enabled on this host".into(),
            );
        }
        if self.open.len() >= terminals.max_sessions as usize {
            return refuse(
                OpenErrorCode::TooManySessions,
                format!(
                    "{} terminals are open, terminal.max_sessions is {}",
                    self.open.len(),
                    terminals.max_sessions
                ),
            );
        }
        let request = ShellRequest {
            user: terminals.user.clone(),
            shell: terminals.shell.clone(),
            term,
            cols,
            rows,
            lang: terminals.lang.clone(),
        };
        let control = Arc::new(Control::default());
        self.open.insert(channel, control.clone());
        let live = LiveGuard::new(&terminals.live);
        tokio::spawn(channel::run(
            channel,
            request,
            control,
            self.outgoing.clone(),
            live,
        ));
        Ok(None)
    }

    /// A binary frame from the hub: input for an open channel. Frames for a channel that is
    /// not open are ignored: they may cross its `exit`.
    pub fn frame(&mut self, frame: Frame<'_>) -> Result<(), Violation> {
        if frame.kind != FrameKind::Input {
            return Err(Violation(format!(
                "output frame from the hub on channel {}",
                frame.channel
            )));
        }
        match self.open.get(&frame.channel) {
            Some(control) => control.input(frame.data).map_err(|_| {
                Violation(format!(
                    "input on channel {} beyond its window of {} bytes",
                    frame.channel,
                    spog_protocol::CHANNEL_WINDOW_BYTES
                ))
            }),
            None => {
                tracing::debug!(channel = frame.channel, "input for no open channel");
                Ok(())
            }
        }
    }

    /// `window`: the hub passed on `bytes` more of a channel's output.
    pub fn window(&mut self, channel: u32, bytes: u64) {
        match self.open.get(&channel) {
            Some(control) => {
                if !control.acknowledge(bytes) {
                    tracing::warn!(channel, bytes, "the hub acknowledged more than was sent");
                }
            }
            None => tracing::debug!(channel, "window for no open channel"),
        }
    }

    pub fn resize(&mut self, channel: u32, cols: u16, rows: u16) {
        match self.open.get(&channel) {
            Some(control) => control.resize(cols, rows),
            None => tracing::debug!(channel, "resize for no open channel"),
        }
    }

    /// `close`: hang up the channel's PTY; its `exit` follows.
    pub fn close(&mut self, channel: u32, reason: &str) {
        match self.open.get(&channel) {
            Some(control) => {
                tracing::info!(channel, reason, "the hub closed the terminal");
                control.hang_up();
            }
            None => tracing::debug!(channel, "close for no open channel"),
        }
    }

    /// Called for every message on its way out: after `exit` or `open_error` the channel is
    /// no longer open (and its number may be used again).
    pub fn sending(&mut self, message: &AgentMessage) {
        if let AgentMessage::Exit { channel, .. } | AgentMessage::OpenError { channel, .. } =
            message
        {
            self.open.remove(channel);
        }
    }
}

impl Drop for Channels<'_> {
    /// The connection is gone: every channel hangs up its shell (SIGKILL 5 s later).
    fn drop(&mut self) {
        for control in self.open.values() {
            control.detach();
        }
    }
}

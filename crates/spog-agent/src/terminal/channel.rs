//! One terminal channel: its shell on a PTY, the bytes both ways under flow control, and its
//! end. The connection and the channel share a small `Control` (input queue, window, resize,
//! hang-up); the channel answers through the connection's bounded queue of outgoing messages,
//! so a channel whose viewer is slow never stalls the connection or another channel.

use std::collections::VecDeque;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::process::ExitStatusExt;
use std::process::ExitStatus;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use spog_protocol::{
    AgentMessage, CHANNEL_WINDOW_BYTES, FRAME_HEADER_LEN, FrameKind, MAX_FRAME_PAYLOAD,
    OpenErrorCode,
};
use tokio::io::unix::AsyncFd;
use tokio::process::Child;
use tokio::sync::{Notify, mpsc};
use tokio::task::spawn_blocking;
use tokio::time::{Instant, sleep_until};

use super::pty::{self, ShellRequest, Spawned};
use super::{LiveGuard, Outgoing};

/// `close` or a lost connection: SIGHUP first, SIGKILL this much later if still alive.
const KILL_AFTER: Duration = Duration::from_secs(5);
/// After the shell exited, a PTY that stays open (a process left in the background holds it)
/// and quiet for this long is not waited for any more.
const QUIET_AFTER_EXIT: Duration = Duration::from_secs(1);

/// What the connection and a channel share.
#[derive(Default)]
pub struct Control {
    state: Mutex<ControlState>,
    /// Something in `state` changed.
    wake: Notify,
}

#[derive(Default)]
struct ControlState {
    /// Input frames not yet written to the PTY.
    input: VecDeque<Vec<u8>>,
    /// Input bytes received and not yet acknowledged (queued or being written).
    input_unacked: u64,
    /// Output bytes sent and not yet acknowledged by the hub.
    output_unacked: u64,
    /// The latest size asked for, not yet applied.
    resize: Option<(u16, u16)>,
    /// The hub sent `close`.
    hang_up: bool,
    /// The connection is gone: nothing more to send, nobody to wait for.
    detached: bool,
}

/// The hub sent more input than the window allows.
#[derive(Debug)]
pub struct WindowExceeded;

impl Control {
    fn state(&self) -> MutexGuard<'_, ControlState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn change(&self, change: impl FnOnce(&mut ControlState)) {
        change(&mut self.state());
        self.wake.notify_one();
    }

    /// Queues input for the PTY. The hub may have at most a window of input unacknowledged,
    /// which bounds the queue.
    pub fn input(&self, bytes: &[u8]) -> Result<(), WindowExceeded> {
        let mut state = self.state();
        let total = state.input_unacked + bytes.len() as u64;
        if total > CHANNEL_WINDOW_BYTES {
            return Err(WindowExceeded);
        }
        state.input_unacked = total;
        state.input.push_back(bytes.to_vec());
        drop(state);
        self.wake.notify_one();
        Ok(())
    }

    /// The hub passed on `bytes` more of the output. Returns false when it acknowledged more
    /// than was sent (the excess is ignored).
    pub fn acknowledge(&self, bytes: u64) -> bool {
        let mut within = true;
        self.change(|state| {
            within = bytes <= state.output_unacked;
            state.output_unacked = state.output_unacked.saturating_sub(bytes);
        });
        within
    }

    pub fn resize(&self, cols: u16, rows: u16) {
        self.change(|state| state.resize = Some((cols, rows)));
    }

    pub fn hang_up(&self) {
        self.change(|state| state.hang_up = true);
    }

    pub fn detach(&self) {
        self.change(|state| state.detached = true);
    }
}

/// Starts the shell, answers `open_ok` or `open_error`, then runs the channel until its shell
/// has exited and its output is sent, and answers `exit`.
pub async fn run(
    channel: u32,
    request: ShellRequest,
    control: Arc<Control>,
    outgoing: mpsc::Sender<Outgoing>,
    live: LiveGuard,
) {
    let spawned = match spawn_blocking(move || pty::spawn_shell(&request)).await {
        Ok(Ok(spawned)) => spawned,
        Ok(Err(e)) => {
            tracing::warn!(channel, code = ?e.code, error = %e.message, "terminal refused");
            let refusal = AgentMessage::OpenError {
                channel,
                code: e.code,
                message: e.message,
            };
            let _ = outgoing.send(Outgoing::Message(Box::new(refusal))).await;
            return;
        }
        Err(e) => {
            let refusal = AgentMessage::OpenError {
                channel,
                code: OpenErrorCode::SpawnFailed,
                message: format!("starting the shell failed: {e}"),
            };
            let _ = outgoing.send(Outgoing::Message(Box::new(refusal))).await;
            return;
        }
    };
    let Spawned {
        child,
        pid,
        master,
        shell,
    } = spawned;
    // SAFETY: an `OwnedFd` keeps its descriptor open and the same until dropped.
    let master = match unsafe { AsyncFd::register(master) } {
        Ok(master) => master,
        Err(e) => {
            // The child is killed when dropped (`kill_on_drop`), then reaped by tokio.
            let refusal = AgentMessage::OpenError {
                channel,
                code: OpenErrorCode::SpawnFailed,
                message: format!("cannot watch the PTY: {e}"),
            };
            let _ = outgoing.send(Outgoing::Message(Box::new(refusal))).await;
            return;
        }
    };
    tracing::info!(channel, pid, shell = %shell.display(), "terminal opened");
    let opened_at = Instant::now();
    let mut terminal = Terminal {
        channel,
        control,
        outgoing,
        master,
        child,
        group: pid as libc::pid_t,
        opened_at,
        status: None,
        eof: false,
        detached: false,
        hung_up: None,
        killed: false,
        quiet_since: None,
        held_open: false,
        writing: None,
        _live: live,
    };
    let open_ok = AgentMessage::OpenOk { channel, pid };
    if terminal
        .outgoing
        .send(Outgoing::Message(Box::new(open_ok)))
        .await
        .is_err()
    {
        terminal.detached = true;
    }
    terminal.run().await;
}

struct Terminal {
    channel: u32,
    control: Arc<Control>,
    outgoing: mpsc::Sender<Outgoing>,
    master: AsyncFd<OwnedFd>,
    child: Child,
    /// The shell's process group (its pid: it leads a new session).
    group: libc::pid_t,
    opened_at: Instant,
    /// Set once the shell is reaped.
    status: Option<io::Result<ExitStatus>>,
    /// Every slave end is closed: all output has been read.
    eof: bool,
    detached: bool,
    /// When the shell was sent SIGHUP.
    hung_up: Option<Instant>,
    killed: bool,
    /// After the exit: since when the PTY gave nothing.
    quiet_since: Option<Instant>,
    /// The shell exited, but the PTY stayed open and quiet: something it started holds it.
    held_open: bool,
    /// The input frame being written, and how much of it is written.
    writing: Option<(Vec<u8>, usize)>,
    _live: LiveGuard,
}

/// What the loop may do next, read from `Control` under its lock.
struct Turn {
    window_left: u64,
    input_waiting: bool,
}

impl Terminal {
    async fn run(mut self) {
        loop {
            let turn = self.take_control();
            if self.finished() {
                break;
            }
            let can_read = !self.eof && (self.detached || turn.window_left > 0);
            let can_write = !self.eof && turn.input_waiting;
            let kill_at = self
                .hung_up
                .filter(|_| !self.killed)
                .map(|at| at + KILL_AFTER);
            let quiet_until = self
                .quiet_since
                .filter(|_| can_read)
                .map(|since| since + QUIET_AFTER_EXIT);
            tokio::select! {
                status = self.child.wait(), if self.status.is_none() => self.exited(status),
                ready = self.master.readable(), if can_read => {
                    let budget = if self.detached { MAX_FRAME_PAYLOAD as u64 } else { turn.window_left };
                    let result = match ready {
                        Ok(mut ready) => ready
                            .try_io(|fd| read_output(fd.get_ref().as_raw_fd(), budget))
                            .ok(),
                        Err(e) => Some(Err(e)),
                    };
                    if let Some(result) = result {
                        self.output(result).await;
                    }
                }
                ready = self.master.writable(), if can_write => {
                    if self.writing.is_none() {
                        self.writing = self.control.state().input.pop_front().map(|bytes| (bytes, 0));
                    }
                    let result = match (ready, &self.writing) {
                        (Ok(mut ready), Some((bytes, offset))) => ready
                            .try_io(|fd| pty::write(fd.get_ref().as_raw_fd(), &bytes[*offset..]))
                            .ok(),
                        (Err(e), _) => Some(Err(e)),
                        (Ok(_), None) => None,
                    };
                    if let Some(result) = result {
                        self.wrote_input(result).await;
                    }
                }
                _ = self.control.wake.notified() => {}
                _ = sleep_until(kill_at.unwrap_or_else(Instant::now)), if kill_at.is_some() => self.kill(),
                _ = sleep_until(quiet_until.unwrap_or_else(Instant::now)), if quiet_until.is_some() => {
                    tracing::debug!(channel = self.channel, "the PTY stays open after the shell exited");
                    self.held_open = true;
                }
            }
        }
        self.finish().await;
    }

    /// Applies what the connection asked for and says what the loop may do.
    fn take_control(&mut self) -> Turn {
        let (resize, hang_up, detached, turn) = {
            let mut state = self.control.state();
            let turn = Turn {
                window_left: CHANNEL_WINDOW_BYTES.saturating_sub(state.output_unacked),
                input_waiting: self.writing.is_some() || !state.input.is_empty(),
            };
            (state.resize.take(), state.hang_up, state.detached, turn)
        };
        if let Some((cols, rows)) = resize
            && let Err(e) = pty::set_size(self.master.get_ref().as_raw_fd(), cols, rows)
        {
            tracing::debug!(channel = self.channel, error = %e, "resize failed");
        }
        if detached && !self.detached {
            tracing::info!(
                channel = self.channel,
                "connection lost: hanging up the terminal"
            );
            self.detached = true;
        }
        if (hang_up || detached) && self.hung_up.is_none() && self.status.is_none() {
            self.hang_up();
        }
        turn
    }

    /// The shell is reaped and its output read (or given up on after a SIGKILL or a quiet
    /// PTY).
    fn finished(&self) -> bool {
        self.status.is_some() && (self.eof || self.killed || self.held_open)
    }

    fn exited(&mut self, status: io::Result<ExitStatus>) {
        tracing::debug!(channel = self.channel, ?status, "shell exited");
        self.status = Some(status);
        if !self.eof {
            self.quiet_since = Some(Instant::now());
        }
    }

    async fn output(&mut self, result: io::Result<Vec<u8>>) {
        match result {
            Ok(message) if message.len() > FRAME_HEADER_LEN => {
                if self.status.is_some() {
                    self.quiet_since = Some(Instant::now());
                }
                if self.detached {
                    return;
                }
                let len = (message.len() - FRAME_HEADER_LEN) as u64;
                self.control.state().output_unacked += len;
                let frame = stamp(message, self.channel, self.opened_at);
                if self.outgoing.send(Outgoing::Frame(frame)).await.is_err() {
                    self.control.detach();
                }
            }
            Ok(_) => self.eof = true,
            Err(e) if e.raw_os_error() == Some(libc::EIO) => self.eof = true,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => {
                tracing::warn!(channel = self.channel, error = %e, "reading the PTY failed");
                self.eof = true;
            }
        }
    }

    async fn wrote_input(&mut self, result: io::Result<usize>) {
        let written = match result {
            Ok(written) => written,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => return,
            Err(e) => {
                // The slave is gone (the shell is exiting): the input has nowhere to go.
                tracing::debug!(channel = self.channel, error = %e, "input dropped");
                self.writing = None;
                self.control.state().input.clear();
                return;
            }
        };
        if let Some((bytes, offset)) = &mut self.writing {
            *offset += written;
            if *offset >= bytes.len() {
                self.writing = None;
            }
        }
        {
            let mut state = self.control.state();
            state.input_unacked = state.input_unacked.saturating_sub(written as u64);
        }
        if written > 0 && !self.detached {
            let window = AgentMessage::Window {
                channel: self.channel,
                bytes: written as u64,
            };
            if self
                .outgoing
                .send(Outgoing::Message(Box::new(window)))
                .await
                .is_err()
            {
                self.control.detach();
            }
        }
    }

    /// SIGHUP to the shell's process group and to the terminal's foreground group (a job the
    /// shell started in a group of its own), with SIGCONT for those stopped.
    fn hang_up(&mut self) {
        let foreground = pty::foreground_group(self.master.get_ref().as_raw_fd())
            .filter(|group| *group != self.group);
        for group in std::iter::once(self.group).chain(foreground) {
            pty::signal_group(group, libc::SIGHUP);
            pty::signal_group(group, libc::SIGCONT);
        }
        self.hung_up = Some(Instant::now());
    }

    fn kill(&mut self) {
        tracing::info!(
            channel = self.channel,
            "the terminal outlived its hang-up by 5s: SIGKILL to its session"
        );
        kill_session(self.group, self._live.clone());
        self.killed = true;
    }

    async fn finish(mut self) {
        if self.held_open && !self.killed {
            // What holds the PTY is hung up too, and gone 5 s later.
            let hung_up_at = match self.hung_up {
                Some(at) => at,
                None => {
                    self.hang_up();
                    Instant::now()
                }
            };
            let (session, live) = (self.group, self._live.clone());
            tokio::spawn(async move {
                sleep_until(hung_up_at + KILL_AFTER).await;
                kill_session(session, live);
            });
        }
        let (exit_code, signal) = match &self.status {
            Some(Ok(status)) => (status.code(), status.signal()),
            _ => (None, None),
        };
        tracing::info!(
            channel = self.channel,
            ?exit_code,
            ?signal,
            "terminal ended"
        );
        if !self.detached {
            let exit = AgentMessage::Exit {
                channel: self.channel,
                exit_code,
                signal,
            };
            let _ = self.outgoing.send(Outgoing::Message(Box::new(exit))).await;
        }
    }
}

/// SIGKILL to every process of the shell's session, on the blocking pool (it reads `/proc`);
/// `live` keeps the agent from stopping before it is done.
fn kill_session(session: libc::pid_t, live: LiveGuard) {
    tokio::task::spawn_blocking(move || {
        pty::kill_session(session);
        drop(live);
    });
}

/// One read of at most `budget` (and a frame's) bytes, into a message with room for the
/// frame's header in front.
fn read_output(master: std::os::fd::RawFd, budget: u64) -> io::Result<Vec<u8>> {
    let len = budget.min(MAX_FRAME_PAYLOAD as u64) as usize;
    let mut message = vec![0u8; FRAME_HEADER_LEN + len];
    let n = pty::read(master, &mut message[FRAME_HEADER_LEN..])?;
    message.truncate(FRAME_HEADER_LEN + n);
    // A keystroke's echo should not hold 64 KiB while it waits in the queue (shrinking in
    // place is cheap).
    message.shrink_to_fit();
    Ok(message)
}

/// Writes the header of an output frame in front of its bytes.
fn stamp(mut message: Vec<u8>, channel: u32, opened_at: Instant) -> Vec<u8> {
    let elapsed_us = u64::try_from(opened_at.elapsed().as_micros()).unwrap_or(u64::MAX);
    message[..4].copy_from_slice(&channel.to_be_bytes());
    message[4] = FrameKind::Output as u8;
    message[5..FRAME_HEADER_LEN].copy_from_slice(&elapsed_us.to_be_bytes());
    message
}

#[cfg(test)]
mod tests {
    use super::*;
    use spog_protocol::Frame;

    #[test]
    fn an_output_frame_is_stamped_in_place() {
        let mut message = vec![0u8; FRAME_HEADER_LEN];
        message.extend_from_slice(b"hello");
        let frame = stamp(message, 7, Instant::now());
        let decoded = Frame::decode(&frame).unwrap();
        assert_eq!(decoded.channel, 7);
        assert_eq!(decoded.kind, FrameKind::Output);
        assert_eq!(decoded.data, b"hello");
    }

    #[test]
    fn input_beyond_the_window_is_refused_and_acknowledgements_are_bounded() {
        let control = Control::default();
        control.input(&vec![b'x'; 1 << 19]).unwrap();
        control.input(&vec![b'x'; 1 << 19]).unwrap();
        assert!(control.input(b"x").is_err());
        control.state().output_unacked = 10;
        assert!(control.acknowledge(4));
        assert!(!control.acknowledge(7));
        assert_eq!(control.state().output_unacked, 0);
    }
}

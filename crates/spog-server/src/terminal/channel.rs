//! One terminal channel on an agent's connection (SPEC 12.3), as the hub sees it: what the
//! agent sent for it, queued by the connection's task for the relay that serves the channel.
//! The queue is bounded by the protocol's window: the agent may have at most
//! `CHANNEL_WINDOW_BYTES` of output unacknowledged, and the relay acknowledges only what it
//! has recorded and passed on.

use std::collections::VecDeque;

use bytes::Bytes;
use parking_lot::Mutex;
use spog_protocol::{CHANNEL_WINDOW_BYTES, OpenErrorCode};
use tokio::sync::Notify;

/// Output frames queued beyond this many are merged into the last one (their times then
/// read as the first's): small frames cannot make the queue long.
const MAX_QUEUED_FRAMES: usize = 1024;

/// What the agent said about a channel.
#[derive(Debug)]
pub enum FromAgent {
    Opened {
        pid: u32,
    },
    Refused {
        code: OpenErrorCode,
        message: String,
    },
    Output {
        elapsed_us: u64,
        bytes: Bytes,
    },
    /// What was typed into a `spog-agent shell` session (channels the agent opened).
    Input {
        elapsed_us: u64,
        bytes: Bytes,
    },
    Exited {
        exit_code: Option<i32>,
        signal: Option<i32>,
    },
    /// The agent wrote this many more input bytes to the PTY.
    Window(u64),
    /// A `spog-agent shell` session is complete (`truncated`: its spool dropped bytes).
    ShellEnded {
        truncated: bool,
    },
    /// The agent's connection dropped.
    Lost,
}

/// The agent broke the protocol: a frame that is not one, input where only output goes, or
/// more than its window allows.
#[derive(Debug)]
pub struct Violation;

pub struct Channel {
    pub number: u32,
    inbox: Mutex<Inbox>,
    wake: Notify,
}

#[derive(Default)]
struct Inbox {
    items: VecDeque<FromAgent>,
    /// Output received and not yet acknowledged.
    unacked: u64,
}

impl Channel {
    pub fn new(number: u32) -> Self {
        Self {
            number,
            inbox: Mutex::default(),
            wake: Notify::new(),
        }
    }

    /// Queues what the agent said and wakes the relay.
    pub fn push(&self, item: FromAgent) -> Result<(), Violation> {
        let mut inbox = self.inbox.lock();
        if let FromAgent::Output { bytes, .. } | FromAgent::Input { bytes, .. } = &item {
            inbox.unacked += bytes.len() as u64;
            if inbox.unacked > CHANNEL_WINDOW_BYTES {
                return Err(Violation);
            }
            if inbox.items.len() >= MAX_QUEUED_FRAMES
                && let Some(FromAgent::Output { bytes: last, .. }) = inbox.items.back_mut()
            {
                let mut merged = Vec::with_capacity(last.len() + bytes.len());
                merged.extend_from_slice(last);
                merged.extend_from_slice(bytes);
                *last = Bytes::from(merged);
                drop(inbox);
                self.wake.notify_one();
                return Ok(());
            }
        }
        inbox.items.push_back(item);
        drop(inbox);
        self.wake.notify_one();
        Ok(())
    }

    /// Everything queued, oldest first; waits until there is something.
    pub async fn take(&self) -> Vec<FromAgent> {
        loop {
            {
                let mut inbox = self.inbox.lock();
                if !inbox.items.is_empty() {
                    return inbox.items.drain(..).collect();
                }
            }
            self.wake.notified().await;
        }
    }

    /// The relay passed on `bytes` of output: the agent may send that many more.
    pub fn acknowledge(&self, bytes: u64) {
        let mut inbox = self.inbox.lock();
        inbox.unacked = inbox.unacked.saturating_sub(bytes);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn output(text: &'static str) -> FromAgent {
        FromAgent::Output {
            elapsed_us: 0,
            bytes: Bytes::from_static(text.as_bytes()),
        }
    }

    #[tokio::test]
    async fn output_beyond_the_window_is_an_overrun_until_acknowledged() {
        let channel = Channel::new(1);
        let big = FromAgent::Output {
            elapsed_us: 0,
            bytes: Bytes::from(vec![b'x'; CHANNEL_WINDOW_BYTES as usize]),
        };
        channel.push(big).unwrap();
        assert!(channel.push(output("y")).is_err());
        channel.take().await;
        channel.acknowledge(CHANNEL_WINDOW_BYTES);
        channel.push(output("y")).unwrap();
    }

    #[tokio::test]
    async fn many_small_frames_are_merged_not_queued_without_end() {
        let channel = Channel::new(1);
        for _ in 0..MAX_QUEUED_FRAMES + 10 {
            channel.push(output("ab")).unwrap();
        }
        let items = channel.take().await;
        assert_eq!(items.len(), MAX_QUEUED_FRAMES);
        let total: usize = items
            .iter()
            .map(|i| match i {
                FromAgent::Output { bytes, .. } => bytes.len(),
                _ => 0,
            })
            .sum();
        assert_eq!(total, 2 * (MAX_QUEUED_FRAMES + 10));
    }
}

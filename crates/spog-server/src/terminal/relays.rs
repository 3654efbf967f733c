//! The relays running on this instance, by recording, so that a session ended on any instance
//! (by an administrator) ends its relay here: the end is announced on the bus.

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::Mutex;
use spog_core::Id;
use spog_core::recordings::TerminalRecording;
use tokio_util::sync::CancellationToken;

#[derive(Default)]
pub struct Relays {
    running: Mutex<HashMap<Id<TerminalRecording>, CancellationToken>>,
    /// `spog-agent shell` sessions recorded here, by host and source key: their recording
    /// and how many of their bytes it holds, for the agent's upload after a reconnect.
    uploads: Mutex<HashMap<String, (Id<TerminalRecording>, u64)>>,
}

/// A running relay's place; it leaves when dropped.
pub struct RelayGuard {
    relays: Arc<Relays>,
    recording: Id<TerminalRecording>,
    pub ended: CancellationToken,
}

impl Drop for RelayGuard {
    fn drop(&mut self) {
        self.relays.running.lock().remove(&self.recording);
    }
}

impl Relays {
    pub fn register(self: &Arc<Self>, recording: Id<TerminalRecording>) -> RelayGuard {
        let ended = CancellationToken::new();
        self.running.lock().insert(recording, ended.clone());
        RelayGuard {
            relays: self.clone(),
            recording,
            ended,
        }
    }

    /// The session ended on record: its relay here, if any, hangs up.
    pub fn ended(&self, recording: Id<TerminalRecording>) {
        if let Some(token) = self.running.lock().get(&recording) {
            token.cancel();
        }
    }

    /// Where a `spog-agent shell` session's upload resumes, if this instance recorded it.
    pub fn upload(&self, key: &str) -> Option<(Id<TerminalRecording>, u64)> {
        self.uploads.lock().get(key).copied()
    }

    /// Notes how much of an upload is recorded; `None` once it is complete.
    pub fn uploaded(&self, key: &str, progress: Option<(Id<TerminalRecording>, u64)>) {
        let mut uploads = self.uploads.lock();
        match progress {
            Some(progress) => uploads.insert(key.to_owned(), progress),
            None => uploads.remove(key),
        };
    }
}

//! `spog-agent shell` sessions (SPEC 13.3). The client side (`client`) runs the user's program
//! on a PTY and streams its records to the agent's local socket; the agent side (`listener`)
//! appends them to the spool (`spool`), and each connection to the hub uploads what is spooled
//! (`upload`), so that the user's shell never waits on the hub.

pub mod client;
mod listener;
mod record;
mod spool;
mod upload;

use std::sync::Arc;

use tokio::net::UnixListener;
use tokio::task::spawn_blocking;

use crate::config::AgentConfig;
pub use spool::Spool;
pub use upload::Uploads;

/// The agent's side of shell sessions while it runs.
pub struct ShellRelay {
    pub spool: Arc<Spool>,
    /// The local socket is bound: new sessions can be recorded.
    pub listening: bool,
}

/// Opens the spool (sessions a previous run left are uploaded too) and binds the local socket.
/// `None` when the spool cannot be opened: shell sessions are then not relayed at all.
pub async fn start(config: &AgentConfig) -> Option<ShellRelay> {
    let dir = config.state_dir.join("spool");
    let limit = config.shell.buffer_limit;
    let path = config.socket_path.clone();
    let opened = spawn_blocking(move || {
        let spool =
            Spool::open(&dir, limit).map_err(|e| format!("spool {}: {e}", dir.display()))?;
        let listener =
            listener::bind(&path).map_err(|e| format!("local socket {}: {e}", path.display()));
        Ok::<_, String>((spool, listener))
    })
    .await;
    let (spool, listener) = match opened {
        Ok(Ok(opened)) => opened,
        Ok(Err(why)) => {
            tracing::warn!(%why, "shell sessions will not be recorded");
            return None;
        }
        Err(e) => {
            tracing::warn!(error = %e, "shell sessions will not be recorded");
            return None;
        }
    };
    let spool = Arc::new(spool);
    let listening = match listener
        .and_then(|l| UnixListener::from_std(l).map_err(|e| format!("local socket: {e}")))
    {
        Ok(listener) => {
            tokio::spawn(listener::serve(listener, spool.clone()));
            true
        }
        Err(why) => {
            tracing::warn!(%why, "new shell sessions will not be recorded");
            false
        }
    };
    if listening {
        tracing::info!(socket = %config.socket_path.display(), "recording local shell sessions");
    }
    Some(ShellRelay { spool, listening })
}

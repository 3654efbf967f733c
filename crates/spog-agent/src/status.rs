//! `spog-agent status`: the enrollment (`agent.json`) and the running agent's connection
//! (`status.json`, which `run` keeps up to date).

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::config::AgentConfig;
use crate::enrollment::{Enrollment, read_bounded, write_private};
use crate::facts;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ConnectionState {
    Connecting,
    Connected,
    Disconnected,
    Stopped,
    /// The hub refused the credential; the agent ended with status 3.
    Revoked,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AgentStatus {
    pub pid: u32,
    pub agent_version: String,
    pub state: ConnectionState,
    /// When `state` began.
    pub since: String,
    pub server: String,
    pub host_id: String,
    /// The hub instance holding the connection.
    pub instance_id: Option<String>,
    /// Why the last connection ended or failed.
    pub last_error: Option<String>,
    pub next_attempt_at: Option<String>,
    /// Samples waiting to be sent.
    pub buffered_samples: usize,
    /// Samples dropped since the agent started, because the hub was away too long.
    pub dropped_samples: u64,
    pub updated_at: String,
}

impl AgentStatus {
    pub fn starting(enrollment: &Enrollment) -> Self {
        let now = facts::rfc3339(std::time::SystemTime::now());
        Self {
            pid: std::process::id(),
            agent_version: facts::AGENT_VERSION.to_owned(),
            state: ConnectionState::Connecting,
            since: now.clone(),
            server: enrollment.server.clone(),
            host_id: enrollment.host_id.clone(),
            instance_id: None,
            last_error: None,
            next_attempt_at: None,
            buffered_samples: 0,
            dropped_samples: 0,
            updated_at: now,
        }
    }
}

pub fn write_status(path: &Path, status: &AgentStatus) -> Result<(), String> {
    let text = serde_json::to_string_pretty(status).map_err(|e| e.to_string())?;
    write_private(path, text.as_bytes()).map_err(|e| format!("{}: {e}", path.display()))
}

fn read_status(path: &Path) -> Option<AgentStatus> {
    let text = read_bounded(path, 64 * 1024).ok()?;
    serde_json::from_str(&text).ok()
}

/// Whether `pid` is a live spog-agent process.
fn is_running(pid: u32) -> bool {
    read_bounded(Path::new(&format!("/proc/{pid}/comm")), 64)
        .is_ok_and(|comm| comm.trim() == "spog-agent")
}

/// Prints the state; `Ok(true)` when enrolled and connected.
pub fn show(config: &AgentConfig) -> Result<bool, String> {
    let Some(enrollment) = Enrollment::read(&config.enrollment_path())? else {
        println!(
            "enrollment: not enrolled ({} is absent): run spog-agent enroll --server URL --token T",
            config.enrollment_path().display()
        );
        return Ok(false);
    };
    println!(
        "enrollment: host {} with {}",
        enrollment.host_id, enrollment.server
    );
    let status = read_status(&config.status_path());
    let Some(status) = status else {
        println!("agent:      not running (never ran with this state directory)");
        return Ok(false);
    };
    let running = is_running(status.pid);
    let connected = running && status.state == ConnectionState::Connected;
    let line = match (running, status.state) {
        (_, ConnectionState::Revoked) => format!(
            "stopped at {}: credential revoked, enroll again",
            status.since
        ),
        (true, ConnectionState::Connected) => format!(
            "connected since {} to instance {} (pid {}, version {})",
            status.since,
            status.instance_id.as_deref().unwrap_or("?"),
            status.pid,
            status.agent_version
        ),
        (true, ConnectionState::Connecting) => format!("connecting (pid {})", status.pid),
        (true, ConnectionState::Disconnected) => format!(
            "disconnected since {} ({}); next attempt at {} (pid {})",
            status.since,
            status.last_error.as_deref().unwrap_or("unknown reason"),
            status.next_attempt_at.as_deref().unwrap_or("?"),
            status.pid
        ),
        _ => format!("not running (last update {})", status.updated_at),
    };
    println!("agent:      {line}");
    if running {
        println!(
            "metrics:    {} samples waiting, {} dropped since start",
            status.buffered_samples, status.dropped_samples
        );
    }
    Ok(connected)
}

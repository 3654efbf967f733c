//! The real `spog-agent` binary against the real server (SPEC 12), on each backend. Build the
//! agent first: `cargo build -p spog-agent` (or name it with SPOG_AGENT_BIN).

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};
use spog_server::testing::{Client, TestServer, test_config};
use std::process::Command;

use crate::agents::{enrolled, enrollment_token, eventually};
use crate::receiver::{Answer, Receiver};
use crate::{servers, servers_with, temp_dir};

const WAIT: Duration = Duration::from_secs(20);

pub fn agent_binary() -> PathBuf {
    if let Some(path) = std::env::var_os("SPOG_AGENT_BIN") {
        return PathBuf::from(path);
    }
    let exe = std::env::current_exe().expect("the test binary's path");
    // target/debug/deps/api-… → target/debug/spog-agent
    let path = exe
        .parent()
        .and_then(Path::parent)
        .expect("a target directory")
        .join("spog-agent");
    assert!(
        path.exists(),
        "{} is missing: run `cargo build -p spog-agent` first",
        path.display()
    );
    path
}

/// An agent in a temporary state directory.
pub struct Agent {
    dir: Dir,
}

/// A directory removed when dropped.
struct Dir(PathBuf);

impl Dir {
    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

impl Agent {
    fn new() -> Self {
        Self::with_config("")
    }

    /// An agent whose configuration ends with `extra` (TOML).
    pub fn with_config(extra: &str) -> Self {
        let dir = Dir(temp_dir());
        std::fs::create_dir_all(dir.path()).unwrap();
        let config = format!(
            "state_dir = \"{}\"\nsocket_path = \"{}\"\nreconnect_max_backoff = \"1s\"\nmetrics_interval = \"1s\"\n{extra}\n",
            dir.path().join("state").display(),
            dir.path().join("agent.sock").display()
        );
        std::fs::write(dir.path().join("agent.toml"), config).unwrap();
        Self { dir }
    }

    pub fn config(&self) -> PathBuf {
        self.dir.path().join("agent.toml")
    }

    /// `spog-agent enroll`: (exit code, stdout and stderr).
    async fn enroll(&self, server: &str, token: &str) -> (i32, String) {
        let mut command = Command::new(agent_binary());
        command
            .args([
                "enroll",
                "--server",
                server,
                "--token",
                token,
                "--hostname",
                "agent-host",
                "--config",
            ])
            .arg(self.config())
            .stdin(Stdio::null());
        let output =
            tokio::time::timeout(WAIT, tokio::task::spawn_blocking(move || command.output()))
                .await
                .expect("enroll finishes")
                .unwrap()
                .unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        (output.status.code().unwrap_or(-1), text)
    }

    fn enrollment(&self) -> Value {
        let text = std::fs::read_to_string(self.dir.path().join("state/agent.json")).unwrap();
        serde_json::from_str(&text).unwrap()
    }

    fn run(&self) -> Child {
        let log = std::fs::File::create(self.dir.path().join("agent.log")).unwrap();
        Child(
            Command::new(agent_binary())
                .args(["run", "--config"])
                .arg(self.config())
                .env("RUST_LOG", "debug")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .unwrap(),
        )
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("agent.log")).unwrap_or_default()
    }
}

/// A running `spog-agent run`, killed when dropped.
pub struct Child(std::process::Child);

impl Child {
    fn running(&mut self) -> bool {
        self.0.try_wait().unwrap().is_none()
    }

    /// Waits for the agent to exit; its exit code.
    async fn exit_code(&mut self) -> Option<i32> {
        let started = Instant::now();
        loop {
            if let Some(status) = self.0.try_wait().unwrap() {
                return status.code();
            }
            assert!(started.elapsed() < WAIT, "the agent did not exit");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Enrolls a real agent with the server and starts it: (agent, its process, host id).
async fn running_agent(server: &TestServer, admin: &Client) -> (Agent, Child, String) {
    running_agent_with(server, admin, "").await
}

/// As [`running_agent`], its configuration ending with `extra`.
pub async fn running_agent_with(
    server: &TestServer,
    admin: &Client,
    extra: &str,
) -> (Agent, Child, String) {
    let (_, token) = enrollment_token(admin, json!({})).await;
    let agent = Agent::with_config(extra);
    let (code, output) = agent.enroll(&server.base, &token).await;
    assert_eq!(code, 0, "{output}");
    let host = agent.enrollment()["host_id"].as_str().unwrap().to_owned();
    let child = agent.run();
    (agent, child, host)
}

#[tokio::test]
async fn a_real_agent_enrolls_comes_online_with_facts_and_cannot_reuse_its_token() {
    for server in servers().await {
        let admin = server.admin().await;
        let (_, token) = enrollment_token(&admin, json!({})).await;
        let agent = Agent::new();
        let (code, output) = agent.enroll(&server.base, &token).await;
        assert_eq!(code, 0, "{output}");
        let host = agent.enrollment()["host_id"].as_str().unwrap().to_owned();
        let (code, output) = Agent::new().enroll(&server.base, &token).await;
        assert_ne!(code, 0, "a used token is refused");
        assert!(output.contains("invalid_enrollment_token"), "{output}");
        let mut child = agent.run();
        let shown = eventually(&admin, &format!("/hosts/{host}"), WAIT, |h| {
            h["online"] == true && h["agent_connected"] == true
        })
        .await;
        assert_eq!(shown["hostname"], "agent-host");
        assert_eq!(shown["facts"]["os"], "linux", "{shown}");
        assert!(shown["facts"]["cpu_count"].as_u64().unwrap() >= 1);
        assert_eq!(shown["agent_version"], env!("CARGO_PKG_VERSION"));
        let (_, view) = admin.get(&format!("/hosts/{host}/agent")).await;
        assert_eq!(view["protocol"], "spog-agent.v1", "{view}");
        assert!(child.running(), "{}", agent.log());
        drop(child);
        server.stop().await;
    }
}

#[tokio::test]
async fn a_real_agents_credential_is_refused_for_another_host_and_revocation_ends_it() {
    for server in servers().await {
        let admin = server.admin().await;
        let (agent, mut child, host) = running_agent(&server, &admin).await;
        let (other, _) = enrolled(&server, &admin, "other-host").await;
        let credential = agent.enrollment()["credential"]
            .as_str()
            .unwrap()
            .to_owned();
        let as_agent = admin.with_token(&credential);
        let (status, _) = as_agent
            .post(&format!("/hosts/{other}/heartbeat"), json!({}))
            .await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        let (status, _) = as_agent
            .post(&format!("/hosts/{host}/heartbeat"), json!({}))
            .await;
        assert_eq!(status, StatusCode::ACCEPTED);
        eventually(&admin, &format!("/hosts/{host}"), WAIT, |h| {
            h["agent_connected"] == true
        })
        .await;
        assert_eq!(
            admin.delete(&format!("/hosts/{host}/agent")).await.0,
            StatusCode::NO_CONTENT
        );
        assert_eq!(child.exit_code().await, Some(3), "{}", agent.log());
        server.stop().await;
    }
}

#[tokio::test]
async fn a_real_agent_reconnects_after_the_server_restarts() {
    for server in servers().await {
        let admin = server.admin().await;
        let (agent, mut child, host) = running_agent(&server, &admin).await;
        let first = eventually(&admin, &format!("/hosts/{host}/agent"), WAIT, |a| {
            a["connected"] == true
        })
        .await;
        let addr: std::net::SocketAddr = server.base.trim_start_matches("http://").parse().unwrap();
        let database = server.database.clone();
        server.stop().await;
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .expect("the port again");
        let config = test_config(&database, temp_dir());
        let restarted = TestServer::start_on(database, config, listener).await;
        let admin = restarted.admin().await;
        let started = Instant::now();
        let second = eventually(&admin, &format!("/hosts/{host}/agent"), WAIT, |a| {
            a["connected"] == true && a["instance_id"] != first["instance_id"]
        })
        .await;
        assert_eq!(second["instance_id"], restarted.state.instance_id.as_str());
        assert!(started.elapsed() < WAIT);
        let (_, shown) = admin.get(&format!("/hosts/{host}")).await;
        assert_eq!(shown["online"], true);
        assert!(child.running(), "{}", agent.log());
        drop(child);
        restarted.stop().await;
    }
}

/// README's walkthrough end to end: a real agent's samples become a series, fire a metric
/// rule (CPU ≥ 0) that reaches a webhook channel; killing the agent takes the host offline and
/// the rule to `no_data`.
#[tokio::test]
async fn a_real_agents_samples_fire_a_rule_to_a_channel_and_its_end_goes_offline_and_no_data() {
    for server in servers_with(|c| c.host_offline_after = Duration::from_secs(3)).await {
        let admin = server.admin().await;
        let receiver = Receiver::start(Answer::Status(200)).await;
        let (_, organizations) = admin.get("/organizations").await;
        let organization = organizations[0]["id"].clone();
        let (status, channel) = admin
            .post(
                "/notification-channels",
                json!({"organization_id": organization, "name": "ops hook", "type": "webhook",
                       "config": {"url": receiver.url("/alerts")}}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{channel}");
        let (status, rule) = admin
            .post(
                "/alert-rules",
                json!({"kind": "metric", "organization_id": organization, "name": "CPU in use",
                       "metric": "cpu.percent", "operator": ">=", "threshold": 0,
                       "for_seconds": 0, "severity": "high", "enabled": true,
                       "channel_ids": [channel["id"]], "no_data_seconds": 5}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{rule}");
        let rule = rule["id"].as_str().unwrap().to_owned();
        let (agent, child, host) = running_agent(&server, &admin).await;

        let alerts =
            |reason: &str| format!("/alerts?rule_id={rule}&host_id={host}&reason={reason}");
        let some = |a: &Value| a["items"].as_array().is_some_and(|i| !i.is_empty());
        eventually(&admin, &alerts("threshold"), WAIT, some).await;
        let delivered = receiver.wait_for(1, WAIT).await;
        let notice = String::from_utf8_lossy(&delivered[0].body).into_owned();
        assert!(notice.contains("CPU in use"), "{notice}");
        let series = eventually(
            &admin,
            &format!("/hosts/{host}/metrics?name=cpu.percent&step=1s"),
            WAIT,
            |m| {
                m["series"][0]["points"]
                    .as_array()
                    .is_some_and(|p| !p.is_empty())
            },
        )
        .await;
        assert_eq!(series["host_id"], host.as_str(), "{series}");

        drop(child);
        eventually(&admin, &format!("/hosts/{host}"), WAIT, |h| {
            h["online"] == false
        })
        .await;
        let no_data = eventually(&admin, &alerts("no_data"), WAIT, some).await;
        assert_eq!(no_data["items"][0]["state"], "firing", "{no_data}");
        let (_, cleared) = admin.get(&alerts("threshold")).await;
        assert_eq!(cleared["items"][0]["state"], "resolved", "{cleared}");
        assert_eq!(
            cleared["items"][0]["resolved_reason"], "no_data",
            "{cleared}"
        );
        drop(agent);
        server.stop().await;
    }
}

//! The real `spog-agent` the benchmark enrolls and runs with console terminals enabled.

use super::*;

/// A real `spog-agent run` with console terminals enabled, enrolled as one host; killed when
/// dropped.
pub(super) struct AgentProcess {
    pub(super) child: Child,
    pub(super) dir: PathBuf,
    pub(super) host_id: String,
}

impl Drop for AgentProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl AgentProcess {
    /// Enrolls an agent in `dir` with a fresh token, runs it and waits until its host is
    /// connected.
    pub(super) async fn start(
        server: &ServerProcess,
        admin: &Client,
        dir: &Path,
    ) -> anyhow::Result<Self> {
        std::fs::create_dir_all(dir)?;
        let config = dir.join("agent.toml");
        std::fs::write(
            &config,
            format!(
                "state_dir = \"{}\"\nsocket_path = \"{}\"\nreconnect_max_backoff = \"1s\"\n\
                 [terminal]\nenabled = true\nuser = \"root\"\nshell = \"/bin/sh\"\n\
                 max_sessions = 4096\n",
                dir.join("state").display(),
                dir.join("agent.sock").display()
            ),
        )?;
        let (status, token) = admin
            .post(
                "/enrollment-tokens",
                json!({"description": "bench terminal"}),
            )
            .await;
        anyhow::ensure!(status == StatusCode::CREATED, "token: {status} {token}");
        let token = token["token"].as_str().unwrap_or_default().to_owned();
        enroll(&server.base, &token, &config).await?;
        let enrollment: Value =
            serde_json::from_str(&std::fs::read_to_string(dir.join("state/agent.json"))?)?;
        let host_id = enrollment["host_id"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let child = Command::new(agent_binary())
            .args(["run", "--config"])
            .arg(&config)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(File::create(dir.join("agent.log"))?)
            .spawn()?;
        let agent = Self {
            child,
            dir: dir.to_owned(),
            host_id,
        };
        agent.connected(admin).await?;
        Ok(agent)
    }

    pub(super) async fn connected(&self, admin: &Client) -> anyhow::Result<()> {
        let started = Instant::now();
        loop {
            let (_, host) = admin.get(&format!("/hosts/{}", self.host_id)).await;
            if host["agent_connected"] == true {
                return Ok(());
            }
            anyhow::ensure!(
                started.elapsed() < WAIT,
                "the agent did not connect within {} s: {}",
                WAIT.as_secs(),
                std::fs::read_to_string(self.dir.join("agent.log")).unwrap_or_default()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// `spog-agent enroll --server URL --token T --hostname H --config FILE`.
pub(super) async fn enroll(server: &str, token: &str, config: &Path) -> anyhow::Result<()> {
    let mut command = Command::new(agent_binary());
    command
        .args(["enroll", "--server", server, "--token", token])
        .args(["--hostname", "bench-terminal", "--config"])
        .arg(config)
        .stdin(Stdio::null());
    let output = tokio::time::timeout(WAIT, tokio::task::spawn_blocking(move || command.output()))
        .await
        .map_err(|_| anyhow::anyhow!("spog-agent enroll did not finish"))???;
    anyhow::ensure!(
        output.status.success(),
        "spog-agent enroll: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    Ok(())
}

//! A real `spog serve` process (the release binary next to this one), for figures that
//! belong to the server alone, such as its memory.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use spog_server::testing::{ADMIN_EMAIL, ADMIN_PASSWORD, Client};

/// 32 bytes of key material as 64 hex characters: the least a hardened server accepts.
pub const SERVER_KEY: &str = "6d2f1c9a4b7e0d3f5a8c1e6b9d2f4a7c0e3b5d8f1a4c7e9b2d5f8a1c3e6b9d0f";

pub struct ServerProcess {
    child: Child,
    pub base: String,
    /// From spawn to `/readyz` answering 200.
    pub ready_after: Duration,
    /// Where the server's standard error goes (inside its data directory).
    pub log: PathBuf,
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn spog_binary() -> PathBuf {
    let exe = std::env::current_exe().expect("the bench's own path");
    let binary = exe.with_file_name("spog");
    assert!(
        binary.exists(),
        "{} is missing: run `cargo build --release -p spog` first",
        binary.display()
    );
    binary
}

/// How to start a server: its data directory, database and any further `SPOG_*` settings.
pub struct Launch<'a> {
    pub data_dir: PathBuf,
    pub database_url: Option<&'a str>,
    /// Configuration keys (lower case, as in the TOML file) and their values.
    pub settings: Vec<(String, String)>,
    /// Soft `RLIMIT_NOFILE` of the server process; the hard limit stays as inherited.
    pub soft_fd_limit: Option<u64>,
}

impl<'a> Launch<'a> {
    pub fn new(data_dir: PathBuf, database_url: Option<&'a str>) -> Self {
        Self {
            data_dir,
            database_url,
            settings: Vec::new(),
            soft_fd_limit: None,
        }
    }
}

/// The environment every `spog` command of a benchmark runs with.
pub fn command(data_dir: &Path, database_url: Option<&str>) -> std::process::Command {
    let mut command = std::process::Command::new(spog_binary());
    command
        .env("SPOG_DATA_DIR", data_dir)
        .env("SPOG_SERVER_KEY", SERVER_KEY)
        // SPOG_BENCH_SERVER_LOG (e.g. `sqlx::query=debug`) looks inside a server under load.
        .env(
            "SPOG_LOG",
            std::env::var("SPOG_BENCH_SERVER_LOG").unwrap_or_else(|_| "warn".to_owned()),
        );
    if let Some(url) = database_url {
        command.env("SPOG_DATABASE_URL", url);
    }
    command
}

impl ServerProcess {
    /// Starts `spog serve` on `data_dir` (SQLite inside it unless `database_url` is given).
    pub async fn start(data_dir: PathBuf, database_url: Option<&str>) -> Self {
        Self::launch(Launch::new(data_dir, database_url))
            .await
            .unwrap_or_else(|e| panic!("{e}"))
    }

    /// Starts `spog serve` as `launch` says; the error carries what the server printed when
    /// it did not become ready.
    pub async fn launch(launch: Launch<'_>) -> anyhow::Result<Self> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        std::fs::create_dir_all(&launch.data_dir)?;
        let log = launch.data_dir.join("serve.log");
        let mut command = command(&launch.data_dir, launch.database_url);
        command
            .arg("serve")
            .env("SPOG_LISTEN", format!("127.0.0.1:{port}"))
            .env("SPOG_ADMIN_EMAIL", ADMIN_EMAIL)
            .env("SPOG_ADMIN_PASSWORD", ADMIN_PASSWORD)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log)?);
        for (key, value) in &launch.settings {
            command.env(format!("SPOG_{}", key.to_uppercase()), value);
        }
        if let Some(soft) = launch.soft_fd_limit {
            // SAFETY: between fork and exec only async-signal-safe calls (getrlimit, setrlimit).
            unsafe {
                command.pre_exec(move || set_soft_fd_limit(soft));
            }
        }
        let started = Instant::now();
        let child = command.spawn()?;
        let mut process = ServerProcess {
            child,
            base: format!("http://127.0.0.1:{port}"),
            ready_after: Duration::ZERO,
            log,
        };
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(2))
            .build()?;
        loop {
            if let Some(status) = process.child.try_wait()? {
                anyhow::bail!(
                    "spog serve exited ({status}): {}",
                    process.log_text().trim()
                );
            }
            if let Ok(response) = http.get(format!("{}/readyz", process.base)).send().await
                && response.status().is_success()
            {
                process.ready_after = started.elapsed();
                return Ok(process);
            }
            anyhow::ensure!(
                started.elapsed() < Duration::from_secs(30),
                "spog serve did not become ready in 30 s: {}",
                process.log_text().trim()
            );
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }

    /// What the server has written to standard error so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Resident memory of the server process, in bytes.
    pub fn rss_bytes(&self) -> u64 {
        crate::harness::rss_of(&format!("/proc/{}/status", self.pid()))
    }

    /// File descriptors the server process holds open.
    pub fn open_fds(&self) -> usize {
        std::fs::read_dir(format!("/proc/{}/fd", self.pid())).map_or(0, |dir| dir.count())
    }

    pub async fn admin(&self) -> Client {
        let anonymous = Client {
            base: self.base.clone(),
            token: None,
            http: reqwest::Client::new(),
        };
        let (_, body) = anonymous
            .post(
                "/auth/login",
                serde_json::json!({"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD}),
            )
            .await;
        anonymous.with_token(body["token"].as_str().expect("the admin logs in"))
    }
}

/// Sets this process's soft `RLIMIT_NOFILE` to `soft`, or to the hard limit if that is lower.
pub fn set_soft_fd_limit(soft: u64) -> std::io::Result<()> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `limit` is a valid rlimit for both calls.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
            return Err(std::io::Error::last_os_error());
        }
        limit.rlim_cur = soft.min(limit.rlim_max);
        if libc::setrlimit(libc::RLIMIT_NOFILE, &limit) != 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

/// The release `spog-agent` next to this bench (and to `spog`); `SPOG_AGENT_BIN` names
/// another.
pub fn agent_binary() -> PathBuf {
    if let Some(path) = std::env::var_os("SPOG_AGENT_BIN") {
        return PathBuf::from(path);
    }
    let exe = std::env::current_exe().expect("the bench's own path");
    let binary = exe.with_file_name("spog-agent");
    assert!(
        binary.exists(),
        "{} is missing: run `cargo build --release -p spog-agent` first",
        binary.display()
    );
    binary
}

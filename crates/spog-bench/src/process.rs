//! A real `spog serve` process (the release binary next to this one), for figures that
//! belong to the server alone, such as its memory.

use std::path::PathBuf;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use spog_server::testing::{ADMIN_EMAIL, ADMIN_PASSWORD, Client};

pub struct ServerProcess {
    child: Child,
    pub base: String,
    /// From spawn to `/readyz` answering 200.
    pub ready_after: Duration,
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn spog_binary() -> PathBuf {
    let exe = std::env::current_exe().expect("the bench's own path");
    let binary = exe.with_file_name("spog");
    assert!(
        binary.exists(),
        "{} is missing: run `cargo build --release -p spog` first",
        binary.display()
    );
    binary
}

impl ServerProcess {
    /// Starts `spog serve` on `data_dir` (SQLite inside it unless `database_url` is given).
    pub async fn start(data_dir: PathBuf, database_url: Option<&str>) -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut command = std::process::Command::new(spog_binary());
        command
            .arg("serve")
            .env("SPOG_LISTEN", format!("127.0.0.1:{port}"))
            .env("SPOG_DATA_DIR", &data_dir)
            .env("SPOG_ADMIN_EMAIL", ADMIN_EMAIL)
            .env("SPOG_ADMIN_PASSWORD", ADMIN_PASSWORD)
            .env("SPOG_SERVER_KEY", spog_server::testing::TEST_SERVER_KEY)
            .env("SPOG_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if let Some(url) = database_url {
            command.env("SPOG_DATABASE_URL", url);
        }
        let started = Instant::now();
        let child = command.spawn().expect("starting spog serve");
        let mut process = ServerProcess {
            child,
            base: format!("http://127.0.0.1:{port}"),
            ready_after: Duration::ZERO,
        };
        let http = reqwest::Client::new();
        loop {
            if let Ok(response) = http.get(format!("{}/readyz", process.base)).send().await
                && response.status().is_success()
            {
                process.ready_after = started.elapsed();
                return process;
            }
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "spog serve did not become ready"
            );
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Resident memory of the server process, in bytes.
    pub fn rss_bytes(&self) -> u64 {
        crate::harness::rss_of(&format!("/proc/{}/status", self.pid()))
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

//! `spog serve` processes for the tests, killed and waited for when dropped.

use std::path::PathBuf;
use std::process::{Child, Stdio};
use std::time::Duration;

use serde_json::json;
use spog_server::testing::{ADMIN_EMAIL, ADMIN_PASSWORD, Client};
use spog_store::testing::POSTGRES_ENV;

use crate::{spog, temp_dir};

pub const SERVER_KEY: &str = "6f6e65206b657920666f72207468652077686f6c6520636c7573746572212121";

pub struct Instance {
    child: Child,
    pub base: String,
    pub data_dir: PathBuf,
    /// What the process wrote to standard error.
    pub log: PathBuf,
}

impl Drop for Instance {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Instance {
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `spog serve` on `database_url`, ready to answer.
pub async fn start(database_url: &str, name: &str) -> Instance {
    start_with(database_url, name, &[]).await
}

/// `spog serve` on `database_url` with further environment variables (an empty value removes
/// the variable), ready to answer.
pub async fn start_with(database_url: &str, name: &str, env: &[(&str, &str)]) -> Instance {
    start_in(temp_dir(name), database_url, env).await
}

/// `spog serve` on the data directory `dir`.
pub async fn start_in(dir: PathBuf, database_url: &str, env: &[(&str, &str)]) -> Instance {
    let port = free_port();
    let log = dir.join("serve.log");
    let mut command = spog();
    command
        .arg("serve")
        .env("SPOG_LISTEN", format!("127.0.0.1:{port}"))
        .env("SPOG_DATA_DIR", &dir)
        .env("SPOG_DATABASE_URL", database_url)
        .env("SPOG_SERVER_KEY", SERVER_KEY)
        .env("SPOG_ADMIN_EMAIL", ADMIN_EMAIL)
        .env("SPOG_ADMIN_PASSWORD", ADMIN_PASSWORD)
        .env_remove(POSTGRES_ENV)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap());
    for (key, value) in env {
        if value.is_empty() {
            command.env_remove(key);
        } else {
            command.env(key, value);
        }
    }
    let child = command.spawn().expect("starting spog serve");
    // Owned by `Instance` at once, so it is killed and waited for whatever happens next.
    let mut instance = Instance {
        child,
        base: format!("http://127.0.0.1:{port}"),
        data_dir: dir,
        log,
    };
    for _ in 0..400 {
        if let Ok(response) = reqwest::get(format!("{}/readyz", instance.base)).await
            && response.status().is_success()
        {
            return instance;
        }
        if let Ok(Some(status)) = instance.child.try_wait() {
            panic!("spog serve exited ({status}): {}", instance.log_text());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!(
        "spog serve on port {port} did not become ready: {}",
        instance.log_text()
    );
}

pub async fn login(base: &str) -> Client {
    let anonymous = Client {
        base: base.to_owned(),
        token: None,
        http: reqwest::Client::new(),
    };
    let (_, body) = anonymous
        .post(
            "/auth/login",
            json!({"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD}),
        )
        .await;
    anonymous.with_token(body["token"].as_str().expect("a token"))
}

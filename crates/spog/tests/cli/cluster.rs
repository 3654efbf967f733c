//! Three `spog serve` processes on one PostgreSQL database behave as one: their audit
//! entries form one linear chain.

use std::process::{Child, Stdio};
use std::time::Duration;

use serde_json::json;
use spog_server::testing::{ADMIN_EMAIL, ADMIN_PASSWORD, Client};
use spog_store::testing::{POSTGRES_ENV, postgres};

use crate::{spog, temp_dir};

struct Instance {
    child: Child,
    base: String,
}

impl Drop for Instance {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

async fn start(database_url: &str, name: &str) -> Instance {
    let port = free_port();
    let child = spog()
        .arg("serve")
        .env("SPOG_LISTEN", format!("127.0.0.1:{port}"))
        .env("SPOG_DATA_DIR", temp_dir(name))
        .env("SPOG_DATABASE_URL", database_url)
        .env(
            "SPOG_SERVER_KEY",
            "6f6e65206b657920666f72207468652077686f6c6520636c7573746572212121",
        )
        .env("SPOG_ADMIN_EMAIL", ADMIN_EMAIL)
        .env("SPOG_ADMIN_PASSWORD", ADMIN_PASSWORD)
        .env_remove(POSTGRES_ENV)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("starting spog serve");
    // Owned by `Instance` at once, so it is killed and waited for whatever happens next.
    let instance = Instance {
        child,
        base: format!("http://127.0.0.1:{port}"),
    };
    for _ in 0..200 {
        if let Ok(response) = reqwest::get(format!("{}/readyz", instance.base)).await
            && response.status().is_success()
        {
            return instance;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("spog serve on port {port} did not become ready");
}

async fn login(base: &str) -> Client {
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

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_processes_on_one_postgresql_write_one_linear_chain() {
    let Ok(admin_url) = std::env::var(POSTGRES_ENV) else {
        eprintln!("PostgreSQL suite skipped: {POSTGRES_ENV} is not set (cluster test)");
        return;
    };
    let database = postgres(&admin_url).await;
    let mut instances = Vec::new();
    for n in 0..3 {
        instances.push(start(&database.url, &format!("node{n}")).await);
    }
    let mut writers = Vec::new();
    for instance in &instances {
        let admin = login(&instance.base).await;
        let agent = admin.token_client("agent", &["audit_logs.write"]).await;
        for writer in 0..21 {
            let agent = agent.clone();
            writers.push(tokio::spawn(async move {
                for n in 0..10 {
                    let entry = json!({"action": "job.run", "resource_type": "job", "resource_name": format!("w{writer}-{n}"), "outcome": "success"});
                    let (status, body) = agent.post("/audit-logs", entry).await;
                    assert_eq!(status, reqwest::StatusCode::CREATED, "{body}");
                }
            }));
        }
    }
    for writer in writers {
        writer.await.unwrap();
    }
    let admin = login(&instances[1].base).await;
    let (_, report) = admin.get("/audit-logs/integrity").await;
    assert_eq!(report["valid"], true, "{report}");
    let checked = report["entries_checked"].as_i64().unwrap();
    assert_eq!(report["head_seq"].as_i64().unwrap(), checked);
    // 630 ingested entries, plus logins and token creations of the three instances.
    assert!(checked >= 630 + 6, "{report}");
    drop(instances);
    drop(database);
}

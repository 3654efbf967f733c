//! `spog recordings copy-to-storage` as operators run it (SPEC 11.1): refused while the
//! configuration names no object storage; otherwise it moves what it can, says which it
//! could not, and exits 1 for those. The moves themselves are tested in the server's API
//! suite (`recording_copy`).

use std::path::Path;
use std::process::Output;
use std::sync::Arc;

use reqwest::StatusCode;
use serde_json::{Value, json};
use spog_server::testing::s3::S3Server;
use spog_server::testing::{Client, TEST_SERVER_KEY, TestServer, test_config};
use spog_store::testing::{POSTGRES_ENV, TestDatabase, databases};

use crate::{spog, temp_dir};

/// `spog recordings copy-to-storage` on `database`'s data directory `dir`, with `env`.
fn copy_to_storage(database: &TestDatabase, dir: &Path, env: &[(&str, String)]) -> Output {
    spog()
        .args(["recordings", "copy-to-storage"])
        .env("SPOG_DATA_DIR", dir)
        .env("SPOG_DATABASE_URL", &database.url)
        .env("SPOG_SERVER_KEY", TEST_SERVER_KEY)
        .env_remove(POSTGRES_ENV)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .output()
        .expect("running spog")
}

/// A whole terminal session recorded through `admin`'s account, ended: the recording.
async fn recorded(admin: &Client) -> Value {
    let gateway = admin
        .token_client("agent", &["session_recordings.write"])
        .await;
    let (_, organizations) = admin.get("/organizations").await;
    let (_, host) = admin
        .post(
            "/hosts",
            json!({"organization_id": organizations[0]["id"],
                "hostname": format!("web-{}", uuid::Uuid::now_v7())}),
        )
        .await;
    let (_, me) = admin.get("/auth/me").await;
    let (status, session) = gateway
        .post(
            "/terminal/sessions",
            json!({"host_id": host["id"], "user_id": me["user_id"], "shell": "/bin/bash",
                "width": 40, "height": 10}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{session}");
    let id = session["id"].as_str().unwrap();
    let (status, _) = gateway
        .post(
            &format!("/terminal/sessions/{id}/events"),
            json!([
                [0.1, "o", "$ uptime\r\n"],
                [0.2, "o", " 12:00 up 3 days\r\n"]
            ]),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, ended) = gateway
        .post(&format!("/terminal/sessions/{id}/end"), json!({}))
        .await;
    assert_eq!(status, StatusCode::OK, "{ended}");
    assert_eq!(ended["storage"], "local", "{ended}");
    ended
}

#[tokio::test]
async fn copy_to_storage_is_refused_on_local_storage_and_exits_1_for_what_it_cannot_move() {
    let Some(s3) = S3Server::start().await else {
        return;
    };
    for database in databases().await {
        let database = Arc::new(database);
        let dir = temp_dir("copy");
        let server =
            TestServer::start_with(Arc::clone(&database), test_config(&database, dir.clone()))
                .await;
        let admin = server.admin().await;
        let kept = recorded(&admin).await;
        let changed = recorded(&admin).await;
        std::fs::write(
            changed["file_path"].as_str().unwrap(),
            b"not what was sealed",
        )
        .unwrap();
        server.kill();

        let refused = copy_to_storage(&database, &dir, &[]);
        let said = String::from_utf8_lossy(&refused.stderr);
        assert_eq!(refused.status.code(), Some(1), "{said}");
        assert!(said.contains("recordings_storage is `local`"), "{said}");

        let prefix = format!("cli-{}", uuid::Uuid::now_v7());
        s3.create_bucket("cli").await;
        let env = [
            ("SPOG_RECORDINGS_STORAGE", format!("s3://cli/{prefix}")),
            ("SPOG_S3_ENDPOINT", s3.endpoint()),
            ("SPOG_S3_ALLOW_HTTP", "true".to_owned()),
            ("SPOG_S3_ACCESS_KEY_ID", "test".to_owned()),
            ("SPOG_S3_SECRET_ACCESS_KEY", "test".to_owned()),
        ];
        for run in 0..2 {
            let output = copy_to_storage(&database, &dir, &env);
            let (out, err) = (
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr),
            );
            assert_eq!(output.status.code(), Some(1), "{out}{err}");
            let moved = if run == 0 { 1 } else { 0 };
            assert!(
                out.contains(&format!(
                    "copy-to-storage: moved {moved}, skipped 0, failed 1"
                )),
                "{out}"
            );
            assert!(
                out.contains(&format!(
                    "FAILED terminal recording {} (account ",
                    changed["id"].as_str().unwrap()
                )),
                "{out}"
            );
            assert!(err.contains("1 recordings could not be moved"), "{err}");
        }
        let keys = s3.keys("cli", &prefix).await;
        assert_eq!(keys.len(), 1, "{keys:?}");
        assert!(keys[0].ends_with(&format!("{}.cast.zst", kept["id"].as_str().unwrap())));
        assert!(!Path::new(kept["file_path"].as_str().unwrap()).exists());
        assert!(Path::new(changed["file_path"].as_str().unwrap()).exists());
    }
}

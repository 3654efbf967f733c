//! Where recordings are kept once they end (SPEC 8.3): sealed (hashed, compressed) into the
//! data directory or a real S3-compatible server (moto), played and downloaded from either and
//! from any instance, verified against the hash the end's audit entry holds, and recovered
//! from the parts uploaded while active when the instance writing them dies.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use reqwest::StatusCode;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use spog_server::config::Config;
use spog_server::testing::s3::S3Server;
use spog_server::testing::{Client, TestServer, test_config};
use spog_store::testing::{POSTGRES_ENV, databases};
use tokio_tungstenite::tungstenite::Message;

use crate::desktop::start_desktop;
use crate::terminal::{Setup, download, setup, socket, start};
use crate::{servers_with, temp_dir};

pub const BUCKET: &str = "recordings";

/// A shell session's worth of output: prompts, commands and their output, as compressible
/// as real ones are.
pub fn shell_output() -> Vec<Value> {
    let mut events = Vec::new();
    let mut time = 0.0;
    for n in 0..400 {
        time += 0.05;
        events.push(json!([time, "i", format!("ls -la /var/log/app-{n}\r")]));
        time += 0.01;
        let listing: String = (0..8)
            .map(|f| {
                format!(
                    "-rw-r--r-- 1 root root {:>6} Dec  7 12:{f:02} app-{n}.{f}.log\r\n",
                    1000 + n * f
                )
            })
            .collect();
        events.push(json!([
            time,
            "o",
            format!("\u{1b}[01;32mroot@web-1\u{1b}[0m:~# {listing}")
        ]));
    }
    events
}

/// Records a whole session and ends it: the ended recording.
pub async fn record(setup: &Setup, events: Vec<Value>) -> Value {
    let session = start(setup, &setup.host).await;
    let id = session["id"].as_str().unwrap();
    for batch in events.chunks(200) {
        let (status, body) = setup
            .gateway
            .post(&format!("/terminal/sessions/{id}/events"), json!(batch))
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    let (status, ended) = setup
        .gateway
        .post(&format!("/terminal/sessions/{id}/end"), json!({}))
        .await;
    assert_eq!(status, StatusCode::OK, "{ended}");
    ended
}

pub fn sha256(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

pub fn zstd(bytes: &[u8]) -> Vec<u8> {
    zstd::encode_all(bytes, 3).unwrap()
}

pub async fn verify(client: &Client, kind: &str, id: &str) -> Value {
    let (status, body) = client.get(&format!("/{kind}/recordings/{id}/verify")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

/// The storages a test runs on: the data directory, and moto when it is installed.
async fn storages() -> Vec<(&'static str, Option<Arc<S3Server>>)> {
    let mut storages = vec![("local", None)];
    if let Some(s3) = S3Server::start().await {
        storages.push(("s3", Some(Arc::new(s3))));
    }
    storages
}

async fn servers_on(storage: Option<&S3Server>, prefix: &str) -> Vec<TestServer> {
    let mut configs = Vec::new();
    for database in databases().await {
        let mut config = test_config(&database, temp_dir());
        if let Some(s3) = storage {
            s3.configure(&mut config, BUCKET, prefix).await;
        }
        configs.push((Arc::new(database), config));
    }
    let mut servers = Vec::new();
    for (database, config) in configs {
        servers.push(TestServer::start_with(database, config).await);
    }
    servers
}

#[tokio::test]
async fn an_ended_recording_is_sealed_hashed_verified_and_a_changed_object_is_caught() {
    for (name, s3) in storages().await {
        let prefix = format!("sealed-{}", uuid::Uuid::now_v7());
        for server in servers_on(s3.as_deref(), &prefix).await {
            let setup = setup(&server).await;
            let (_, me) = setup.admin.get("/auth/me").await;
            let account = me["account_id"].as_str().unwrap().to_owned();
            let ended = record(&setup, shell_output()).await;
            let id = ended["id"].as_str().unwrap();

            assert_eq!(ended["storage"], name, "{ended}");
            let key = format!("{account}/terminal/{id}.cast.zst");
            let file_path = ended["file_path"].as_str().unwrap();
            match &s3 {
                Some(_) => assert_eq!(file_path, format!("s3://{BUCKET}/{prefix}/{key}")),
                None => {
                    assert!(file_path.ends_with(&key), "{file_path}");
                    assert!(std::path::Path::new(file_path).is_file());
                }
            }
            let spool = server.data_dir.join(format!("spool/{account}/{id}.cast"));
            assert!(!spool.exists(), "the spool is cleared once sealed");

            // The hash covers exactly what the download serves.
            let (status, _, cast) = download(&setup.admin, id).await;
            assert_eq!(status, StatusCode::OK);
            assert_eq!(ended["sha256"], sha256(cast.as_bytes()), "{name}");
            assert!(cast.contains("ls -la /var/log/app-399"));
            let stored = ended["stored_bytes"].as_i64().unwrap();
            assert!(
                stored * 4 <= cast.len() as i64,
                "stored {stored} bytes of a {} byte cast",
                cast.len()
            );
            let (_, with_events) = setup.admin.get(&format!("/terminal/recordings/{id}")).await;
            assert_eq!(with_events["events"].as_array().unwrap().len(), 800);

            // The end's entry holds the hash and the size; the chain protects them.
            let (_, entries) = setup
                .admin
                .get("/audit-logs?action=terminal_session.end")
                .await;
            let metadata = &entries["items"][0]["metadata"];
            assert_eq!(metadata["sha256"], ended["sha256"], "{entries}");
            assert_eq!(metadata["size"], cast.len());

            let verified = verify(&setup.admin, "terminal", id).await;
            assert_eq!(verified["valid"], true, "{verified}");
            assert_eq!(verified["sha256_actual"], ended["sha256"]);
            assert_eq!(verified["audit_entry_id"], entries["items"][0]["id"]);
            assert!(verified.get("reason").is_none());

            // Someone with access to the storage changes the recording.
            let forged = zstd(cast.replace("app-7", "app-8").as_bytes());
            match &s3 {
                Some(s3) => {
                    s3.put_object(BUCKET, &format!("{prefix}/{key}"), forged)
                        .await
                }
                None => std::fs::write(file_path, forged).unwrap(),
            }
            let verified = verify(&setup.admin, "terminal", id).await;
            assert_eq!(verified["valid"], false);
            assert_eq!(verified["reason"], "content_mismatch", "{verified}");
            assert_ne!(verified["sha256_actual"], ended["sha256"]);
            match &s3 {
                Some(s3) => s3.delete_object(BUCKET, &format!("{prefix}/{key}")).await,
                None => std::fs::remove_file(file_path).unwrap(),
            }
            let verified = verify(&setup.admin, "terminal", id).await;
            assert_eq!(verified["reason"], "missing", "{verified}");
            assert_eq!(verified["sha256_actual"], Value::Null);

            let (_, checks) = setup
                .admin
                .get("/audit-logs?action=terminal_recording.verify")
                .await;
            assert_eq!(
                checks["items"].as_array().unwrap().len(),
                3,
                "each check audited"
            );

            // An active session is not sealed yet.
            let active = start(&setup, &setup.host).await;
            let (status, _) = setup
                .admin
                .get(&format!(
                    "/terminal/recordings/{}/verify",
                    active["recording_id"].as_str().unwrap()
                ))
                .await;
            assert_eq!(status, StatusCode::CONFLICT);
            server.stop().await;
        }
    }
}

#[tokio::test]
async fn a_desktop_recording_in_object_storage_plays_back_and_verifies() {
    let Some(s3) = S3Server::start().await else {
        return;
    };
    let prefix = format!("desktop-{}", uuid::Uuid::now_v7());
    for server in servers_on(Some(&s3), &prefix).await {
        let setup = setup(&server).await;
        let id = &start_desktop(&setup).await;
        for n in 0..3u8 {
            let (status, _) = crate::desktop::frame(
                &setup.gateway,
                id,
                &(u64::from(n) * 10).to_string(),
                crate::desktop::jpeg(n, 2000),
            )
            .await;
            assert_eq!(status, StatusCode::OK);
        }
        let (_, ended) = setup
            .gateway
            .post(&format!("/desktop/recordings/{id}/end"), json!({}))
            .await;
        assert_eq!(ended["storage"], "s3", "{ended}");
        let mut player = socket(&setup.admin, &format!("/desktop/recordings/{id}/stream")).await;
        let meta = crate::terminal::next_json(&mut player).await;
        assert_eq!(meta["frame_count"], 3, "{meta}");
        for n in 0..3u8 {
            let (_, image) = crate::desktop::next_frame(&mut player).await;
            assert_eq!(image, crate::desktop::jpeg(n, 2000));
        }
        drop(player);
        let verified = verify(&setup.admin, "desktop", id).await;
        assert_eq!(verified["valid"], true, "{verified}");
        server.stop().await;
    }
}

/// Two instances of one PostgreSQL sharing a bucket, `change` applied to each's configuration.
pub async fn two_instances(
    s3: &S3Server,
    prefix: &str,
    change: impl Fn(&mut Config),
) -> Option<(TestServer, TestServer)> {
    let Ok(admin_url) = std::env::var(POSTGRES_ENV) else {
        eprintln!("skipped: {POSTGRES_ENV} is not set");
        return None;
    };
    let database = Arc::new(spog_store::testing::postgres(&admin_url).await);
    let mut instances = Vec::new();
    for _ in 0..2 {
        let mut config = test_config(&database, temp_dir());
        s3.configure(&mut config, BUCKET, prefix).await;
        change(&mut config);
        instances.push(TestServer::start_with(Arc::clone(&database), config).await);
    }
    let second = instances.pop()?;
    Some((instances.pop()?, second))
}

#[tokio::test]
async fn a_recording_made_through_one_instance_plays_and_downloads_through_another() {
    let Some(s3) = S3Server::start().await else {
        return;
    };
    let Some((first, second)) = two_instances(&s3, "shared", |_| {}).await else {
        return;
    };
    let setup = setup(&first).await;
    let ended = record(&setup, shell_output()).await;
    let id = ended["id"].as_str().unwrap();
    let elsewhere = second.admin().await;
    let (status, _, cast) = download(&elsewhere, id).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(ended["sha256"], sha256(cast.as_bytes()));
    let verified = verify(&elsewhere, "terminal", id).await;
    assert_eq!(verified["valid"], true, "{verified}");
    // Watching an ended session elsewhere plays what was recorded, then closes.
    let mut watcher = socket(
        &elsewhere,
        &format!(
            "/terminal/sessions/{}/watch",
            ended["session_id"].as_str().unwrap()
        ),
    )
    .await;
    let mut seen = String::new();
    while let Some(Ok(message)) = watcher.next().await {
        if let Message::Text(text) = message {
            seen.push_str(&text);
        }
    }
    assert!(seen.contains("app-399"), "watched the whole session");
    // Deleted through either instance, its object leaves the bucket.
    let (status, _) = elsewhere
        .delete(&format!("/terminal/recordings/{id}"))
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let key = ended["file_path"]
        .as_str()
        .unwrap()
        .trim_start_matches(&format!("s3://{BUCKET}/"))
        .to_owned();
    assert_eq!(s3.object(BUCKET, &key).await, None, "{key}");
    first.stop().await;
    second.stop().await;
}

#[tokio::test]
async fn a_session_whose_instance_died_is_ended_from_what_it_uploaded() {
    let Some(s3) = S3Server::start().await else {
        return;
    };
    let prefix = format!("lost-{}", uuid::Uuid::now_v7());
    let Some((first, second)) = two_instances(&s3, &prefix, |config| {
        config.recording_upload_interval = Duration::from_secs(1);
        config.recording_idle_timeout = Duration::from_secs(2);
    })
    .await
    else {
        return;
    };
    let setup = setup(&first).await;
    let session = start(&setup, &setup.host).await;
    let id = session["id"].as_str().unwrap();
    let (status, _) = setup
        .gateway
        .post(
            &format!("/terminal/sessions/{id}/events"),
            json!([[0.5, "o", "uploaded before the crash\r\n"]]),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let parts = format!("{prefix}/");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !s3
        .keys(BUCKET, &parts)
        .await
        .iter()
        .any(|k| k.contains(".parts/"))
    {
        assert!(tokio::time::Instant::now() < deadline, "no part uploaded");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    first.kill();

    let elsewhere = second.admin().await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let recording = loop {
        let (_, recording) = elsewhere
            .get(&format!(
                "/terminal/recordings/{}/verify",
                session["recording_id"].as_str().unwrap()
            ))
            .await;
        if recording["valid"] == true {
            break recording;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "never ended: {recording}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    assert_eq!(recording["reason"], Value::Null);
    let (_, ended) = elsewhere.get(&format!("/terminal/sessions/{id}")).await;
    assert_eq!(ended["active"], false);
    let (_, entries) = elsewhere
        .get("/audit-logs?action=terminal_session.end")
        .await;
    assert_eq!(entries["items"][0]["metadata"]["reason"], "instance_lost");
    let (_, _, cast) = download(&elsewhere, session["recording_id"].as_str().unwrap()).await;
    assert!(cast.contains("uploaded before the crash"), "{cast}");
    assert!(
        !s3.keys(BUCKET, &parts)
            .await
            .iter()
            .any(|k| k.contains(".parts/")),
        "the parts are deleted once sealed"
    );
    second.stop().await;
}

#[tokio::test]
async fn a_storage_that_cannot_be_written_stops_the_start() {
    let Some(s3) = S3Server::start().await else {
        return;
    };
    for server in servers_with(|_| {}).await {
        let mut config = server.state.config.clone();
        config.data_dir = temp_dir();
        s3.configure(&mut config, "exists", "p").await;
        config.recordings_storage = "s3://no-such-bucket/p".to_owned();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let refused =
            spog_server::launch(config, listener, tokio_util::sync::CancellationToken::new()).await;
        let error = refused.err().expect("the start is refused").to_string();
        assert!(
            error.contains("recordings_storage") && error.contains("probe"),
            "{error}"
        );
        server.stop().await;
    }
}

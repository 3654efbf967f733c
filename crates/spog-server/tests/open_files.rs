//! 2,000 active terminal sessions on one instance under the common open-files limit of 1,024
//! (issue 12), on SQLite and (with SPOG_TEST_DATABASE_URL) PostgreSQL. This binary is a
//! process of its own, so it can lower its own limit without starving other tests; the server
//! runs in it under that limit, unraised.

use std::time::Duration;

use futures::StreamExt;
use reqwest::StatusCode;
use serde_json::{Value, json};
use spog_server::testing::{TestServer, test_config};
use spog_store::testing::databases;

const SESSIONS: usize = 2_000;
const AT_ONCE: usize = 16;

fn lower_open_files_limit(soft: u64) {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: plain calls on a struct we own.
    unsafe {
        assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit), 0);
        limit.rlim_cur = soft.min(limit.rlim_max);
        assert_eq!(libc::setrlimit(libc::RLIMIT_NOFILE, &limit), 0);
    }
}

/// Fails the test on anything but a 2xx, naming what was asked.
fn ok(what: &str, (status, body): (StatusCode, Value)) -> Value {
    assert!(status.is_success(), "{what}: {status} {body}");
    body
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_thousand_sessions_under_an_open_files_limit_of_1024_get_no_server_error() {
    lower_open_files_limit(1024);
    assert_eq!(spog_server::open_files::limit(), 1024);
    for database in databases().await {
        let database = std::sync::Arc::new(database);
        let data_dir =
            std::env::temp_dir().join(format!("spog-open-files-{}", uuid::Uuid::now_v7()));
        let mut config = test_config(&database, data_dir);
        config.max_active_recordings_per_account = SESSIONS as i64;
        config.max_downloads_per_caller = AT_ONCE;
        let budget = spog_server::open_files::budget(
            1024,
            config.max_connections,
            config.database_max_connections,
        );
        let server = TestServer::start_with(database, config).await;
        let admin = server.admin().await;
        let gateway = admin
            .token_client("agent", &["session_recordings.write"])
            .await;
        let (_, organizations) = admin.get("/organizations").await;
        let host = ok(
            "creating a host",
            admin
                .post(
                    "/hosts",
                    json!({"organization_id": organizations[0]["id"], "hostname": "busy-1"}),
                )
                .await,
        );
        let (_, me) = admin.get("/auth/me").await;
        let start = json!({"host_id": host["id"], "user_id": me["user_id"], "shell": "sh",
            "width": 80, "height": 24});

        let sessions: Vec<(String, String)> = futures::stream::iter(0..SESSIONS)
            .map(|_| {
                let (gateway, start) = (gateway.clone(), start.clone());
                async move {
                    let session = ok(
                        "starting a session",
                        gateway.post("/terminal/sessions", start).await,
                    );
                    (
                        session["id"].as_str().unwrap().to_owned(),
                        session["recording_id"].as_str().unwrap().to_owned(),
                    )
                }
            })
            .buffer_unordered(AT_ONCE)
            .collect()
            .await;
        let (_, active) = admin.get("/terminal/sessions?limit=1").await;
        assert!(active["next_cursor"].is_string());

        // Two rounds through every session: far more files than may be open at once, so
        // each round reopens most of them.
        for round in 0..2 {
            futures::stream::iter(&sessions)
                .map(|(id, _)| {
                    let gateway = gateway.clone();
                    async move {
                        let events =
                            json!([[round as f64 + 0.5, "o", format!("{id} round {round}\r\n")]]);
                        ok(
                            "appending",
                            gateway
                                .post(&format!("/terminal/sessions/{id}/events"), events)
                                .await,
                        );
                    }
                })
                .buffer_unordered(AT_ONCE)
                .collect::<Vec<()>>()
                .await;
            let open = server.state.recorders.open_files();
            assert!(
                open <= budget.recording_files,
                "{open} recording files open, more than {}",
                budget.recording_files
            );
        }
        // The flush job syncs and records progress meanwhile; let it run over all of them.
        tokio::time::sleep(Duration::from_millis(1_500)).await;

        futures::stream::iter(&sessions)
            .map(|(id, recording)| {
                let (gateway, admin) = (gateway.clone(), admin.clone());
                async move {
                    let ended = ok(
                        "ending",
                        gateway
                            .post(&format!("/terminal/sessions/{id}/end"), json!({}))
                            .await,
                    );
                    assert_eq!(ended["event_count"], 2, "{ended}");
                    let cast = admin
                        .request(
                            reqwest::Method::GET,
                            &format!("/terminal/recordings/{recording}/cast"),
                        )
                        .send()
                        .await
                        .unwrap();
                    assert_eq!(cast.status(), StatusCode::OK);
                    let cast = cast.text().await.unwrap();
                    let lines: Vec<&str> = cast.lines().collect();
                    assert_eq!(lines.len(), 3, "{cast}");
                    for (round, line) in lines[1..].iter().enumerate() {
                        let event: Value = serde_json::from_str(line).unwrap();
                        assert_eq!(event[2], format!("{id} round {round}\r\n"), "{cast}");
                    }
                }
            })
            .buffer_unordered(AT_ONCE)
            .collect::<Vec<()>>()
            .await;
        assert_eq!(
            server.state.recorders.open_files(),
            0,
            "ended recordings hold no file"
        );
        server.stop().await;
    }
}

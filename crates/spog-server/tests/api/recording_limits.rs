//! Recordings under attack (issue 12): stalled downloads, the per-credential download cap,
//! the active-recordings quota, a session whose file cannot be written, and file modes.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};
use spog_server::testing::{Client, TestServer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

use crate::terminal::{Setup, setup};
use crate::{servers_with, temp_dir};

async fn start_session(setup: &Setup) -> (StatusCode, Value) {
    setup
        .gateway
        .post(
            "/terminal/sessions",
            json!({"host_id": setup.host, "user_id": setup.user, "shell": "sh", "width": 80, "height": 24}),
        )
        .await
}

async fn start_desktop(setup: &Setup) -> (StatusCode, Value) {
    setup
        .gateway
        .post(
            "/desktop/recordings",
            json!({"host_id": setup.host, "user_id": setup.user, "width": 640, "height": 480}),
        )
        .await
}

/// A session with about `bytes` of output, ended; its recording's id.
async fn recording_of(setup: &Setup, bytes: usize) -> String {
    let (status, session) = start_session(setup).await;
    assert_eq!(status, StatusCode::CREATED, "{session}");
    let id = session["id"].as_str().unwrap();
    let line = "x".repeat(1000);
    let mut time = 0.0;
    for _ in 0..bytes.div_ceil(500_000) {
        let events: Vec<Value> = (0..500)
            .map(|_| {
                time += 0.001;
                json!([time, "o", line])
            })
            .collect();
        let (status, body) = setup
            .gateway
            .post(&format!("/terminal/sessions/{id}/events"), json!(events))
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    let (status, _) = setup
        .gateway
        .post(&format!("/terminal/sessions/{id}/end"), json!({}))
        .await;
    assert_eq!(status, StatusCode::OK);
    session["recording_id"].as_str().unwrap().to_owned()
}

/// Bytes of a recording whose download stalls on a client that does not read: more than the
/// kernel buffers between the two ends on loopback (the sender's grows to 4 MiB).
const STALLS: usize = 12_000_000;

/// A download that a client asks for and then never reads: a tiny receive window, nothing
/// read. Returns once the server has begun answering it.
async fn stalled_download(server: &TestServer, client: &Client, recording: &str) -> TcpStream {
    let addr = server.base.trim_start_matches("http://").parse().unwrap();
    let socket = TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let mut stream = socket.connect(addr).await.unwrap();
    let request = format!(
        "GET /api/v1/terminal/recordings/{recording}/cast HTTP/1.1\r\nHost: spog\r\n\
         Authorization: Bearer {}\r\n\r\n",
        client.token.as_deref().unwrap()
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut first = [0u8; 12];
    stream.read_exact(&mut first).await.unwrap();
    assert_eq!(&first, b"HTTP/1.1 200", "the download began");
    stream
}

async fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !done() {
        assert!(Instant::now() < deadline, "waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn timed<T>(work: impl Future<Output = T>) -> (T, Duration) {
    let started = Instant::now();
    let out = work.await;
    (out, started.elapsed())
}

#[tokio::test]
async fn stalled_downloads_hold_no_thread_and_logins_and_exports_still_answer() {
    let limit = spog_server::open_files::raise_limit().unwrap_or(1024);
    let stalled = 600.min((limit.saturating_sub(400) / 2) as usize);
    // The stalled clients must outlast opening all of them on a loaded machine, so the write
    // timeout (tested on its own) does not end the first before the last begins.
    for server in servers_with(|c| {
        c.max_downloads_per_caller = 10_000;
        c.write_timeout = Duration::from_secs(600);
    })
    .await
    {
        let setup = setup(&server).await;
        let recording = recording_of(&setup, STALLS).await;
        let mut clients = Vec::with_capacity(stalled);
        for _ in 0..stalled {
            clients.push(stalled_download(&server, &setup.admin, &recording).await);
        }
        let state = server.state.clone();
        wait_until("the downloads to be in progress", || {
            state.downloads.in_progress() == stalled
        })
        .await;
        // None of them waits on the blocking pool: every permit comes free. (Not at once: the
        // recording's text past the first MiB is indexed in the background after its end.)
        let blocking = server.state.blocking.clone();
        wait_until("every blocking permit to be free", || {
            blocking.available() == spog_server::blocking::PERMITS
        })
        .await;
        let (_, login) = timed(server.admin()).await;
        let (export, exported) = timed(
            setup
                .admin
                .request(reqwest::Method::GET, "/audit-logs/export?format=jsonl")
                .send(),
        )
        .await;
        let export = export.unwrap();
        assert_eq!(export.status(), StatusCode::OK);
        assert!(!export.text().await.unwrap().is_empty());
        assert!(
            login < Duration::from_secs(2) && exported < Duration::from_secs(2),
            "beside {stalled} stalled downloads a login took {login:?}, an export {exported:?}"
        );
        drop(clients);
        server.stop().await;
    }
}

#[tokio::test]
async fn downloads_are_capped_per_credential_and_a_client_that_stops_reading_is_dropped() {
    for server in servers_with(|c| {
        c.max_downloads_per_caller = 2;
        c.write_timeout = Duration::from_secs(1);
    })
    .await
    {
        let setup = setup(&server).await;
        let recording = recording_of(&setup, STALLS).await;
        let first = stalled_download(&server, &setup.admin, &recording).await;
        let second = stalled_download(&server, &setup.admin, &recording).await;
        let cast = format!("/terminal/recordings/{recording}/cast");
        let (status, body) = setup.admin.get(&cast).await;
        assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{}", body["error"]);
        assert_eq!(body["error"]["code"], "limit_reached");
        let (status, _) = setup.admin.get("/audit-logs/export?format=csv").await;
        assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "exports count too");
        // Another credential (the same user's other session) downloads as usual.
        let other = server.admin().await;
        let (status, _) = other.get(&cast).await;
        assert_eq!(status, StatusCode::OK);
        // The stalled clients are dropped once their writes wait past the write timeout, and
        // their slots come back.
        let state = server.state.clone();
        wait_until("the stalled downloads to be dropped", || {
            state.downloads.in_progress() == 0
        })
        .await;
        let (status, _) = setup.admin.get(&cast).await;
        assert_eq!(status, StatusCode::OK);
        drop((first, second));
        server.stop().await;
    }
}

#[tokio::test]
async fn active_recordings_are_capped_per_account() {
    for server in servers_with(|c| c.max_active_recordings_per_account = 3).await {
        let setup = setup(&server).await;
        let (status, first) = start_session(&setup).await;
        assert_eq!(status, StatusCode::CREATED);
        assert_eq!(start_session(&setup).await.0, StatusCode::CREATED);
        assert_eq!(start_desktop(&setup).await.0, StatusCode::CREATED);
        let (status, body) = start_session(&setup).await;
        assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
        assert_eq!(body["error"]["code"], "limit_reached");
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("3 active recordings"),
            "{body}"
        );
        assert_eq!(start_desktop(&setup).await.0, StatusCode::TOO_MANY_REQUESTS);
        let (_, sessions) = setup.admin.get("/terminal/sessions").await;
        assert_eq!(sessions["items"].as_array().unwrap().len(), 2);
        // Ending one makes room.
        let id = first["id"].as_str().unwrap();
        let (status, _) = setup
            .gateway
            .post(&format!("/terminal/sessions/{id}/end"), json!({}))
            .await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(start_session(&setup).await.0, StatusCode::CREATED);
        server.stop().await;
    }
}

#[tokio::test]
async fn a_session_whose_file_cannot_be_created_never_becomes_active() {
    for server in servers_with(|_| {}).await {
        let setup = setup(&server).await;
        let (_, me) = setup.admin.get("/auth/me").await;
        let account = me["account_id"].as_str().unwrap();
        // Where the account's spool directory belongs, a file: nothing can be created.
        let blocked = server.data_dir.join("spool").join(account);
        std::fs::create_dir_all(blocked.parent().unwrap()).unwrap();
        std::fs::write(&blocked, b"not a directory").unwrap();
        let (status, _) = start_session(&setup).await;
        assert!(status.is_server_error(), "{status}");
        let (status, _) = start_desktop(&setup).await;
        assert!(status.is_server_error(), "{status}");
        let (_, sessions) = setup.admin.get("/terminal/sessions").await;
        assert_eq!(sessions["items"], json!([]), "no orphaned active session");
        let (_, desktops) = setup.admin.get("/desktop/recordings").await;
        assert_eq!(desktops["items"], json!([]));
        // Once the disk is writable again, sessions start.
        std::fs::remove_file(&blocked).unwrap();
        assert_eq!(start_session(&setup).await.0, StatusCode::CREATED);
        server.stop().await;
    }
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o777
}

#[tokio::test]
async fn files_the_service_writes_are_readable_by_its_user_only() {
    for database in spog_store::testing::databases().await {
        let database = std::sync::Arc::new(database);
        let data_dir = temp_dir();
        // What an earlier version left: a world-readable directory and key.
        std::fs::create_dir_all(&data_dir).unwrap();
        std::fs::set_permissions(&data_dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        let key = data_dir.join("server.key");
        std::fs::write(&key, "5e".repeat(32)).unwrap();
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
        let mut config = spog_server::testing::test_config(&database, data_dir.clone());
        config.server_key = None;
        let sqlite = config
            .database_url
            .strip_prefix("sqlite://")
            .map(|p| p.split('?').next().unwrap().to_owned());
        if let Some(file) = &sqlite {
            std::fs::set_permissions(file, std::fs::Permissions::from_mode(0o644)).ok();
        }
        let server = TestServer::start_with(database, config).await;
        let setup = setup(&server).await;
        let recording = recording_of(&setup, 1_000).await;

        assert_eq!(mode(&data_dir), 0o700);
        assert_eq!(mode(&key), 0o600);
        if let Some(file) = &sqlite {
            for suffix in ["", "-wal", "-shm"] {
                let path = format!("{file}{suffix}");
                if Path::new(&path).exists() {
                    assert_eq!(mode(Path::new(&path)), 0o600, "{path}");
                }
            }
        }
        let (_, listed) = setup
            .admin
            .get(&format!("/terminal/recordings/{recording}"))
            .await;
        let file = Path::new(listed["file_path"].as_str().unwrap());
        assert_eq!(mode(file), 0o600);
        assert_eq!(mode(file.parent().unwrap()), 0o700);
        assert_eq!(mode(&data_dir.join("recordings")), 0o700);
        server.stop().await;
    }
}

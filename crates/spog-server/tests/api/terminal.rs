//! Terminal recordings (SPEC 8.1) through the API: ingest by HTTP and WebSocket, listings under
//! host access, and the `.cast` download read back by an independent terminal emulator (avt).

use std::time::Duration;

use futures::{SinkExt, StreamExt};
use reqwest::StatusCode;
use serde_json::{Value, json};
use spog_server::testing::{Client, TestServer};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use crate::{servers, servers_with};

pub type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

pub struct Setup {
    pub admin: Client,
    /// A gateway's token: it records.
    pub gateway: Client,
    pub organization: String,
    pub host: String,
    /// The user whose sessions are recorded.
    pub user: String,
}

pub async fn setup(server: &TestServer) -> Setup {
    setup_for(server.admin().await).await
}

/// A host recorded by a gateway of `admin`'s account, in its first organization.
pub async fn setup_for(admin: Client) -> Setup {
    let gateway = admin
        .token_client("agent", &["session_recordings.write"])
        .await;
    let (_, organizations) = admin.get("/organizations").await;
    let organization = organizations[0]["id"].as_str().unwrap().to_owned();
    let (_, host) = admin
        .post(
            "/hosts",
            json!({"organization_id": organization, "hostname": "web-1"}),
        )
        .await;
    let (_, me) = admin.get("/auth/me").await;
    Setup {
        admin,
        gateway,
        organization,
        host: host["id"].as_str().unwrap().to_owned(),
        user: me["user_id"].as_str().unwrap().to_owned(),
    }
}

/// A WebSocket to `path` under `/api/v1`, authenticated like `client`.
pub async fn socket(client: &Client, path: &str) -> Socket {
    let url = client.url(path).replace("http://", "ws://");
    let mut request = url.into_client_request().unwrap();
    request.headers_mut().insert(
        "authorization",
        format!("Bearer {}", client.token.as_deref().unwrap())
            .parse()
            .unwrap(),
    );
    tokio_tungstenite::connect_async(request)
        .await
        .expect("connecting the WebSocket")
        .0
}

pub async fn start(setup: &Setup, host: &str) -> Value {
    let (status, session) = setup
        .gateway
        .post(
            "/terminal/sessions",
            json!({"host_id": host, "user_id": setup.user, "shell": "/bin/bash", "width": 40, "height": 10}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{session}");
    session
}

pub async fn download(
    client: &Client,
    recording: &str,
) -> (StatusCode, reqwest::header::HeaderMap, String) {
    let response = client
        .request(
            reqwest::Method::GET,
            &format!("/terminal/recordings/{recording}/cast"),
        )
        .send()
        .await
        .unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    (status, headers, response.text().await.unwrap())
}

/// Replays a `.cast` in avt, as a player would, and returns the screen's lines.
pub fn replay(cast: &str) -> Vec<String> {
    let mut lines = cast.lines();
    let header: Value = serde_json::from_str(lines.next().unwrap()).unwrap();
    let mut terminal = avt::Terminal::new(
        header["width"].as_u64().unwrap() as usize,
        header["height"].as_u64().unwrap() as usize,
    )
    .unwrap();
    let mut last = 0.0;
    for line in lines {
        let event: Value = serde_json::from_str(line).unwrap();
        let time = event[0].as_f64().unwrap();
        assert!(time >= last, "events in time order");
        last = time;
        let data = event[2].as_str().unwrap();
        match event[1].as_str().unwrap() {
            "o" => terminal.feed(data),
            "r" => {
                let (cols, rows) = data.split_once('x').unwrap();
                terminal.resize(cols.parse().unwrap(), rows.parse().unwrap());
            }
            _ => {}
        }
    }
    terminal
        .screen()
        .text()
        .into_iter()
        .map(|l| l.trim_end().to_owned())
        .collect()
}

#[tokio::test]
async fn a_session_recorded_over_http_downloads_as_a_cast_that_a_terminal_emulator_replays() {
    for server in servers().await {
        let setup = setup(&server).await;
        let session = start(&setup, &setup.host).await;
        let id = session["id"].as_str().unwrap();
        let recording = session["recording_id"].as_str().unwrap();
        assert_eq!(session["hostname"], "web-1");
        assert_eq!(session["user_email"], spog_server::testing::ADMIN_EMAIL);

        let (_, sessions) = setup.admin.get("/terminal/sessions").await;
        assert_eq!(sessions["items"][0]["id"], id, "{sessions}");
        assert_eq!(sessions["items"][0]["shell"], "/bin/bash");

        let events = json!([
            [0.1, "o", "$ echo hello\r\n"],
            [0.5, "i", "ls\r"],
            [0.9, "o", "hello wörld \u{1b}[1mbold\u{1b}[0m\r\n"],
            [1.0, "r", "60x12"],
            [2.25, "m", "checkpoint"],
            [2.5, "o", "$ "]
        ]);
        let (status, body) = setup
            .gateway
            .post(&format!("/terminal/sessions/{id}/events"), events)
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["accepted"], 6);

        // While the session runs, what was recorded already plays.
        let (status, _, cast) = download(&setup.admin, recording).await;
        assert_eq!(status, StatusCode::OK);
        assert!(
            replay(&cast).contains(&"hello wörld bold".to_owned()),
            "{cast}"
        );

        let (status, ended) = setup
            .gateway
            .post(&format!("/terminal/sessions/{id}/end"), json!({}))
            .await;
        assert_eq!(status, StatusCode::OK, "{ended}");
        assert_eq!(ended["duration_seconds"], 2.5);
        assert_eq!(ended["bytes_in"], 3);
        assert_eq!(ended["end_reason"], "ended");
        let (_, sessions) = setup.admin.get("/terminal/sessions").await;
        assert_eq!(sessions["items"], json!([]));

        let (_, list) = setup.admin.get("/terminal/recordings").await;
        let listed = &list["items"][0];
        assert_eq!(listed["id"], recording);
        assert_eq!(listed["session_id"], id);
        assert_eq!(listed["bytes_out"], ended["bytes_out"]);
        assert!(listed["ended_at"].is_string());
        assert!(std::path::Path::new(listed["file_path"].as_str().unwrap()).is_file());

        let (status, headers, cast) = download(&setup.admin, recording).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(headers["content-type"], "application/x-asciicast");
        assert!(
            headers["content-disposition"]
                .to_str()
                .unwrap()
                .ends_with(".cast\""),
        );
        let header: Value = serde_json::from_str(cast.lines().next().unwrap()).unwrap();
        assert_eq!(header["version"], 2);
        assert!(header["width"].is_u64() && header["height"].is_u64());
        assert!(header["timestamp"].is_u64());
        assert_eq!(header["duration"], 2.5);
        assert_eq!(header["env"]["SHELL"], "/bin/bash");
        assert!(header["title"].as_str().unwrap().contains("web-1"));
        assert_eq!(cast.lines().count(), 7);
        let screen = replay(&cast);
        assert_eq!(screen.len(), 12, "resized to 60x12");
        assert_eq!(screen[0], "$ echo hello");
        assert_eq!(screen[1], "hello wörld bold");
        assert_eq!(screen[2], "$");

        // The recording with its events, for playback.
        let (status, detail) = setup
            .admin
            .get(&format!("/terminal/recordings/{recording}"))
            .await;
        assert_eq!(status, StatusCode::OK, "{detail}");
        assert_eq!(detail["events"].as_array().unwrap().len(), 6);
        assert_eq!(detail["events"][1], json!([0.5, "i", "ls\r"]));
        assert_eq!(detail["hostname"], "web-1");

        // Start and end are on record.
        server.link_audit().await;
        let (_, audit) = setup
            .admin
            .get("/audit-logs?resource_type=terminal_session")
            .await;
        let mut actions: Vec<&str> = audit["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["action"].as_str().unwrap())
            .collect();
        actions.sort();
        assert_eq!(actions, ["terminal_session.end", "terminal_session.start"]);
        server.stop().await;
    }
}

#[tokio::test]
async fn bad_events_are_refused_and_the_recording_stays_playable() {
    for server in servers().await {
        let setup = setup(&server).await;
        let session = start(&setup, &setup.host).await;
        let id = session["id"].as_str().unwrap();
        let path = format!("/terminal/sessions/{id}/events");
        let ok = json!([[1.0, "o", "kept\r\n"]]);
        assert_eq!(setup.gateway.post(&path, ok).await.0, StatusCode::OK);
        for (events, field) in [
            (json!([[0.5, "o", "too early"]]), "body[0][0]"),
            (json!([[2.0, "o", "a"], [1.5, "o", "b"]]), "body[1][0]"),
            (json!([[2.0, "x", "what"]]), "body[0][1]"),
            (json!([[2.0, "r", "0x10"]]), "body[0][2]"),
            (json!([[2.0, "r", "wide"]]), "body[0][2]"),
            (json!([[-1, "o", "negative"]]), "body[0][0]"),
        ] {
            let (status, body) = setup.gateway.post(&path, events.clone()).await;
            assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{events}: {body}");
            assert!(
                body["error"]["details"]["fields"][field].is_string(),
                "{events}: {body}"
            );
        }
        let (status, _) = setup.gateway.post(&path, json!([[2.0, "o"]])).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
        // Output that is not UTF-8 cannot even be JSON.
        let response = setup
            .gateway
            .request(reqwest::Method::POST, &path)
            .header("content-type", "application/json")
            .body(b"[[2.0, \"o\", \"\xff\xfe\"]]".to_vec())
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
        let (status, _) = setup
            .gateway
            .post(
                &path,
                json!([[2.0, "o", "\u{fffd} lone surrogates never arrive"]]),
            )
            .await;
        assert_eq!(status, StatusCode::OK);

        let (_, ended) = setup
            .gateway
            .post(&format!("/terminal/sessions/{id}/end"), json!({}))
            .await;
        let (status, body) = setup.gateway.post(&path, json!([[3.0, "o", "late"]])).await;
        assert_eq!(status, StatusCode::CONFLICT, "{body}");
        let (status, _) = setup
            .gateway
            .post(&format!("/terminal/sessions/{id}/end"), json!({}))
            .await;
        assert_eq!(status, StatusCode::CONFLICT);
        let (_, _, cast) = download(&setup.admin, ended["id"].as_str().unwrap()).await;
        assert_eq!(cast.lines().count(), 3, "{cast}");
        assert_eq!(replay(&cast)[0], "kept");

        // Bad starts name the field.
        for (body, field) in [
            (
                json!({"host_id": setup.host, "user_id": setup.user, "shell": "sh", "width": 0, "height": 10}),
                "width",
            ),
            (
                json!({"host_id": setup.user, "user_id": setup.user, "shell": "sh", "width": 80, "height": 10}),
                "host_id",
            ),
            (
                json!({"host_id": setup.host, "user_id": setup.host, "shell": "sh", "width": 80, "height": 10}),
                "user_id",
            ),
        ] {
            let (status, response) = setup.gateway.post("/terminal/sessions", body).await;
            assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{response}");
            assert!(
                response["error"]["details"]["fields"][field].is_string(),
                "{response}"
            );
        }
        server.stop().await;
    }
}

#[tokio::test]
async fn input_is_not_recorded_when_capture_is_off() {
    for server in servers_with(|config| config.record_input = false).await {
        let setup = setup(&server).await;
        let session = start(&setup, &setup.host).await;
        let id = session["id"].as_str().unwrap();
        let (status, body) = setup
            .gateway
            .post(
                &format!("/terminal/sessions/{id}/events"),
                json!([[0.1, "i", "secret-password\r"], [0.2, "o", "ok\r\n"]]),
            )
            .await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body, json!({"accepted": 2, "dropped": 1}));
        let (_, ended) = setup
            .gateway
            .post(&format!("/terminal/sessions/{id}/end"), json!({}))
            .await;
        assert_eq!(ended["bytes_in"], 0);
        let (status, _, cast) = download(&setup.admin, ended["id"].as_str().unwrap()).await;
        assert_eq!(status, StatusCode::OK);
        assert!(
            cast.contains("ok\\r\\n") && !cast.contains("secret-password"),
            "{cast}"
        );
        server.stop().await;
    }
}

#[tokio::test]
async fn a_websocket_stream_is_recorded_and_followed_live() {
    for server in servers().await {
        let setup = setup(&server).await;
        let session = start(&setup, &setup.host).await;
        let id = session["id"].as_str().unwrap();
        let recording = session["recording_id"].as_str().unwrap();
        let mut source = socket(&setup.gateway, &format!("/terminal/sessions/{id}/stream")).await;
        source
            .send(Message::text(r#"[0.5, "o", "first\r\n"]"#))
            .await
            .unwrap();

        // A viewer joins: the screen so far, then what follows, live.
        let mut viewer = socket(&setup.admin, &format!("/terminal/sessions/{id}/watch")).await;
        let header: Value = next_json(&mut viewer).await;
        assert_eq!(header["version"], 2);
        assert_eq!(header["width"], 40);
        let first = next_json(&mut viewer).await;
        assert_eq!(first, json!([0.0, "o", "first\r\n"]));
        source
            .send(Message::text(
                r#"[[1.0, "o", "second\r\n"], [1.5, "o", "third\r\n"]]"#,
            ))
            .await
            .unwrap();
        assert_eq!(next_json(&mut viewer).await[2], "second\r\n");
        assert_eq!(next_json(&mut viewer).await[2], "third\r\n");

        // A message out of order closes the stream with the reason; what came before stays.
        source
            .send(Message::text(r#"[0.2, "o", "late"]"#))
            .await
            .unwrap();
        let close = closed(&mut source).await;
        assert_eq!(close.0, 1007, "{}", close.1);
        assert!(close.1.contains("time order"), "{}", close.1);

        // A stream that drops: reconnect and go on.
        let mut source = socket(&setup.gateway, &format!("/terminal/sessions/{id}/stream")).await;
        source
            .send(Message::text(r#"[2.0, "o", "fourth\r\n"]"#))
            .await
            .unwrap();
        drop(source);
        assert_eq!(next_json(&mut viewer).await[2], "fourth\r\n");

        let (_, ended) = setup
            .gateway
            .post(&format!("/terminal/sessions/{id}/end"), json!({}))
            .await;
        assert_eq!(ended["event_count"], 4);
        let close = closed(&mut viewer).await;
        assert_eq!(close.0, 1000);
        let (_, _, cast) = download(&setup.admin, recording).await;
        assert_eq!(replay(&cast)[..4], ["first", "second", "third", "fourth"]);
        server.stop().await;
    }
}

pub async fn next_json(socket: &mut Socket) -> Value {
    loop {
        let message = tokio::time::timeout(Duration::from_secs(5), socket.next())
            .await
            .expect("a message within five seconds")
            .expect("an open socket")
            .expect("a message");
        match message {
            Message::Text(text) => return serde_json::from_str(&text).unwrap(),
            Message::Ping(_) | Message::Pong(_) => continue,
            other => panic!("unexpected {other:?}"),
        }
    }
}

/// The close code and reason the server sent.
pub async fn closed(socket: &mut Socket) -> (u16, String) {
    loop {
        let message = tokio::time::timeout(Duration::from_secs(5), socket.next())
            .await
            .expect("closed within five seconds");
        match message {
            Some(Ok(Message::Close(Some(frame)))) => {
                return (frame.code.into(), frame.reason.to_string());
            }
            Some(Ok(Message::Close(None))) | None => return (1005, String::new()),
            Some(Ok(_)) => continue,
            Some(Err(error)) => panic!("{error}"),
        }
    }
}

#[tokio::test]
async fn sessions_and_recordings_show_only_on_hosts_the_viewer_may_see() {
    for server in servers().await {
        let setup = setup(&server).await;
        let (_, other_host) = setup
            .admin
            .post(
                "/hosts",
                json!({"organization_id": setup.organization, "hostname": "db-1"}),
            )
            .await;
        let other_host = other_host["id"].as_str().unwrap();
        let mine = start(&setup, &setup.host).await;
        let theirs = start(&setup, other_host).await;
        let auditor = setup
            .admin
            .user_with_roles(&server, "auditor@example.com", &["auditor"])
            .await;
        let (_, me) = auditor.get("/auth/me").await;
        let auditor_id = me["user_id"].as_str().unwrap();
        let (status, _) = setup
            .admin
            .post(
                &format!("/hosts/{}/access/{auditor_id}", setup.host),
                json!({}),
            )
            .await;
        assert_eq!(status, StatusCode::NO_CONTENT);

        let ids = |body: &Value| -> Vec<String> {
            body["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|i| i["id"].as_str().unwrap().to_owned())
                .collect()
        };
        let (_, sessions) = auditor.get("/terminal/sessions").await;
        assert_eq!(ids(&sessions), [mine["id"].as_str().unwrap()]);
        let (_, recordings) = auditor.get("/terminal/recordings").await;
        assert_eq!(ids(&recordings), [mine["recording_id"].as_str().unwrap()]);
        let (_, all) = setup.admin.get("/terminal/sessions").await;
        assert_eq!(ids(&all).len(), 2);
        let (_, filtered) = setup
            .admin
            .get(&format!("/terminal/recordings?host_id={other_host}"))
            .await;
        assert_eq!(ids(&filtered), [theirs["recording_id"].as_str().unwrap()]);
        let (status, _) = setup.admin.get("/terminal/recordings?color=red").await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);

        let recording = theirs["recording_id"].as_str().unwrap();
        let session = theirs["id"].as_str().unwrap();
        for path in [
            format!("/terminal/recordings/{recording}"),
            format!("/terminal/recordings/{recording}/cast"),
            format!("/terminal/sessions/{session}"),
        ] {
            assert_eq!(auditor.get(&path).await.0, StatusCode::NOT_FOUND, "{path}");
        }

        // Another account sees none of it, and cannot write into it.
        spog_server::bootstrap::create_account(
            &server.state.store,
            "globex",
            &spog_core::validate::Email::parse("e", "root@globex.example").unwrap(),
            "globex admin password",
            spog_core::audit::Source::Cli,
        )
        .await
        .unwrap();
        let globex = server
            .login("root@globex.example", "globex admin password")
            .await;
        let globex_gateway = globex
            .token_client("agent", &["session_recordings.write"])
            .await;
        let (_, listed) = globex.get("/terminal/recordings").await;
        assert_eq!(listed["items"], json!([]));
        assert_eq!(
            globex
                .get(&format!("/terminal/recordings/{recording}/cast"))
                .await
                .0,
            StatusCode::NOT_FOUND
        );
        let (status, _) = globex_gateway
            .post(
                &format!("/terminal/sessions/{session}/events"),
                json!([[1.0, "o", "intrusion"]]),
            )
            .await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        let (status, _) = globex_gateway
            .post(&format!("/terminal/sessions/{session}/end"), json!({}))
            .await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        server.stop().await;
    }
}

#[tokio::test]
async fn the_scheduler_ends_sessions_whose_source_went_silent() {
    for server in
        servers_with(|config| config.recording_idle_timeout = Duration::from_secs(60)).await
    {
        let setup = setup(&server).await;
        let session = start(&setup, &setup.host).await;
        let id = session["id"].as_str().unwrap();
        setup
            .gateway
            .post(
                &format!("/terminal/sessions/{id}/events"),
                json!([[0.5, "o", "hi"]]),
            )
            .await;
        let now = spog_core::Timestamp::now();
        let ended = spog_server::workers::recordings::idle_once(&server.state, now)
            .await
            .unwrap();
        assert_eq!(ended, 0, "not silent yet");
        let later = now.plus(Duration::from_secs(61));
        let ended = spog_server::workers::recordings::idle_once(&server.state, later)
            .await
            .unwrap();
        assert_eq!(ended, 1);
        let (_, recording) = setup.admin.get(&format!("/terminal/sessions/{id}")).await;
        assert_eq!(recording["active"], false);
        let (_, list) = setup.admin.get("/terminal/recordings").await;
        assert_eq!(list["items"][0]["end_reason"], "idle");
        assert_eq!(list["items"][0]["duration_seconds"], 0.5);
        let (_, health) = setup.admin.get("/system/health").await;
        assert!(health.to_string().contains("recording_idle"), "{health}");
        server.stop().await;
    }
}

#[tokio::test]
async fn a_crash_loses_at_most_the_last_second_and_the_recording_goes_on_after_restart() {
    for server in servers().await {
        let setup = setup(&server).await;
        let session = start(&setup, &setup.host).await;
        let id = session["id"].as_str().unwrap().to_owned();
        let recording = session["recording_id"].as_str().unwrap().to_owned();
        let mut source = socket(&setup.gateway, &format!("/terminal/sessions/{id}/stream")).await;
        source
            .send(Message::text(r#"[[0.5, "o", "before the crash\r\n"]]"#))
            .await
            .unwrap();
        // The recordings worker writes streamed events out within a quarter second.
        tokio::time::sleep(Duration::from_millis(1100)).await;
        let (database, data_dir) = (server.database.clone(), server.data_dir.clone());
        let token = setup.gateway.token.clone().unwrap();
        server.kill();
        drop(source);

        // A writer that died mid-line leaves a torn tail; the next writer cuts it off.
        let file = data_dir.join(file_of(&database, &recording).await);
        let mut bytes = std::fs::read(&file).unwrap();
        assert!(
            String::from_utf8_lossy(&bytes).contains("before the crash"),
            "streamed events reached the file within a second"
        );
        bytes.extend_from_slice(b"[0.9, \"o\", \"torn");
        std::fs::write(&file, &bytes).unwrap();

        let config = spog_server::testing::test_config(&database, data_dir);
        let server = TestServer::start_with(database, config).await;
        let gateway = server.anonymous().with_token(&token);
        let path = format!("/terminal/sessions/{id}/events");
        let (status, _) = gateway.post(&path, json!([[0.2, "o", "too early"]])).await;
        assert_eq!(
            status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "time order survives the crash"
        );
        let (status, body) = gateway
            .post(&path, json!([[1.0, "o", "after the restart\r\n"]]))
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let (_, ended) = gateway
            .post(&format!("/terminal/sessions/{id}/end"), json!({}))
            .await;
        assert_eq!(ended["event_count"], 2, "{ended}");
        let admin = server.admin().await;
        let (_, _, cast) = download(&admin, &recording).await;
        assert_eq!(
            replay(&cast)[..2],
            ["before the crash", "after the restart"]
        );
        server.stop().await;
    }
}

/// A recording's file, relative to its data directory's `recordings/`.
async fn file_of(database: &spog_store::testing::TestDatabase, recording: &str) -> String {
    let store = spog_store::Store::connect(&database.url, &Default::default())
        .await
        .unwrap();
    let path: String =
        sqlx::query_scalar("SELECT file_path FROM terminal_recordings WHERE id = $1")
            .bind(recording)
            .fetch_one(&mut *store.conn().await.unwrap())
            .await
            .unwrap();
    store.close().await;
    path
}

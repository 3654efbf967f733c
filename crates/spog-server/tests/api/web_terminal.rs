//! The web terminal's relay (SPEC 13.1–13.2) against an agent played by the test, which
//! speaks the agent protocol frame by frame: what the hub asks of the agent, what it tells
//! the browser, and what it records, byte for byte. The real agent and its PTY are in
//! `real_terminal.rs`.

use std::time::Duration;

use futures::{SinkExt, StreamExt};
use reqwest::StatusCode;
use serde_json::{Value, json};
use spog_protocol::{Frame, FrameKind};
use spog_server::testing::{Client, TestServer};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::{self, Message};

use crate::agents::{connected_with, enrolled};
use crate::servers;
use crate::terminal::{Socket, closed, replay};

const TERMINAL: &str = r#"{"terminal": true, "shell": false, "max_sessions": 8,
    "terminal_user": "operator", "terminal_shell": "/bin/bash"}"#;

/// The browser's socket to `/hosts/{host}/terminal{query}`, or the refusal's status and body.
pub async fn open(client: &Client, host: &str, query: &str) -> Result<Socket, (StatusCode, Value)> {
    let url = client
        .url(&format!("/hosts/{host}/terminal{query}"))
        .replace("http://", "ws://");
    let mut request = url.into_client_request().unwrap();
    if let Some(token) = &client.token {
        request
            .headers_mut()
            .insert("authorization", format!("Bearer {token}").parse().unwrap());
    }
    match tokio_tungstenite::connect_async(request).await {
        Ok((socket, _)) => Ok(socket),
        Err(tungstenite::Error::Http(response)) => {
            let status = StatusCode::from_u16(response.status().as_u16()).unwrap();
            let body = response
                .body()
                .as_deref()
                .and_then(|b| serde_json::from_slice(b).ok())
                .unwrap_or(Value::Null);
            Err((status, body))
        }
        Err(other) => panic!("opening the terminal: {other}"),
    }
}

/// What an agent socket or a browser socket received next.
#[derive(Debug)]
pub enum Received {
    Json(Value),
    Bytes(Vec<u8>),
}

pub async fn next(socket: &mut Socket) -> Received {
    loop {
        let message = tokio::time::timeout(Duration::from_secs(10), socket.next())
            .await
            .expect("a message within ten seconds")
            .expect("an open socket")
            .expect("a message");
        match message {
            Message::Text(text) => return Received::Json(serde_json::from_str(&text).unwrap()),
            Message::Binary(bytes) => return Received::Bytes(bytes.to_vec()),
            Message::Ping(_) | Message::Pong(_) => continue,
            other => panic!("unexpected {other:?}"),
        }
    }
}

/// The next text message of type `kind`, skipping `window` acknowledgements.
pub async fn next_of(socket: &mut Socket, kind: &str) -> Value {
    loop {
        match next(socket).await {
            Received::Json(value) if value["type"] == kind => return value,
            Received::Json(value) if value["type"] == "window" => continue,
            other => panic!("expected {kind}, got {other:?}"),
        }
    }
}

/// The agent's side: an output frame of `channel`.
async fn output(agent: &mut Socket, channel: u32, elapsed_us: u64, bytes: &[u8]) {
    let frame = Frame {
        channel,
        kind: FrameKind::Output,
        elapsed_us,
        data: bytes,
    };
    agent
        .send(Message::Binary(frame.encode().unwrap().into()))
        .await
        .unwrap();
}

async fn say(socket: &mut Socket, message: Value) {
    socket
        .send(Message::Text(message.to_string().into()))
        .await
        .unwrap();
}

/// Bytes the browser receives until it has `len` of them.
async fn browser_bytes(browser: &mut Socket, len: usize) -> Vec<u8> {
    let mut got = Vec::new();
    while got.len() < len {
        match next(browser).await {
            Received::Bytes(bytes) => got.extend_from_slice(&bytes),
            other => panic!("expected output, got {other:?}"),
        }
    }
    got
}

/// A host whose agent the test plays, connected with `capabilities`.
async fn host_with_agent(
    server: &TestServer,
    admin: &Client,
    hostname: &str,
    capabilities: &str,
) -> (String, Socket) {
    let (host, agent) = enrolled(server, admin, hostname).await;
    let socket = connected_with(&agent, serde_json::from_str(capabilities).unwrap()).await;
    (host, socket)
}

/// Opens a terminal and plays the agent's `open_ok`: (browser, channel, session message).
async fn opened(admin: &Client, host: &str, agent: &mut Socket) -> (Socket, u32, Value) {
    let mut browser = open(admin, host, "?cols=100&rows=30")
        .await
        .expect("the upgrade");
    let open = next_of(agent, "open").await;
    assert_eq!(
        (open["cols"].as_u64(), open["rows"].as_u64()),
        (Some(100), Some(30))
    );
    assert_eq!(open["term"], "xterm-256color");
    let channel = open["channel"].as_u64().unwrap() as u32;
    assert_eq!(channel % 2, 1, "the hub's channels are odd");
    say(
        agent,
        json!({"type": "open_ok", "channel": channel, "pid": 4242}),
    )
    .await;
    let session = next_of(&mut browser, "session").await;
    assert_eq!(session["session_id"], open["session_id"]);
    (browser, channel, session)
}

#[tokio::test]
async fn a_console_terminal_is_relayed_and_recorded_byte_for_byte() {
    for server in servers().await {
        let admin = server.admin().await;
        let (host, mut agent) = host_with_agent(&server, &admin, "term-1", TERMINAL).await;
        let (mut browser, channel, session) = opened(&admin, &host, &mut agent).await;
        assert_eq!(session["os_user"], "operator");
        assert_eq!(session["hostname"], "term-1");
        assert_eq!(
            (session["cols"].as_u64(), session["rows"].as_u64()),
            (Some(100), Some(30))
        );
        let session_id = session["session_id"].as_str().unwrap().to_owned();

        // Listed live, with where it came from.
        let (_, live) = admin.get("/terminal/sessions").await;
        let listed = &live["items"][0];
        assert_eq!(listed["id"], session_id.as_str(), "{live}");
        assert_eq!(listed["origin"], "console");
        assert_eq!(listed["os_user"], "operator");

        // Keystrokes reach the agent as input frames of the channel, unchanged.
        browser
            .send(Message::Binary(b"echo h\xc3\xa9llo\r".to_vec().into()))
            .await
            .unwrap();
        let input = match next(&mut agent).await {
            Received::Bytes(bytes) => bytes,
            other => panic!("expected an input frame, got {other:?}"),
        };
        let frame = Frame::decode(&input).unwrap();
        assert_eq!((frame.channel, frame.kind), (channel, FrameKind::Input));
        assert_eq!(frame.data, "echo héllo\r".as_bytes());
        say(
            &mut agent,
            json!({"type": "window", "channel": channel, "bytes": frame.data.len()}),
        )
        .await;

        // Output with a character cut between frames and a byte that is not UTF-8 reaches the
        // browser unchanged, and each frame is acknowledged once passed on.
        // (At 10 s on the agent's clock: later than the input's time on the hub's, which an
        // earlier output would be moved up to.)
        let pieces: [&[u8]; 3] = [b"h\xc3", b"\xa9llo \xe2\x82", b"\xac \xff done\r\n"];
        for (i, piece) in pieces.iter().enumerate() {
            output(
                &mut agent,
                channel,
                10_000_000 + 10_000 * (i as u64 + 1),
                piece,
            )
            .await;
        }
        let sent: Vec<u8> = pieces.concat();
        assert_eq!(browser_bytes(&mut browser, sent.len()).await, sent);
        let mut acknowledged = 0;
        while acknowledged < sent.len() as u64 {
            let window = next_of(&mut agent, "window").await;
            assert_eq!(window["channel"], channel);
            acknowledged += window["bytes"].as_u64().unwrap();
        }
        assert_eq!(acknowledged, sent.len() as u64);

        // Resize and ping.
        say(
            &mut browser,
            json!({"type": "resize", "cols": 120, "rows": 40}),
        )
        .await;
        let resize = next_of(&mut agent, "resize").await;
        assert_eq!(
            (
                resize["channel"].as_u64(),
                resize["cols"].as_u64(),
                resize["rows"].as_u64()
            ),
            (Some(channel as u64), Some(120), Some(40))
        );
        say(&mut browser, json!({"type": "ping"})).await;
        assert_eq!(next_of(&mut browser, "pong").await["type"], "pong");

        // The shell exits: the browser is told why, then the socket closes normally.
        say(
            &mut agent,
            json!({"type": "exit", "channel": channel, "exit_code": 3}),
        )
        .await;
        let exit = next_of(&mut browser, "exit").await;
        assert_eq!(exit["reason"], "exited");
        assert_eq!(exit["exit_code"], 3);
        assert_eq!(closed(&mut browser).await.0, 1000);

        let (_, recordings) = admin
            .get(&format!("/terminal/recordings?host_id={host}"))
            .await;
        let recording = &recordings["items"][0];
        assert_eq!(recording["session_id"], session_id.as_str(), "{recordings}");
        assert_eq!(recording["end_reason"], "exited");
        assert_eq!(recording["exit_code"], 3);
        assert_eq!(recording["origin"], "console");
        assert_eq!(recording["shell"], "/bin/bash");
        let id = recording["id"].as_str().unwrap();
        let response = admin
            .request(
                reqwest::Method::GET,
                &format!("/terminal/recordings/{id}/cast"),
            )
            .send()
            .await
            .unwrap();
        let cast = response.text().await.unwrap();
        let events: Vec<Value> = cast
            .lines()
            .skip(1)
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        let of = |code: &str| -> String {
            events
                .iter()
                .filter(|e| e[1] == code)
                .map(|e| e[2].as_str().unwrap())
                .collect()
        };
        assert_eq!(of("o"), String::from_utf8_lossy(&sent), "{cast}");
        assert_eq!(of("i"), "echo héllo\r");
        assert_eq!(of("r"), "120x40");
        let outputs: Vec<f64> = events
            .iter()
            .filter(|e| e[1] == "o")
            .map(|e| e[0].as_f64().unwrap())
            .collect();
        assert_eq!(
            outputs[..3],
            [10.01, 10.02, 10.03],
            "output times are the agent's"
        );
        assert_eq!(replay(&cast)[0], "héllo € \u{fffd} done");

        // Start and end on record with the session id, the end with its reason.
        let (_, entries) = admin
            .get(&format!("/audit-logs?resource_id={session_id}"))
            .await;
        let actions: Vec<&str> = entries["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["action"].as_str().unwrap())
            .collect();
        assert_eq!(
            actions,
            ["terminal_session.end", "terminal_session.start"],
            "{entries}"
        );
        let end = &entries["items"][0];
        assert_eq!(end["metadata"]["reason"], "exited");
        assert_eq!(end["metadata"]["exit_code"], 3);
        assert_eq!(entries["items"][1]["metadata"]["origin"], "console");
        server.stop().await;
    }
}

#[tokio::test]
async fn a_terminal_is_refused_before_the_upgrade_when_it_cannot_or_may_not_open() {
    for server in servers().await {
        let admin = server.admin().await;
        let (host, _agent) = host_with_agent(&server, &admin, "term-1", TERMINAL).await;
        let refused = |result: Result<Socket, (StatusCode, Value)>| match result {
            Ok(_) => panic!("the terminal opened"),
            Err(refusal) => refusal,
        };

        let (status, _) = refused(open(&server.anonymous(), &host, "").await);
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        let auditor = admin
            .user_with_roles(&server, "auditor@example.com", &["auditor"])
            .await;
        let (status, body) = refused(open(&auditor, &host, "").await);
        assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("terminal.connect")
        );
        let component = admin.token_client("system", &["terminal.connect"]).await;
        let (status, _) = refused(open(&component, &host, "").await);
        assert_eq!(
            status,
            StatusCode::FORBIDDEN,
            "a component token opens no terminal"
        );

        // A user who may open terminals but has no access to this host does not see it.
        let (status, role) = admin
            .post(
                "/roles",
                json!({"name": "terminals", "permissions": ["terminal.connect"]}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{role}");
        let stranger = admin
            .user_with_roles(&server, "stranger@example.com", &["terminals"])
            .await;
        let (status, _) = refused(open(&stranger, &host, "").await);
        assert_eq!(status, StatusCode::NOT_FOUND);

        let (status, body) = refused(open(&admin, &host, "?cols=0&rows=1001").await);
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
        assert!(
            body.to_string().contains("cols") && body.to_string().contains("rows"),
            "{body}"
        );

        let (disabled, _disabled_agent) = host_with_agent(
            &server,
            &admin,
            "term-2",
            r#"{"terminal": false, "shell": false, "max_sessions": 0}"#,
        )
        .await;
        let (status, body) = refused(open(&admin, &disabled, "").await);
        assert_eq!(status, StatusCode::CONFLICT);
        assert_eq!(body["error"]["code"], "terminal_disabled", "{body}");

        let (organizations_status, organizations) = admin.get("/organizations").await;
        assert_eq!(organizations_status, StatusCode::OK);
        let (_, offline) = admin
            .post(
                "/hosts",
                json!({"organization_id": organizations[0]["id"], "hostname": "no-agent"}),
            )
            .await;
        let (status, body) = refused(open(&admin, offline["id"].as_str().unwrap(), "").await);
        assert_eq!(status, StatusCode::CONFLICT, "{body}");
        assert_eq!(body["error"]["code"], "host_offline");
        let (_, sessions) = admin.get("/terminal/sessions").await;
        assert_eq!(
            sessions["items"],
            json!([]),
            "no refusal left a session behind"
        );
        server.stop().await;
    }
}

#[tokio::test]
async fn a_session_ends_when_the_browser_leaves_the_agent_refuses_or_drops_or_an_admin_ends_it() {
    for server in servers().await {
        let admin = server.admin().await;
        let (host, mut agent) = host_with_agent(&server, &admin, "term-1", TERMINAL).await;

        // The browser leaves: the agent is asked to hang up, and its exit ends the session.
        let (browser, channel, _) = opened(&admin, &host, &mut agent).await;
        drop(browser);
        let close = next_of(&mut agent, "close").await;
        assert_eq!(
            (close["channel"].as_u64(), close["reason"].as_str()),
            (Some(channel as u64), Some("closed"))
        );
        say(
            &mut agent,
            json!({"type": "exit", "channel": channel, "signal": 1}),
        )
        .await;
        let ended = wait_for_end(&admin, &host, 1).await;
        assert_eq!(ended[0]["end_reason"], "closed");
        assert_eq!(ended[0]["exit_code"], 129);

        // An administrator ends it.
        let (mut browser, channel, session) = opened(&admin, &host, &mut agent).await;
        let exit = end_by_admin(&admin, &mut agent, &mut browser, channel, &session).await;
        assert_eq!(exit["reason"], "ended");
        assert_eq!(closed(&mut browser).await.0, 1000);

        // The agent cannot start the shell.
        let mut browser = open(&admin, &host, "").await.unwrap();
        let open_message = next_of(&mut agent, "open").await;
        say(
            &mut agent,
            json!({"type": "open_error", "channel": open_message["channel"],
            "code": "no_such_user", "message": "no user operator"}),
        )
        .await;
        let error = next_of(&mut browser, "error").await;
        assert_eq!(error["code"], "no_such_user");
        assert_eq!(closed(&mut browser).await.0, 1011);
        let ended = wait_for_end(&admin, &host, 3).await;
        assert_eq!(ended[0]["end_reason"], "spawn_failed");

        // The agent's connection drops.
        let (mut browser, _, _) = opened(&admin, &host, &mut agent).await;
        drop(agent);
        let exit = next_of(&mut browser, "exit").await;
        assert_eq!(exit["reason"], "agent_disconnected");
        let ended = wait_for_end(&admin, &host, 4).await;
        assert_eq!(ended[0]["end_reason"], "agent_disconnected");
        server.stop().await;
    }
}

/// `admin` ends the session: the agent is asked to hang up and says the shell exited (SIGHUP);
/// what the browser is told last.
async fn end_by_admin(
    admin: &Client,
    agent: &mut Socket,
    browser: &mut Socket,
    channel: u32,
    session: &Value,
) -> Value {
    let session_id = session["session_id"].as_str().unwrap();
    let (status, body) = admin
        .post(&format!("/terminal/sessions/{session_id}/end"), json!({}))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let close = next_of(agent, "close").await;
    assert_eq!(close["channel"], channel);
    say(
        agent,
        json!({"type": "exit", "channel": channel, "signal": 1}),
    )
    .await;
    next_of(browser, "exit").await
}

/// The host's recordings once `count` have ended, newest first.
async fn wait_for_end(admin: &Client, host: &str, count: usize) -> Vec<Value> {
    let started = std::time::Instant::now();
    loop {
        let (_, recordings) = admin
            .get(&format!("/terminal/recordings?host_id={host}"))
            .await;
        let all = recordings["items"].as_array().unwrap().clone();
        if all.iter().filter(|r| !r["ended_at"].is_null()).count() >= count {
            return all;
        }
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "sessions did not end: {recordings}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn on_postgres_a_terminal_opened_on_one_instance_is_relayed_and_recorded_by_the_agents() {
    let Ok(admin_url) = std::env::var(spog_store::testing::POSTGRES_ENV) else {
        eprintln!("skipped: SPOG_TEST_DATABASE_URL is not set");
        return;
    };
    let database = std::sync::Arc::new(spog_store::testing::postgres(&admin_url).await);
    let config = || spog_server::testing::test_config(&database, crate::temp_dir());
    let holder = TestServer::start_with(database.clone(), config()).await;
    let other = TestServer::start_with(database.clone(), config()).await;
    let admin = holder.admin().await;
    let (host, mut agent) = host_with_agent(&holder, &admin, "term-1", TERMINAL).await;
    let mut elsewhere = admin.clone();
    elsewhere.base = other.base.clone();

    let (mut browser, channel, session) = opened(&elsewhere, &host, &mut agent).await;
    browser
        .send(Message::Binary(b"ls\r".to_vec().into()))
        .await
        .unwrap();
    let frame = match next(&mut agent).await {
        Received::Bytes(bytes) => bytes,
        other => panic!("expected input, got {other:?}"),
    };
    assert_eq!(Frame::decode(&frame).unwrap().data, b"ls\r");
    output(&mut agent, channel, 5_000, b"file-a  file-b\r\n").await;
    assert_eq!(browser_bytes(&mut browser, 16).await, b"file-a  file-b\r\n");

    // Ended by an administrator on the instance that does not relay it.
    let exit = end_by_admin(&elsewhere, &mut agent, &mut browser, channel, &session).await;
    assert_eq!(exit["reason"], "ended");

    let ended = wait_for_end(&admin, &host, 1).await;
    assert_eq!(ended.len(), 1, "recorded once");
    assert_eq!(ended[0]["client_addr"], "127.0.0.1");
    let id = ended[0]["id"].as_str().unwrap();
    let cast = admin
        .request(
            reqwest::Method::GET,
            &format!("/terminal/recordings/{id}/cast"),
        )
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(cast.contains("file-a  file-b"), "{cast}");
    // Ended by the other instance, sealed by the one that wrote it (SPEC 8.3).
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let (_, verified) = admin
            .get(&format!("/terminal/recordings/{id}/verify"))
            .await;
        if verified["valid"] == true {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{verified}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (_, sealed) = admin
        .get("/audit-logs?action=terminal_recording.seal")
        .await;
    assert_eq!(
        sealed["items"][0]["resource_id"], ended[0]["session_id"],
        "{sealed}"
    );

    // The internal endpoint answers only its peers.
    let internal = format!("{}/internal/v1/hosts/{host}/terminal", other.base);
    let response = reqwest::Client::new()
        .get(&internal)
        .bearer_auth(admin.token.as_deref().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    holder.stop().await;
    other.stop().await;
}

#[tokio::test]
async fn a_terminal_without_input_for_terminal_idle_timeout_ends_idle() {
    for server in crate::servers_with(|config| {
        config.terminal_idle_timeout = Duration::from_secs(1);
    })
    .await
    {
        let admin = server.admin().await;
        let (host, mut agent) = host_with_agent(&server, &admin, "term-1", TERMINAL).await;
        let (mut browser, channel, _) = opened(&admin, &host, &mut agent).await;
        // Output alone does not keep a terminal from going idle: only input does.
        output(&mut agent, channel, 1_000, b"tick\r\n").await;
        let close = next_of(&mut agent, "close").await;
        assert_eq!(close["reason"], "idle");
        say(
            &mut agent,
            json!({"type": "exit", "channel": channel, "signal": 1}),
        )
        .await;
        let exit = loop {
            match next(&mut browser).await {
                Received::Json(value) if value["type"] == "exit" => break value,
                _ => continue,
            }
        };
        assert_eq!(exit["reason"], "idle");
        let ended = wait_for_end(&admin, &host, 1).await;
        assert_eq!(ended[0]["end_reason"], "idle");
        server.stop().await;
    }
}

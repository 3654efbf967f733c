//! The web terminal in a real browser (SPEC 11.1 "§10 console", 13.1–13.2) against an agent
//! played by the test over the agent socket: "Open terminal" on the host page, keystrokes
//! typed into xterm.js arriving as input frames, output frames shown, the session listed in
//! Terminal > Sessions and watched live by another user, the ended banner, and the recording.

use std::time::{Duration, Instant};

use futures::{SinkExt, StreamExt};
use reqwest::StatusCode;
use serde_json::{Value, json};
use spog_protocol::{Frame, FrameKind};
use spog_server::testing::{ADMIN_EMAIL, ADMIN_PASSWORD, Client};
use tokio_tungstenite::tungstenite::Message;

use crate::browser::Browser;
use crate::hosts::enroll;
use crate::servers;

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

const WATCHER_EMAIL: &str = "watcher@example.com";
const WATCHER_PASSWORD: &str = "a long enough password";

/// The agent's socket with terminals allowed, past `welcome`.
async fn connect_terminal_agent(agent: &Client, hostname: &str) -> Socket {
    let capabilities = json!({"terminal": true, "shell": false, "max_sessions": 8,
        "terminal_user": "operator", "terminal_shell": "/bin/bash"});
    crate::hosts::connect_with(agent, hostname, capabilities).await
}

async fn say(socket: &mut Socket, message: Value) {
    socket
        .send(Message::Text(message.to_string().into()))
        .await
        .unwrap();
}

/// What the hub sent the agent next: a text message or a binary frame.
enum Heard {
    Text(Value),
    Binary(Vec<u8>),
}

async fn hear(socket: &mut Socket) -> Heard {
    // One deadline for the whole wait: the hub's pings, skipped below, come every 15 s.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let message = tokio::time::timeout_at(deadline, socket.next())
            .await
            .expect("a message within twenty seconds")
            .expect("an open socket")
            .expect("a message");
        match message {
            Message::Text(text) => return Heard::Text(serde_json::from_str(&text).unwrap()),
            Message::Binary(bytes) => return Heard::Binary(bytes.to_vec()),
            _ => continue,
        }
    }
}

/// The next text message of type `kind`; others (`window` acknowledgements, pings) skipped.
async fn next_text(socket: &mut Socket, kind: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        assert!(Instant::now() < deadline, "no `{kind}` within 15 s");
        if let Heard::Text(value) = hear(socket).await {
            if value["type"] == kind {
                return value;
            }
            if value["type"] == "ping" {
                say(socket, json!({"type": "pong"})).await;
            }
        }
    }
}

/// Input frames of `channel` until they spell `expected`, each acknowledged as the agent
/// does once written to the PTY.
async fn input_until(agent: &mut Socket, channel: u32, expected: &[u8]) {
    let mut typed = Vec::new();
    while typed.len() < expected.len() {
        match hear(agent).await {
            Heard::Binary(bytes) => {
                let frame = Frame::decode(&bytes).expect("a frame");
                assert_eq!((frame.channel, frame.kind), (channel, FrameKind::Input));
                typed.extend_from_slice(frame.data);
                let ack = json!({"type": "window", "channel": channel, "bytes": frame.data.len()});
                say(agent, ack).await;
            }
            Heard::Text(value) if value["type"] == "ping" => {
                say(agent, json!({"type": "pong"})).await;
            }
            // Resizes as xterm settles, acknowledgements.
            Heard::Text(_) => {}
        }
    }
    assert_eq!(
        String::from_utf8_lossy(&typed),
        String::from_utf8_lossy(expected)
    );
}

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

/// Waits until the terminal on the page shows a line that reads `line` exactly.
async fn wait_for_line(browser: &Browser, line: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let shown = browser.text(".xterm-rows").await;
        if shown.lines().any(|l| l.trim_end() == line) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the terminal never showed the line {line:?}: {shown:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_terminal_opened_from_the_host_page_is_relayed_watched_and_recorded() {
    let Some(browser) = Browser::open().await else {
        return;
    };
    let Some(watcher) = Browser::open().await else {
        return;
    };
    for server in servers().await {
        // The same browser serves each backend: the window as the harness opened it.
        browser
            .client
            .set_window_size(1280, 900)
            .await
            .expect("resizing the window");
        let admin = server.admin().await;
        let (host, agent) = enroll(&server, &admin, "term-1").await;
        let mut agent = connect_terminal_agent(&agent, "term-1").await;
        // Another user with access to the host and session_recordings.view (auditor), but
        // without terminal.connect.
        admin
            .user_with_roles(&server, WATCHER_EMAIL, &["auditor"])
            .await;
        let (_, users) = admin.get("/users").await;
        let watcher_id = users["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|u| u["email"] == WATCHER_EMAIL)
            .unwrap()["id"]
            .as_str()
            .unwrap()
            .to_owned();
        let grant = format!("/hosts/{host}/access/{watcher_id}");
        assert_eq!(
            admin.post(&grant, json!({})).await.0,
            StatusCode::NO_CONTENT
        );

        // The admin opens a terminal from the host page.
        browser
            .log_in(&server.base, ADMIN_EMAIL, ADMIN_PASSWORD)
            .await;
        browser
            .goto(&format!("{}/admin/hosts/{host}", server.base))
            .await;
        browser.click("a#open-terminal").await;
        browser
            .wait_for_path(&format!("/hosts/{host}/terminal"))
            .await;
        assert!(
            browser
                .text("#recorded-notice")
                .await
                .contains("This session is recorded")
        );
        assert!(browser.text("h1").await.contains("term-1"));

        let open = next_text(&mut agent, "open").await;
        let channel = open["channel"].as_u64().unwrap() as u32;
        let session_id = open["session_id"].as_str().unwrap().to_owned();
        // Fitted to the page (what fits depends on the window, the font and how far the
        // page's layout had got).
        assert!(
            open["cols"].as_u64().unwrap() >= 2 && open["rows"].as_u64().unwrap() >= 1,
            "{open}"
        );
        assert_eq!(open["term"], "xterm-256color");
        say(
            &mut agent,
            json!({"type": "open_ok", "channel": channel, "pid": 1}),
        )
        .await;
        browser.find("#terminal[data-state='connected']").await;
        assert_eq!(browser.text("#terminal-state").await, "connected");
        // xterm.js styles its rows through a <style> of its own: the page's policy lets it.
        let color = browser
            .client
            .execute(
                "return getComputedStyle(document.querySelector('.xterm-rows')).color;",
                vec![],
            )
            .await
            .unwrap();
        assert_eq!(color, "rgb(255, 255, 255)", "xterm's theme was not applied");

        // Typed into xterm: keystrokes reach the agent as input frames.
        browser
            .find(".xterm-helper-textarea")
            .await
            .send_keys("echo hello\n")
            .await
            .expect("typing into the terminal");
        input_until(&mut agent, channel, b"echo hello\r").await;
        output(&mut agent, channel, 20_000, b"echo hello\r\nhello\r\n$ ").await;
        wait_for_line(&browser, "hello").await;
        wait_for_line(&browser, "echo hello").await;

        // A smaller window: the terminal is fitted again and the PTY told. (The size it has
        // now is the page's latest fit, which may have followed `open` with a resize.)
        let fitted = browser
            .client
            .execute(
                "return [window.spogTerminal.cols, window.spogTerminal.rows];",
                vec![],
            )
            .await
            .expect("the terminal's size");
        let (cols, rows) = (fitted[0].as_u64().unwrap(), fitted[1].as_u64().unwrap());
        browser
            .client
            .set_window_size(640, 420)
            .await
            .expect("resizing the window");
        loop {
            let resize = next_text(&mut agent, "resize").await;
            assert_eq!(resize["channel"], channel);
            let (now_cols, now_rows) = (
                resize["cols"].as_u64().unwrap(),
                resize["rows"].as_u64().unwrap(),
            );
            if now_cols < cols && now_rows < rows {
                break;
            }
        }

        // The watcher sees the session in Terminal > Sessions and watches it live.
        watcher
            .log_in(&server.base, WATCHER_EMAIL, WATCHER_PASSWORD)
            .await;
        watcher
            .goto(&format!("{}/terminal/sessions", server.base))
            .await;
        let row = format!("tr[data-session='{session_id}']");
        assert_eq!(watcher.text(&format!("{row} td.origin")).await, "console");
        assert_eq!(watcher.text(&format!("{row} td.os-user")).await, "operator");
        assert!(
            watcher
                .text(&format!("{row} td.client-addr"))
                .await
                .contains("127.0.0.1")
        );
        assert_eq!(watcher.text(&format!("{row} a.play")).await, "Watch live");
        watcher.click(&format!("{row} a.play")).await;
        watcher.find("#live-badge").await;
        watcher.wait_for_text("#cast-player", "hello").await;

        // Without terminal.connect: no "Open terminal", and the page is refused.
        watcher
            .goto(&format!("{}/admin/hosts/{host}", server.base))
            .await;
        watcher.find("#agent-state").await;
        assert!(!watcher.is_present("#open-terminal").await);
        let (status, page) = watcher.fetch(&format!("/hosts/{host}/terminal")).await;
        assert_eq!(status, 403);
        assert!(page.contains("terminal.connect"), "{page}");

        // The shell exits: the page says so and links the recording.
        say(
            &mut agent,
            json!({"type": "exit", "channel": channel, "exit_code": 0}),
        )
        .await;
        browser
            .wait_for_text("#terminal-ended", "exited with code 0")
            .await;
        assert_eq!(browser.text("#terminal-state").await, "ended");
        let recording = browser
            .find("#terminal-recording")
            .await
            .attr("href")
            .await
            .unwrap()
            .expect("a link to the recording");
        let recording_id = recording
            .strip_prefix("/terminal/recordings/")
            .unwrap_or_else(|| panic!("{recording}"))
            .to_owned();
        assert!(browser.is_displayed("#terminal-recording").await);

        // Listed among the recordings, with where it came from and why it ended; its .cast
        // holds what the terminal showed.
        watcher
            .goto(&format!("{}/terminal/recordings", server.base))
            .await;
        let row = format!("tr[data-id='{recording_id}']");
        assert_eq!(watcher.text(&format!("{row} td.origin")).await, "console");
        watcher.wait_for_text(&row, "exited with code 0").await;
        let (status, cast) = watcher
            .fetch(&format!("/api/v1/terminal/recordings/{recording_id}/cast"))
            .await;
        assert_eq!(status, 200, "{cast}");
        assert!(cast.contains("hello\\r\\n$ "), "{cast}");

        for page in [&browser, &watcher] {
            page.client
                .delete_all_cookies()
                .await
                .expect("clearing cookies");
        }
        server.stop().await;
    }
    browser.close().await;
    watcher.close().await;
}

#[tokio::test]
async fn a_host_whose_agent_cannot_open_a_terminal_says_why() {
    let Some(browser) = Browser::open().await else {
        return;
    };
    for server in servers().await {
        let admin = server.admin().await;
        let (host, _agent) = enroll(&server, &admin, "quiet-1").await;
        browser
            .log_in(&server.base, ADMIN_EMAIL, ADMIN_PASSWORD)
            .await;
        browser
            .goto(&format!("{}/admin/hosts/{host}", server.base))
            .await;
        assert!(
            browser
                .find("#open-terminal")
                .await
                .attr("disabled")
                .await
                .unwrap()
                .is_some()
        );
        assert!(
            browser
                .text("#open-terminal-why")
                .await
                .contains("not connected")
        );
        browser
            .goto(&format!("{}/hosts/{host}/terminal", server.base))
            .await;
        assert!(
            browser
                .text("#terminal-unavailable")
                .await
                .contains("not connected")
        );
        assert!(!browser.is_present(".xterm").await);
        let (status, _) = browser
            .fetch("/hosts/0190f3a4-0000-7000-8000-000000000000/terminal")
            .await;
        assert_eq!(status, 404);
        browser
            .client
            .delete_all_cookies()
            .await
            .expect("clearing cookies");
        server.stop().await;
    }
    browser.close().await;
}

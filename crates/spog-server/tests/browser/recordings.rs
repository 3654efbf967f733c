//! Recordings in a real browser: a terminal recording made through the ingest API plays in
//! the asciinema player (which reports its duration and shows the recorded text), an active
//! session is followed live, and a desktop recording streams its frames onto the canvas.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};
use spog_server::testing::{ADMIN_EMAIL, ADMIN_PASSWORD, Client, TestServer};

use crate::browser::Browser;
use crate::servers;

struct Setup {
    gateway: Client,
    host: String,
    user: String,
}

async fn setup(server: &TestServer) -> Setup {
    let admin = server.admin().await;
    let gateway = admin
        .token_client("agent", &["session_recordings.write"])
        .await;
    let (_, organizations) = admin.get("/organizations").await;
    let (_, host) = admin
        .post(
            "/hosts",
            json!({"organization_id": organizations[0]["id"], "hostname": "web-1"}),
        )
        .await;
    let (_, me) = admin.get("/auth/me").await;
    Setup {
        gateway,
        host: host["id"].as_str().unwrap().to_owned(),
        user: me["user_id"].as_str().unwrap().to_owned(),
    }
}

async fn start_terminal(setup: &Setup) -> Value {
    let (status, session) = setup
        .gateway
        .post(
            "/terminal/sessions",
            json!({"host_id": setup.host, "user_id": setup.user, "shell": "/bin/zsh", "width": 80, "height": 24}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{session}");
    session
}

async fn events(setup: &Setup, session: &str, events: Value) {
    let (status, body) = setup
        .gateway
        .post(&format!("/terminal/sessions/{session}/events"), events)
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

/// Polls `script` (which returns a value or null) until it returns something else.
async fn eventually(browser: &Browser, script: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let value = browser
            .client
            .execute_async(script, vec![])
            .await
            .unwrap_or(Value::Null);
        if !value.is_null() {
            return value;
        }
        assert!(Instant::now() < deadline, "{script} stayed null");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn a_terminal_recording_made_through_the_api_plays_in_the_console() {
    let Some(browser) = Browser::open().await else {
        return;
    };
    for server in servers().await {
        let setup = setup(&server).await;
        let session = start_terminal(&setup).await;
        let id = session["id"].as_str().unwrap();
        let recording = session["recording_id"].as_str().unwrap();
        events(
            &setup,
            id,
            json!([
                [0.2, "o", "$ echo hello from spog\r\n"],
                [0.6, "o", "hello from spog\r\n"],
                [1.5, "o", "$ "]
            ]),
        )
        .await;
        setup
            .gateway
            .post(&format!("/terminal/sessions/{id}/end"), json!({}))
            .await;

        browser
            .log_in(&server.base, ADMIN_EMAIL, ADMIN_PASSWORD)
            .await;
        browser
            .goto(&format!("{}/terminal/recordings", server.base))
            .await;
        browser
            .wait_for_text(&format!("tr[data-id='{recording}']"), "web-1")
            .await;
        assert!(
            browser.is_present("#download-cast").await || browser.is_present("a[download]").await
        );
        browser
            .click(&format!("tr[data-id='{recording}'] a.button"))
            .await;
        browser
            .wait_for_path(&format!("/terminal/recordings/{recording}"))
            .await;
        let duration = eventually(
            &browser,
            "const done = arguments[arguments.length - 1];
             const d = window.spogPlayer && window.spogPlayer.getDuration();
             done(typeof d === 'number' ? d : null);",
        )
        .await;
        let duration = duration.as_f64().unwrap();
        assert!((duration - 1.5).abs() < 0.01, "duration {duration}");
        browser
            .wait_for_text("#cast-player", "hello from spog")
            .await;
        let (status, cast) = browser
            .fetch(&format!("/api/v1/terminal/recordings/{recording}/cast"))
            .await;
        assert_eq!(status, 200);
        assert!(cast.starts_with("{\"version\":2"), "{cast}");
        server.stop().await;
    }
    browser.close().await;
}

#[tokio::test]
async fn an_active_session_is_followed_live() {
    let Some(browser) = Browser::open().await else {
        return;
    };
    for server in servers().await {
        let setup = setup(&server).await;
        let session = start_terminal(&setup).await;
        let id = session["id"].as_str().unwrap();
        events(&setup, id, json!([[0.1, "o", "first line\r\n"]])).await;
        browser
            .log_in(&server.base, ADMIN_EMAIL, ADMIN_PASSWORD)
            .await;
        browser
            .goto(&format!("{}/terminal/sessions", server.base))
            .await;
        browser
            .wait_for_text(&format!("tr[data-session='{id}']"), "Watch live")
            .await;
        browser
            .click(&format!("tr[data-session='{id}'] a.button"))
            .await;
        browser.find("#live-badge").await;
        browser.wait_for_text("#cast-player", "first line").await;
        events(&setup, id, json!([[2.0, "o", "second line\r\n"]])).await;
        browser.wait_for_text("#cast-player", "second line").await;
        setup
            .gateway
            .post(&format!("/terminal/sessions/{id}/end"), json!({}))
            .await;
        server.stop().await;
    }
    browser.close().await;
}

#[tokio::test]
async fn a_desktop_recording_streams_its_frames_onto_the_canvas() {
    let Some(browser) = Browser::open().await else {
        return;
    };
    for server in servers().await {
        let setup = setup(&server).await;
        let id = &start_desktop(&setup).await;
        for (i, color) in [[255, 0, 0], [0, 255, 0], [0, 0, 255], [255, 255, 0]]
            .into_iter()
            .enumerate()
        {
            frame(&setup, id, i as u64 * 300, color).await;
        }
        setup
            .gateway
            .post(&format!("/desktop/recordings/{id}/end"), json!({}))
            .await;

        browser
            .log_in(&server.base, ADMIN_EMAIL, ADMIN_PASSWORD)
            .await;
        browser
            .goto(&format!("{}/desktop/recordings", server.base))
            .await;
        browser
            .wait_for_text(&format!("tr[data-id='{id}']"), "4 frames")
            .await;
        browser.click(&format!("tr[data-id='{id}'] a.button")).await;
        browser.find("#desktop-player[data-ended='true']").await;
        assert_eq!(
            browser
                .find("#desktop-player")
                .await
                .attr("data-frames-shown")
                .await
                .unwrap()
                .as_deref(),
            Some("4")
        );
        // The last frame is on the canvas: yellow.
        let pixel = browser
            .client
            .execute(
                "const c = document.getElementById('desktop-canvas');
                 return Array.from(c.getContext('2d').getImageData(10, 10, 1, 1).data);",
                vec![],
            )
            .await
            .unwrap();
        assert_eq!(pixel, json!([255, 255, 0, 255]));
        // Seek back to the second frame.
        browser
            .client
            .execute(
                "const s = document.getElementById('desktop-seek');
                 s.value = '350'; s.dispatchEvent(new Event('change'));",
                vec![],
            )
            .await
            .unwrap();
        browser.find("#desktop-player[data-frames-shown='7']").await;
        server.stop().await;
    }
    browser.close().await;
}

#[tokio::test]
async fn an_active_desktop_recording_is_followed_live_until_it_ends() {
    let Some(browser) = Browser::open().await else {
        return;
    };
    for server in servers().await {
        let setup = setup(&server).await;
        let id = start_desktop(&setup).await;
        frame(&setup, &id, 0, [255, 0, 0]).await;
        frame(&setup, &id, 200, [0, 255, 0]).await;
        let pixel = "const c = document.getElementById('desktop-canvas');
             return Array.from(c.getContext('2d').getImageData(10, 10, 1, 1).data);";

        browser
            .log_in(&server.base, ADMIN_EMAIL, ADMIN_PASSWORD)
            .await;
        browser
            .goto(&format!("{}/desktop/recordings/{id}", server.base))
            .await;
        // Live from the newest frame (green), then each new one as it is recorded.
        browser.find("#desktop-player[data-live='true']").await;
        browser.find("#desktop-player[data-frames-shown='1']").await;
        assert_eq!(
            browser.client.execute(pixel, vec![]).await.unwrap(),
            json!([0, 255, 0, 255])
        );
        frame(&setup, &id, 400, [0, 0, 255]).await;
        browser.find("#desktop-player[data-frames-shown='2']").await;
        assert_eq!(
            browser.client.execute(pixel, vec![]).await.unwrap(),
            json!([0, 0, 255, 255])
        );
        setup
            .gateway
            .post(&format!("/desktop/recordings/{id}/end"), json!({}))
            .await;
        browser.find("#desktop-player[data-ended='true']").await;
        browser
            .wait_for_text("#desktop-status", "End of recording")
            .await;
        server.stop().await;
    }
    browser.close().await;
}

/// Starts a 64×48 desktop recording: its id.
async fn start_desktop(setup: &Setup) -> String {
    let (status, recording) = setup
        .gateway
        .post(
            "/desktop/recordings",
            json!({"host_id": setup.host, "user_id": setup.user, "width": 64, "height": 48}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    recording["id"].as_str().unwrap().to_owned()
}

/// Records a frame of one colour at `elapsed` ms.
async fn frame(setup: &Setup, id: &str, elapsed: u64, color: [u8; 3]) {
    let response = setup
        .gateway
        .request(
            reqwest::Method::POST,
            &format!("/desktop/recordings/{id}/frames"),
        )
        .header("x-frame-elapsed-ms", elapsed.to_string())
        .body(png(64, 48, color))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
}

/// A PNG of one colour: stored (uncompressed) deflate, as simple as the format allows.
fn png(width: u32, height: u32, rgb: [u8; 3]) -> Vec<u8> {
    fn crc32(bytes: &[u8]) -> u32 {
        let mut crc = 0xFFFF_FFFFu32;
        for &byte in bytes {
            crc ^= u32::from(byte);
            for _ in 0..8 {
                crc = if crc & 1 == 1 {
                    (crc >> 1) ^ 0xEDB8_8320
                } else {
                    crc >> 1
                };
            }
        }
        !crc
    }
    fn chunk(out: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
        out.extend((data.len() as u32).to_be_bytes());
        let mut body = kind.to_vec();
        body.extend_from_slice(data);
        out.extend_from_slice(&body);
        out.extend(crc32(&body).to_be_bytes());
    }
    // Each row: filter type 0, then the pixels.
    let mut row = vec![0u8];
    row.extend(rgb.repeat(width as usize));
    let raw = row.repeat(height as usize);
    let mut zlib = vec![0x78, 0x01];
    let blocks: Vec<&[u8]> = raw.chunks(65_535).collect();
    for (i, block) in blocks.iter().enumerate() {
        zlib.push(u8::from(i + 1 == blocks.len()));
        let len = block.len() as u16;
        zlib.extend(len.to_le_bytes());
        zlib.extend((!len).to_le_bytes());
        zlib.extend_from_slice(block);
    }
    let (mut a, mut b) = (1u32, 0u32);
    for &byte in &raw {
        a = (a + u32::from(byte)) % 65_521;
        b = (b + a) % 65_521;
    }
    zlib.extend(((b << 16) | a).to_be_bytes());
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut header = Vec::new();
    header.extend(width.to_be_bytes());
    header.extend(height.to_be_bytes());
    header.extend([8, 2, 0, 0, 0]);
    chunk(&mut out, b"IHDR", &header);
    chunk(&mut out, b"IDAT", &zlib);
    chunk(&mut out, b"IEND", &[]);
    out
}

#[tokio::test]
async fn a_recording_is_held_released_and_deleted_from_its_player() {
    let Some(browser) = Browser::open().await else {
        return;
    };
    for server in servers().await {
        let setup = setup(&server).await;
        let session = start_terminal(&setup).await;
        let id = session["id"].as_str().unwrap();
        let recording = session["recording_id"].as_str().unwrap();
        events(&setup, id, json!([[0.2, "o", "$ ls\r\n"]])).await;
        setup
            .gateway
            .post(&format!("/terminal/sessions/{id}/end"), json!({}))
            .await;
        browser
            .log_in(&server.base, ADMIN_EMAIL, ADMIN_PASSWORD)
            .await;
        let player = format!("/terminal/recordings/{recording}");
        browser.goto(&format!("{}{player}", server.base)).await;

        // Sealed when it ended: Verify checks it against the end's audit entry.
        browser.click("button[data-verify]").await;
        browser.wait_for_text("#verify-result", "Intact").await;
        let (_, listed) = browser.fetch("/api/v1/terminal/recordings").await;
        let listed: serde_json::Value = serde_json::from_str(&listed).unwrap();
        let object = listed["items"][0]["file_path"].as_str().unwrap().to_owned();
        std::fs::write(&object, zstd::encode_all(&b"forged"[..], 3).unwrap()).unwrap();
        browser.click("button[data-verify]").await;
        browser
            .wait_for_text("#verify-result", "Not intact: its content changed")
            .await;

        // A hold needs a reason: the API's refusal shows by the field.
        browser.click("#legal-hold button[type=submit]").await;
        browser
            .wait_for_text("[data-error-for=reason]", "required")
            .await;
        browser.fill("#legal-hold-reason", "case 42").await;
        browser.click("#legal-hold button[type=submit]").await;
        browser.wait_for_text("#legal-hold-notice", "case 42").await;
        assert!(!browser.is_present("#delete-recording").await);

        browser
            .click("#legal-hold-release button[type=submit]")
            .await;
        browser.confirm().await;
        browser.wait_until_hidden("#legal-hold-notice").await;
        browser.click("#delete-recording button[type=submit]").await;
        browser.confirm().await;
        browser.wait_for_path("/terminal/recordings").await;
        let (status, _) = browser.fetch(&format!("/api/v1{player}")).await;
        assert_eq!(status, 404);

        // Settings > Recordings sets the account's retention.
        browser
            .goto(&format!("{}/settings/recordings", server.base))
            .await;
        browser.wait_for_text("#default-retention", "forever").await;
        browser.fill("#retention-days", "30").await;
        browser
            .click("#recording-retention button[type=submit]")
            .await;
        browser.wait_for_text("#current-retention", "30 days").await;
        server.stop().await;
    }
    browser.close().await;
}

#[tokio::test]
async fn a_search_lists_matches_and_a_match_opens_the_player_at_its_time() {
    let Some(browser) = Browser::open().await else {
        return;
    };
    for server in servers().await {
        let setup = setup(&server).await;
        let session = start_terminal(&setup).await;
        let id = session["id"].as_str().unwrap();
        let recording = session["recording_id"].as_str().unwrap();
        events(
            &setup,
            id,
            json!([
                [0.2, "o", "$ "],
                [12.0, "i", "cat /etc/secret-"],
                [12.1, "i", "file\r"],
                [12.5, "o", "\u{1b}[1mtop secret\u{1b}[0m\r\n$ "],
                [40.0, "o", "exit\r\n"]
            ]),
        )
        .await;
        setup
            .gateway
            .post(&format!("/terminal/sessions/{id}/end"), json!({}))
            .await;

        browser
            .log_in(&server.base, ADMIN_EMAIL, ADMIN_PASSWORD)
            .await;
        browser
            .goto(&format!("{}/terminal/recordings", server.base))
            .await;
        browser
            .wait_for_text(&format!("tr[data-id='{recording}'] .session-id"), id)
            .await;
        browser.wait_for_text("#filter-user", ADMIN_EMAIL).await;
        browser.fill("#filter-q", "SECRET-FILE").await;
        browser.click("#recording-filter-submit").await;
        let link = format!("tr[data-matches-of='{recording}'] a.match");
        let shown = browser.wait_for_text(&link, "cat /etc/secret-file").await;
        assert!(shown.contains("0:12"), "{shown}");
        browser.click(&link).await;
        browser
            .wait_for_path(&format!(
                "/terminal/recordings/{recording}?q=SECRET-FILE&t=12.000"
            ))
            .await;
        let at = eventually(
            &browser,
            "const done = arguments[arguments.length - 1];
             const p = window.spogPlayer;
             Promise.all([p.getCurrentTime(), p.getDuration()])
               .then(([t, d]) => done(typeof d === 'number' && t > 0 ? t : null))
               .catch(() => done(null));",
        )
        .await;
        let at = at.as_f64().unwrap();
        assert!((12.0..20.0).contains(&at), "the player is at {at} s");
        browser.wait_for_text("#cast-player", "top secret").await;
        server.stop().await;
    }
    browser.close().await;
}

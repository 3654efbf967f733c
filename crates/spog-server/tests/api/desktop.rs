//! Desktop recordings (SPEC 8.2): frames by HTTP and WebSocket, listing, and playback at the
//! recorded pace with speed, start offset and seek.

use std::time::{Duration, Instant};

use futures::{SinkExt, StreamExt};
use reqwest::StatusCode;
use serde_json::{Value, json};
use spog_server::testing::Client;
use tokio_tungstenite::tungstenite::Message;

use crate::servers;
use crate::terminal::{Socket, next_json, setup, socket};

/// A body that starts like a JPEG, marked with `n`.
pub fn jpeg(n: u8, len: usize) -> Vec<u8> {
    let mut bytes = vec![0xFF, 0xD8, 0xFF, 0xE0];
    bytes.resize(len, n);
    bytes
}

pub async fn frame(client: &Client, id: &str, elapsed: &str, body: Vec<u8>) -> (StatusCode, Value) {
    let response = client
        .request(
            reqwest::Method::POST,
            &format!("/desktop/recordings/{id}/frames"),
        )
        .header("x-frame-elapsed-ms", elapsed)
        .header("content-type", "image/jpeg")
        .body(body)
        .send()
        .await
        .unwrap();
    let status = response.status();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// The next binary frame: its elapsed ms and image.
/// Starts a 640×480 desktop recording of `setup`'s host and user: its id.
pub async fn start_desktop(setup: &crate::terminal::Setup) -> String {
    let (status, recording) = setup
        .gateway
        .post(
            "/desktop/recordings",
            json!({"host_id": setup.host, "user_id": setup.user, "width": 640, "height": 480}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{recording}");
    recording["id"].as_str().unwrap().to_owned()
}

pub async fn next_frame(socket: &mut Socket) -> (u64, Vec<u8>) {
    loop {
        let message = tokio::time::timeout(Duration::from_secs(5), socket.next())
            .await
            .expect("a frame within five seconds")
            .unwrap()
            .unwrap();
        if let Message::Binary(bytes) = message {
            let elapsed = u64::from_be_bytes(bytes[..8].try_into().unwrap());
            return (elapsed, bytes[8..].to_vec());
        }
        if let Message::Text(text) = &message {
            panic!("expected a frame, got {text}");
        }
    }
}

#[tokio::test]
async fn desktop_frames_are_recorded_listed_and_played_back_at_their_pace() {
    for server in servers().await {
        let setup = setup(&server).await;
        let (status, recording) = setup
            .gateway
            .post(
                "/desktop/recordings",
                json!({"host_id": setup.host, "user_id": setup.user, "width": 1280, "height": 720}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{recording}");
        let id = recording["id"].as_str().unwrap();
        for (i, elapsed) in [0u64, 200, 400, 600].into_iter().enumerate() {
            let (status, body) = frame(
                &setup.gateway,
                id,
                &elapsed.to_string(),
                jpeg(i as u8, 5000),
            )
            .await;
            assert_eq!(status, StatusCode::OK, "{body}");
            assert_eq!(body["frame_count"], i + 1);
        }
        let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
        png.resize(300, 7);
        assert_eq!(
            frame(&setup.gateway, id, "800", png).await.0,
            StatusCode::OK
        );

        // Bad frames are refused; the recording is untouched.
        for (elapsed, body, field) in [
            ("900", b"GIF89a....".to_vec(), "body"),
            ("100", jpeg(9, 100), "X-Frame-Elapsed-Ms"),
            ("soon", jpeg(9, 100), "X-Frame-Elapsed-Ms"),
        ] {
            let (status, response) = frame(&setup.gateway, id, elapsed, body).await;
            assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{response}");
            assert!(
                response["error"]["details"]["fields"][field].is_string(),
                "{response}"
            );
        }

        // Frames over a WebSocket; a connection dropping mid-frame loses only that frame.
        let mut source = socket(
            &setup.gateway,
            &format!("/desktop/recordings/{id}/frames/stream"),
        )
        .await;
        let mut message = 1000u64.to_be_bytes().to_vec();
        message.extend(jpeg(5, 4000));
        source.send(Message::binary(message)).await.unwrap();
        source.flush().await.unwrap();
        let tokio_tungstenite::MaybeTlsStream::Plain(tcp) = source.get_mut() else {
            unreachable!("plain TCP");
        };
        // A binary frame header announcing 4008 bytes, and only some of them.
        use tokio::io::AsyncWriteExt;
        let mut partial = vec![0x82, 0xFE, 0x0F, 0xA8, 1, 2, 3, 4];
        partial.extend(vec![0u8; 100]);
        tcp.write_all(&partial).await.unwrap();
        drop(source);
        tokio::time::sleep(Duration::from_millis(300)).await;

        let (status, ended) = setup
            .gateway
            .post(&format!("/desktop/recordings/{id}/end"), json!({}))
            .await;
        assert_eq!(status, StatusCode::OK, "{ended}");
        assert_eq!(ended["frame_count"], 6);
        assert_eq!(ended["total_bytes"], 4 * 5000 + 300 + 4000);
        assert_eq!(ended["duration_seconds"], 1.0);
        assert!(std::path::Path::new(ended["file_path"].as_str().unwrap()).is_file());
        assert_eq!(
            frame(&setup.gateway, id, "2000", jpeg(1, 100)).await.0,
            StatusCode::CONFLICT
        );
        let (_, list) = setup.admin.get("/desktop/recordings").await;
        assert_eq!(list["items"][0]["id"], id);
        assert_eq!(list["items"][0]["frame_count"], 6);
        assert_eq!(list["items"][0]["hostname"], "web-1");

        // Playback paces frames at their recorded times.
        let mut player = socket(&setup.admin, &format!("/desktop/recordings/{id}/stream")).await;
        let meta = next_json(&mut player).await;
        assert_eq!(meta["type"], "meta");
        assert_eq!(meta["frame_count"], 6);
        assert_eq!(meta["duration_ms"], 1000);
        let started = Instant::now();
        let mut times = Vec::new();
        for expected in [0u64, 200, 400, 600, 800, 1000] {
            let (elapsed, image) = next_frame(&mut player).await;
            assert_eq!(elapsed, expected);
            times.push((started.elapsed().as_millis() as i64, expected as i64));
            if expected == 800 {
                assert!(image.starts_with(b"\x89PNG"));
            }
        }
        for (at, expected) in &times {
            assert!(
                (at - expected).abs() < 150,
                "frame due at {expected} ms came at {at} ms"
            );
        }
        assert_eq!(next_json(&mut player).await["type"], "end");

        // Seek back: the frame showing at 450 ms comes at once, then the rest at pace.
        player
            .send(Message::text(
                json!({"type": "seek", "ms": 450}).to_string(),
            ))
            .await
            .unwrap();
        assert_eq!(next_frame(&mut player).await.0, 400);
        assert_eq!(next_frame(&mut player).await.0, 600);

        // Double speed from an offset.
        let mut fast = socket(
            &setup.admin,
            &format!("/desktop/recordings/{id}/stream?speed=2&start_ms=500"),
        )
        .await;
        next_json(&mut fast).await;
        let started = Instant::now();
        assert_eq!(next_frame(&mut fast).await.0, 400);
        assert_eq!(next_frame(&mut fast).await.0, 600);
        assert_eq!(next_frame(&mut fast).await.0, 800);
        let took = started.elapsed().as_millis();
        assert!(
            (100..300).contains(&took),
            "300 ms of recording at 2x took {took} ms"
        );

        // With an idle limit, the 200 ms gaps take 50 ms each.
        let mut skipping = socket(
            &setup.admin,
            &format!("/desktop/recordings/{id}/stream?idle_ms=50"),
        )
        .await;
        assert_eq!(next_json(&mut skipping).await["idle_ms"], 50);
        let started = Instant::now();
        for expected in [0u64, 200, 400, 600, 800, 1000] {
            assert_eq!(next_frame(&mut skipping).await.0, expected);
        }
        let took = started.elapsed().as_millis();
        assert!(
            (200..450).contains(&took),
            "5 gaps cut to 50 ms took {took} ms"
        );

        let url = setup
            .admin
            .url(&format!("/desktop/recordings/{id}/stream?speed=0"))
            .replace("http://", "ws://");
        let mut request =
            tokio_tungstenite::tungstenite::client::IntoClientRequest::into_client_request(url)
                .unwrap();
        let bearer = format!("Bearer {}", setup.admin.token.as_deref().unwrap());
        request
            .headers_mut()
            .insert("authorization", bearer.parse().unwrap());
        match tokio_tungstenite::connect_async(request).await {
            Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
                assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
            }
            other => panic!("a bad speed must be refused, got {:?}", other.map(|_| ())),
        }
        server.stop().await;
    }
}

#[tokio::test]
async fn desktop_recordings_follow_host_access() {
    for server in servers().await {
        let setup = setup(&server).await;
        let (_, recording) = setup
            .gateway
            .post(
                "/desktop/recordings",
                json!({"host_id": setup.host, "user_id": setup.user, "width": 800, "height": 600}),
            )
            .await;
        let id = recording["id"].as_str().unwrap();
        let auditor = setup
            .admin
            .user_with_roles(&server, "auditor@example.com", &["auditor"])
            .await;
        let (_, list) = auditor.get("/desktop/recordings").await;
        assert_eq!(list["items"], json!([]));
        assert_eq!(
            auditor.get(&format!("/desktop/recordings/{id}")).await.0,
            StatusCode::NOT_FOUND
        );
        let (_, me) = auditor.get("/auth/me").await;
        setup
            .admin
            .post(
                &format!(
                    "/hosts/{}/access/{}",
                    setup.host,
                    me["user_id"].as_str().unwrap()
                ),
                json!({}),
            )
            .await;
        let (_, list) = auditor.get("/desktop/recordings").await;
        assert_eq!(list["items"][0]["id"], id);

        // A source that goes quiet is ended by the scheduler.
        let later = spog_core::Timestamp::now().plus(Duration::from_secs(3600));
        let ended = spog_server::workers::recordings::idle_once(&server.state, later)
            .await
            .unwrap();
        assert_eq!(ended, 1);
        let (_, recording) = auditor.get(&format!("/desktop/recordings/{id}")).await;
        assert_eq!(recording["end_reason"], "idle");
        // Nothing more goes into it.
        let (status, _) = frame(&setup.gateway, id, "5", jpeg(1, 100)).await;
        assert_eq!(status, StatusCode::CONFLICT);
        server.stop().await;
    }
}

#[tokio::test]
async fn an_active_desktop_recording_plays_live_until_it_ends() {
    for server in servers().await {
        let setup = setup(&server).await;
        let id = &start_desktop(&setup).await;
        for (n, elapsed) in [(0u8, "0"), (1, "100")] {
            let (status, _) = frame(&setup.gateway, id, elapsed, jpeg(n, 1000)).await;
            assert_eq!(status, StatusCode::OK);
        }
        // From the newest frame on, as it is being recorded.
        let mut player = socket(
            &setup.admin,
            &format!("/desktop/recordings/{id}/stream?live=true"),
        )
        .await;
        let meta = next_json(&mut player).await;
        assert_eq!(meta["active"], true, "{meta}");
        assert_eq!(meta["start_ms"], 100);
        assert_eq!(next_frame(&mut player).await, (100, jpeg(1, 1000)));
        let (status, _) = frame(&setup.gateway, id, "300", jpeg(2, 1000)).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(next_frame(&mut player).await, (300, jpeg(2, 1000)));
        let (status, _) = setup
            .gateway
            .post(&format!("/desktop/recordings/{id}/end"), json!({}))
            .await;
        assert_eq!(status, StatusCode::OK);
        let end = tokio::time::timeout(Duration::from_secs(5), next_json(&mut player))
            .await
            .expect("the end within five seconds");
        assert_eq!(end["type"], "end", "{end}");
        server.stop().await;
    }
}

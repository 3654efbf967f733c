//! Reads of an active recording through an instance that does not write it (SPEC 8.3, 13.4):
//! the download, the events, the live watch and the live desktop stream are relayed from the
//! instance recording it, and followers get every byte up to the end, the last from the
//! sealed object. Two instances of one PostgreSQL sharing an S3-compatible bucket (moto).

use std::time::Duration;

use futures::StreamExt;
use reqwest::StatusCode;
use serde_json::{Value, json};
use spog_server::testing::s3::S3Server;
use tokio_tungstenite::tungstenite::Message;

use crate::desktop::{frame, jpeg, next_frame};
use crate::recording_storage::two_instances;
use crate::terminal::{Socket, download, next_json, setup, socket, start};

fn output(text: &str, at: f64) -> Value {
    json!([[at, "o", format!("{text}\r\n")]])
}

/// Text messages of `watcher` until one contains `wanted`.
async fn watch_until(watcher: &mut Socket, wanted: &str) -> String {
    let mut seen = String::new();
    while !seen.contains(wanted) {
        let message = tokio::time::timeout(Duration::from_secs(10), watcher.next())
            .await
            .unwrap_or_else(|_| panic!("{wanted:?} within ten seconds; saw {seen}"));
        match message {
            Some(Ok(Message::Text(text))) => seen.push_str(&text),
            Some(Ok(_)) => {}
            _ => panic!("closed before {wanted:?}; saw {seen}"),
        }
    }
    seen
}

#[tokio::test]
async fn an_active_session_is_downloaded_and_watched_through_another_instance() {
    let Some(s3) = S3Server::start().await else {
        return;
    };
    let Some((first, second)) = two_instances(&s3, "relayed", |_| {}).await else {
        return;
    };
    let setup = setup(&first).await;
    let session = start(&setup, &setup.host).await;
    let (id, recording) = (
        session["id"].as_str().unwrap(),
        session["recording_id"].as_str().unwrap(),
    );
    let events = format!("/terminal/sessions/{id}/events");
    let (status, _) = setup
        .gateway
        .post(&events, output("before anyone watched", 0.1))
        .await;
    assert_eq!(status, StatusCode::OK);

    let elsewhere = second.admin().await;
    let (status, _, cast) = download(&elsewhere, recording).await;
    assert_eq!(status, StatusCode::OK);
    assert!(cast.starts_with("{\"version\":2"), "{cast}");
    assert!(cast.contains("before anyone watched"), "{cast}");
    let (status, played) = elsewhere
        .get(&format!("/terminal/recordings/{recording}"))
        .await;
    assert_eq!(status, StatusCode::OK, "{played}");
    assert_eq!(played["events"][0][2], "before anyone watched\r\n");

    // The instance-to-instance endpoint answers cluster tokens only, not a caller's own.
    let (_, me) = setup.admin.get("/auth/me").await;
    let internal = format!(
        "{}/internal/v1/accounts/{}/terminal/recordings/{recording}/spool",
        first.base,
        me["account_id"].as_str().unwrap()
    );
    let refused = reqwest::Client::new()
        .get(&internal)
        .bearer_auth(setup.admin.token.as_deref().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);

    let mut watcher = socket(&elsewhere, &format!("/terminal/sessions/{id}/watch")).await;
    watch_until(&mut watcher, "before anyone watched").await;
    let (status, _) = setup
        .gateway
        .post(&events, output("while watched", 0.2))
        .await;
    assert_eq!(status, StatusCode::OK);
    watch_until(&mut watcher, "while watched").await;
    // The last output and the end at once: the watcher elsewhere still gets it, then closes.
    let (status, _) = setup
        .gateway
        .post(&events, output("the last line", 0.3))
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, ended) = setup
        .gateway
        .post(&format!("/terminal/sessions/{id}/end"), json!({}))
        .await;
    assert_eq!(status, StatusCode::OK, "{ended}");
    watch_until(&mut watcher, "the last line").await;
    let close = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match watcher.next().await {
                Some(Ok(Message::Close(frame))) => return frame.map(|f| u16::from(f.code)),
                Some(Ok(_)) => continue,
                _ => return None,
            }
        }
    })
    .await
    .expect("closed within ten seconds");
    assert_eq!(close, Some(1000));
    first.stop().await;
    second.stop().await;
}

#[tokio::test]
async fn an_active_desktop_recording_plays_live_through_another_instance() {
    let Some(s3) = S3Server::start().await else {
        return;
    };
    let Some((first, second)) = two_instances(&s3, "relayed-desktop", |_| {}).await else {
        return;
    };
    let setup = setup(&first).await;
    let (_, recording) = setup
        .gateway
        .post(
            "/desktop/recordings",
            json!({"host_id": setup.host, "user_id": setup.user, "width": 640, "height": 480}),
        )
        .await;
    let id = recording["id"].as_str().unwrap();
    for (n, elapsed) in [(0u8, "0"), (1, "100")] {
        let (status, _) = frame(&setup.gateway, id, elapsed, jpeg(n, 1000)).await;
        assert_eq!(status, StatusCode::OK);
    }
    let elsewhere = second.admin().await;
    let mut player = socket(
        &elsewhere,
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
    // A frame and the end at once: the player elsewhere shows it, then says the end.
    let (status, _) = frame(&setup.gateway, id, "400", jpeg(3, 1000)).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = setup
        .gateway
        .post(&format!("/desktop/recordings/{id}/end"), json!({}))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(next_frame(&mut player).await, (400, jpeg(3, 1000)));
    let end = next_json(&mut player).await;
    assert_eq!(end["type"], "end", "{end}");
    first.stop().await;
    second.stop().await;
}

//! Reads of an active recording through an instance that does not write it (SPEC 8.3, 13.4):
//! the download, the events, the live watch and the live desktop stream are relayed from the
//! instance recording it, and followers get every byte up to the end, the last from the
//! sealed object. Two instances of one PostgreSQL sharing an S3-compatible bucket (moto).

use std::time::Duration;

use futures::{SinkExt, StreamExt};
use reqwest::StatusCode;
use serde_json::{Value, json};
use spog_server::testing::s3::S3Server;
use tokio_tungstenite::tungstenite::Message;

use crate::desktop::{frame, jpeg, next_frame, start_desktop};
use crate::recording_storage::{BUCKET, two_instances};
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
    let id = &start_desktop(&setup).await;
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

#[tokio::test]
async fn appends_that_reach_another_instance_are_recorded_by_the_one_writing() {
    let Some(s3) = S3Server::start().await else {
        return;
    };
    let Some((first, second)) = two_instances(&s3, "forwarded", |_| {}).await else {
        return;
    };
    let setup = setup(&first).await;
    // The gateway's token, sent to the other instance (as a load balancer would).
    let gateway_elsewhere = setup
        .gateway
        .with_token(setup.gateway.token.as_deref().unwrap());
    let gateway_elsewhere = spog_server::testing::Client {
        base: second.admin().await.base,
        ..gateway_elsewhere
    };
    let session = start(&setup, &setup.host).await;
    let id = session["id"].as_str().unwrap();
    let events = format!("/terminal/sessions/{id}/events");
    let (status, _) = setup.gateway.post(&events, output("one: here", 0.1)).await;
    assert_eq!(status, StatusCode::OK);
    let (status, appended) = gateway_elsewhere
        .post(&events, output("two: over there", 0.2))
        .await;
    assert_eq!(status, StatusCode::OK, "{appended}");
    // Out of order elsewhere: refused there as here, naming the field.
    let (status, refused) = gateway_elsewhere
        .post(&events, output("too early", 0.05))
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{refused}");
    let mut source = socket(
        &gateway_elsewhere,
        &format!("/terminal/sessions/{id}/stream"),
    )
    .await;
    source
        .send(Message::text(r#"[0.3, "o", "three: streamed there\r\n"]"#))
        .await
        .unwrap();
    source.close(None).await.unwrap();
    // The stream's event is recorded once the splice has passed it on.
    let mut recorded = String::new();
    for _ in 0..50 {
        let (_, _, cast) = download(&setup.admin, session["recording_id"].as_str().unwrap()).await;
        recorded = cast;
        if recorded.contains("three") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (status, ended) = gateway_elsewhere
        .post(&format!("/terminal/sessions/{id}/end"), json!({}))
        .await;
    assert_eq!(status, StatusCode::OK, "{ended}");
    let lines: Vec<&str> = recorded.lines().skip(1).collect();
    assert_eq!(lines.len(), 3, "{recorded}");
    assert!(lines[0].contains("one: here") && lines[1].contains("two: over there"));
    assert!(lines[2].contains("three: streamed there"), "{recorded}");

    // A desktop frame sent to the other instance goes into the recording.
    let desktop = &start_desktop(&setup).await;
    let (status, _) = frame(&setup.gateway, desktop, "0", jpeg(0, 1000)).await;
    assert_eq!(status, StatusCode::OK);
    let (status, accepted) = frame(&gateway_elsewhere, desktop, "100", jpeg(1, 1000)).await;
    assert_eq!(status, StatusCode::OK, "{accepted}");
    assert_eq!(accepted["frame_count"], 2);
    first.stop().await;
    second.stop().await;
}

#[tokio::test]
async fn a_session_whose_writer_died_goes_on_where_its_next_events_arrive() {
    let Some(s3) = S3Server::start().await else {
        return;
    };
    let prefix = format!("taken-over-{}", uuid::Uuid::now_v7());
    let Some((first, second)) = two_instances(&s3, &prefix, |config| {
        config.recording_upload_interval = Duration::from_secs(1);
    })
    .await
    else {
        return;
    };
    let setup = setup(&first).await;
    let gateway_elsewhere = spog_server::testing::Client {
        base: second.admin().await.base,
        ..setup.gateway.clone()
    };
    let session = start(&setup, &setup.host).await;
    let id = session["id"].as_str().unwrap();
    let events = format!("/terminal/sessions/{id}/events");
    let (status, _) = setup
        .gateway
        .post(&events, output("uploaded before the crash", 0.1))
        .await;
    assert_eq!(status, StatusCode::OK);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !s3
        .keys(BUCKET, &format!("{prefix}/"))
        .await
        .iter()
        .any(|k| k.contains(".parts/"))
    {
        assert!(tokio::time::Instant::now() < deadline, "no part uploaded");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Its writer dies while still registered: the next events, sent to the other instance,
    // are written there after what was uploaded, in time order as before.
    first.kill();
    let (status, refused) = gateway_elsewhere
        .post(&events, output("too early", 0.05))
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{refused}");
    let (status, appended) = gateway_elsewhere
        .post(&events, output("after the crash", 0.2))
        .await;
    assert_eq!(status, StatusCode::OK, "{appended}");
    let (status, ended) = gateway_elsewhere
        .post(&format!("/terminal/sessions/{id}/end"), json!({}))
        .await;
    assert_eq!(status, StatusCode::OK, "{ended}");
    let elsewhere = second.admin().await;
    let (_, _, cast) = download(&elsewhere, session["recording_id"].as_str().unwrap()).await;
    let lines: Vec<&str> = cast.lines().skip(1).collect();
    assert_eq!(lines.len(), 2, "{cast}");
    assert!(lines[0].contains("uploaded before the crash"), "{cast}");
    assert!(lines[1].contains("after the crash"), "{cast}");
    second.stop().await;
}

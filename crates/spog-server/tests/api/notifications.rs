use std::time::Duration;

use futures::{SinkExt, StreamExt};
use reqwest::StatusCode;
use serde_json::{Value, json};
use spog_server::testing::{Client, TestServer};
use tokio_tungstenite::tungstenite::Message;

use crate::servers;

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn socket(client: &Client) -> Socket {
    let url = format!(
        "{}/ws?token={}",
        client.url("").replace("http://", "ws://"),
        client.token.as_deref().unwrap()
    );
    tokio_tungstenite::connect_async(url)
        .await
        .expect("connecting the WebSocket")
        .0
}

/// The next JSON message other than a ping, within a second.
async fn next(socket: &mut Socket) -> Value {
    loop {
        let message = tokio::time::timeout(Duration::from_secs(1), socket.next())
            .await
            .expect("a message within a second")
            .expect("an open socket")
            .expect("a frame");
        if let Message::Text(text) = message {
            let value: Value = serde_json::from_str(&text).unwrap();
            if value["type"] != "ping" {
                return value;
            }
        }
    }
}

fn note(target: Value, title: &str) -> Value {
    let mut body = json!({"category": "job", "severity": "high", "title": title, "message": "it failed", "link": "/jobs/1"});
    body.as_object_mut()
        .unwrap()
        .extend(target.as_object().unwrap().clone());
    body
}

async fn unread(client: &Client) -> i64 {
    client.get("/notifications/unread-count").await.1["count"]
        .as_i64()
        .unwrap()
}

#[tokio::test]
async fn a_notification_reaches_only_its_user_whichever_identity_names_them() {
    for server in servers().await {
        let admin = server.admin().await;
        let (_, created) = admin
            .post("/users", json!({"email": "ann@example.com", "password": "a long enough password", "roles": ["viewer"],
                "identities": [{"provider": "okta", "subject": "00u-ann"}]}))
            .await;
        let ann = server
            .login("ann@example.com", "a long enough password")
            .await;
        let bob = admin
            .user_with_roles(&server, "bob@example.com", &["viewer"])
            .await;
        let ann_id = created["id"].as_str().unwrap();
        for (target, title) in [
            (json!({"user_id": ann_id}), "by id"),
            (json!({"user_email": "ANN@example.com"}), "by email"),
            (
                json!({"identity": {"provider": "okta", "subject": "00u-ann"}}),
                "by identity",
            ),
        ] {
            let (status, body) = admin.post("/notifications", note(target, title)).await;
            assert_eq!(status, StatusCode::CREATED, "{body}");
        }
        let (_, mine) = ann.get("/notifications").await;
        assert_eq!(mine["items"].as_array().unwrap().len(), 3);
        assert_eq!(unread(&ann).await, 3);
        assert_eq!(unread(&bob).await, 0);
        let id = mine["items"][0]["id"].as_str().unwrap();
        assert_eq!(
            bob.post(&format!("/notifications/{id}/read"), json!({}))
                .await
                .0,
            StatusCode::NOT_FOUND
        );
        let (status, body) = admin
            .post(
                "/notifications",
                note(json!({"user_email": "nobody@example.com"}), "x"),
            )
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
        assert!(
            body["error"]["details"]["fields"]["user_email"].is_string(),
            "{body}"
        );
        let (status, _) = admin
            .post(
                "/notifications",
                note(json!({"broadcast": true, "user_id": ann_id}), "two"),
            )
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
        let (status, body) = admin
            .post(
                "/notifications",
                note(json!({"broadcast": true}), "x")
                    .as_object()
                    .map(|o| {
                        let mut o = o.clone();
                        o.insert("severity".into(), json!("apocalyptic"));
                        Value::Object(o)
                    })
                    .unwrap(),
            )
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
        assert!(
            body["error"]["details"]["fields"]["severity"].is_string(),
            "{body}"
        );
        let viewer_cannot_send = bob
            .post("/notifications", note(json!({"broadcast": true}), "x"))
            .await;
        assert_eq!(viewer_cannot_send.0, StatusCode::FORBIDDEN);
        server.stop().await;
    }
}

#[tokio::test]
async fn broadcasts_are_read_per_user() {
    for server in servers().await {
        let admin = server.admin().await;
        let ann = admin
            .user_with_roles(&server, "ann@example.com", &["viewer"])
            .await;
        let bob = admin
            .user_with_roles(&server, "bob@example.com", &["viewer"])
            .await;
        admin
            .post(
                "/notifications",
                note(json!({"broadcast": true}), "maintenance"),
            )
            .await;
        admin
            .post(
                "/notifications",
                note(json!({"broadcast": true}), "upgrade"),
            )
            .await;
        let (status, body) = ann.post("/notifications/read-all", json!({})).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body["count"], 0);
        assert_eq!(unread(&bob).await, 2);
        let (_, unread_list) = bob.get("/notifications?read=false&category=job").await;
        assert_eq!(unread_list["items"].as_array().unwrap().len(), 2);
        let (_, read_list) = ann.get("/notifications?read=true").await;
        assert_eq!(read_list["items"][0]["read"], true);
        assert_eq!(
            bob.get("/notifications?category=weather").await.0,
            StatusCode::UNPROCESSABLE_ENTITY
        );
        server.stop().await;
    }
}

#[tokio::test]
async fn open_tabs_get_notifications_and_reads_from_other_tabs_live() {
    for server in servers().await {
        let admin = server.admin().await;
        let ann = admin
            .user_with_roles(&server, "ann@example.com", &["viewer"])
            .await;
        let mut first_tab = socket(&ann).await;
        let mut second_tab = socket(&ann).await;
        assert_eq!(
            next(&mut first_tab).await,
            json!({"type": "unread_count", "count": 0})
        );
        assert_eq!(
            next(&mut second_tab).await,
            json!({"type": "unread_count", "count": 0})
        );
        admin
            .post(
                "/notifications",
                note(json!({"user_email": "ann@example.com"}), "disk full"),
            )
            .await;
        let pushed = next(&mut first_tab).await;
        assert_eq!(pushed["type"], "notification");
        assert_eq!(pushed["notification"]["title"], "disk full");
        assert_eq!(pushed["unread_count"], 1);
        assert_eq!(next(&mut second_tab).await["unread_count"], 1);
        ann.post("/notifications/read-all", json!({})).await;
        assert_eq!(
            next(&mut first_tab).await,
            json!({"type": "unread_count", "count": 0})
        );
        assert_eq!(
            next(&mut second_tab).await,
            json!({"type": "unread_count", "count": 0})
        );
        first_tab
            .send(Message::Text(r#"{"type":"pong"}"#.into()))
            .await
            .unwrap();
        server.stop().await;
    }
}

#[tokio::test]
async fn a_socket_with_a_bad_token_is_closed_as_a_policy_violation() {
    for server in servers().await {
        let bad = server.anonymous().with_token("not-a-token");
        let mut socket = socket(&bad).await;
        let frame = tokio::time::timeout(Duration::from_secs(2), socket.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        match frame {
            Message::Close(Some(close)) => assert_eq!(u16::from(close.code), 1008),
            other => panic!("expected a close frame, got {other:?}"),
        }
        server.stop().await;
    }
}

#[tokio::test]
async fn stopping_the_server_closes_its_sockets_as_going_away() {
    for server in servers().await {
        let admin = server.admin().await;
        let mut socket = socket(&admin).await;
        assert_eq!(next(&mut socket).await["type"], "unread_count");
        server.stop().await;
        // Browsers reconnect at once, to another instance or to this one restarted.
        // Pushes already queued (the dashboard hearing of the login) may come first.
        let closing = async {
            loop {
                match socket.next().await {
                    Some(Ok(Message::Text(_))) => continue,
                    other => return other,
                }
            }
        };
        let frame = tokio::time::timeout(Duration::from_secs(2), closing)
            .await
            .expect("closed when the server stops");
        match frame {
            Some(Ok(Message::Close(Some(close)))) => assert_eq!(u16::from(close.code), 1001),
            other => panic!("expected a close frame, got {other:?}"),
        }
    }
}

#[tokio::test]
async fn a_notification_made_on_one_instance_reaches_sockets_on_another() {
    let Ok(url) = std::env::var(spog_store::testing::POSTGRES_ENV) else {
        eprintln!("PostgreSQL suite skipped: cross-instance real-time test");
        return;
    };
    let first = TestServer::start(spog_store::testing::postgres(&url).await).await;
    let config = spog_server::testing::test_config(
        &first.database,
        std::env::temp_dir().join(format!("spog-second-{}", uuid::Uuid::now_v7())),
    );
    let second = TestServer::start_with(first.database.clone(), config).await;
    let admin_on_first = first.admin().await;
    admin_on_first
        .user_with_roles(&first, "ann@example.com", &["viewer"])
        .await;
    let ann_on_second = second
        .login("ann@example.com", "a long enough password")
        .await;
    let mut tab = socket(&ann_on_second).await;
    assert_eq!(next(&mut tab).await["type"], "unread_count");
    admin_on_first
        .post(
            "/notifications",
            note(json!({"broadcast": true}), "from the first instance"),
        )
        .await;
    let pushed = next(&mut tab).await;
    assert_eq!(pushed["notification"]["title"], "from the first instance");
    second.stop().await;
    first.stop().await;
}

#[tokio::test]
async fn dashboards_hear_when_the_audit_trail_grows_if_they_may_read_it() {
    for server in servers().await {
        let admin = server.admin().await;
        let viewer = admin
            .user_with_roles(&server, "val@example.com", &["viewer"])
            .await;
        let mut admin_tab = socket(&admin).await;
        let mut viewer_tab = socket(&viewer).await;
        next(&mut admin_tab).await;
        next(&mut viewer_tab).await;
        admin.post("/organizations", json!({"name": "ops"})).await;
        let pushed = next(&mut admin_tab).await;
        assert_eq!(
            (pushed["type"].as_str(), pushed["topic"].as_str()),
            (Some("dashboard"), Some("audit"))
        );
        assert!(pushed["data"]["head_seq"].as_i64().unwrap() > 0);
        let silence = tokio::time::timeout(Duration::from_millis(500), viewer_tab.next()).await;
        assert!(
            silence.is_err() || matches!(silence, Ok(Some(Ok(Message::Ping(_))))),
            "viewers lack audit_logs.view"
        );
        server.stop().await;
    }
}

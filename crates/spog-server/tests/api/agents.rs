//! Host agents through the API (SPEC 12.1, 12.3): enrollment tokens, enrollment, what an agent
//! credential may do, and the agent socket. `agent_binary` runs the real `spog-agent`.

use std::time::{Duration, Instant};

use futures::{SinkExt, StreamExt};
use reqwest::StatusCode;
use serde_json::{Value, json};
use spog_server::testing::{Client, TestServer};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use crate::terminal::{Socket, closed, next_json};
use crate::{servers, servers_with};

/// A new enrollment token of the admin's account: (id, secret).
pub async fn enrollment_token(admin: &Client, body: Value) -> (String, String) {
    let (status, created) = admin.post("/enrollment-tokens", body).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    (
        created["id"].as_str().unwrap().to_owned(),
        created["token"].as_str().unwrap().to_owned(),
    )
}

/// Enrolls `hostname` with `token`: (status, body).
async fn enroll(server: &TestServer, token: &str, hostname: &str) -> (StatusCode, Value) {
    server
        .anonymous()
        .post(
            "/agent/enroll",
            json!({"token": token, "hostname": hostname,
                   "facts": {"os": "linux", "kernel": "6.1.0", "agent_version": "0.1.0"}}),
        )
        .await
}

/// An enrolled host: (host id, a client with its agent credential).
pub async fn enrolled(server: &TestServer, admin: &Client, hostname: &str) -> (String, Client) {
    let (_, token) = enrollment_token(admin, json!({})).await;
    let (status, body) = enroll(server, &token, hostname).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let credential = body["credential"].as_str().unwrap();
    assert!(credential.starts_with("spog_agent_"), "{credential}");
    (
        body["host_id"].as_str().unwrap().to_owned(),
        admin.with_token(credential),
    )
}

/// Opens the agent socket offering `protocols`.
async fn upgrade(
    agent: &Client,
    protocols: &str,
) -> Result<Socket, tokio_tungstenite::tungstenite::Error> {
    let url = agent.url("/agent/connect").replace("http://", "ws://");
    let mut request = url.into_client_request().unwrap();
    let headers = request.headers_mut();
    let bearer = format!("Bearer {}", agent.token.as_deref().unwrap());
    headers.insert("authorization", bearer.parse().unwrap());
    headers.insert("sec-websocket-protocol", protocols.parse().unwrap());
    tokio_tungstenite::connect_async(request)
        .await
        .map(|(socket, _)| socket)
}

/// A connected agent socket past `welcome`.
async fn connected(agent: &Client) -> Socket {
    connected_with(
        agent,
        json!({"terminal": false, "shell": false, "max_sessions": 0}),
    )
    .await
}

/// A connected agent socket past `welcome` whose `hello` says it can do `capabilities`.
pub async fn connected_with(agent: &Client, capabilities: Value) -> Socket {
    let mut socket = upgrade(agent, "spog-agent.v2, spog-agent.v1")
        .await
        .expect("the upgrade");
    let hello = json!({"type": "hello", "agent_version": "0.1.0",
        "facts": {"os": "linux", "kernel": "6.1.0", "arch": "x86_64", "hostname": "web-1",
                  "cpu_count": 2, "agent_version": "0.1.0"},
        "capabilities": capabilities});
    socket
        .send(Message::Text(hello.to_string().into()))
        .await
        .unwrap();
    let welcome = next_json(&mut socket).await;
    assert_eq!(welcome["type"], "welcome", "{welcome}");
    assert_eq!(welcome["max_message_bytes"], 1 << 20);
    socket
}

/// Polls `GET path` until `check` holds, for up to `within`.
pub async fn eventually(
    client: &Client,
    path: &str,
    within: Duration,
    check: impl Fn(&Value) -> bool,
) -> Value {
    let started = Instant::now();
    loop {
        let (status, body) = client.get(path).await;
        if status == StatusCode::OK && check(&body) {
            return body;
        }
        assert!(
            started.elapsed() < within,
            "GET {path} did not come round: {status} {body}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn enrollment_tokens_are_shown_once_listed_by_state_and_revocable_until_used() {
    for server in servers().await {
        let admin = server.admin().await;
        let (status, created) = admin
            .post("/enrollment-tokens", json!({"description": "rack 4"}))
            .await;
        assert_eq!(status, StatusCode::CREATED, "{created}");
        assert!(
            created["token"]
                .as_str()
                .unwrap()
                .starts_with("spog_enroll_")
        );
        assert_eq!(created["state"], "active");
        assert_eq!(created["description"], "rack 4");
        let id = created["id"].as_str().unwrap();
        let (_, shown) = admin.get(&format!("/enrollment-tokens/{id}")).await;
        assert!(
            shown.get("token").is_none(),
            "the secret is shown once: {shown}"
        );
        let far = spog_core::Timestamp::now().plus(Duration::from_secs(8 * 24 * 3600));
        let (status, refused) = admin
            .post("/enrollment-tokens", json!({"expires_at": far}))
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
        assert!(refused["error"]["details"]["fields"]["expires_at"].is_string());
        let (status, _) = admin.get("/enrollment-tokens?state=lost").await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);

        assert_eq!(
            admin.delete(&format!("/enrollment-tokens/{id}")).await.0,
            StatusCode::NO_CONTENT
        );
        let (status, body) = enroll(&server, created["token"].as_str().unwrap(), "web-1").await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert_eq!(body["error"]["code"], "invalid_enrollment_token");

        let (used, secret) = enrollment_token(&admin, json!({})).await;
        assert_eq!(
            enroll(&server, &secret, "web-1").await.0,
            StatusCode::CREATED
        );
        let (status, again) = enroll(&server, &secret, "web-2").await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert_eq!(again["error"]["code"], "invalid_enrollment_token");
        assert_eq!(
            admin.delete(&format!("/enrollment-tokens/{used}")).await.0,
            StatusCode::CONFLICT
        );
        let (_, listed) = admin.get("/enrollment-tokens?state=used").await;
        let items = listed["items"].as_array().unwrap();
        assert_eq!(items.len(), 1);
        assert_eq!(items[0]["id"], used.as_str());
        assert!(items[0]["used_by_host_id"].is_string());
        let (_, revoked) = admin.get("/enrollment-tokens?state=revoked").await;
        assert_eq!(revoked["items"][0]["id"], id);
        let (status, body) = enroll(&server, "spog_enroll_unknown", "web-3").await;
        assert_eq!(
            (status, &body["error"]["code"]),
            (StatusCode::UNAUTHORIZED, &json!("invalid_enrollment_token"))
        );

        server.link_audit().await;
        let (_, entries) = admin
            .get("/audit-logs?action=enrollment_token.revoke")
            .await;
        assert_eq!(entries["items"].as_array().unwrap().len(), 1, "{entries}");
        let (_, entries) = admin.get("/audit-logs?action=host.enroll").await;
        assert_eq!(entries["items"][0]["actor_type"], "agent", "{entries}");
        assert_eq!(entries["items"][0]["actor_name"], "agent:web-1");
        server.stop().await;
    }
}

#[tokio::test]
async fn of_concurrent_enrollments_with_one_token_exactly_one_succeeds() {
    for server in servers().await {
        let admin = server.admin().await;
        let (_, token) = enrollment_token(&admin, json!({})).await;
        let attempts = (0..8).map(|i| {
            let (server, token) = (&server, token.clone());
            async move { enroll(server, &token, &format!("race-{i}")).await.0 }
        });
        let statuses = futures::future::join_all(attempts).await;
        let created = statuses
            .iter()
            .filter(|s| **s == StatusCode::CREATED)
            .count();
        let refused = statuses
            .iter()
            .filter(|s| **s == StatusCode::UNAUTHORIZED)
            .count();
        assert_eq!((created, refused), (1, 7), "{statuses:?}");
        let (_, hosts) = admin.get("/hosts").await;
        assert_eq!(hosts["items"].as_array().unwrap().len(), 1);
        server.stop().await;
    }
}

#[tokio::test]
async fn enrollment_claims_the_tokens_host_or_an_agentless_host_of_that_name() {
    for server in servers().await {
        let admin = server.admin().await;
        let (_, organizations) = admin.get("/organizations").await;
        let organization = organizations[0]["id"].as_str().unwrap();
        let (_, existing) = admin
            .post(
                "/hosts",
                json!({"organization_id": organization, "hostname": "db-1"}),
            )
            .await;
        let (_, token) = enrollment_token(&admin, json!({})).await;
        let (status, body) = enroll(&server, &token, "db-1").await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        assert_eq!(
            body["host_id"], existing["id"],
            "the agentless host of that name"
        );
        assert_eq!(body["host"]["facts"]["kernel"], "6.1.0");
        assert!(body["host"]["enrolled_at"].is_string());

        // Another enrollment of that name finds the host taken.
        let (_, token) = enrollment_token(&admin, json!({})).await;
        assert_eq!(
            enroll(&server, &token, "db-1").await.0,
            StatusCode::CONFLICT
        );
        // The token was not spent by the refusal; a token for the host claims it.
        let old = admin.with_token(body["credential"].as_str().unwrap());
        let host = existing["id"].as_str().unwrap();
        let (_, claim) = enrollment_token(&admin, json!({"host_id": host})).await;
        let (status, claimed) = enroll(&server, &claim, "db-1-new").await;
        assert_eq!(status, StatusCode::CREATED, "{claimed}");
        assert_eq!(claimed["host_id"], host);
        let (status, _) = old
            .post(&format!("/hosts/{host}/heartbeat"), json!({}))
            .await;
        assert_eq!(
            status,
            StatusCode::UNAUTHORIZED,
            "the previous credential is revoked"
        );
        server.stop().await;
    }
}

#[tokio::test]
async fn an_agent_credential_reports_for_its_own_host_only() {
    for server in servers().await {
        let admin = server.admin().await;
        let (host, agent) = enrolled(&server, &admin, "web-1").await;
        let (other, _) = enrolled(&server, &admin, "web-2").await;
        let (status, body) = agent
            .post(&format!("/hosts/{host}/heartbeat"), json!({}))
            .await;
        assert_eq!(status, StatusCode::ACCEPTED, "{body}");
        assert_eq!(body["came_online"], true);
        let (status, _) = agent
            .post(&format!("/hosts/{other}/heartbeat"), json!({}))
            .await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        let sample = |host: &str| json!({"host_id": host, "samples": [{"metric": "cpu.percent", "value": 3.5}]});
        assert_eq!(
            agent.post("/metrics", sample(&host)).await.0,
            StatusCode::ACCEPTED
        );
        assert_eq!(
            agent.post("/metrics", sample(&other)).await.0,
            StatusCode::NOT_FOUND
        );
        for path in [
            "/hosts",
            "/audit-logs",
            "/enrollment-tokens",
            &format!("/hosts/{host}"),
        ] {
            let (status, body) = agent.get(path).await;
            assert_eq!(status, StatusCode::FORBIDDEN, "{path}: {body}");
        }
        let (status, _) = agent.post("/enrollment-tokens", json!({})).await;
        assert_eq!(status, StatusCode::FORBIDDEN);
        server.stop().await;
    }
}

#[tokio::test]
async fn an_agent_credential_starts_and_ends_recordings_of_its_own_host_only() {
    for server in servers().await {
        let admin = server.admin().await;
        let (host, agent) = enrolled(&server, &admin, "web-1").await;
        let (other, _) = enrolled(&server, &admin, "web-2").await;
        let (_, me) = admin.get("/auth/me").await;
        let session = |host: &str| json!({"host_id": host, "user_id": me["user_id"], "shell": "sh", "width": 80, "height": 24});
        let (status, own) = agent.post("/terminal/sessions", session(&host)).await;
        assert_eq!(status, StatusCode::CREATED, "{own}");
        assert_eq!(
            agent.post("/terminal/sessions", session(&other)).await.0,
            StatusCode::NOT_FOUND
        );
        let (_, theirs) = admin.post("/terminal/sessions", session(&other)).await;
        let theirs = theirs["id"].as_str().unwrap();
        let (status, _) = agent
            .post(&format!("/terminal/sessions/{theirs}/end"), json!({}))
            .await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        let own = own["id"].as_str().unwrap();
        let (status, ended) = agent
            .post(&format!("/terminal/sessions/{own}/end"), json!({}))
            .await;
        assert!(status.is_success(), "{status} {ended}");
        let (status, _) = agent.get(&format!("/terminal/sessions/{own}")).await;
        assert_eq!(
            status,
            StatusCode::FORBIDDEN,
            "reading recordings is not an agent's"
        );
        server.stop().await;
    }
}

#[tokio::test]
async fn enrollment_past_ten_attempts_a_minute_from_one_address_is_429() {
    for server in servers().await {
        let mut statuses = Vec::new();
        for _ in 0..11 {
            statuses.push(enroll(&server, "spog_enroll_guess", "web-1").await.0);
        }
        assert!(
            statuses[..10]
                .iter()
                .all(|s| *s == StatusCode::UNAUTHORIZED),
            "{statuses:?}"
        );
        assert_eq!(statuses[10], StatusCode::TOO_MANY_REQUESTS);
        server.stop().await;
    }
}

#[tokio::test]
async fn the_agent_socket_negotiates_its_protocol_and_brings_the_host_online_with_facts() {
    for server in servers().await {
        let admin = server.admin().await;
        let (host, agent) = enrolled(&server, &admin, "web-1").await;
        let refused = upgrade(&agent, "spog-agent.v9").await.expect_err("426");
        match refused {
            tokio_tungstenite::tungstenite::Error::Http(response) => {
                assert_eq!(response.status(), StatusCode::UPGRADE_REQUIRED);
                let body: Value =
                    serde_json::from_slice(response.body().as_deref().unwrap()).unwrap();
                assert_eq!(body["error"]["code"], "unsupported_protocol");
                assert_eq!(
                    body["error"]["details"]["supported"],
                    json!(["spog-agent.v1"])
                );
            }
            other => panic!("{other}"),
        }
        let (_, before) = admin.get(&format!("/hosts/{host}")).await;
        assert_eq!(before["online"], false);
        let mut socket = connected(&agent).await;
        let (_, shown) = admin.get(&format!("/hosts/{host}")).await;
        assert_eq!(shown["online"], true, "{shown}");
        assert_eq!(shown["agent_connected"], true);
        assert_eq!(shown["facts"]["arch"], "x86_64");
        let (_, agent_view) = admin.get(&format!("/hosts/{host}/agent")).await;
        assert_eq!(agent_view["connected"], true, "{agent_view}");
        assert_eq!(agent_view["protocol"], "spog-agent.v1");
        assert_eq!(agent_view["instance_id"], server.state.instance_id.as_str());
        let facts =
            json!({"type": "facts", "facts": {"os": "linux", "kernel": "6.2.0"}, "new_field": 1});
        socket
            .send(Message::Text(facts.to_string().into()))
            .await
            .unwrap();
        let metrics = json!({"type": "metrics", "samples": [
            {"metric": "cpu.percent", "value": 12.5, "labels": {}},
            {"metric": "disk.used_percent", "value": 40.0, "labels": {"mount": "/"}}]});
        socket
            .send(Message::Text(metrics.to_string().into()))
            .await
            .unwrap();
        socket
            .send(Message::Text(
                json!({"type": "from_the_future"}).to_string().into(),
            ))
            .await
            .unwrap();
        eventually(
            &admin,
            &format!("/hosts/{host}"),
            Duration::from_secs(5),
            |h| h["facts"]["kernel"] == "6.2.0",
        )
        .await;
        let (_, unconnected) = admin.get(&format!("/hosts/{host}/agent")).await;
        assert_eq!(
            unconnected["connected"], true,
            "unknown messages are ignored"
        );
        socket.close(None).await.unwrap();
        eventually(
            &admin,
            &format!("/hosts/{host}"),
            Duration::from_secs(5),
            |h| h["agent_connected"] == false,
        )
        .await;
        server.stop().await;
    }
}

#[tokio::test]
async fn a_second_connection_replaces_the_first_and_oversized_messages_close_the_socket() {
    for server in servers().await {
        let admin = server.admin().await;
        let (_, agent) = enrolled(&server, &admin, "web-1").await;
        let mut first = connected(&agent).await;
        let mut second = connected(&agent).await;
        assert_eq!(closed(&mut first).await.0, 4409);
        let huge = "x".repeat((1 << 20) + 10);
        second.send(Message::Text(huge.into())).await.unwrap();
        assert_eq!(closed(&mut second).await.0, 1009);
        let mut third = upgrade(&agent, "spog-agent.v1").await.unwrap();
        third
            .send(Message::Text(
                json!({"type": "metrics", "samples": []}).to_string().into(),
            ))
            .await
            .unwrap();
        assert_eq!(closed(&mut third).await.0, 1008, "hello comes first");
        server.stop().await;
    }
}

#[tokio::test]
async fn revoking_an_agent_or_deleting_its_host_closes_its_socket_at_once_and_refuses_it() {
    for server in servers().await {
        let admin = server.admin().await;
        let (host, agent) = enrolled(&server, &admin, "web-1").await;
        let mut socket = connected(&agent).await;
        let started = Instant::now();
        assert_eq!(
            admin.delete(&format!("/hosts/{host}/agent")).await.0,
            StatusCode::NO_CONTENT
        );
        let (code, _) = closed(&mut socket).await;
        assert_eq!(code, 4401);
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "{:?}",
            started.elapsed()
        );
        let refused = upgrade(&agent, "spog-agent.v1").await.expect_err("401");
        match refused {
            tokio_tungstenite::tungstenite::Error::Http(response) => {
                assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
            }
            other => panic!("{other}"),
        }
        let (_, shown) = admin.get(&format!("/hosts/{host}/agent")).await;
        assert_eq!(shown["connected"], false);
        assert!(shown["revoked_at"].is_string());
        assert_eq!(
            admin.delete(&format!("/hosts/{host}/agent")).await.0,
            StatusCode::NO_CONTENT
        );

        let (other, agent) = enrolled(&server, &admin, "web-2").await;
        let mut socket = connected(&agent).await;
        assert_eq!(
            admin.delete(&format!("/hosts/{other}")).await.0,
            StatusCode::NO_CONTENT
        );
        assert_eq!(closed(&mut socket).await.0, 4401);
        let (status, _) = admin.get(&format!("/hosts/{other}/agent")).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        server.link_audit().await;
        let (_, entries) = admin.get("/audit-logs?action=host.agent_revoke").await;
        let changed: Vec<&Value> = entries["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| &e["metadata"]["changed"])
            .collect();
        assert_eq!(
            changed,
            [&json!(false), &json!(true)],
            "newest first: {entries}"
        );
        server.stop().await;
    }
}

#[tokio::test]
async fn a_connected_agent_keeps_its_host_online_and_its_silence_takes_it_offline() {
    let offline_after = Duration::from_millis(1200);
    for server in servers_with(|c| c.host_offline_after = offline_after).await {
        let admin = server.admin().await;
        let (host, agent) = enrolled(&server, &admin, "web-1").await;
        let mut socket = connected(&agent).await;
        // Past several offline periods, the connection alone keeps the host online.
        let reader = tokio::spawn(async move {
            while let Some(Ok(message)) = socket.next().await {
                if matches!(message, Message::Close(_)) {
                    break;
                }
            }
            socket
        });
        tokio::time::sleep(offline_after * 3).await;
        let (_, shown) = admin.get(&format!("/hosts/{host}")).await;
        assert_eq!(shown["online"], true, "{shown}");
        reader.abort();
        eventually(&admin, &format!("/hosts/{host}"), offline_after * 5, |h| {
            h["online"] == false && h["agent_connected"] == false
        })
        .await;
        server.link_audit().await;
        let (_, entries) = admin.get("/audit-logs?action=host.online").await;
        assert_eq!(
            entries["items"].as_array().unwrap().len(),
            1,
            "one transition: {entries}"
        );
        server.stop().await;
    }
}

#[tokio::test]
async fn on_postgres_an_agent_is_replaced_and_revoked_on_whichever_instance_holds_it() {
    let Ok(admin_url) = std::env::var(spog_store::testing::POSTGRES_ENV) else {
        eprintln!("skipped: SPOG_TEST_DATABASE_URL is not set");
        return;
    };
    let database = std::sync::Arc::new(spog_store::testing::postgres(&admin_url).await);
    let config = || spog_server::testing::test_config(&database, crate::temp_dir());
    let one = TestServer::start_with(database.clone(), config()).await;
    let two = TestServer::start_with(database.clone(), config()).await;
    let admin_one = one.admin().await;
    let (host, agent) = enrolled(&one, &admin_one, "web-1").await;
    let on_one = agent.clone();
    let mut on_two = agent.clone();
    on_two.base = two.base.clone();
    let mut first = connected(&on_one).await;
    let mut second = connected(&on_two).await;
    assert_eq!(
        closed(&mut first).await.0,
        4409,
        "replaced from the other instance"
    );
    let (_, shown) = admin_one.get(&format!("/hosts/{host}/agent")).await;
    assert_eq!(shown["instance_id"], two.state.instance_id.as_str());
    let started = Instant::now();
    let (status, _) = admin_one.delete(&format!("/hosts/{host}/agent")).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(closed(&mut second).await.0, 4401);
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
    one.stop().await;
    two.stop().await;
}

#[tokio::test]
async fn an_agent_that_sends_no_hello_within_ten_seconds_or_malformed_json_is_closed_1008() {
    for server in servers().await {
        let admin = server.admin().await;
        let (_, agent) = enrolled(&server, &admin, "web-1").await;
        let mut mute = upgrade(&agent, "spog-agent.v1").await.unwrap();
        let mut garbled = connected(&agent).await;
        garbled
            .send(Message::Text("{not json".into()))
            .await
            .unwrap();
        assert_eq!(closed(&mut garbled).await.0, 1008);
        let started = Instant::now();
        let frame = tokio::time::timeout(Duration::from_secs(15), async {
            loop {
                match mute.next().await {
                    Some(Ok(Message::Close(frame))) => return frame,
                    Some(Ok(_)) => continue,
                    other => panic!("{other:?}"),
                }
            }
        })
        .await
        .expect("closed within fifteen seconds")
        .expect("a close frame");
        assert_eq!(u16::from(frame.code), 1008, "{}", frame.reason);
        assert!(
            started.elapsed() >= Duration::from_secs(8),
            "{:?}",
            started.elapsed()
        );
        server.stop().await;
    }
}

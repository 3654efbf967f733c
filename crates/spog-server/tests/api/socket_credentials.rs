//! WebSockets carry their credential (issue 12): they close (1008) when it ends, on every
//! instance, follow role changes, are capped per credential and per account, and a session
//! cookie opens them from our own pages only.

use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::json;
use spog_server::testing::{Client, TestServer, test_config};
use spog_store::testing::POSTGRES_ENV;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use crate::terminal::{Socket, closed, next_json, setup, socket};
use crate::{servers, servers_with, temp_dir};

const POLICY_VIOLATION: u16 = 1008;
const PASSWORD: &str = "a long enough password";

/// The notifications socket of `client`, past its greeting.
pub(crate) async fn bell(client: &Client) -> Socket {
    let mut socket = socket(client, "/ws").await;
    assert_eq!(next_json(&mut socket).await["type"], "unread_count");
    socket
}

/// Asserts the server closes `socket` as a policy violation, and soon.
pub(crate) async fn closes_for_policy(socket: &mut Socket, what: &str) {
    let started = Instant::now();
    let (code, reason) = closed(socket).await;
    assert_eq!(code, POLICY_VIOLATION, "{what}: {reason}");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{what}: closed after {:?}",
        started.elapsed()
    );
}

/// A user with `roles` and a `user` token they made for themselves (they need users.manage).
async fn user_and_token(admin: &Client, base: &str, email: &str) -> (Client, Client, String) {
    let user = admin.user_with_roles_on(base, email, &["admin"]).await;
    let (status, created) = user
        .post(
            "/api-tokens",
            json!({"name": "mine", "actor_type": "user", "permissions": ["monitoring.view"]}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let token = user.with_token(created["token"].as_str().unwrap());
    let (_, me) = user.get("/auth/me").await;
    (user, token, me["user_id"].as_str().unwrap().to_owned())
}

#[tokio::test]
async fn a_socket_closes_when_its_session_logs_out_or_its_token_is_revoked() {
    for server in servers().await {
        let admin = server.admin().await;
        let mut tab = bell(&admin).await;
        let (status, created) = admin
            .post(
                "/api-tokens",
                json!({"name": "dash", "actor_type": "system", "permissions": ["monitoring.view"]}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED);
        let token = admin.with_token(created["token"].as_str().unwrap());
        let mut token_tab = bell(&token).await;
        let id = created["api_token"]["id"].as_str().unwrap();
        admin.delete(&format!("/api-tokens/{id}")).await;
        closes_for_policy(&mut token_tab, "revoked token").await;
        admin.post("/auth/logout", json!({})).await;
        closes_for_policy(&mut tab, "logged out").await;
        server.stop().await;
    }
}

#[tokio::test]
async fn a_password_change_ends_every_session_token_and_socket_of_the_user() {
    for server in servers().await {
        let admin = server.admin().await;
        let (ann, ann_token, ann_id) =
            user_and_token(&admin, &server.base, "ann@example.com").await;
        let mut session_tab = bell(&ann).await;
        let mut token_tab = bell(&ann_token).await;
        let (status, body) = admin
            .patch(
                &format!("/users/{ann_id}"),
                json!({"password": "a brand new password"}),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        closes_for_policy(&mut session_tab, "session after password change").await;
        closes_for_policy(&mut token_tab, "token after password change").await;
        assert_eq!(ann.get("/auth/me").await.0, StatusCode::UNAUTHORIZED);
        assert_eq!(ann_token.get("/auth/me").await.0, StatusCode::UNAUTHORIZED);
        let (_, entries) = admin.get("/audit-logs?action=user.update&limit=1").await;
        let metadata = &entries["items"][0]["metadata"];
        assert_eq!(metadata["sessions_ended"], 1, "{entries}");
        assert_eq!(metadata["tokens_revoked"], 1, "{entries}");
        // The token stays revoked: reactivation or a new password does not bring it back.
        let again = server
            .login("ann@example.com", "a brand new password")
            .await;
        assert_eq!(again.get("/auth/me").await.0, StatusCode::OK);
        assert_eq!(ann_token.get("/auth/me").await.0, StatusCode::UNAUTHORIZED);
        server.stop().await;
    }
}

#[tokio::test]
async fn deactivating_or_deleting_a_user_closes_their_sockets() {
    for server in servers().await {
        let admin = server.admin().await;
        let (ann, ann_token, ann_id) =
            user_and_token(&admin, &server.base, "ann@example.com").await;
        let mut session_tab = bell(&ann).await;
        let mut token_tab = bell(&ann_token).await;
        admin
            .patch(&format!("/users/{ann_id}"), json!({"active": false}))
            .await;
        closes_for_policy(&mut session_tab, "deactivated, session").await;
        closes_for_policy(&mut token_tab, "deactivated, token").await;
        admin
            .patch(&format!("/users/{ann_id}"), json!({"active": true}))
            .await;
        assert_eq!(ann_token.get("/auth/me").await.0, StatusCode::UNAUTHORIZED);

        let bob = admin
            .user_with_roles(&server, "bob@example.com", &["viewer"])
            .await;
        let mut bob_tab = bell(&bob).await;
        let (_, me) = bob.get("/auth/me").await;
        admin
            .delete(&format!("/users/{}", me["user_id"].as_str().unwrap()))
            .await;
        closes_for_policy(&mut bob_tab, "deleted").await;
        server.stop().await;
    }
}

#[tokio::test]
async fn credentials_ended_on_one_instance_close_sockets_on_another() {
    let Ok(url) = std::env::var(POSTGRES_ENV) else {
        eprintln!("skipped: {POSTGRES_ENV} is not set");
        return;
    };
    let database = Arc::new(spog_store::testing::postgres(&url).await);
    let first = TestServer::start_with(database.clone(), test_config(&database, temp_dir())).await;
    let second = TestServer::start_with(database.clone(), test_config(&database, temp_dir())).await;
    let admin = first.admin().await;
    let (_, ann_token, ann_id) = user_and_token(&admin, &first.base, "ann@example.com").await;
    let ann_on_second = second.login("ann@example.com", PASSWORD).await;
    let ann_token_on_second = Client {
        base: second.base.clone(),
        ..ann_token.clone()
    };
    let ann_on_first = Client {
        base: first.base.clone(),
        ..ann_on_second.clone()
    };
    // Logging out on the first instance closes the session's socket on the second.
    let mut tab = bell(&ann_on_second).await;
    ann_on_first.post("/auth/logout", json!({})).await;
    closes_for_policy(&mut tab, "logged out elsewhere").await;
    // So does a password change made there, for the user's token.
    let mut token_tab = bell(&ann_token_on_second).await;
    let other_session = second.login("ann@example.com", PASSWORD).await;
    let mut other_tab = bell(&other_session).await;
    admin
        .patch(
            &format!("/users/{ann_id}"),
            json!({"password": "a brand new password"}),
        )
        .await;
    closes_for_policy(&mut token_tab, "token, password changed elsewhere").await;
    closes_for_policy(&mut other_tab, "session, password changed elsewhere").await;
    second.stop().await;
    first.stop().await;
}

#[tokio::test]
async fn a_watcher_who_loses_the_permission_to_watch_is_disconnected() {
    for server in servers().await {
        let setup = setup(&server).await;
        let (status, _) = setup
            .admin
            .post(
                "/roles",
                json!({"name": "watcher", "permissions": ["session_recordings.view"]}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED);
        let ann = setup
            .admin
            .user_with_roles(&server, "ann@example.com", &["watcher"])
            .await;
        let (_, me) = ann.get("/auth/me").await;
        let ann_id = me["user_id"].as_str().unwrap();
        setup
            .admin
            .post(&format!("/hosts/{}/access/{ann_id}", setup.host), json!({}))
            .await;
        let (status, session) = setup
            .gateway
            .post(
                "/terminal/sessions",
                json!({"host_id": setup.host, "user_id": setup.user, "shell": "/bin/sh", "width": 40, "height": 10}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{session}");
        let id = session["id"].as_str().unwrap();
        let mut watching = socket(&ann, &format!("/terminal/sessions/{id}/watch")).await;
        assert_eq!(next_json(&mut watching).await["version"], 2);
        let mut ann_bell = bell(&ann).await;
        let (_, roles) = setup.admin.get("/roles").await;
        let watcher = roles
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["name"] == "watcher")
            .unwrap();
        let (status, body) = setup
            .admin
            .patch(
                &format!("/roles/{}", watcher["id"].as_str().unwrap()),
                json!({"permissions": ["monitoring.view"]}),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let (code, reason) = closed(&mut watching).await;
        assert_eq!(code, POLICY_VIOLATION);
        assert!(reason.contains("permission"), "{reason}");
        // The bell needs no permission: it stays, with the rights the user has now.
        let silence = tokio::time::timeout(Duration::from_millis(500), next_json(&mut ann_bell));
        assert!(silence.await.is_err(), "the bell stays open and quiet");
        server.stop().await;
    }
}

/// The handshake's HTTP status when the server refuses the upgrade.
fn refused_status(
    result: Result<(Socket, impl Sized), tokio_tungstenite::tungstenite::Error>,
) -> u16 {
    match result {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => response.status().as_u16(),
        Err(other) => panic!("unexpected error {other}"),
        Ok(_) => 101,
    }
}

/// Opens `/ws` with the bearer credential of `client`; its status.
async fn try_bell(client: &Client) -> (u16, Option<Socket>) {
    let mut request = client
        .url("/ws")
        .replace("http://", "ws://")
        .into_client_request()
        .unwrap();
    request.headers_mut().insert(
        "authorization",
        format!("Bearer {}", client.token.as_deref().unwrap())
            .parse()
            .unwrap(),
    );
    match tokio_tungstenite::connect_async(request).await {
        Ok((socket, _)) => (101, Some(socket)),
        other => (refused_status(other), None),
    }
}

#[tokio::test]
async fn sockets_beyond_the_caps_per_credential_and_per_account_are_refused_with_429() {
    let caps = |config: &mut spog_server::Config| {
        config.websocket_max_per_credential = 3;
        config.websocket_max_per_account = 4;
    };
    for server in servers_with(caps).await {
        let admin = server.admin().await;
        let mut open = Vec::new();
        for _ in 0..3 {
            let (status, socket) = try_bell(&admin).await;
            assert_eq!(status, 101);
            open.push(socket.unwrap());
        }
        assert_eq!(try_bell(&admin).await.0, 429, "a fourth on one credential");
        let other = server.admin().await;
        let (status, socket) = try_bell(&other).await;
        assert_eq!(status, 101);
        open.push(socket.unwrap());
        assert_eq!(try_bell(&other).await.0, 429, "a fifth in the account");
        // A socket that closes gives its place back.
        drop(open.pop());
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let (status, socket) = try_bell(&other).await;
            if status == 101 {
                open.extend(socket);
                break;
            }
            assert!(
                Instant::now() < deadline,
                "the freed place was not given back"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        server.stop().await;
    }
}

/// A handshake to `path` with the session cookie of `client` and `origin`; its status.
async fn with_cookie(client: &Client, path: &str, origin: &str) -> u16 {
    let url = client.url(path).replace("http://", "ws://");
    let mut request = url.into_client_request().unwrap();
    let headers = request.headers_mut();
    let cookie = format!("spog_session={}", client.token.as_deref().unwrap());
    headers.insert("cookie", cookie.parse().unwrap());
    headers.insert("origin", origin.parse().unwrap());
    refused_status(tokio_tungstenite::connect_async(request).await)
}

#[tokio::test]
async fn a_session_cookie_opens_websockets_from_our_own_pages_only() {
    for server in servers().await {
        let setup = setup(&server).await;
        let (_, session) = setup
            .gateway
            .post(
                "/terminal/sessions",
                json!({"host_id": setup.host, "user_id": setup.user, "shell": "/bin/sh", "width": 40, "height": 10}),
            )
            .await;
        let id = session["id"].as_str().unwrap();
        let (_, desktop) = setup
            .gateway
            .post(
                "/desktop/recordings",
                json!({"host_id": setup.host, "user_id": setup.user, "width": 40, "height": 10}),
            )
            .await;
        let desktop = desktop["id"].as_str().unwrap();
        let ours = server.base.clone();
        for path in [
            "/ws".to_owned(),
            format!("/terminal/sessions/{id}/stream"),
            format!("/terminal/sessions/{id}/watch"),
            format!("/desktop/recordings/{desktop}/frames/stream"),
            format!("/desktop/recordings/{desktop}/stream"),
        ] {
            let status = with_cookie(&setup.admin, &path, "https://evil.example").await;
            assert_eq!(status, 403, "{path} from another site");
            let status = with_cookie(&setup.admin, &path, &ours).await;
            assert_eq!(status, 101, "{path} from our own page");
        }
        server.stop().await;
    }
}

//! Self-service (SPEC 2.1): every user changes their own password, reviews and ends their
//! own sessions and makes their own API tokens; nobody reaches another user's, and an API
//! token manages nothing of its user.

use reqwest::StatusCode;
use serde_json::{Value, json};
use spog_server::testing::{Client, TestServer};

use crate::servers;
use crate::socket_credentials::{bell, closes_for_policy};

const PASSWORD: &str = "a long enough password";
const NEW_PASSWORD: &str = "another long password";

/// A viewer (no permission to manage anything) logged in twice, and a `user` token of theirs.
async fn viewer(server: &TestServer, admin: &Client, email: &str) -> (Client, Client, Client) {
    let first = admin.user_with_roles(server, email, &["viewer"]).await;
    let second = server.login(email, PASSWORD).await;
    let (status, created) = first
        .post(
            "/auth/me/api-tokens",
            json!({"name": "mine", "permissions": ["monitoring.view"]}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let token = first.with_token(created["token"].as_str().unwrap());
    (first, second, token)
}

async fn last_entry(admin: &Client, action: &str) -> Value {
    let (_, entries) = admin
        .get(&format!("/audit-logs?action={action}&limit=1"))
        .await;
    entries["items"][0].clone()
}

#[tokio::test]
async fn changing_ones_password_ends_every_other_session_token_and_socket_but_this_one() {
    for server in servers().await {
        let admin = server.admin().await;
        let (ann, other, token) = viewer(&server, &admin, "ann@example.com").await;
        let mut this_tab = bell(&ann).await;
        let mut other_tab = bell(&other).await;
        let mut token_tab = bell(&token).await;
        let (status, body) = ann
            .post(
                "/auth/me/password",
                json!({"current_password": PASSWORD, "new_password": NEW_PASSWORD}),
            )
            .await;
        assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
        closes_for_policy(&mut other_tab, "the other session").await;
        closes_for_policy(&mut token_tab, "the token").await;
        assert_eq!(ann.get("/auth/me").await.0, StatusCode::OK);
        assert_eq!(other.get("/auth/me").await.0, StatusCode::UNAUTHORIZED);
        assert_eq!(token.get("/auth/me").await.0, StatusCode::UNAUTHORIZED);
        // The calling session's socket stays open: it still hears its bell.
        let (_, sessions) = ann.get("/auth/me/sessions").await;
        assert_eq!(sessions.as_array().unwrap().len(), 1, "{sessions}");
        assert!(
            tokio::time::timeout(std::time::Duration::from_millis(300), async {
                crate::terminal::next_json(&mut this_tab).await
            })
            .await
            .is_err(),
            "the calling session's socket got a message or closed"
        );
        let entry = last_entry(&admin, "auth.password_change").await;
        assert_eq!(entry["metadata"]["sessions_ended"], 1, "{entry}");
        assert_eq!(entry["metadata"]["tokens_revoked"], 1, "{entry}");
        assert_eq!(entry["resource_type"], "user", "{entry}");
        // The new password logs in; the old one does not.
        server.login("ann@example.com", NEW_PASSWORD).await;
        let (status, _) = server
            .anonymous()
            .post(
                "/auth/login",
                json!({"email": "ann@example.com", "password": PASSWORD}),
            )
            .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        server.stop().await;
    }
}

#[tokio::test]
async fn a_bad_password_change_names_its_field_and_wrong_guesses_are_throttled() {
    for server in servers().await {
        let admin = server.admin().await;
        let ann = admin
            .user_with_roles(&server, "ann@example.com", &["viewer"])
            .await;
        for (body, field) in [
            (json!({"new_password": NEW_PASSWORD}), "current_password"),
            (
                json!({"current_password": PASSWORD, "new_password": "short"}),
                "new_password",
            ),
            (
                json!({"current_password": PASSWORD, "new_password": PASSWORD}),
                "new_password",
            ),
            (json!({"current_password": PASSWORD}), "new_password"),
        ] {
            let (status, error) = ann.post("/auth/me/password", body.clone()).await;
            assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}: {error}");
            assert!(
                error["error"]["details"]["fields"][field].is_string(),
                "{body}: {error}"
            );
        }
        // Wrong guesses are 422 until the login throttle steps in.
        let mut refused = false;
        for guess in 0..10 {
            let body = json!({"current_password": format!("wrong guess number {guess}"),
                              "new_password": NEW_PASSWORD});
            let (status, error) = ann.post("/auth/me/password", body).await;
            if status == StatusCode::TOO_MANY_REQUESTS {
                refused = true;
                break;
            }
            assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{error}");
            assert!(
                error["error"]["details"]["fields"]["current_password"].is_string(),
                "{error}"
            );
        }
        assert!(refused, "ten wrong current passwords were never throttled");
        // They count as failed logins of the user from this place: a login waits too.
        let (status, _) = server
            .anonymous()
            .post(
                "/auth/login",
                json!({"email": "ann@example.com", "password": PASSWORD}),
            )
            .await;
        assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
        let entry = last_entry(&admin, "auth.password_change").await;
        assert_eq!(entry["outcome"], "failure", "{entry}");
        server.stop().await;
    }
}

#[tokio::test]
async fn users_list_and_end_their_own_sessions_only() {
    for server in servers().await {
        let admin = server.admin().await;
        let (ann, other, token) = viewer(&server, &admin, "ann@example.com").await;
        let (bob, _, _) = viewer(&server, &admin, "bob@example.com").await;
        let (status, sessions) = ann.get("/auth/me/sessions").await;
        assert_eq!(status, StatusCode::OK, "{sessions}");
        let sessions = sessions.as_array().unwrap().clone();
        assert_eq!(sessions.len(), 2, "{sessions:?}");
        // Newest first: the second login, then this one.
        assert_eq!(sessions[0]["current"], false);
        assert_eq!(sessions[1]["current"], true);
        assert_eq!(sessions[0]["method"], "password");
        assert!(sessions[0]["provider_id"].is_null());
        assert_eq!(sessions[0]["ip"], "127.0.0.1");
        assert!(sessions[0]["created_at"].as_str() >= sessions[1]["created_at"].as_str());
        let other_id = sessions[0]["id"].as_str().unwrap();
        // Bob cannot end Ann's session.
        let path = format!("/auth/me/sessions/{other_id}");
        assert_eq!(bob.delete(&path).await.0, StatusCode::NOT_FOUND);
        assert_eq!(other.get("/auth/me").await.0, StatusCode::OK);
        // Ann can, and it stops working at once (the auth cache does not keep it).
        let mut other_tab = bell(&other).await;
        assert_eq!(ann.delete(&path).await.0, StatusCode::NO_CONTENT);
        assert_eq!(other.get("/auth/me").await.0, StatusCode::UNAUTHORIZED);
        closes_for_policy(&mut other_tab, "the revoked session").await;
        assert_eq!(ann.delete(&path).await.0, StatusCode::NOT_FOUND);
        let entry = last_entry(&admin, "auth.session_revoke").await;
        assert_eq!(entry["resource_id"], other_id, "{entry}");
        // Signing out other sessions keeps this one and the user's tokens.
        let third = server.login("ann@example.com", PASSWORD).await;
        let fourth = server.login("ann@example.com", PASSWORD).await;
        let mut third_tab = bell(&third).await;
        let mut token_tab = bell(&token).await;
        let (status, body) = ann.post("/auth/me/sessions/revoke-others", json!({})).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body, json!({"revoked": 2}));
        closes_for_policy(&mut third_tab, "a signed-out session").await;
        assert_eq!(token.get("/auth/me").await.0, StatusCode::OK);
        assert!(
            tokio::time::timeout(std::time::Duration::from_millis(300), async {
                crate::terminal::next_json(&mut token_tab).await
            })
            .await
            .is_err(),
            "the token's socket got a message or closed"
        );
        assert_eq!(third.get("/auth/me").await.0, StatusCode::UNAUTHORIZED);
        assert_eq!(fourth.get("/auth/me").await.0, StatusCode::UNAUTHORIZED);
        assert_eq!(ann.get("/auth/me").await.0, StatusCode::OK);
        assert_eq!(bob.get("/auth/me").await.0, StatusCode::OK);
        let entry = last_entry(&admin, "auth.session_revoke").await;
        assert_eq!(entry["metadata"]["revoked"], 2, "{entry}");
        server.stop().await;
    }
}

#[tokio::test]
async fn users_make_and_revoke_their_own_tokens_within_their_permissions() {
    for server in servers().await {
        let admin = server.admin().await;
        let (ann, _, ann_token) = viewer(&server, &admin, "ann@example.com").await;
        let (bob, _, bob_token) = viewer(&server, &admin, "bob@example.com").await;
        assert_eq!(ann_token.get("/auth/me").await.1["actor_type"], "user");
        let (status, error) = ann
            .post(
                "/auth/me/api-tokens",
                json!({"name": "too much", "permissions": ["users.manage"]}),
            )
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{error}");
        assert!(
            error["error"]["details"]["fields"]["permissions"].is_string(),
            "{error}"
        );
        let (status, mine) = ann.get("/auth/me/api-tokens").await;
        assert_eq!(status, StatusCode::OK, "{mine}");
        let items = mine["items"].as_array().unwrap();
        assert_eq!(items.len(), 1, "only Ann's own: {mine}");
        let ann_token_id = items[0]["id"].as_str().unwrap().to_owned();
        let (_, bobs) = bob.get("/auth/me/api-tokens").await;
        let bob_token_id = bobs["items"][0]["id"].as_str().unwrap().to_owned();
        assert_ne!(ann_token_id, bob_token_id);
        // Not Bob's.
        let (status, _) = ann
            .delete(&format!("/auth/me/api-tokens/{bob_token_id}"))
            .await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert_eq!(bob_token.get("/auth/me").await.0, StatusCode::OK);
        // Her own, at once.
        let (status, _) = ann
            .delete(&format!("/auth/me/api-tokens/{ann_token_id}"))
            .await;
        assert_eq!(status, StatusCode::NO_CONTENT);
        assert_eq!(ann_token.get("/auth/me").await.0, StatusCode::UNAUTHORIZED);
        let entry = last_entry(&admin, "api_token.revoke").await;
        assert_eq!(entry["metadata"]["self_service"], true, "{entry}");
        let entry = last_entry(&admin, "api_token.create").await;
        assert_eq!(entry["metadata"]["self_service"], true, "{entry}");
        server.stop().await;
    }
}

#[tokio::test]
async fn an_api_token_cannot_use_self_service() {
    for server in servers().await {
        let admin = server.admin().await;
        let (_, _, token) = viewer(&server, &admin, "ann@example.com").await;
        let admin_token = admin.token_client("user", &["users.manage"]).await;
        for client in [&token, &admin_token] {
            for (status, body) in [
                client.get("/auth/me/sessions").await,
                client.get("/auth/me/api-tokens").await,
                client
                    .post("/auth/me/sessions/revoke-others", json!({}))
                    .await,
                client
                    .post(
                        "/auth/me/password",
                        json!({"current_password": PASSWORD, "new_password": NEW_PASSWORD}),
                    )
                    .await,
                client
                    .post(
                        "/auth/me/api-tokens",
                        json!({"name": "more", "permissions": []}),
                    )
                    .await,
            ] {
                assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
            }
        }
        assert_eq!(token.get("/auth/me").await.0, StatusCode::OK);
        server.stop().await;
    }
}

use reqwest::StatusCode;
use serde_json::json;
use spog_server::testing::{ADMIN_EMAIL, ADMIN_PASSWORD};

use crate::servers;

#[tokio::test]
async fn login_gives_a_token_that_identifies_the_caller() {
    for server in servers().await {
        let admin = server.admin().await;
        let (status, me) = admin.get("/auth/me").await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(me["email"], ADMIN_EMAIL);
        assert_eq!(me["actor_type"], "user");
        assert!(me["permissions"].as_array().unwrap().len() >= 11);
        server.stop().await;
    }
}

#[tokio::test]
async fn wrong_passwords_and_unknown_emails_get_the_same_401() {
    for server in servers().await {
        let anonymous = server.anonymous();
        let wrong = anonymous
            .post(
                "/auth/login",
                json!({"email": ADMIN_EMAIL, "password": "not the password"}),
            )
            .await;
        let unknown = anonymous
            .post(
                "/auth/login",
                json!({"email": "nobody@example.com", "password": ADMIN_PASSWORD}),
            )
            .await;
        assert_eq!(wrong.0, StatusCode::UNAUTHORIZED);
        assert_eq!(unknown.0, StatusCode::UNAUTHORIZED);
        assert_eq!(wrong.1["error"]["message"], unknown.1["error"]["message"]);
        server.stop().await;
    }
}

#[tokio::test]
async fn logging_out_ends_the_session_at_once() {
    for server in servers().await {
        let admin = server.admin().await;
        assert_eq!(
            admin.post("/auth/logout", json!({})).await.0,
            StatusCode::NO_CONTENT
        );
        let (status, body) = admin.get("/auth/me").await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert_eq!(body["error"]["code"], "unauthenticated");
        server.stop().await;
    }
}

#[tokio::test]
async fn forged_and_malformed_credentials_are_401() {
    for server in servers().await {
        let admin = server.admin().await;
        let token = admin.token.clone().unwrap();
        let forged = format!(
            "{}{}",
            &token[..token.len() - 2],
            if token.ends_with("AA") { "BB" } else { "AA" }
        );
        for bad in [forged.as_str(), "garbage", "spog_doesnotexist", ""] {
            let (status, _) = admin.with_token(bad).get("/auth/me").await;
            assert_eq!(status, StatusCode::UNAUTHORIZED, "{bad}");
        }
        let (status, _) = server.anonymous().get("/auth/me").await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        server.stop().await;
    }
}

#[tokio::test]
async fn a_revoked_api_token_stops_working() {
    for server in servers().await {
        let admin = server.admin().await;
        let (status, created) = admin
            .post(
                "/api-tokens",
                json!({"name": "agent", "actor_type": "agent", "permissions": ["events.publish"]}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{created}");
        let agent = admin.with_token(created["token"].as_str().unwrap());
        let (status, me) = agent.get("/auth/me").await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(me["actor_type"], "agent");
        assert_eq!(me["permissions"], json!(["events.publish"]));
        let id = created["api_token"]["id"].as_str().unwrap();
        assert_eq!(
            admin.delete(&format!("/api-tokens/{id}")).await.0,
            StatusCode::NO_CONTENT
        );
        assert_eq!(agent.get("/auth/me").await.0, StatusCode::UNAUTHORIZED);
        let (_, listed) = admin.get(&format!("/api-tokens/{id}")).await;
        assert!(listed["revoked_at"].is_string());
        assert!(listed.get("token_hash").is_none());
        server.stop().await;
    }
}

#[tokio::test]
async fn a_token_cannot_grant_what_its_creator_lacks() {
    for server in servers().await {
        let admin = server.admin().await;
        let (status, role) = admin
            .post(
                "/roles",
                json!({"name": "user admin", "permissions": ["users.manage"]}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{role}");
        let manager = admin
            .user_with_roles(&server, "manager@example.com", &["user admin"])
            .await;
        let (status, body) = manager
            .post(
                "/api-tokens",
                json!({"name": "t", "actor_type": "system", "permissions": ["audit_logs.write"]}),
            )
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
        assert!(
            body["error"]["details"]["fields"]["permissions"].is_string(),
            "{body}"
        );
        server.stop().await;
    }
}

#[tokio::test]
async fn repeated_wrong_passwords_are_slowed_down_with_429_and_retry_after() {
    for server in servers().await {
        let anonymous = server.anonymous();
        let wrong = json!({"email": ADMIN_EMAIL, "password": "not the password"});
        // Five free failures, then a sixth that makes the next attempt wait.
        for _ in 0..6 {
            assert_eq!(
                anonymous.post("/auth/login", wrong.clone()).await.0,
                StatusCode::UNAUTHORIZED
            );
        }
        let response = anonymous
            .request(reqwest::Method::POST, "/auth/login")
            .json(&json!({"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD}))
            .send()
            .await
            .unwrap();
        assert_eq!(
            response.status(),
            StatusCode::TOO_MANY_REQUESTS,
            "even the right password waits"
        );
        let wait: u64 = response.headers()["retry-after"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!((1..=60).contains(&wait), "{wait}");
        let body: serde_json::Value = response.json().await.unwrap();
        assert_eq!(body["error"]["code"], "rate_limited");
        // The wait is a delay, not a lock: once it passes, the right password gets in.
        tokio::time::sleep(std::time::Duration::from_secs(wait)).await;
        let (status, body) = anonymous
            .post(
                "/auth/login",
                json!({"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD}),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        server.stop().await;
    }
}

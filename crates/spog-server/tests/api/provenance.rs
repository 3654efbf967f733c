//! What an entry says about where it came from (issue 12, items 13 and 14): the credential
//! a change was made with, when the service stored it, and what an ingesting component may
//! not claim (a time long past, or the service's own actions).

use std::time::Duration;

use base64::Engine;
use reqwest::StatusCode;
use serde_json::{Value, json};
use spog_core::Timestamp;
use spog_server::testing::{ADMIN_EMAIL, ADMIN_PASSWORD, Client, TestServer};

use crate::{servers, servers_with};

/// A fresh login of the first admin, and the id of its session.
async fn session(server: &TestServer) -> (Client, String) {
    let anonymous = server.anonymous();
    let (status, login) = anonymous
        .post(
            "/auth/login",
            json!({"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{login}");
    let token = login["token"].as_str().unwrap();
    let payload = token.split('.').nth(1).unwrap();
    let claims: Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .unwrap(),
    )
    .unwrap();
    let session = claims["sid"].as_str().unwrap().to_owned();
    (anonymous.with_token(token), session)
}

/// A new API token: a client using it, and the token's id.
async fn token(admin: &Client, body: Value) -> (Client, String) {
    let (status, created) = admin.post("/api-tokens", body).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    (
        admin.with_token(created["token"].as_str().unwrap()),
        created["api_token"]["id"].as_str().unwrap().to_owned(),
    )
}

async fn latest(server: &TestServer, admin: &Client, action: &str) -> Value {
    server.link_audit().await;
    let (status, page) = admin.get(&format!("/audit-logs?action={action}")).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    let id = page["items"][0]["id"]
        .as_str()
        .unwrap_or_else(|| panic!("an entry {action}: {page}"));
    admin.get(&format!("/audit-logs/{id}")).await.1
}

fn job(extra: Value) -> Value {
    let mut body = json!({"action": "job.run", "resource_type": "job", "outcome": "success"});
    body.as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    body
}

fn ago(duration: Duration) -> String {
    Timestamp::now().minus(duration).to_string()
}

const DAY: Duration = Duration::from_secs(86_400);

#[tokio::test]
async fn every_entry_names_the_credential_it_was_made_with_and_when_it_was_stored() {
    for server in servers().await {
        let (admin, session_id) = session(&server).await;
        let before = Timestamp::now();
        admin
            .post("/organizations", json!({"name": "Research"}))
            .await;
        let by_session = latest(&server, &admin, "organization.create").await;
        assert_eq!(by_session["credential_id"], session_id.as_str());
        assert_eq!(by_session["credential_name"], "session");
        let recorded = Timestamp::parse(by_session["recorded_at"].as_str().unwrap()).unwrap();
        assert!(
            recorded >= before && recorded <= Timestamp::now(),
            "{by_session}"
        );

        let (agent, agent_id) = token(
            &admin,
            json!({"name": "nightly runner", "actor_type": "agent", "permissions": ["audit_logs.write"]}),
        )
        .await;
        assert_eq!(
            agent.post("/audit-logs", job(json!({}))).await.0,
            StatusCode::CREATED
        );
        let by_token = latest(&server, &admin, "job.run").await;
        assert_eq!(by_token["credential_id"], agent_id.as_str());
        assert_eq!(by_token["credential_name"], "nightly runner");
        assert_eq!(by_token["actor_type"], "agent");

        // The service's own changes were made with no credential.
        let bootstrap = latest(&server, &admin, "account.create").await;
        assert!(bootstrap.get("credential_id").is_none(), "{bootstrap}");
        assert!(bootstrap["recorded_at"].is_string(), "{bootstrap}");

        // The fields are in the chain: it verifies, and the export carries them.
        let (_, report) = admin.get("/audit-logs/integrity").await;
        assert_eq!(report["valid"], true, "{report}");
        let export = admin
            .request(reqwest::Method::GET, "/audit-logs/export?format=jsonl")
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(export.contains("\"credential_name\":\"nightly runner\""));
        server.stop().await;
    }
}

#[tokio::test]
async fn a_user_token_acts_only_as_its_creator_and_its_changes_say_so() {
    for server in servers().await {
        let (admin, session_id) = session(&server).await;
        let (_, other) = admin
            .post(
                "/users",
                json!({"email": "olga@example.com", "password": "a long enough password", "roles": ["operator"]}),
            )
            .await;
        let (status, body) = admin
            .post(
                "/api-tokens",
                json!({"name": "as olga", "actor_type": "user", "user_id": other["id"], "permissions": ["monitoring.view"]}),
            )
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        assert!(
            body["error"]["details"]["fields"]["user_id"].is_string(),
            "{body}"
        );

        // A machine credential cannot mint one either: there is no user for it to act as.
        let (system, _) = token(
            &admin,
            json!({"name": "provisioner", "actor_type": "system", "permissions": ["users.manage"]}),
        )
        .await;
        let (status, body) = system
            .post(
                "/api-tokens",
                json!({"name": "as someone", "actor_type": "user", "permissions": []}),
            )
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        assert!(
            body["error"]["details"]["fields"]["actor_type"].is_string(),
            "{body}"
        );

        // The admin's own user token acts as the admin, and its entries name the token.
        let (mine, mine_id) = token(
            &admin,
            json!({"name": "admin's laptop", "actor_type": "user", "permissions": ["users.manage"]}),
        )
        .await;
        let (_, me) = admin.get("/auth/me").await;
        mine.post("/organizations", json!({"name": "Via token"}))
            .await;
        admin
            .post("/organizations", json!({"name": "Via session"}))
            .await;
        server.link_audit().await;
        let (_, page) = admin.get("/audit-logs?action=organization.create").await;
        let by_name = |name: &str| {
            page["items"]
                .as_array()
                .unwrap()
                .iter()
                .find(|e| e["resource_name"] == name)
                .unwrap()
                .clone()
        };
        let (via_token, via_session) = (by_name("Via token"), by_name("Via session"));
        assert_eq!(via_token["actor_id"], me["actor_id"]);
        assert_eq!(via_session["actor_id"], me["actor_id"]);
        assert_eq!(via_token["credential_id"], mine_id.as_str());
        assert_eq!(via_token["credential_name"], "admin's laptop");
        assert_eq!(via_session["credential_id"], session_id.as_str());
        server.stop().await;
    }
}

#[tokio::test]
async fn ingest_cannot_back_date_beyond_the_bound_or_record_the_services_actions() {
    for server in servers().await {
        let admin = server.admin().await;
        let writer = admin.token_client("agent", &["audit_logs.write"]).await;
        let refused = |body: &Value, field: &str| {
            assert!(
                body["error"]["details"]["fields"][field].is_string(),
                "{field}: {body}"
            );
        };
        for (body, field) in [
            (job(json!({"occurred_at": ago(8 * DAY)})), "occurred_at"),
            (
                job(json!({"occurred_at": "1999-01-01T00:00:00Z"})),
                "occurred_at",
            ),
            (
                job(
                    json!({"occurred_at": Timestamp::now().plus(Duration::from_secs(600)).to_string()}),
                ),
                "occurred_at",
            ),
            (job(json!({"action": "user.create"})), "action"),
            (job(json!({"action": "auth.login"})), "action"),
            (job(json!({"action": "audit_log.verify"})), "action"),
        ] {
            let (status, answer) = writer.post("/audit-logs", body).await;
            assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{answer}");
            refused(&answer, field);
        }
        let batch = json!({"entries": [
            job(json!({})),
            job(json!({"occurred_at": ago(30 * DAY)})),
            job(json!({"action": "webhook.delete"})),
        ]});
        let (status, answer) = writer.post("/audit-logs/batch", batch).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{answer}");
        refused(&answer, "entries[1].occurred_at");
        refused(&answer, "entries[2].action");
        server.link_audit().await;
        let (_, written) = admin.get("/audit-logs?action=job.run").await;
        assert_eq!(written["items"], json!([]), "a batch is all or nothing");

        // Within the bound, the entry keeps the time it claims beside the time it was stored.
        let claimed = ago(6 * DAY);
        let (status, answer) = writer
            .post("/audit-logs", job(json!({"occurred_at": claimed})))
            .await;
        assert_eq!(status, StatusCode::CREATED, "{answer}");
        let entry = latest(&server, &admin, "job.run").await;
        assert_eq!(entry["occurred_at"], claimed.as_str());
        let recorded = Timestamp::parse(entry["recorded_at"].as_str().unwrap()).unwrap();
        assert!(
            recorded.micros() > Timestamp::now().micros() - 60_000_000,
            "{entry}"
        );
        server.stop().await;
    }
}

#[tokio::test]
async fn the_back_dating_bound_follows_configuration() {
    for server in servers_with(|c| c.audit_ingest_max_backdate = Duration::from_secs(3600)).await {
        let admin = server.admin().await;
        let writer = admin.token_client("workflow", &["audit_logs.write"]).await;
        let (status, answer) = writer
            .post(
                "/audit-logs",
                job(json!({"occurred_at": ago(Duration::from_secs(7200))})),
            )
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{answer}");
        let (status, answer) = writer
            .post(
                "/audit-logs",
                job(json!({"occurred_at": ago(Duration::from_secs(1800))})),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{answer}");
        server.stop().await;
    }
}

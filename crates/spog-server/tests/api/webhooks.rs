//! Webhook subscriptions (SPEC 5.1): validation, write-only secrets, updates, deletion,
//! tenancy, and the event types.

use reqwest::StatusCode;
use serde_json::{Value, json};
use spog_server::testing::{Client, TestServer};

use crate::{servers, servers_with};

pub async fn default_organization(admin: &Client) -> String {
    let (_, orgs) = admin.get("/organizations").await;
    orgs[0]["id"].as_str().unwrap().to_owned()
}

/// Creates a webhook; `overrides` replace fields of a valid body.
pub async fn create_webhook(admin: &Client, org: &str, url: &str, overrides: Value) -> Value {
    let mut body = json!({
        "organization_id": org, "name": format!("hook {}", uuid::Uuid::now_v7()), "url": url,
        "event_types": ["job.completed"],
    });
    for (key, value) in overrides.as_object().unwrap() {
        body[key] = value.clone();
    }
    let (status, webhook) = admin.post("/webhooks", body).await;
    assert_eq!(status, StatusCode::CREATED, "{webhook}");
    webhook
}

fn field_errors(body: &Value) -> Vec<String> {
    let mut fields: Vec<String> = body["error"]["details"]["fields"]
        .as_object()
        .map(|f| f.keys().cloned().collect())
        .unwrap_or_default();
    fields.sort();
    fields
}

#[tokio::test]
async fn event_types_are_listed_with_their_descriptions() {
    for server in servers().await {
        let viewer = server
            .admin()
            .await
            .user_with_roles(&server, "viewer@example.com", &["viewer"])
            .await;
        let (status, body) = viewer.get("/webhooks/event-types").await;
        assert_eq!(status, StatusCode::OK);
        let items = body["items"].as_array().unwrap();
        assert_eq!(items.len(), 16);
        assert!(
            items
                .iter()
                .any(|t| t["event_type"] == "terminal_session.ended")
        );
        assert!(items.iter().any(|t| t["event_type"] == "host.enrolled"));
        assert_eq!(
            items[0],
            json!({"event_type": "alert.fired", "description": "Alert rule triggered."})
        );
        assert!(items.iter().any(|t| t["event_type"] == "drift.detected"));
        server.stop().await;
    }
}

#[tokio::test]
async fn invalid_webhooks_are_refused_naming_each_field() {
    for server in servers().await {
        let admin = server.admin().await;
        let org = default_organization(&admin).await;
        let (status, body) = admin
            .post(
                "/webhooks",
                json!({
                    "organization_id": org, "name": "", "url": "ftp://example.com/x",
                    "secret": "s".repeat(300),
                    "headers": {"X-Webhook-Signature": "forged"},
                    "event_types": ["job.completed", "job.exploded"],
                }),
            )
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        assert_eq!(
            field_errors(&body),
            [
                "event_types[1]",
                "headers.X-Webhook-Signature",
                "name",
                "secret",
                "url"
            ]
        );
        for (headers, field) in [
            (
                json!({"Content-Type": "text/plain"}),
                "headers.Content-Type",
            ),
            (json!({"webhook-id": "x"}), "headers.webhook-id"),
            (json!({"bad header": "x"}), "headers.bad header"),
            (json!({"X-Ok": "a\r\nInjected: yes"}), "headers.X-Ok"),
        ] {
            let (status, body) = admin
                .post(
                    "/webhooks",
                    json!({"organization_id": org, "name": "n", "url": "https://example.com/h",
                           "headers": headers, "event_types": ["job.failed"]}),
                )
                .await;
            assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
            assert_eq!(field_errors(&body), [field]);
        }
        // A literal internal address is refused when the webhook is saved.
        let (status, body) = admin
            .post(
                "/webhooks",
                json!({"organization_id": org, "name": "metadata", "url": "http://169.254.169.254/latest",
                       "event_types": ["job.failed"]}),
            )
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        assert!(
            body["error"]["details"]["fields"]["url"]
                .as_str()
                .unwrap()
                .contains("cloud metadata")
        );
        server.stop().await;
    }
}

#[tokio::test]
async fn http_targets_need_the_insecure_targets_setting() {
    for server in servers_with(|config| config.allow_insecure_targets = false).await {
        let admin = server.admin().await;
        let org = default_organization(&admin).await;
        let (status, body) = admin
            .post(
                "/webhooks",
                json!({"organization_id": org, "name": "plain", "url": "http://hooks.example.com/x",
                       "event_types": ["job.failed"]}),
            )
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        assert_eq!(field_errors(&body), ["url"]);
        create_webhook(&admin, &org, "https://hooks.example.com/x", json!({})).await;
        server.stop().await;
    }
}

#[tokio::test]
async fn names_are_unique_in_an_organization() {
    for server in servers().await {
        let admin = server.admin().await;
        let org = default_organization(&admin).await;
        let url = "https://hooks.example.com/x";
        create_webhook(&admin, &org, url, json!({"name": "ops"})).await;
        let (status, body) = admin
            .post(
                "/webhooks",
                json!({"organization_id": org, "name": "ops", "url": url, "event_types": ["job.failed"]}),
            )
            .await;
        assert_eq!(status, StatusCode::CONFLICT, "{body}");
        assert_eq!(body["error"]["code"], "conflict");
        let (_, other) = admin.post("/organizations", json!({"name": "other"})).await;
        let other = other["id"].as_str().unwrap();
        create_webhook(&admin, other, url, json!({"name": "ops"})).await;
        server.stop().await;
    }
}

async fn stored_secret(server: &TestServer, webhook: &str) -> Option<String> {
    sqlx::query_scalar("SELECT secret_ciphertext FROM webhooks WHERE id = $1")
        .bind(webhook)
        .fetch_one(&mut *server.state.store.conn().await.unwrap())
        .await
        .unwrap()
}

async fn audit_snapshots(server: &TestServer, action: &str) -> String {
    server.link_audit().await;
    let rows: Vec<(Option<String>, Option<String>, Option<String>)> = sqlx::query_as(
        "SELECT before_state, after_state, metadata FROM audit_logs WHERE action = $1",
    )
    .bind(action)
    .fetch_all(&mut *server.state.store.conn().await.unwrap())
    .await
    .unwrap();
    assert!(!rows.is_empty(), "no {action} entry");
    format!("{rows:?}")
}

#[tokio::test]
async fn the_secret_is_write_only_sealed_at_rest_and_never_audited() {
    for server in servers().await {
        let admin = server.admin().await;
        let org = default_organization(&admin).await;
        let secret = "whsec-very-secret-value";
        let webhook = create_webhook(
            &admin,
            &org,
            "https://hooks.example.com/x",
            json!({"secret": secret, "headers": {"Authorization": "Bearer abc"}}),
        )
        .await;
        let id = webhook["id"].as_str().unwrap();
        assert_eq!(webhook["has_secret"], true);
        assert!(webhook.get("secret").is_none());
        let (_, read) = admin.get(&format!("/webhooks/{id}")).await;
        assert_eq!(read["has_secret"], true);
        assert!(!read.to_string().contains(secret));
        let sealed = stored_secret(&server, id).await.unwrap();
        assert!(!sealed.contains(secret));
        let here = spog_server::keys::Binding::new("webhooks", id, "secret");
        assert_eq!(
            server.state.keys.open(&sealed, &here).as_deref(),
            Some(secret)
        );

        let rotated = "another-secret-value";
        let (status, updated) = admin
            .patch(&format!("/webhooks/{id}"), json!({"secret": rotated}))
            .await;
        assert_eq!(status, StatusCode::OK, "{updated}");
        let audit = audit_snapshots(&server, "webhook.update").await;
        assert!(audit.contains("secret_changed"));
        for text in [
            secret,
            rotated,
            "Bearer abc",
            &sealed,
            &stored_secret(&server, id).await.unwrap(),
        ] {
            assert!(!audit.contains(text), "{text} in {audit}");
            assert!(
                !audit_snapshots(&server, "webhook.create")
                    .await
                    .contains(text)
            );
        }
        let (_, removed) = admin
            .patch(&format!("/webhooks/{id}"), json!({"secret": null}))
            .await;
        assert_eq!(removed["has_secret"], false);
        assert_eq!(stored_secret(&server, id).await, None);
        server.stop().await;
    }
}

#[tokio::test]
async fn patch_changes_only_the_fields_given() {
    for server in servers().await {
        let admin = server.admin().await;
        let org = default_organization(&admin).await;
        let webhook = create_webhook(
            &admin,
            &org,
            "https://hooks.example.com/a",
            json!({"name": "a", "secret": "a long secret", "headers": {"X-Team": "ops"}}),
        )
        .await;
        let id = webhook["id"].as_str().unwrap();
        let (status, updated) = admin
            .patch(
                &format!("/webhooks/{id}"),
                json!({"event_types": ["job.failed", "host.offline"], "active": false}),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{updated}");
        assert_eq!(
            updated["event_types"],
            json!(["job.failed", "host.offline"])
        );
        assert_eq!(updated["active"], false);
        assert_eq!(updated["name"], "a");
        assert_eq!(updated["url"], "https://hooks.example.com/a");
        assert_eq!(updated["has_secret"], true);
        // Header values are write-only: the update kept it, reads never show it.
        assert_eq!(updated["headers"], json!({"X-Team": "[redacted]"}));
        let (status, body) = admin
            .patch(&format!("/webhooks/{id}"), json!({"url": "gopher://x"}))
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        let (status, body) = admin
            .patch(&format!("/webhooks/{id}"), json!({"colour": "red"}))
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        server.stop().await;
    }
}

#[tokio::test]
async fn another_accounts_webhooks_are_not_found() {
    for server in servers().await {
        let admin = server.admin().await;
        let org = default_organization(&admin).await;
        let webhook = create_webhook(&admin, &org, "https://hooks.example.com/x", json!({})).await;
        let id = webhook["id"].as_str().unwrap();
        spog_server::bootstrap::create_account(
            &server.state.store,
            "globex",
            &spog_core::validate::Email::parse("e", "root@globex.example").unwrap(),
            "globex admin password",
            spog_core::audit::Source::Cli,
        )
        .await
        .unwrap();
        let globex = server
            .login("root@globex.example", "globex admin password")
            .await;
        for (status, _) in [
            globex.get(&format!("/webhooks/{id}")).await,
            globex
                .patch(&format!("/webhooks/{id}"), json!({"name": "mine"}))
                .await,
            globex
                .post(&format!("/webhooks/{id}/test"), json!({}))
                .await,
            globex.get(&format!("/webhooks/{id}/deliveries")).await,
            globex.delete(&format!("/webhooks/{id}")).await,
        ] {
            assert_eq!(status, StatusCode::NOT_FOUND);
        }
        let (_, list) = globex.get("/webhooks").await;
        assert_eq!(list["items"], json!([]));
        let (status, body) = globex
            .post(
                "/events",
                json!({"event_type": "job.completed", "organization_id": org, "data": {}}),
            )
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        server.stop().await;
    }
}

#[tokio::test]
async fn viewers_read_webhooks_but_cannot_change_them() {
    for server in servers().await {
        let admin = server.admin().await;
        let org = default_organization(&admin).await;
        let webhook = create_webhook(&admin, &org, "https://hooks.example.com/x", json!({})).await;
        let id = webhook["id"].as_str().unwrap();
        let viewer = admin
            .user_with_roles(&server, "viewer@example.com", &["viewer"])
            .await;
        assert_eq!(
            viewer.get(&format!("/webhooks/{id}")).await.0,
            StatusCode::OK
        );
        let (_, list) = viewer
            .get(&format!("/webhooks?organization_id={org}"))
            .await;
        assert_eq!(list["items"].as_array().unwrap().len(), 1);
        assert_eq!(
            viewer.delete(&format!("/webhooks/{id}")).await.0,
            StatusCode::FORBIDDEN
        );
        assert_eq!(
            viewer
                .post(&format!("/webhooks/{id}/test"), json!({}))
                .await
                .0,
            StatusCode::FORBIDDEN
        );
        server.stop().await;
    }
}

//! The webhook and alert pages over plain HTTP: who may open them, which controls a viewer
//! without `monitoring.manage` does not get, filters parsed like the API's, and nothing of
//! another account.

use reqwest::StatusCode;
use serde_json::{Value, json};
use spog_server::testing::{Client, TestServer};

use crate::http::Visitor;
use crate::servers;

async fn page(visitor: &mut Visitor, path: &str) -> (StatusCode, String) {
    let response = visitor.get(path).await;
    (response.status(), response.text().await.unwrap())
}

async fn visitor_with(server: &TestServer, email: &str, permissions: &[&str]) -> Visitor {
    let admin = server.admin().await;
    let role = email.split('@').next().unwrap();
    admin
        .post("/roles", json!({"name": role, "permissions": permissions}))
        .await;
    admin.user_with_roles(server, email, &[role]).await;
    let mut visitor = Visitor::new(server);
    visitor.log_in_as(email, "a long enough password").await;
    visitor
}

async fn some_webhook(admin: &Client) -> (String, Value) {
    let (_, organizations) = admin.get("/organizations").await;
    let organization = organizations[0]["id"].as_str().unwrap().to_owned();
    let (status, webhook) = admin
        .post(
            "/webhooks",
            json!({"organization_id": organization, "name": "Builds",
                   "url": "http://127.0.0.1:9/builds", "event_types": ["job.failed"]}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{webhook}");
    (organization, webhook)
}

#[tokio::test]
async fn webhook_pages_need_monitoring_view_and_hide_changes_without_manage() {
    for server in servers().await {
        let admin = server.admin().await;
        let (_, webhook) = some_webhook(&admin).await;
        let id = webhook["id"].as_str().unwrap();

        let mut outsider = visitor_with(&server, "auditor@example.com", &["audit_logs.view"]).await;
        let (_, dashboard) = page(&mut outsider, "/").await;
        assert!(
            !dashboard.contains("href=\"/webhooks\""),
            "no sidebar entry"
        );
        for path in [
            "/webhooks".to_owned(),
            "/webhooks/event-types".to_owned(),
            "/webhooks/new".to_owned(),
            format!("/webhooks/{id}"),
            format!("/webhooks/{id}/deliveries"),
        ] {
            let (status, body) = page(&mut outsider, &path).await;
            assert_eq!(status, StatusCode::FORBIDDEN, "{path}");
            assert!(body.contains("monitoring."), "{path}: {body}");
        }

        let mut viewer = visitor_with(&server, "viewer@example.com", &["monitoring.view"]).await;
        let (_, dashboard) = page(&mut viewer, "/").await;
        assert!(dashboard.contains("href=\"/webhooks\""));
        let (status, list) = page(&mut viewer, "/webhooks").await;
        assert_eq!(status, StatusCode::OK);
        assert!(list.contains("Builds"));
        let (status, detail) = page(&mut viewer, &format!("/webhooks/{id}")).await;
        assert_eq!(status, StatusCode::OK);
        for control in [
            "new-webhook",
            "test-webhook",
            "edit-webhook",
            "delete-webhook",
        ] {
            assert!(
                !list.contains(control) && !detail.contains(control),
                "{control}"
            );
        }
        let (status, _) = page(&mut viewer, &format!("/webhooks/{id}/edit")).await;
        assert_eq!(status, StatusCode::FORBIDDEN);
        let (_, types) = page(&mut viewer, "/webhooks/event-types").await;
        assert!(types.contains("drift.detected") && types.contains("Configuration drift"));

        let mut manager = Visitor::new(&server);
        manager.log_in().await;
        let (_, detail) = page(&mut manager, &format!("/webhooks/{id}")).await;
        for control in ["test-webhook", "edit-webhook", "delete-webhook"] {
            assert!(detail.contains(control), "{control}");
        }
        server.stop().await;
    }
}

#[tokio::test]
async fn delivery_filters_are_parsed_like_the_apis_and_other_accounts_are_not_found() {
    for server in servers().await {
        let admin = server.admin().await;
        let (_, webhook) = some_webhook(&admin).await;
        let id = webhook["id"].as_str().unwrap().to_owned();
        let mut visitor = Visitor::new(&server);
        visitor.log_in().await;
        let (status, body) = page(
            &mut visitor,
            &format!("/webhooks/{id}/deliveries?status=lost&event_type=job.failed"),
        )
        .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
        assert!(
            body.contains("data-error-for=\"status\">must be one of pending"),
            "{body}"
        );
        let (status, body) = page(
            &mut visitor,
            &format!("/webhooks/{id}/deliveries?color=red"),
        )
        .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
        assert!(body.contains("color is not a filter"), "{body}");
        let (status, body) = page(
            &mut visitor,
            &format!("/webhooks/{id}/deliveries?status=failed"),
        )
        .await;
        assert_eq!(status, StatusCode::OK);
        assert!(body.contains("No deliveries match these filters"), "{body}");

        spog_server::bootstrap::create_account(
            &server.state.store,
            "globex",
            &spog_core::validate::Email::parse("email", "root@globex.example").unwrap(),
            "globex admin password",
            spog_core::audit::Source::Cli,
        )
        .await
        .unwrap();
        let mut globex = Visitor::new(&server);
        globex
            .log_in_as("root@globex.example", "globex admin password")
            .await;
        for path in [
            format!("/webhooks/{id}"),
            format!("/webhooks/{id}/edit"),
            format!("/webhooks/{id}/deliveries"),
            format!("/webhooks/{id}/deliveries/table"),
            format!("/webhooks/{id}/deliveries/{id}"),
            "/webhooks/not-an-id".to_owned(),
        ] {
            let (status, _) = page(&mut globex, &path).await;
            assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
        }
        let (_, list) = page(&mut globex, "/webhooks").await;
        assert!(!list.contains("Builds"));
        server.stop().await;
    }
}

#[tokio::test]
async fn alert_pages_show_rules_and_alerts_to_viewers_without_their_controls() {
    for server in servers().await {
        let admin = server.admin().await;
        let (_, organizations) = admin.get("/organizations").await;
        let organization = organizations[0]["id"].as_str().unwrap().to_owned();
        let (status, rule) = admin
            .post(
                "/alert-rules",
                json!({"kind": "event", "organization_id": organization, "name": "Drift",
                       "event_types": ["drift.detected"], "severity": "medium"}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{rule}");
        let rule_id = rule["id"].as_str().unwrap().to_owned();
        admin
            .post(
                "/events",
                json!({"event_type": "drift.detected", "organization_id": organization,
                       "data": {"hostname": "web-1"}}),
            )
            .await;
        let (_, alerts) = admin.get("/alerts").await;
        let alert_id = alerts["items"][0]["id"].as_str().unwrap().to_owned();

        let mut viewer = visitor_with(&server, "viewer@example.com", &["monitoring.view"]).await;
        let (status, list) = page(&mut viewer, "/alerts").await;
        assert_eq!(status, StatusCode::OK);
        assert!(list.contains("Drift") && list.contains("firing"), "{list}");
        assert!(
            !list.contains("/acknowledge"),
            "no Acknowledge without manage"
        );
        let (status, rules) = page(&mut viewer, "/alert-rules").await;
        assert_eq!(status, StatusCode::OK);
        assert!(rules.contains("drift.detected") && !rules.contains("new-rule"));
        let (status, rule_page) = page(&mut viewer, &format!("/alert-rules/{rule_id}")).await;
        assert_eq!(status, StatusCode::OK);
        assert!(rule_page.contains("disabled") && !rule_page.contains("rule-submit"));
        assert!(!rule_page.contains("delete-rule"));
        let (status, _) = page(&mut viewer, "/alert-rules/new").await;
        assert_eq!(status, StatusCode::FORBIDDEN);
        let (status, detail) = page(&mut viewer, &format!("/alerts/{alert_id}")).await;
        assert_eq!(status, StatusCode::OK);
        assert!(!detail.contains("alert-actions"));

        let (status, body) = page(&mut viewer, "/alerts?state=asleep").await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
        assert!(
            body.contains("must be firing, acknowledged or resolved"),
            "{body}"
        );
        let (_, resolved) = page(&mut viewer, "/alerts?state=resolved").await;
        assert!(
            resolved.contains("No alerts match these filters"),
            "{resolved}"
        );

        let mut outsider = visitor_with(&server, "auditor@example.com", &["audit_logs.view"]).await;
        for path in ["/alerts", "/alert-rules", "/alerts/table"] {
            let (status, _) = page(&mut outsider, path).await;
            assert_eq!(status, StatusCode::FORBIDDEN, "{path}");
        }

        spog_server::bootstrap::create_account(
            &server.state.store,
            "globex",
            &spog_core::validate::Email::parse("email", "root@globex.example").unwrap(),
            "globex admin password",
            spog_core::audit::Source::Cli,
        )
        .await
        .unwrap();
        let mut globex = Visitor::new(&server);
        globex
            .log_in_as("root@globex.example", "globex admin password")
            .await;
        for path in [
            format!("/alerts/{alert_id}"),
            format!("/alert-rules/{rule_id}"),
        ] {
            let (status, _) = page(&mut globex, &path).await;
            assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
        }
        let (_, list) = page(&mut globex, "/alerts").await;
        assert!(!list.contains("Drift"));
        server.stop().await;
    }
}

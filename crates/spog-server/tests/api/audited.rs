//! Every mutating route records an audit entry in its own transaction. The table below must
//! name every mutating route of the OpenAPI document, so a new route cannot be forgotten.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use spog_server::testing::{Client, TestServer};

use crate::servers;
use spog_server::testing::oidc::OidcProvider;

/// Identity providers' routes need a real provider to discover.
const NEEDS_PROVIDER: &str = "the test OpenID provider: cd crates/spog-server/tests/oidc && npm ci";

async fn audit_count(server: &TestServer) -> i64 {
    let mut conn = server.state.store.conn().await.unwrap();
    sqlx::query_scalar("SELECT COUNT(*) FROM audit_logs")
        .fetch_one(&mut *conn)
        .await
        .unwrap()
}

/// `(method, path template, path with ids, body)` for each mutating route.
async fn mutations(
    server: &TestServer,
    admin: &Client,
    issuer: &str,
) -> Vec<(Method, &'static str, String, Value)> {
    let idp = json!({"name": "Corp ID", "issuer": issuer, "client_id": "c", "client_secret": "s"});
    let (_, idp) = admin.post("/identity-providers", idp).await;
    let idp = idp["id"].as_str().expect("an identity provider").to_owned();
    let (_, orgs) = admin.get("/organizations").await;
    let org = orgs[0]["id"].as_str().unwrap().to_owned();
    let (_, extra_org) = admin
        .post("/organizations", json!({"name": "to delete"}))
        .await;
    let extra_org = extra_org["id"].as_str().unwrap().to_owned();
    let (_, host) = admin
        .post("/hosts", json!({"organization_id": org, "hostname": "h-1"}))
        .await;
    let host = host["id"].as_str().unwrap().to_owned();
    let (_, user) = admin
        .post(
            "/users",
            json!({"email": "u@example.com", "roles": ["viewer"]}),
        )
        .await;
    let user = user["id"].as_str().unwrap().to_owned();
    let (_, role) = admin
        .post("/roles", json!({"name": "custom", "permissions": []}))
        .await;
    let role = role["id"].as_str().unwrap().to_owned();
    let (_, token) = admin
        .post(
            "/api-tokens",
            json!({"name": "t", "actor_type": "system", "permissions": []}),
        )
        .await;
    let token = token["api_token"]["id"].as_str().unwrap().to_owned();
    let (webhook, delivery) = failed_delivery(server, admin, &org).await;
    let ends_at =
        spog_core::Timestamp::from_micros(spog_core::Timestamp::now().micros() + 3_600_000_000);
    let silence_body = json!({"organization_id": org, "ends_at": ends_at, "comment": "c",
        "matchers": [{"name": "severity", "op": "=", "value": "critical"}]});
    let (_, silence) = admin.post("/silences", silence_body.clone()).await;
    let silence = silence["id"].as_str().expect("a silence").to_owned();
    let (_, silent_host) = admin
        .post("/hosts", json!({"organization_id": org, "hostname": "h-3"}))
        .await;
    let silent_host = silent_host["id"].as_str().unwrap().to_owned();
    let rule = json!({"kind": "event", "organization_id": org, "name": "setup rule", "event_types": ["drift.detected"], "severity": "low"});
    let (_, rule) = admin.post("/alert-rules", rule).await;
    let rule = rule["id"].as_str().unwrap().to_owned();
    admin
        .post(
            "/events",
            json!({"event_type": "drift.detected", "organization_id": org, "data": {}}),
        )
        .await;
    let (_, alerts) = admin.get("/alerts").await;
    let alert = alerts["items"][0]["id"].as_str().unwrap().to_owned();
    let (channel, channel_delivery) = failed_channel_delivery(server, admin, &org).await;
    let (_, me) = admin.get("/auth/me").await;
    let me = me["user_id"].as_str().unwrap().to_owned();
    let terminal =
        json!({"host_id": silent_host, "user_id": me, "shell": "sh", "width": 80, "height": 24});
    let (_, session) = admin.post("/terminal/sessions", terminal.clone()).await;
    let terminal_recording = session["recording_id"].as_str().unwrap().to_owned();
    let session = session["id"].as_str().unwrap().to_owned();
    let desktop = json!({"host_id": silent_host, "user_id": me, "width": 800, "height": 600});
    let (_, recording) = admin.post("/desktop/recordings", desktop.clone()).await;
    let recording = recording["id"].as_str().unwrap().to_owned();
    let (revocable, _) = crate::agents::enrollment_token(admin, json!({})).await;
    let (_, enrolling) = crate::agents::enrollment_token(admin, json!({})).await;
    let (enrolled, _) = crate::agents::enrolled(server, admin, "enrolled-host").await;
    server.admin().await;
    let (_, sessions) = admin.get("/auth/me/sessions").await;
    let other_session = sessions[0]["id"].as_str().unwrap().to_owned();
    let (_, own_token) = admin
        .post(
            "/auth/me/api-tokens",
            json!({"name": "mine", "permissions": []}),
        )
        .await;
    let own_token = own_token["api_token"]["id"].as_str().unwrap().to_owned();
    let stream_sink = json!({"type": "https", "url": "https://127.0.0.1:9/in"});
    let (_, stream) = admin
        .post(
            "/audit-streams",
            json!({"name": "setup stream", "sink": stream_sink, "format": "native", "paused": true}),
        )
        .await;
    let stream = stream["id"].as_str().unwrap().to_owned();
    vec![
        (
            Method::POST,
            "/audit-streams",
            "/audit-streams".into(),
            json!({"name": "audited stream", "sink": stream_sink, "format": "native"}),
        ),
        (
            Method::PATCH,
            "/audit-streams/{id}",
            format!("/audit-streams/{stream}"),
            json!({"name": "renamed stream"}),
        ),
        (
            Method::POST,
            "/audit-streams/{id}/pause",
            format!("/audit-streams/{stream}/pause"),
            json!({}),
        ),
        (
            Method::POST,
            "/audit-streams/{id}/resume",
            format!("/audit-streams/{stream}/resume"),
            json!({}),
        ),
        (
            Method::POST,
            "/audit-streams/{id}/backfill",
            format!("/audit-streams/{stream}/backfill"),
            json!({"from_seq": 1}),
        ),
        (
            Method::POST,
            "/audit-streams/{id}/test",
            format!("/audit-streams/{stream}/test"),
            json!({}),
        ),
        (
            Method::DELETE,
            "/audit-streams/{id}",
            format!("/audit-streams/{stream}"),
            Value::Null,
        ),
        (
            Method::POST,
            "/enrollment-tokens",
            "/enrollment-tokens".into(),
            json!({"description": "rack 1"}),
        ),
        (
            Method::DELETE,
            "/enrollment-tokens/{id}",
            format!("/enrollment-tokens/{revocable}"),
            Value::Null,
        ),
        (
            Method::POST,
            "/agent/enroll",
            "/agent/enroll".into(),
            json!({"token": enrolling, "hostname": "new-agent-host"}),
        ),
        (
            Method::DELETE,
            "/hosts/{id}/agent",
            format!("/hosts/{enrolled}/agent"),
            Value::Null,
        ),
        (
            Method::POST,
            "/auth/login",
            "/auth/login".into(),
            json!({"email": spog_server::testing::ADMIN_EMAIL, "password": spog_server::testing::ADMIN_PASSWORD}),
        ),
        (
            Method::POST,
            "/users",
            "/users".into(),
            json!({"email": "new@example.com", "roles": []}),
        ),
        (
            Method::PATCH,
            "/users/{id}",
            format!("/users/{user}"),
            json!({"display_name": "Renamed"}),
        ),
        (
            Method::POST,
            "/identity-providers",
            "/identity-providers".into(),
            json!({"name": "Other ID", "issuer": issuer, "client_id": "c", "token_auth_method": "none"}),
        ),
        (
            Method::PATCH,
            "/identity-providers/{id}",
            format!("/identity-providers/{idp}"),
            json!({"jit_provisioning": true}),
        ),
        (
            Method::POST,
            "/identity-providers/{id}/test",
            format!("/identity-providers/{idp}/test"),
            json!({}),
        ),
        (
            Method::DELETE,
            "/identity-providers/{id}",
            format!("/identity-providers/{idp}"),
            Value::Null,
        ),
        (
            Method::PUT,
            "/auth-settings",
            "/auth-settings".into(),
            json!({"sso_only": false, "break_glass_user_ids": []}),
        ),
        (
            Method::POST,
            "/roles",
            "/roles".into(),
            json!({"name": "another", "permissions": ["monitoring.view"]}),
        ),
        (
            Method::PATCH,
            "/roles/{id}",
            format!("/roles/{role}"),
            json!({"description": "changed"}),
        ),
        (
            Method::DELETE,
            "/roles/{id}",
            format!("/roles/{role}"),
            Value::Null,
        ),
        (
            Method::POST,
            "/organizations",
            "/organizations".into(),
            json!({"name": "fresh"}),
        ),
        (
            Method::PATCH,
            "/organizations/{id}",
            format!("/organizations/{org}"),
            json!({"name": "renamed"}),
        ),
        (
            Method::DELETE,
            "/organizations/{id}",
            format!("/organizations/{extra_org}"),
            Value::Null,
        ),
        (
            Method::POST,
            "/api-tokens",
            "/api-tokens".into(),
            json!({"name": "n", "actor_type": "agent", "permissions": []}),
        ),
        (
            Method::DELETE,
            "/api-tokens/{id}",
            format!("/api-tokens/{token}"),
            Value::Null,
        ),
        (
            Method::POST,
            "/hosts",
            "/hosts".into(),
            json!({"organization_id": org, "hostname": "h-2"}),
        ),
        (
            Method::PATCH,
            "/hosts/{id}",
            format!("/hosts/{host}"),
            json!({"name": "renamed"}),
        ),
        (
            Method::POST,
            "/hosts/{id}/access/{user_id}",
            format!("/hosts/{host}/access/{user}"),
            json!({}),
        ),
        (
            Method::DELETE,
            "/hosts/{id}/access/{user_id}",
            format!("/hosts/{host}/access/{user}"),
            Value::Null,
        ),
        (
            Method::DELETE,
            "/hosts/{id}",
            format!("/hosts/{host}"),
            Value::Null,
        ),
        (
            Method::POST,
            "/events",
            "/events".into(),
            json!({"event_type": "job.failed", "organization_id": org, "data": {"job": 1}}),
        ),
        (
            Method::POST,
            "/webhooks",
            "/webhooks".into(),
            json!({"organization_id": org, "name": "audited", "url": "https://hooks.example.com/x",
                   "event_types": ["host.online"]}),
        ),
        (
            Method::PATCH,
            "/webhooks/{id}",
            format!("/webhooks/{webhook}"),
            json!({"active": false}),
        ),
        (
            Method::POST,
            "/webhooks/{id}/test",
            format!("/webhooks/{webhook}/test"),
            json!({}),
        ),
        (
            Method::POST,
            "/webhooks/{id}/deliveries/{delivery_id}/retry",
            format!("/webhooks/{webhook}/deliveries/{delivery}/retry"),
            json!({}),
        ),
        (
            Method::DELETE,
            "/webhooks/{id}",
            format!("/webhooks/{webhook}"),
            Value::Null,
        ),
        (
            Method::DELETE,
            "/users/{id}",
            format!("/users/{user}"),
            Value::Null,
        ),
        (
            Method::POST,
            "/audit-logs",
            "/audit-logs".into(),
            json!({"action": "job.run", "resource_type": "job", "outcome": "success"}),
        ),
        (
            Method::POST,
            "/audit-logs/batch",
            "/audit-logs/batch".into(),
            json!({"entries": [{"action": "job.run", "resource_type": "job", "outcome": "success"}]}),
        ),
        (
            Method::POST,
            "/audit-logs/checkpoints",
            "/audit-logs/checkpoints".into(),
            json!({}),
        ),
        (
            Method::POST,
            "/notifications",
            "/notifications".into(),
            json!({"broadcast": true, "category": "system", "severity": "info", "title": "t", "message": "m"}),
        ),
        // A host's first heartbeat brings it online, on record.
        (
            Method::POST,
            "/hosts/{id}/heartbeat",
            format!("/hosts/{silent_host}/heartbeat"),
            json!({}),
        ),
        (
            Method::POST,
            "/alert-rules",
            "/alert-rules".into(),
            json!({"kind": "metric", "organization_id": org, "name": "cpu", "metric": "cpu", "operator": ">", "threshold": 90, "for_seconds": 0, "severity": "low"}),
        ),
        (
            Method::PATCH,
            "/alert-rules/{id}",
            format!("/alert-rules/{rule}"),
            json!({"enabled": false}),
        ),
        (
            Method::POST,
            "/alerts/{id}/acknowledge",
            format!("/alerts/{alert}/acknowledge"),
            json!({}),
        ),
        (
            Method::POST,
            "/alerts/{id}/resolve",
            format!("/alerts/{alert}/resolve"),
            json!({}),
        ),
        (Method::POST, "/silences", "/silences".into(), silence_body),
        (
            Method::PATCH,
            "/silences/{id}",
            format!("/silences/{silence}"),
            json!({"comment": "longer"}),
        ),
        (
            Method::POST,
            "/silences/{id}/expire",
            format!("/silences/{silence}/expire"),
            json!({}),
        ),
        (
            Method::DELETE,
            "/alert-rules/{id}",
            format!("/alert-rules/{rule}"),
            Value::Null,
        ),
        (
            Method::POST,
            "/notification-channels",
            "/notification-channels".into(),
            json!({"organization_id": org, "name": "audited", "type": "smtp",
                   "config": {"smtp_host": "mail.example.com", "from_address": "a@example.com",
                              "to_addresses": ["b@example.com"], "smtp_password": "pw"}}),
        ),
        (
            Method::PATCH,
            "/notification-channels/{id}",
            format!("/notification-channels/{channel}"),
            json!({"enabled": false}),
        ),
        (
            Method::POST,
            "/notification-channels/{id}/test",
            format!("/notification-channels/{channel}/test"),
            json!({}),
        ),
        (
            Method::POST,
            "/notification-channels/{id}/deliveries/{delivery_id}/retry",
            format!("/notification-channels/{channel}/deliveries/{channel_delivery}/retry"),
            json!({}),
        ),
        (
            Method::DELETE,
            "/notification-channels/{id}",
            format!("/notification-channels/{channel}"),
            Value::Null,
        ),
        (
            Method::POST,
            "/terminal/sessions",
            "/terminal/sessions".into(),
            terminal,
        ),
        (
            Method::POST,
            "/terminal/sessions/{id}/end",
            format!("/terminal/sessions/{session}/end"),
            json!({}),
        ),
        (
            Method::PUT,
            "/terminal/recordings/{id}/legal-hold",
            format!("/terminal/recordings/{terminal_recording}/legal-hold"),
            json!({"hold": false}),
        ),
        (
            Method::DELETE,
            "/terminal/recordings/{id}",
            format!("/terminal/recordings/{terminal_recording}"),
            Value::Null,
        ),
        (
            Method::POST,
            "/desktop/recordings",
            "/desktop/recordings".into(),
            desktop,
        ),
        (
            Method::POST,
            "/desktop/recordings/{id}/end",
            format!("/desktop/recordings/{recording}/end"),
            json!({}),
        ),
        (
            Method::PUT,
            "/desktop/recordings/{id}/legal-hold",
            format!("/desktop/recordings/{recording}/legal-hold"),
            json!({"hold": false}),
        ),
        (
            Method::DELETE,
            "/desktop/recordings/{id}",
            format!("/desktop/recordings/{recording}"),
            Value::Null,
        ),
        (
            Method::PATCH,
            "/recording-settings",
            "/recording-settings".into(),
            json!({"retention_days": 30}),
        ),
        (
            Method::POST,
            "/auth/me/api-tokens",
            "/auth/me/api-tokens".into(),
            json!({"name": "another", "permissions": []}),
        ),
        (
            Method::DELETE,
            "/auth/me/api-tokens/{id}",
            format!("/auth/me/api-tokens/{own_token}"),
            Value::Null,
        ),
        (
            Method::DELETE,
            "/auth/me/sessions/{id}",
            format!("/auth/me/sessions/{other_session}"),
            Value::Null,
        ),
        (
            Method::POST,
            "/auth/me/sessions/revoke-others",
            "/auth/me/sessions/revoke-others".into(),
            json!({}),
        ),
        // Late: it ends the admin's other credentials.
        (
            Method::POST,
            "/auth/me/password",
            "/auth/me/password".into(),
            json!({"current_password": spog_server::testing::ADMIN_PASSWORD,
                   "new_password": "a new admin password"}),
        ),
        // Last: it ends the admin's session.
        (
            Method::POST,
            "/auth/logout",
            "/auth/logout".into(),
            json!({}),
        ),
    ]
}

/// A webhook to a port nothing listens on, with one delivery marked failed.
async fn failed_delivery(server: &TestServer, admin: &Client, org: &str) -> (String, String) {
    let (_, webhook) = admin
        .post(
            "/webhooks",
            json!({"organization_id": org, "name": "unreachable", "url": "http://127.0.0.1:9/",
                   "event_types": ["job.completed"]}),
        )
        .await;
    let webhook = webhook["id"].as_str().unwrap().to_owned();
    admin
        .post(
            "/events",
            json!({"event_type": "job.completed", "organization_id": org, "data": {}}),
        )
        .await;
    let delivery: String = sqlx::query_scalar(
        "UPDATE deliveries SET status = 'failed', next_attempt_at = NULL, lease_token = NULL \
         WHERE target_id = $1 RETURNING id",
    )
    .bind(&webhook)
    .fetch_one(&mut *server.state.store.conn().await.unwrap())
    .await
    .unwrap();
    (webhook, delivery)
}

/// A Slack channel to a port nothing listens on, linked to a rule that fired, with its one
/// delivery marked failed.
async fn failed_channel_delivery(
    server: &TestServer,
    admin: &Client,
    org: &str,
) -> (String, String) {
    let (_, channel) = admin
        .post(
            "/notification-channels",
            json!({"organization_id": org, "name": "unreachable", "type": "slack",
                   "config": {"webhook_url": "http://127.0.0.1:9/"}}),
        )
        .await;
    let channel = channel["id"].as_str().unwrap().to_owned();
    admin
        .post(
            "/alert-rules",
            json!({"kind": "event", "organization_id": org, "name": "scan rule",
                   "event_types": ["compliance.scan_completed"], "severity": "low", "channel_ids": [channel]}),
        )
        .await;
    admin
        .post(
            "/events",
            json!({"event_type": "compliance.scan_completed", "organization_id": org, "data": {}}),
        )
        .await;
    let delivery: String = sqlx::query_scalar(
        "UPDATE deliveries SET status = 'failed', next_attempt_at = NULL, lease_token = NULL \
         WHERE target_id = $1 RETURNING id",
    )
    .bind(&channel)
    .fetch_one(&mut *server.state.store.conn().await.unwrap())
    .await
    .unwrap();
    (channel, delivery)
}

/// Mutations SPEC 3.1 leaves off the record: a user marking their own notifications read.
/// Metric samples are readings, not changes: the alerts they fire and resolve are on record.
/// Recording events and frames are the recording itself (its file is their record); the
/// session's start and end are audited.
const UNAUDITED: [(&str, &str); 7] = [
    // A preview shows what would be sent and changes nothing (SPEC 7.4).
    ("POST", "/alert-rules/{id}/preview"),
    ("POST", "/desktop/recordings/{id}/frames"),
    ("POST", "/metrics"),
    ("POST", "/notification-channels/{id}/preview"),
    ("POST", "/notifications/read-all"),
    ("POST", "/notifications/{id}/read"),
    ("POST", "/terminal/sessions/{id}/events"),
];

fn mutating_routes_of_the_api() -> Vec<(String, String)> {
    let (_, openapi) = spog_server::app::api();
    let mut routes = Vec::new();
    for (path, item) in &openapi.paths.paths {
        for (method, operation) in [
            ("POST", &item.post),
            ("PATCH", &item.patch),
            ("PUT", &item.put),
            ("DELETE", &item.delete),
        ] {
            if operation.is_some() && !UNAUDITED.contains(&(method, path.as_str())) {
                routes.push((method.to_owned(), path.clone()));
            }
        }
    }
    routes.sort();
    routes
}

#[tokio::test]
async fn every_mutating_route_records_an_audit_entry() {
    let oidc = OidcProvider::start().expect(NEEDS_PROVIDER);
    for server in servers().await {
        let admin = server.admin().await;
        let table = mutations(&server, &admin, &oidc.issuer).await;
        let mut covered: Vec<(String, String)> = table
            .iter()
            .map(|(m, p, _, _)| (m.to_string(), p.to_string()))
            .collect();
        covered.sort();
        assert_eq!(
            covered,
            mutating_routes_of_the_api(),
            "add the new mutating route to this table"
        );
        for (method, template, path, body) in table {
            let before = audit_count(&server).await;
            let body = (!body.is_null()).then_some(body);
            let (status, response) = admin.send(method.clone(), &path, body).await;
            assert!(
                status.is_success(),
                "{method} {template}: {status} {response}"
            );
            assert_eq!(
                audit_count(&server).await,
                before + 1,
                "{method} {template} recorded no entry"
            );
        }
        server.stop().await;
    }
}

/// The actions the OpenAPI document publishes (`AuditAction`), each with its resource type.
fn published_catalogue() -> Vec<(String, String)> {
    let (_, openapi) = spog_server::app::api();
    let document = serde_json::to_value(&openapi).unwrap();
    let schema = &document["components"]["schemas"]["AuditAction"];
    let description = schema["description"].as_str().unwrap();
    schema["enum"]
        .as_array()
        .unwrap()
        .iter()
        .map(|action| {
            let action = action.as_str().unwrap();
            let row = format!("- `{action}` (");
            let at = description.find(&row).expect("each action described") + row.len();
            let resource_type = &description[at..at + description[at..].find(')').unwrap()];
            (action.to_owned(), resource_type.to_owned())
        })
        .collect()
}

#[tokio::test]
async fn every_action_recorded_is_in_the_published_catalogue_with_its_resource_type() {
    let oidc = OidcProvider::start().expect(NEEDS_PROVIDER);
    let catalogue = published_catalogue();
    for server in servers().await {
        let admin = server.admin().await;
        for (method, _, path, body) in mutations(&server, &admin, &oidc.issuer).await {
            let body = (!body.is_null()).then_some(body);
            admin.send(method, &path, body).await;
        }
        let recorded: Vec<(String, String)> =
            sqlx::query_as("SELECT DISTINCT action, resource_type FROM audit_logs")
                .fetch_all(&mut *server.state.store.conn().await.unwrap())
                .await
                .unwrap();
        assert!(recorded.len() > 30, "{recorded:?}");
        // Entries ingested from other components (`job.run`) name actions of their own.
        for entry in recorded
            .into_iter()
            .filter(|(action, _)| spog_core::audit::is_server_action(action))
        {
            assert!(catalogue.contains(&entry), "{entry:?} is not published");
        }
        server.stop().await;
    }
}

#[tokio::test]
async fn refused_mutations_and_failed_logins_are_recorded_as_failures() {
    for server in servers().await {
        let admin = server.admin().await;
        let viewer = admin
            .user_with_roles(&server, "v@example.com", &["viewer"])
            .await;
        let before = audit_count(&server).await;
        assert_eq!(
            viewer
                .post("/users", json!({"email": "x@example.com"}))
                .await
                .0,
            StatusCode::FORBIDDEN
        );
        let bad = server
            .anonymous()
            .post(
                "/auth/login",
                json!({"email": "v@example.com", "password": "wrong password!"}),
            )
            .await;
        assert_eq!(bad.0, StatusCode::UNAUTHORIZED);
        assert_eq!(audit_count(&server).await, before + 2);
        let failures: Vec<(String, String)> = sqlx::query_as(
            "SELECT action, actor_email FROM audit_logs WHERE outcome = 'failure' ORDER BY id",
        )
        .fetch_all(&mut *server.state.store.conn().await.unwrap())
        .await
        .unwrap();
        assert_eq!(
            failures,
            [
                ("permission.denied".to_owned(), "v@example.com".to_owned()),
                ("auth.login".to_owned(), "v@example.com".to_owned())
            ]
        );
        server.stop().await;
    }
}

#[tokio::test]
async fn reading_ones_own_notifications_is_not_audited() {
    for server in servers().await {
        let admin = server.admin().await;
        admin.post("/notifications", json!({"broadcast": true, "category": "system", "severity": "info", "title": "t", "message": "m"})).await;
        let (_, list) = admin.get("/notifications").await;
        let id = list["items"][0]["id"].as_str().unwrap().to_owned();
        server.link_audit().await;
        let before = audit_count(&server).await;
        assert_eq!(
            admin
                .post(&format!("/notifications/{id}/read"), json!({}))
                .await
                .0,
            StatusCode::OK
        );
        assert_eq!(
            admin.post("/notifications/read-all", json!({})).await.0,
            StatusCode::OK
        );
        assert_eq!(audit_count(&server).await, before);
        server.stop().await;
    }
}

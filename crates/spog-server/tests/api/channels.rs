//! Notification channels (SPEC 7): CRUD with write-only encrypted secrets, validation, the
//! synchronous test against real peers (an SMTP server, HTTP receivers standing in for Slack,
//! Teams and a webhook), and alerts delivered to every linked channel in its format.

use std::time::Duration;

use base64::Engine;
use hmac::{Hmac, Mac};
use reqwest::StatusCode;
use serde_json::{Value, json};
use sha2::Sha256;
use spog_server::testing::{Client, TestServer};

use crate::receiver::{Answer, Received, Receiver};
use crate::servers;
use crate::smtp::SmtpServer;

const WITHIN: Duration = Duration::from_secs(15);

async fn organization(admin: &Client) -> String {
    let (_, orgs) = admin.get("/organizations").await;
    orgs[0]["id"].as_str().unwrap().to_owned()
}

async fn create(admin: &Client, body: Value) -> Value {
    let (status, channel) = admin.post("/notification-channels", body).await;
    assert_eq!(status, StatusCode::CREATED, "{channel}");
    channel
}

fn smtp_config(port: u16) -> Value {
    json!({"smtp_host": "127.0.0.1", "smtp_port": port, "from_address": "spog@example.com",
           "to_addresses": ["ops@example.com", "oncall@example.com"], "use_tls": false})
}

async fn audit_rows(server: &TestServer, like: &str) -> Vec<String> {
    let mut conn = server.state.store.conn().await.unwrap();
    sqlx::query_scalar(
        "SELECT COALESCE(before_state, '') || COALESCE(after_state, '') || COALESCE(metadata, '') \
         FROM audit_logs WHERE action LIKE $1",
    )
    .bind(like)
    .fetch_all(&mut *conn)
    .await
    .unwrap()
}

#[tokio::test]
async fn channel_secrets_are_write_only_encrypted_and_never_audited() {
    for server in servers().await {
        let admin = server.admin().await;
        let org = organization(&admin).await;
        let mut config = smtp_config(2525);
        config["smtp_username"] = json!("mailer");
        config["smtp_password"] = json!("smtp-pass-0xCAFE");
        let mail = create(
            &admin,
            json!({"organization_id": org, "name": "Ops mail", "type": "email", "config": config}),
        )
        .await;
        assert_eq!(mail["type"], "smtp");
        assert_eq!(mail["config"]["has_smtp_password"], true);
        assert_eq!(mail["config"]["smtp_port"], 2525);
        assert!(mail["config"].get("smtp_password").is_none(), "{mail}");
        let hook = create(
            &admin,
            json!({"organization_id": org, "name": "Hook", "type": "webhook",
                   "config": {"url": "https://hooks.example.com/spog", "secret": "hmac-secret-0xBEEF"}}),
        )
        .await;
        assert_eq!(hook["config"]["has_secret"], true);
        let id = mail["id"].as_str().unwrap();

        // The same name in the organization is a conflict.
        let (status, body) = admin
            .post(
                "/notification-channels",
                json!({"organization_id": org, "name": "Ops mail", "type": "slack",
                       "config": {"webhook_url": "https://hooks.slack.com/x"}}),
            )
            .await;
        assert_eq!(status, StatusCode::CONFLICT, "{body}");

        // A change that leaves the password out keeps it; `null` removes it.
        let mut changed = smtp_config(2526);
        changed["smtp_username"] = json!("mailer");
        let (status, body) = admin
            .patch(
                &format!("/notification-channels/{id}"),
                json!({"config": changed}),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["config"]["has_smtp_password"], true);
        assert_eq!(body["config"]["smtp_port"], 2526);

        // Neither the database nor the audit trail holds a secret in clear.
        let mut conn = server.state.store.conn().await.unwrap();
        let stored: Vec<String> = sqlx::query_scalar(
            "SELECT config || COALESCE(secrets_ciphertext, '') FROM notification_channels",
        )
        .fetch_all(&mut *conn)
        .await
        .unwrap();
        drop(conn);
        let audit = audit_rows(&server, "notification_channel.%").await;
        assert_eq!(audit.len(), 3);
        for text in stored.iter().chain(&audit) {
            assert!(!text.contains("smtp-pass-0xCAFE"), "{text}");
            assert!(!text.contains("hmac-secret-0xBEEF"), "{text}");
        }

        let (status, body) = admin
            .patch(
                &format!("/notification-channels/{id}"),
                json!({"config": {"smtp_host": "mail.example.com", "from_address": "a@example.com",
                                  "to_addresses": ["b@example.com"], "smtp_password": null}}),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["config"]["has_smtp_password"], false);
        assert_eq!(body["config"]["smtp_port"], 587);

        let (_, list) = admin
            .get(&format!("/notification-channels?organization_id={org}"))
            .await;
        assert_eq!(list["items"].as_array().unwrap().len(), 2);
        assert_eq!(
            admin
                .delete(&format!("/notification-channels/{id}"))
                .await
                .0,
            StatusCode::NO_CONTENT
        );
        assert_eq!(
            admin.get(&format!("/notification-channels/{id}")).await.0,
            StatusCode::NOT_FOUND
        );
        server.stop().await;
    }
}

#[tokio::test]
async fn invalid_configurations_are_422_naming_the_field() {
    for server in servers().await {
        let admin = server.admin().await;
        let org = organization(&admin).await;
        let cases = [
            (
                "smtp",
                json!({"smtp_host": "mail.example.com", "from_address": "not-an-address", "to_addresses": ["a@example.com"]}),
                "config.from_address",
            ),
            (
                "smtp",
                json!({"smtp_host": "mail.example.com", "from_address": "a@example.com", "to_addresses": ["a@example.com", "b@"]}),
                "config.to_addresses[1]",
            ),
            (
                "smtp",
                json!({"smtp_host": "mail.example.com", "smtp_port": 70000, "from_address": "a@example.com", "to_addresses": ["a@example.com"]}),
                "config.smtp_port",
            ),
            (
                "smtp",
                json!({"from_address": "a@example.com", "to_addresses": ["a@example.com"]}),
                "config.smtp_host",
            ),
            (
                "smtp",
                json!({"smtp_host": "mail.example.com", "from_address": "a@example.com"}),
                "config.to_addresses",
            ),
            // The outbound guard covers SMTP too.
            (
                "smtp",
                json!({"smtp_host": "169.254.169.254", "from_address": "a@example.com", "to_addresses": ["a@example.com"]}),
                "config.smtp_host",
            ),
            (
                "slack",
                json!({"webhook_url": "ftp://hooks.slack.com/x"}),
                "config.webhook_url",
            ),
            ("slack", json!({}), "config.webhook_url"),
            (
                "webhook",
                json!({"url": "file:///etc/passwd"}),
                "config.url",
            ),
            (
                "webhook",
                json!({"url": "https://169.254.169.254/latest"}),
                "config.url",
            ),
            (
                "teams",
                json!({"webhook_url": "https://example.webhook.office.com/x", "format": "hero_card"}),
                "config.format",
            ),
            (
                "teams",
                json!({"webhook_url": "https://x.example.com/", "colour": "red"}),
                "config.colour",
            ),
        ];
        for (channel_type, config, field) in cases {
            let (status, body) = admin
                .post(
                    "/notification-channels",
                    json!({"organization_id": org, "name": "bad", "type": channel_type, "config": config}),
                )
                .await;
            assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{field}: {body}");
            assert!(
                body["error"]["details"]["fields"].get(field).is_some(),
                "{field}: {body}"
            );
        }
        let (status, body) = admin
            .post(
                "/notification-channels",
                json!({"organization_id": org, "name": "bad", "type": "pager", "config": {}}),
            )
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        assert!(body["error"]["details"]["fields"].get("type").is_some());
        let (status, body) = admin
            .post(
                "/notification-channels",
                json!({"organization_id": org, "type": "slack", "config": {}}),
            )
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        assert!(body["error"]["details"]["fields"].get("name").is_some());
        server.stop().await;
    }
}

#[tokio::test]
async fn channels_need_monitoring_permissions_and_rules_link_only_their_organizations() {
    for server in servers().await {
        let admin = server.admin().await;
        let org = organization(&admin).await;
        let viewer = admin
            .user_with_roles(&server, "viewer@example.com", &["viewer"])
            .await;
        let slack = json!({"organization_id": org, "name": "Slack", "type": "slack",
                           "config": {"webhook_url": "https://hooks.slack.com/services/x"}});
        assert_eq!(
            viewer.post("/notification-channels", slack.clone()).await.0,
            StatusCode::FORBIDDEN
        );
        let channel = create(&admin, slack).await;
        let id = channel["id"].as_str().unwrap();
        assert_eq!(
            viewer.get(&format!("/notification-channels/{id}")).await.0,
            StatusCode::OK
        );
        assert_eq!(
            viewer
                .post(&format!("/notification-channels/{id}/test"), json!({}))
                .await
                .0,
            StatusCode::FORBIDDEN
        );

        // A channel of another organization cannot be linked: 404.
        let (_, other) = admin
            .post("/organizations", json!({"name": "elsewhere"}))
            .await;
        let other = other["id"].as_str().unwrap();
        let rule = |channel: &str| {
            json!({"kind": "event", "organization_id": other, "name": format!("r {channel}"),
                   "event_types": ["job.failed"], "severity": "high", "channel_ids": [channel]})
        };
        assert_eq!(
            admin.post("/alert-rules", rule(id)).await.0,
            StatusCode::NOT_FOUND
        );

        // Another account sees none of it.
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
        assert_eq!(
            globex.get(&format!("/notification-channels/{id}")).await.0,
            StatusCode::NOT_FOUND
        );
        assert_eq!(
            globex
                .post(&format!("/notification-channels/{id}/test"), json!({}))
                .await
                .0,
            StatusCode::NOT_FOUND
        );
        let globex_org = organization(&globex).await;
        let (status, _) = globex
            .post(
                "/alert-rules",
                json!({"kind": "event", "organization_id": globex_org, "name": "steal",
                       "event_types": ["job.failed"], "severity": "high", "channel_ids": [id]}),
            )
            .await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        server.stop().await;
    }
}

#[tokio::test]
async fn testing_an_email_channel_sends_through_a_real_smtp_server() {
    let Some(smtp) = SmtpServer::start().await else {
        return;
    };
    for server in servers().await {
        let admin = server.admin().await;
        let org = organization(&admin).await;
        let before = smtp.messages().len();
        let channel = create(
            &admin,
            json!({"organization_id": org, "name": "Mail", "type": "smtp", "config": smtp_config(smtp.port)}),
        )
        .await;
        let id = channel["id"].as_str().unwrap();
        let (status, result) = admin
            .post(&format!("/notification-channels/{id}/test"), json!({}))
            .await;
        assert_eq!(status, StatusCode::OK, "{result}");
        assert_eq!(result["success"], true, "{result}");
        assert_eq!(result["status_code"], 250);
        assert!(result["duration_ms"].is_u64());
        let mails = smtp.wait_for(before + 1, WITHIN).await;
        let mail = &mails[before];
        assert_eq!(
            mail.header("Subject").as_deref(),
            Some("Test notification from spog")
        );
        assert_eq!(
            mail.header("X-RcptTo").as_deref(),
            Some("ops@example.com, oncall@example.com")
        );
        assert!(mail.raw.contains("multipart/alternative"), "{}", mail.raw);
        assert!(mail.raw.contains("text/html"));

        // STARTTLS is required when use_tls is set: this server offers none, so nothing is sent.
        let mut tls = smtp_config(smtp.port);
        tls["use_tls"] = json!(true);
        let (status, body) = admin
            .patch(
                &format!("/notification-channels/{id}"),
                json!({"config": tls}),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let (_, result) = admin
            .post(&format!("/notification-channels/{id}/test"), json!({}))
            .await;
        assert_eq!(result["success"], false, "{result}");
        assert!(result["error"].as_str().unwrap().len() > 3, "{result}");
        assert_eq!(smtp.messages().len(), before + 1);
        server.stop().await;
    }
}

#[tokio::test]
async fn testing_http_channels_reports_the_outcome() {
    for server in servers().await {
        let admin = server.admin().await;
        let org = organization(&admin).await;
        let receiver = Receiver::start(Answer::Text(200, "ok")).await;
        let slack = create(
            &admin,
            json!({"organization_id": org, "name": "Slack", "type": "slack",
                   "config": {"webhook_url": receiver.url("/slack"), "channel": "#ops"}}),
        )
        .await;
        let path = format!(
            "/notification-channels/{}/test",
            slack["id"].as_str().unwrap()
        );
        let (_, result) = admin.post(&path, json!({})).await;
        assert_eq!(result["success"], true, "{result}");
        assert_eq!(result["status_code"], 200);
        let received = receiver.wait_for(1, WITHIN).await;
        let body = received[0].json();
        assert_eq!(body["channel"], "#ops");
        assert_eq!(body["attachments"][0]["color"], "#1976D2");
        assert_eq!(
            body["attachments"][0]["title"],
            "Test notification from spog"
        );

        // Slack answers `ok`; anything else is a failure, and so is an error status.
        receiver.answer(Answer::Text(200, "no_service"));
        let (_, result) = admin.post(&path, json!({})).await;
        assert_eq!(result["success"], false, "{result}");
        receiver.answer(Answer::Status(404));
        let (_, result) = admin.post(&path, json!({})).await;
        assert_eq!(result["success"], false);
        assert_eq!(result["status_code"], 404);
        assert_eq!(result["error"], "HTTP 404 Not Found");

        let audit = audit_rows(&server, "notification_channel.test").await;
        assert_eq!(audit.len(), 3);
        server.stop().await;
    }
}

fn signature(secret: &str, body: &[u8]) -> String {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// Requests of `receiver` to `path`, in arrival order.
fn at(received: &[Received], path: &str) -> Vec<Received> {
    received
        .iter()
        .filter(|r| r.path == path)
        .cloned()
        .collect()
}

/// The issue's "done when": an operator links Slack, Teams (both formats), email and a
/// webhook to a rule; an event fires it; every channel receives its format; acknowledging and
/// resolving flow through the same paths, with a delivery history per channel.
#[tokio::test]
async fn an_alert_reaches_every_linked_channel_in_its_format() {
    let smtp = SmtpServer::start().await;
    for server in servers().await {
        let admin = server.admin().await;
        let org = organization(&admin).await;
        let receiver = Receiver::start(Answer::Text(200, "ok")).await;
        let secret = "channel hmac secret";
        let mut channels = vec![
            create(&admin, json!({"organization_id": org, "name": "Slack", "type": "slack",
                "config": {"webhook_url": receiver.url("/slack")}})).await,
            create(&admin, json!({"organization_id": org, "name": "Teams", "type": "teams",
                "config": {"webhook_url": receiver.url("/teams")}})).await,
            create(&admin, json!({"organization_id": org, "name": "Teams flows", "type": "teams",
                "config": {"webhook_url": receiver.url("/adaptive"), "format": "adaptive_card"}})).await,
            create(&admin, json!({"organization_id": org, "name": "Hook", "type": "webhook",
                "config": {"url": receiver.url("/hook"), "secret": secret, "headers": {"X-Team": "ops"}}})).await,
            // Disabled channels stay silent.
            create(&admin, json!({"organization_id": org, "name": "Off", "type": "slack", "enabled": false,
                "config": {"webhook_url": receiver.url("/off")}})).await,
        ];
        let mails_before = smtp.as_ref().map_or(0, |s| s.messages().len());
        if let Some(smtp) = &smtp {
            channels.push(
                create(
                    &admin,
                    json!({"organization_id": org, "name": "Mail", "type": "smtp",
                    "config": smtp_config(smtp.port)}),
                )
                .await,
            );
        }
        let ids: Vec<&str> = channels.iter().map(|c| c["id"].as_str().unwrap()).collect();
        let (status, rule) = admin
            .post(
                "/alert-rules",
                json!({"kind": "event", "organization_id": org, "name": "Backups failing",
                       "event_types": ["job.failed"], "match": {"job_name": "backup"},
                       "severity": "critical", "channel_ids": ids, "cooldown_seconds": 0}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{rule}");

        let (status, body) = admin
            .post(
                "/events",
                json!({"event_type": "job.failed", "organization_id": org,
                       "data": {"job_name": "backup", "error": "disk full"}}),
            )
            .await;
        assert_eq!(status, StatusCode::ACCEPTED, "{body}");
        let received = receiver.wait_for(4, WITHIN).await;

        let slack = at(&received, "/slack")[0].json();
        let attachment = &slack["attachments"][0];
        assert_eq!(attachment["color"], "#D32F2F");
        assert_eq!(attachment["title"], "[CRITICAL] Backups failing: firing");
        assert_eq!(attachment["text"], "job.failed on backup");
        assert_eq!(attachment["fields"][0]["title"], "Severity");
        assert_eq!(attachment["fields"][0]["value"], "critical");
        assert_eq!(attachment["fields"][1]["title"], "Source");
        assert!(attachment["ts"].is_i64());
        assert!(slack.get("channel").is_none());

        let card = at(&received, "/teams")[0].json();
        assert_eq!(card["@type"], "MessageCard");
        assert_eq!(card["@context"], "https://schema.org/extensions");
        assert_eq!(card["themeColor"], "D32F2F");
        assert_eq!(card["title"], "[CRITICAL] Backups failing: firing");
        assert_eq!(card["summary"], card["title"]);
        assert_eq!(card["sections"][0]["facts"][0]["name"], "Severity");
        assert_eq!(card["sections"][0]["facts"][1]["name"], "Source");

        let adaptive = at(&received, "/adaptive")[0].json();
        assert_eq!(adaptive["type"], "message");
        let attachment = &adaptive["attachments"][0];
        assert_eq!(
            attachment["contentType"],
            "application/vnd.microsoft.card.adaptive"
        );
        assert_eq!(attachment["content"]["type"], "AdaptiveCard");
        assert_eq!(attachment["content"]["version"], "1.4");
        assert_eq!(
            attachment["content"]["body"][0]["text"],
            "[CRITICAL] Backups failing: firing"
        );

        let hook = &at(&received, "/hook")[0];
        assert_eq!(
            hook.header("x-webhook-signature"),
            Some(signature(secret, &hook.body).as_str())
        );
        assert_eq!(hook.header("x-team"), Some("ops"));
        assert_eq!(hook.header("content-type"), Some("application/json"));
        let key = base64::engine::general_purpose::STANDARD.encode(secret);
        standardwebhooks::Webhook::new(&format!("whsec_{key}"))
            .unwrap()
            .verify(&hook.body, &hook.headers)
            .unwrap();
        let payload = hook.json();
        assert_eq!(payload["subject"], "[CRITICAL] Backups failing: firing");
        assert_eq!(payload["message"], "job.failed on backup");
        assert_eq!(payload["severity"], "critical");
        assert!(payload["source"].is_string() && payload["timestamp"].is_string());
        let (_, alerts) = admin.get("/alerts").await;
        let alert = alerts["items"][0]["id"].as_str().unwrap().to_owned();
        assert_eq!(payload["alert_id"], alert.as_str());

        if let Some(smtp) = &smtp {
            let mails = smtp.wait_for(mails_before + 1, WITHIN).await;
            let mail = &mails[mails_before];
            assert_eq!(
                mail.header("Subject").as_deref(),
                Some("[CRITICAL] Backups failing: firing")
            );
            assert!(mail.raw.contains("job.failed on backup"), "{}", mail.raw);
        }

        // Acknowledging and resolving reach the same channels.
        for (action, state) in [("acknowledge", "acknowledged"), ("resolve", "resolved")] {
            let (status, body) = admin
                .post(&format!("/alerts/{alert}/{action}"), json!({}))
                .await;
            assert_eq!(status, StatusCode::OK, "{body}");
            let round = if state == "acknowledged" { 2 } else { 3 };
            let received = receiver.wait_for(4 * round, WITHIN).await;
            let title = format!("[CRITICAL] Backups failing: {state}");
            // Deliveries are independent: an alert's notifications may arrive in any order.
            let titles = |path: &str, pointer: &str| -> Vec<String> {
                at(&received, path)
                    .iter()
                    .filter_map(|r| {
                        r.json()
                            .pointer(pointer)
                            .and_then(|t| t.as_str().map(str::to_owned))
                    })
                    .collect()
            };
            assert!(
                titles("/slack", "/attachments/0/title").contains(&title),
                "slack: {title}"
            );
            assert!(
                titles("/teams", "/title").contains(&title),
                "teams: {title}"
            );
            assert!(
                titles("/hook", "/subject").contains(&title),
                "webhook: {title}"
            );
            if let Some(smtp) = &smtp {
                let mails = smtp.wait_for(mails_before + round, WITHIN).await;
                assert!(
                    mails
                        .iter()
                        .any(|m| m.header("Subject").as_deref() == Some(title.as_str())),
                    "email: {title}"
                );
            }
        }
        assert!(at(&receiver.received(), "/off").is_empty());

        // Each channel keeps its own history, with attempts.
        let slack_id = ids[0];
        let history = wait_for_history(&admin, slack_id, 3).await;
        assert!(history.iter().all(|d| d["target_type"] == "channel"));
        let event_types: Vec<&str> = history
            .iter()
            .map(|d| d["event_type"].as_str().unwrap())
            .collect();
        assert_eq!(
            event_types,
            ["alert.resolved", "alert.acknowledged", "alert.fired"]
        );
        let delivery = history[0]["id"].as_str().unwrap();
        let (status, detail) = admin
            .get(&format!(
                "/notification-channels/{slack_id}/deliveries/{delivery}"
            ))
            .await;
        assert_eq!(status, StatusCode::OK, "{detail}");
        assert_eq!(detail["attempts"][0]["success"], true);
        assert_eq!(detail["attempts"][0]["status_code"], 200);
        let (_, off) = admin
            .get(&format!("/notification-channels/{}/deliveries", ids[4]))
            .await;
        assert!(off["items"].as_array().unwrap().is_empty());
        server.stop().await;
    }
}

async fn wait_for_history(admin: &Client, channel: &str, count: usize) -> Vec<Value> {
    let deadline = tokio::time::Instant::now() + WITHIN;
    loop {
        let (status, body) = admin
            .get(&format!(
                "/notification-channels/{channel}/deliveries?status=succeeded"
            ))
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let items = body["items"].as_array().unwrap().clone();
        if items.len() >= count {
            return items;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "expected {count} succeeded deliveries: {body}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_failing_channel_retries_and_can_be_retried_by_hand() {
    for server in servers().await {
        let admin = server.admin().await;
        let org = organization(&admin).await;
        let receiver = Receiver::start(Answer::Status(500)).await;
        let channel = create(
            &admin,
            json!({"organization_id": org, "name": "Flaky", "type": "teams",
                   "config": {"webhook_url": receiver.url("/teams")}}),
        )
        .await;
        let id = channel["id"].as_str().unwrap();
        admin
            .post(
                "/alert-rules",
                json!({"kind": "event", "organization_id": org, "name": "Drift", "event_types": ["drift.detected"],
                       "severity": "medium", "channel_ids": [id]}),
            )
            .await;
        admin
            .post(
                "/events",
                json!({"event_type": "drift.detected", "organization_id": org, "data": {"host": "web-1"}}),
            )
            .await;
        receiver.wait_for(1, WITHIN).await;
        let deadline = tokio::time::Instant::now() + WITHIN;
        let delivery = loop {
            let (_, body) = admin
                .get(&format!("/notification-channels/{id}/deliveries"))
                .await;
            let item = body["items"][0].clone();
            if item["attempt_count"] == 1 && item["status"] != "delivering" {
                break item;
            }
            assert!(tokio::time::Instant::now() < deadline, "{body}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        assert_eq!(delivery["last_status_code"], 500);
        assert_eq!(delivery["status"], "retrying");
        let delivery = delivery["id"].as_str().unwrap();
        let retry = format!("/notification-channels/{id}/deliveries/{delivery}/retry");
        // Still retrying on the schedule: a manual retry is only for failed deliveries.
        assert_eq!(admin.post(&retry, json!({})).await.0, StatusCode::CONFLICT);
        let mut conn = server.state.store.conn().await.unwrap();
        sqlx::query(
            "UPDATE deliveries SET status = 'failed', next_attempt_at = NULL WHERE id = $1",
        )
        .bind(delivery)
        .execute(&mut *conn)
        .await
        .unwrap();
        drop(conn);
        receiver.answer(Answer::Status(200));
        let (status, body) = admin.post(&retry, json!({})).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let received = receiver.wait_for(2, WITHIN).await;
        assert_eq!(received[1].json()["themeColor"], "FBC02D");
        server.stop().await;
    }
}

/// A private CA's certificate (PEM), and the files of a certificate for 127.0.0.1 it signed
/// and its key.
fn private_ca(dir: &std::path::Path) -> (String, std::path::PathBuf, std::path::PathBuf) {
    use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = CertifiedIssuer::self_signed(ca, KeyPair::generate().unwrap()).unwrap();
    let key = KeyPair::generate().unwrap();
    let cert = CertificateParams::new(vec!["127.0.0.1".to_owned()])
        .unwrap()
        .signed_by(&key, &ca)
        .unwrap();
    let (cert_file, key_file) = (dir.join("smtp.pem"), dir.join("smtp.key"));
    std::fs::write(&cert_file, cert.pem()).unwrap();
    std::fs::write(&key_file, key.serialize_pem()).unwrap();
    (ca.pem(), cert_file, key_file)
}

#[tokio::test]
async fn email_goes_over_implicit_tls_or_starttls_to_a_server_a_private_ca_signed() {
    let dir = crate::temp_dir();
    std::fs::create_dir_all(&dir).unwrap();
    let (ca, cert, key) = private_ca(&dir);
    for mode in ["implicit", "starttls"] {
        let Some(smtp) = SmtpServer::start_tls(mode, &cert, &key).await else {
            return;
        };
        for server in servers().await {
            let admin = server.admin().await;
            let org = organization(&admin).await;
            let before = smtp.messages().len();
            let mut config = smtp_config(smtp.port);
            config.as_object_mut().unwrap().remove("use_tls");
            config["tls"] = json!(mode);
            config["tls_ca_cert"] = json!(ca);
            let channel = create(
                &admin,
                json!({"organization_id": org, "name": "Mail", "type": "smtp", "config": config}),
            )
            .await;
            assert_eq!(channel["config"]["tls"], mode, "{channel}");
            assert_eq!(channel["config"]["use_tls"], true);
            let test = format!(
                "/notification-channels/{}/test",
                channel["id"].as_str().unwrap()
            );
            let (status, result) = admin.post(&test, json!({})).await;
            assert_eq!(status, StatusCode::OK, "{result}");
            assert_eq!(result["success"], true, "{mode}: {result}");
            let mails = smtp.wait_for(before + 1, WITHIN).await;
            assert_eq!(
                mails[before].header("Subject").as_deref(),
                Some("Test notification from spog")
            );

            // Without the CA, the server's certificate is not trusted: nothing is sent.
            config.as_object_mut().unwrap().remove("tls_ca_cert");
            let path = format!("/notification-channels/{}", channel["id"].as_str().unwrap());
            let (status, body) = admin.patch(&path, json!({"config": config})).await;
            assert_eq!(status, StatusCode::OK, "{body}");
            let (_, result) = admin.post(&test, json!({})).await;
            assert_eq!(result["success"], false, "{mode}: {result}");
            assert_eq!(smtp.messages().len(), before + 1);

            // `tls` and `use_tls` must agree; a CA must be PEM certificates.
            config["use_tls"] = json!(false);
            let (status, body) = admin.patch(&path, json!({"config": config})).await;
            assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
            assert!(
                body["error"]["details"]["fields"]["config.tls"].is_string(),
                "{body}"
            );
            config["use_tls"] = json!(true);
            config["tls_ca_cert"] =
                json!("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----");
            let (status, body) = admin.patch(&path, json!({"config": config})).await;
            assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
            assert!(
                body["error"]["details"]["fields"]["config.tls_ca_cert"].is_string(),
                "{body}"
            );
            server.stop().await;
        }
    }
}

#[tokio::test]
async fn implicit_tls_takes_port_465_and_teams_workflows_urls_take_adaptive_cards() {
    for server in servers().await {
        let admin = server.admin().await;
        let org = organization(&admin).await;
        let mut config = smtp_config(1);
        config.as_object_mut().unwrap().remove("smtp_port");
        config.as_object_mut().unwrap().remove("use_tls");
        config["tls"] = json!("implicit");
        let mail = create(
            &admin,
            json!({"organization_id": org, "name": "SMTPS", "type": "smtp", "config": config}),
        )
        .await;
        assert_eq!(mail["config"]["smtp_port"], 465, "{mail}");
        for (name, url, format) in [
            (
                "Workflow",
                "https://prod-01.westus.logic.azure.com/workflows/abc/triggers/manual/paths/invoke?sig=s",
                "adaptive_card",
            ),
            (
                "Connector",
                "https://example.webhook.office.com/webhookb2/abc",
                "message_card",
            ),
        ] {
            let teams = create(
                &admin,
                json!({"organization_id": org, "name": name, "type": "teams",
                       "config": {"webhook_url": url, "format": "auto"}}),
            )
            .await;
            assert_eq!(teams["config"]["format"], format, "{teams}");
        }
        server.stop().await;
    }
}

#[tokio::test]
async fn a_preview_shows_what_a_channel_would_send_and_sends_nothing() {
    for server in servers().await {
        let admin = server.admin().await;
        let org = organization(&admin).await;
        let receiver = Receiver::start(Answer::Text(200, "ok")).await;
        let slack = create(
            &admin,
            json!({"organization_id": org, "name": "Slack", "type": "slack",
            "config": {"webhook_url": receiver.url("/services/T0/B0/key")}}),
        )
        .await;
        let hook = create(
            &admin,
            json!({"organization_id": org, "name": "Hook", "type": "webhook",
            "config": {"url": receiver.url("/hook?token=abc"), "secret": "preview secret",
                       "headers": {"X-Team": "ops-secret"}}}),
        )
        .await;
        let mail = create(
            &admin,
            json!({"organization_id": org, "name": "Mail", "type": "smtp",
            "config": smtp_config(2525)}),
        )
        .await;
        let preview = |channel: &Value| {
            format!(
                "/notification-channels/{}/preview",
                channel["id"].as_str().unwrap()
            )
        };
        let viewer = admin.token_client("user", &["monitoring.view"]).await;

        let sample = json!({"alert": {"rule_name": "Disk full", "severity": "high",
            "hostname": "web-1", "summary": "/data at 97%"}});
        let (status, shown) = viewer.post(&preview(&slack), sample.clone()).await;
        assert_eq!(status, StatusCode::OK, "{shown}");
        assert_eq!(shown["type"], "slack");
        assert_eq!(shown["notice"]["subject"], "[HIGH] Disk full: firing");
        assert_eq!(shown["notice"]["source"], "Disk full on web-1");
        assert_eq!(shown["request"]["method"], "POST");
        let url = shown["request"]["url"].as_str().unwrap();
        assert!(
            url.ends_with("/[redacted]") && !url.contains("key"),
            "{url}"
        );
        let attachment = &shown["request"]["body"]["attachments"][0];
        assert_eq!(attachment["title"], "[HIGH] Disk full: firing");
        assert_eq!(attachment["text"], "/data at 97%");

        let (status, shown) = viewer.post(&preview(&hook), sample.clone()).await;
        assert_eq!(status, StatusCode::OK, "{shown}");
        let headers: Vec<(String, String)> =
            serde_json::from_value(shown["request"]["headers"].clone()).unwrap();
        let header = |name: &str| {
            headers
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.as_str())
        };
        assert_eq!(header("webhook-signature"), Some("[signed at send time]"));
        assert_eq!(header("x-webhook-signature"), Some("[signed at send time]"));
        assert_eq!(header("X-Team"), Some("[redacted]"));
        assert_eq!(header("content-type"), Some("application/json"));
        assert!(!shown.to_string().contains("abc") && !shown.to_string().contains("ops-secret"));
        assert_eq!(
            shown["request"]["body"]["subject"],
            "[HIGH] Disk full: firing"
        );

        let event = json!({"event": {"event_type": "job.failed", "data": {"job_name": "backup"}}});
        let (status, shown) = viewer.post(&preview(&mail), event).await;
        assert_eq!(status, StatusCode::OK, "{shown}");
        assert_eq!(
            shown["email"]["to"],
            json!(["ops@example.com", "oncall@example.com"])
        );
        assert_eq!(shown["email"]["subject"], "Event job.failed");
        assert!(shown["email"]["html"].as_str().unwrap().contains("backup"));
        assert!(shown.get("request").is_none());

        // Exactly one of alert, alerts, alert_id or event, each checked.
        for (body, field) in [
            (json!({}), "alert"),
            (
                json!({"alert": sample["alert"], "event": {"event_type": "x"}}),
                "alert",
            ),
            (json!({"alert": {"severity": "high"}}), "alert.rule_name"),
            (
                json!({"alert": {"rule_name": "r", "severity": "dire"}}),
                "alert.severity",
            ),
            (json!({"alerts": []}), "alerts"),
            (json!({"alert_id": "nope"}), "alert_id"),
            (json!({"event": {"data": {}}}), "event.event_type"),
            (json!({"sample": 1}), "sample"),
        ] {
            let (status, refused) = viewer.post(&preview(&slack), body.clone()).await;
            assert_eq!(
                status,
                StatusCode::UNPROCESSABLE_ENTITY,
                "{body}: {refused}"
            );
            assert!(
                refused["error"]["details"]["fields"].get(field).is_some(),
                "{body}: {refused}"
            );
        }

        // A rule's preview: one per linked channel.
        let (status, rule) = admin
            .post(
                "/alert-rules",
                json!({"kind": "event", "organization_id": org, "name": "Backups failing",
                       "event_types": ["job.failed"], "severity": "critical",
                       "channel_ids": [slack["id"], hook["id"]]}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{rule}");
        let rule_preview = format!("/alert-rules/{}/preview", rule["id"].as_str().unwrap());
        let (status, shown) = viewer.post(&rule_preview, json!({})).await;
        assert_eq!(status, StatusCode::OK, "{shown}");
        assert_eq!(shown["channels"].as_array().unwrap().len(), 2);
        assert_eq!(
            shown["channels"][0]["notice"]["subject"],
            "[CRITICAL] Backups failing: firing"
        );

        // Nothing was sent, queued or audited; without monitoring.view, nothing is shown.
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(receiver.received().is_empty());
        let (_, deliveries) = admin
            .get(&format!(
                "/notification-channels/{}/deliveries",
                slack["id"].as_str().unwrap()
            ))
            .await;
        assert_eq!(deliveries["items"], json!([]), "{deliveries}");
        assert!(audit_rows(&server, "%preview%").await.is_empty());
        let outsider = admin.token_client("user", &["audit_logs.view"]).await;
        let (status, _) = outsider.post(&preview(&slack), sample).await;
        assert_eq!(status, StatusCode::FORBIDDEN);
        server.stop().await;
    }
}

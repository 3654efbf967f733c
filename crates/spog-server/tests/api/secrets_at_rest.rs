//! Secrets in headers and URLs (issue 12, items 12 and 17): webhook header values and channel
//! URLs are sealed at rest and bound to their row, never shown to anyone (reads say a value
//! is set and name a URL's host), `[redacted]` in the audit trail, kept by updates that leave
//! them out, and still sent as they are. Rows written before are sealed when a server starts.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};
use spog_server::testing::{Client, TestServer};

use crate::deliveries::publish;
use crate::receiver::{Answer, Receiver};
use crate::webhooks::{create_webhook, default_organization};
use crate::{servers, servers_with, temp_dir};

const API_KEY: &str = "k3y-0f-the-receiver";
const BEARER: &str = "Bearer t0ken-of-the-receiver";
const SLACK_PATH: &str = "/services/T0SPOG/B0SPOG/s3cr3tSlackT0ken";

/// Every text column of the row, as stored.
async fn stored_row(server: &TestServer, table: &str, id: &str) -> String {
    let columns = match table {
        "webhooks" => "url || ' ' || headers || ' ' || COALESCE(secret_ciphertext, '')",
        _ => "config || ' ' || COALESCE(secrets_ciphertext, '')",
    };
    sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT {columns} FROM {table} WHERE id = $1"
    )))
    .bind(id)
    .fetch_one(&mut *server.state.store.conn().await.unwrap())
    .await
    .unwrap()
}

async fn audit_text(server: &TestServer) -> String {
    server.link_audit().await;
    let rows: Vec<String> = sqlx::query_scalar(
        "SELECT COALESCE(before_state, '') || COALESCE(after_state, '') || COALESCE(metadata, '') \
         FROM audit_logs",
    )
    .fetch_all(&mut *server.state.store.conn().await.unwrap())
    .await
    .unwrap();
    rows.join("\n")
}

async fn viewer(admin: &Client, server: &TestServer) -> Client {
    admin
        .user_with_roles(server, "viewer@example.com", &["viewer"])
        .await
}

#[tokio::test]
async fn webhook_header_values_are_sealed_write_only_redacted_and_still_sent() {
    for server in servers().await {
        let admin = server.admin().await;
        let org = default_organization(&admin).await;
        let receiver = Receiver::start(Answer::Status(200)).await;
        let webhook = create_webhook(
            &admin,
            &org,
            &receiver.url("/hook"),
            json!({"headers": {"X-Api-Key": API_KEY, "Authorization": BEARER}}),
        )
        .await;
        let id = webhook["id"].as_str().unwrap();
        assert_eq!(
            webhook["headers"],
            json!({"Authorization": "[redacted]", "X-Api-Key": "[redacted]"})
        );
        let viewer = viewer(&admin, &server).await;
        for client in [&admin, &viewer] {
            let (status, read) = client.get(&format!("/webhooks/{id}")).await;
            assert_eq!(status, StatusCode::OK);
            let (_, list) = client.get("/webhooks").await;
            for text in [read.to_string(), list.to_string()] {
                assert!(!text.contains(API_KEY) && !text.contains("t0ken"), "{text}");
            }
        }
        let row = stored_row(&server, "webhooks", id).await;
        assert!(!row.contains(API_KEY) && !row.contains("t0ken"), "{row}");

        // An update that leaves the headers out, or gives a value as `[redacted]` or `null`,
        // keeps the values.
        let (status, _) = admin
            .patch(&format!("/webhooks/{id}"), json!({"name": "renamed"}))
            .await;
        assert_eq!(status, StatusCode::OK);
        let (status, updated) = admin
            .patch(
                &format!("/webhooks/{id}"),
                json!({"headers": {"X-Api-Key": "[redacted]", "Authorization": null, "X-Team": "ops"}}),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{updated}");
        let (status, refused) = admin
            .patch(
                &format!("/webhooks/{id}"),
                json!({"headers": {"X-Unknown": null}}),
            )
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
        assert!(refused["error"]["details"]["fields"]["headers.X-Unknown"].is_string());

        publish(&admin, &org, "job.completed", json!({"job_id": "j1"})).await;
        let received = receiver.wait_for(1, Duration::from_secs(10)).await;
        assert_eq!(received[0].header("x-api-key"), Some(API_KEY));
        assert_eq!(received[0].header("authorization"), Some(BEARER));
        assert_eq!(received[0].header("x-team"), Some("ops"));

        let audit = audit_text(&server).await;
        assert!(audit.contains("[redacted]"));
        for text in [API_KEY, "t0ken", "\"ops\""] {
            assert!(!audit.contains(text), "{text} in the audit trail: {audit}");
        }
        server.stop().await;
    }
}

#[tokio::test]
async fn channel_urls_and_header_values_are_sealed_write_only_redacted_and_still_used() {
    for server in servers().await {
        let admin = server.admin().await;
        let org = default_organization(&admin).await;
        let slack = Receiver::start(Answer::Text(200, "ok")).await;
        let (status, channel) = admin
            .post(
                "/notification-channels",
                json!({"organization_id": org, "name": "Ops Slack", "type": "slack",
                       "config": {"webhook_url": slack.url(SLACK_PATH)}}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{channel}");
        let id = channel["id"].as_str().unwrap();
        assert_eq!(
            channel["config"],
            json!({"has_webhook_url": true, "webhook_url_host": "127.0.0.1"})
        );
        let hook = Receiver::start(Answer::Status(200)).await;
        let (status, webhook_channel) = admin
            .post(
                "/notification-channels",
                json!({"organization_id": org, "name": "Ops hook", "type": "webhook",
                       "config": {"url": hook.url("/in?token=s3cr3tQueryT0ken"),
                                  "headers": {"X-Api-Key": API_KEY}}}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{webhook_channel}");
        let hook_id = webhook_channel["id"].as_str().unwrap();
        assert_eq!(
            webhook_channel["config"]["headers"],
            json!({"X-Api-Key": "[redacted]"})
        );
        assert_eq!(webhook_channel["config"]["url_host"], "127.0.0.1");

        let viewer = viewer(&admin, &server).await;
        for client in [&admin, &viewer] {
            let (_, list) = client.get("/notification-channels").await;
            let (_, one) = client.get(&format!("/notification-channels/{id}")).await;
            for text in [list.to_string(), one.to_string()] {
                for secret in ["s3cr3t", API_KEY, "/services/"] {
                    assert!(!text.contains(secret), "{secret} in {text}");
                }
            }
        }
        for (table, row) in [
            ("notification_channels", id),
            ("notification_channels", hook_id),
        ] {
            let stored = stored_row(&server, table, row).await;
            for secret in ["s3cr3t", API_KEY, "/services/"] {
                assert!(
                    !stored.contains(secret),
                    "{secret} stored in clear: {stored}"
                );
            }
        }

        // Updates that leave the URL and headers out keep them.
        let (status, updated) = admin
            .patch(
                &format!("/notification-channels/{id}"),
                json!({"config": {"channel": "#ops"}}),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{updated}");
        let (status, _) = admin
            .patch(
                &format!("/notification-channels/{hook_id}"),
                json!({"name": "Ops hook 2", "config": {"secret": "a signing secret"}}),
            )
            .await;
        assert_eq!(status, StatusCode::OK);
        for (channel, receiver) in [(id, &slack), (hook_id, &hook)] {
            let (status, result) = admin
                .post(&format!("/notification-channels/{channel}/test"), json!({}))
                .await;
            assert_eq!(status, StatusCode::OK);
            assert_eq!(result["success"], true, "{result}");
            receiver.wait_for(1, Duration::from_secs(5)).await;
        }
        assert_eq!(slack.received()[0].path, SLACK_PATH);
        assert_eq!(slack.received()[0].json()["channel"], "#ops");
        assert_eq!(hook.received()[0].header("x-api-key"), Some(API_KEY));

        let audit = audit_text(&server).await;
        assert!(audit.contains("[redacted]") || audit.contains("has_webhook_url"));
        for secret in ["s3cr3t", API_KEY, "/services/"] {
            assert!(
                !audit.contains(secret),
                "{secret} in the audit trail: {audit}"
            );
        }
        server.stop().await;
    }
}

#[tokio::test]
async fn a_sealed_value_copied_into_another_row_does_not_open() {
    for server in servers().await {
        let admin = server.admin().await;
        let org = default_organization(&admin).await;
        let receiver = Receiver::start(Answer::Status(200)).await;
        let first = create_webhook(
            &admin,
            &org,
            &receiver.url("/a"),
            json!({"secret": "the first secret", "headers": {"X-Api-Key": API_KEY}}),
        )
        .await;
        let second = create_webhook(&admin, &org, &receiver.url("/b"), json!({})).await;
        // Someone with write access to the database moves the first row's sealed values.
        sqlx::query(
            "UPDATE webhooks SET secret_ciphertext = (SELECT secret_ciphertext FROM webhooks WHERE id = $1), \
             headers = (SELECT headers FROM webhooks WHERE id = $1) WHERE id = $2",
        )
        .bind(first["id"].as_str().unwrap())
        .bind(second["id"].as_str().unwrap())
        .execute(&mut *server.state.store.conn().await.unwrap())
        .await
        .unwrap();
        let (status, body) = admin
            .post(
                &format!("/webhooks/{}/test", second["id"].as_str().unwrap()),
                json!({}),
            )
            .await;
        assert_eq!(status, StatusCode::CONFLICT, "{body}");
        assert!(receiver.received().is_empty());
        // The first row's own values still open.
        let (status, body) = admin
            .post(
                &format!("/webhooks/{}/test", first["id"].as_str().unwrap()),
                json!({}),
            )
            .await;
        assert_eq!((status, &body["success"]), (StatusCode::OK, &json!(true)));
        server.stop().await;
    }
}

#[tokio::test]
async fn rows_written_before_are_sealed_and_bound_when_a_server_starts() {
    for server in servers().await {
        let admin = server.admin().await;
        let org = default_organization(&admin).await;
        let receiver = Receiver::start(Answer::Text(200, "ok")).await;
        let webhook = create_webhook(&admin, &org, &receiver.url("/hook"), json!({})).await;
        let (_, channel) = admin
            .post(
                "/notification-channels",
                json!({"organization_id": org, "name": "Old Slack", "type": "slack",
                       "config": {"webhook_url": receiver.url("/placeholder")}}),
            )
            .await;
        let (webhook, channel) = (
            webhook["id"].as_str().unwrap().to_owned(),
            channel["id"].as_str().unwrap().to_owned(),
        );
        // As a release before binding wrote them: header values and the URL in clear.
        let mut conn = server.state.store.conn().await.unwrap();
        sqlx::query("UPDATE webhooks SET headers = $2, secrets_bound = 0 WHERE id = $1")
            .bind(&webhook)
            .bind(json!({"X-Api-Key": API_KEY}).to_string())
            .execute(&mut *conn)
            .await
            .unwrap();
        let old_config = json!({"type": "slack", "webhook_url": receiver.url(SLACK_PATH)});
        sqlx::query(
            "UPDATE notification_channels SET config = $2, secrets_ciphertext = NULL, secrets_bound = 0 \
             WHERE id = $1",
        )
        .bind(&channel)
        .bind(old_config.to_string())
        .execute(&mut *conn)
        .await
        .unwrap();
        drop(conn);
        // Until a server starts, reads still show no value.
        let (_, read) = admin
            .get(&format!("/notification-channels/{channel}"))
            .await;
        assert!(!read.to_string().contains("s3cr3t"), "{read}");

        let restarted = TestServer::start_with(
            std::sync::Arc::clone(&server.database),
            spog_server::testing::test_config(&server.database, temp_dir()),
        )
        .await;
        for (table, id) in [("webhooks", &webhook), ("notification_channels", &channel)] {
            let stored = stored_row(&restarted, table, id).await;
            assert!(
                !stored.contains(API_KEY) && !stored.contains("s3cr3t"),
                "{stored}"
            );
        }
        let admin = restarted.admin().await;
        let (_, result) = admin
            .post(&format!("/notification-channels/{channel}/test"), json!({}))
            .await;
        assert_eq!(result["success"], true, "{result}");
        let (_, result) = admin
            .post(&format!("/webhooks/{webhook}/test"), json!({}))
            .await;
        assert_eq!(result["success"], true, "{result}");
        let received = receiver.received();
        assert!(received.iter().any(|r| r.path == SLACK_PATH));
        assert!(
            received
                .iter()
                .any(|r| r.header("x-api-key") == Some(API_KEY))
        );
        restarted.stop().await;
        server.stop().await;
    }
}

#[tokio::test]
async fn a_webhook_to_an_ipv4_mapped_loopback_address_is_refused() {
    let nothing_allowed = |config: &mut spog_server::Config| config.outbound_allow_cidrs = vec![];
    for server in servers_with(nothing_allowed).await {
        let admin = server.admin().await;
        let org = default_organization(&admin).await;
        let receiver = Receiver::start(Answer::Status(200)).await;
        let port = receiver.base.rsplit(':').next().unwrap().to_owned();
        for url in [
            format!("http://[::ffff:127.0.0.1]:{port}/"),
            format!("http://[::ffff:7f00:1]:{port}/"),
            format!("http://[64:ff9b::7f00:1]:{port}/"),
            format!("http://2130706433:{port}/"),
        ] {
            let (status, body) = admin
                .post(
                    "/webhooks",
                    json!({"organization_id": org, "name": format!("mapped {url}"), "url": url,
                           "event_types": ["job.completed"]}),
                )
                .await;
            assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{url}: {body}");
            let reason: &Value = &body["error"]["details"]["fields"]["url"];
            assert!(
                reason.as_str().unwrap().contains("a loopback address"),
                "{url}: {body}"
            );
        }
        assert!(receiver.received().is_empty());
        server.stop().await;
    }
}

#[tokio::test]
async fn a_separate_checkpoint_key_signs_checkpoints_that_verify_with_its_public_key() {
    let dir = temp_dir();
    std::fs::create_dir_all(&dir).unwrap();
    let key_file = dir.join("checkpoint.key");
    let seed = [42u8; 32];
    std::fs::write(&key_file, hex::encode(seed)).unwrap();
    let configured = format!("file:{}", key_file.display());
    let with_key = move |config: &mut spog_server::Config| {
        config.checkpoint_key = Some(spog_server::config::Secret::new(configured.clone()));
    };
    for server in servers_with(with_key).await {
        let admin = server.admin().await;
        admin
            .post("/organizations", json!({"name": "audited"}))
            .await;
        let (status, checkpoint) = admin.post("/audit-logs/checkpoints", json!({})).await;
        assert_eq!(status, StatusCode::CREATED, "{checkpoint}");
        let (_, key) = admin.get("/audit-logs/checkpoints/public-key").await;
        let expected = ed25519_dalek::SigningKey::from_bytes(&seed).verifying_key();
        assert_eq!(key["public_key"], hex::encode(expected.as_bytes()));
        assert_eq!(
            checkpoint["key_id"],
            spog_core::audit::checkpoint::key_id(&expected)
        );
        let statement = spog_core::audit::checkpoint::statement(
            checkpoint["account_id"].as_str().unwrap(),
            checkpoint["seq"].as_i64().unwrap(),
            checkpoint["head_hash"].as_str().unwrap(),
            spog_core::Timestamp::parse(checkpoint["signed_at"].as_str().unwrap()).unwrap(),
        );
        assert!(spog_core::audit::checkpoint::verify(
            &expected,
            &statement,
            checkpoint["signature"].as_str().unwrap()
        ));
        server.stop().await;
    }
}

//! Publishing events and delivering them (SPEC 4, 5.2, 5.3) to real receivers on 127.0.0.1.

use std::time::Duration;

use base64::Engine;
use reqwest::StatusCode;
use serde_json::{Value, json};
use spog_server::config::Secret;
use spog_server::testing::Client;

use crate::receiver::{Answer, Receiver};
use crate::webhooks::{create_webhook, default_organization};
use crate::{servers, servers_with};

const WITHIN: Duration = Duration::from_secs(10);

pub async fn publish(publisher: &Client, org: &str, event_type: &str, data: Value) -> Value {
    let (status, body) = publisher
        .post(
            "/events",
            json!({"event_type": event_type, "organization_id": org, "data": data}),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    body
}

/// Polls a delivery until it is in `status`.
pub async fn wait_for_status(admin: &Client, webhook: &str, status: &str) -> Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let (_, page) = admin.get(&format!("/webhooks/{webhook}/deliveries")).await;
        if let Some(delivery) = page["items"].as_array().and_then(|items| items.first())
            && delivery["status"] == status
        {
            return delivery.clone();
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no delivery became {status}: {page}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_published_event_reaches_each_matching_subscriber_once_signed() {
    for server in servers().await {
        let admin = server.admin().await;
        let org = default_organization(&admin).await;
        let receiver = Receiver::start(Answer::Status(200)).await;
        let secret = "a shared secret for signing";
        let signed = create_webhook(
            &admin,
            &org,
            &receiver.url("/signed"),
            json!({"secret": secret, "headers": {"X-Team": "ops"},
                   "event_types": ["job.completed", "job.failed"]}),
        )
        .await;
        create_webhook(&admin, &org, &receiver.url("/unsigned"), json!({})).await;
        // None of these may receive it: another event type, inactive, another organization.
        create_webhook(
            &admin,
            &org,
            &receiver.url("/other-type"),
            json!({"event_types": ["host.offline"]}),
        )
        .await;
        create_webhook(
            &admin,
            &org,
            &receiver.url("/inactive"),
            json!({"active": false}),
        )
        .await;
        let (_, other_org) = admin
            .post("/organizations", json!({"name": "elsewhere"}))
            .await;
        create_webhook(
            &admin,
            other_org["id"].as_str().unwrap(),
            &receiver.url("/elsewhere"),
            json!({}),
        )
        .await;

        let publisher = admin.token_client("workflow", &["events.publish"]).await;
        let published = publish(
            &publisher,
            &org,
            "job.completed",
            json!({"job_id": "j-42", "exit": 0}),
        )
        .await;
        assert_eq!(published["deliveries"], 2);
        let event_id = published["id"].as_str().unwrap();
        let mut received = receiver.wait_for(2, WITHIN).await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(receiver.received().len(), 2, "only the two subscribers");
        received.sort_by_key(|r| r.path.clone());
        assert_eq!(received[0].path, "/signed");
        assert_eq!(received[1].path, "/unsigned");

        let request = &received[0];
        let body = request.json();
        assert_eq!(body["id"], event_id);
        assert_eq!(body["event_type"], "job.completed");
        assert_eq!(body["organization_id"], org.as_str());
        assert_eq!(body["data"], json!({"job_id": "j-42", "exit": 0}));
        assert!(body["account_id"].is_string() && body["timestamp"].is_string());
        assert_eq!(request.header("content-type"), Some("application/json"));
        assert_eq!(request.header("x-webhook-event"), Some("job.completed"));
        assert_eq!(request.header("x-team"), Some("ops"));
        let delivery_id = request.header("x-webhook-delivery").unwrap();
        assert_eq!(request.header("webhook-id"), Some(delivery_id));
        let expected = spog_core::webhooks::signature_header(secret, &request.body);
        assert_eq!(
            request.header("x-webhook-signature"),
            Some(expected.as_str())
        );

        // A receiver verifies with an off-the-shelf Standard Webhooks library.
        let key = base64::engine::general_purpose::STANDARD.encode(secret);
        let verifier = standardwebhooks::Webhook::new(&format!("whsec_{key}")).unwrap();
        verifier.verify(&request.body, &request.headers).unwrap();
        let forged = standardwebhooks::Webhook::new(&format!(
            "whsec_{}",
            base64::engine::general_purpose::STANDARD.encode("not the secret")
        ))
        .unwrap();
        assert!(forged.verify(&request.body, &request.headers).is_err());
        let mut tampered = request.body.to_vec();
        tampered.push(b' ');
        assert!(verifier.verify(&tampered, &request.headers).is_err());

        let unsigned = &received[1];
        assert!(unsigned.header("x-webhook-signature").is_none());
        assert!(unsigned.header("webhook-signature").is_none());
        assert!(unsigned.header("webhook-timestamp").is_some());

        let delivery = wait_for_status(&admin, signed["id"].as_str().unwrap(), "succeeded").await;
        assert_eq!(delivery["id"], delivery_id);
        assert_eq!(delivery["attempt_count"], 1);
        assert_eq!(delivery["last_status_code"], 200);
        assert!(delivery["completed_at"].is_string());
        server.stop().await;
    }
}

#[tokio::test]
async fn a_repeated_idempotency_key_publishes_nothing_again() {
    for server in servers().await {
        let admin = server.admin().await;
        let org = default_organization(&admin).await;
        let receiver = Receiver::start(Answer::Status(204)).await;
        create_webhook(&admin, &org, &receiver.url("/"), json!({})).await;
        let publisher = admin.token_client("system", &["events.publish"]).await;
        let event = json!({"event_type": "job.completed", "organization_id": org, "data": {"n": 1},
                           "idempotency_key": "job-7-done"});
        let (status, first) = publisher.post("/events", event.clone()).await;
        assert_eq!(status, StatusCode::ACCEPTED);
        assert_eq!(first["duplicate"], false);
        let (status, again) = publisher.post("/events", event).await;
        assert_eq!(status, StatusCode::ACCEPTED);
        assert_eq!(again["id"], first["id"]);
        assert_eq!(again["duplicate"], true);
        assert_eq!(again["deliveries"], 0);
        receiver.wait_for(1, WITHIN).await;
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert_eq!(receiver.received().len(), 1);
        server.link_audit().await;
        let published: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM audit_logs WHERE action = 'event.publish'")
                .fetch_one(&mut *server.state.store.conn().await.unwrap())
                .await
                .unwrap();
        assert_eq!(published, 1);
        server.stop().await;
    }
}

/// Concurrent publications share transactions (group commit); each stays all or nothing: one
/// naming another account's organization fails alone, a key repeated across the burst
/// publishes once, and every other event is published, delivered and recorded once.
#[tokio::test]
async fn concurrent_publications_each_stay_all_or_nothing() {
    for server in servers().await {
        let admin = server.admin().await;
        let org = default_organization(&admin).await;
        let receiver = Receiver::start(Answer::Status(204)).await;
        create_webhook(&admin, &org, &receiver.url("/"), json!({})).await;
        let publisher = admin.token_client("system", &["events.publish"]).await;
        let foreign = uuid::Uuid::now_v7().to_string();
        let publications = (0..60).map(|n| {
            let (publisher, org, foreign) = (publisher.clone(), org.clone(), foreign.clone());
            async move {
                let body = match n % 10 {
                    0 => json!({"event_type": "job.completed", "organization_id": foreign,
                                "data": {"n": n}}),
                    1 => json!({"event_type": "job.completed", "organization_id": org,
                                "data": {"n": n}, "idempotency_key": "once"}),
                    _ => json!({"event_type": "job.completed", "organization_id": org,
                                "data": {"n": n}}),
                };
                publisher.post("/events", body).await
            }
        });
        let answers = futures::future::join_all(publications).await;
        for (n, (status, body)) in answers.iter().enumerate() {
            let expected = match n % 10 {
                0 => StatusCode::UNPROCESSABLE_ENTITY,
                _ => StatusCode::ACCEPTED,
            };
            assert_eq!(*status, expected, "{n}: {body}");
        }
        let once: Vec<&Value> = (0..60)
            .filter(|n| n % 10 == 1)
            .map(|n| &answers[n].1)
            .collect();
        assert!(once.iter().all(|a| a["id"] == once[0]["id"]));
        assert_eq!(once.iter().filter(|a| a["duplicate"] == false).count(), 1);
        let published = 60 - 6 - 5;
        receiver.wait_for(published, WITHIN).await;
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert_eq!(receiver.received().len(), published);
        server.link_audit().await;
        let recorded: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM audit_logs WHERE action = 'event.publish'")
                .fetch_one(&mut *server.state.store.conn().await.unwrap())
                .await
                .unwrap();
        assert_eq!(recorded, published as i64);
        server.stop().await;
    }
}

#[tokio::test]
async fn invalid_events_are_refused_naming_each_field() {
    for server in servers().await {
        let admin = server.admin().await;
        let org = default_organization(&admin).await;
        let (status, body) = admin
            .post(
                "/events",
                json!({"event_type": "job.exploded", "organization_id": org, "data": [1],
                       "idempotency_key": ""}),
            )
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        let fields = body["error"]["details"]["fields"].as_object().unwrap();
        let mut names: Vec<&String> = fields.keys().collect();
        names.sort();
        assert_eq!(names, ["data", "event_type", "idempotency_key"]);
        let viewer = admin
            .user_with_roles(&server, "v@example.com", &["viewer"])
            .await;
        let (status, _) = viewer
            .post(
                "/events",
                json!({"event_type": "job.failed", "organization_id": org, "data": {}}),
            )
            .await;
        assert_eq!(status, StatusCode::FORBIDDEN);
        server.stop().await;
    }
}

fn fast_retries(config: &mut spog_server::Config) {
    config.webhook_retry_schedule = vec![Duration::from_secs(1), Duration::from_secs(1)];
    config.webhook_attempt_timeout = Duration::from_secs(2);
    config.delivery_lease = Duration::from_secs(3);
}

#[tokio::test]
async fn failures_are_retried_on_schedule_then_failed_and_can_be_retried_by_hand() {
    for server in servers_with(fast_retries).await {
        let admin = server.admin().await;
        let org = default_organization(&admin).await;
        let receiver = Receiver::start(Answer::Status(500)).await;
        let webhook = create_webhook(&admin, &org, &receiver.url("/"), json!({})).await;
        let webhook = webhook["id"].as_str().unwrap();
        publish(&admin, &org, "job.completed", json!({})).await;
        let received = receiver.wait_for(3, WITHIN).await;
        for pair in received.windows(2) {
            let gap = pair[1].at - pair[0].at;
            assert!(gap >= Duration::from_millis(900), "retried after {gap:?}");
        }
        let ids: Vec<_> = received
            .iter()
            .map(|r| r.header("x-webhook-delivery"))
            .collect();
        assert!(
            ids.iter().all(|id| *id == ids[0]),
            "the same delivery id on every retry"
        );
        let failed = wait_for_status(&admin, webhook, "failed").await;
        assert_eq!(failed["attempt_count"], 3);
        assert_eq!(failed["last_status_code"], 500);
        assert_eq!(failed["last_error"], "HTTP 500 Internal Server Error");
        assert_eq!(failed["next_attempt_at"], Value::Null);
        let delivery = failed["id"].as_str().unwrap();
        let (_, detail) = admin
            .get(&format!("/webhooks/{webhook}/deliveries/{delivery}"))
            .await;
        let attempts = detail["attempts"].as_array().unwrap();
        assert_eq!(attempts.len(), 3);
        assert_eq!(
            attempts
                .iter()
                .map(|a| a["attempt"].clone())
                .collect::<Vec<_>>(),
            [1, 2, 3]
        );
        assert!(attempts.iter().all(|a| a["status_code"] == 500
            && a["success"] == false
            && a["response_body"] == "answered 500"));
        assert_eq!(detail["payload"]["event_type"], "job.completed");

        receiver.answer(Answer::Status(200));
        let retry = format!("/webhooks/{webhook}/deliveries/{delivery}/retry");
        let (status, pending) = admin.post(&retry, json!({})).await;
        assert_eq!(status, StatusCode::OK, "{pending}");
        assert_eq!(pending["status"], "pending");
        assert_eq!(pending["attempt_count"], 0);
        let done = wait_for_status(&admin, webhook, "succeeded").await;
        assert_eq!(done["attempt_count"], 1);
        let (status, body) = admin.post(&retry, json!({})).await;
        assert_eq!(status, StatusCode::CONFLICT, "{body}");
        server.stop().await;
    }
}

#[tokio::test]
async fn the_history_filters_by_status_and_event_type() {
    for server in servers().await {
        let admin = server.admin().await;
        let org = default_organization(&admin).await;
        let receiver = Receiver::start(Answer::Status(200)).await;
        let webhook = create_webhook(
            &admin,
            &org,
            &receiver.url("/"),
            json!({"event_types": ["job.completed", "job.failed"]}),
        )
        .await;
        let webhook = webhook["id"].as_str().unwrap();
        for event_type in ["job.completed", "job.failed", "job.failed"] {
            publish(&admin, &org, event_type, json!({})).await;
        }
        receiver.wait_for(3, WITHIN).await;
        wait_for_status(&admin, webhook, "succeeded").await;
        let deliveries = format!("/webhooks/{webhook}/deliveries");
        let count = |page: &Value| page["items"].as_array().unwrap().len();
        let (_, failed_jobs) = admin
            .get(&format!("{deliveries}?event_type=job.failed"))
            .await;
        assert_eq!(count(&failed_jobs), 2);
        let (_, pending) = admin.get(&format!("{deliveries}?status=pending")).await;
        assert_eq!(count(&pending), 0);
        let (_, first_page) = admin.get(&format!("{deliveries}?limit=2")).await;
        assert_eq!(count(&first_page), 2);
        let cursor = first_page["next_cursor"].as_str().unwrap();
        let (_, rest) = admin
            .get(&format!("{deliveries}?limit=2&cursor={cursor}"))
            .await;
        assert_eq!(count(&rest), 1);
        for bad in ["status=lost", "event_type=job.exploded", "colour=red"] {
            let (status, body) = admin.get(&format!("{deliveries}?{bad}")).await;
            assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{bad}: {body}");
        }
        server.stop().await;
    }
}

#[tokio::test]
async fn deleting_a_webhook_removes_its_delivery_history() {
    for server in servers().await {
        let admin = server.admin().await;
        let org = default_organization(&admin).await;
        let receiver = Receiver::start(Answer::Status(200)).await;
        let webhook = create_webhook(&admin, &org, &receiver.url("/"), json!({})).await;
        let webhook = webhook["id"].as_str().unwrap();
        publish(&admin, &org, "job.completed", json!({})).await;
        let done = wait_for_status(&admin, webhook, "succeeded").await;
        let (status, _) = admin.delete(&format!("/webhooks/{webhook}")).await;
        assert_eq!(status, StatusCode::NO_CONTENT);
        let left: (i64, i64) = sqlx::query_as(
            "SELECT (SELECT COUNT(*) FROM deliveries WHERE target_id = $1), \
             (SELECT COUNT(*) FROM delivery_attempts WHERE delivery_id = $2)",
        )
        .bind(webhook)
        .bind(done["id"].as_str().unwrap())
        .fetch_one(&mut *server.state.store.conn().await.unwrap())
        .await
        .unwrap();
        assert_eq!(left, (0, 0));
        assert_eq!(
            admin
                .get(&format!("/webhooks/{webhook}/deliveries"))
                .await
                .0,
            StatusCode::NOT_FOUND
        );
        server.stop().await;
    }
}

#[tokio::test]
async fn retention_removes_old_succeeded_deliveries_then_failed_ones() {
    for server in servers_with(fast_retries).await {
        let admin = server.admin().await;
        let org = default_organization(&admin).await;
        let ok = Receiver::start(Answer::Status(200)).await;
        let down = Receiver::start(Answer::Status(503)).await;
        let good = create_webhook(&admin, &org, &ok.url("/"), json!({})).await;
        let bad = create_webhook(&admin, &org, &down.url("/"), json!({})).await;
        publish(&admin, &org, "job.completed", json!({})).await;
        wait_for_status(&admin, good["id"].as_str().unwrap(), "succeeded").await;
        wait_for_status(&admin, bad["id"].as_str().unwrap(), "failed").await;
        let now = spog_core::Timestamp::now();
        let cleanup = spog_server::workers::delivery_cleanup::run_once;
        assert_eq!(cleanup(&server.state, now).await.unwrap(), 0);
        let later = now.plus(server.state.config.delivery_retention + Duration::from_secs(1));
        assert_eq!(cleanup(&server.state, later).await.unwrap(), 1);
        let (_, kept) = admin
            .get(&format!(
                "/webhooks/{}/deliveries",
                bad["id"].as_str().unwrap()
            ))
            .await;
        assert_eq!(kept["items"][0]["status"], "failed");
        // Failed deliveries are kept longer, for retrying or inspecting them.
        let config = &server.state.config;
        assert!(config.failed_delivery_retention > config.delivery_retention);
        let later = now.plus(config.failed_delivery_retention + Duration::from_secs(1));
        assert_eq!(cleanup(&server.state, later).await.unwrap(), 1);
        let (_, kept) = admin
            .get(&format!(
                "/webhooks/{}/deliveries",
                bad["id"].as_str().unwrap()
            ))
            .await;
        assert_eq!(kept["items"], json!([]));
        server.stop().await;
    }
}

#[tokio::test]
async fn health_and_metrics_show_the_delivery_engine() {
    let token = "a metrics token for the scraper";
    for server in servers_with(|c| c.metrics_token = Some(Secret::new(token))).await {
        let admin = server.admin().await;
        let org = default_organization(&admin).await;
        let receiver = Receiver::start(Answer::Status(200)).await;
        let webhook = create_webhook(&admin, &org, &receiver.url("/"), json!({})).await;
        publish(&admin, &org, "job.completed", json!({})).await;
        wait_for_status(&admin, webhook["id"].as_str().unwrap(), "succeeded").await;
        let (status, health) = admin.get("/system/health").await;
        assert_eq!(status, StatusCode::OK);
        let delivery = &health["workers"]["webhook_delivery"];
        assert_eq!(delivery["running"], true, "{health}");
        assert!(delivery["last_run_at"].is_string());
        assert_eq!(health["workers"]["delivery_cleanup"]["running"], true);
        assert_eq!(health["deliveries"]["pending"], 0);
        assert_eq!(
            health["deliveries"]["oldest_pending_age_seconds"],
            Value::Null
        );
        let metrics = reqwest::Client::new()
            .get(format!("{}/metrics", server.base))
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(
            metrics.contains("spog_deliveries_total{outcome=\"succeeded\"} 1"),
            "{metrics}"
        );
        assert!(metrics.contains("spog_delivery_attempt_duration_seconds_count 1"));
        assert!(metrics.contains("spog_delivery_queue_depth 0"));
        server.stop().await;
    }
}

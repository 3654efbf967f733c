//! Receivers that misbehave, and destinations the outbound guard refuses (SPEC 5.2, 5.4):
//! each attempt fails cleanly, says why, and the schedule goes on.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};
use spog_server::testing::Client;

use crate::deliveries::{publish, wait_for_status};
use crate::receiver::{self, Answer, Receiver};
use crate::servers_with;
use crate::webhooks::{create_webhook, default_organization};

fn short_timeout(config: &mut spog_server::Config) {
    config.webhook_attempt_timeout = Duration::from_secs(1);
    config.delivery_lease = Duration::from_secs(3);
    config.webhook_retry_schedule = vec![Duration::from_secs(1)];
}

async fn test_webhook(admin: &Client, org: &str, url: &str) -> Value {
    let webhook = create_webhook(admin, org, url, json!({"secret": "a secret to sign with"})).await;
    let (status, result) = admin
        .post(
            &format!("/webhooks/{}/test", webhook["id"].as_str().unwrap()),
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{result}");
    result
}

#[tokio::test]
async fn the_test_sends_a_signed_ping_that_is_not_a_delivery() {
    for server in servers_with(short_timeout).await {
        let admin = server.admin().await;
        let org = default_organization(&admin).await;
        let receiver = Receiver::start(Answer::Status(202)).await;
        let webhook = create_webhook(
            &admin,
            &org,
            &receiver.url("/"),
            json!({"secret": "ping secret!"}),
        )
        .await;
        let id = webhook["id"].as_str().unwrap();
        let (status, result) = admin.post(&format!("/webhooks/{id}/test"), json!({})).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(result["success"], true);
        assert_eq!(result["status_code"], 202);
        assert_eq!(result["response_body"], "answered 202");
        assert_eq!(result["error"], Value::Null);
        assert!(result["duration_ms"].is_u64());
        let ping = &receiver.received()[0];
        assert_eq!(ping.header("x-webhook-event"), Some("ping"));
        assert_eq!(ping.json()["event_type"], "ping");
        assert_eq!(ping.json()["data"]["webhook_id"], id);
        let signature = spog_core::webhooks::signature_header("ping secret!", &ping.body);
        assert_eq!(ping.header("x-webhook-signature"), Some(signature.as_str()));
        let (_, history) = admin.get(&format!("/webhooks/{id}/deliveries")).await;
        assert_eq!(history["items"], json!([]));
        server.stop().await;
    }
}

#[tokio::test]
async fn hanging_resetting_redirecting_and_flooding_receivers_fail_cleanly() {
    for server in servers_with(short_timeout).await {
        let admin = server.admin().await;
        let org = default_organization(&admin).await;

        let hanging = Receiver::start(Answer::Hang).await;
        let started = Instant::now();
        let result = test_webhook(&admin, &org, &hanging.url("/")).await;
        assert!(started.elapsed() < Duration::from_secs(5));
        assert_eq!(result["success"], false);
        assert_eq!(result["status_code"], Value::Null);
        assert_eq!(result["error"], "timed out after 1s");

        let resetting = receiver::resetting().await;
        let result = test_webhook(&admin, &org, &format!("{resetting}/")).await;
        assert_eq!(result["success"], false);
        assert!(
            result["error"]
                .as_str()
                .unwrap()
                .starts_with("request failed")
                || result["error"]
                    .as_str()
                    .unwrap()
                    .starts_with("connection failed"),
            "{result}"
        );

        let redirecting = Receiver::start(Answer::Redirect).await;
        let result = test_webhook(&admin, &org, &redirecting.url("/")).await;
        assert_eq!(result["success"], false);
        assert_eq!(result["status_code"], 302);
        assert_eq!(
            result["error"],
            "HTTP 302 Found: redirect to /redirected not followed"
        );
        assert_eq!(
            redirecting.received().len(),
            1,
            "the redirect was not followed"
        );

        let flooding = Receiver::start(Answer::Huge(500)).await;
        let result = test_webhook(&admin, &org, &flooding.url("/")).await;
        assert_eq!(result["success"], false);
        assert_eq!(result["status_code"], 500);
        assert_eq!(result["response_body"].as_str().unwrap().len(), 4096);
        // Far less than the 100 MB offered was ever pulled from the receiver.
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert!(
            flooding.streamed_bytes() < 8 * 1024 * 1024,
            "{}",
            flooding.streamed_bytes()
        );

        let accepting_flood = Receiver::start(Answer::Huge(200)).await;
        let result = test_webhook(&admin, &org, &accepting_flood.url("/")).await;
        assert_eq!(result["success"], true);
        assert_eq!(result["response_body"].as_str().unwrap().len(), 4096);
        server.stop().await;
    }
}

#[tokio::test]
async fn after_a_hung_attempt_the_schedule_goes_on() {
    for server in servers_with(short_timeout).await {
        let admin = server.admin().await;
        let org = default_organization(&admin).await;
        let receiver = Receiver::start(Answer::HangOnce).await;
        let webhook = create_webhook(&admin, &org, &receiver.url("/"), json!({})).await;
        let webhook = webhook["id"].as_str().unwrap();
        publish(&admin, &org, "job.completed", json!({})).await;
        let done = wait_for_status(&admin, webhook, "succeeded").await;
        assert_eq!(done["attempt_count"], 2);
        let (_, detail) = admin
            .get(&format!(
                "/webhooks/{webhook}/deliveries/{}",
                done["id"].as_str().unwrap()
            ))
            .await;
        assert_eq!(detail["attempts"][0]["error"], "timed out after 1s");
        assert_eq!(detail["attempts"][1]["status_code"], 200);
        server.stop().await;
    }
}

#[tokio::test]
async fn a_name_resolving_to_loopback_is_refused_unless_its_cidr_is_allowed() {
    for server in servers_with(|config| config.outbound_allow_cidrs = Vec::new()).await {
        let admin = server.admin().await;
        let org = default_organization(&admin).await;
        let receiver = Receiver::start(Answer::Status(200)).await;
        let port = receiver.base.rsplit(':').next().unwrap();
        let by_name = format!("http://localhost:{port}/");
        let result = test_webhook(&admin, &org, &by_name).await;
        assert_eq!(result["success"], false);
        let error = result["error"].as_str().unwrap();
        assert!(
            error.starts_with("refused by the outbound guard: localhost (")
                && error.ends_with("is a loopback address"),
            "{error}"
        );
        // Literal addresses are refused when saved, and again when sent.
        let (status, _) = admin
            .post(
                "/webhooks",
                json!({"organization_id": org, "name": "literal", "url": receiver.url("/"),
                       "event_types": ["job.completed"]}),
            )
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
        let webhook = create_webhook(&admin, &org, &by_name, json!({})).await;
        publish(&admin, &org, "job.completed", json!({})).await;
        let delivery = wait_for_status(&admin, webhook["id"].as_str().unwrap(), "retrying").await;
        assert!(
            delivery["last_error"]
                .as_str()
                .unwrap()
                .starts_with("refused by the outbound guard"),
            "{delivery}"
        );
        assert!(
            receiver.received().is_empty(),
            "nothing reached the receiver"
        );
        server.stop().await;
    }
    for server in servers_with(|config| {
        config.outbound_allow_cidrs =
            vec!["127.0.0.0/8".parse().unwrap(), "::1/128".parse().unwrap()]
    })
    .await
    {
        let admin = server.admin().await;
        let org = default_organization(&admin).await;
        let receiver = Receiver::start(Answer::Status(200)).await;
        let port = receiver.base.rsplit(':').next().unwrap();
        let result = test_webhook(&admin, &org, &format!("http://localhost:{port}/")).await;
        assert_eq!(result["success"], true, "{result}");
        assert_eq!(receiver.received().len(), 1);
        server.stop().await;
    }
}

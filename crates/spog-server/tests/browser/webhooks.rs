//! The webhook pages in a real browser against real receivers: a subscription is created
//! through the form (the API's 422 shown beside its field), tested with the receiver's answer
//! on the page, and a failed delivery is retried from the Deliveries tab.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};
use spog_server::testing::{ADMIN_EMAIL, ADMIN_PASSWORD, Client};

use crate::browser::Browser;
use crate::receiver::Receiver;
use crate::{servers, servers_with};

async fn first_organization(admin: &Client) -> String {
    let (_, organizations) = admin.get("/organizations").await;
    organizations[0]["id"].as_str().unwrap().to_owned()
}

/// Waits until the API shows the webhook's only delivery in `status`, and returns it.
async fn delivery_in(admin: &Client, webhook: &str, status: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (_, page) = admin.get(&format!("/webhooks/{webhook}/deliveries")).await;
        if let Some(delivery) = page["items"].as_array().and_then(|items| items.first())
            && delivery["status"] == status
        {
            return delivery.clone();
        }
        assert!(
            Instant::now() < deadline,
            "no {status} delivery; last seen {page}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn a_webhook_created_in_the_console_is_tested_against_a_receiver() {
    let Some(browser) = Browser::open().await else {
        return;
    };
    for server in servers().await {
        let receiver = Receiver::start(200).await;
        browser
            .log_in(&server.base, ADMIN_EMAIL, ADMIN_PASSWORD)
            .await;
        browser.goto(&format!("{}/webhooks", server.base)).await;
        browser
            .wait_for_text("#webhooks-table", "No webhooks yet")
            .await;
        browser.click("#new-webhook").await;
        browser.wait_for_path("/webhooks/new").await;

        // The API's 422 lands beside the field at fault.
        browser.fill("#webhook-name", "Deploy watcher").await;
        browser.fill("#webhook-url", "ftp://example.com/hook").await;
        browser
            .click("#webhook-form input[name=event_types][value='deployment.failed']")
            .await;
        browser.click("#webhook-submit").await;
        let error = browser
            .wait_for_text("#webhook-form [data-error-for=url]", "http")
            .await;
        assert!(!error.is_empty());
        assert_eq!(
            browser
                .find("#webhook-url")
                .await
                .attr("aria-invalid")
                .await
                .unwrap()
                .as_deref(),
            Some("true")
        );

        browser.fill("#webhook-url", &receiver.url("/hooks")).await;
        browser
            .fill("#webhook-secret", "a secret of some length")
            .await;
        browser
            .fill("#webhook-headers", "X-Team: platform\nX-Env: test")
            .await;
        browser.click("#webhook-submit").await;
        browser
            .wait_for_text("#webhook-facts", &receiver.url("/hooks"))
            .await;
        let path = browser.path().await;
        let id = path.trim_start_matches("/webhooks/").to_owned();
        let admin = server.admin().await;
        let (status, webhook) = admin.get(&format!("/webhooks/{id}")).await;
        assert_eq!(status, StatusCode::OK, "{webhook}");
        assert_eq!(webhook["event_types"], json!(["deployment.failed"]));
        assert_eq!(webhook["has_secret"], true);
        // Header values are write-only: reads name the headers only.
        assert_eq!(
            webhook["headers"],
            json!({"X-Env": "[redacted]", "X-Team": "[redacted]"})
        );

        // Test: the receiver's answer is on the page, and it got a signed ping.
        browser.click("#test-webhook-submit").await;
        assert_eq!(
            browser.wait_for_text("#test-success", "Success").await,
            "Success"
        );
        assert_eq!(browser.text("#test-status").await, "200");
        assert_eq!(browser.text("#test-body").await, "answered 200");
        assert_eq!(browser.text("#test-error").await, "");
        let received = receiver.received();
        assert_eq!(received.len(), 1);
        assert_eq!(received[0].header("x-webhook-event"), Some("ping"));
        assert_eq!(received[0].header("x-team"), Some("platform"));
        assert!(received[0].header("x-webhook-signature").is_some());
        let ping: Value = serde_json::from_slice(&received[0].body).unwrap();
        assert_eq!(ping["data"]["webhook_id"], id.as_str());

        // A failing receiver reads as a failure, with its status and body.
        receiver.answer(503);
        browser.click("#test-webhook-submit").await;
        assert_eq!(
            browser.wait_for_text("#test-success", "Failed").await,
            "Failed"
        );
        assert_eq!(browser.text("#test-status").await, "503");
        assert_eq!(browser.text("#test-body").await, "answered 503");
        // Tests are not deliveries.
        let (_, deliveries) = admin.get(&format!("/webhooks/{id}/deliveries")).await;
        assert_eq!(deliveries["items"], json!([]));

        // The list shows it; editing goes through PATCH and comes back to the page.
        browser.goto(&format!("{}/webhooks", server.base)).await;
        browser
            .wait_for_text("#webhooks-table", "Deploy watcher")
            .await;
        browser
            .goto(&format!("{}/webhooks/{id}/edit", server.base))
            .await;
        browser.click("#webhook-active").await;
        browser.click("#webhook-submit").await;
        browser.wait_for_text("#webhook-facts", "paused").await;
        let (_, webhook) = admin.get(&format!("/webhooks/{id}")).await;
        assert_eq!(webhook["active"], false);
        assert_eq!(
            webhook["has_secret"], true,
            "an empty secret field keeps it"
        );
        // The form sent the headers back as `[redacted]`: their values were kept.
        receiver.answer(200);
        admin
            .patch(&format!("/webhooks/{id}"), json!({"active": true}))
            .await;
        admin.post(&format!("/webhooks/{id}/test"), json!({})).await;
        let last = receiver.received().pop().unwrap();
        assert_eq!(last.header("x-team"), Some("platform"));
        assert_eq!(last.header("x-env"), Some("test"));

        browser
            .client
            .delete_all_cookies()
            .await
            .expect("clearing cookies");
        server.stop().await;
    }
    browser.close().await;
}

#[tokio::test]
async fn a_failed_delivery_is_retried_from_the_deliveries_tab() {
    let Some(browser) = Browser::open().await else {
        return;
    };
    let fast = |config: &mut spog_server::Config| {
        config.webhook_retry_schedule = vec![Duration::from_millis(100)];
    };
    for server in servers_with(fast).await {
        let receiver = Receiver::start(500).await;
        let admin = server.admin().await;
        let organization = first_organization(&admin).await;
        let (status, webhook) = admin
            .post(
                "/webhooks",
                json!({"organization_id": organization, "name": "Jobs",
                       "url": receiver.url("/jobs"), "event_types": ["job.failed"]}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{webhook}");
        let id = webhook["id"].as_str().unwrap().to_owned();
        let (status, _) = admin
            .post(
                "/events",
                json!({"event_type": "job.failed", "organization_id": organization,
                       "data": {"job_name": "nightly backup"}}),
            )
            .await;
        assert_eq!(status, StatusCode::ACCEPTED);
        let failed = delivery_in(&admin, &id, "failed").await;
        let delivery = failed["id"].as_str().unwrap().to_owned();

        browser
            .log_in(&server.base, ADMIN_EMAIL, ADMIN_PASSWORD)
            .await;
        browser
            .goto(&format!("{}/webhooks/{id}/deliveries", server.base))
            .await;
        let row = format!("#deliveries-list tr[data-delivery='{delivery}']");
        let text = browser.wait_for_text(&row, "failed").await;
        assert!(
            text.contains("job.failed") && text.contains("500"),
            "{text}"
        );

        // The filters narrow the list and stay in the link.
        browser
            .click("#filter-event-type option[value='host.offline']")
            .await;
        browser.click("#filter-submit").await;
        browser
            .wait_for_text("#deliveries-table", "No deliveries match these filters")
            .await;
        assert_eq!(
            browser.path().await,
            format!("/webhooks/{id}/deliveries?event_type=host.offline")
        );
        browser
            .goto(&format!(
                "{}/webhooks/{id}/deliveries?status=failed&event_type=job.failed",
                server.base
            ))
            .await;
        browser.wait_for_text(&row, "failed").await;

        // Each attempt is on the delivery's page.
        browser.click(&format!("{row} a.button")).await;
        let attempts = browser.wait_for_text("#attempts", "failure").await;
        assert_eq!(attempts.matches("failure").count(), 2, "{attempts}");
        assert!(attempts.contains("answered 500") || attempts.contains("500"));

        // Retry, with the receiver fixed: the delivery succeeds.
        receiver.answer(200);
        browser.click("#retry-delivery-submit").await;
        // The page reloads itself once the API took the retry; the engine then sends it.
        delivery_in(&admin, &id, "succeeded").await;
        browser
            .goto(&format!(
                "{}/webhooks/{id}/deliveries/{delivery}",
                server.base
            ))
            .await;
        assert_eq!(browser.text("#delivery-status").await, "succeeded");
        let attempts = browser.text("#attempts").await;
        assert!(attempts.contains("success"), "{attempts}");
        assert!(!browser.is_present("#retry-delivery-submit").await);
        server.link_audit().await;
        let (_, audit) = admin.get("/audit-logs?action=webhook.delivery_retry").await;
        assert_eq!(audit["items"].as_array().unwrap().len(), 1, "{audit}");

        browser
            .client
            .delete_all_cookies()
            .await
            .expect("clearing cookies");
        server.stop().await;
    }
    browser.close().await;
}

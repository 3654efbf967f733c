//! The alert pages in a real browser: a rule is created through the form (the API's 422s
//! beside their fields, only the fields of the chosen kind sent), an event published through
//! the API fires it, the alert shows on the open Alerts page without a reload, and it is
//! acknowledged from there.

use reqwest::StatusCode;
use serde_json::json;
use spog_server::testing::{ADMIN_EMAIL, ADMIN_PASSWORD};

use crate::browser::Browser;
use crate::servers;

#[tokio::test]
async fn a_rule_created_in_the_console_fires_live_and_is_acknowledged() {
    let Some(browser) = Browser::open().await else {
        return;
    };
    for server in servers().await {
        let admin = server.admin().await;
        let (_, organizations) = admin.get("/organizations").await;
        let organization = organizations[0]["id"].as_str().unwrap().to_owned();
        let (status, channel) = admin
            .post(
                "/notification-channels",
                json!({"organization_id": organization, "name": "Ops Slack", "type": "slack",
                       "config": {"webhook_url": "http://127.0.0.1:9/slack"}}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{channel}");
        let channel_id = channel["id"].as_str().unwrap().to_owned();
        browser
            .log_in(&server.base, ADMIN_EMAIL, ADMIN_PASSWORD)
            .await;
        browser.goto(&format!("{}/alert-rules", server.base)).await;
        browser
            .wait_for_text("#rules-table", "No alert rules yet")
            .await;
        browser.click("#new-rule").await;
        browser.wait_for_path("/alert-rules/new").await;

        // A metric rule's fields appear with its kind; a bad threshold is named beside it.
        assert!(!browser.is_displayed("#rule-metric").await);
        browser.click("#rule-kind option[value='metric']").await;
        browser.fill("#rule-name", "Hot CPUs").await;
        browser.fill("#rule-metric", "cpu.usage").await;
        browser.fill("#rule-threshold", "lots").await;
        browser.click("#rule-submit").await;
        browser
            .wait_for_text("#rule-form [data-error-for=threshold]", "lots")
            .await;
        assert!(
            !browser
                .is_displayed("#rule-form [data-error-for=metric]")
                .await
        );

        // Back to an event rule: the metric fields are neither shown nor sent.
        browser.click("#rule-kind option[value='event']").await;
        assert!(!browser.is_displayed("#rule-metric").await);
        browser.fill("#rule-name", "Backups failing").await;
        browser
            .click("#rule-form input[name=event_types][value='job.failed']")
            .await;
        browser
            .fill("#rule-match", r#"{"job_name": "nightly backup"}"#)
            .await;
        browser
            .click(&format!("#rule-channels input[value='{channel_id}']"))
            .await;
        browser
            .click("#rule-severity option[value='critical']")
            .await;
        browser.fill("#rule-cooldown", "0").await;
        browser.click("#rule-submit").await;
        browser.wait_for_text("h1", "Backups failing").await;
        let rule_id = browser
            .path()
            .await
            .trim_start_matches("/alert-rules/")
            .to_owned();
        let (status, rule) = admin.get(&format!("/alert-rules/{rule_id}")).await;
        assert_eq!(status, StatusCode::OK, "{rule}");
        assert_eq!(rule["kind"], "event");
        assert_eq!(rule["event_types"], json!(["job.failed"]));
        assert_eq!(rule["match"], json!({"job_name": "nightly backup"}));
        assert_eq!(rule["severity"], "critical");
        assert_eq!(rule["channel_ids"], json!([channel_id]));
        assert_eq!(rule["cooldown_seconds"], 0);

        // The Alerts page is open when the event comes in.
        browser.goto(&format!("{}/alerts", server.base)).await;
        browser.wait_until_live().await;
        browser.wait_for_text("#alerts-table", "No alerts").await;
        let publish = |job: &str| {
            admin.post(
                "/events",
                json!({"event_type": "job.failed", "organization_id": organization,
                       "data": {"job_name": job, "error": "disk full"}}),
            )
        };
        assert_eq!(publish("weekly report").await.0, StatusCode::ACCEPTED);
        assert_eq!(publish("nightly backup").await.0, StatusCode::ACCEPTED);
        let row = "#alerts-list tr[data-rule='Backups failing']";
        let text = browser.wait_for_text(row, "firing").await;
        assert!(
            text.contains("critical") && text.contains("nightly backup"),
            "{text}"
        );
        let (_, firing) = admin.get("/alerts?state=firing").await;
        assert_eq!(firing["items"].as_array().unwrap().len(), 1, "{firing}");
        let alert_id = firing["items"][0]["id"].as_str().unwrap().to_owned();

        browser
            .click(&format!("{row} form.acknowledge button"))
            .await;
        browser.wait_for_text(row, "acknowledged").await;
        assert!(!browser.is_present(&format!("{row} form.acknowledge")).await);
        let (_, alert) = admin.get(&format!("/alerts/{alert_id}")).await;
        assert_eq!(alert["state"], "acknowledged");

        // The alert's own page (where its notification links) resolves it.
        browser
            .goto(&format!("{}/alerts/{alert_id}", server.base))
            .await;
        browser.click("#alert-actions form.resolve button").await;
        browser.wait_for_text("#alert-state", "resolved").await;
        let (_, alert) = admin.get(&format!("/alerts/{alert_id}")).await;
        assert_eq!(alert["state"], "resolved");

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
async fn editing_a_metric_rule_sends_only_its_fields_and_keeps_its_hosts() {
    let Some(browser) = Browser::open().await else {
        return;
    };
    for server in servers().await {
        let admin = server.admin().await;
        let (_, organizations) = admin.get("/organizations").await;
        let organization = organizations[0]["id"].as_str().unwrap().to_owned();
        let (_, host) = admin
            .post(
                "/hosts",
                json!({"organization_id": organization, "hostname": "db-1"}),
            )
            .await;
        let host_id = host["id"].as_str().unwrap().to_owned();
        let (status, rule) = admin
            .post(
                "/alert-rules",
                json!({"kind": "metric", "organization_id": organization, "name": "Hot DB",
                       "metric": "cpu.usage", "operator": ">", "threshold": 90,
                       "for_seconds": 60, "host_ids": [host_id], "severity": "high"}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{rule}");
        let id = rule["id"].as_str().unwrap().to_owned();

        browser
            .log_in(&server.base, ADMIN_EMAIL, ADMIN_PASSWORD)
            .await;
        browser
            .goto(&format!("{}/alert-rules/{id}", server.base))
            .await;
        assert!(!browser.is_present("#rule-kind").await, "the kind is fixed");
        assert!(!browser.is_present("#event-fields").await);
        browser.fill("#rule-threshold", "95.5").await;
        browser.click("#rule-operator option[value='>=']").await;
        browser.fill("#rule-for", "-1").await;
        browser.click("#rule-submit").await;
        browser
            .wait_for_text("#rule-form [data-error-for=for_seconds]", "between")
            .await;
        browser.fill("#rule-for", "120").await;
        // Series labels and the silence watched for, each checked by the API.
        assert_eq!(
            browser
                .find("#rule-no-data")
                .await
                .prop("value")
                .await
                .unwrap(),
            Some("600".to_owned()),
            "the rule took metric_no_data_after"
        );
        browser.fill("#rule-labels", r#"{"Mount": "/data"}"#).await;
        browser.fill("#rule-no-data", "4").await;
        browser.click("#rule-submit").await;
        browser
            .wait_for_text("#rule-form [data-error-for=no_data_seconds]", "between")
            .await;
        browser
            .wait_for_text("#rule-form [data-error-for=labels]", "Mount")
            .await;
        browser.fill("#rule-labels", r#"{"mount": "/data"}"#).await;
        browser.fill("#rule-no-data", "60").await;
        browser.click("#rule-submit").await;
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        let rule = loop {
            let (_, rule) = admin.get(&format!("/alert-rules/{id}")).await;
            if rule["for_seconds"] == 120 {
                break rule;
            }
            assert!(std::time::Instant::now() < deadline, "never saved: {rule}");
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        };
        assert_eq!(rule["threshold"], 95.5);
        assert_eq!(rule["operator"], ">=");
        assert_eq!(rule["host_ids"], json!([host_id]));
        assert_eq!(rule["kind"], "metric");
        assert_eq!(rule["labels"], json!({"mount": "/data"}));
        assert_eq!(rule["no_data_seconds"], 60);

        // Its alert says why it fired and which series it is about.
        let agent = admin.token_client("agent", &["events.publish"]).await;
        let at = spog_core::Timestamp::now().minus(std::time::Duration::from_secs(200));
        let later = spog_core::Timestamp::now();
        let sample = |value: f64, at| json!({"metric": "cpu.usage", "value": value, "at": at, "labels": {"mount": "/data"}});
        let (status, body) = agent
            .post(
                "/metrics",
                json!({"host_id": host_id, "samples": [sample(99.0, at), sample(99.0, later)]}),
            )
            .await;
        assert_eq!(status, StatusCode::ACCEPTED, "{body}");
        let (_, alerts) = admin.get("/alerts?reason=threshold").await;
        let alert = alerts["items"][0]["id"].as_str().unwrap().to_owned();
        browser
            .goto(&format!("{}/alerts/{alert}", server.base))
            .await;
        browser.wait_for_text("#alert-reason", "threshold").await;
        browser
            .wait_for_text("#alert-labels", "mount=\"/data\"")
            .await;
        browser
            .goto(&format!("{}/alerts?reason=threshold", server.base))
            .await;
        browser.wait_for_text("#alerts-list", "threshold").await;

        browser
            .client
            .delete_all_cookies()
            .await
            .expect("clearing cookies");
        server.stop().await;
    }
    browser.close().await;
}

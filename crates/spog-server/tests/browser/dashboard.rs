//! The dashboard's tiles in a real browser follow the account live: an alert firing, a
//! delivery failing and a host coming online change them without a reload.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::json;
use spog_server::testing::{ADMIN_EMAIL, ADMIN_PASSWORD};

use crate::browser::Browser;
use crate::receiver::Receiver;
use crate::servers_with;

#[tokio::test]
async fn the_dashboard_tiles_change_without_reload_when_an_alert_fires() {
    let Some(browser) = Browser::open().await else {
        return;
    };
    let fast = |config: &mut spog_server::Config| {
        config.webhook_retry_schedule = vec![Duration::from_millis(100)];
    };
    for server in servers_with(fast).await {
        let admin = server.admin().await;
        let (_, organizations) = admin.get("/organizations").await;
        let organization = organizations[0]["id"].as_str().unwrap().to_owned();
        let (status, _) = admin
            .post(
                "/alert-rules",
                json!({"kind": "event", "organization_id": organization, "name": "Deploys",
                       "event_types": ["deployment.failed"], "severity": "high"}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED);
        let receiver = Receiver::start(500).await;
        let (status, _) = admin
            .post(
                "/webhooks",
                json!({"organization_id": organization, "name": "Deploy hook",
                       "url": receiver.url("/"), "event_types": ["deployment.failed"]}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED);
        let (_, host) = admin
            .post(
                "/hosts",
                json!({"organization_id": organization, "hostname": "web-1"}),
            )
            .await;

        browser
            .log_in(&server.base, ADMIN_EMAIL, ADMIN_PASSWORD)
            .await;
        browser.wait_until_live().await;
        // The tiles refresh on the socket's messages, so each is read as it settles.
        browser.wait_for_text("#alerts-firing", "0").await;
        browser.wait_for_text("#deliveries-failed", "0").await;
        browser.wait_for_text("#hosts-online", "0").await;
        browser.wait_for_text("#hosts-offline", "1").await;
        browser
            .client
            .execute("window.stillTheSamePage = true;", vec![])
            .await
            .unwrap();

        let (status, _) = admin
            .post(
                "/events",
                json!({"event_type": "deployment.failed", "organization_id": organization,
                       "data": {"deployment": "release 42"}}),
            )
            .await;
        assert_eq!(status, StatusCode::ACCEPTED);
        browser.wait_for_text("#alerts-firing", "1").await;
        // The webhook's delivery fails twice (100 ms apart) and the tile follows.
        browser.wait_for_text("#deliveries-failed", "1").await;
        browser.wait_for_text("#deliveries-pending", "0").await;

        let (status, _) = admin
            .post(
                &format!("/hosts/{}/heartbeat", host["id"].as_str().unwrap()),
                json!({}),
            )
            .await;
        assert!(status.is_success(), "{status}");
        browser.wait_for_text("#hosts-online", "1").await;
        browser.wait_for_text("#hosts-offline", "0").await;

        let same = browser
            .client
            .execute("return window.stillTheSamePage === true;", vec![])
            .await
            .unwrap();
        assert_eq!(same, json!(true), "the page was not reloaded");

        browser
            .client
            .delete_all_cookies()
            .await
            .expect("clearing cookies");
        server.stop().await;
    }
    browser.close().await;
}

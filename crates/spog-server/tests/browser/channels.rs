//! The Notification Channels pages in a real browser: a channel is created with its
//! type's fields (a bad URL named next to its field), listed, and tested with the result shown.

use std::sync::Arc;

use axum::body::Bytes;
use parking_lot::Mutex;
use spog_server::testing::{ADMIN_EMAIL, ADMIN_PASSWORD};

use crate::browser::Browser;
use crate::servers;

/// A stand-in for Slack's incoming webhook on 127.0.0.1: answers `ok`, keeps the bodies.
async fn slack() -> (String, Arc<Mutex<Vec<serde_json::Value>>>) {
    let bodies = Arc::new(Mutex::new(Vec::new()));
    let kept = Arc::clone(&bodies);
    let app = axum::Router::new().fallback(move |body: Bytes| {
        let kept = Arc::clone(&kept);
        async move {
            kept.lock()
                .push(serde_json::from_slice(&body).unwrap_or_default());
            "ok"
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/services/T0/B0/x", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, bodies)
}

#[tokio::test]
async fn creating_a_slack_channel_and_testing_it_shows_the_result() {
    let Some(browser) = Browser::open().await else {
        return;
    };
    for server in servers().await {
        let (url, bodies) = slack().await;
        browser
            .log_in(&server.base, ADMIN_EMAIL, ADMIN_PASSWORD)
            .await;
        browser
            .goto(&format!("{}/notification-channels", server.base))
            .await;
        browser.click("[data-new-channel=slack]").await;
        browser
            .wait_for_path("/notification-channels/new?type=slack")
            .await;
        browser.fill("#channel-name", "Ops Slack").await;
        browser
            .fill("#channel-webhook-url", "ftp://hooks.slack.com/x")
            .await;
        browser.click("#channel-save").await;
        let error = browser
            .wait_for_text("[data-error-for='config.webhook_url']", "URL")
            .await;
        assert!(error.contains("https"), "{error}");

        browser.fill("#channel-webhook-url", &url).await;
        browser.fill("#channel-slack-channel", "#ops").await;
        browser.click("#channel-save").await;
        browser.wait_for_path("/notification-channels").await;
        let row = browser.wait_for_text("#channels-table", "Ops Slack").await;
        assert!(row.contains("Slack"), "{row}");

        browser.click("tr[data-channel='Ops Slack'] a").await;
        browser.find("#channel-test-submit").await;
        browser.click("#channel-test-submit").await;
        browser.wait_for_text("#channel-test-success", "true").await;
        let sent = bodies.lock().clone();
        assert_eq!(sent.len(), 1);
        assert_eq!(sent[0]["channel"], "#ops");
        assert_eq!(
            sent[0]["attachments"][0]["title"],
            "Test notification from spog"
        );

        let admin = server.admin().await;
        let (_, channels) = admin.get("/notification-channels").await;
        assert_eq!(channels["items"][0]["name"], "Ops Slack");
        assert_eq!(channels["items"][0]["config"]["channel"], "#ops");
        server.stop().await;
    }
    browser.close().await;
}

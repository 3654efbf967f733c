//! The notification bell and page in a real browser, fed by the WebSocket: a notification
//! sent through the API shows up without a reload, reading in one tab clears the badge in
//! every other, and a page outlives a restart of the server.

use reqwest::StatusCode;
use serde_json::{Value, json};
use spog_server::testing::{ADMIN_EMAIL, ADMIN_PASSWORD, Client, test_config};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::browser::Browser;
use crate::servers;

async fn notify(admin: &Client, target: Value, title: &str) {
    let mut body = json!({
        "category": "system",
        "severity": "high",
        "title": title,
        "message": "web-1 has 2% of its disk left",
        "link": "/admin/hosts",
    });
    body.as_object_mut()
        .unwrap()
        .extend(target.as_object().unwrap().clone());
    let (status, answer) = admin.post("/notifications", body).await;
    assert_eq!(status, StatusCode::CREATED, "{answer}");
}

/// Marks the page so that a reload would show: the mark does not survive one.
async fn mark_page(browser: &Browser) {
    browser
        .client
        .execute("window.stillTheSamePage = true;", vec![])
        .await
        .unwrap();
}

async fn same_page(browser: &Browser) -> bool {
    browser
        .client
        .execute("return window.stillTheSamePage === true;", vec![])
        .await
        .unwrap()
        == json!(true)
}

#[tokio::test]
async fn a_notification_sent_through_the_api_appears_without_reload_and_lights_the_bell() {
    let Some(browser) = Browser::open().await else {
        return;
    };
    for server in servers().await {
        let admin = server.admin().await;
        browser
            .log_in(&server.base, ADMIN_EMAIL, ADMIN_PASSWORD)
            .await;
        browser
            .goto(&format!("{}/notifications", server.base))
            .await;
        browser.wait_until_live().await;
        browser
            .wait_for_text("#notifications-list", "No notifications.")
            .await;
        assert!(!browser.is_displayed("#bell-badge").await);
        mark_page(&browser).await;

        notify(
            &admin,
            json!({"user_email": ADMIN_EMAIL}),
            "Disk almost full",
        )
        .await;
        browser
            .wait_for_text("#notifications-list", "Disk almost full")
            .await;
        assert_eq!(browser.wait_for_text("#bell-badge", "1").await, "1");
        browser.wait_for_text("#toasts", "Disk almost full").await;
        assert!(same_page(&browser).await, "the page was not reloaded");

        // A broadcast reaches everyone, this user included.
        notify(&admin, json!({"broadcast": true}), "Maintenance at noon").await;
        assert_eq!(browser.wait_for_text("#bell-badge", "2").await, "2");

        // The dropdown lists them, filters them, and marks one read.
        browser.click("#bell-button").await;
        browser
            .wait_for_text("#bell-list", "Maintenance at noon")
            .await;
        browser.click("#bell-read option[value='true']").await;
        browser
            .wait_for_text("#bell-list", "No notifications.")
            .await;
        browser.click("#bell-read option[value='false']").await;
        browser
            .wait_for_text("#bell-list", "Disk almost full")
            .await;
        browser
            .click("#bell-list li[data-read='false'] form.mark-read button")
            .await;
        assert_eq!(browser.wait_for_text("#bell-badge", "1").await, "1");
        // The page's own list shows the read state too.
        browser
            .find("#notifications-list li[data-read='true']")
            .await;
        assert!(same_page(&browser).await);
        let (_, unread) = admin.get("/notifications/unread-count").await;
        assert_eq!(unread["count"], 1);

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
async fn marking_all_read_in_one_tab_clears_the_badge_in_another() {
    let Some(browser) = Browser::open().await else {
        return;
    };
    for server in servers().await {
        let admin = server.admin().await;
        notify(&admin, json!({"user_email": ADMIN_EMAIL}), "Backup failed").await;
        notify(&admin, json!({"broadcast": true}), "New release").await;
        browser
            .log_in(&server.base, ADMIN_EMAIL, ADMIN_PASSWORD)
            .await;
        browser.wait_until_live().await;
        assert_eq!(browser.wait_for_text("#bell-badge", "2").await, "2");
        let first = browser.client.window().await.unwrap();

        let second = browser.client.new_window(true).await.unwrap();
        browser
            .client
            .switch_to_window(second.handle.clone())
            .await
            .unwrap();
        browser
            .goto(&format!("{}/notifications", server.base))
            .await;
        browser.wait_until_live().await;
        assert_eq!(browser.wait_for_text("#bell-badge", "2").await, "2");
        browser.click("#mark-all-read-submit").await;
        browser.wait_until_hidden("#bell-badge").await;
        browser.wait_for_text("#notifications-list", "Read ").await;

        browser.client.switch_to_window(first).await.unwrap();
        browser.wait_until_hidden("#bell-badge").await;
        let title = browser.client.title().await.unwrap();
        assert!(!title.starts_with('('), "{title}");
        let (_, unread) = admin.get("/notifications/unread-count").await;
        assert_eq!(unread["count"], 0);

        browser
            .client
            .switch_to_window(second.handle)
            .await
            .unwrap();
        browser.client.close_window().await.unwrap();
        let remaining = browser.client.windows().await.unwrap();
        browser
            .client
            .switch_to_window(remaining[0].clone())
            .await
            .unwrap();
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
async fn a_page_reconnects_after_the_server_restarts_and_catches_up() {
    let Some(browser) = Browser::open().await else {
        return;
    };
    for server in servers().await {
        browser
            .log_in(&server.base, ADMIN_EMAIL, ADMIN_PASSWORD)
            .await;
        browser.wait_until_live().await;
        mark_page(&browser).await;
        let address = server.base.trim_start_matches("http://").to_owned();
        let database = server.database.clone();
        let data_dir = server.data_dir.clone();
        server.stop().await;
        browser.find("html[data-live=off]").await;

        // The same service comes back on the same address; meanwhile things happened.
        let shutdown = CancellationToken::new();
        let listener = TcpListener::bind(&address).await.expect("the old address");
        let restarted =
            spog_server::launch(test_config(&database, data_dir), listener, shutdown.clone())
                .await
                .expect("restarting");
        let admin = Client {
            base: format!("http://{address}"),
            token: None,
            http: reqwest::Client::new(),
        };
        let (_, login) = admin
            .post(
                "/auth/login",
                json!({"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD}),
            )
            .await;
        let admin = admin.with_token(login["token"].as_str().unwrap());
        admin
            .post("/organizations", json!({"name": "Founded while away"}))
            .await;
        notify(
            &admin,
            json!({"user_email": ADMIN_EMAIL}),
            "Sent while away",
        )
        .await;

        // Reconnected with backoff, the page refreshes what it shows and hears the count.
        browser.wait_until_live().await;
        browser
            .wait_for_text("#activity", "Founded while away")
            .await;
        assert_eq!(browser.wait_for_text("#bell-badge", "1").await, "1");
        assert!(same_page(&browser).await, "no reload");

        browser
            .client
            .delete_all_cookies()
            .await
            .expect("clearing cookies");
        shutdown.cancel();
        restarted.wait().await.expect("a clean shutdown");
    }
    browser.close().await;
}

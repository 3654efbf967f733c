//! Logging in and out of the console in a real browser, and what a signed-in user sees.

use reqwest::StatusCode;
use serde_json::json;
use spog_server::testing::{ADMIN_EMAIL, ADMIN_PASSWORD};

use crate::browser::Browser;
use crate::servers;

#[tokio::test]
async fn an_admin_logs_in_and_sees_the_dashboard() {
    let Some(browser) = Browser::open().await else {
        return;
    };
    for server in servers().await {
        browser
            .log_in(&server.base, ADMIN_EMAIL, ADMIN_PASSWORD)
            .await;
        assert_eq!(browser.text("main h1").await, "Dashboard");
        assert_eq!(browser.text("#user-name").await, "Administrator");
        assert_eq!(browser.text("#card-users .value").await, "1");
        assert_eq!(browser.text("#card-hosts .value").await, "0");
        // The login itself is the newest entry of the account's audit trail.
        let activity = browser.text("#activity-table tbody tr:first-child").await;
        assert!(activity.contains("auth.login"), "{activity}");
        assert!(
            activity.contains(ADMIN_EMAIL) && activity.contains("web"),
            "{activity}"
        );
        // htmx runs with the configuration of its meta tag: nothing that needs inline code.
        let htmx = browser
            .client
            .execute(
                "return [htmx.config.allowEval, htmx.config.includeIndicatorStyles];",
                vec![],
            )
            .await
            .unwrap();
        assert_eq!(htmx, json!([false, false]));
        let sidebar = browser.text("nav.sidebar").await;
        for entry in [
            "Dashboard",
            "System health",
            "Users",
            "Roles",
            "API tokens",
            "Organizations",
            "Hosts",
        ] {
            assert!(
                sidebar.contains(entry),
                "the sidebar lacks {entry}: {sidebar}"
            );
        }
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
async fn recent_activity_refreshes_itself() {
    let Some(browser) = Browser::open().await else {
        return;
    };
    for server in servers().await {
        browser
            .log_in(&server.base, ADMIN_EMAIL, ADMIN_PASSWORD)
            .await;
        let admin = server.admin().await;
        let (status, organizations) = admin.get("/organizations").await;
        assert_eq!(status, StatusCode::OK);
        let organization = organizations[0]["id"].as_str().unwrap();
        let (status, _) = admin
            .post(
                "/hosts",
                json!({"organization_id": organization, "hostname": "web-1.example.com"}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED);
        // No reload: the WebSocket says the trail grew (a 10-second poll stands in without it).
        browser
            .wait_for_text("#activity-table", "host.create")
            .await;
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
async fn a_visitor_is_sent_to_log_in_and_then_back_where_they_were_going() {
    let Some(browser) = Browser::open().await else {
        return;
    };
    for server in servers().await {
        browser.goto(&format!("{}/admin/users", server.base)).await;
        browser.wait_for_path("/login?next=%2Fadmin%2Fusers").await;
        browser.submit_login(ADMIN_EMAIL, "not the password").await;
        assert_eq!(
            browser.text("#login-error").await,
            "The email or password is wrong."
        );
        browser.submit_login(ADMIN_EMAIL, ADMIN_PASSWORD).await;
        browser.wait_for_path("/admin/users").await;
        assert_eq!(browser.text("main h1").await, "Users");
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
async fn logging_out_ends_the_session_and_its_cookie_stops_working() {
    let Some(browser) = Browser::open().await else {
        return;
    };
    for server in servers().await {
        browser
            .log_in(&server.base, ADMIN_EMAIL, ADMIN_PASSWORD)
            .await;
        let session = browser
            .cookie("spog_session")
            .await
            .expect("a session cookie");
        let me = format!("{}/api/v1/auth/me", server.base);
        let http = reqwest::Client::new();
        let with_cookie = || {
            http.get(&me)
                .header("cookie", format!("spog_session={session}"))
        };
        assert_eq!(with_cookie().send().await.unwrap().status(), StatusCode::OK);

        browser.click("#logout").await;
        browser.wait_for_path("/login").await;
        assert_eq!(browser.cookie("spog_session").await, None);
        assert_eq!(
            with_cookie().send().await.unwrap().status(),
            StatusCode::UNAUTHORIZED,
            "the old cookie must not work after logout"
        );
        browser.goto(&format!("{}/", server.base)).await;
        browser.wait_for_path("/login").await;
        server.stop().await;
    }
    browser.close().await;
}

#[tokio::test]
async fn a_user_without_admin_permissions_sees_neither_admin_links_nor_controls() {
    let Some(browser) = Browser::open().await else {
        return;
    };
    for server in servers().await {
        let admin = server.admin().await;
        admin
            .user_with_roles(&server, "auditor@example.com", &["auditor"])
            .await;
        browser
            .log_in(
                &server.base,
                "auditor@example.com",
                "a long enough password",
            )
            .await;
        let sidebar = browser.text("nav.sidebar").await;
        assert!(
            !sidebar.contains("Users") && !sidebar.contains("API tokens"),
            "{sidebar}"
        );
        assert!(!sidebar.contains("System health"), "{sidebar}");
        assert!(
            !browser.is_present("#card-users").await,
            "user counts need users.manage"
        );
        browser.find("#activity-table").await;

        browser.goto(&format!("{}/admin/users", server.base)).await;
        let notice = browser.text("#no-access").await;
        assert!(
            notice.contains("You do not have access to Users"),
            "{notice}"
        );
        assert!(notice.contains("users.manage"), "{notice}");
        browser
            .goto(&format!("{}/system/health", server.base))
            .await;
        assert!(browser.text("#no-access").await.contains("monitoring.view"));

        browser.goto(&format!("{}/admin/hosts", server.base)).await;
        assert_eq!(browser.text("main h1").await, "Hosts");
        assert!(!browser.is_present("#create-host").await);
        browser
            .goto(&format!("{}/admin/organizations", server.base))
            .await;
        browser.find("#organizations-list").await;
        assert!(!browser.is_present("#create-organization").await);
        browser
            .client
            .delete_all_cookies()
            .await
            .expect("clearing cookies");
        server.stop().await;
    }
    browser.close().await;
}

//! A user's own account page in a real browser: a viewer (no permission to manage anything)
//! makes a token, ends another session and changes their password through `/api/v1/auth/me`.

use reqwest::StatusCode;
use spog_server::testing::{ADMIN_EMAIL, ADMIN_PASSWORD};

use crate::browser::Browser;
use crate::servers;

const PASSWORD: &str = "a long enough password";

#[tokio::test]
async fn a_viewer_manages_their_own_tokens_sessions_and_password_on_the_account_page() {
    let Some(browser) = Browser::open().await else {
        return;
    };
    for server in servers().await {
        let admin = server.login(ADMIN_EMAIL, ADMIN_PASSWORD).await;
        admin
            .user_with_roles(&server, "vera@example.com", &["viewer"])
            .await;
        let elsewhere = server.login("vera@example.com", PASSWORD).await;
        browser
            .log_in(&server.base, "vera@example.com", PASSWORD)
            .await;
        browser.click("#user-name").await;
        browser.wait_for_path("/account").await;
        assert_eq!(browser.text("#profile-email").await, "vera@example.com");
        assert_eq!(browser.text("#profile-roles").await, "viewer");

        // Sessions: this one is marked and cannot be revoked here; the other one can.
        let current = browser.text("#sessions-list tr[data-current]").await;
        assert!(current.contains("this session"), "{current}");
        assert!(
            !browser
                .is_present("#sessions-list tr[data-current] button")
                .await
        );
        let (_, sessions) = elsewhere.get("/auth/me/sessions").await;
        let sessions = sessions.as_array().unwrap();
        let other = sessions.iter().find(|s| s["current"] == true).unwrap();
        let other_row = format!(
            "#sessions-list tr[data-session='{}']",
            other["id"].as_str().unwrap()
        );
        browser.click(&format!("{other_row} button.danger")).await;
        browser.confirm().await;
        browser.wait_until_hidden(&other_row).await;
        assert_eq!(elsewhere.get("/auth/me").await.0, StatusCode::UNAUTHORIZED);
        // The admin's helper logged Vera in once more: "sign out other sessions" ends it.
        assert!(
            browser
                .is_present("#sessions-list tbody tr:not([data-current])")
                .await
        );
        browser.click("#revoke-other-sessions button").await;
        browser.confirm().await;
        browser
            .wait_until_hidden("#sessions-list tbody tr:not([data-current])")
            .await;

        // A token: shown once, listed, acting as Vera.
        browser.fill("#new-token-name", "laptop script").await;
        browser
            .click("#create-token input[name=permissions][value='monitoring.view']")
            .await;
        browser.click("#create-token button[type=submit]").await;
        let token = browser.wait_for_text("#token-value", "spog_").await;
        browser
            .wait_for_text("#account-tokens", "laptop script")
            .await;
        let client = server.anonymous().with_token(&token);
        let (status, me) = client.get("/auth/me").await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(me["email"], "vera@example.com");

        // A wrong current password is named next to its field.
        browser
            .fill("#current-password", "not my password at all")
            .await;
        browser.fill("#new-password", "a fresh long password").await;
        browser.click("#change-password button[type=submit]").await;
        browser
            .wait_for_text(
                "#change-password [data-error-for=current_password]",
                "current",
            )
            .await;
        // The right one changes it; the token ends, this session stays.
        browser.fill("#current-password", PASSWORD).await;
        browser.fill("#new-password", "a fresh long password").await;
        browser.click("#change-password button[type=submit]").await;
        browser
            .wait_for_text("#change-password [data-form-status]", "Password changed")
            .await;
        assert_eq!(client.get("/auth/me").await.0, StatusCode::UNAUTHORIZED);
        browser.goto(&format!("{}/account", server.base)).await;
        assert_eq!(browser.text("#profile-email").await, "vera@example.com");
        server
            .login("vera@example.com", "a fresh long password")
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

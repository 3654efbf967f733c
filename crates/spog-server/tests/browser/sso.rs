//! Single sign-on in a real browser: an administrator adds a provider on the Single sign-on
//! page (seeing the redirect URI to register, testing it), logs out, and signs in again
//! through the provider's button on the login page, in headless Chromium against a real
//! OpenID provider on loopback.

use serde_json::json;
use spog_server::testing::oidc::OidcProvider;
use spog_server::testing::{ADMIN_EMAIL, ADMIN_PASSWORD};

use crate::browser::Browser;
use crate::servers;

#[tokio::test]
async fn an_administrator_adds_a_provider_and_a_user_signs_in_through_it() {
    let Some(oidc) = OidcProvider::start() else {
        return;
    };
    let Some(browser) = Browser::open().await else {
        return;
    };
    for server in servers().await {
        browser
            .log_in(&server.base, ADMIN_EMAIL, ADMIN_PASSWORD)
            .await;
        browser.goto(&format!("{}/admin/sso", server.base)).await;
        browser.fill("#idp-name", "Corp ID").await;
        browser.fill("#idp-issuer", &oidc.issuer).await;
        browser.fill("#idp-client-id", "spog-browser").await;
        browser.fill("#idp-client-secret", "a client secret").await;
        browser.fill("#idp-default-roles", "auditor").await;
        browser
            .click("#create-provider input[name=jit_provisioning]")
            .await;
        browser.click("#create-provider button[type=submit]").await;
        browser.wait_for_text("#redirect-uri", "/callback").await;
        let redirect = browser.text("#redirect-uri").await;
        assert!(
            redirect.starts_with(&format!("{}/login/sso/", server.base)),
            "{redirect}"
        );
        browser.click("#test-provider").await;
        browser.wait_for_text("#test-result", "yes").await;

        browser.click("#logout").await;
        browser.wait_for_path("/login").await;
        oidc.sign_in_as(
            "kim-subject",
            json!({"email": "kim@example.com", "email_verified": true, "name": "Kim Park"}),
        )
        .await;
        let button = browser.text(".sso-buttons a").await;
        assert_eq!(button, "Sign in with Corp ID");
        browser.click(".sso-buttons a").await;
        browser.wait_for_path("/").await;
        browser.wait_for_text("#user-name", "Kim Park").await;
        let admin = server.admin().await;
        let (_, users) = admin.get("/users?limit=50").await;
        let kim = users["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|u| u["email"] == "kim@example.com")
            .expect("Kim was created at her first sign-in")
            .clone();
        assert_eq!(kim["roles"], json!(["auditor"]));
        browser.click("#logout").await;
        browser.wait_for_path("/login").await;
        server.stop().await;
    }
    browser.close().await;
}

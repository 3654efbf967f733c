//! The admin pages in a real browser: each change goes through the JSON API, and what the
//! API answers (201, 422, 409) shows on the page.

use reqwest::StatusCode;
use serde_json::{Value, json};
use spog_server::testing::{ADMIN_EMAIL, ADMIN_PASSWORD};

use crate::browser::Browser;
use crate::servers;

fn find_user<'a>(users: &'a Value, email: &str) -> Option<&'a Value> {
    users["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["email"] == email)
}

#[tokio::test]
async fn creating_a_user_on_the_users_page_lists_it_and_the_api_sees_it() {
    let Some(browser) = Browser::open().await else {
        return;
    };
    for server in servers().await {
        browser
            .log_in(&server.base, ADMIN_EMAIL, ADMIN_PASSWORD)
            .await;
        browser.goto(&format!("{}/admin/users", server.base)).await;
        browser.fill("#new-user-email", "ada@example.com").await;
        browser.fill("#new-user-name", "Ada Lovelace").await;
        browser
            .fill("#new-user-password", "analytical engine 1843")
            .await;
        browser
            .click("#create-user input[name=roles][value=auditor]")
            .await;
        browser.click("#create-user-submit").await;

        let row = browser
            .wait_for_text("#users-table", "ada@example.com")
            .await;
        assert!(row.contains("Ada Lovelace"), "{row}");
        let roles = browser
            .text("tr[data-email='ada@example.com'] td:nth-child(3)")
            .await;
        assert_eq!(roles, "auditor");
        assert_eq!(
            browser.text("#create-user [data-form-status]").await,
            "User created."
        );
        assert_eq!(
            browser
                .find("#new-user-email")
                .await
                .prop("value")
                .await
                .unwrap()
                .as_deref(),
            Some(""),
            "the form is ready for the next user"
        );

        let admin = server.admin().await;
        let (status, users) = admin.get("/users").await;
        assert_eq!(status, StatusCode::OK);
        let ada = find_user(&users, "ada@example.com").expect("the API lists the new user");
        assert_eq!(ada["roles"], json!(["auditor"]));
        assert_eq!(ada["display_name"], "Ada Lovelace");
        // The page went through the API: the audit trail says it came from the console.
        let ada = server
            .login("ada@example.com", "analytical engine 1843")
            .await;
        let (_, me) = ada.get("/auth/me").await;
        assert_eq!(
            me["permissions"],
            json!([
                "audit_logs.view",
                "audit_logs.export",
                "session_recordings.view"
            ])
        );
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
async fn an_invalid_email_is_shown_next_to_its_field() {
    let Some(browser) = Browser::open().await else {
        return;
    };
    for server in servers().await {
        browser
            .log_in(&server.base, ADMIN_EMAIL, ADMIN_PASSWORD)
            .await;
        browser.goto(&format!("{}/admin/users", server.base)).await;
        browser.fill("#new-user-email", "not-an-email").await;
        browser
            .fill("#new-user-password", "a long enough password")
            .await;
        browser.click("#create-user-submit").await;

        let error = browser
            .wait_for_text("#create-user [data-error-for=email]", "email")
            .await;
        // The message sits in the email field's own box, and the field is marked invalid.
        let beside: Value = browser
            .client
            .execute(
                "const field = document.querySelector('#new-user-email');
                 return [field.closest('.field').querySelector('[data-error-for=email]').textContent,
                         field.getAttribute('aria-invalid'),
                         document.activeElement === field];",
                vec![],
            )
            .await
            .unwrap();
        assert_eq!(beside, json!([error, "true", true]));
        assert!(
            !browser
                .is_displayed("#create-user [data-error-for=password]")
                .await
        );

        let (_, users) = server.admin().await.get("/users").await;
        assert!(find_user(&users, "not-an-email").is_none());

        // Fixing the field clears the message on the next try.
        browser.fill("#new-user-email", "fixed@example.com").await;
        browser.click("#create-user-submit").await;
        browser
            .wait_for_text("#users-table", "fixed@example.com")
            .await;
        assert!(
            !browser
                .is_displayed("#create-user [data-error-for=email]")
                .await
        );
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
async fn a_conflict_is_explained_on_the_form() {
    let Some(browser) = Browser::open().await else {
        return;
    };
    for server in servers().await {
        browser
            .log_in(&server.base, ADMIN_EMAIL, ADMIN_PASSWORD)
            .await;
        browser.goto(&format!("{}/admin/users", server.base)).await;
        browser.fill("#new-user-email", ADMIN_EMAIL).await;
        browser.click("#create-user-submit").await;
        let message = browser
            .wait_for_text("#create-user [data-form-error]", "already exists")
            .await;
        assert_eq!(message, "a user with this email already exists");
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
async fn editing_and_deleting_a_user_from_the_console() {
    let Some(browser) = Browser::open().await else {
        return;
    };
    for server in servers().await {
        let admin = server.admin().await;
        admin
            .user_with_roles(&server, "grace@example.com", &["viewer"])
            .await;
        browser
            .log_in(&server.base, ADMIN_EMAIL, ADMIN_PASSWORD)
            .await;
        browser.goto(&format!("{}/admin/users", server.base)).await;
        browser
            .click("tr[data-email='grace@example.com'] a.button")
            .await;
        browser
            .click("#edit-user input[name=roles][value=viewer]")
            .await;
        browser
            .click("#edit-user input[name=roles][value=operator]")
            .await;
        browser.click("#edit-user input[name=active]").await;
        browser.click("#save-user").await;
        browser.wait_for_path("/admin/users").await;
        let row = browser.text("tr[data-email='grace@example.com']").await;
        assert!(row.contains("operator") && !row.contains("viewer"), "{row}");
        assert!(row.contains("deactivated"), "{row}");

        browser
            .click("tr[data-email='grace@example.com'] button.danger")
            .await;
        browser.confirm().await;
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while browser
            .is_present("tr[data-email='grace@example.com']")
            .await
        {
            assert!(
                std::time::Instant::now() < deadline,
                "the deleted user stays listed"
            );
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        let (_, users) = admin.get("/users").await;
        assert!(find_user(&users, "grace@example.com").is_none());
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
async fn an_api_token_is_shown_once_and_works() {
    let Some(browser) = Browser::open().await else {
        return;
    };
    for server in servers().await {
        browser
            .log_in(&server.base, ADMIN_EMAIL, ADMIN_PASSWORD)
            .await;
        browser
            .goto(&format!("{}/admin/api-tokens", server.base))
            .await;
        browser.fill("#new-token-name", "deploy agent").await;
        browser
            .find("#new-token-actor")
            .await
            .select_by_value("agent")
            .await
            .unwrap();
        browser
            .click("#create-token input[name=permissions][value='events.publish']")
            .await;
        browser.click("#create-token button[type=submit]").await;

        let token = browser.wait_for_text("#token-value", "spog_").await;
        let listed = browser.wait_for_text("#tokens-table", "deploy agent").await;
        assert!(
            listed.contains("events.publish") && listed.contains("agent"),
            "{listed}"
        );
        assert!(!listed.contains(&token), "lists never show the secret");
        let agent = server.anonymous().with_token(&token);
        let (status, me) = agent.get("/auth/me").await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(me["actor_type"], "agent");

        browser.client.refresh().await.unwrap();
        browser.find("#tokens-table").await;
        assert!(!browser.is_displayed("#token-created").await, "shown once");

        browser
            .click("tr[data-token='deploy agent'] button.danger")
            .await;
        browser.confirm().await;
        browser
            .wait_for_text("tr[data-token='deploy agent']", "revoked")
            .await;
        assert_eq!(agent.get("/auth/me").await.0, StatusCode::UNAUTHORIZED);
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
async fn hosts_are_created_and_access_is_granted_from_the_console() {
    let Some(browser) = Browser::open().await else {
        return;
    };
    for server in servers().await {
        let admin = server.admin().await;
        let viewer = admin
            .user_with_roles(&server, "viewer@example.com", &["viewer"])
            .await;
        browser
            .log_in(&server.base, ADMIN_EMAIL, ADMIN_PASSWORD)
            .await;
        browser.goto(&format!("{}/admin/hosts", server.base)).await;
        browser.fill("#new-host-hostname", "db-1.example.com").await;
        browser.click("#create-host button[type=submit]").await;
        browser
            .wait_for_text("#hosts-table", "db-1.example.com")
            .await;
        assert_eq!(viewer.get("/hosts").await.1["items"], json!([]));

        browser
            .click("tr[data-hostname='db-1.example.com'] a.button")
            .await;
        browser
            .find("#grant-user")
            .await
            .select_by_label("viewer@example.com")
            .await
            .unwrap();
        browser.click("#grant-access button[type=submit]").await;
        browser
            .wait_for_text("#host-access", "viewer@example.com")
            .await;
        let (_, visible) = viewer.get("/hosts").await;
        assert_eq!(visible["items"][0]["hostname"], "db-1.example.com");

        browser.click("#host-access button.danger").await;
        browser.confirm().await;
        browser
            .wait_for_text("#host-access", "Nobody has been granted access")
            .await;
        assert_eq!(viewer.get("/hosts").await.1["items"], json!([]));
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
async fn custom_roles_are_created_with_their_permissions() {
    let Some(browser) = Browser::open().await else {
        return;
    };
    for server in servers().await {
        browser
            .log_in(&server.base, ADMIN_EMAIL, ADMIN_PASSWORD)
            .await;
        browser.goto(&format!("{}/admin/roles", server.base)).await;
        browser.fill("#new-role-name", "publisher").await;
        browser
            .click("#create-role input[name=permissions][value='events.publish']")
            .await;
        browser.click("#create-role button[type=submit]").await;
        let row = browser
            .wait_for_text("tr[data-role='publisher']", "publisher")
            .await;
        assert!(row.contains("events.publish"), "{row}");
        // Built-in roles offer no controls.
        assert!(!browser.is_present("tr[data-role='admin'] button").await);
        let (_, roles) = server.admin().await.get("/roles").await;
        let publisher = roles
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["name"] == "publisher")
            .unwrap();
        assert_eq!(publisher["permissions"], json!(["events.publish"]));
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
async fn losing_a_permission_while_a_page_is_open_shows_the_refusal() {
    let Some(browser) = Browser::open().await else {
        return;
    };
    for server in servers().await {
        let admin = server.admin().await;
        let (status, second) = admin
            .post(
                "/users",
                json!({"email": "second@example.com", "password": "a long enough password", "roles": ["admin"]}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED);
        browser
            .log_in(&server.base, "second@example.com", "a long enough password")
            .await;
        browser.goto(&format!("{}/admin/users", server.base)).await;
        let id = second["id"].as_str().unwrap();
        let (status, _) = admin
            .patch(&format!("/users/{id}"), json!({"roles": ["viewer"]}))
            .await;
        assert_eq!(status, StatusCode::OK);

        browser.fill("#new-user-email", "late@example.com").await;
        browser.click("#create-user-submit").await;
        let message = browser
            .wait_for_text("#create-user [data-form-error]", "permission")
            .await;
        assert_eq!(message, "this requires the users.manage permission");
        let (_, users) = admin.get("/users").await;
        assert!(find_user(&users, "late@example.com").is_none());
        browser
            .client
            .delete_all_cookies()
            .await
            .expect("clearing cookies");
        server.stop().await;
    }
    browser.close().await;
}

//! The Audit Logs and notification pages over plain HTTP: who may open them, the action filter's
//! suggestions, the API's 422s shown on the page, statistics drawn, checkpoints downloadable as the
//! verifier reads them, and nothing of another user or account.

use reqwest::StatusCode;
use serde_json::{Value, json};
use spog_server::testing::{ADMIN_EMAIL, TestServer};

use crate::http::Visitor;
use crate::servers;

async fn page(visitor: &mut Visitor, path: &str) -> (StatusCode, String) {
    let response = visitor.get(path).await;
    (response.status(), response.text().await.unwrap())
}

/// The CSRF token a page carries for its requests.
fn csrf_of(page: &str) -> String {
    let marker = "name=\"csrf-token\" content=\"";
    let start = page.find(marker).expect("a csrf-token meta tag") + marker.len();
    page[start..start + page[start..].find('"').unwrap()].to_owned()
}

/// The text of the first element with `marker` in its opening tag.
fn element_text<'a>(page: &'a str, marker: &str) -> &'a str {
    let at = page
        .find(marker)
        .unwrap_or_else(|| panic!("{marker} in {page}"));
    let start = at + page[at..].find('>').unwrap() + 1;
    let end = start + page[start..].find('<').unwrap();
    page[start..end].trim()
}

async fn reader(server: &TestServer, permissions: &[&str]) -> Visitor {
    let admin = server.admin().await;
    admin
        .post(
            "/roles",
            json!({"name": "limited", "permissions": permissions}),
        )
        .await;
    admin
        .user_with_roles(server, "limited@example.com", &["limited"])
        .await;
    let mut visitor = Visitor::new(server);
    visitor
        .log_in_as("limited@example.com", "a long enough password")
        .await;
    visitor
}

#[tokio::test]
async fn audit_pages_need_audit_logs_view_and_say_so() {
    for server in servers().await {
        let mut visitor = reader(&server, &["monitoring.view"]).await;
        let (_, dashboard) = page(&mut visitor, "/").await;
        assert!(
            !dashboard.contains("href=\"/audit-logs\""),
            "no sidebar entry"
        );
        assert!(
            dashboard.contains("id=\"bell-button\""),
            "everyone has the bell"
        );
        for path in [
            "/audit-logs",
            "/audit-logs/stats",
            "/audit-logs/integrity",
            "/audit-logs/checkpoints/1/download",
        ] {
            let (status, body) = page(&mut visitor, path).await;
            assert_eq!(status, StatusCode::FORBIDDEN, "{path}");
            assert!(body.contains("audit_logs.view"), "{path}: {body}");
        }
        let csrf = csrf_of(&dashboard);
        let response = visitor
            .post_with("/audit-logs/integrity/report", &[("x-csrf-token", &csrf)])
            .await;
        assert_eq!(response.status(), StatusCode::FORBIDDEN);
        assert!(response.text().await.unwrap().contains("audit_logs.view"));
        server.stop().await;
    }
}

#[tokio::test]
async fn the_action_filter_suggests_the_services_actions() {
    for server in servers().await {
        let mut visitor = Visitor::new(&server);
        visitor.log_in().await;
        let (status, body) = page(&mut visitor, "/audit-logs").await;
        assert_eq!(status, StatusCode::OK);
        assert!(body.contains("list=\"audit-actions\""), "{body}");
        assert_eq!(
            element_text(&body, "<option value=\"host.update\""),
            "A host was changed."
        );
        let datalist = &body[body.find("<datalist id=\"audit-actions\">").unwrap()..];
        let datalist = &datalist[..datalist.find("</datalist>").unwrap()];
        assert_eq!(
            datalist.matches("<option value=").count(),
            spog_core::audit::Action::ALL.len()
        );
        server.stop().await;
    }
}

#[tokio::test]
async fn the_search_page_shows_the_apis_422s_beside_their_fields() {
    for server in servers().await {
        let mut visitor = Visitor::new(&server);
        visitor.log_in().await;
        let (status, body) = page(
            &mut visitor,
            "/audit-logs?actor_type=robot&from=2026-11-25T10:00&to=2026-11-24T10:00:00Z&q=",
        )
        .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(
            element_text(&body, "data-error-for=\"actor_type\""),
            "must be user, system, agent or workflow"
        );
        assert_eq!(
            element_text(&body, "data-error-for=\"to\""),
            "must not be before from"
        );
        // A form's time without a zone is UTC, shown back in the field as the browser wants it.
        assert!(body.contains("value=\"2026-11-25T10:00:00\""), "{body}");
        assert!(
            !body.contains("data-error-for=\"q\""),
            "an empty field is no filter"
        );
        assert!(!body.contains("id=\"audit-results\""));
        assert!(!body.contains("id=\"export-csv\""), "nothing to export");

        let (status, body) = page(&mut visitor, "/audit-logs?colour=red").await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
        assert!(
            body.contains("colour is not a parameter of this endpoint"),
            "{body}"
        );
        let (status, body) = page(&mut visitor, "/audit-logs?cursor=garbage").await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
        assert!(
            body.contains("cursor is not a cursor of this list"),
            "{body}"
        );
        server.stop().await;
    }
}

#[tokio::test]
async fn the_search_pages_through_the_apis_cursors_keeping_its_filters() {
    for server in servers().await {
        let admin = server.admin().await;
        for n in 0..60 {
            admin
                .post("/organizations", json!({"name": format!("team {n:02}")}))
                .await;
        }
        server.link_audit().await;
        let mut visitor = Visitor::new(&server);
        visitor.log_in().await;
        let (_, first) = page(&mut visitor, "/audit-logs?action=organization.create").await;
        assert_eq!(
            first.matches("data-action=\"organization.create\"").count(),
            50
        );
        // Results name the resource ("organization team 59"); the filter's list names them all.
        assert!(first.contains("organization team 59") && !first.contains("organization team 05"));
        let older =
            crate::http::attribute_after(&first, "id=\"older-page\"", "href").replace("&#38;", "&");
        assert!(
            older.starts_with("/audit-logs?action=organization.create&cursor="),
            "{older}"
        );
        let (status, second) = page(&mut visitor, &older).await;
        assert_eq!(status, StatusCode::OK);
        // The rest: ten teams and the account's own first organization.
        assert_eq!(
            second
                .matches("data-action=\"organization.create\"")
                .count(),
            11
        );
        assert!(
            second.contains("organization team 05") && !second.contains("organization team 59")
        );
        assert!(second.contains("id=\"newest-page\"") && !second.contains("id=\"older-page\""));
        server.stop().await;
    }
}

#[tokio::test]
async fn statistics_are_drawn_for_the_chosen_days_and_bad_ranges_are_explained() {
    for server in servers().await {
        let admin = server.admin().await;
        admin
            .post("/organizations", json!({"name": "Research"}))
            .await;
        server
            .anonymous()
            .post(
                "/auth/login",
                json!({"email": ADMIN_EMAIL, "password": "wrong"}),
            )
            .await;
        let mut visitor = Visitor::new(&server);
        visitor.log_in().await;
        server.link_audit().await;
        let (_, stats) = admin.get("/audit-logs/stats").await;

        let (status, body) = page(&mut visitor, "/audit-logs/stats").await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(
            body.matches("<a href=\"/audit-logs?from=").count(),
            7 * 2,
            "a bar and a table row a day"
        );
        assert_eq!(
            element_text(&body, "id=\"stats-total\""),
            stats["total"].to_string()
        );
        assert_eq!(element_text(&body, "id=\"stats-failures\""), "1");
        assert!(
            body.contains("data-failures=\"1\""),
            "today's bar shows the failure"
        );
        assert!(
            body.contains(">organization.create</a>"),
            "top actions link to searches"
        );
        assert!(!body.contains("style="), "no inline styles");

        let (_, month) = page(&mut visitor, "/audit-logs/stats?days=30").await;
        assert_eq!(month.matches("class=\"day\"").count(), 30);
        let (status, range) = page(
            &mut visitor,
            "/audit-logs/stats?from=2026-01-01&to=2026-01-03",
        )
        .await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(range.matches("class=\"day\"").count(), 3);
        assert!(range.contains("value=\"2026-01-01\""));

        for (query, field, message) in [
            ("days=0", "days", "must be between 1 and 366"),
            ("days=week", "days", "must be a whole number of days"),
            (
                "days=7&from=2026-01-01",
                "days",
                "give either days or from/to, not both",
            ),
            (
                "from=2026-01-05&to=2026-01-01",
                "to",
                "must not be before from",
            ),
        ] {
            let (status, body) = page(&mut visitor, &format!("/audit-logs/stats?{query}")).await;
            assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{query}");
            assert_eq!(
                element_text(&body, &format!("data-error-for=\"{field}\"")),
                message,
                "{query}"
            );
        }
        server.stop().await;
    }
}

/// Verifying writes to the trail, so it is no link a page, a prefetch or another site can
/// follow: a POST carrying the page's CSRF token, or nothing happens.
#[tokio::test]
async fn the_integrity_report_runs_only_on_a_post_with_the_pages_token() {
    for server in servers().await {
        let admin = server.admin().await;
        let mut visitor = Visitor::new(&server);
        visitor.log_in().await;
        let (status, _) = page(&mut visitor, "/audit-logs/integrity/report").await;
        assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
        for token in [None, Some("forged")] {
            let headers: Vec<(&str, &str)> =
                token.map(|t| ("x-csrf-token", t)).into_iter().collect();
            let response = visitor
                .post_with("/audit-logs/integrity/report", &headers)
                .await;
            assert_eq!(response.status(), StatusCode::FORBIDDEN, "{token:?}");
        }
        server.link_audit().await;
        let (_, verified) = admin.get("/audit-logs?action=audit_log.verify").await;
        assert_eq!(
            verified["items"],
            json!([]),
            "nothing was verified or recorded"
        );
        let (_, page_text) = page(&mut visitor, "/audit-logs/integrity").await;
        assert!(
            page_text.contains("hx-post=\"/audit-logs/integrity/report\""),
            "the button posts"
        );
        server.stop().await;
    }
}

#[tokio::test]
async fn verifying_from_the_console_is_on_record_and_checkpoints_download_as_the_api_lists_them() {
    for server in servers().await {
        let admin = server.admin().await;
        let (status, signed) = admin.post("/audit-logs/checkpoints", json!({})).await;
        assert_eq!(status, StatusCode::CREATED, "{signed}");
        let mut visitor = Visitor::new(&server);
        let csrf = visitor.log_in().await;
        let report = visitor
            .post_with("/audit-logs/integrity/report", &[("x-csrf-token", &csrf)])
            .await;
        assert_eq!(report.status(), StatusCode::OK);
        let report = report.text().await.unwrap();
        assert!(report.contains("data-valid=\"true\""), "{report}");
        server.link_audit().await;
        let (_, verified) = admin.get("/audit-logs?action=audit_log.verify").await;
        assert_eq!(verified["items"][0]["source"], "web");
        assert_eq!(verified["items"][0]["metadata"]["valid"], true);
        assert_eq!(verified["items"][0]["credential_name"], "session");
        // The entry's page says which credential and when it was stored.
        let id = verified["items"][0]["id"].as_str().unwrap();
        let (_, detail) = page(&mut visitor, &format!("/audit-logs/{id}")).await;
        let credential = element_text(&detail, "id=\"entry-credential\"");
        assert!(credential.starts_with("session"), "{credential}");
        let session = verified["items"][0]["credential_id"].as_str().unwrap();
        assert!(detail.contains(session), "the session's id is shown");
        let recorded = verified["items"][0]["recorded_at"].as_str().unwrap();
        assert!(detail.contains(recorded), "the exact recorded_at is shown");

        let seq = signed["seq"].as_i64().unwrap();
        let download = visitor
            .get(&format!("/audit-logs/checkpoints/{seq}/download"))
            .await;
        assert_eq!(download.status(), StatusCode::OK);
        assert_eq!(
            download.headers()["content-disposition"],
            format!("attachment; filename=\"checkpoint-{seq}.json\"").as_str()
        );
        let downloaded: Value = download.json().await.unwrap();
        let (_, listed) = admin.get("/audit-logs/checkpoints").await;
        let same = listed
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["seq"] == seq)
            .unwrap();
        assert_eq!(&downloaded, same);
        let missing = visitor.get("/audit-logs/checkpoints/999999/download").await;
        assert_eq!(missing.status(), StatusCode::NOT_FOUND);
        server.stop().await;
    }
}

#[tokio::test]
async fn no_one_sees_another_users_notifications_or_another_accounts_entries() {
    for server in servers().await {
        let admin = server.admin().await;
        admin
            .user_with_roles(&server, "ada@example.com", &["viewer"])
            .await;
        let (status, _) = admin
            .post(
                "/notifications",
                json!({"user_email": "ada@example.com", "category": "security", "severity": "high",
                       "title": "New sign-in for Ada", "message": "From 10.0.0.7"}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED);
        let (_, entries) = admin.get("/audit-logs?action=notification.send").await;
        let entry = entries["items"][0]["id"].as_str().unwrap().to_owned();

        let mut ada = Visitor::new(&server);
        ada.log_in_as("ada@example.com", "a long enough password")
            .await;
        let (_, own) = page(&mut ada, "/notifications").await;
        assert!(own.contains("New sign-in for Ada"));
        let (_, menu) = page(&mut ada, "/notifications/menu?read=false&category=security").await;
        assert!(menu.contains("New sign-in for Ada"));

        let mut root = Visitor::new(&server);
        root.log_in().await;
        for path in [
            "/notifications",
            "/notifications/list",
            "/notifications/menu",
        ] {
            let (status, body) = page(&mut root, path).await;
            assert_eq!(status, StatusCode::OK, "{path}");
            assert!(!body.contains("New sign-in for Ada"), "{path}");
        }
        let (status, _) = page(&mut root, "/notifications?category=gossip").await;
        assert_eq!(status, StatusCode::BAD_REQUEST);

        spog_server::bootstrap::create_account(
            &server.state.store,
            "globex",
            &spog_core::validate::Email::parse("email", "root@globex.example").unwrap(),
            "globex admin password",
            spog_core::audit::Source::Cli,
        )
        .await
        .unwrap();
        let mut globex = Visitor::new(&server);
        globex
            .log_in_as("root@globex.example", "globex admin password")
            .await;
        for path in [
            format!("/audit-logs/{entry}"),
            "/audit-logs/not-an-id".to_owned(),
        ] {
            let (status, _) = page(&mut globex, &path).await;
            assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
        }
        let (_, search) = page(&mut globex, "/audit-logs").await;
        // The action filter suggests `notification.send`; no row of results is one.
        assert!(!search.contains("data-action=\"notification.send\""));
        let (status, _) = page(&mut root, &format!("/audit-logs/{entry}")).await;
        assert_eq!(status, StatusCode::OK);
        server.stop().await;
    }
}

//! The Audit Logs pages in a real browser: searching with filters kept in the link, an entry's
//! before/after diff, exporting what the filters select, verifying the chain before and after
//! someone edits the database, and the dashboard's activity following the trail live.

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use spog_server::testing::{ADMIN_EMAIL, ADMIN_PASSWORD, TestServer};

use crate::browser::Browser;
use crate::servers;

/// Two organizations and a user, all on record and linked into the chain.
async fn some_history(server: &TestServer) {
    let admin = server.admin().await;
    for name in ["Research", "Sales"] {
        admin.post("/organizations", json!({"name": name})).await;
    }
    admin
        .post("/users", json!({"email": "ada@example.com"}))
        .await;
    server.link_audit().await;
}

/// The `data-*` attribute `name` of every row of the results table.
async fn column(browser: &Browser, name: &str) -> Vec<String> {
    let values: Value = browser
        .client
        .execute(
            "return [...document.querySelectorAll('#audit-results tbody tr')]
                 .map(row => row.dataset[arguments[0]]);",
            vec![json!(name)],
        )
        .await
        .unwrap();
    serde_json::from_value(values).unwrap()
}

async fn log_out(browser: &Browser) {
    browser
        .client
        .delete_all_cookies()
        .await
        .expect("clearing cookies");
}

#[tokio::test]
async fn searching_by_action_shows_only_matching_entries_and_the_link_keeps_the_search() {
    let Some(browser) = Browser::open().await else {
        return;
    };
    for server in servers().await {
        some_history(&server).await;
        browser
            .log_in(&server.base, ADMIN_EMAIL, ADMIN_PASSWORD)
            .await;
        browser.click("a.nav[href='/audit-logs']").await;
        browser
            .wait_for_text("#audit-results", "ada@example.com")
            .await;

        browser.fill("#filter-action", "organization.*").await;
        browser.click("#audit-search-submit").await;
        // Empty fields stay out of the link.
        browser
            .wait_for_path("/audit-logs?action=organization.*")
            .await;
        let actions = column(&browser, "action").await;
        assert!(actions.len() >= 2, "{actions:?}");
        assert!(
            actions.iter().all(|a| a == "organization.create"),
            "{actions:?}"
        );
        let results = browser.text("#audit-results").await;
        assert!(results.contains("Research") && results.contains("Sales"));
        assert!(!results.contains("ada@example.com"), "{results}");

        // The link is the search: opened again, it shows the same filter and rows.
        browser
            .goto(&format!("{}/audit-logs?action=organization.*", server.base))
            .await;
        let field = browser.find("#filter-action").await;
        assert_eq!(
            field.prop("value").await.unwrap().as_deref(),
            Some("organization.*")
        );
        assert_eq!(column(&browser, "action").await, actions);

        // Two filters at once: only Research's entry has "research" in it.
        browser.fill("#filter-q", "research").await;
        browser.click("#audit-search-submit").await;
        browser
            .wait_for_path("/audit-logs?q=research&action=organization.*")
            .await;
        assert_eq!(column(&browser, "action").await, ["organization.create"]);

        // What the API refuses is said next to the field at fault, and nothing is listed.
        browser.fill("#filter-action", "Not an action!").await;
        browser.click("#audit-search-submit").await;
        let message = browser
            .wait_for_text("#audit-search [data-error-for=action]", "must be an action")
            .await;
        assert!(message.contains("webhook.*"), "{message}");
        assert!(!browser.is_present("#audit-results").await);
        assert!(!browser.is_present("[data-error-for=q]").await);
        log_out(&browser).await;
        server.stop().await;
    }
    browser.close().await;
}

#[tokio::test]
async fn an_entrys_detail_shows_what_changed_between_before_and_after() {
    let Some(browser) = Browser::open().await else {
        return;
    };
    for server in servers().await {
        let admin = server.admin().await;
        let (_, grace) = admin
            .post(
                "/users",
                json!({"email": "grace@example.com", "display_name": "Grace"}),
            )
            .await;
        let id = grace["id"].as_str().unwrap();
        admin
            .patch(
                &format!("/users/{id}"),
                json!({"display_name": "Grace Hopper", "roles": ["auditor"]}),
            )
            .await;
        server.link_audit().await;
        browser
            .log_in(&server.base, ADMIN_EMAIL, ADMIN_PASSWORD)
            .await;
        browser
            .goto(&format!("{}/audit-logs?action=user.update", server.base))
            .await;
        browser.click("#audit-results a.entry-link").await;

        let changed = browser
            .wait_for_text("#diff tr[data-path=display_name]", "Grace Hopper")
            .await;
        assert!(changed.contains("\"Grace\""), "{changed}");
        let change_of = |path: &'static str| {
            let browser = &browser;
            async move {
                browser
                    .find(&format!("#diff tr[data-path={path}]"))
                    .await
                    .attr("data-change")
                    .await
                    .unwrap()
                    .unwrap()
            }
        };
        assert_eq!(change_of("display_name").await, "changed");
        assert_eq!(change_of("roles").await, "changed");
        assert_eq!(change_of("email").await, "unchanged");
        let roles = browser.text("#diff tr[data-path=roles] td.after").await;
        assert_eq!(roles, "[\"auditor\"]");
        // Display name, roles and the update time.
        let summary = browser.text("#diff-summary").await;
        assert!(summary.contains("3 changed"), "{summary}");
        let origin = browser.text("#entry-origin").await;
        assert!(
            origin.contains(ADMIN_EMAIL) && origin.contains("api"),
            "{origin}"
        );
        let chain = browser.text("#entry-chain").await;
        assert!(
            chain.contains("Hash") && chain.contains("Previous hash"),
            "{chain}"
        );

        // The user's whole history is one click away; their creation made every value new.
        browser.click("#resource-history").await;
        browser
            .wait_for_path(&format!("/audit-logs?resource_type=user&resource_id={id}"))
            .await;
        assert_eq!(
            column(&browser, "action").await,
            ["user.update", "user.create"]
        );
        browser
            .click("#audit-results tr[data-action='user.create'] a.entry-link")
            .await;
        browser.wait_for_text("h1", "user.create").await;
        let changes: Value = browser
            .client
            .execute(
                "return [...new Set([...document.querySelectorAll('#diff tbody tr')]
                     .map(row => row.dataset.change))];",
                vec![],
            )
            .await
            .unwrap();
        assert_eq!(changes, json!(["added"]));
        log_out(&browser).await;
        server.stop().await;
    }
    browser.close().await;
}

#[tokio::test]
async fn exporting_from_the_page_honours_the_filters_and_needs_the_permission() {
    let Some(browser) = Browser::open().await else {
        return;
    };
    for server in servers().await {
        some_history(&server).await;
        let admin = server.admin().await;
        admin
            .post(
                "/roles",
                json!({"name": "reader", "permissions": ["audit_logs.view"]}),
            )
            .await;
        admin
            .user_with_roles(&server, "reader@example.com", &["reader"])
            .await;
        browser
            .log_in(&server.base, ADMIN_EMAIL, ADMIN_PASSWORD)
            .await;
        browser
            .goto(&format!("{}/audit-logs?action=organization.*", server.base))
            .await;
        let href = browser
            .find("#export-csv")
            .await
            .attr("href")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            href,
            "/api/v1/audit-logs/export?action=organization.*&format=csv"
        );
        let (status, csv) = browser.fetch(&href).await;
        assert_eq!(status, 200, "{csv}");
        let mut lines = csv.lines();
        assert!(
            lines
                .next()
                .unwrap()
                .starts_with("id,seq,occurred_at,actor_type,actor_id,actor_email")
        );
        let rows: Vec<&str> = lines.collect();
        assert!(rows.len() >= 2, "{csv}");
        assert!(
            rows.iter().all(|row| row.contains(",organization.create,")),
            "{csv}"
        );
        assert!(rows.iter().any(|row| row.contains(",Research,")), "{csv}");

        let jsonl = browser.find("#export-jsonl").await.attr("href").await;
        let (status, lines) = browser.fetch(&jsonl.unwrap().unwrap()).await;
        assert_eq!(status, 200);
        for line in lines.lines() {
            let entry: Value = serde_json::from_str(line).unwrap();
            assert_eq!(entry["action"], "organization.create");
            assert!(entry["hash"].is_string(), "complete entries: {entry}");
        }

        // Someone who may read the trail but not export it sees no export buttons.
        log_out(&browser).await;
        browser
            .log_in(&server.base, "reader@example.com", "a long enough password")
            .await;
        browser.goto(&format!("{}/audit-logs", server.base)).await;
        browser.find("#audit-results").await;
        assert!(!browser.is_present("#export-csv").await);
        assert!(!browser.is_present("#export-jsonl").await);
        log_out(&browser).await;
        server.stop().await;
    }
    browser.close().await;
}

async fn entry_of(server: &TestServer, resource_name: &str) -> (String, i64) {
    let mut conn = server.state.store.conn().await.unwrap();
    sqlx::query_as("SELECT id, seq FROM audit_logs WHERE resource_name = $1")
        .bind(resource_name)
        .fetch_one(&mut *conn)
        .await
        .unwrap()
}

#[tokio::test]
async fn the_integrity_page_finds_an_entry_edited_in_the_database() {
    let Some(browser) = Browser::open().await else {
        return;
    };
    for server in servers().await {
        some_history(&server).await;
        browser
            .log_in(&server.base, ADMIN_EMAIL, ADMIN_PASSWORD)
            .await;
        browser
            .goto(&format!("{}/audit-logs/integrity", server.base))
            .await;
        browser.click("#run-verification").await;
        browser
            .wait_for_text("#integrity-verdict", "Valid: the chain is intact")
            .await;
        let checked: u64 = browser.text("#entries-checked").await.parse().unwrap();
        assert!(checked >= 3, "{checked}");
        assert!(!browser.is_present("#broken-links").await);

        // A checkpoint signed now lists with its download and the offline command.
        browser.click("#sign-checkpoint-submit").await;
        browser.find("#checkpoints-list tbody tr").await;
        browser
            .wait_for_text("#sign-checkpoint [data-form-status]", "Checkpoint signed.")
            .await;
        let command = browser.text("#verify-command").await;
        assert_eq!(
            command,
            "spog audit verify --export audit-logs.jsonl --checkpoint checkpoint.json --public-key public-key.json"
        );
        let key = browser.text("#public-key-hex").await;
        assert_eq!(key.len(), 64, "{key}");

        // Someone with database access rewrites what happened to Research.
        let (id, seq) = entry_of(&server, "Research").await;
        let mut conn = server.state.store.conn().await.unwrap();
        sqlx::query("UPDATE audit_entries SET action = 'organization.delete' WHERE id = $1")
            .bind(&id)
            .execute(&mut *conn)
            .await
            .unwrap();
        drop(conn);
        browser.click("#run-verification").await;
        browser
            .wait_for_text("#integrity-verdict", "Broken: 1 broken link")
            .await;
        let row = browser
            .find(&format!("#broken-links tr[data-seq='{seq}']"))
            .await;
        assert_eq!(
            row.attr("data-reason").await.unwrap().as_deref(),
            Some("hash_mismatch")
        );
        let link = browser
            .find(&format!("#broken-links tr[data-seq='{seq}'] a"))
            .await;
        assert_eq!(
            link.attr("href").await.unwrap().unwrap(),
            format!("/audit-logs/{id}")
        );
        link.click().await.unwrap();
        browser.wait_for_path(&format!("/audit-logs/{id}")).await;
        browser.wait_for_text("h1", "organization.delete").await;
        log_out(&browser).await;
        server.stop().await;
    }
    browser.close().await;
}

#[tokio::test]
async fn the_dashboards_recent_activity_follows_the_trail_live() {
    let Some(browser) = Browser::open().await else {
        return;
    };
    for server in servers().await {
        browser
            .log_in(&server.base, ADMIN_EMAIL, ADMIN_PASSWORD)
            .await;
        browser.wait_until_live().await;
        let admin = server.admin().await;
        let sent = Instant::now();
        admin
            .post("/organizations", json!({"name": "Launch Team"}))
            .await;
        // Well before the 10-second poll that stands in only while the socket is down.
        loop {
            let activity = browser.text("#activity").await;
            if activity.contains("Launch Team") {
                break;
            }
            assert!(
                sent.elapsed() < Duration::from_secs(5),
                "the dashboard did not update live: {activity}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        log_out(&browser).await;
        server.stop().await;
    }
    browser.close().await;
}

//! The console's one table of sidebar entries and their pages, walked over plain HTTP: each
//! entry is shown, highlighted and opened with its permission alone, and every page behind it
//! refuses a viewer without permissions in the usual layout, under the title the table gives.

use std::collections::HashMap;
use std::collections::hash_map::Entry;

use reqwest::StatusCode;
use serde_json::json;
use spog_core::Permission;
use spog_server::console::NAV;
use spog_server::testing::TestServer;

use crate::http::Visitor;
use crate::servers;

/// A signed-in visitor whose one role grants `permissions`, and the CSRF token of its session.
async fn visitor_with(
    server: &TestServer,
    name: &str,
    permissions: &[Permission],
) -> (Visitor, String) {
    let admin = server.admin().await;
    let names: Vec<&str> = permissions.iter().map(|p| p.as_str()).collect();
    let (status, body) = admin
        .post("/roles", json!({"name": name, "permissions": names}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let email = format!("{name}@example.com");
    admin.user_with_roles(server, &email, &[name]).await;
    let mut visitor = Visitor::new(server);
    let csrf = visitor.log_in_as(&email, "a long enough password").await;
    (visitor, csrf)
}

/// `path` with each `{parameter}` filled in: refusals come before any lookup.
fn filled(path: &str) -> String {
    path.split('/')
        .map(|segment| match segment.starts_with('{') {
            true => "1",
            false => segment,
        })
        .collect::<Vec<_>>()
        .join("/")
}

/// The sidebar of a page.
fn sidebar(page: &str) -> &str {
    let start = page.find("<nav class=\"sidebar\"").expect("a sidebar");
    &page[start..start + page[start..].find("</nav>").unwrap()]
}

#[tokio::test]
async fn every_sidebar_entrys_pages_refuse_viewers_without_its_permission() {
    for server in servers().await {
        let (mut refused, csrf) = visitor_with(&server, "nothing", &[]).await;
        let mut alone: HashMap<Permission, Visitor> = HashMap::new();
        for entry in NAV {
            let Some(permission) = entry.permission else {
                continue;
            };
            let visitor = match alone.entry(permission) {
                Entry::Occupied(visitor) => visitor.into_mut(),
                Entry::Vacant(slot) => {
                    let name = format!("only-{}", permission.as_str().replace(['.', '_'], "-"));
                    slot.insert(visitor_with(&server, &name, &[permission]).await.0)
                }
            };
            let link = format!("href=\"{}\"", entry.path());
            let response = visitor.get(entry.path()).await;
            assert_eq!(response.status(), StatusCode::OK, "{}", entry.path());
            let page = response.text().await.unwrap();
            let current = format!("{link} aria-current=\"page\"");
            assert!(
                sidebar(&page).contains(&current),
                "{}: {page}",
                entry.path()
            );

            for page in entry.pages {
                let path = filled(page.path);
                let mut response = refused.get(&path).await;
                if response.status() == StatusCode::METHOD_NOT_ALLOWED {
                    response = refused.post_with(&path, &[("x-csrf-token", &csrf)]).await;
                }
                assert_eq!(response.status(), StatusCode::FORBIDDEN, "{path}");
                let body = response.text().await.unwrap();
                let heading = format!("You do not have access to {}", page.title);
                assert!(body.contains(&heading), "{path}: {body}");
                assert!(!sidebar(&body).contains(&link), "{path}: {body}");
            }
        }
        server.stop().await;
    }
}

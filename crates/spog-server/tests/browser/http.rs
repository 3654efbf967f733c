//! The console over plain HTTP (no browser needed): redirects, the login form's CSRF token,
//! the session cookie's attributes, security headers, cached assets, and the API staying
//! JSON-only.

use std::collections::BTreeMap;

use reqwest::header::{CACHE_CONTROL, CONTENT_TYPE, ETAG, IF_NONE_MATCH, LOCATION, SET_COOKIE};
use reqwest::{Response, StatusCode, redirect};
use serde_json::{Value, json};
use spog_server::testing::{ADMIN_EMAIL, ADMIN_PASSWORD, TestServer};

use crate::servers;

/// A browser without JavaScript: follows no redirects, keeps cookies by name.
pub(crate) struct Visitor {
    base: String,
    http: reqwest::Client,
    cookies: BTreeMap<String, String>,
    set_cookies: Vec<String>,
}

impl Visitor {
    pub(crate) fn new(server: &TestServer) -> Self {
        Visitor {
            base: server.base.clone(),
            http: reqwest::Client::builder()
                .redirect(redirect::Policy::none())
                .build()
                .unwrap(),
            cookies: BTreeMap::new(),
            set_cookies: Vec::new(),
        }
    }

    pub(crate) fn cookie_header(&self) -> String {
        self.cookies
            .iter()
            .map(|(name, value)| format!("{name}={value}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    fn keep_cookies(&mut self, response: &Response) {
        self.set_cookies = response
            .headers()
            .get_all(SET_COOKIE)
            .iter()
            .map(|v| v.to_str().unwrap().to_owned())
            .collect();
        for line in &self.set_cookies {
            let pair = line.split(';').next().unwrap();
            let (name, value) = pair.split_once('=').unwrap();
            let removed = value.is_empty() || line.contains("Max-Age=0");
            if removed {
                self.cookies.remove(name);
            } else {
                self.cookies.insert(name.to_owned(), value.to_owned());
            }
        }
    }

    pub(crate) async fn get(&mut self, path: &str) -> Response {
        self.get_with(path, &[]).await
    }

    pub(crate) async fn get_with(&mut self, path: &str, headers: &[(&str, &str)]) -> Response {
        let mut request = self.http.get(format!("{}{path}", self.base));
        if !self.cookies.is_empty() {
            request = request.header("cookie", self.cookie_header());
        }
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let response = request.send().await.unwrap();
        self.keep_cookies(&response);
        response
    }

    /// A POST without a body, as an htmx button sends it.
    pub(crate) async fn post_with(&mut self, path: &str, headers: &[(&str, &str)]) -> Response {
        let mut request = self
            .http
            .post(format!("{}{path}", self.base))
            .header("cookie", self.cookie_header());
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let response = request.send().await.unwrap();
        self.keep_cookies(&response);
        response
    }

    async fn post_form(&mut self, path: &str, fields: &[(&str, &str)]) -> Response {
        let body = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(fields)
            .finish();
        let response = self
            .http
            .post(format!("{}{path}", self.base))
            .header("cookie", self.cookie_header())
            .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(body)
            .send()
            .await
            .unwrap();
        self.keep_cookies(&response);
        response
    }

    /// Opens the login form and returns its hidden fields' values (csrf, next).
    async fn open_login(&mut self, path: &str) -> (String, String) {
        let page = self.get(path).await.text().await.unwrap();
        (hidden(&page, "csrf"), hidden(&page, "next"))
    }

    /// Logs in as the first admin and returns the page's CSRF token for the session.
    pub(crate) async fn log_in(&mut self) -> String {
        self.log_in_as(ADMIN_EMAIL, ADMIN_PASSWORD).await
    }

    pub(crate) async fn log_in_as(&mut self, email: &str, password: &str) -> String {
        let (csrf, _) = self.open_login("/login").await;
        let response = self
            .post_form(
                "/login",
                &[("email", email), ("password", password), ("csrf", &csrf)],
            )
            .await;
        assert_eq!(response.status(), StatusCode::SEE_OTHER);
        let page = self.get("/").await.text().await.unwrap();
        meta(&page, "csrf-token")
    }
}

pub(crate) fn attribute_after(page: &str, marker: &str, attribute: &str) -> String {
    let at = page
        .find(marker)
        .unwrap_or_else(|| panic!("{marker} in {page}"));
    let rest = &page[at..];
    let start = rest.find(&format!("{attribute}=\"")).unwrap() + attribute.len() + 2;
    let end = start + rest[start..].find('"').unwrap();
    rest[start..end].to_owned()
}

fn hidden(page: &str, name: &str) -> String {
    attribute_after(page, &format!("name=\"{name}\""), "value")
}

pub(crate) fn meta(page: &str, name: &str) -> String {
    attribute_after(page, &format!("<meta name=\"{name}\""), "content")
}

fn location(response: &Response) -> &str {
    response.headers()[LOCATION].to_str().unwrap()
}

#[tokio::test]
async fn pages_send_anonymous_visitors_to_log_in() {
    for server in servers().await {
        let mut visitor = Visitor::new(&server);
        let page = visitor.get("/admin/users?cursor=abc").await;
        assert_eq!(page.status(), StatusCode::SEE_OTHER);
        assert_eq!(
            location(&page),
            "/login?next=%2Fadmin%2Fusers%3Fcursor%3Dabc"
        );
        // htmx polls ask the whole page to move rather than swapping the login form in.
        let poll = visitor
            .get_with(
                "/dashboard/activity",
                &[
                    ("hx-request", "true"),
                    ("hx-current-url", &format!("{}/", server.base)),
                ],
            )
            .await;
        assert_eq!(poll.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(poll.headers()["hx-redirect"], "/login");
        // A bearer token is for the API, not for pages.
        let admin = server.admin().await;
        let with_bearer = visitor
            .get_with(
                "/",
                &[("authorization", &format!("Bearer {}", admin.token.unwrap()))],
            )
            .await;
        assert_eq!(with_bearer.status(), StatusCode::SEE_OTHER);
        server.stop().await;
    }
}

#[tokio::test]
async fn logging_in_sets_an_http_only_session_cookie_and_follows_only_local_next() {
    for server in servers().await {
        let mut visitor = Visitor::new(&server);
        let (csrf, next) = visitor
            .open_login("/login?next=https://evil.example/")
            .await;
        assert_eq!(next, "/");
        let response = visitor
            .post_form(
                "/login",
                &[
                    ("email", ADMIN_EMAIL),
                    ("password", ADMIN_PASSWORD),
                    ("csrf", &csrf),
                    ("next", "//evil.example/"),
                ],
            )
            .await;
        assert_eq!(response.status(), StatusCode::SEE_OTHER);
        assert_eq!(location(&response), "/");
        let session = visitor
            .set_cookies
            .iter()
            .find(|c| c.starts_with("spog_session="))
            .expect("a session cookie");
        for attribute in ["HttpOnly", "SameSite=Lax", "Path=/", "Expires="] {
            assert!(session.contains(attribute), "{session} lacks {attribute}");
        }
        assert!(!session.contains("Secure"), "test servers are plain HTTP");
        let dashboard = visitor.get("/").await;
        assert_eq!(dashboard.status(), StatusCode::OK);
        // Logged in already: the login page moves on.
        let again = visitor.get("/login?next=%2Fadmin%2Fhosts").await;
        assert_eq!(location(&again), "/admin/hosts");
        server.stop().await;
    }
}

#[tokio::test]
async fn a_login_form_from_elsewhere_is_refused() {
    for server in servers().await {
        let mut visitor = Visitor::new(&server);
        let credentials = [("email", ADMIN_EMAIL), ("password", ADMIN_PASSWORD)];
        // No nonce cookie: a form posted from another site (login CSRF).
        let forged = visitor
            .post_form(
                "/login",
                &[
                    credentials[0],
                    credentials[1],
                    ("csrf", "0".repeat(64).as_str()),
                ],
            )
            .await;
        assert_eq!(forged.status(), StatusCode::FORBIDDEN);
        assert!(!visitor.cookies.contains_key("spog_session"));
        // A real nonce cookie with a token that is not its signature.
        visitor.open_login("/login").await;
        let mismatched = visitor
            .post_form(
                "/login",
                &[
                    credentials[0],
                    credentials[1],
                    ("csrf", "0".repeat(64).as_str()),
                ],
            )
            .await;
        assert_eq!(mismatched.status(), StatusCode::FORBIDDEN);
        let page = mismatched.text().await.unwrap();
        assert!(page.contains("This login form has expired"), "{page}");
        assert!(!visitor.cookies.contains_key("spog_session"));
        server.stop().await;
    }
}

#[tokio::test]
async fn cookie_sessions_need_the_csrf_token_for_changes() {
    for server in servers().await {
        let mut visitor = Visitor::new(&server);
        let csrf = visitor.log_in().await;
        let create = |token: Option<&str>| {
            let mut request = visitor
                .http
                .post(format!("{}/api/v1/organizations", server.base))
                .header("cookie", visitor.cookie_header())
                .json(&json!({"name": "Research"}));
            if let Some(token) = token {
                request = request.header("x-csrf-token", token);
            }
            request.send()
        };
        assert_eq!(create(None).await.unwrap().status(), StatusCode::FORBIDDEN);
        assert_eq!(
            create(Some("forged")).await.unwrap().status(),
            StatusCode::FORBIDDEN
        );
        assert_eq!(
            create(Some(&csrf)).await.unwrap().status(),
            StatusCode::CREATED
        );

        // Logging out needs it too, so no other site can end a session.
        let refused = visitor.post_form("/logout", &[("csrf", "forged")]).await;
        assert_eq!(refused.status(), StatusCode::FORBIDDEN);
        assert_eq!(visitor.get("/").await.status(), StatusCode::OK);
        let logged_out = visitor.post_form("/logout", &[("csrf", &csrf)]).await;
        assert_eq!(logged_out.status(), StatusCode::SEE_OTHER);
        assert_eq!(location(&logged_out), "/login");
        assert!(
            !visitor.cookies.contains_key("spog_session"),
            "the cookie is cleared"
        );
        server.stop().await;
    }
}

#[tokio::test]
async fn console_responses_carry_security_headers() {
    for server in servers().await {
        let mut visitor = Visitor::new(&server);
        let login = visitor.get("/login").await;
        visitor.log_in().await;
        let dashboard = visitor.get("/").await;
        for response in [&login, &dashboard] {
            let headers = response.headers();
            let csp = headers["content-security-policy"].to_str().unwrap();
            assert!(
                csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"),
                "{csp}"
            );
            assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
            assert_eq!(headers["x-frame-options"], "DENY");
            assert_eq!(headers["x-content-type-options"], "nosniff");
            assert_eq!(headers["referrer-policy"], "same-origin");
            assert_eq!(headers[CACHE_CONTROL], "no-store");
        }
        let page = dashboard.text().await.unwrap();
        assert!(!page.contains("<script>"), "no inline scripts");
        assert!(!page.contains("style="), "no inline styles");
        server.stop().await;
    }
}

#[tokio::test]
async fn assets_are_fingerprinted_cached_and_revalidated() {
    for server in servers().await {
        let mut visitor = Visitor::new(&server);
        let page = visitor.get("/login").await.text().await.unwrap();
        let stylesheet = attribute_after(&page, "rel=\"stylesheet\"", "href");
        let response = visitor.get(&stylesheet).await;
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(response.headers()[CONTENT_TYPE], "text/css; charset=utf-8");
        assert_eq!(
            response.headers()[CACHE_CONTROL],
            "public, max-age=31536000, immutable"
        );
        let etag = response.headers()[ETAG].to_str().unwrap().to_owned();
        let revalidated = visitor
            .get_with(&stylesheet, &[(IF_NONE_MATCH.as_str(), &etag)])
            .await;
        assert_eq!(revalidated.status(), StatusCode::NOT_MODIFIED);
        assert!(revalidated.bytes().await.unwrap().is_empty());

        let base = stylesheet.trim_end_matches("/console.css");
        let htmx = visitor
            .get(&format!("{base}/vendor/htmx.org/dist/htmx.min.js"))
            .await;
        assert_eq!(htmx.status(), StatusCode::OK);
        assert_eq!(
            htmx.headers()[CONTENT_TYPE],
            "text/javascript; charset=utf-8"
        );
        // A page from before an upgrade still gets files, revalidated rather than kept.
        let stale = visitor.get("/assets/000000000000/console.css").await;
        assert_eq!(stale.status(), StatusCode::OK);
        assert_eq!(stale.headers()[CACHE_CONTROL], "no-cache");
        assert_eq!(
            visitor.get(&format!("{base}/nothing.js")).await.status(),
            StatusCode::NOT_FOUND
        );
        server.stop().await;
    }
}

#[tokio::test]
async fn the_api_stays_json_and_its_document_lists_no_pages() {
    for server in servers().await {
        let mut visitor = Visitor::new(&server);
        let missing = visitor.get("/api/v1/no-such-thing").await;
        assert_eq!(missing.status(), StatusCode::NOT_FOUND);
        assert_eq!(missing.headers()[CONTENT_TYPE], "application/json");
        let page = visitor.get("/no-such-page").await;
        assert_eq!(page.status(), StatusCode::NOT_FOUND);
        assert!(
            page.headers()[CONTENT_TYPE]
                .to_str()
                .unwrap()
                .starts_with("text/html")
        );
        let document: Value = visitor
            .get("/api/v1/openapi.json")
            .await
            .json()
            .await
            .unwrap();
        let paths = document["paths"].as_object().unwrap();
        assert!(paths.contains_key("/users"));
        for page in [
            "/login",
            "/logout",
            "/",
            "/admin/users",
            "/system/health/report",
        ] {
            assert!(!paths.contains_key(page), "{page} is a page, not API");
        }
        server.stop().await;
    }
}

#[tokio::test]
async fn pages_of_another_accounts_objects_are_not_found() {
    for server in servers().await {
        let admin = server.admin().await;
        let (_, organizations) = admin.get("/organizations").await;
        let organization = organizations[0]["id"].as_str().unwrap().to_owned();
        let (_, host) = admin
            .post(
                "/hosts",
                json!({"organization_id": organization, "hostname": "web-1"}),
            )
            .await;
        let (_, user) = admin
            .post("/users", json!({"email": "ada@example.com"}))
            .await;
        let (_, role) = admin
            .post(
                "/roles",
                json!({"name": "publisher", "permissions": ["events.publish"]}),
            )
            .await;
        let (_, token) = admin
            .post(
                "/enrollment-tokens",
                json!({"description": "acme rack", "host_id": host["id"]}),
            )
            .await;
        assert!(token["token"].is_string(), "{token}");
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
            format!("/admin/hosts/{}", host["id"].as_str().unwrap()),
            format!("/admin/hosts/{}/access", host["id"].as_str().unwrap()),
            format!("/admin/hosts/{}/overview", host["id"].as_str().unwrap()),
            format!("/admin/hosts/{}/charts", host["id"].as_str().unwrap()),
            format!("/admin/organizations/{organization}"),
            format!("/admin/users/{}", user["id"].as_str().unwrap()),
            format!("/admin/roles/{}", role["id"].as_str().unwrap()),
            "/admin/users/not-an-id".to_owned(),
        ] {
            let response = globex.get(&path).await;
            assert_eq!(response.status(), StatusCode::NOT_FOUND, "{path}");
            assert!(
                response.text().await.unwrap().contains("Not found"),
                "{path}"
            );
        }
        let users = globex.get("/admin/users").await.text().await.unwrap();
        assert!(users.contains("root@globex.example") && !users.contains("ada@example.com"));
        let hosts = globex.get("/admin/hosts").await.text().await.unwrap();
        assert!(!hosts.contains("web-1"));
        for tokens in ["/admin/enrollment-tokens", "/admin/enrollment-tokens/table"] {
            let tokens = globex.get(tokens).await.text().await.unwrap();
            assert!(tokens.contains("No enrollment tokens."), "{tokens}");
            assert!(!tokens.contains("acme rack") && !tokens.contains("web-1"));
        }
        let bad_cursor = globex.get("/admin/users?cursor=garbage").await;
        assert_eq!(bad_cursor.status(), StatusCode::BAD_REQUEST);
        server.stop().await;
    }
}

#[tokio::test]
async fn repeated_wrong_passwords_on_the_login_form_are_slowed_down() {
    for server in servers().await {
        let mut visitor = Visitor::new(&server);
        let (csrf, _) = visitor.open_login("/login").await;
        let attempt = [
            ("email", ADMIN_EMAIL),
            ("password", "not the password"),
            ("csrf", &csrf),
        ];
        // Five free failures, then a sixth after which the next attempt must wait.
        for _ in 0..6 {
            let wrong = visitor.post_form("/login", &attempt).await;
            assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
        }
        let throttled = visitor.post_form("/login", &attempt).await;
        assert_eq!(throttled.status(), StatusCode::TOO_MANY_REQUESTS);
        assert!(throttled.headers().contains_key("retry-after"));
        let page = throttled.text().await.unwrap();
        assert!(page.contains("Too many attempts; try again in"), "{page}");
        server.stop().await;
    }
}

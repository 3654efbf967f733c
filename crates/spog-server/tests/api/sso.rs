//! Single sign-on (SPEC 2.1) against a real OpenID Connect provider on loopback
//! (`tests/oidc/provider.mjs`): providers managed through the API, the code flow with PKCE
//! walked as a browser walks it, identities resolved, roles synced, refusals on record, and
//! SSO-only accounts.

use std::collections::HashMap;

use reqwest::StatusCode;
use reqwest::header::{COOKIE, LOCATION, SET_COOKIE};
use serde_json::{Value, json};
use spog_server::testing::oidc::OidcProvider;
use spog_server::testing::{Client, TestServer};

use crate::servers;

/// A browser as far as cookies and redirects go: it keeps our server's cookies and follows
/// nothing by itself.
pub struct Browser {
    http: reqwest::Client,
    base: String,
    cookies: HashMap<String, String>,
}

pub struct Answer {
    pub status: StatusCode,
    pub location: Option<String>,
    pub body: String,
}

impl Browser {
    pub fn new(server: &TestServer) -> Self {
        Self {
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            base: server.base.clone(),
            cookies: HashMap::new(),
        }
    }

    pub async fn get(&mut self, url: &str) -> Answer {
        let url = if url.starts_with('/') {
            format!("{}{url}", self.base)
        } else {
            url.to_owned()
        };
        let mut request = self.http.get(&url);
        if url.starts_with(&self.base) && !self.cookies.is_empty() {
            let header: Vec<String> = self
                .cookies
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            request = request.header(COOKIE, header.join("; "));
        }
        let response = request.send().await.expect("an answer");
        if url.starts_with(&self.base) {
            for value in response.headers().get_all(SET_COOKIE) {
                let pair = value.to_str().unwrap().split(';').next().unwrap();
                let (name, value) = pair.split_once('=').unwrap();
                self.cookies.insert(name.to_owned(), value.to_owned());
            }
        }
        Answer {
            status: response.status(),
            location: response
                .headers()
                .get(LOCATION)
                .map(|v| v.to_str().unwrap().to_owned()),
            body: response.text().await.unwrap(),
        }
    }

    /// Posts a form to our server with this browser's cookies.
    pub async fn post_form(&mut self, path: &str, form: &[(&str, &str)]) -> Answer {
        let header: Vec<String> = self
            .cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        let response = self
            .http
            .post(format!("{}{path}", self.base))
            .header(COOKIE, header.join("; "))
            .header(
                reqwest::header::CONTENT_TYPE,
                "application/x-www-form-urlencoded",
            )
            .body(serde_urlencoded::to_string(form).unwrap())
            .send()
            .await
            .expect("an answer");
        Answer {
            status: response.status(),
            location: response
                .headers()
                .get(LOCATION)
                .map(|v| v.to_str().unwrap().to_owned()),
            body: response.text().await.unwrap(),
        }
    }

    /// The API as the session this browser signed in with.
    pub fn api(&self, server: &TestServer) -> Client {
        server
            .anonymous()
            .with_token(self.cookies.get("spog_session").expect("a session cookie"))
    }
}

/// Starts a sign-in at `provider` and goes through the provider: the callback URL it sends
/// the browser back to.
pub async fn through_provider(browser: &mut Browser, provider: &str, next: &str) -> String {
    let started = browser
        .get(&format!("/login/sso/{provider}?next={next}"))
        .await;
    assert_eq!(started.status, StatusCode::SEE_OTHER, "{}", started.body);
    let authorize = started.location.unwrap();
    for parameter in [
        "response_type=code",
        "code_challenge_method=S256",
        "code_challenge=",
        "nonce=",
        "state=",
    ] {
        assert!(authorize.contains(parameter), "{authorize}");
    }
    let back = browser.get(&authorize).await;
    assert_eq!(back.status, StatusCode::FOUND, "{}", back.body);
    back.location.unwrap()
}

/// The whole round trip, ending at the callback's answer.
pub async fn sign_in(browser: &mut Browser, provider: &str) -> Answer {
    let callback = through_provider(browser, provider, "/recordings").await;
    browser.get(&callback).await
}

/// A provider of the admin's account for `oidc`, with `fields` over the defaults.
pub async fn add_provider(admin: &Client, oidc: &OidcProvider, fields: Value) -> Value {
    let mut body = json!({
        "name": "Corp ID",
        "issuer": oidc.issuer,
        "client_id": "spog-test",
        "client_secret": "the client secret",
    });
    body.as_object_mut()
        .unwrap()
        .extend(fields.as_object().unwrap().clone());
    let (status, provider) = admin.post("/identity-providers", body).await;
    assert_eq!(status, StatusCode::CREATED, "{provider}");
    provider
}

async fn last_entry(admin: &Client, action: &str) -> Value {
    let (_, entries) = admin
        .get(&format!("/audit-logs?action={action}&limit=1"))
        .await;
    entries["items"][0].clone()
}

#[tokio::test]
async fn providers_are_managed_with_their_discovery_and_a_write_only_sealed_secret() {
    let Some(oidc) = OidcProvider::start() else {
        return;
    };
    for server in servers().await {
        let admin = server.admin().await;
        let provider = add_provider(&admin, &oidc, json!({})).await;
        let id = provider["id"].as_str().unwrap();
        assert_eq!(provider["has_client_secret"], true);
        assert!(provider.get("client_secret").is_none(), "{provider}");
        assert_eq!(provider["scopes"], json!(["openid", "email", "profile"]));
        assert_eq!(
            provider["discovery"]["jwks_uri"],
            format!("{}/jwks", oidc.issuer)
        );
        assert_eq!(
            provider["redirect_uri"],
            format!("{}/login/sso/{id}/callback", server.base)
        );
        let created = last_entry(&admin, "identity_provider.create").await;
        assert_eq!(created["resource_id"], id);
        assert!(
            !created.to_string().contains("the client secret"),
            "{created}"
        );
        // Sealed at rest: the secret is nowhere in the database's row.
        let mut conn = server.state.store.conn().await.unwrap();
        let (sealed,): (String,) =
            sqlx::query_as("SELECT client_secret_ciphertext FROM identity_providers WHERE id = $1")
                .bind(id)
                .fetch_one(&mut *conn)
                .await
                .unwrap();
        drop(conn);
        assert!(!sealed.contains("the client secret"));

        let again = json!({"name": "Corp ID", "issuer": oidc.issuer, "client_id": "x", "client_secret": "s"});
        assert_eq!(
            admin.post("/identity-providers", again).await.0,
            StatusCode::CONFLICT
        );
        for (fields, field) in [
            (json!({"scopes": ["email"]}), "scopes"),
            (
                json!({"role_mappings": [{"group": "g", "roles": ["nope"]}]}),
                "role_mappings[0].roles",
            ),
            (
                json!({"allowed_domains": ["example.com", "not a domain"]}),
                "allowed_domains[1]",
            ),
            (json!({"issuer": format!("{}/", oidc.issuer)}), "issuer"),
            (json!({"issuer": "http://127.0.0.1:9/"}), "issuer"),
            (json!({"client_secret": null}), "client_secret"),
        ] {
            let mut body = json!({"name": "Other", "issuer": oidc.issuer, "client_id": "c", "client_secret": "s"});
            body.as_object_mut()
                .unwrap()
                .extend(fields.as_object().unwrap().clone());
            let (status, error) = admin.post("/identity-providers", body).await;
            assert_eq!(
                status,
                StatusCode::UNPROCESSABLE_ENTITY,
                "{fields}: {error}"
            );
            assert!(
                error["error"]["details"]["fields"].get(field).is_some(),
                "{fields}: {error}"
            );
        }

        let (status, changed) = admin
            .patch(
                &format!("/identity-providers/{id}"),
                json!({"jit_provisioning": true, "groups_claim": "groups"}),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{changed}");
        assert_eq!(changed["client_id"], "spog-test");
        assert_eq!(changed["has_client_secret"], true);
        assert_eq!(changed["groups_claim"], "groups");
        let (status, tested) = admin
            .post(&format!("/identity-providers/{id}/test"), json!({}))
            .await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(tested, json!({"ok": true, "error": null, "keys": 1}));
        let (_, list) = admin.get("/identity-providers").await;
        assert_eq!(list["items"].as_array().unwrap().len(), 1);

        // Another account's administrator sees none of it.
        let viewer = admin
            .user_with_roles(&server, "viewer@example.com", &["viewer"])
            .await;
        assert_eq!(
            viewer.get("/identity-providers").await.0,
            StatusCode::FORBIDDEN
        );

        let (status, _) = admin.delete(&format!("/identity-providers/{id}")).await;
        assert_eq!(status, StatusCode::NO_CONTENT);
        assert_eq!(
            admin.get(&format!("/identity-providers/{id}")).await.0,
            StatusCode::NOT_FOUND
        );
        server.stop().await;
    }
}

#[tokio::test]
async fn the_first_sign_in_creates_the_user_with_mapped_roles_and_the_next_resyncs_them() {
    let Some(oidc) = OidcProvider::start() else {
        return;
    };
    for server in servers().await {
        let admin = server.admin().await;
        let provider = add_provider(
            &admin,
            &oidc,
            json!({
                "jit_provisioning": true,
                "groups_claim": "groups",
                "default_roles": ["viewer"],
                "role_mappings": [
                    {"group": "audit", "roles": ["auditor"]},
                    {"group": "ops", "roles": ["operator"]},
                ],
            }),
        )
        .await;
        let id = provider["id"].as_str().unwrap();
        let claims = json!({"email": "Ann@Example.com", "email_verified": true, "name": "Ann Lee", "groups": ["audit"]});
        oidc.sign_in_as("ann-subject", claims).await;
        let mut browser = Browser::new(&server);
        let done = sign_in(&mut browser, id).await;
        assert_eq!(done.status, StatusCode::SEE_OTHER, "{}", done.body);
        assert_eq!(done.location.as_deref(), Some("/recordings"));
        let ann = browser.api(&server);
        let (status, me) = ann.get("/auth/me").await;
        assert_eq!(status, StatusCode::OK, "{me}");
        assert_eq!(me["email"], "ann@example.com");
        assert_eq!(me["name"], "Ann Lee");
        let (_, sessions) = ann.get("/auth/me/sessions").await;
        assert_eq!(sessions[0]["method"], "sso");
        assert_eq!(sessions[0]["provider_id"], id);
        let user_id = me["user_id"].as_str().unwrap().to_owned();
        let (_, user) = admin.get(&format!("/users/{user_id}")).await;
        assert_eq!(user["roles"], json!(["auditor", "viewer"]), "{user}");
        assert_eq!(
            user["identities"],
            json!([{"provider": id, "subject": "ann-subject"}])
        );
        let login = last_entry(&admin, "auth.sso_login").await;
        assert_eq!(login["outcome"], "success", "{login}");
        assert_eq!(login["metadata"]["linked"], "created");
        assert_eq!(login["resource_id"], user_id.as_str());
        assert_eq!(
            last_entry(&admin, "user.create").await["resource_id"],
            user_id.as_str()
        );

        // Groups changed at the provider: the roles follow at the next sign-in.
        let claims = json!({"email": "ann@example.com", "email_verified": true, "groups": "ops"});
        oidc.sign_in_as("ann-subject", claims).await;
        let mut again = Browser::new(&server);
        assert_eq!(sign_in(&mut again, id).await.status, StatusCode::SEE_OTHER);
        let (_, user) = admin.get(&format!("/users/{user_id}")).await;
        assert_eq!(user["roles"], json!(["operator", "viewer"]), "{user}");
        let synced = last_entry(&admin, "user.update").await;
        assert_eq!(synced["resource_id"], user_id.as_str());
        assert_eq!(
            synced["before"]["roles"],
            json!(["auditor", "viewer"]),
            "{synced}"
        );
        assert_eq!(synced["after"]["roles"], json!(["operator", "viewer"]));
        assert_eq!(
            last_entry(&admin, "auth.sso_login").await["metadata"]["linked"],
            "existing"
        );
        server.stop().await;
    }
}

#[tokio::test]
async fn a_tampered_or_replayed_state_is_refused_and_on_record() {
    let Some(oidc) = OidcProvider::start() else {
        return;
    };
    for server in servers().await {
        let admin = server.admin().await;
        let provider = add_provider(&admin, &oidc, json!({"jit_provisioning": true})).await;
        let id = provider["id"].as_str().unwrap();
        oidc.sign_in_as(
            "bob",
            json!({"email": "bob@example.com", "email_verified": true}),
        )
        .await;
        let mut browser = Browser::new(&server);
        let callback = through_provider(&mut browser, id, "/").await;
        let tampered = callback.replace("state=", "state=x");
        let refused = browser.get(&tampered).await;
        assert_eq!(refused.status, StatusCode::BAD_REQUEST);
        assert!(refused.body.contains("state_mismatch"), "{}", refused.body);
        assert!(!browser.cookies.contains_key("spog_session"));
        let entry = last_entry(&admin, "auth.sso_login").await;
        assert_eq!(entry["outcome"], "failure", "{entry}");
        assert_eq!(entry["metadata"]["reason"], "state_mismatch");
        assert_eq!(entry["metadata"]["provider_id"], id);

        // Another browser cannot finish this browser's sign-in.
        let mut other = Browser::new(&server);
        assert_eq!(other.get(&callback).await.status, StatusCode::BAD_REQUEST);
        // And the state, once presented, is spent even for its own browser.
        assert_eq!(browser.get(&callback).await.status, StatusCode::BAD_REQUEST);

        // An unknown provider is a 404 at the start and at the callback.
        let unknown = "/login/sso/0190a4b2-0000-7000-8000-000000000000";
        assert_eq!(browser.get(unknown).await.status, StatusCode::NOT_FOUND);
        assert_eq!(
            browser
                .get(&format!("{unknown}/callback?state=x&code=y"))
                .await
                .status,
            StatusCode::NOT_FOUND
        );
        server.stop().await;
    }
}

#[tokio::test]
async fn identities_outside_the_policy_are_refused_with_their_reason() {
    let Some(oidc) = OidcProvider::start() else {
        return;
    };
    for server in servers().await {
        let admin = server.admin().await;
        let provider = add_provider(
            &admin,
            &oidc,
            json!({"jit_provisioning": true, "link_by_email": true, "allowed_domains": ["example.com"]}),
        )
        .await;
        let id = provider["id"].as_str().unwrap();
        for (claims, status, reason) in [
            (
                json!({"email": "eve@elsewhere.org", "email_verified": true}),
                StatusCode::FORBIDDEN,
                "email_not_allowed",
            ),
            (
                json!({"email": "eve@example.com", "email_verified": false}),
                StatusCode::FORBIDDEN,
                "email_unverified",
            ),
        ] {
            oidc.sign_in_as("eve", claims).await;
            let mut browser = Browser::new(&server);
            let refused = sign_in(&mut browser, id).await;
            assert_eq!(refused.status, status, "{reason}: {}", refused.body);
            assert!(refused.body.contains(reason), "{}", refused.body);
            let entry = last_entry(&admin, "auth.sso_login").await;
            assert_eq!(entry["metadata"]["reason"], reason, "{entry}");
            assert_eq!(entry["metadata"]["subject"], "eve");
        }
        // An existing user with the verified email is linked, not duplicated.
        admin
            .user_with_roles(&server, "carol@example.com", &["viewer"])
            .await;
        oidc.sign_in_as(
            "carol-sub",
            json!({"email": "carol@example.com", "email_verified": true}),
        )
        .await;
        let mut browser = Browser::new(&server);
        assert_eq!(
            sign_in(&mut browser, id).await.status,
            StatusCode::SEE_OTHER
        );
        assert_eq!(
            last_entry(&admin, "auth.sso_login").await["metadata"]["linked"],
            "email"
        );
        server.stop().await;
    }
}

#[tokio::test]
async fn a_key_rotation_at_the_provider_is_followed_and_refetches_are_bounded() {
    let Some(oidc) = OidcProvider::start() else {
        return;
    };
    for server in servers().await {
        let admin = server.admin().await;
        let provider = add_provider(&admin, &oidc, json!({"jit_provisioning": true})).await;
        let id = provider["id"].as_str().unwrap();
        oidc.sign_in_as(
            "dan",
            json!({"email": "dan@example.com", "email_verified": true}),
        )
        .await;
        assert_eq!(
            sign_in(&mut Browser::new(&server), id).await.status,
            StatusCode::SEE_OTHER
        );
        oidc.rotate_keys().await;
        let after_rotation = sign_in(&mut Browser::new(&server), id).await;
        assert_eq!(
            after_rotation.status,
            StatusCode::SEE_OTHER,
            "{}",
            after_rotation.body
        );
        // A second unknown key within the minute is not fetched for.
        oidc.rotate_keys().await;
        let refused = sign_in(&mut Browser::new(&server), id).await;
        assert_eq!(refused.status, StatusCode::UNAUTHORIZED, "{}", refused.body);
        assert_eq!(
            last_entry(&admin, "auth.sso_login").await["metadata"]["reason"],
            "invalid_token"
        );
        server.stop().await;
    }
}

#[tokio::test]
async fn sso_only_accounts_refuse_passwords_except_to_break_glass_administrators() {
    let Some(oidc) = OidcProvider::start() else {
        return;
    };
    for server in servers().await {
        let admin = server.admin().await;
        let (_, me) = admin.get("/auth/me").await;
        let admin_id = me["user_id"].as_str().unwrap().to_owned();
        let viewer = admin
            .user_with_roles(&server, "vic@example.com", &["viewer"])
            .await;
        let (_, vic) = viewer.get("/auth/me").await;
        let on = |users: Vec<&str>| json!({"sso_only": true, "break_glass_user_ids": users});
        // No provider yet, then no break-glass administrator: no lock-out.
        let (status, error) = admin.put("/auth-settings", on(vec![&admin_id])).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{error}");
        assert!(
            error["error"]["details"]["fields"]
                .get("sso_only")
                .is_some()
        );
        add_provider(&admin, &oidc, json!({})).await;
        let (status, error) = admin
            .put("/auth-settings", on(vec![vic["user_id"].as_str().unwrap()]))
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
        assert!(
            error["error"]["details"]["fields"]
                .get("break_glass_user_ids")
                .is_some(),
            "{error}"
        );
        let (status, error) = admin
            .put(
                "/auth-settings",
                on(vec!["0190a4b2-0000-7000-8000-000000000000"]),
            )
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{error}");
        let (status, settings) = admin.put("/auth-settings", on(vec![&admin_id])).await;
        assert_eq!(status, StatusCode::OK, "{settings}");
        assert_eq!(admin.get("/auth-settings").await.1, settings);
        assert_eq!(
            last_entry(&admin, "auth_settings.update").await["after"]["sso_only"],
            true
        );

        let anonymous = server.anonymous();
        let login = |password: &str| json!({"email": "vic@example.com", "password": password});
        let (status, error) = anonymous
            .post("/auth/login", login("a long enough password"))
            .await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{error}");
        assert_eq!(error["error"]["code"], "sso_required");
        let refused = last_entry(&admin, "auth.login").await;
        assert_eq!(refused["metadata"]["reason"], "sso_only", "{refused}");
        assert_eq!(refused["outcome"], "failure");
        let (status, _) = anonymous
            .post("/auth/login", login("a wrong password!!"))
            .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        // The break-glass administrator still signs in with a password; API tokens work.
        server.admin().await;
        let token = admin.token_client("system", &["audit_logs.view"]).await;
        assert_eq!(token.get("/audit-logs?limit=1").await.0, StatusCode::OK);
        server.stop().await;
    }
}

#[tokio::test]
async fn logging_out_also_ends_the_providers_session_with_rp_logout() {
    let Some(oidc) = OidcProvider::start() else {
        return;
    };
    for server in servers().await {
        let admin = server.admin().await;
        let provider = add_provider(&admin, &oidc, json!({"jit_provisioning": true})).await;
        let id = provider["id"].as_str().unwrap();
        oidc.sign_in_as(
            "lou",
            json!({"email": "lou@example.com", "email_verified": true}),
        )
        .await;
        for (rp_logout, expected) in [
            (false, "/login".to_owned()),
            (true, format!("{}/endsession?", oidc.issuer)),
        ] {
            let (status, _) = admin
                .patch(
                    &format!("/identity-providers/{id}"),
                    json!({"rp_logout": rp_logout}),
                )
                .await;
            assert_eq!(status, StatusCode::OK);
            let mut browser = Browser::new(&server);
            assert_eq!(
                sign_in(&mut browser, id).await.status,
                StatusCode::SEE_OTHER
            );
            let page = browser.get("/account").await.body;
            let csrf = page
                .split("name=\"csrf-token\" content=\"")
                .nth(1)
                .and_then(|rest| rest.split('"').next())
                .expect("the page's CSRF token")
                .to_owned();
            let api = browser.api(&server);
            let out = browser.post_form("/logout", &[("csrf", &csrf)]).await;
            assert_eq!(out.status, StatusCode::SEE_OTHER, "{}", out.body);
            let to = out.location.unwrap();
            assert!(to.starts_with(&expected), "{to}");
            if rp_logout {
                assert!(to.contains("client_id=spog-test"), "{to}");
                assert!(to.contains("post_logout_redirect_uri="), "{to}");
            }
            assert_eq!(api.get("/auth/me").await.0, StatusCode::UNAUTHORIZED);
        }
        server.stop().await;
    }
}

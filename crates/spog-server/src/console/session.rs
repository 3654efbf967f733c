//! Console sessions: the HttpOnly cookie that holds the session JWT, the login form's CSRF
//! token, [`Viewer`], the signed-in user of a page, and [`RequirePage`], a viewer holding the
//! permission a page needs.

use std::marker::PhantomData;
use std::ops::Deref;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum_extra::extract::cookie::{Cookie, SameSite};
use rand::RngCore;
use spog_core::{Permission, Timestamp};

use super::error::PageError;
use super::layout::no_access;
use super::pages::Here;
use crate::auth::{
    Auth, Credential, RequestInfo, RequiredPermission, SESSION_COOKIE, authenticate, check_csrf,
};
use crate::error::ApiError;
use crate::keys::Keys;
use crate::state::AppState;

/// Holds the random half of the login form's double-submit token.
pub const LOGIN_NONCE_COOKIE: &str = "spog_login_nonce";

/// The user a console page is rendered for, signed in with the session cookie.
pub struct Viewer {
    pub auth: Auth,
    /// Sent back in the `x-csrf-token` header by every unsafe request of the page.
    pub csrf: String,
    /// Where in the console's table the page stands (nowhere for pages outside the sidebar).
    pub here: Option<Here>,
}

impl Viewer {
    pub fn has(&self, permission: Permission) -> bool {
        self.auth.has(permission)
    }
}

impl FromRequestParts<AppState> for Viewer {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        let principal = match authenticate(state, &parts.headers).await {
            Ok(principal) => principal,
            Err(ApiError::Unauthenticated(_)) => return Err(to_login(parts)),
            Err(other) => return Err(PageError::from(other).into_response()),
        };
        // Pages belong to cookie sessions; a bearer credential has no CSRF token to give.
        let Credential::Session { id, cookie: true } = principal.credential else {
            return Err(to_login(parts));
        };
        // A page action that changes something (a POST) carries the page's token, as the
        // API's requests do: another site cannot make a signed-in browser send it.
        if check_csrf(&state.keys, &id.to_string(), &parts.method, &parts.headers).is_err() {
            return Err(PageError::Forbidden(
                "This page is out of date; reload it and try again.".to_owned(),
            )
            .into_response());
        }
        Ok(Viewer {
            csrf: state.keys.csrf_token(&id.to_string()),
            here: parts.extensions.get::<Here>().copied(),
            auth: Auth {
                principal,
                request: RequestInfo::from_parts(parts),
            },
        })
    }
}

/// The viewer of a page that needs permission `P` (a marker of
/// [`permissions`](crate::auth::permissions)), named in the handler's signature. A viewer
/// without it gets the no-access page in the usual layout (403); an anonymous visitor goes to
/// the login page.
pub struct RequirePage<P>(pub Viewer, PhantomData<P>);

impl<P> Deref for RequirePage<P> {
    type Target = Viewer;
    fn deref(&self) -> &Viewer {
        &self.0
    }
}

impl<P: RequiredPermission + Send + Sync> FromRequestParts<AppState> for RequirePage<P> {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        let viewer = Viewer::from_request_parts(parts, state).await?;
        match viewer.has(P::PERMISSION) {
            true => Ok(RequirePage(viewer, PhantomData)),
            false => Err(no_access(&viewer, P::PERMISSION)),
        }
    }
}

/// Sends an anonymous visitor to the login page, to come back here afterwards. An htmx
/// request (a poll or a partial) sends the whole page there instead of swapping the form in.
fn to_login(parts: &Parts) -> Response {
    let headers = &parts.headers;
    if headers.contains_key("hx-request") {
        let page = headers
            .get("hx-current-url")
            .and_then(|v| v.to_str().ok())
            .and_then(path_of_url)
            .unwrap_or("/");
        let target = login_url(page);
        let mut response = StatusCode::UNAUTHORIZED.into_response();
        if let Ok(value) = HeaderValue::from_str(&target) {
            response.headers_mut().insert("hx-redirect", value);
        }
        return response;
    }
    let here = parts
        .uri
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or("/");
    Redirect::to(&login_url(here)).into_response()
}

/// `/admin/users?x=1` of `http://host:8080/admin/users?x=1`.
fn path_of_url(url: &str) -> Option<&str> {
    let rest = url.split_once("://")?.1;
    rest.find('/').map(|at| &rest[at..])
}

pub fn login_url(next: &str) -> String {
    let next = safe_next(Some(next));
    if next == "/" {
        return "/login".to_owned();
    }
    let encoded: String = form_urlencoded::byte_serialize(next.as_bytes()).collect();
    format!("/login?next={encoded}")
}

/// Where to go after logging in: a path on this site, never another origin. `//evil` and
/// `/\evil` are read by browsers as other hosts, so they fall back to the dashboard.
pub fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(next)
            if next.starts_with('/')
                && !next.starts_with("//")
                && !next.starts_with("/\\")
                && next.len() <= 2048
                && !next.chars().any(|c| c.is_control() || c == '\\') =>
        {
            next.to_owned()
        }
        _ => "/".to_owned(),
    }
}

/// The session cookie: HttpOnly so scripts never see the JWT, SameSite=Lax so other sites'
/// requests do not carry it (CSRF tokens cover the rest), Secure behind HTTPS.
pub fn session_cookie(secure: bool, token: String, expires_at: Timestamp) -> Cookie<'static> {
    Cookie::build((SESSION_COOKIE, token))
        .http_only(true)
        .same_site(SameSite::Lax)
        .secure(secure)
        .path("/")
        .expires(expires_at.to_datetime())
        .build()
}

pub fn cleared_session_cookie(secure: bool) -> Cookie<'static> {
    let mut cookie = session_cookie(secure, String::new(), Timestamp::from_micros(0));
    cookie.make_removal();
    cookie
}

/// A fresh random value for the login form's nonce cookie.
pub fn new_login_nonce() -> String {
    let mut bytes = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut bytes);
    hex::encode(bytes)
}

pub fn login_nonce_cookie(secure: bool, nonce: String) -> Cookie<'static> {
    Cookie::build((LOGIN_NONCE_COOKIE, nonce))
        .http_only(true)
        .same_site(SameSite::Strict)
        .secure(secure)
        .path("/login")
        .build()
}

/// The login form's token: the nonce cookie's value signed with the server's CSRF key, so a
/// site that manages to plant a cookie still cannot produce the matching form field.
pub fn login_token(keys: &Keys, nonce: &str) -> String {
    keys.csrf_token(&format!("login:{nonce}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_paths_on_this_site_are_followed_after_login() {
        assert_eq!(
            safe_next(Some("/admin/users?cursor=x")),
            "/admin/users?cursor=x"
        );
        for hostile in [
            "https://evil.example/",
            "//evil.example/",
            "/\\evil.example",
            "javascript:alert(1)",
            "/ok\r\nSet-Cookie: x=1",
            "",
        ] {
            assert_eq!(safe_next(Some(hostile)), "/", "{hostile:?}");
        }
        assert_eq!(safe_next(None), "/");
        assert_eq!(
            login_url("/admin/users?a=1&b=2"),
            "/login?next=%2Fadmin%2Fusers%3Fa%3D1%26b%3D2"
        );
        assert_eq!(login_url("/"), "/login");
    }

    #[test]
    fn htmx_requests_name_the_page_they_came_from() {
        assert_eq!(
            path_of_url("http://127.0.0.1:8080/admin/users?x=1"),
            Some("/admin/users?x=1")
        );
        assert_eq!(path_of_url("http://127.0.0.1:8080"), None);
    }
}

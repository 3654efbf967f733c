//! The web console (SPEC 10): server-rendered pages (askama) with htmx partials and small
//! JS modules, served by the same binary at `/`. Pages read through the store with the API's
//! account scoping and permission checks; every change goes through the JSON API itself.
//! These routes are HTML and stay out of the OpenAPI document.

mod account;
mod alerts;
mod assets;
mod audit;
mod channels;
mod dashboard;
mod enrollment_tokens;
mod error;
mod host_metrics;
mod hosts;
mod layout;
mod list_filters;
mod lists;
mod login;
mod metric_charts;
mod notifications;
mod organizations;
mod pages;
mod recording_settings;
mod recordings;
mod roles;
mod session;
mod sso;
mod sso_admin;
mod system;
mod terminal;
mod tokens;
mod users;
mod webhooks;

use axum::Router;
use axum::extract::Request;
use axum::http::HeaderValue;
use axum::http::header::{
    CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE, REFERRER_POLICY, X_CONTENT_TYPE_OPTIONS,
    X_FRAME_OPTIONS,
};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};

use crate::state::AppState;

pub use pages::{NAV, NavEntry, Page};
pub use session::{LOGIN_NONCE_COOKIE, safe_next};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/login", get(login::login_page).post(login::log_in_form))
        .route("/logout", post(login::log_out_form))
        .route("/login/sso/{id}", get(sso::start))
        .route("/login/sso/{id}/callback", get(sso::callback))
        .merge(pages::router())
        // Outside the sidebar: the bell's page and menu, for every signed-in user.
        .route("/account", get(account::account_page))
        .route("/account/sessions", get(account::sessions_partial))
        .route("/account/table", get(account::tokens_partial))
        .route("/notifications", get(notifications::notifications_page))
        .route("/notifications/list", get(notifications::list_partial))
        .route("/notifications/menu", get(notifications::menu_partial))
        .route("/assets/{fingerprint}/{*path}", get(assets::serve))
        .fallback(|| async { error::PageError::NotFound.into_response() })
        .layer(middleware::from_fn(security_headers))
}

/// Scripts and styles only from our own files (htmx reads its configuration from a meta
/// tag, so nothing inline is needed), no framing, no referrer beyond this site. The asciinema
/// player's terminal is WebAssembly, compiled from its own bundle: `'wasm-unsafe-eval'` allows
/// that and no JavaScript `eval`.
const CSP: &str = "default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; style-src 'self'; img-src 'self' data:; \
     connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; \
     frame-ancestors 'none'";

async fn security_headers(request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    // A page that needs a policy of its own (the web terminal's) sets it; every other gets ours.
    if !headers.contains_key(CONTENT_SECURITY_POLICY) {
        headers.insert(CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    }
    headers.insert(X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(REFERRER_POLICY, HeaderValue::from_static("same-origin"));
    headers.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    let html = headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/html"));
    // Pages carry the viewer's data and CSRF token: never stored by caches or the browser.
    if html && !headers.contains_key(CACHE_CONTROL) {
        headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    response
}

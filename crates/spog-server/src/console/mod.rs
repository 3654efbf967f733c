//! The web console (SPEC 10): server-rendered pages (askama) with htmx partials and small
//! JS modules, served by the same binary at `/`. Pages read through the store with the API's
//! account scoping and permission checks; every change goes through the JSON API itself.
//! These routes are HTML and stay out of the OpenAPI document.

mod alerts;
mod assets;
mod audit;
mod channels;
mod dashboard;
mod error;
mod hosts;
mod layout;
mod lists;
mod login;
mod notifications;
mod organizations;
mod recordings;
mod roles;
mod session;
mod system;
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

pub use session::{LOGIN_NONCE_COOKIE, safe_next};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/login", get(login::login_page).post(login::log_in_form))
        .route("/logout", post(login::log_out_form))
        .route("/", get(dashboard::dashboard))
        .route("/dashboard/activity", get(dashboard::activity_partial))
        .route("/dashboard/tiles", get(dashboard::tiles_partial))
        .route("/audit-logs", get(audit::search_page))
        .route("/audit-logs/stats", get(audit::stats_page))
        .route("/audit-logs/integrity", get(audit::integrity_page))
        // Verifying walks the chain and is itself on record: a POST, never a link or prefetch.
        .route("/audit-logs/integrity/report", post(audit::report_partial))
        .route(
            "/audit-logs/integrity/checkpoints",
            get(audit::checkpoints_partial),
        )
        .route(
            "/audit-logs/checkpoints/{seq}/download",
            get(audit::checkpoint_download),
        )
        .route("/audit-logs/{id}", get(audit::detail_page))
        .route("/webhooks", get(webhooks::list_page))
        .route("/webhooks/table", get(webhooks::table_partial))
        .route("/webhooks/event-types", get(webhooks::event_types_page))
        .route("/webhooks/new", get(webhooks::new_page))
        .route("/webhooks/{id}", get(webhooks::detail_page))
        .route("/webhooks/{id}/edit", get(webhooks::edit_page))
        .route("/webhooks/{id}/deliveries", get(webhooks::deliveries_page))
        .route(
            "/webhooks/{id}/deliveries/table",
            get(webhooks::deliveries_table),
        )
        .route(
            "/webhooks/{id}/deliveries/{delivery_id}",
            get(webhooks::delivery_page),
        )
        .route("/alerts", get(alerts::alerts_page))
        .route("/alerts/table", get(alerts::alerts_table))
        .route("/alerts/{id}", get(alerts::alert_page))
        .route("/alert-rules", get(alerts::rules_page))
        .route("/alert-rules/table", get(alerts::rules_table))
        .route("/alert-rules/new", get(alerts::new_rule_page))
        .route("/alert-rules/{id}", get(alerts::edit_rule_page))
        .route("/notifications", get(notifications::notifications_page))
        .route("/notifications/list", get(notifications::list_partial))
        .route("/notifications/menu", get(notifications::menu_partial))
        .route(recordings::SESSIONS, get(recordings::sessions_page))
        .route(recordings::TERMINAL, get(recordings::terminal_page))
        .route("/terminal/recordings/{id}", get(recordings::terminal_play))
        .route(recordings::DESKTOP, get(recordings::desktop_page))
        .route("/desktop/recordings/{id}", get(recordings::desktop_play))
        .route("/notification-channels", get(channels::list_page))
        .route("/notification-channels/table", get(channels::table_partial))
        .route("/notification-channels/new", get(channels::new_page))
        .route("/notification-channels/{id}", get(channels::channel_page))
        .route("/system/health", get(system::health_page))
        .route("/system/health/report", get(system::health_partial))
        .route("/admin/users", get(users::list_page))
        .route("/admin/users/table", get(users::table_partial))
        .route("/admin/users/{id}", get(users::edit_page))
        .route("/admin/roles", get(roles::list_page))
        .route("/admin/roles/table", get(roles::table_partial))
        .route("/admin/roles/{id}", get(roles::edit_page))
        .route("/admin/api-tokens", get(tokens::list_page))
        .route("/admin/api-tokens/table", get(tokens::table_partial))
        .route("/admin/organizations", get(organizations::list_page))
        .route(
            "/admin/organizations/table",
            get(organizations::table_partial),
        )
        .route("/admin/organizations/{id}", get(organizations::edit_page))
        .route("/admin/hosts", get(hosts::list_page))
        .route("/admin/hosts/table", get(hosts::table_partial))
        .route("/admin/hosts/{id}", get(hosts::host_page))
        .route("/admin/hosts/{id}/access", get(hosts::access_partial))
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
    headers.insert(CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
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

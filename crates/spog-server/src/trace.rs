//! Tracing a request end to end: every request runs in one `request` span carrying its
//! `x-request-id`, route and path; authentication adds the account and credential once known.
//! Store calls and worker steps open spans of their own inside it, and a WebSocket keeps the
//! span of the request that opened it, so a logged failure names its request, account and
//! object.

use axum::extract::{MatchedPath, Request};
use tracing::Span;
use tracing::field::Empty;

use crate::auth::Principal;

pub const REQUEST_ID: axum::http::HeaderName = axum::http::HeaderName::from_static("x-request-id");

/// The span a request runs in ([`tower_http::trace::TraceLayer::make_span_with`]).
pub fn request_span(request: &Request) -> Span {
    let request_id = request
        .headers()
        .get(REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(MatchedPath::as_str);
    tracing::info_span!(
        "request",
        request_id,
        method = %request.method(),
        route,
        path = request.uri().path(),
        account = Empty,
        credential = Empty,
    )
}

/// Names the caller on the current request's span.
pub fn record_caller(principal: &Principal) {
    let span = Span::current();
    span.record("account", tracing::field::display(principal.account));
    span.record("credential", principal.credential_id());
}

//! `GET /api/v1/ws`: the browser's real-time connection (SPEC 6.1), authenticated by the
//! session cookie, an `Authorization` header or `?token=`. A refused credential closes the
//! socket with code 1008 (policy violation); a cookie from another site's page is refused
//! 403 and a credential or account at its cap of sockets 429, before the upgrade.

use axum::extract::{Query, State, WebSocketUpgrade};
use axum::http::HeaderMap;
use axum::http::header::{HOST, ORIGIN};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use spog_core::Permission;
use tracing::{Instrument, Span};

use crate::auth::{Credential, Principal, authenticate, authenticate_token};
use crate::error::{ApiError, ApiResult};
use crate::hub::sockets::SocketLease;
use crate::hub::{refuse, serve_socket};
use crate::state::AppState;

/// Buffers per connection stay small: thousands of sockets stay open, each idle most of the
/// time, and the messages are small.
const BUFFER: usize = 4 * 1024;
const MAX_MESSAGE: usize = 64 * 1024;

#[derive(Deserialize)]
pub struct SocketParams {
    token: Option<String>,
}

pub fn router() -> axum::Router<AppState> {
    axum::Router::new().route("/ws", axum::routing::get(upgrade))
}

async fn upgrade(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(params): Query<SocketParams>,
    upgrade: WebSocketUpgrade,
) -> Response {
    let principal = match &params.token {
        Some(token) => authenticate_token(&state, token).await,
        None => authenticate(&state, &headers).await,
    };
    let upgrade = upgrade
        .read_buffer_size(BUFFER)
        .write_buffer_size(BUFFER)
        .max_message_size(MAX_MESSAGE);
    let principal = match principal {
        Ok(principal) => principal,
        Err(error) => {
            let reason = error.to_string();
            return upgrade.on_upgrade(move |socket| async move { refuse(socket, &reason).await });
        }
    };
    let lease = match admit(&state, &principal, &headers, None) {
        Ok(lease) => lease,
        Err(error) => return error.into_response(),
    };
    let span = Span::current();
    upgrade.on_upgrade(move |socket| serve_socket(state, socket, lease).instrument(span))
}

/// Admits a WebSocket of `principal` that needs `needs` to stay open: a session cookie is
/// accepted from our own pages only (403 otherwise: a cookie travels with any site's
/// request), and the caps per credential and per account apply (429). Every WebSocket
/// endpoint admits its sockets here, before upgrading.
pub fn admit(
    state: &AppState,
    principal: &Principal,
    headers: &HeaderMap,
    needs: Option<Permission>,
) -> ApiResult<SocketLease> {
    let by_cookie = matches!(
        principal.credential,
        Credential::Session { cookie: true, .. }
    );
    if by_cookie && !same_origin(headers) {
        return Err(ApiError::Forbidden(
            "cross-origin WebSocket refused".to_owned(),
        ));
    }
    state.bus.sockets.admit(principal, needs)
}

fn same_origin(headers: &HeaderMap) -> bool {
    let Some(origin) = headers.get(ORIGIN) else {
        // Browsers always send Origin on WebSocket handshakes; other clients are not at risk.
        return true;
    };
    let Ok(origin) = origin.to_str() else {
        return false;
    };
    let host = headers
        .get(HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    origin
        .split_once("://")
        .is_some_and(|(_, authority)| authority.eq_ignore_ascii_case(host))
}

//! `GET /api/v1/ws`: the browser's real-time connection (SPEC 6.1), authenticated by the
//! session cookie, an `Authorization` header or `?token=`. A refused credential closes the
//! socket with code 1008 (policy violation).

use axum::extract::{Query, State, WebSocketUpgrade};
use axum::http::HeaderMap;
use axum::http::header::{HOST, ORIGIN};
use axum::response::Response;
use serde::Deserialize;

use crate::auth::{Credential, authenticate, authenticate_token};
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
    let principal = principal.map_err(|e| e.to_string()).and_then(|principal| {
        // A cookie travels with any site's request: only our own pages may use it here.
        let by_cookie = matches!(
            principal.credential,
            Credential::Session { cookie: true, .. }
        );
        if by_cookie && !same_origin(&headers) {
            return Err("cross-origin WebSocket refused".to_owned());
        }
        Ok(principal)
    });
    upgrade
        .read_buffer_size(BUFFER)
        .write_buffer_size(BUFFER)
        .max_message_size(MAX_MESSAGE)
        .on_upgrade(move |socket| async move {
            match principal {
                Ok(principal) => serve_socket(state, socket, principal).await,
                Err(reason) => refuse(socket, &reason).await,
            }
        })
}

pub(crate) fn same_origin(headers: &HeaderMap) -> bool {
    let Some(origin) = headers.get(ORIGIN).and_then(|v| v.to_str().ok()) else {
        // Browsers always send Origin on WebSocket handshakes; other clients are not at risk.
        return true;
    };
    let host = headers
        .get(HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    origin
        .split_once("://")
        .is_some_and(|(_, authority)| authority.eq_ignore_ascii_case(host))
}

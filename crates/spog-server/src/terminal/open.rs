//! `GET /api/v1/hosts/{id}/terminal` (SPEC 13.1): everything is checked before the upgrade
//! (401, 403, 404, 422, 409 `host_offline` / `terminal_disabled`), then the session and its
//! recording start, on record, and the agent is asked to open the PTY.

use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::{Query, State, WebSocketUpgrade};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::Response;
use serde::Deserialize;
use spog_core::model::Host;
use spog_core::{FieldErrors, Id, Permission};
use spog_protocol::{HubMessage, MAX_MESSAGE_BYTES};
use spog_store::recordings::EndReason;
use spog_store::recordings::terminal::{Origin, SessionStart};
use tokio::time::Instant;
use tracing::{Instrument, Span};
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::relay::{self, Opened};
use crate::auth::{Auth, RequestInfo, authenticate, authenticate_token};
use crate::error::{ApiError, ApiResult};
use crate::extract::AppPath;
use crate::http::hosts::visible_host;
use crate::http::recordings::lifecycle::{self, Start};
use crate::http::recordings::websocket;
use crate::http::ws::admit;
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(open_terminal))
}

/// What the terminal's WebSocket sends per message at most: keystrokes and pastes.
const MAX_BROWSER_MESSAGE: usize = 256 * 1024;
/// What xterm.js speaks.
const TERM: &str = "xterm-256color";

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct TerminalParams {
    /// Columns, 1..1000 (default 80).
    cols: Option<i64>,
    /// Rows, 1..1000 (default 24).
    rows: Option<i64>,
    /// A credential for clients that cannot set a header.
    token: Option<String>,
}

fn conflict(code: &'static str, message: &str) -> ApiError {
    ApiError::Coded {
        status: StatusCode::CONFLICT,
        code,
        message: message.to_owned(),
        details: None,
    }
}

/// Open a terminal on a host (WebSocket): binary messages are the terminal's bytes both ways;
/// text messages are `session`, `exit`, `error` and `pong` from the hub, `resize` and `ping`
/// from the browser (SPEC 13.1). Every byte is recorded.
#[utoipa::path(get, path = "/hosts/{id}/terminal", tag = "terminal",
    params(("id" = String, Path), TerminalParams),
    responses((status = 101, description = "the terminal's WebSocket"),
        (status = 401, body = crate::error::ErrorBody),
        (status = 403, body = crate::error::ErrorBody),
        (status = 404, body = crate::error::ErrorBody),
        (status = 409, description = "`host_offline` or `terminal_disabled`", body = crate::error::ErrorBody),
        (status = 422, body = crate::error::ErrorBody)))]
pub async fn open_terminal(
    State(state): State<AppState>,
    parts: Parts,
    AppPath(host): AppPath<Id<Host>>,
    query: Result<Query<TerminalParams>, axum::extract::rejection::QueryRejection>,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> ApiResult<Response> {
    let Query(params) = query.map_err(|rejection| ApiError::BadRequest(rejection.body_text()))?;
    let principal = match &params.token {
        Some(token) => authenticate_token(&state, token).await?,
        None => authenticate(&state, &parts.headers).await?,
    };
    let auth = Auth {
        principal,
        request: RequestInfo::from_parts(&parts),
    };
    if !auth.has(Permission::TerminalConnect) {
        return Err(ApiError::Forbidden(
            "this requires the terminal.connect permission".to_owned(),
        ));
    }
    let Some(user) = auth.principal.user else {
        return Err(ApiError::Forbidden(
            "a terminal is opened by a user: a session or a `user` token".to_owned(),
        ));
    };
    let host = {
        let mut conn = state.store.conn().await?;
        visible_host(&mut conn, &auth, host).await?
    };
    let mut errors = FieldErrors::new();
    let cols = errors.check(size("cols", params.cols.unwrap_or(80)));
    let rows = errors.check(size("rows", params.rows.unwrap_or(24)));
    errors.into_result()?;
    let (cols, rows) = (cols.unwrap_or(80), rows.unwrap_or(24));
    let upgrade = websocket(upgrade)?;
    let lease = admit(
        &state,
        &auth.principal,
        &parts.headers,
        Some(Permission::TerminalConnect),
    )?;
    let Some(link) = state.bus.agents.link(auth.account(), host.id) else {
        return Err(conflict(
            "host_offline",
            "the host's agent is not connected",
        ));
    };
    if !link.terminal {
        return Err(conflict(
            "terminal_disabled",
            "the host's agent does not allow terminals (terminal.enabled is false)",
        ));
    }
    let start = Start {
        host: host.id,
        user,
        width: i64::from(cols),
        height: i64::from(rows),
    };
    let own = SessionStart {
        shell: link.shell.as_deref().unwrap_or_default(),
        origin: Origin::Console,
        os_user: link.os_user.as_deref(),
        client_addr: auth.request.ip.as_deref(),
    };
    let recording = lifecycle::start(&state, &auth, start, own).await?;
    let recorder = state.recorders.recorder(&recording).await?;
    let channel = link.channel();
    let opened = Opened {
        link: link.clone(),
        channel,
        recording,
        recorder,
        by: auth.actor(),
        opened_at: Instant::now(),
    };
    let open = HubMessage::Open {
        channel: opened.channel.number,
        session_id: opened.recording.session_id.to_string(),
        cols,
        rows,
        term: TERM.to_owned(),
    };
    if link.send(&open).await.is_err() {
        link.forget(opened.channel.number);
        relay::finish(&state, &opened, EndReason::AgentDisconnected.into()).await;
        return Err(conflict("host_offline", "the host's agent disconnected"));
    }
    let span = Span::current();
    let unserved = Unserved(Some((state.clone(), opened)));
    Ok(upgrade
        .max_message_size(MAX_BROWSER_MESSAGE.min(MAX_MESSAGE_BYTES))
        .on_failed_upgrade(move |error| {
            tracing::info!(%error, "a terminal's browser left during the upgrade");
        })
        .on_upgrade(move |socket| {
            let (state, opened) = unserved.take();
            relay::serve(state, socket, opened, lease).instrument(span)
        }))
}

/// A session whose browser never arrived is ended (`closed`) when the upgrade's task drops it.
struct Unserved(Option<(AppState, Opened)>);

impl Unserved {
    fn take(mut self) -> (AppState, Opened) {
        self.0.take().expect("taken once")
    }
}

impl Drop for Unserved {
    fn drop(&mut self) {
        if let Some((state, opened)) = self.0.take() {
            tokio::spawn(async move {
                let close = HubMessage::Close {
                    channel: opened.channel.number,
                    reason: EndReason::Closed.as_str().to_owned(),
                };
                let _ = opened.link.send(&close).await;
                opened.link.forget(opened.channel.number);
                relay::finish(&state, &opened, EndReason::Closed.into()).await;
            });
        }
    }
}

fn size(field: &str, value: i64) -> Result<u16, spog_core::FieldError> {
    u16::try_from(value)
        .ok()
        .filter(|v| (1..=1000).contains(v))
        .ok_or_else(|| spog_core::FieldError::new(field, "must be between 1 and 1000"))
}

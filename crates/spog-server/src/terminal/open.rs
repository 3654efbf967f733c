//! `GET /api/v1/hosts/{id}/terminal` (SPEC 13.1): everything is checked before the upgrade
//! (401, 403, 404, 422, 409 `host_offline` / `terminal_disabled`), then the session and its
//! recording start, on record, and the agent is asked to open the PTY. When another instance
//! holds the host's agent, the terminal is opened there and spliced (SPEC 13.4):
//! `/internal/v1/hosts/{id}/terminal` is the same with the caller checked again on that
//! instance, reached only with a cluster token.

use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::{Query, State, WebSocketUpgrade};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::Response;
use serde::Deserialize;
use spog_core::model::Host;
use spog_core::{FieldError, FieldErrors, Id, Permission};
use spog_protocol::HubMessage;
use spog_store::recordings::EndReason;
use spog_store::recordings::terminal::{Origin, SessionStart};
use tokio::time::Instant;
use tracing::{Instrument, Span};
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::cluster::{self, CLIENT_ADDR};
use super::link::AgentLink;
use super::relay::{self, Opened};
use crate::auth::{Auth, RequestInfo, authenticate, authenticate_token, presented_token};
use crate::error::{ApiError, ApiResult};
use crate::extract::AppPath;
use crate::http::hosts::visible_host;
use crate::http::recordings::lifecycle::{self, Start};
use crate::http::recordings::websocket;
use crate::http::ws::admit;
use crate::hub::sockets::SocketLease;
use crate::state::AppState;

/// What the terminal's WebSocket takes per message at most: keystrokes and pastes.
const MAX_BROWSER_MESSAGE: usize = 256 * 1024;
/// What xterm.js speaks.
const TERM: &str = "xterm-256color";

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(open_terminal))
}

/// The instance-to-instance endpoint; not in the OpenAPI document.
pub fn internal_router() -> axum::Router<AppState> {
    axum::Router::new().route(
        "/internal/v1/hosts/{id}/terminal",
        axum::routing::get(internal_terminal),
    )
}

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

type QueryResult = Result<Query<TerminalParams>, axum::extract::rejection::QueryRejection>;
type UpgradeResult = Result<WebSocketUpgrade, WebSocketUpgradeRejection>;

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
    query: QueryResult,
    upgrade: UpgradeResult,
) -> ApiResult<Response> {
    let Query(params) = query.map_err(|rejection| ApiError::BadRequest(rejection.body_text()))?;
    let credential = params
        .token
        .clone()
        .or_else(|| presented_token(&parts.headers));
    let principal = match &params.token {
        Some(token) => authenticate_token(&state, token).await?,
        None => authenticate(&state, &parts.headers).await?,
    };
    let auth = Auth {
        principal,
        request: RequestInfo::from_parts(&parts),
    };
    let (checked, upgrade, lease) = admitted(&state, &auth, host, &params, &parts, upgrade).await?;
    if let Some(link) = state.bus.agents.link(auth.account(), checked.host) {
        return start(state, auth, checked, link, upgrade, lease).await;
    }
    let credential = credential.unwrap_or_default();
    let upstream = cluster::open_upstream(
        &state,
        auth.account(),
        checked.host,
        &credential,
        auth.request.ip.as_deref(),
        (checked.cols, checked.rows),
    )
    .await;
    match upstream {
        Ok(upstream) => {
            let span = Span::current();
            Ok(upgrade.on_upgrade(move |socket| {
                cluster::splice(socket, upstream, lease).instrument(span)
            }))
        }
        Err(refusal) => Ok(*refusal),
    }
}

/// The terminal of a caller another instance reached (SPEC 13.4): its credential is checked
/// again here, its address is the one that instance saw.
async fn internal_terminal(
    State(state): State<AppState>,
    parts: Parts,
    AppPath(host): AppPath<Id<Host>>,
    query: QueryResult,
    upgrade: UpgradeResult,
) -> ApiResult<Response> {
    cluster::check(&state, &parts.headers, parts.uri.path())?;
    let Query(params) = query.map_err(|rejection| ApiError::BadRequest(rejection.body_text()))?;
    let principal = authenticate(&state, &parts.headers).await?;
    let mut request = RequestInfo::from_parts(&parts);
    request.ip = parts
        .headers
        .get(CLIENT_ADDR)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let auth = Auth { principal, request };
    let (checked, upgrade, lease) = admitted(&state, &auth, host, &params, &parts, upgrade).await?;
    let Some(link) = state.bus.agents.link(auth.account(), checked.host) else {
        return Err(conflict(
            "host_offline",
            "the host's agent is not connected",
        ));
    };
    start(state, auth, checked, link, upgrade, lease).await
}

/// What the checks found.
struct Checked {
    host: Id<Host>,
    user: Id<spog_core::model::User>,
    cols: u16,
    rows: u16,
}

/// The caller may open a terminal of this size on this host, over a WebSocket its
/// credential may still hold (403, 404, 422, 429 otherwise).
async fn admitted(
    state: &AppState,
    auth: &Auth,
    host: Id<Host>,
    params: &TerminalParams,
    parts: &Parts,
    upgrade: UpgradeResult,
) -> ApiResult<(Checked, WebSocketUpgrade, SocketLease)> {
    let checked = check(state, auth, host, params).await?;
    let upgrade = websocket(upgrade)?.max_message_size(MAX_BROWSER_MESSAGE);
    let lease = admit(
        state,
        &auth.principal,
        &parts.headers,
        Some(Permission::TerminalConnect),
    )?;
    Ok((checked, upgrade, lease))
}

/// The caller may open a terminal of this size on this host (403, 404, 422 otherwise).
async fn check(
    state: &AppState,
    auth: &Auth,
    host: Id<Host>,
    params: &TerminalParams,
) -> ApiResult<Checked> {
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
        visible_host(&mut conn, auth, host).await?
    };
    let mut errors = FieldErrors::new();
    let cols = errors.check(size("cols", params.cols.unwrap_or(80)));
    let rows = errors.check(size("rows", params.rows.unwrap_or(24)));
    errors.into_result()?;
    Ok(Checked {
        host: host.id,
        user,
        cols: cols.unwrap_or(80),
        rows: rows.unwrap_or(24),
    })
}

/// Starts the session on record, asks the agent for the PTY and relays once upgraded.
async fn start(
    state: AppState,
    auth: Auth,
    checked: Checked,
    link: std::sync::Arc<AgentLink>,
    upgrade: WebSocketUpgrade,
    lease: SocketLease,
) -> ApiResult<Response> {
    if !link.terminal {
        return Err(conflict(
            "terminal_disabled",
            "the host's agent does not allow terminals (terminal.enabled is false)",
        ));
    }
    let start = Start {
        host: checked.host,
        user: Some(checked.user),
        width: i64::from(checked.cols),
        height: i64::from(checked.rows),
        at: spog_core::Timestamp::now(),
    };
    let own = SessionStart {
        shell: link.shell.as_deref().unwrap_or_default(),
        origin: Origin::Console,
        os_user: link.os_user.as_deref(),
        client_addr: auth.request.ip.as_deref(),
        source_key: None,
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
        cols: checked.cols,
        rows: checked.rows,
        term: TERM.to_owned(),
    };
    if link.send(&open).await.is_err() {
        link.forget(opened.channel.number);
        relay::finish(&state, &opened, EndReason::AgentDisconnected.into()).await;
        return Err(conflict("host_offline", "the host's agent disconnected"));
    }
    let span = Span::current();
    let unserved = Unserved(Some((state, opened)));
    Ok(upgrade
        .on_failed_upgrade(|error| {
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

fn size(field: &str, value: i64) -> Result<u16, FieldError> {
    u16::try_from(value)
        .ok()
        .filter(|v| (1..=1000).contains(v))
        .ok_or_else(|| FieldError::new(field, "must be between 1 and 1000"))
}

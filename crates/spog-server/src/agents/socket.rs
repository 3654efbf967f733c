//! `GET /api/v1/agent/connect` (SPEC 12.3): the agent's one WebSocket. The credential and a
//! subprotocol are checked before the upgrade (401, 403, 426); then `hello` within 10 s,
//! answered by `welcome`; facts and metrics as they come; pings every 15 s, closed after
//! 45 s of silence. While the socket is open the host is online: the hub refreshes its
//! heartbeat every `host_offline_after / 3`. The socket closes with 4401 when its
//! credential ends and 4409 when another connection of the host replaces it, on any instance.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket};
use axum::extract::{State, WebSocketUpgrade};
use axum::http::StatusCode;
use axum::http::header::SEC_WEBSOCKET_PROTOCOL;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};
use spog_core::Id;
use spog_core::Timestamp;
use spog_core::model::{Host, HostAgent};
use spog_protocol::{
    AgentMessage, Capabilities, Facts, HELLO_TIMEOUT, HubMessage, IDLE_TIMEOUT, MAX_MESSAGE_BYTES,
    MessageError, MetricSample, PING_INTERVAL, SUBPROTOCOLS, close, decode_message, encode_message,
};
use spog_store::StoreError;
use spog_store::agents::credentials::{self, Connection};
use tokio::sync::mpsc;
use tokio::time::{Instant, MissedTickBehavior, interval, timeout};

use super::liveness;
use crate::auth::{Auth, Credential, RequestInfo, authenticate_any};
use crate::error::ApiError;
use crate::events::Announcements;
use crate::http::telemetry::{SampleBody, ingest};
use crate::hub::agents::{CloseWith, REPLACED, REVOKED};
use crate::hub::bus::BusEvent;
use crate::state::AppState;
use crate::terminal::AgentLink;
use crate::terminal::shell::ShellStart;

const BUFFER: usize = 16 * 1024;
/// Facts and metrics messages waiting to be stored; the socket waits when it is full.
const TELEMETRY_QUEUE: usize = 8;
const INTERNAL_ERROR: u16 = 1011;

/// Who is connecting: what the upgrade checked.
struct Agent {
    auth: Auth,
    host: Id<Host>,
    credential: Id<HostAgent>,
    protocol: &'static str,
}

/// The agent's WebSocket (SPEC 12.3), with `Authorization: Bearer spog_agent_…` and the
/// subprotocols it speaks in `Sec-WebSocket-Protocol`, newest first.
#[utoipa::path(get, path = "/agent/connect", tag = "agents",
    responses((status = 101, description = "switching to the agent protocol"),
        (status = 401, body = crate::error::ErrorBody),
        (status = 403, body = crate::error::ErrorBody),
        (status = 426, description = "`unsupported_protocol`, `details.supported` lists the versions",
            body = crate::error::ErrorBody)))]
pub async fn connect(
    State(state): State<AppState>,
    parts: Parts,
    upgrade: WebSocketUpgrade,
) -> Response {
    let principal = match authenticate_any(&state, &parts.headers).await {
        Ok(principal) => principal,
        Err(error) => return error.into_response(),
    };
    let Credential::Agent {
        id: credential,
        host,
    } = principal.credential
    else {
        return ApiError::Forbidden("the agent socket takes an agent credential".to_owned())
            .into_response();
    };
    let offered: Vec<String> = parts
        .headers
        .get_all(SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(',').map(|p| p.trim().to_owned()))
        .collect();
    let Some(protocol) = SUBPROTOCOLS
        .iter()
        .find(|ours| offered.iter().any(|p| p == *ours))
    else {
        let details = Map::from_iter([("supported".to_owned(), json!(SUBPROTOCOLS))]);
        return ApiError::Coded {
            status: StatusCode::UPGRADE_REQUIRED,
            code: "unsupported_protocol",
            message: format!(
                "this hub speaks the agent protocol {}",
                SUBPROTOCOLS.join(", ")
            ),
            details: Some(details),
        }
        .into_response();
    };
    let agent = Agent {
        auth: Auth {
            principal,
            request: RequestInfo::from_parts(&parts),
        },
        host,
        credential,
        protocol,
    };
    upgrade
        .protocols([*protocol])
        .read_buffer_size(BUFFER)
        .write_buffer_size(BUFFER)
        .max_message_size(MAX_MESSAGE_BYTES)
        .max_frame_size(MAX_MESSAGE_BYTES)
        .on_upgrade(move |socket| serve(state, socket, agent))
}

async fn close_with(socket: &mut WebSocket, code: u16, reason: &str) {
    let frame = CloseFrame {
        code,
        reason: Utf8Bytes::from(reason.to_owned()),
    };
    let _ = timeout(
        Duration::from_secs(2),
        socket.send(Message::Close(Some(frame))),
    )
    .await;
}

/// Whether a read failed because a message exceeded the cap.
fn too_big(error: &axum::Error) -> bool {
    let text = error.to_string();
    text.contains("too long") || text.contains("Space limit")
}

/// Waits for `hello`; anything else first is a protocol violation.
async fn hello(
    socket: &mut WebSocket,
) -> Result<(String, Facts, Capabilities), (u16, &'static str)> {
    loop {
        match socket.recv().await {
            None | Some(Ok(Message::Close(_))) => return Err((0, "")),
            Some(Err(error)) if too_big(&error) => {
                return Err((close::MESSAGE_TOO_BIG, "message too big"));
            }
            Some(Err(_)) => return Err((0, "")),
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
            Some(Ok(Message::Binary(_))) => {
                return Err((close::PROTOCOL_VIOLATION, "hello must come first"));
            }
            Some(Ok(Message::Text(text))) => match decode_message::<AgentMessage>(&text) {
                Ok(AgentMessage::Hello {
                    agent_version,
                    facts,
                    capabilities,
                }) => return Ok((agent_version, facts, capabilities)),
                Err(MessageError::TooLarge { .. }) => {
                    return Err((close::MESSAGE_TOO_BIG, "message too big"));
                }
                _ => return Err((close::PROTOCOL_VIOLATION, "hello must come first")),
            },
        }
    }
}

async fn serve(state: AppState, mut socket: WebSocket, agent: Agent) {
    let agent = Arc::new(agent);
    let (agent_version, facts, capabilities) =
        match timeout(HELLO_TIMEOUT, hello(&mut socket)).await {
            Ok(Ok(hello)) => hello,
            Ok(Err((0, _))) => return,
            Ok(Err((code, reason))) => return close_with(&mut socket, code, reason).await,
            Err(_) => {
                return close_with(
                    &mut socket,
                    close::PROTOCOL_VIOLATION,
                    "no hello within 10 seconds",
                )
                .await;
            }
        };
    let account = agent.auth.account();
    let connection_id = uuid::Uuid::now_v7().to_string();
    let (link, outbox) = AgentLink::new(agent.host, &capabilities);
    let lease = state.bus.agents.register(
        account,
        agent.host,
        agent.credential,
        &connection_id,
        link.clone(),
    );
    let facts = serde_json::to_value(&facts).unwrap_or(Value::Null);
    let connection = Connection {
        connection_id: &connection_id,
        protocol: agent.protocol,
        instance_id: &state.instance_id,
        remote_addr: agent.auth.request.ip.as_deref(),
        terminal_enabled: capabilities.terminal,
        agent_version: &agent_version,
        facts: &facts,
    };
    match connected(&state, &agent, &connection).await {
        Ok(()) => {}
        Err(Refused::Credential) => {
            return close_with(&mut socket, REVOKED.code, REVOKED.reason).await;
        }
        Err(Refused::Failed(error)) => {
            tracing::error!(error = %error, host = %agent.host, "an agent connecting");
            return close_with(&mut socket, INTERNAL_ERROR, "internal error").await;
        }
    }
    state
        .bus
        .publish(BusEvent::AgentConnected {
            host: agent.host,
            connection: connection_id.clone(),
        })
        .await;
    state.bus.touch(account, "hosts");
    let welcome = HubMessage::Welcome {
        host_id: agent.host.to_string(),
        instance_id: state.instance_id.clone(),
        max_message_bytes: MAX_MESSAGE_BYTES as u64,
        server_time: Timestamp::now().to_string(),
    };
    let welcome = encode_message(&welcome).expect("a welcome is small");
    if socket
        .send(Message::Text(Utf8Bytes::from(welcome)))
        .await
        .is_ok()
    {
        let connection = Conversation {
            agent: &agent,
            connection_id: &connection_id,
            lease: &lease,
            link: &link,
        };
        let why = connection.converse(&state, &mut socket, outbox).await;
        link.lost();
        if let Some(CloseWith { code, reason }) = why {
            close_with(&mut socket, code, reason).await;
        }
    }
    link.lost();
    let gone = async {
        let mut tx = state.store.begin().await?;
        credentials::disconnected(&mut tx, agent.host, &connection_id, Timestamp::now()).await?;
        tx.commit_unaudited().await
    };
    if let Err(error) = gone.await {
        tracing::warn!(%error, host = %agent.host, "noting an agent's disconnection");
    }
    state.bus.touch(account, "hosts");
    drop(lease);
}

enum Refused {
    /// The credential was revoked (or replaced) meanwhile, or the host deleted.
    Credential,
    Failed(ApiError),
}

impl From<ApiError> for Refused {
    fn from(error: ApiError) -> Self {
        match error {
            ApiError::NotFound => Refused::Credential,
            other => Refused::Failed(other),
        }
    }
}

impl From<StoreError> for Refused {
    fn from(error: StoreError) -> Self {
        ApiError::from(error).into()
    }
}

/// Notes the connection and brings the host online, in one transaction.
async fn connected(
    state: &AppState,
    agent: &Agent,
    connection: &Connection<'_>,
) -> Result<(), Refused> {
    let now = Timestamp::now();
    let mut announcements = Announcements::default();
    let mut tx = state.store.begin().await?;
    credentials::connected(&mut tx, agent.host, agent.credential, connection, now).await?;
    liveness::alive(&mut tx, &agent.auth, agent.host, now, &mut announcements).await?;
    tx.commit_unaudited().await?;
    announcements.send(&state.bus).await;
    Ok(())
}

/// Refreshes the host's heartbeat; `Err` with how to close when the connection lost its place.
async fn refresh(state: &AppState, agent: &Agent, connection_id: &str) -> Result<(), CloseWith> {
    let now = Timestamp::now();
    let refreshed = async {
        let mut announcements = Announcements::default();
        let mut tx = state.store.begin().await?;
        let current = credentials::seen(&mut tx, agent.host, connection_id, now).await?;
        if current {
            liveness::alive(&mut tx, &agent.auth, agent.host, now, &mut announcements).await?;
        }
        tx.commit_unaudited().await?;
        announcements.send(&state.bus).await;
        Ok::<_, ApiError>(current)
    };
    match refreshed.await {
        Ok(true) => Ok(()),
        // Revoked, or replaced by a connection whose announcement this instance missed.
        Ok(false) | Err(ApiError::NotFound) => {
            let mut conn = state.store.conn().await.map_err(|_| REPLACED)?;
            match credentials::by_id(&mut conn, agent.auth.account(), agent.credential).await {
                Ok(_) => Err(REPLACED),
                Err(StoreError::NotFound) => Err(REVOKED),
                Err(_) => Ok(()),
            }
        }
        Err(error) => {
            tracing::warn!(%error, host = %agent.host, "refreshing a connected agent's heartbeat");
            Ok(())
        }
    }
}

/// What serving one connection after `welcome` needs.
struct Conversation<'a> {
    agent: &'a Arc<Agent>,
    connection_id: &'a str,
    lease: &'a crate::hub::agents::AgentLease,
    link: &'a Arc<AgentLink>,
}

impl Conversation<'_> {
    /// Serves the socket after `welcome`; returns how to close it, if it is to be closed.
    /// Terminal traffic is handed to its channels at once; facts and metrics go to a task of
    /// their own (bounded), so that storing them never delays a keystroke.
    async fn converse(
        &self,
        state: &AppState,
        socket: &mut WebSocket,
        mut outbox: mpsc::Receiver<Message>,
    ) -> Option<CloseWith> {
        let (telemetry, received) = mpsc::channel(TELEMETRY_QUEUE);
        let storing = tokio::spawn(store_telemetry(state.clone(), self.agent.clone(), received));
        let why = self.relay(state, socket, &mut outbox, &telemetry).await;
        drop(telemetry);
        let _ = storing.await;
        why
    }

    async fn relay(
        &self,
        state: &AppState,
        socket: &mut WebSocket,
        outbox: &mut mpsc::Receiver<Message>,
        telemetry: &mpsc::Sender<AgentMessage>,
    ) -> Option<CloseWith> {
        let mut pings = interval(PING_INTERVAL);
        pings.set_missed_tick_behavior(MissedTickBehavior::Delay);
        pings.tick().await;
        let every = (state.config.host_offline_after / 3).max(Duration::from_millis(100));
        let mut refreshes = interval(every);
        refreshes.set_missed_tick_behavior(MissedTickBehavior::Delay);
        refreshes.tick().await;
        let mut last_heard = Instant::now();
        const VIOLATION: CloseWith = CloseWith {
            code: close::PROTOCOL_VIOLATION,
            reason: "protocol violation",
        };
        const TOO_BIG: CloseWith = CloseWith {
            code: close::MESSAGE_TOO_BIG,
            reason: "message too big",
        };
        loop {
            tokio::select! {
                why = self.lease.ending.ended() => return Some(why),
                Some(message) = outbox.recv() => {
                    if socket.send(message).await.is_err() {
                        return None;
                    }
                }
                _ = refreshes.tick() => {
                    if let Err(why) = refresh(state, self.agent, self.connection_id).await {
                        return Some(why);
                    }
                }
                _ = pings.tick() => {
                    if last_heard.elapsed() >= IDLE_TIMEOUT {
                        return Some(CloseWith { code: close::GOING_AWAY, reason: "silent for 45 seconds" });
                    }
                    if socket.send(Message::Ping(Default::default())).await.is_err() {
                        return None;
                    }
                }
                incoming = socket.recv() => {
                    last_heard = Instant::now();
                    match incoming {
                        None | Some(Ok(Message::Close(_))) => return None,
                        Some(Err(error)) if too_big(&error) => return Some(TOO_BIG),
                        Some(Err(_)) => return None,
                        Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
                        Some(Ok(Message::Binary(bytes))) => {
                            if self.link.frame(bytes).is_err() {
                                return Some(VIOLATION);
                            }
                        }
                        Some(Ok(Message::Text(text))) => match decode_message::<AgentMessage>(&text) {
                            Ok(message @ (AgentMessage::Facts { .. } | AgentMessage::Metrics { .. })) => {
                                if telemetry.send(message).await.is_err() {
                                    return None;
                                }
                            }
                            Ok(AgentMessage::ShellStart { channel, os_user, client_addr, shell, cols, rows, started_at }) => {
                                let Some(accepted) = self.link.accept(channel) else {
                                    return Some(VIOLATION);
                                };
                                let start = ShellStart { os_user, client_addr, shell, cols, rows, started_at };
                                tokio::spawn(crate::terminal::shell::serve(
                                    state.clone(),
                                    self.agent.auth.clone(),
                                    self.link.clone(),
                                    accepted,
                                    start,
                                ));
                            }
                            Ok(message) => {
                                if self.link.message(message).is_err() {
                                    return Some(VIOLATION);
                                }
                            }
                            Err(MessageError::TooLarge { .. }) => return Some(TOO_BIG),
                            Err(MessageError::Malformed(_)) => return Some(VIOLATION),
                        },
                    }
                }
            }
        }
    }
}

/// Stores an agent's facts and metrics in order, one message at a time.
async fn store_telemetry(
    state: AppState,
    agent: Arc<Agent>,
    mut received: mpsc::Receiver<AgentMessage>,
) {
    while let Some(message) = received.recv().await {
        store_one(&state, &agent, message).await;
    }
}

/// Stores one message of facts or metrics.
async fn store_one(state: &AppState, agent: &Agent, message: AgentMessage) {
    match message {
        AgentMessage::Facts { facts } => {
            let facts = serde_json::to_value(&facts).unwrap_or(Value::Null);
            let stored = async {
                let mut tx = state.store.begin().await?;
                credentials::facts(&mut tx, agent.host, &facts, Timestamp::now()).await?;
                tx.commit_unaudited().await
            };
            if let Err(error) = stored.await {
                tracing::warn!(%error, host = %agent.host, "storing an agent's facts");
            }
            state.bus.touch(agent.auth.account(), "hosts");
        }
        AgentMessage::Metrics {
            samples,
            dropped_samples,
        } => {
            if dropped_samples > 0 {
                tracing::info!(host = %agent.host, dropped_samples, "an agent dropped samples while disconnected");
            }
            if samples.is_empty() {
                return;
            }
            let samples = samples.into_iter().map(sample_body).collect();
            let taken = ingest(
                state,
                agent.auth.account(),
                agent.host,
                samples,
                Timestamp::now(),
            )
            .await;
            if let Err(error) = taken {
                tracing::warn!(%error, host = %agent.host, "an agent's metrics were refused");
            }
        }
        // Only facts and metrics come here.
        _ => {}
    }
}

/// A sample of the protocol as `POST /metrics` takes it; an unreadable time counts as the
/// time of arrival.
fn sample_body(sample: MetricSample) -> SampleBody {
    SampleBody {
        metric: sample.metric,
        value: sample.value,
        at: sample.at.as_deref().and_then(Timestamp::parse),
        labels: sample.labels,
    }
}

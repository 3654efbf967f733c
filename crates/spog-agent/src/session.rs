//! One connection to the hub (SPEC 12.3): the upgrade with the credential and the
//! subprotocol, `hello`, then metrics and facts as they come, pings, the terminal channels'
//! messages and frames (see `terminal`), and whatever the hub sends, until the connection ends.
//! Every wait is bounded.

use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use spog_protocol::{
    AgentMessage, Frame, HubMessage, MessageError, close, decode_message, encode_message,
    encode_metrics_message,
};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, watch};
use tokio::time::{Instant, MissedTickBehavior, interval_at, sleep_until, timeout};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::{HeaderValue, StatusCode, header};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, WebSocketConfig};
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::{Connector, MaybeTlsStream, WebSocketStream};

use crate::run::{Shared, StatusBoard};
use crate::shell::Uploads;
use crate::terminal::{Channels, Outgoing, Violation};

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// TCP, TLS and the upgrade together.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(20);
/// The hub's `welcome` must follow `hello` this soon.
const WELCOME_TIMEOUT: Duration = Duration::from_secs(15);
/// A message the hub does not take in this long means the connection is stuck.
const SEND_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a graceful close may take.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(2);

/// How a connection ended.
#[derive(Debug)]
pub enum SessionEnd {
    /// SIGTERM or SIGINT.
    Shutdown,
    /// 401 at the upgrade or close 4401: the credential is no longer valid.
    CredentialRefused,
    /// Anything else: try again after a back-off.
    Lost {
        reason: String,
        /// How long the connection was up, if it was.
        connected_for: Option<Duration>,
        /// The hub asked for a prompt reconnect (1001).
        prompt: bool,
    },
}

impl SessionEnd {
    fn lost(reason: impl Into<String>, since: Option<Instant>) -> Self {
        SessionEnd::Lost {
            reason: reason.into(),
            connected_for: since.map(|at| at.elapsed()),
            prompt: false,
        }
    }
}

/// Where and as whom to connect.
pub struct Target<'a> {
    pub url: &'a str,
    pub credential: &'a str,
    pub tls: Option<Arc<rustls::ClientConfig>>,
}

pub async fn run_session(
    target: Target<'_>,
    shared: &Shared,
    status: &StatusBoard,
    shutdown: &mut watch::Receiver<bool>,
) -> SessionEnd {
    let connecting = tokio::select! {
        result = timeout(CONNECT_TIMEOUT, connect(&target)) => result,
        _ = shutdown.wait_for(|stop| *stop) => return SessionEnd::Shutdown,
    };
    let mut ws = match connecting {
        Err(_) => return SessionEnd::lost("the hub did not answer within 20s", None),
        Ok(Err(end)) => return end,
        Ok(Ok(ws)) => ws,
    };
    let connected_at = Instant::now();
    let (channels, outgoing) = shared.terminals.connection();
    let uploads = shared
        .shell
        .as_ref()
        .map(|shell| Uploads::new(shell.spool.clone(), channels.sender()));
    let mut session = Session {
        ws: &mut ws,
        shared,
        status,
        connected_at,
        last_received: connected_at,
        welcomed: false,
        channels,
        uploads,
        outgoing,
    };
    session.converse(shutdown).await
}

async fn connect(target: &Target<'_>) -> Result<Socket, SessionEnd> {
    let mut request = target
        .url
        .into_client_request()
        .map_err(|e| SessionEnd::lost(format!("bad hub address {}: {e}", target.url), None))?;
    let headers = request.headers_mut();
    let bearer = HeaderValue::from_str(&format!("Bearer {}", target.credential))
        .map_err(|_| SessionEnd::CredentialRefused)?;
    headers.insert(header::AUTHORIZATION, bearer);
    headers.insert(
        header::SEC_WEBSOCKET_PROTOCOL,
        HeaderValue::from_str(&spog_protocol::SUBPROTOCOLS.join(", "))
            .map_err(|e| SessionEnd::lost(e.to_string(), None))?,
    );
    headers.insert(
        header::USER_AGENT,
        HeaderValue::from_static(concat!("spog-agent/", env!("CARGO_PKG_VERSION"))),
    );
    let config = WebSocketConfig::default()
        .read_buffer_size(16 * 1024)
        .write_buffer_size(16 * 1024)
        .max_write_buffer_size(2 * spog_protocol::MAX_MESSAGE_BYTES)
        .max_message_size(Some(spog_protocol::MAX_MESSAGE_BYTES))
        .max_frame_size(Some(spog_protocol::MAX_MESSAGE_BYTES));
    let connector = target.tls.clone().map(Connector::Rustls);
    match tokio_tungstenite::connect_async_tls_with_config(request, Some(config), true, connector)
        .await
    {
        Ok((ws, _response)) => Ok(ws),
        Err(tungstenite::Error::Http(response)) => Err(refused_upgrade(&response)),
        Err(e) => Err(SessionEnd::lost(describe(&e), None)),
    }
}

/// The hub answered the upgrade with an error status.
fn refused_upgrade(response: &tungstenite::http::Response<Option<Vec<u8>>>) -> SessionEnd {
    if response.status() == StatusCode::UNAUTHORIZED {
        return SessionEnd::CredentialRefused;
    }
    let message = response
        .body()
        .as_deref()
        .and_then(|body| serde_json::from_slice::<serde_json::Value>(body).ok())
        .map(|body| {
            let error = &body["error"];
            let mut text = error["message"].as_str().unwrap_or_default().to_owned();
            if let Some(supported) = error["details"]["supported"].as_array() {
                text.push_str(&format!(
                    " (the hub speaks {supported:?}: upgrade spog-agent)"
                ));
            }
            text
        })
        .unwrap_or_default();
    SessionEnd::lost(
        format!(
            "the hub refused the connection ({}) {message}",
            response.status()
        ),
        None,
    )
}

fn describe(error: &tungstenite::Error) -> String {
    use tungstenite::error::ProtocolError;
    match error {
        tungstenite::Error::Io(e) => match e.get_ref().and_then(|inner| inner.downcast_ref()) {
            Some(tls) => format!("TLS: {}", tls as &rustls::Error),
            None => format!("cannot connect: {e}"),
        },
        tungstenite::Error::Tls(e) => format!("TLS: {e}"),
        tungstenite::Error::Protocol(ProtocolError::SecWebSocketSubProtocolError(_)) => format!(
            "the hub speaks none of {:?}: upgrade the hub or the agent",
            spog_protocol::SUBPROTOCOLS
        ),
        other => other.to_string(),
    }
}

/// A `spog-agent shell` session was spooled (never, when shell sessions are off).
async fn spool_started(shared: &Shared) {
    match &shared.shell {
        Some(shell) => shell.spool.started.notified().await,
        None => std::future::pending().await,
    }
}

struct Session<'a> {
    ws: &'a mut Socket,
    shared: &'a Shared,
    status: &'a StatusBoard,
    connected_at: Instant,
    last_received: Instant,
    /// Metrics and facts wait for the hub's `welcome`.
    welcomed: bool,
    /// The terminals of this connection; dropped with it, which hangs them all up.
    channels: Channels<'a>,
    /// The uploads of spooled `spog-agent shell` sessions, once welcomed.
    uploads: Option<Uploads>,
    /// What the channels send, in their order.
    outgoing: mpsc::Receiver<Outgoing>,
}

impl Session<'_> {
    async fn converse(&mut self, shutdown: &mut watch::Receiver<bool>) -> SessionEnd {
        let hello = AgentMessage::Hello {
            agent_version: crate::facts::AGENT_VERSION.to_owned(),
            facts: self.shared.facts(),
            capabilities: self.shared.capabilities(),
        };
        if let Err(end) = self.send_message(&hello).await {
            return end;
        }
        let start = Instant::now();
        let mut ping = interval_at(
            start + spog_protocol::PING_INTERVAL,
            spog_protocol::PING_INTERVAL,
        );
        ping.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let welcome_deadline = start + WELCOME_TIMEOUT;
        loop {
            let step = tokio::select! {
                _ = shutdown.wait_for(|stop| *stop) => {
                    self.close(CloseCode::Normal, "agent stopping").await;
                    return SessionEnd::Shutdown;
                }
                message = self.ws.next() => self.receive(message).await,
                Some(outgoing) = self.outgoing.recv() => self.forward(outgoing).await,
                _ = spool_started(self.shared), if self.welcomed => {
                    self.start_uploads();
                    Ok(())
                }
                _ = ping.tick() => self.ping().await,
                _ = self.shared.samples_ready.notified(), if self.welcomed => {
                    self.flush_metrics().await
                }
                _ = self.shared.facts_changed.notified(), if self.welcomed => {
                    let facts = AgentMessage::Facts { facts: self.shared.facts() };
                    self.send_message(&facts).await
                }
                _ = sleep_until(welcome_deadline), if !self.welcomed => {
                    Err(self.lost("no welcome from the hub within 15s"))
                }
                _ = sleep_until(self.last_received + spog_protocol::IDLE_TIMEOUT) => {
                    Err(self.lost("nothing heard from the hub for 45s"))
                }
            };
            if let Err(end) = step {
                return end;
            }
        }
    }

    async fn receive(
        &mut self,
        message: Option<Result<Message, tungstenite::Error>>,
    ) -> Result<(), SessionEnd> {
        self.last_received = Instant::now();
        match message {
            None => Err(self.lost("the hub closed the connection")),
            Some(Err(tungstenite::Error::Capacity(e))) => {
                self.close(CloseCode::Size, "message too big").await;
                Err(self.lost(format!("the hub sent too much: {e}")))
            }
            Some(Err(e)) => Err(self.lost(format!("connection lost: {e}"))),
            Some(Ok(Message::Text(text))) => match decode_message::<HubMessage>(&text) {
                Ok(message) => self.handle(message).await,
                Err(e) => Err(self.violation(e.to_string()).await),
            },
            Some(Ok(Message::Binary(bytes))) => {
                let routed = match Frame::decode(&bytes) {
                    Ok(frame) => self.channels.frame(frame),
                    Err(e) => Err(Violation(e.to_string())),
                };
                match routed {
                    Ok(()) => Ok(()),
                    Err(Violation(why)) => Err(self.violation(why).await),
                }
            }
            Some(Ok(Message::Close(frame))) => {
                let end = self.closed_by_hub(frame);
                // Sends the close reply tungstenite queued.
                let _ = timeout(CLOSE_TIMEOUT, self.ws.flush()).await;
                Err(end)
            }
            Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => Ok(()),
        }
    }

    async fn handle(&mut self, message: HubMessage) -> Result<(), SessionEnd> {
        match message {
            HubMessage::Welcome {
                host_id,
                instance_id,
                ..
            } => {
                if !self.welcomed {
                    tracing::info!(%host_id, instance = %instance_id, "connected");
                    self.welcomed = true;
                    self.status.connected(&instance_id);
                    self.start_uploads();
                    return self.flush_metrics().await;
                }
                Ok(())
            }
            HubMessage::Open {
                channel,
                session_id,
                cols,
                rows,
                term,
            } => {
                tracing::debug!(channel, %session_id, cols, rows, "terminal asked for");
                match self.channels.open(channel, cols, rows, term) {
                    Ok(Some(refusal)) => self.send_message(&refusal).await,
                    Ok(None) => Ok(()),
                    Err(Violation(why)) => Err(self.violation(why).await),
                }
            }
            HubMessage::Resize {
                channel,
                cols,
                rows,
            } => {
                self.channels.resize(channel, cols, rows);
                Ok(())
            }
            HubMessage::Close { channel, reason } => {
                self.channels.close(channel, &reason);
                Ok(())
            }
            HubMessage::Window { channel, bytes } => {
                if spog_protocol::opened_by_hub(channel) {
                    self.channels.window(channel, bytes);
                } else if let Some(uploads) = &mut self.uploads {
                    uploads.window(channel, bytes);
                }
                Ok(())
            }
            HubMessage::ShellAck {
                channel,
                session_id,
                acked_bytes,
            } => {
                match &mut self.uploads {
                    Some(uploads) => uploads.shell_ack(channel, &session_id, acked_bytes),
                    None => tracing::debug!(channel, "shell_ack for no shell session"),
                }
                Ok(())
            }
            HubMessage::Unknown => Ok(()),
        }
    }

    fn closed_by_hub(&self, frame: Option<CloseFrame>) -> SessionEnd {
        let (code, reason) = frame
            .map(|f| (u16::from(f.code), f.reason.to_string()))
            .unwrap_or((1005, String::new()));
        match code {
            close::CREDENTIAL_REFUSED => SessionEnd::CredentialRefused,
            close::REPLACED => {
                tracing::warn!(
                    "another agent connected with this host's credential and replaced this one \
                     (a cloned machine or a second agent?)"
                );
                self.lost("replaced by another connection with the same credential")
            }
            close::GOING_AWAY => SessionEnd::Lost {
                reason: "the hub is shutting down".into(),
                connected_for: Some(self.connected_at.elapsed()),
                prompt: true,
            },
            _ => self.lost(format!("the hub closed the connection ({code} {reason})")),
        }
    }

    async fn ping(&mut self) -> Result<(), SessionEnd> {
        self.send(Message::Ping(Default::default())).await
    }

    /// Sends the buffered batches, oldest first; a batch that cannot be sent goes back.
    async fn flush_metrics(&mut self) -> Result<(), SessionEnd> {
        loop {
            let (batch, dropped) = {
                let mut buffer = self.shared.buffer();
                match buffer.pop() {
                    Some(batch) => (batch, buffer.take_unreported_drops()),
                    None => return Ok(()),
                }
            };
            if dropped > 0 {
                tracing::warn!(
                    dropped,
                    "samples were dropped while the hub was unreachable"
                );
            }
            let text = match encode_metrics_message(&batch.json, dropped) {
                Ok(text) => text,
                Err(e) => {
                    tracing::warn!(error = %e, "dropped a metrics batch that cannot be sent");
                    continue;
                }
            };
            if let Err(end) = self.send(Message::text(text)).await {
                let mut buffer = self.shared.buffer();
                buffer.restore(batch);
                buffer.return_unreported_drops(dropped);
                return Err(end);
            }
        }
    }

    fn start_uploads(&mut self) {
        if let Some(uploads) = &mut self.uploads {
            uploads.start_new();
        }
    }

    /// Sends what a channel handed over.
    async fn forward(&mut self, outgoing: Outgoing) -> Result<(), SessionEnd> {
        match outgoing {
            Outgoing::Message(message) => {
                self.channels.sending(&message);
                self.send_message(&message).await
            }
            Outgoing::Frame(frame) => self.send(Message::binary(frame)).await,
        }
    }

    async fn send_message(&mut self, message: &AgentMessage) -> Result<(), SessionEnd> {
        match encode_message(message) {
            Ok(text) => self.send(Message::text(text)).await,
            Err(MessageError::TooLarge { len }) => {
                tracing::warn!(len, "a message too large to send was left out");
                Ok(())
            }
            Err(e) => Err(self.lost(e.to_string())),
        }
    }

    async fn send(&mut self, message: Message) -> Result<(), SessionEnd> {
        match timeout(SEND_TIMEOUT, self.ws.send(message)).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(self.lost(format!("connection lost: {e}"))),
            Err(_) => Err(self.lost("the hub took no data for 30s")),
        }
    }

    async fn violation(&mut self, why: String) -> SessionEnd {
        tracing::warn!(%why, "the hub broke the protocol");
        self.close(CloseCode::Policy, "protocol violation").await;
        self.lost(format!("protocol violation: {why}"))
    }

    /// Sends a close frame and waits (briefly) for the hub's.
    async fn close(&mut self, code: CloseCode, reason: &'static str) {
        let frame = CloseFrame {
            code,
            reason: reason.into(),
        };
        let _ = timeout(CLOSE_TIMEOUT, async {
            if self.ws.close(Some(frame)).await.is_ok() {
                while let Some(Ok(_)) = self.ws.next().await {}
            }
        })
        .await;
    }

    fn lost(&self, reason: impl Into<String>) -> SessionEnd {
        SessionEnd::lost(reason, Some(self.connected_at))
    }
}

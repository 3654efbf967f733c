//! One browser's WebSocket: pushes from the hub, an application ping every 30 seconds plus
//! protocol pings, and a close after 90 seconds of silence.

use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket};
use serde_json::json;
use spog_store::notifications;
use tokio::time::{Instant, interval};

use super::Push;
use super::sockets::SocketLease;
use crate::state::AppState;

const PING_EVERY: Duration = Duration::from_secs(30);
const SILENCE_LIMIT: Duration = Duration::from_secs(90);
/// RFC 6455: the peer broke a policy (here: its credential).
pub const POLICY_VIOLATION: u16 = 1008;
const GOING_AWAY: u16 = 1001;
const TRY_AGAIN_LATER: u16 = 1013;

/// Closes a socket whose credential was refused.
pub async fn refuse(mut socket: WebSocket, reason: &str) {
    let frame = CloseFrame {
        code: POLICY_VIOLATION,
        reason: Utf8Bytes::from(reason.to_owned()),
    };
    let _ = socket.send(Message::Close(Some(frame))).await;
}

fn text(value: serde_json::Value) -> Message {
    Message::Text(Utf8Bytes::from(value.to_string()))
}

/// Serves an admitted socket until it closes, its credential ends (1008) or the server stops.
pub async fn serve_socket(state: AppState, mut socket: WebSocket, lease: SocketLease) {
    let live = lease.live().clone();
    let mut registration = state.bus.hub.register(live.clone());
    state.metrics.websocket_connections.inc();
    let mut unread = match live.user {
        Some(user) => {
            let counted = async {
                let mut conn = state.store.conn().await?;
                notifications::unread_count(&mut conn, live.account, user).await
            };
            counted.await.unwrap_or(0)
        }
        None => 0,
    };
    let greeting = text(json!({"type": "unread_count", "count": unread}));
    let mut ticker = interval(PING_EVERY);
    ticker.tick().await;
    let mut last_heard = Instant::now();
    if socket.send(greeting).await.is_ok() {
        loop {
            let outgoing = tokio::select! {
                reason = lease.ended() => {
                    let frame = CloseFrame { code: POLICY_VIOLATION, reason: Utf8Bytes::from_static(reason) };
                    let _ = socket.send(Message::Close(Some(frame))).await;
                    break;
                }
                push = registration.pushes.recv() => match push {
                    // The hub dropped this connection: it did not keep up, or the server stops.
                    None => {
                        let frame = match state.bus.hub.is_closing() {
                            true => CloseFrame { code: GOING_AWAY, reason: Utf8Bytes::from_static("the server is shutting down") },
                            false => CloseFrame { code: TRY_AGAIN_LATER, reason: Utf8Bytes::from_static("too slow to keep up") },
                        };
                        let _ = socket.send(Message::Close(Some(frame))).await;
                        break;
                    }
                    Some(Push::Notification(notification)) => {
                        unread += 1;
                        text(json!({"type": "notification", "notification": *notification, "unread_count": unread}))
                    }
                    Some(Push::UnreadCount(count)) => {
                        unread = count;
                        text(json!({"type": "unread_count", "count": count}))
                    }
                    Some(Push::Dashboard(dashboard)) => {
                        text(json!({"type": "dashboard", "topic": dashboard.topic, "data": dashboard.data}))
                    }
                },
                incoming = socket.recv() => match incoming {
                    Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break,
                    // Any message or pong shows the client is alive; nothing else is expected.
                    Some(Ok(_)) => {
                        last_heard = Instant::now();
                        continue;
                    }
                },
                _ = ticker.tick() => {
                    if last_heard.elapsed() > SILENCE_LIMIT {
                        let frame = CloseFrame { code: GOING_AWAY, reason: Utf8Bytes::from_static("silent for 90 seconds") };
                        let _ = socket.send(Message::Close(Some(frame))).await;
                        break;
                    }
                    if socket.send(Message::Ping(Default::default())).await.is_err() {
                        break;
                    }
                    text(json!({"type": "ping"}))
                }
            };
            if socket.send(outgoing).await.is_err() {
                break;
            }
        }
    }
    state.metrics.websocket_connections.dec();
}

//! Terminals across instances (SPEC 13.4): a browser's socket may reach any instance, the
//! agent's is held by one. The instance the browser reached checks the caller as usual, then
//! opens `/internal/v1/hosts/{id}/terminal` on the agent's instance — presenting the caller's
//! own credential and a 60-second token signed with the key every instance derives from the
//! shared server key — and splices bytes both ways. The agent's instance starts the session,
//! relays and records it, exactly as for a browser of its own.

use std::time::Duration;

use axum::extract::ws::{self, WebSocket};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use futures::{SinkExt, StreamExt};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use spog_core::Timestamp;
use spog_core::model::Host;
use spog_core::{Id, model::Account};
use spog_store::agents::credentials;
use subtle::ConstantTimeEq;
use tokio::net::TcpStream;
use tokio::time::timeout;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::error::{ApiError, ApiResult};
use crate::hub::sockets::SocketLease;
use crate::state::AppState;
use crate::workers::cluster::FRESH_FOR;

/// The header carrying the cluster token.
pub const CLUSTER_TOKEN: &str = "x-spog-cluster-token";
/// The browser's address, as the instance it reached saw it.
pub const CLIENT_ADDR: &str = "x-spog-client-addr";
/// How long a cluster token is good for.
const TOKEN_LIFETIME: i64 = 60;
/// The peer answers the upgrade this soon.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

pub type Upstream = WebSocketStream<MaybeTlsStream<TcpStream>>;

fn mac(key: &[u8; 32], expires: i64, path: &str) -> Hmac<Sha256> {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key).expect("any key length");
    mac.update(format!("spog cluster v1\n{expires}\n{path}").as_bytes());
    mac
}

/// A token for a request to `path` on a peer instance, good for 60 seconds.
pub fn token(key: &[u8; 32], path: &str, now: Timestamp) -> String {
    let expires = now.unix_seconds() + TOKEN_LIFETIME;
    let signature = mac(key, expires, path).finalize().into_bytes();
    format!("{expires}.{}", hex::encode(signature))
}

/// Whether `token` was signed by an instance of this cluster for `path` and is still good.
pub fn verify(key: &[u8; 32], token: &str, path: &str, now: Timestamp) -> bool {
    let Some((expires, signature)) = token.split_once('.') else {
        return false;
    };
    let (Ok(expires), Ok(signature)) = (expires.parse::<i64>(), hex::decode(signature)) else {
        return false;
    };
    let fresh = expires > now.unix_seconds() && expires <= now.unix_seconds() + TOKEN_LIFETIME;
    let expected = mac(key, expires, path).finalize().into_bytes();
    fresh && bool::from(expected.as_slice().ct_eq(&signature))
}

/// The refusal of a request to an internal endpoint without a good cluster token.
pub fn check(state: &AppState, headers: &HeaderMap, path: &str) -> ApiResult<()> {
    let token = headers
        .get(CLUSTER_TOKEN)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if verify(&state.keys.cluster, token, path, Timestamp::now()) {
        Ok(())
    } else {
        Err(ApiError::Unauthenticated(
            "internal endpoints answer other instances of this cluster only".to_owned(),
        ))
    }
}

fn offline() -> ApiError {
    ApiError::Coded {
        status: StatusCode::CONFLICT,
        code: "host_offline",
        message: "the host's agent is not connected".to_owned(),
        details: None,
    }
}

/// Where the instance holding `host`'s agent is reached, if another instance holds it and is
/// alive.
async fn holder(state: &AppState, account: Id<Account>, host: Id<Host>) -> ApiResult<String> {
    let mut conn = state.store.conn().await?;
    let agent = match credentials::get(&mut conn, account, host).await {
        Ok(agent) => agent,
        Err(spog_store::StoreError::NotFound) => return Err(offline()),
        Err(error) => return Err(error.into()),
    };
    let instance = agent
        .instance_id
        .filter(|instance| agent.connected && *instance != state.instance_id)
        .ok_or_else(offline)?;
    let seen_after = Timestamp::now().minus(FRESH_FOR);
    spog_store::cluster::url_of(&mut conn, &instance, seen_after)
        .await?
        .ok_or_else(offline)
}

/// Opens the host's terminal on the instance holding its agent, on behalf of the caller whose
/// credential is `credential`. A refusal there is the caller's answer here.
pub async fn open_upstream(
    state: &AppState,
    account: Id<Account>,
    host: Id<Host>,
    credential: &str,
    client_addr: Option<&str>,
    size: (u16, u16),
) -> Result<Upstream, Box<Response>> {
    let base = holder(state, account, host)
        .await
        .map_err(|error| Box::new(error.into_response()))?;
    let path = format!("/internal/v1/hosts/{host}/terminal");
    let query = format!("cols={}&rows={}", size.0, size.1);
    connect(state, &base, &path, &query, credential, client_addr)
        .await
        .map_err(|refused| match refused {
            Refused::Answer(answer) => answer,
            Refused::Unreachable => Box::new(offline().into_response()),
        })
}

/// Why a peer's WebSocket did not open.
pub enum Refused {
    /// It answered with this instead: the caller's answer.
    Answer(Box<Response>),
    /// It did not answer.
    Unreachable,
}

/// Opens the WebSocket at `path` on the instance reached at `base`, for the caller whose
/// credential is `credential` (checked again there), with a cluster token for `path`.
pub async fn connect(
    state: &AppState,
    base: &str,
    path: &str,
    query: &str,
    credential: &str,
    client_addr: Option<&str>,
) -> Result<Upstream, Refused> {
    let base = base.replacen("http://", "ws://", 1);
    let url = match query {
        "" => format!("{base}{path}"),
        query => format!("{base}{path}?{query}"),
    };
    let mut request = url
        .into_client_request()
        .map_err(|_| Refused::Unreachable)?;
    let headers = request.headers_mut();
    let value = |text: String| HeaderValue::from_str(&text).map_err(|_| Refused::Unreachable);
    headers.insert("authorization", value(format!("Bearer {credential}"))?);
    headers.insert(
        CLUSTER_TOKEN,
        value(token(&state.keys.cluster, path, Timestamp::now()))?,
    );
    if let Some(addr) = client_addr {
        headers.insert(CLIENT_ADDR, value(addr.to_owned())?);
    }
    match timeout(CONNECT_TIMEOUT, tokio_tungstenite::connect_async(request)).await {
        Ok(Ok((upstream, _))) => Ok(upstream),
        Ok(Err(tungstenite::Error::Http(response))) => {
            let status =
                StatusCode::from_u16(response.status().as_u16()).unwrap_or(StatusCode::BAD_GATEWAY);
            let body = response.into_body().unwrap_or_default();
            Err(Refused::Answer(Box::new(
                (
                    status,
                    [(axum::http::header::CONTENT_TYPE, "application/json")],
                    body,
                )
                    .into_response(),
            )))
        }
        Ok(Err(error)) => {
            tracing::warn!(%error, %path, "another instance of the cluster cannot be reached");
            Err(Refused::Unreachable)
        }
        Err(_) => Err(Refused::Unreachable),
    }
}

/// Whether the request to `path` came from another instance of this cluster.
pub fn forwarded(state: &AppState, headers: &HeaderMap, path: &str) -> bool {
    check(state, headers, path).is_ok()
}

/// Passes messages both ways until either side closes; the other is then closed alike.
pub async fn splice(mut browser: WebSocket, mut upstream: Upstream, lease: SocketLease) {
    loop {
        tokio::select! {
            from_browser = browser.recv() => match from_browser.and_then(Result::ok) {
                Some(message) => {
                    let closing = matches!(message, ws::Message::Close(_));
                    if upstream.send(to_upstream(message)).await.is_err() || closing {
                        break;
                    }
                }
                None => {
                    let _ = upstream.close(None).await;
                    break;
                }
            },
            from_upstream = upstream.next() => match from_upstream.and_then(Result::ok) {
                Some(message) => {
                    let Some(message) = to_browser(message) else { continue };
                    let closing = matches!(message, ws::Message::Close(_));
                    if browser.send(message).await.is_err() || closing {
                        break;
                    }
                }
                None => {
                    let _ = browser.send(ws::Message::Close(None)).await;
                    break;
                }
            },
        }
    }
    drop(lease);
}

fn to_upstream(message: ws::Message) -> Message {
    match message {
        ws::Message::Text(text) => Message::text(text.as_str()),
        ws::Message::Binary(bytes) => Message::Binary(bytes),
        ws::Message::Ping(bytes) => Message::Ping(bytes),
        ws::Message::Pong(bytes) => Message::Pong(bytes),
        ws::Message::Close(frame) => {
            Message::Close(frame.map(|f| tungstenite::protocol::CloseFrame {
                code: f.code.into(),
                reason: f.reason.as_str().into(),
            }))
        }
    }
}

fn to_browser(message: Message) -> Option<ws::Message> {
    Some(match message {
        Message::Text(text) => ws::Message::Text(text.as_str().into()),
        Message::Binary(bytes) => ws::Message::Binary(bytes),
        Message::Ping(bytes) => ws::Message::Ping(bytes),
        Message::Pong(bytes) => ws::Message::Pong(bytes),
        Message::Close(frame) => ws::Message::Close(frame.map(|f| ws::CloseFrame {
            code: f.code.into(),
            reason: f.reason.as_str().into(),
        })),
        Message::Frame(_) => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cluster_token_is_good_for_its_path_and_a_minute_under_its_key() {
        let now = Timestamp::now();
        let key = [3u8; 32];
        let token = token(&key, "/internal/v1/hosts/a/terminal", now);
        assert!(verify(&key, &token, "/internal/v1/hosts/a/terminal", now));
        assert!(!verify(&key, &token, "/internal/v1/hosts/b/terminal", now));
        assert!(!verify(
            &[4u8; 32],
            &token,
            "/internal/v1/hosts/a/terminal",
            now
        ));
        let later = Timestamp::from_micros(now.micros() + 61_000_000);
        assert!(!verify(
            &key,
            &token,
            "/internal/v1/hosts/a/terminal",
            later
        ));
        assert!(!verify(
            &key,
            "nonsense",
            "/internal/v1/hosts/a/terminal",
            now
        ));
    }
}

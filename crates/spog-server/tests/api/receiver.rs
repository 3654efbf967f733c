//! Real HTTP receivers on 127.0.0.1 for delivery tests: they record what arrives and answer
//! as told — a status, a hang, a redirect, a 100 MB body, or a connection reset.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use parking_lot::Mutex;
use tokio::io::AsyncReadExt;
use tokio::sync::Notify;

/// How the receiver answers.
#[derive(Clone, Debug)]
pub enum Answer {
    Status(u16),
    /// The status with this body (Slack answers `ok`).
    Text(u16, &'static str),
    /// Never answers.
    Hang,
    /// Hangs on the first request it gets, then answers 200.
    HangOnce,
    /// 302 to another path of the same receiver.
    Redirect,
    /// The status, with a body of 100 MB streamed behind it.
    Huge(u16),
}

/// One request as it arrived.
#[derive(Clone, Debug)]
pub struct Received {
    pub path: String,
    pub headers: HeaderMap,
    pub body: Bytes,
    pub at: Instant,
}

impl Received {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).expect("a JSON body")
    }
}

struct Inner {
    answer: Mutex<Answer>,
    received: Mutex<Vec<Received>>,
    arrived: Notify,
    hung_once: Mutex<bool>,
    /// Bytes of huge bodies the receiver managed to hand to the connection.
    streamed: AtomicU64,
}

#[derive(Clone)]
pub struct Receiver {
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    inner: Arc<Inner>,
}

impl Receiver {
    pub async fn start(answer: Answer) -> Self {
        let inner = Arc::new(Inner {
            answer: Mutex::new(answer),
            received: Mutex::new(Vec::new()),
            arrived: Notify::new(),
            hung_once: Mutex::new(false),
            streamed: AtomicU64::new(0),
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let state = Arc::clone(&inner);
        let app = axum::Router::new().fallback(
            move |uri: axum::http::Uri, headers: HeaderMap, body: Bytes| {
                let state = Arc::clone(&state);
                async move { respond(state, uri.path().to_owned(), headers, body).await }
            },
        );
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self { base, inner }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub fn answer(&self, answer: Answer) {
        *self.inner.answer.lock() = answer;
    }

    pub fn received(&self) -> Vec<Received> {
        self.inner.received.lock().clone()
    }

    pub fn streamed_bytes(&self) -> u64 {
        self.inner.streamed.load(Ordering::Relaxed)
    }

    /// Waits until at least `count` requests arrived; panics after `within`.
    pub async fn wait_for(&self, count: usize, within: Duration) -> Vec<Received> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let arrived = self.inner.arrived.notified();
            let received = self.received();
            if received.len() >= count {
                return received;
            }
            if tokio::time::timeout_at(deadline, arrived).await.is_err() {
                panic!(
                    "expected {count} requests within {within:?}, got {}",
                    self.received().len()
                );
            }
        }
    }
}

async fn respond(state: Arc<Inner>, path: String, headers: HeaderMap, body: Bytes) -> Response {
    state.received.lock().push(Received {
        path,
        headers,
        body,
        at: Instant::now(),
    });
    state.arrived.notify_waiters();
    let answer = state.answer.lock().clone();
    match answer {
        Answer::Status(code) => (
            StatusCode::from_u16(code).unwrap(),
            format!("answered {code}"),
        )
            .into_response(),
        Answer::Text(code, body) => (StatusCode::from_u16(code).unwrap(), body).into_response(),
        Answer::Hang => std::future::pending().await,
        Answer::HangOnce => {
            let first = !std::mem::replace(&mut *state.hung_once.lock(), true);
            if first {
                std::future::pending::<()>().await;
            }
            (StatusCode::OK, "ok").into_response()
        }
        Answer::Redirect => (StatusCode::FOUND, [("location", "/redirected")]).into_response(),
        Answer::Huge(code) => {
            let chunk = Bytes::from(vec![b'x'; 64 * 1024]);
            let stream = futures::stream::iter((0..1600).map(move |_| {
                state
                    .streamed
                    .fetch_add(chunk.len() as u64, Ordering::Relaxed);
                Ok::<_, std::io::Error>(chunk.clone())
            }));
            (
                StatusCode::from_u16(code).unwrap(),
                Body::from_stream(stream),
            )
                .into_response()
        }
    }
}

/// A receiver that accepts connections, reads the request and resets the connection.
pub async fn resetting() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let mut buffer = [0u8; 4096];
            let _ = socket.read(&mut buffer).await;
            let _ = socket.set_zero_linger();
            drop(socket);
        }
    });
    base
}

/// A black hole: accepts connections and reads nothing, answers nothing, closes nothing.
/// Returns its base URL and how many connections it has accepted.
pub async fn black_hole() -> (String, Arc<AtomicU64>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let accepted = Arc::new(AtomicU64::new(0));
    let counter = Arc::clone(&accepted);
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            counter.fetch_add(1, Ordering::Relaxed);
            held.push(socket);
        }
    });
    (base, accepted)
}

//! A real HTTP receiver on 127.0.0.1 for the webhook pages (as in the API tests): it records
//! what arrives and answers with the status it is told.

use std::sync::Arc;

use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use parking_lot::Mutex;

/// One request as it arrived.
#[derive(Clone, Debug)]
pub struct Received {
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Received {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

struct Inner {
    status: Mutex<u16>,
    received: Mutex<Vec<Received>>,
}

#[derive(Clone)]
pub struct Receiver {
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    inner: Arc<Inner>,
}

impl Receiver {
    /// A receiver answering `status` with the body `answered {status}`.
    pub async fn start(status: u16) -> Self {
        let inner = Arc::new(Inner {
            status: Mutex::new(status),
            received: Mutex::new(Vec::new()),
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let state = Arc::clone(&inner);
        let app = axum::Router::new().fallback(move |headers: HeaderMap, body: Bytes| {
            let state = Arc::clone(&state);
            async move {
                state.received.lock().push(Received { headers, body });
                let status = *state.status.lock();
                (
                    StatusCode::from_u16(status).unwrap(),
                    format!("answered {status}"),
                )
                    .into_response()
            }
        });
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self { base, inner }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub fn answer(&self, status: u16) {
        *self.inner.status.lock() = status;
    }

    pub fn received(&self) -> Vec<Received> {
        self.inner.received.lock().clone()
    }
}

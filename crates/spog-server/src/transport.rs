//! Serving connections (SPEC 9, 11.3): HTTP/1.1 through hyper with
//! - a header-read timeout, which hyper also applies to a keep-alive connection waiting for
//!   its next request, so a connection that sends nothing useful holds its slot (a task, a
//!   descriptor, a permit) for at most `header_read_timeout`;
//! - a cap on open connections: over it a new connection gets a 503 and is closed at once,
//!   rather than waiting in the kernel's backlog behind the ones that hold the slots;
//! - a write timeout: a response that cannot make progress because the client stopped
//!   reading drops its connection, whatever the handler streams.
//!
//! Only HTTP/1.1 is spoken: TLS and HTTP/2 end at the reverse proxy, and HTTP/2's own
//! prior-knowledge handshake has no header-read timeout to bound it.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use axum::extract::Request;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::ServiceExt;

/// Largest request head accepted (request line and headers together).
const MAX_HEADER_BYTES: usize = 64 * 1024;
const MAX_HEADERS: usize = 100;

/// What a connection may hold and for how long.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    pub header_read_timeout: Duration,
    pub max_connections: usize,
    pub write_timeout: Duration,
}

/// The answer to a connection over the cap, written without waiting.
const OVER_CAPACITY: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\nretry-after: 1\r\n\
    connection: close\r\ncontent-type: text/plain\r\ncontent-length: 28\r\n\r\n\
    too many connections; retry\n";

/// Serves `app` on `listener` until `shutdown`, then lets requests in flight finish.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: Limits,
    shutdown: CancellationToken,
) -> io::Result<()> {
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let connections = TaskTracker::new();
    let mut refused_logged_at: Option<std::time::Instant> = None;
    loop {
        let (stream, remote) = tokio::select! {
            _ = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    accept_failed(error).await;
                    continue;
                }
            },
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            // Best effort, never waiting: the client learns at once to come back.
            let _ = stream.try_write(OVER_CAPACITY);
            if refused_logged_at.is_none_or(|at| at.elapsed() >= Duration::from_secs(10)) {
                refused_logged_at = Some(std::time::Instant::now());
                tracing::warn!(
                    max_connections = limits.max_connections,
                    "refusing connections over the cap"
                );
            }
            continue;
        };
        let _ = stream.set_nodelay(true);
        connections.spawn(connection(
            stream,
            remote,
            slot,
            app.clone(),
            limits,
            shutdown.clone(),
        ));
    }
    drop(listener);
    connections.close();
    connections.wait().await;
    Ok(())
}

/// Out of descriptors (or another failure of `accept` itself): pause briefly, as a busy
/// server should, rather than spin; a connection that failed before it was accepted is
/// simply gone.
async fn accept_failed(error: io::Error) {
    use io::ErrorKind::*;
    if matches!(
        error.kind(),
        ConnectionAborted | ConnectionRefused | ConnectionReset | Interrupted
    ) {
        return;
    }
    tracing::warn!(%error, "accepting a connection failed; pausing accepts briefly");
    tokio::time::sleep(Duration::from_millis(50)).await;
}

async fn connection(
    stream: TcpStream,
    remote: SocketAddr,
    slot: OwnedSemaphorePermit,
    app: Router,
    limits: Limits,
    shutdown: CancellationToken,
) {
    let writes = Arc::new(WriteProgress::default());
    let io = TokioIo::new(Watched {
        stream,
        writes: writes.clone(),
        _slot: slot,
    });
    // The handlers read the peer's address as `ConnectInfo`, as axum's own server gives it.
    let service = app.map_request(move |mut request: Request<Incoming>| {
        request.extensions_mut().insert(ConnectInfo(remote));
        request
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .max_header_size(MAX_HEADER_BYTES)
        .max_headers(MAX_HEADERS);
    let conn = builder
        .serve_connection(io, TowerToHyperService::new(service))
        .with_upgrades();
    tokio::pin!(conn);
    let mut draining = false;
    loop {
        tokio::select! {
            result = conn.as_mut() => {
                if let Err(error) = result {
                    tracing::debug!(%remote, %error, "connection ended");
                }
                return;
            }
            _ = shutdown.cancelled(), if !draining => {
                draining = true;
                conn.as_mut().graceful_shutdown();
            }
            _ = writes.stalled_for(limits.write_timeout) => {
                tracing::info!(%remote, "dropping a client that stopped reading");
                return;
            }
        }
    }
}

/// Whether writes to a connection are making progress: the instant (milliseconds since the
/// process's base instant, plus one) since which a write has been waiting, or 0.
#[derive(Default)]
struct WriteProgress {
    blocked_since: AtomicU64,
    blocked: Notify,
}

fn base() -> std::time::Instant {
    static BASE: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
    *BASE.get_or_init(std::time::Instant::now)
}

fn now_mark() -> u64 {
    base().elapsed().as_millis() as u64 + 1
}

impl WriteProgress {
    fn waiting(&self) {
        if self
            .blocked_since
            .compare_exchange(0, now_mark(), Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
        {
            self.blocked.notify_one();
        }
    }

    fn wrote(&self) {
        self.blocked_since.store(0, Ordering::Release);
    }

    /// Resolves once one write has waited `limit` without any byte leaving.
    async fn stalled_for(&self, limit: Duration) {
        loop {
            match self.blocked_since.load(Ordering::Acquire) {
                0 => self.blocked.notified().await,
                since => {
                    let deadline = base() + Duration::from_millis(since - 1) + limit;
                    tokio::time::sleep_until(deadline.into()).await;
                    if self.blocked_since.load(Ordering::Acquire) == since {
                        return;
                    }
                }
            }
        }
    }
}

/// A client's stream that notes when writes wait, and holds the connection's slot for as
/// long as the stream lives (through a WebSocket upgrade too).
struct Watched {
    stream: TcpStream,
    writes: Arc<WriteProgress>,
    _slot: OwnedSemaphorePermit,
}

impl Watched {
    fn noted(&self, poll: Poll<io::Result<usize>>) -> Poll<io::Result<usize>> {
        match &poll {
            Poll::Pending => self.writes.waiting(),
            Poll::Ready(Ok(n)) if *n > 0 => self.writes.wrote(),
            Poll::Ready(_) => {}
        }
        poll
    }
}

impl AsyncRead for Watched {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for Watched {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let poll = Pin::new(&mut self.stream).poll_write(cx, buf);
        self.noted(poll)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let poll = Pin::new(&mut self.stream).poll_write_vectored(cx, bufs);
        self.noted(poll)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

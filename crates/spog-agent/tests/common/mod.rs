//! A test peer for the real `spog-agent` binary: a small WebSocket hub speaking the agent
//! protocol (the real hub is exercised by the hub's own tests), a one-shot HTTP responder for
//! enrollment, and an agent set up in a temporary state directory.

#![allow(dead_code)] // Each test binary uses its own part.
#![allow(clippy::result_large_err)] // tungstenite's handshake callback decides its error type.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::process::{Child, Command};
use tokio::time::timeout;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::http::{HeaderValue, StatusCode, header};
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

pub const CREDENTIAL: &str = "spog_agent_test_credential";
pub const HOST_ID: &str = "0190c0de-0000-7000-8000-000000000001";
/// Long enough for a debug build to start and connect on a busy machine.
pub const WAIT: Duration = Duration::from_secs(15);

/// A hub that accepts agent sockets one at a time.
pub struct TestHub {
    listener: Option<TcpListener>,
    pub addr: SocketAddr,
}

impl TestHub {
    pub async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        Self {
            listener: Some(listener),
            addr,
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stops listening: connection attempts are refused until `listen_again`.
    pub fn go_away(&mut self) {
        self.listener = None;
    }

    pub async fn listen_again(&mut self) {
        self.listener = Some(TcpListener::bind(self.addr).await.unwrap());
    }

    async fn accept_tcp(&self, wait: Duration) -> TcpStream {
        let listener = self.listener.as_ref().expect("the hub is listening");
        let (stream, _) = timeout(wait, listener.accept())
            .await
            .expect("the agent connects")
            .unwrap();
        stream
    }

    /// Accepts the next agent socket, choosing `spog-agent.v1`.
    pub async fn accept(&self) -> Peer {
        self.accept_within(WAIT).await
    }

    pub async fn accept_within(&self, wait: Duration) -> Peer {
        let stream = self.accept_tcp(wait).await;
        let mut seen = (String::new(), String::new(), String::new());
        let callback = |request: &Request, mut response: Response| {
            let header = |name| {
                request
                    .headers()
                    .get(name)
                    .and_then(|v: &HeaderValue| v.to_str().ok())
                    .unwrap_or_default()
                    .to_owned()
            };
            seen = (
                request.uri().path().to_owned(),
                header(header::AUTHORIZATION),
                header(header::SEC_WEBSOCKET_PROTOCOL),
            );
            response.headers_mut().insert(
                header::SEC_WEBSOCKET_PROTOCOL,
                HeaderValue::from_static("spog-agent.v1"),
            );
            Ok(response)
        };
        let ws = timeout(WAIT, tokio_tungstenite::accept_hdr_async(stream, callback))
            .await
            .expect("the upgrade completes")
            .expect("a WebSocket upgrade");
        Peer {
            ws,
            path: seen.0,
            authorization: seen.1,
            protocols: seen.2,
        }
    }

    /// Answers the next upgrade with `status` and an error body, as the hub does.
    pub async fn refuse(&self, status: u16) {
        let stream = self.accept_tcp(WAIT).await;
        let callback = |_: &Request, _: Response| -> Result<Response, ErrorResponse> {
            let body = format!(r#"{{"error":{{"code":"refused","message":"status {status}"}}}}"#);
            Err(tokio_tungstenite::tungstenite::http::Response::builder()
                .status(StatusCode::from_u16(status).unwrap())
                .body(Some(body))
                .unwrap())
        };
        let _ = timeout(WAIT, tokio_tungstenite::accept_hdr_async(stream, callback)).await;
    }
}

/// The hub's side of one agent socket.
pub struct Peer {
    pub ws: WebSocketStream<TcpStream>,
    pub path: String,
    pub authorization: String,
    pub protocols: String,
}

impl Peer {
    /// The next text message as JSON; pings and pongs are skipped.
    pub async fn next_json(&mut self) -> Value {
        self.next_json_within(WAIT)
            .await
            .expect("a message from the agent")
    }

    /// The next text message, or `None` if none came within `wait` or the socket closed.
    pub async fn next_json_within(&mut self, wait: Duration) -> Option<Value> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let message = tokio::time::timeout_at(deadline, self.ws.next())
                .await
                .ok()??;
            match message.ok()? {
                Message::Text(text) => return Some(serde_json::from_str(&text).unwrap()),
                Message::Close(_) => return None,
                _ => continue,
            }
        }
    }

    /// The next `metrics` message, skipping others.
    pub async fn next_metrics(&mut self) -> Value {
        loop {
            let message = self.next_json().await;
            if message["type"] == "metrics" {
                return message;
            }
        }
    }

    /// The close frame the agent sends, if it sends one within `WAIT`.
    pub async fn close_frame(&mut self) -> Option<CloseFrame> {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            match tokio::time::timeout_at(deadline, self.ws.next())
                .await
                .ok()??
            {
                Ok(Message::Close(frame)) => return frame,
                Ok(_) => continue,
                Err(_) => return None,
            }
        }
    }

    /// The next text or binary message, or `None` if none came within `wait` or the socket
    /// closed; pings and pongs are skipped.
    pub async fn next_from_agent_within(&mut self, wait: Duration) -> Option<FromAgent> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let message = tokio::time::timeout_at(deadline, self.ws.next())
                .await
                .ok()??;
            match message.ok()? {
                Message::Text(text) => {
                    return Some(FromAgent::Json(serde_json::from_str(&text).unwrap()));
                }
                Message::Binary(bytes) => {
                    return Some(FromAgent::Frame(OwnedFrame::decode(&bytes)));
                }
                Message::Close(_) => return None,
                _ => continue,
            }
        }
    }

    /// A binary frame as SPEC 12.3 lays it out: channel, kind, elapsed µs, bytes.
    pub async fn send_frame(&mut self, channel: u32, kind: u8, data: &[u8]) {
        let mut message = Vec::with_capacity(13 + data.len());
        message.extend_from_slice(&channel.to_be_bytes());
        message.push(kind);
        message.extend_from_slice(&0u64.to_be_bytes());
        message.extend_from_slice(data);
        self.ws.send(Message::binary(message)).await.unwrap();
    }

    pub async fn send_json(&mut self, value: Value) {
        self.ws
            .send(Message::text(value.to_string()))
            .await
            .unwrap();
    }

    /// Reads `hello` and answers `welcome`; returns the hello.
    pub async fn handshake(&mut self) -> Value {
        let hello = self.next_json().await;
        assert_eq!(hello["type"], "hello", "{hello}");
        self.welcome().await;
        hello
    }

    pub async fn welcome(&mut self) {
        self.send_json(serde_json::json!({
            "type": "welcome", "host_id": HOST_ID, "instance_id": "test-instance",
            "max_message_bytes": 1_048_576, "server_time": "2026-11-25T10:00:00.000000Z",
        }))
        .await;
    }

    pub async fn close(&mut self, code: u16, reason: &str) {
        let frame = CloseFrame {
            code: CloseCode::from(code),
            reason: reason.into(),
        };
        let _ = self.ws.close(Some(frame)).await;
    }
}

/// What the agent sends.
#[derive(Debug)]
pub enum FromAgent {
    Json(Value),
    Frame(OwnedFrame),
}

/// A binary frame, read field by field as SPEC 12.3 lays it out (not with the agent's code).
#[derive(Debug)]
pub struct OwnedFrame {
    pub channel: u32,
    pub kind: u8,
    pub elapsed_us: u64,
    pub data: Vec<u8>,
}

impl OwnedFrame {
    fn decode(message: &[u8]) -> Self {
        assert!(message.len() > 13, "a frame of {} bytes", message.len());
        Self {
            channel: u32::from_be_bytes(message[..4].try_into().unwrap()),
            kind: message[4],
            elapsed_us: u64::from_be_bytes(message[5..13].try_into().unwrap()),
            data: message[13..].to_vec(),
        }
    }
}

/// An enrolled agent in a temporary state directory.
pub struct TestAgent {
    pub dir: tempfile::TempDir,
    pub config: PathBuf,
}

impl TestAgent {
    /// Enrolled with `server`, with `extra` TOML lines in its configuration.
    pub fn enrolled(server: &str, extra: &str) -> Self {
        let agent = Self::unenrolled(extra);
        let enrollment = serde_json::json!({
            "server": server, "host_id": HOST_ID, "credential": CREDENTIAL,
        });
        let state = agent.state_dir();
        std::fs::create_dir_all(&state).unwrap();
        std::fs::write(state.join("agent.json"), enrollment.to_string()).unwrap();
        agent
    }

    pub fn unenrolled(extra: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("agent.toml");
        let state = dir.path().join("state");
        std::fs::write(
            &config,
            format!(
                "state_dir = \"{}\"\nsocket_path = \"{}\"\n{extra}\n",
                state.display(),
                dir.path().join("agent.sock").display()
            ),
        )
        .unwrap();
        Self { dir, config }
    }

    pub fn state_dir(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("agent.log")
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// `spog-agent run --config …`, its stderr in `log_path`; killed when dropped.
    pub fn spawn_run(&self) -> Child {
        let log = std::fs::File::create(self.log_path()).unwrap();
        Command::new(binary())
            .args(["run", "--config"])
            .arg(&self.config)
            .env("RUST_LOG", "debug")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .unwrap()
    }

    pub fn status_json(&self) -> Value {
        let text = std::fs::read_to_string(self.state_dir().join("status.json")).unwrap();
        serde_json::from_str(&text).unwrap()
    }
}

pub fn binary() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_spog-agent"))
}

/// Runs the binary to completion: (exit code, stdout, stderr).
pub async fn run_binary(args: &[&str]) -> (i32, String, String) {
    let output = timeout(
        WAIT,
        Command::new(binary())
            .args(args)
            .stdin(Stdio::null())
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("the command finishes")
    .unwrap();
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

pub async fn exit_code(child: &mut Child) -> i32 {
    let status = timeout(WAIT, child.wait())
        .await
        .expect("the agent exits")
        .unwrap();
    status.code().unwrap_or(-1)
}

/// A one-shot HTTP server: answers the first request with `status` and `body`, and hands back
/// the request (request line, body).
pub async fn answer_once(
    status: u16,
    body: &'static str,
) -> (SocketAddr, tokio::task::JoinHandle<(String, String)>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let handle = tokio::spawn(async move {
        let (mut stream, _) = listener.accept().await.unwrap();
        let mut received = Vec::new();
        let mut chunk = [0u8; 4096];
        let (head_len, content_length) = loop {
            let n = stream.read(&mut chunk).await.unwrap();
            assert!(n > 0, "the request ended early");
            received.extend_from_slice(&chunk[..n]);
            if let Some(end) = received.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&received[..end]).to_lowercase();
                let length = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length:"))
                    .map(|v| v.trim().parse::<usize>().unwrap())
                    .unwrap_or(0);
                break (end + 4, length);
            }
        };
        while received.len() < head_len + content_length {
            let n = stream.read(&mut chunk).await.unwrap();
            assert!(n > 0, "the body ended early");
            received.extend_from_slice(&chunk[..n]);
        }
        let head = String::from_utf8_lossy(&received[..head_len]).into_owned();
        let request_body = String::from_utf8_lossy(&received[head_len..]).into_owned();
        let response = format!(
            "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\
             connection: close\r\n\r\n{body}",
            body.len()
        );
        stream.write_all(response.as_bytes()).await.unwrap();
        let _ = stream.shutdown().await;
        (
            head.lines().next().unwrap_or_default().to_owned(),
            request_body,
        )
    });
    (addr, handle)
}

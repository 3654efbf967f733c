//! Issue 12 item 5: `.cast` downloads by clients that stop reading (a tiny receive buffer,
//! then nothing) must not hold what logins and exports need. The downloads are spread over a
//! few callers (API tokens), so a per-caller cap alone does not end the attack.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use spog_server::testing::Client;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio::task::JoinSet;

use super::{Answer, Figure, Options, Tally, figure, fixture, fresh_client, start, text, timed};

const ATTACK: &str = "downloads";
const CALLERS: usize = 6;
const PROBE_TIMEOUT: Duration = Duration::from_secs(20);
const ROUNDS: usize = 3;

pub async fn run(postgres: Option<String>, options: Options) -> anyhow::Result<Vec<Figure>> {
    let target = start(postgres.as_deref(), &options, &[]).await?;
    let admin = target.admin().await;
    let recording = recording(&admin, options.cast_mb).await?;
    let mut tokens = Vec::new();
    for n in 0..CALLERS {
        let (status, token) = admin
            .post(
                "/api-tokens",
                json!({"name": format!("player {n}"), "actor_type": "system",
                       "permissions": ["session_recordings.view"]}),
            )
            .await;
        anyhow::ensure!(status.is_success(), "creating a token: {status} {token}");
        tokens.push(text(&token["token"], "a token")?);
    }
    let path = format!("/api/v1/terminal/recordings/{recording}/cast");
    let mut opening = JoinSet::new();
    for n in 0..options.downloads {
        let (addr, path, token) = (target.addr(), path.clone(), tokens[n % CALLERS].clone());
        opening.spawn(stalled_download(addr, path, token));
    }
    let (mut stalled, mut answers) = (Vec::new(), Tally::default());
    while let Some(opened) = opening.join_next().await {
        match opened {
            Ok(Ok((stream, status))) => {
                answers.add(Some(status));
                stalled.push(stream);
            }
            _ => answers.add(None),
        }
    }
    anyhow::ensure!(
        answers.count(200) > 0,
        "no download was served ({answers}): there was nothing to stall"
    );
    // The server fills what it can buffer and then waits on the clients.
    tokio::time::sleep(Duration::from_secs(2)).await;
    println!(
        "  {} downloads of a {} MB recording by {CALLERS} callers that never read: {answers}; the server runs {} threads and holds {} fds",
        options.downloads,
        options.cast_mb,
        threads(target.server().pid()),
        target.server().open_fds()
    );
    let http = fresh_client(PROBE_TIMEOUT);
    let (mut logins, mut exports) = (Vec::new(), Vec::new());
    for _ in 0..ROUNDS {
        let (login, export) = tokio::join!(
            timed(
                http.post(admin.url("/auth/login"))
                    .json(&json!({"email": spog_server::testing::ADMIN_EMAIL,
                                  "password": spog_server::testing::ADMIN_PASSWORD}))
            ),
            timed(
                http.get(admin.url("/audit-logs/export?format=csv"))
                    .bearer_auth(admin.token.as_deref().unwrap_or_default())
            )
        );
        logins.push(login);
        exports.push(export);
        if login.status.is_none() || export.status.is_none() {
            break;
        }
    }
    drop(stalled);
    let within = Duration::from_secs(2);
    let slowest = |answers: &[Answer]| -> (String, bool) {
        let worst = answers.iter().max_by_key(|a| (a.status.is_none(), a.took));
        let shown: Vec<String> = answers.iter().map(Answer::to_string).collect();
        (
            format!(
                "worst {} of {} tries ({})",
                worst.map_or(String::new(), Answer::to_string),
                answers.len(),
                shown.join(", ")
            ),
            answers.iter().all(|a| a.ok(within)),
        )
    };
    let (login, login_ok) = slowest(&logins);
    let (export, export_ok) = slowest(&exports);
    let during = format!("during {} stalled downloads", options.downloads);
    Ok(vec![
        figure(
            ATTACK,
            format!("a login {during}"),
            login,
            "≤ 2 s",
            login_ok,
        ),
        figure(
            ATTACK,
            format!("a CSV export of the audit log {during}"),
            export,
            "≤ 2 s",
            export_ok,
        ),
    ])
}

/// Records a terminal session of about `mb` MB through the ingest API and returns the id of
/// its recording.
async fn recording(admin: &Client, mb: usize) -> anyhow::Result<String> {
    let fixture = fixture(admin).await?;
    let gateway = admin
        .token_client("agent", &["session_recordings.write"])
        .await;
    let (status, session) = gateway
        .post(
            "/terminal/sessions",
            json!({"host_id": fixture.host, "user_id": fixture.user, "shell": "/bin/bash",
                   "width": 200, "height": 50}),
        )
        .await;
    anyhow::ensure!(
        status.is_success(),
        "starting a session: {status} {session}"
    );
    let session = text(&session["id"], "a session id")?;
    let line: String = (0..1022)
        .map(|i| char::from(b'a' + (i % 26) as u8))
        .collect();
    let output = format!("{line}\r\n");
    for batch in 0..mb {
        // 1 MB a request: 1,024 events of 1 KB.
        let events: Vec<Value> = (0..1024)
            .map(|i| json!([(batch * 1024 + i) as f64 * 0.001, "o", output]))
            .collect();
        let (status, body) = gateway
            .post(
                &format!("/terminal/sessions/{session}/events"),
                Value::Array(events),
            )
            .await;
        anyhow::ensure!(status.is_success(), "appending events: {status} {body}");
    }
    let (status, recording) = gateway
        .post(&format!("/terminal/sessions/{session}/end"), json!({}))
        .await;
    anyhow::ensure!(
        status.is_success(),
        "ending the session: {status} {recording}"
    );
    text(&recording["id"], "a recording id")
}

/// A download whose client reads the status line and nothing more, through a 4 KB receive
/// buffer.
async fn stalled_download(
    addr: SocketAddr,
    path: String,
    token: String,
) -> anyhow::Result<(TcpStream, u16)> {
    let socket = TcpSocket::new_v4()?;
    socket.set_recv_buffer_size(4096)?;
    let mut stream = tokio::time::timeout(Duration::from_secs(10), socket.connect(addr)).await??;
    let request =
        format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\n\r\n");
    stream.write_all(request.as_bytes()).await?;
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    let started = Instant::now();
    while !head.windows(2).any(|w| w == b"\r\n") {
        let left = Duration::from_secs(10).saturating_sub(started.elapsed());
        let read = tokio::time::timeout(left, stream.read(&mut buf)).await??;
        anyhow::ensure!(read > 0, "the server closed the connection");
        head.extend_from_slice(&buf[..read]);
    }
    let status = String::from_utf8_lossy(&head)
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| anyhow::anyhow!("not an HTTP answer"))?;
    Ok((stream, status))
}

/// Threads of the process `pid` (the blocking pool shows here).
fn threads(pid: u32) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|l| l.strip_prefix("Threads:").map(|n| n.trim().to_owned()))
        })
        .unwrap_or_else(|| "?".to_owned())
}

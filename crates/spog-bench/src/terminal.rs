//! Issue 15's web-terminal targets (SPEC 13.1, 13.4) on release `spog serve` processes with
//! the real `spog-agent` (`[terminal]` as root, `/bin/sh`, on this machine):
//! - keystroke echo round trip, browser socket → hub → agent → PTY and back: p50 ≤ 3 ms,
//!   p99 ≤ 15 ms; baseline: the same single-byte echo on a PTY of this process, no spog;
//! - the same echo with `--terminals` others open printing 1 KiB/s each (p99 ≤ 15 ms), and
//!   while they print flat out (no target: how much the load costs a keystroke);
//! - flat-out output of those terminals for `--seconds`: ≥ 50 MB/s recorded and relayed in
//!   total, every session's recording holding exactly the bytes its browser received, server
//!   RSS growth ≤ 300 MB;
//! - with `--postgres`, a second instance on the same database: the browser on B, the agent on
//!   A, echo p99 ≤ 30 ms.

use std::collections::HashMap;
use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures::stream::{SplitSink, SplitStream};
use futures::{SinkExt, StreamExt};
use reqwest::StatusCode;
use serde_json::{Value, json};
use spog_server::testing::Client;
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

use crate::harness::{self, ms, percentile, verdict};
use crate::process::{Launch, ServerProcess, agent_binary, set_soft_fd_limit};

#[derive(clap::Args)]
pub struct Options {
    /// Also run on PostgreSQL (a fresh database on this server), with the two-instance echo.
    #[arg(long)]
    postgres: Option<String>,
    /// Terminals printing beside the one whose echo is timed.
    #[arg(long, default_value_t = 200)]
    terminals: usize,
    /// Seconds the terminals print flat out.
    #[arg(long, default_value_t = 20)]
    seconds: u64,
    /// Keystrokes timed per echo measurement.
    #[arg(long, default_value_t = 500)]
    keystrokes: usize,
}

/// The longest any one step may take (a reply, an open, a drain) before the bench gives up.
const WAIT: Duration = Duration::from_secs(30);
/// Output is drained once nothing more came for this long.
const QUIET: Duration = Duration::from_millis(150);
/// Keystrokes typed on one line before `^U` clears it: the canonical line buffer holds 4095.
const KILL_LINE_EVERY: usize = 64;
const KILL_LINE: &[u8] = b"\x15";
const INTERRUPT: &[u8] = b"\x03";
/// No prompt, so that the only output of a timed terminal is the echo of what is typed.
const QUIET_PROMPT: &[u8] = b"PS1=''; stty echo\r";
/// 1 KiB a second of ASCII (no newline: the bytes reach the browser unchanged).
const TRICKLE: &[u8] = b"while :; do head -c 1024 /dev/zero | tr '\\0' x; sleep 1; done\r";
const FLAT_OUT: &[u8] = b"cat /dev/zero | tr '\\0' x\r";
const EXIT: &[u8] = b"exit\r";

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

pub async fn run(options: Options) -> anyhow::Result<()> {
    set_soft_fd_limit(u64::MAX)?;
    println!(
        "command: {}",
        std::env::args().collect::<Vec<_>>().join(" ")
    );
    let keystrokes = options.keystrokes;
    let mut direct = tokio::task::spawn_blocking(move || direct_pty_echo(keystrokes)).await??;
    let echo = Echo::of(&mut direct);
    println!("baseline, a PTY of this process: {}", echo.figures());
    let (terminals, seconds) = (options.terminals, options.seconds);
    let flat_out =
        tokio::task::spawn_blocking(move || direct_pty_flat_out(terminals, seconds)).await??;
    println!("baseline, {terminals} PTYs of this process printing flat out: {flat_out:.1} MB/s");
    let baseline = Baseline { echo, flat_out };
    let mut outcomes = vec![backend(None, &options, &baseline).await?];
    if let Some(url) = options.postgres.as_deref() {
        outcomes.push(backend(Some(url), &options, &baseline).await?);
    }
    println!(
        "command: {}",
        std::env::args().collect::<Vec<_>>().join(" ")
    );
    for outcome in &outcomes {
        println!("{}", outcome.summary);
    }
    let lossy: usize = outcomes.iter().map(|o| o.lossy_sessions).sum();
    anyhow::ensure!(
        lossy == 0,
        "{lossy} sessions' recordings do not hold the bytes their browsers received"
    );
    Ok(())
}

/// The same measurements on PTYs of this process, without spog.
struct Baseline {
    echo: Echo,
    /// MB/s read from `--terminals` PTYs printing flat out.
    flat_out: f64,
}

/// One backend's figures as printed, and whether bytes went missing.
struct Outcome {
    summary: String,
    lossy_sessions: usize,
}

/// Echo round trips: their percentiles and how many were timed.
struct Echo {
    p50: Duration,
    p99: Duration,
    count: usize,
}

impl Echo {
    fn of(samples: &mut [Duration]) -> Self {
        Self {
            p50: percentile(samples, 50.0),
            p99: percentile(samples, 99.0),
            count: samples.len(),
        }
    }

    fn figures(&self) -> String {
        format!(
            "p50 {}, p99 {} over {} keystrokes",
            ms(self.p50),
            ms(self.p99),
            self.count
        )
    }
}

/// Every figure on one backend; its summary.
async fn backend(
    postgres: Option<&str>,
    options: &Options,
    baseline: &Baseline,
) -> anyhow::Result<Outcome> {
    let backend = harness::backend_name(postgres);
    println!("== terminals on {backend} ==");
    let database = match postgres {
        Some(url) => Some(harness::database(Some(url)).await),
        None => None,
    };
    let database_url = database.as_ref().map(|d| d.url.as_str());
    let scratch =
        std::env::temp_dir().join(format!("spog-bench-terminal-{}", uuid::Uuid::now_v7()));
    let (launch, raised) = server_launch(scratch.join("a"), database_url, options.terminals);
    let server = ServerProcess::launch(launch).await?;
    let admin = server.admin().await;
    let agent = AgentProcess::start(&server, &admin, &scratch.join("agent")).await?;
    let host = agent.host_id.clone();
    let (echo, alone) = timed_terminal(&admin, &host, options.keystrokes).await?;
    println!("echo, one terminal: {}", echo.figures());
    let mut ended = vec![alone];

    let relayed = match database_url {
        Some(url) => {
            let (echo, relayed_end) = relayed_echo(url, &scratch.join("b"), &host, options).await?;
            ended.push(relayed_end);
            println!("echo through a second instance: {}", echo.figures());
            Some(echo)
        }
        None => None,
    };

    let load = loaded(&server, &admin, &host, options, &mut ended).await?;
    let recorded = recorded_bytes(&admin, &host, &ended).await?;
    let check = compare(&ended, &recorded);
    drop(agent);
    drop(server);
    if std::env::var_os("SPOG_BENCH_SERVER_LOG").is_none() {
        let _ = std::fs::remove_dir_all(&scratch);
    }
    let figures = Figures {
        backend,
        raised,
        echo,
        load,
        check,
        relayed,
    };
    Ok(Outcome {
        summary: summary(&figures, options, baseline).join("\n"),
        lossy_sessions: figures.check.lossy,
    })
}

/// The figures of the phases with other terminals printing.
struct Load {
    trickle_echo: Echo,
    flat_out_echo: Echo,
    flat_out_bytes: u64,
    flat_out_took: Duration,
    rss_before: u64,
    rss_peak: u64,
    /// From typing `^C` into a terminal printing flat out to its echo reaching the browser.
    interrupt_p99: Duration,
}

/// Opens `--terminals` printing 1 KiB/s and times the echo, then has them print flat out for
/// `--seconds` while timing it again, and ends every session; their ends go to `ended`.
async fn loaded(
    server: &ServerProcess,
    admin: &Client,
    host: &str,
    options: &Options,
    ended: &mut Vec<Ended>,
) -> anyhow::Result<Load> {
    let rss_before = server.rss_bytes();
    let rss = RssSampler::start(server.pid());
    let mut probe = Terminal::open(admin, host).await?;
    probe.quiet_prompt().await?;
    let mut printers = Printers::open(admin, host, options.terminals).await?;
    let trickle_echo = trickling(&mut probe, &mut printers, options).await?;
    let flat_out = flat_out(&mut probe, &mut printers, options).await?;
    let (printed, interrupt_p99) = end_printing(printers).await?;
    ended.extend(printed);
    ended.push(probe.exit().await?);
    Ok(Load {
        trickle_echo,
        flat_out_echo: flat_out.echo,
        flat_out_bytes: flat_out.bytes,
        flat_out_took: flat_out.took,
        rss_before,
        rss_peak: rss.stop().await.max(rss_before),
        interrupt_p99,
    })
}

/// The printers print 1 KiB a second each while the probe's echo is timed.
async fn trickling(
    probe: &mut Terminal,
    printers: &mut Printers,
    options: &Options,
) -> anyhow::Result<Echo> {
    printers.type_all(TRICKLE).await?;
    // Every loop has printed once and the 1 KiB a second is steady.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let echo = probe.echo(options.keystrokes, None).await?;
    println!(
        "echo beside {} terminals printing 1 KiB/s: {}",
        options.terminals,
        echo.figures()
    );
    Ok(echo)
}

/// What the printers delivered in the flat-out window, and the probe's echo meanwhile.
struct FlatOut {
    echo: Echo,
    bytes: u64,
    took: Duration,
}

/// The printers print as fast as they can for `--seconds` (after a second to get going) while
/// the probe's echo is timed.
async fn flat_out(
    probe: &mut Terminal,
    printers: &mut Printers,
    options: &Options,
) -> anyhow::Result<FlatOut> {
    printers.type_all(INTERRUPT).await?;
    tokio::time::sleep(Duration::from_millis(300)).await;
    printers.type_all(FLAT_OUT).await?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let window = Duration::from_secs(options.seconds);
    let before = printers.received.load(Ordering::Relaxed);
    let started = Instant::now();
    let echo = probe
        .echo(options.keystrokes, Some(started + window))
        .await?;
    tokio::time::sleep(window.saturating_sub(started.elapsed())).await;
    let flat_out = FlatOut {
        echo,
        bytes: printers.received.load(Ordering::Relaxed) - before,
        took: started.elapsed(),
    };
    println!(
        "flat out: {:.1} MB in {:.1} s; echo meanwhile: {}",
        flat_out.bytes as f64 / 1e6,
        flat_out.took.as_secs_f64(),
        flat_out.echo.figures()
    );
    Ok(flat_out)
}

/// `^C` and `exit` into every printer, each read to its end: how they ended, and the p99 from
/// `^C` typed to its echo received (behind the output already on its way).
async fn end_printing(mut printers: Printers) -> anyhow::Result<(Vec<Ended>, Duration)> {
    let ending = Instant::now();
    let total = printers.received.clone();
    let before = total.load(Ordering::Relaxed);
    let interrupted = printers.type_all(INTERRUPT).await?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    printers.type_all(EXIT).await?;
    let printed = printers.ended().await?;
    let mut interrupt = interrupt_latencies(&interrupted, &printed);
    let p99 = percentile(&mut interrupt, 99.0);
    println!(
        "ended {} terminals in {:.1} s, {:.1} MB printed meanwhile; ^C echoed back after p50 {}, \
         p99 {}",
        printed.len(),
        ending.elapsed().as_secs_f64(),
        (total.load(Ordering::Relaxed) - before) as f64 / 1e6,
        ms(percentile(&mut interrupt, 50.0)),
        ms(p99)
    );
    Ok((printed, p99))
}

/// For each terminal, from `^C` sent (`sent`, in the terminals' order) to its echo received
/// (a terminal whose echo never came counts as `WAIT`).
fn interrupt_latencies(sent: &[Instant], ended: &[Ended]) -> Vec<Duration> {
    sent.iter()
        .zip(ended)
        .map(|(sent, ended)| {
            ended
                .interrupts_seen
                .iter()
                .find(|seen| *seen >= sent)
                .map_or(WAIT, |seen| seen.duration_since(*sent))
        })
        .collect()
}

/// The server's settings: caps that would refuse `terminals` sockets of one admin raised; and
/// what was raised, to print.
fn server_launch(
    data_dir: PathBuf,
    database_url: Option<&str>,
    terminals: usize,
) -> (Launch<'_>, String) {
    // The load terminals, the timed one, and room for the phases' own.
    let enough = (terminals + 64).max(1_000).to_string();
    let mut launch = Launch::new(data_dir, database_url);
    launch.soft_fd_limit = Some(u64::MAX);
    for key in [
        "websocket_max_per_credential",
        "websocket_max_per_account",
        "max_active_recordings_per_account",
    ] {
        launch.settings.push((key.to_owned(), enough.clone()));
    }
    let raised = launch
        .settings
        .iter()
        .map(|(key, value)| format!("{key} = {value}"))
        .collect::<Vec<_>>()
        .join(", ");
    (launch, raised)
}

/// A second instance on the same database (the same server key, its own port and data
/// directory): the echo of a terminal opened on it while the agent is connected to the first,
/// and how its session ended.
async fn relayed_echo(
    database_url: &str,
    data_dir: &Path,
    host: &str,
    options: &Options,
) -> anyhow::Result<(Echo, Ended)> {
    let (launch, _) = server_launch(data_dir.to_owned(), Some(database_url), options.terminals);
    let second = ServerProcess::launch(launch).await?;
    let admin = second.admin().await;
    // Recorded on A; what B's browser received is compared with it like any other session.
    timed_terminal(&admin, host, options.keystrokes).await
}

/// A terminal of its own whose echo is timed `keystrokes` times, then ended: the echo and how
/// the session ended.
async fn timed_terminal(
    client: &Client,
    host: &str,
    keystrokes: usize,
) -> anyhow::Result<(Echo, Ended)> {
    let mut terminal = Terminal::open(client, host).await?;
    terminal.quiet_prompt().await?;
    let echo = terminal.echo(keystrokes, None).await?;
    Ok((echo, terminal.exit().await?))
}

// ---------------------------------------------------------------------------------------
// The agent.

/// A real `spog-agent run` with console terminals enabled, enrolled as one host; killed when
/// dropped.
struct AgentProcess {
    child: Child,
    dir: PathBuf,
    host_id: String,
}

impl Drop for AgentProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl AgentProcess {
    /// Enrolls an agent in `dir` with a fresh token, runs it and waits until its host is
    /// connected.
    async fn start(server: &ServerProcess, admin: &Client, dir: &Path) -> anyhow::Result<Self> {
        std::fs::create_dir_all(dir)?;
        let config = dir.join("agent.toml");
        std::fs::write(
            &config,
            format!(
                "state_dir = \"{}\"\nsocket_path = \"{}\"\nreconnect_max_backoff = \"1s\"\n\
                 [terminal]\nenabled = true\nuser = \"root\"\nshell = \"/bin/sh\"\n\
                 max_sessions = 4096\n",
                dir.join("state").display(),
                dir.join("agent.sock").display()
            ),
        )?;
        let (status, token) = admin
            .post(
                "/enrollment-tokens",
                json!({"description": "bench terminal"}),
            )
            .await;
        anyhow::ensure!(status == StatusCode::CREATED, "token: {status} {token}");
        let token = token["token"].as_str().unwrap_or_default().to_owned();
        enroll(&server.base, &token, &config).await?;
        let enrollment: Value =
            serde_json::from_str(&std::fs::read_to_string(dir.join("state/agent.json"))?)?;
        let host_id = enrollment["host_id"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let child = Command::new(agent_binary())
            .args(["run", "--config"])
            .arg(&config)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(File::create(dir.join("agent.log"))?)
            .spawn()?;
        let agent = Self {
            child,
            dir: dir.to_owned(),
            host_id,
        };
        agent.connected(admin).await?;
        Ok(agent)
    }

    async fn connected(&self, admin: &Client) -> anyhow::Result<()> {
        let started = Instant::now();
        loop {
            let (_, host) = admin.get(&format!("/hosts/{}", self.host_id)).await;
            if host["agent_connected"] == true {
                return Ok(());
            }
            anyhow::ensure!(
                started.elapsed() < WAIT,
                "the agent did not connect within {} s: {}",
                WAIT.as_secs(),
                std::fs::read_to_string(self.dir.join("agent.log")).unwrap_or_default()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// `spog-agent enroll --server URL --token T --hostname H --config FILE`.
async fn enroll(server: &str, token: &str, config: &Path) -> anyhow::Result<()> {
    let mut command = Command::new(agent_binary());
    command
        .args(["enroll", "--server", server, "--token", token])
        .args(["--hostname", "bench-terminal", "--config"])
        .arg(config)
        .stdin(Stdio::null());
    let output = tokio::time::timeout(WAIT, tokio::task::spawn_blocking(move || command.output()))
        .await
        .map_err(|_| anyhow::anyhow!("spog-agent enroll did not finish"))???;
    anyhow::ensure!(
        output.status.success(),
        "spog-agent enroll: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    Ok(())
}

// ---------------------------------------------------------------------------------------
// The browser's side.

/// How a terminal's session ended, seen from its browser: every byte it received.
struct Ended {
    session_id: String,
    received: u64,
    reason: String,
    /// When the browser saw the PTY's echo of each `^C`: behind any output still on its way.
    interrupts_seen: Vec<Instant>,
}

/// The browser socket of one terminal (SPEC 13.1).
struct Terminal {
    socket: Socket,
    session_id: String,
    received: u64,
}

/// The browser's socket to the host's terminal, after the hub's `session` message: (socket,
/// session id).
async fn open_socket(client: &Client, host: &str) -> anyhow::Result<(Socket, String)> {
    let url = client
        .url(&format!("/hosts/{host}/terminal?cols=120&rows=40"))
        .replace("http://", "ws://");
    let mut request = url.into_client_request()?;
    let bearer = format!("Bearer {}", client.token.as_deref().unwrap_or_default());
    request
        .headers_mut()
        .insert("authorization", bearer.parse()?);
    // Output messages carry what the agent read at once, up to 64 KiB; leave room.
    let config = WebSocketConfig::default()
        .max_message_size(Some(16 << 20))
        .max_frame_size(Some(16 << 20));
    let connecting = tokio_tungstenite::connect_async_with_config(request, Some(config), true);
    let (mut socket, _) = tokio::time::timeout(WAIT, connecting)
        .await
        .map_err(|_| anyhow::anyhow!("opening a terminal timed out"))??;
    let first = next_message(&mut socket).await?;
    let Message::Text(text) = first else {
        anyhow::bail!("output before the session message: {first:?}");
    };
    let message: Value = serde_json::from_str(&text)?;
    anyhow::ensure!(
        message["type"] == "session",
        "instead of the session: {message}"
    );
    let id = message["session_id"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    Ok((socket, id))
}

/// The next message other than a ping or pong; an error after `WAIT` or on a closed socket.
async fn next_message<S>(socket: &mut S) -> anyhow::Result<Message>
where
    S: futures::Stream<Item = Result<Message, tokio_tungstenite::tungstenite::Error>> + Unpin,
{
    loop {
        let message = tokio::time::timeout(WAIT, socket.next())
            .await
            .map_err(|_| anyhow::anyhow!("nothing from the hub for {} s", WAIT.as_secs()))?
            .ok_or_else(|| anyhow::anyhow!("the terminal's socket ended"))??;
        match message {
            Message::Ping(_) | Message::Pong(_) => continue,
            message => return Ok(message),
        }
    }
}

impl Terminal {
    async fn open(client: &Client, host: &str) -> anyhow::Result<Self> {
        let (socket, session_id) = open_socket(client, host).await?;
        Ok(Self {
            socket,
            session_id,
            received: 0,
        })
    }

    async fn send(&mut self, bytes: &[u8]) -> anyhow::Result<()> {
        let sending = self.socket.send(Message::Binary(bytes.to_vec().into()));
        tokio::time::timeout(WAIT, sending)
            .await
            .map_err(|_| anyhow::anyhow!("typing timed out"))??;
        Ok(())
    }

    /// Output until none came for `QUIET`; an error when the session ends.
    async fn drain(&mut self) -> anyhow::Result<()> {
        let started = Instant::now();
        while started.elapsed() < WAIT {
            match tokio::time::timeout(QUIET, self.socket.next()).await {
                Err(_) => return Ok(()),
                Ok(Some(Ok(Message::Binary(bytes)))) => self.received += bytes.len() as u64,
                Ok(Some(Ok(Message::Text(text)))) => {
                    anyhow::bail!("while draining the terminal: {text}")
                }
                Ok(Some(Ok(_))) => continue,
                Ok(other) => anyhow::bail!("the terminal's socket ended: {other:?}"),
            }
        }
        anyhow::bail!("the terminal kept printing for {} s", WAIT.as_secs())
    }

    /// The shell's first prompt drained, then no prompt at all.
    async fn quiet_prompt(&mut self) -> anyhow::Result<()> {
        self.drain().await?;
        self.send(QUIET_PROMPT).await?;
        self.drain().await
    }

    /// Types `count` printable bytes one at a time (stopping at `until`), each timed until the
    /// PTY's echo of it reaches the browser.
    async fn echo(&mut self, count: usize, until: Option<Instant>) -> anyhow::Result<Echo> {
        let mut samples = Vec::with_capacity(count);
        for i in 0..count {
            if until.is_some_and(|until| Instant::now() >= until) {
                break;
            }
            if i > 0 && i % KILL_LINE_EVERY == 0 {
                self.send(KILL_LINE).await?;
                self.drain().await?;
            }
            let key = b'a' + (i % 26) as u8;
            let sent = Instant::now();
            self.send(&[key]).await?;
            self.echoed(key).await?;
            samples.push(sent.elapsed());
        }
        self.send(KILL_LINE).await?;
        self.drain().await?;
        Ok(Echo::of(&mut samples))
    }

    /// Reads output until `key` is in it.
    async fn echoed(&mut self, key: u8) -> anyhow::Result<()> {
        loop {
            match next_message(&mut self.socket).await? {
                Message::Binary(bytes) => {
                    self.received += bytes.len() as u64;
                    if bytes.contains(&key) {
                        return Ok(());
                    }
                }
                other => anyhow::bail!("waiting for an echo: {other:?}"),
            }
        }
    }

    /// `exit`, then the hub's `exit` message and the close.
    async fn exit(mut self) -> anyhow::Result<Ended> {
        self.send(EXIT).await?;
        let (stream, session_id) = (self.socket, self.session_id);
        let (_, stream) = stream.split();
        read_to_end(stream, session_id, self.received, None).await
    }
}

/// Reads a terminal's socket to its close, counting output into `received` (and `total`):
/// how the session ended.
async fn read_to_end(
    mut stream: SplitStream<Socket>,
    session_id: String,
    mut received: u64,
    total: Option<Arc<AtomicU64>>,
) -> anyhow::Result<Ended> {
    let mut reason = String::new();
    let mut interrupts_seen = Vec::new();
    let mut last_byte = 0u8;
    loop {
        let message = match next_message(&mut stream).await {
            Ok(message) => message,
            // The close after `exit` may come as the end of the stream.
            Err(_) if !reason.is_empty() => break,
            Err(e) => return Err(e.context(format!("session {session_id}"))),
        };
        match message {
            Message::Binary(bytes) => {
                received += bytes.len() as u64;
                let split_echo = last_byte == b'^' && bytes.first() == Some(&b'C');
                if split_echo || bytes.windows(2).any(|pair| pair == b"^C") {
                    interrupts_seen.push(Instant::now());
                }
                last_byte = bytes.last().copied().unwrap_or(last_byte);
                if let Some(total) = &total {
                    total.fetch_add(bytes.len() as u64, Ordering::Relaxed);
                }
            }
            Message::Text(text) => {
                let message: Value = serde_json::from_str(&text)?;
                if message["type"] == "exit" {
                    reason = message["reason"].as_str().unwrap_or_default().to_owned();
                } else if message["type"] != "pong" {
                    anyhow::bail!("session {session_id}: {message}");
                }
            }
            Message::Close(_) => break,
            _ => {}
        }
    }
    Ok(Ended {
        session_id,
        received,
        reason,
        interrupts_seen,
    })
}

/// Terminals whose output is read and discarded as fast as it comes, on tasks of their own.
struct Printers {
    keyboards: Vec<SplitSink<Socket, Message>>,
    readers: Vec<JoinHandle<anyhow::Result<Ended>>>,
    /// Output bytes all of them received so far.
    received: Arc<AtomicU64>,
}

impl Printers {
    async fn open(client: &Client, host: &str, count: usize) -> anyhow::Result<Self> {
        let started = Instant::now();
        let opened: Vec<anyhow::Result<(Socket, String)>> = futures::stream::iter(0..count)
            .map(|_| open_socket(client, host))
            .buffer_unordered(16)
            .collect()
            .await;
        let received = Arc::new(AtomicU64::new(0));
        let mut printers = Self {
            keyboards: Vec::with_capacity(count),
            readers: Vec::with_capacity(count),
            received: received.clone(),
        };
        for result in opened {
            let (socket, session_id) = result?;
            let (keyboard, stream) = socket.split();
            printers.keyboards.push(keyboard);
            let total = Some(received.clone());
            printers
                .readers
                .push(tokio::spawn(read_to_end(stream, session_id, 0, total)));
        }
        println!(
            "opened {count} terminals in {:.1} s",
            started.elapsed().as_secs_f64()
        );
        Ok(printers)
    }

    /// Types `bytes` into every terminal: when each was sent.
    async fn type_all(&mut self, bytes: &[u8]) -> anyhow::Result<Vec<Instant>> {
        let mut sent = Vec::with_capacity(self.keyboards.len());
        for keyboard in &mut self.keyboards {
            let sending = keyboard.send(Message::Binary(bytes.to_vec().into()));
            tokio::time::timeout(WAIT, sending)
                .await
                .map_err(|_| anyhow::anyhow!("typing timed out"))??;
            sent.push(Instant::now());
        }
        Ok(sent)
    }

    /// Waits for every session to end (after `exit` was typed).
    async fn ended(self) -> anyhow::Result<Vec<Ended>> {
        let mut ended = Vec::with_capacity(self.readers.len());
        for reader in self.readers {
            ended.push(reader.await??);
        }
        Ok(ended)
    }
}

// ---------------------------------------------------------------------------------------
// Recordings against what the browsers received.

/// `bytes_out` of the host's ended recordings by session id, once those of `sessions` have
/// all ended (or after `WAIT`: the missing ones count as lost).
async fn recorded_bytes(
    admin: &Client,
    host: &str,
    sessions: &[Ended],
) -> anyhow::Result<HashMap<String, u64>> {
    let started = Instant::now();
    loop {
        let recordings = host_recordings(admin, host).await?;
        let ended: HashMap<String, u64> = recordings
            .iter()
            .filter(|r| !r["end_reason"].is_null())
            .map(|r| {
                let session = r["session_id"].as_str().unwrap_or_default().to_owned();
                (session, r["bytes_out"].as_u64().unwrap_or(0))
            })
            .collect();
        let all_ended = sessions.iter().all(|s| ended.contains_key(&s.session_id));
        if all_ended || started.elapsed() >= WAIT {
            return Ok(ended);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Every recording of the host, page by page.
async fn host_recordings(admin: &Client, host: &str) -> anyhow::Result<Vec<Value>> {
    let mut all = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/terminal/recordings?host_id={host}&limit=500&cursor={c}"),
            None => format!("/terminal/recordings?host_id={host}&limit=500"),
        };
        let (status, body) = admin.get(&path).await;
        anyhow::ensure!(status == StatusCode::OK, "{path}: {status} {body}");
        all.extend(body["items"].as_array().cloned().unwrap_or_default());
        match body["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => return Ok(all),
        }
    }
}

/// Sessions whose recording differs from what the browser received, or is missing.
struct Check {
    sessions: usize,
    lossy: usize,
    /// The first few differences, to print.
    examples: Vec<String>,
    received: u64,
    recorded: u64,
}

fn compare(ended: &[Ended], recorded: &HashMap<String, u64>) -> Check {
    let mut check = Check {
        sessions: ended.len(),
        lossy: 0,
        examples: Vec::new(),
        received: 0,
        recorded: 0,
    };
    for session in ended {
        let bytes_out = recorded.get(&session.session_id).copied();
        check.received += session.received;
        check.recorded += bytes_out.unwrap_or(0);
        if bytes_out != Some(session.received) {
            check.lossy += 1;
            if check.examples.len() < 5 {
                check.examples.push(format!(
                    "session {} ({}): browser {} bytes, recording {:?}",
                    session.session_id, session.reason, session.received, bytes_out
                ));
            }
        }
    }
    check
}

// ---------------------------------------------------------------------------------------
// Memory.

/// The server's peak RSS, sampled every 200 ms until stopped.
struct RssSampler {
    peak: Arc<AtomicU64>,
    sampling: Arc<AtomicBool>,
    task: JoinHandle<()>,
}

impl RssSampler {
    fn start(pid: u32) -> Self {
        let peak = Arc::new(AtomicU64::new(0));
        let sampling = Arc::new(AtomicBool::new(true));
        let task = {
            let (peak, sampling) = (peak.clone(), sampling.clone());
            tokio::spawn(async move {
                while sampling.load(Ordering::Relaxed) {
                    let rss = harness::rss_of(&format!("/proc/{pid}/status"));
                    peak.fetch_max(rss, Ordering::Relaxed);
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            })
        };
        Self {
            peak,
            sampling,
            task,
        }
    }

    async fn stop(self) -> u64 {
        self.sampling.store(false, Ordering::Relaxed);
        let _ = self.task.await;
        self.peak.load(Ordering::Relaxed)
    }
}

// ---------------------------------------------------------------------------------------
// The baseline: a PTY of this process, no spog.

/// `/bin/sh` on a PTY of this process, echo on and no prompt: each of `count` bytes timed from
/// writing it to the master to reading its echo back. Blocking.
fn direct_pty_echo(count: usize) -> anyhow::Result<Vec<Duration>> {
    let mut pty = DirectPty::spawn()?;
    pty.drain()?;
    pty.master.write_all(QUIET_PROMPT)?;
    pty.drain()?;
    let mut samples = Vec::with_capacity(count);
    for i in 0..count {
        if i > 0 && i % KILL_LINE_EVERY == 0 {
            pty.master.write_all(KILL_LINE)?;
            pty.drain()?;
        }
        let key = b'a' + (i % 26) as u8;
        let sent = Instant::now();
        pty.master.write_all(&[key])?;
        pty.echoed(key)?;
        samples.push(sent.elapsed());
    }
    pty.master.write_all(KILL_LINE)?;
    pty.drain()?;
    pty.master.write_all(EXIT)?;
    Ok(samples)
}

/// `terminals` shells on PTYs of this process printing flat out, every master read by this
/// thread: MB/s over `seconds` (after one to get going). Blocking.
fn direct_pty_flat_out(terminals: usize, seconds: u64) -> anyhow::Result<f64> {
    let mut ptys = (0..terminals)
        .map(|_| DirectPty::spawn())
        .collect::<anyhow::Result<Vec<_>>>()?;
    for pty in &mut ptys {
        pty.master.write_all(FLAT_OUT)?;
    }
    read_all(&mut ptys, Duration::from_secs(1))?;
    let started = Instant::now();
    let bytes = read_all(&mut ptys, Duration::from_secs(seconds))?;
    let rate = bytes as f64 / 1e6 / started.elapsed().as_secs_f64();
    for pty in &mut ptys {
        // Dropping kills the shells; the hangup then ends their pipelines.
        let _ = pty.master.write_all(INTERRUPT);
    }
    Ok(rate)
}

/// Reads whatever the masters of `ptys` have for `duration`: how many bytes.
fn read_all(ptys: &mut [DirectPty], duration: Duration) -> anyhow::Result<u64> {
    let mut polls: Vec<libc::pollfd> = ptys
        .iter()
        .map(|pty| libc::pollfd {
            fd: pty.master.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        })
        .collect();
    let mut buf = vec![0u8; 64 * 1024];
    let mut bytes = 0u64;
    let started = Instant::now();
    while started.elapsed() < duration {
        // SAFETY: `polls` is a valid array of its length.
        let ready = unsafe { libc::poll(polls.as_mut_ptr(), polls.len() as libc::nfds_t, 100) };
        anyhow::ensure!(ready >= 0, "poll: {}", std::io::Error::last_os_error());
        for (poll, pty) in polls.iter().zip(ptys.iter_mut()) {
            if poll.revents & libc::POLLIN != 0 {
                bytes += pty.master.read(&mut buf)? as u64;
            }
        }
    }
    Ok(bytes)
}

/// A shell on a PTY whose master this process holds; killed when dropped.
struct DirectPty {
    master: File,
    child: Child,
}

impl Drop for DirectPty {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl DirectPty {
    fn spawn() -> anyhow::Result<Self> {
        let (mut master, mut slave) = (-1, -1);
        let size = libc::winsize {
            ws_row: 40,
            ws_col: 120,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        // SAFETY: openpty writes two descriptors; no name buffer, default termios.
        let rc = unsafe {
            libc::openpty(
                &mut master,
                &mut slave,
                std::ptr::null_mut(),
                std::ptr::null(),
                &size,
            )
        };
        anyhow::ensure!(rc == 0, "openpty: {}", std::io::Error::last_os_error());
        // SAFETY: openpty returned two open descriptors that nothing else owns.
        let (master, slave) =
            unsafe { (OwnedFd::from_raw_fd(master), OwnedFd::from_raw_fd(slave)) };
        let mut command = Command::new("/bin/sh");
        command
            .env_clear()
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
            .env("TERM", "xterm-256color")
            .stdin(Stdio::from(slave.try_clone()?))
            .stdout(Stdio::from(slave.try_clone()?))
            .stderr(Stdio::from(slave.try_clone()?));
        // SAFETY: only async-signal-safe calls between fork and exec.
        unsafe {
            command.pre_exec(|| {
                if libc::setsid() < 0 || libc::ioctl(0, libc::TIOCSCTTY as _, 0) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = command.spawn()?;
        drop(command);
        drop(slave);
        Ok(Self {
            master: File::from(master),
            child,
        })
    }

    /// What the master has within `timeout`; `None` when nothing came.
    fn read_within(&mut self, timeout: Duration) -> anyhow::Result<Option<Vec<u8>>> {
        let mut poll = libc::pollfd {
            fd: self.master.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd.
        let ready = unsafe { libc::poll(&mut poll, 1, timeout.as_millis() as libc::c_int) };
        anyhow::ensure!(ready >= 0, "poll: {}", std::io::Error::last_os_error());
        if ready == 0 {
            return Ok(None);
        }
        let mut buf = [0u8; 4096];
        let n = self.master.read(&mut buf)?;
        anyhow::ensure!(n > 0, "the direct shell's PTY closed");
        Ok(Some(buf[..n].to_vec()))
    }

    fn drain(&mut self) -> anyhow::Result<()> {
        let started = Instant::now();
        while started.elapsed() < WAIT {
            if self.read_within(QUIET)?.is_none() {
                return Ok(());
            }
        }
        anyhow::bail!("the direct shell kept printing for {} s", WAIT.as_secs())
    }

    fn echoed(&mut self, key: u8) -> anyhow::Result<()> {
        let started = Instant::now();
        while started.elapsed() < WAIT {
            if let Some(bytes) = self.read_within(WAIT)?
                && bytes.contains(&key)
            {
                return Ok(());
            }
        }
        anyhow::bail!("no echo from the direct shell within {} s", WAIT.as_secs())
    }
}

// ---------------------------------------------------------------------------------------
// The summary.

/// One backend's figures.
struct Figures {
    backend: &'static str,
    /// The server settings raised for the load, as `key = value`.
    raised: String,
    echo: Echo,
    load: Load,
    check: Check,
    /// Through a second instance (PostgreSQL only).
    relayed: Option<Echo>,
}

fn summary(figures: &Figures, options: &Options, baseline: &Baseline) -> Vec<String> {
    let Figures {
        backend,
        raised,
        echo,
        load,
        check,
        relayed,
    } = figures;
    let mb = |bytes: u64| bytes as f64 / 1e6;
    let n = options.terminals;
    let mb_s = mb(load.flat_out_bytes) / load.flat_out_took.as_secs_f64();
    let growth = load.rss_peak.saturating_sub(load.rss_before);
    let mut lines = vec![
        format!("terminals on {backend}: real spog-agent, /bin/sh as root; raised {raised}"),
        format!(
            "  echo, one terminal: {} (target p50 ≤ 3 ms, p99 ≤ 15 ms: {}); baseline, a PTY \
             without spog: p50 {}, p99 {}",
            echo.figures(),
            verdict(echo.p50 <= Duration::from_millis(3) && echo.p99 <= Duration::from_millis(15)),
            ms(baseline.echo.p50),
            ms(baseline.echo.p99)
        ),
        format!(
            "  echo beside {n} terminals printing 1 KiB/s each: {} (target p99 ≤ 15 ms: {})",
            load.trickle_echo.figures(),
            verdict(load.trickle_echo.p99 <= Duration::from_millis(15))
        ),
        format!(
            "  echo beside {n} terminals printing flat out: {} (no target)",
            load.flat_out_echo.figures()
        ),
        format!(
            "  flat out, {n} terminals: {mb_s:.1} MB/s recorded and relayed ({:.0} MB in {:.1} s) \
             (target ≥ 50 MB/s: {}); baseline, as many PTYs without spog: {:.1} MB/s",
            mb(load.flat_out_bytes),
            load.flat_out_took.as_secs_f64(),
            verdict(mb_s >= 50.0),
            baseline.flat_out
        ),
        format!(
            "  recordings against browsers: {} sessions, {:.1} MB received, {:.1} MB recorded, \
             {} differ or are missing (target 0: {})",
            check.sessions,
            mb(check.received),
            mb(check.recorded),
            check.lossy,
            verdict(check.lossy == 0)
        ),
    ];
    lines.extend(check.examples.iter().map(|e| format!("    {e}")));
    lines.push(format!(
        "  ^C into {n} terminals printing flat out: echoed back (after the output before it) \
         within p99 {} (no target)",
        ms(load.interrupt_p99)
    ));
    lines.push(format!(
        "  server RSS before {:.0} MB, peak {:.0} MB: growth {:.0} MB (target ≤ 300 MB: {})",
        mb(load.rss_before),
        mb(load.rss_peak),
        mb(growth),
        verdict(growth <= 300_000_000)
    ));
    if let Some(relayed) = relayed {
        lines.push(format!(
            "  echo, browser on a second instance, agent on the first: {} (target p99 ≤ 30 ms: \
             {}); beside one instance p99 {}",
            relayed.figures(),
            verdict(relayed.p99 <= Duration::from_millis(30)),
            ms(echo.p99)
        ));
    }
    lines
}

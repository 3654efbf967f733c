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

mod agent;
mod browser;
mod pty;
mod recorded;
mod rss;

use agent::*;
use browser::*;
use pty::*;
use recorded::*;
use rss::*;

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

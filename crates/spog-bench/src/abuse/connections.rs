//! Issue 12 item 4, slowloris: connections that send a request's headers a byte a second and
//! never finish them must not keep anyone else from being answered. Like a real attacker,
//! each connection the server cuts is opened again at once.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::{Figure, Options, figure, fresh_client, spread, start, timed};
use crate::harness::ms;

const ATTACK: &str = "slowloris";
const PROBES: usize = 10;
const PROBE_TIMEOUT: Duration = Duration::from_secs(5);
/// `header_read_timeout`'s default (10 s, SPEC 11.3) and a margin: by then the server has
/// cut every connection whose headers never ended.
const CUT_WITHIN: Duration = Duration::from_secs(15);

#[derive(Default)]
struct Counts {
    /// Connections established and still sending.
    open: AtomicUsize,
    /// Connections the server closed (or answered) before their headers were complete.
    cut: AtomicUsize,
    /// Connection attempts that failed or timed out.
    failed: AtomicUsize,
    /// Attackers whose first connection the server cut.
    first_cut: AtomicUsize,
}

pub async fn slowloris(postgres: Option<String>, options: Options) -> anyhow::Result<Vec<Figure>> {
    let target = start(postgres.as_deref(), &options, &[]).await?;
    let count = options.slow_connections;
    let (stop, counts) = (CancellationToken::new(), Arc::new(Counts::default()));
    let mut attackers = JoinSet::new();
    for _ in 0..count {
        attackers.spawn(slow_client(target.addr(), stop.clone(), counts.clone()));
    }
    let opening = Instant::now();
    while counts.open.load(Ordering::Relaxed) < count && opening.elapsed() < Duration::from_secs(10)
    {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    println!(
        "  {} of {count} slow connections open after {}",
        counts.open.load(Ordering::Relaxed),
        ms(opening.elapsed())
    );
    // Probes over more than a header-read timeout's worth of time, each on a new connection.
    let http = fresh_client(PROBE_TIMEOUT);
    let url = format!("{}/healthz", target.base());
    let (mut latencies, mut answered, mut open) = (Vec::new(), 0, Vec::new());
    for _ in 0..PROBES {
        tokio::time::sleep(Duration::from_secs(1)).await;
        open.push(counts.open.load(Ordering::Relaxed));
        let answer = timed(http.get(&url)).await;
        answered += usize::from(answer.status == Some(200));
        latencies.push(answer.took);
    }
    while counts.first_cut.load(Ordering::Relaxed) < count && opening.elapsed() < CUT_WITHIN {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let first_cut = counts.first_cut.load(Ordering::Relaxed);
    stop.cancel();
    let ended = tokio::time::timeout(Duration::from_secs(10), async {
        while attackers.join_next().await.is_some() {}
    })
    .await;
    drop(attackers);
    let (max, p95) = spread(&mut latencies);
    println!(
        "  during the probes {}–{} attacker connections were open; the server cut {}, {} connection attempts failed{}",
        open.iter().min().unwrap_or(&0),
        open.iter().max().unwrap_or(&0),
        counts.cut.load(Ordering::Relaxed),
        counts.failed.load(Ordering::Relaxed),
        if ended.is_err() {
            " (attackers aborted)"
        } else {
            ""
        }
    );
    Ok(vec![
        figure(
            ATTACK,
            format!("GET /healthz under {count} slowloris connections, {PROBES} probes"),
            format!(
                "max {} p95 {}, {answered}/{PROBES} answered 200 (a probe gives up after {})",
                ms(max),
                ms(p95),
                ms(PROBE_TIMEOUT)
            ),
            "≤ 1 s",
            answered == PROBES && max <= Duration::from_secs(1),
        ),
        figure(
            ATTACK,
            format!(
                "slow connections the server cut within {} s of their opening",
                CUT_WITHIN.as_secs()
            ),
            format!("{first_cut} of {count}"),
            "all: headers must arrive within header_read_timeout (10 s)",
            first_cut == count,
        ),
    ])
}

/// Sends an unfinished request a byte a second; when the server closes it, starts again.
async fn slow_client(addr: SocketAddr, stop: CancellationToken, counts: Arc<Counts>) {
    let mut first = true;
    while !stop.is_cancelled() {
        let connected = tokio::time::timeout(Duration::from_secs(5), TcpStream::connect(addr));
        let mut stream = match stop.run_until_cancelled(connected).await {
            None => return,
            Some(Ok(Ok(stream))) => stream,
            Some(_) => {
                counts.failed.fetch_add(1, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
        };
        counts.open.fetch_add(1, Ordering::Relaxed);
        let cut = hold(&mut stream, &stop).await;
        counts.open.fetch_sub(1, Ordering::Relaxed);
        if !cut {
            return;
        }
        counts.cut.fetch_add(1, Ordering::Relaxed);
        if std::mem::take(&mut first) {
            counts.first_cut.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Whether the server ended the connection (rather than the bench).
async fn hold(stream: &mut TcpStream, stop: &CancellationToken) -> bool {
    let head = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ";
    if stream.write_all(head).await.is_err() {
        return true;
    }
    let (mut reader, mut writer) = stream.split();
    let mut buf = [0u8; 512];
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.tick().await;
    loop {
        tokio::select! {
            _ = stop.cancelled() => return false,
            // Anything from the server (an answer such as 408, or the end) ends this try.
            _ = reader.read(&mut buf) => return true,
            _ = tick.tick() => {
                if writer.write_all(b"a").await.is_err() {
                    return true;
                }
            }
        }
    }
}

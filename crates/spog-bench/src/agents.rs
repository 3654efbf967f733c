//! Issue 14's hub targets on one release `spog serve`: 2,000 simulated agents (speaking the
//! agent protocol of SPEC 12.3, not the real binary) enrolled through enrollment tokens and
//! connected at once, each sending a metric batch of 15 samples every 15 s. Figures: the
//! server's memory growth (≤ 250 MB), ingest lag from a batch leaving its agent to its samples
//! being readable through `GET /hosts/{id}/metrics/latest` (p99 ≤ 2 s), `GET /hosts/{id}/metrics`
//! over 24 h at 1-minute steps (p95 ≤ 50 ms) and SPEC 12.4's 7-day query at step 1 h
//! (≤ 200 ms). Baselines from the same run: the idle server's memory and a plain
//! `GET /hosts/{id}` of the same hosts.
//!
//! Enrollment is limited per client address, so agents enroll from many loopback addresses,
//! as a fleet does from its own.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::{SinkExt, StreamExt, stream};
use parking_lot::Mutex;
use reqwest::StatusCode;
use serde_json::{Value, json};
use spog_core::Timestamp;
use spog_server::testing::Client;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use crate::harness::{self, ms, percentile, verdict};
use crate::process::{Launch, ServerProcess, set_soft_fd_limit};

#[derive(clap::Args)]
pub struct Options {
    /// Also run on PostgreSQL, in a fresh database on this server.
    #[arg(long)]
    postgres: Option<String>,
    #[arg(long, default_value_t = 2_000)]
    agents: usize,
    /// Seconds between an agent's metric batches.
    #[arg(long, default_value_t = 15)]
    interval: u64,
    /// Seconds the fleet runs while lag and memory are measured.
    #[arg(long, default_value_t = 180)]
    duration: u64,
    /// Agents whose every batch is timed until readable.
    #[arg(long, default_value_t = 20)]
    probes: usize,
    /// Hosts given 7 days of history before the fleet connects, for the range queries.
    #[arg(long, default_value_t = 10)]
    history_hosts: usize,
    /// Range queries of each kind.
    #[arg(long, default_value_t = 200)]
    queries: usize,
}

/// Samples per batch: CPU, memory, six mounts, three loads, two interfaces in and out.
const MOUNTS: [&str; 6] = ["/", "/var", "/home", "/data", "/srv", "/boot"];
const INTERFACES: [&str; 2] = ["eth0", "eth1"];
/// What one probe waits before counting a batch as lost.
const LAG_LIMIT: Duration = Duration::from_secs(10);
/// Between a probe's reads: fine enough beside the 2 s target, and light enough (20 probes,
/// at most 200 reads a second) that the measuring does not become the load.
const PROBE_POLL: Duration = Duration::from_millis(100);

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

struct Agent {
    host_id: String,
    credential: String,
}

pub async fn run(options: Options) -> anyhow::Result<()> {
    set_soft_fd_limit(u64::MAX)?;
    let mut summaries = vec![fleet(None, &options).await?];
    if let Some(url) = options.postgres.as_deref() {
        summaries.push(fleet(Some(url), &options).await?);
    }
    for summary in summaries {
        println!("{summary}");
    }
    Ok(())
}

/// One backend's run; returns its summary.
async fn fleet(postgres: Option<&str>, options: &Options) -> anyhow::Result<String> {
    let backend = harness::backend_name(postgres);
    println!("== agents on {backend} ==");
    let database = match postgres {
        Some(url) => Some(harness::database(Some(url)).await),
        None => None,
    };
    let data_dir = std::env::temp_dir().join(format!("spog-bench-agents-{}", uuid::Uuid::now_v7()));
    let server = ServerProcess::launch(Launch::new(
        data_dir.clone(),
        database.as_ref().map(|d| d.url.as_str()),
    ))
    .await?;
    let admin = server.admin().await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let idle_rss = server.rss_bytes();

    let started = Instant::now();
    let agents = enroll(&server, &admin, options.agents).await?;
    println!(
        "enrolled {} agents in {:.1} s",
        agents.len(),
        started.elapsed().as_secs_f64()
    );
    let started = Instant::now();
    let history: Vec<&Agent> = agents.iter().take(options.history_hosts).collect();
    for agent in &history {
        backfill(&admin, &agent.host_id).await?;
    }
    println!(
        "gave {} hosts 7 days of history in {:.1} s",
        history.len(),
        started.elapsed().as_secs_f64()
    );
    let enrolled_rss = server.rss_bytes();

    // The fleet: every agent connects, then sends a batch every interval from a random phase.
    let interval = Duration::from_secs(options.interval);
    let lags = Arc::new(Mutex::new(Vec::new()));
    let probe_every = (agents.len() / options.probes.max(1)).max(1);
    let started = Instant::now();
    let mut fleet = Vec::with_capacity(agents.len());
    for (i, agent) in agents.iter().enumerate() {
        let socket = connect(&server.base, &agent.credential).await?;
        let probe = (i % probe_every == 0).then(|| (admin.clone(), agent.host_id.clone()));
        let phase = interval.mul_f64(i as f64 / agents.len() as f64);
        fleet.push(tokio::spawn(report(
            socket,
            interval,
            phase,
            probe,
            lags.clone(),
        )));
    }
    println!(
        "connected {} agents in {:.1} s",
        fleet.len(),
        started.elapsed().as_secs_f64()
    );
    let online = count_online(&admin).await?;
    let until = Instant::now() + Duration::from_secs(options.duration);
    let mut peak_rss = server.rss_bytes();
    while Instant::now() < until {
        tokio::time::sleep(Duration::from_secs(5)).await;
        peak_rss = peak_rss.max(server.rss_bytes());
    }
    let mut lags = std::mem::take(&mut *lags.lock());
    let batches = lags.len();
    let lost = lags.iter().filter(|lag| **lag >= LAG_LIMIT).count();
    let lag_p50 = percentile(&mut lags, 50.0);
    let lag_p99 = percentile(&mut lags, 99.0);

    // Range queries while the fleet keeps reporting.
    let now = Timestamp::now();
    let day = range_query(&admin, &history, now, "24h", "1m", options.queries).await?;
    let week = range_query(&admin, &history, now, "168h", "1h", options.queries).await?;
    let plain = plain_reads(&admin, &history, options.queries).await?;
    for task in fleet {
        task.abort();
    }

    let growth = peak_rss.saturating_sub(idle_rss);
    let mb = |bytes: u64| bytes as f64 / 1e6;
    let lines = [
        format!(
            "agents on {backend}: {} connected, {online} hosts online",
            agents.len()
        ),
        format!(
            "  server RSS idle {:.0} MB, enrolled {:.0} MB, peak with the fleet {:.0} MB: growth {:.0} MB (target ≤ 250 MB: {})",
            mb(idle_rss),
            mb(enrolled_rss),
            mb(peak_rss),
            mb(growth),
            verdict(growth <= 250_000_000)
        ),
        format!(
            "  ingest lag over {batches} timed batches: p50 {}, p99 {} ({lost} not readable within {} s) (target p99 ≤ 2 s: {})",
            ms(lag_p50),
            ms(lag_p99),
            LAG_LIMIT.as_secs(),
            verdict(lag_p99 <= Duration::from_secs(2) && lost == 0)
        ),
        format!(
            "  GET /hosts/{{id}}/metrics 24 h at 1 m: p50 {}, p95 {} (target p95 ≤ 50 ms: {}); baseline GET /hosts/{{id}} p95 {}",
            ms(day.0),
            ms(day.1),
            verdict(day.1 <= Duration::from_millis(50)),
            ms(plain)
        ),
        format!(
            "  GET /hosts/{{id}}/metrics 7 d at 1 h: p50 {}, p95 {}, max {} (target ≤ 200 ms: {})",
            ms(week.0),
            ms(week.1),
            ms(week.2),
            verdict(week.2 <= Duration::from_millis(200))
        ),
    ];
    drop(server);
    if std::env::var_os("SPOG_BENCH_SERVER_LOG").is_none() {
        let _ = std::fs::remove_dir_all(&data_dir);
    }
    Ok(lines.join("\n"))
}

/// Creates a one-time token per agent and enrolls each from its own loopback address (ten
/// per address: the hub's per-address limit).
async fn enroll(
    server: &ServerProcess,
    admin: &Client,
    count: usize,
) -> anyhow::Result<Vec<Agent>> {
    let results: Vec<anyhow::Result<Agent>> = stream::iter(0..count)
        .map(|i| async move {
            let (status, token) = admin
                .post("/enrollment-tokens", json!({"description": "bench"}))
                .await;
            anyhow::ensure!(status == StatusCode::CREATED, "token: {status} {token}");
            let address = Ipv4Addr::new(127, 1, (i / 10 / 250) as u8, (i / 10 % 250) as u8 + 1);
            let http = reqwest::Client::builder()
                .local_address(IpAddr::V4(address))
                .build()?;
            let response = http
                .post(format!("{}/api/v1/agent/enroll", server.base))
                .json(
                    &json!({"token": token["token"], "hostname": format!("bench-{i:05}"),
                    "facts": {"os": "linux", "kernel": "6.1.0", "arch": "x86_64",
                              "agent_version": "0.1.0", "cpu_count": 4}}),
                )
                .send()
                .await?;
            let status = response.status();
            let body: Value = response.json().await?;
            anyhow::ensure!(status == StatusCode::CREATED, "enroll: {status} {body}");
            Ok(Agent {
                host_id: body["host_id"].as_str().unwrap_or_default().to_owned(),
                credential: body["credential"].as_str().unwrap_or_default().to_owned(),
            })
        })
        .buffer_unordered(16)
        .collect()
        .await;
    results.into_iter().collect()
}

/// Seven days of one-minute `cpu.percent` samples (rolled up once older than the raw
/// retention), and the last 24 h at the agent's 15 s, through `POST /metrics`.
async fn backfill(admin: &Client, host_id: &str) -> anyhow::Result<()> {
    let now = Timestamp::now().unix_seconds() - 60;
    let week = 7 * 24 * 3600 - 3600;
    let times = (0..week / 60)
        .map(|k| now - week + k * 60)
        .filter(|at| now - at > 24 * 3600)
        .chain((0..24 * 3600 / 15).map(|k| now - 24 * 3600 + 15 + k * 15));
    let samples: Vec<Value> = times
        .map(|at| {
            let value = 20.0 + (at % 600) as f64 / 10.0;
            json!({"metric": "cpu.percent", "value": value,
                   "at": Timestamp::from_micros(at * 1_000_000)})
        })
        .collect();
    for batch in samples.chunks(10_000) {
        let (status, body) = admin
            .post("/metrics", json!({"host_id": host_id, "samples": batch}))
            .await;
        anyhow::ensure!(status == StatusCode::ACCEPTED, "backfill: {status} {body}");
    }
    Ok(())
}

async fn connect(base: &str, credential: &str) -> anyhow::Result<Socket> {
    let url = format!("{}/api/v1/agent/connect", base.replace("http://", "ws://"));
    let mut request = url.into_client_request()?;
    let headers = request.headers_mut();
    headers.insert("authorization", format!("Bearer {credential}").parse()?);
    headers.insert("sec-websocket-protocol", "spog-agent.v1".parse()?);
    let (mut socket, _) = tokio_tungstenite::connect_async(request).await?;
    let hello = json!({"type": "hello", "agent_version": "0.1.0",
        "facts": {"os": "linux", "kernel": "6.1.0", "arch": "x86_64", "agent_version": "0.1.0"},
        "capabilities": {"terminal": false, "shell": false, "max_sessions": 0}});
    socket.send(Message::Text(hello.to_string().into())).await?;
    loop {
        match socket.next().await {
            Some(Ok(Message::Text(text))) if text.contains("\"welcome\"") => return Ok(socket),
            Some(Ok(_)) => continue,
            other => anyhow::bail!("no welcome: {other:?}"),
        }
    }
}

/// One agent: a batch every `interval` after `phase`; a probe also times each batch until
/// the hub serves it back.
async fn report(
    socket: Socket,
    interval: Duration,
    phase: Duration,
    probe: Option<(Client, String)>,
    lags: Arc<Mutex<Vec<Duration>>>,
) {
    let (mut sink, mut source) = socket.split();
    // Reading answers the hub's pings.
    tokio::spawn(async move { while let Some(Ok(_)) = source.next().await {} });
    tokio::time::sleep(phase).await;
    let mut ticks = tokio::time::interval(interval);
    let mut round = 0u64;
    loop {
        ticks.tick().await;
        round += 1;
        let at = Timestamp::now();
        let batch = json!({"type": "metrics", "samples": samples(at, round)});
        let sent = Instant::now();
        if sink
            .send(Message::Text(batch.to_string().into()))
            .await
            .is_err()
        {
            return;
        }
        if let Some((admin, host_id)) = &probe {
            let lag = readable_after(admin, host_id, at, sent).await;
            lags.lock().push(lag);
        }
    }
}

fn samples(at: Timestamp, round: u64) -> Vec<Value> {
    let wave = (round % 20) as f64;
    let mut samples = vec![
        json!({"metric": "cpu.percent", "value": 10.0 + wave, "at": at}),
        json!({"metric": "memory.used_percent", "value": 40.0 + wave, "at": at}),
        json!({"metric": "load1", "value": wave / 10.0, "at": at}),
        json!({"metric": "load5", "value": wave / 12.0, "at": at}),
        json!({"metric": "load15", "value": wave / 15.0, "at": at}),
    ];
    for mount in MOUNTS {
        samples.push(json!({"metric": "disk.used_percent", "value": 50.0 + wave,
            "at": at, "labels": {"mount": mount}}));
    }
    for interface in INTERFACES {
        for metric in ["net.rx_bytes_per_second", "net.tx_bytes_per_second"] {
            samples.push(json!({"metric": metric, "value": 1000.0 * wave, "at": at,
                "labels": {"interface": interface}}));
        }
    }
    samples
}

/// Polls the host's latest samples until the batch stamped `at` is there.
async fn readable_after(admin: &Client, host_id: &str, at: Timestamp, sent: Instant) -> Duration {
    let path = format!("/hosts/{host_id}/metrics/latest");
    while sent.elapsed() < LAG_LIMIT {
        let (status, body) = admin.get(&path).await;
        let seen = status == StatusCode::OK
            && body["items"].as_array().is_some_and(|items| {
                items.iter().any(|item| {
                    item["metric"] == "cpu.percent"
                        && item["at"]
                            .as_str()
                            .and_then(Timestamp::parse)
                            .is_some_and(|seen| seen >= at)
                })
            });
        if seen {
            return sent.elapsed();
        }
        tokio::time::sleep(PROBE_POLL).await;
    }
    LAG_LIMIT
}

async fn count_online(admin: &Client) -> anyhow::Result<usize> {
    // Hosts come online as their agents connect; give the last ones a moment.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let mut online = 0;
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/hosts?limit=500&cursor={c}"),
            None => "/hosts?limit=500".to_owned(),
        };
        let (status, body) = admin.get(&path).await;
        anyhow::ensure!(status == StatusCode::OK, "hosts: {status} {body}");
        online += body["items"].as_array().map_or(0, |items| {
            items.iter().filter(|h| h["online"] == true).count()
        });
        match body["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => return Ok(online),
        }
    }
}

/// `cpu.percent` over `range` at `step`, round-robin over `hosts`: (p50, p95, max).
async fn range_query(
    admin: &Client,
    hosts: &[&Agent],
    now: Timestamp,
    range: &str,
    step: &str,
    count: usize,
) -> anyhow::Result<(Duration, Duration, Duration)> {
    let hours: u64 = range.trim_end_matches('h').parse()?;
    let from = now.minus(Duration::from_secs(hours * 3600));
    let mut times = Vec::with_capacity(count);
    for i in 0..count {
        let host = &hosts[i % hosts.len()].host_id;
        let path =
            format!("/hosts/{host}/metrics?name=cpu.percent&from={from}&to={now}&step={step}");
        let started = Instant::now();
        let (status, body) = admin.get(&path).await;
        times.push(started.elapsed());
        anyhow::ensure!(status == StatusCode::OK, "{path}: {status} {body}");
        anyhow::ensure!(
            body["series"][0]["points"]
                .as_array()
                .is_some_and(|p| p.len() > 20),
            "{path}: no points in {body}"
        );
    }
    let max = times.iter().copied().max().unwrap_or_default();
    Ok((
        percentile(&mut times, 50.0),
        percentile(&mut times, 95.0),
        max,
    ))
}

/// The baseline: `GET /hosts/{id}` p95 over the same hosts.
async fn plain_reads(admin: &Client, hosts: &[&Agent], count: usize) -> anyhow::Result<Duration> {
    let mut times = Vec::with_capacity(count);
    for i in 0..count {
        let path = format!("/hosts/{}", hosts[i % hosts.len()].host_id);
        let started = Instant::now();
        let (status, body) = admin.get(&path).await;
        times.push(started.elapsed());
        anyhow::ensure!(status == StatusCode::OK, "{path}: {status} {body}");
    }
    Ok(percentile(&mut times, 95.0))
}

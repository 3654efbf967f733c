//! Issue 2's targets on a `spog serve` process (SQLite): idle memory ≤ 30 MB, start to ready
//! ≤ 1 s on an existing database, and an authenticated `GET /auth/me` at ≥ 15,000 requests/s
//! with p99 ≤ 10 ms over 64 connections. Baseline from the same run: `GET /healthz`, which
//! authenticates nothing, over the same connections.

use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use crate::harness::{ms, percentile, verdict};
use crate::process::ServerProcess;

#[derive(clap::Args)]
pub struct Options {
    #[arg(long, default_value_t = 64)]
    connections: usize,
    #[arg(long, default_value_t = 5)]
    seconds: u64,
}

struct Load {
    per_second: f64,
    p50: Duration,
    p99: Duration,
}

pub async fn run(options: Options) -> anyhow::Result<()> {
    let data_dir =
        std::env::temp_dir().join(format!("spog-bench-foundation-{}", uuid::Uuid::now_v7()));
    let first = ServerProcess::start(data_dir.clone(), None).await;
    let fresh_ready = first.ready_after;
    drop(first);
    let server = ServerProcess::start(data_dir.clone(), None).await;
    let ready = server.ready_after;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let idle_rss = server.rss_bytes() as f64 / 1_048_576.0;
    let admin = server.admin().await;
    let token = admin.token.clone().expect("a session token");

    let health = load(&server.base, "/healthz", None, &options).await;
    let me = load(&server.base, "/api/v1/auth/me", Some(&token), &options).await;
    println!("== foundation: one spog serve on SQLite ==");
    println!(
        "idle RSS {idle_rss:.1} MB (target ≤ 30 MB: {})",
        verdict(idle_rss <= 30.0)
    );
    println!(
        "start to ready: existing database {} (target ≤ 1 s: {}); empty database {}",
        ms(ready),
        verdict(ready <= Duration::from_secs(1)),
        ms(fresh_ready)
    );
    println!(
        "GET /healthz (baseline, no authentication): {:.0} req/s, p50 {} p99 {}",
        health.per_second,
        ms(health.p50),
        ms(health.p99)
    );
    println!(
        "GET /auth/me with a session JWT, {} connections: {:.0} req/s (target ≥ 15,000: {}), p50 {} p99 {} (target ≤ 10 ms: {}), ratio to baseline {:.2}",
        options.connections,
        me.per_second,
        verdict(me.per_second >= 15_000.0),
        ms(me.p50),
        ms(me.p99),
        verdict(me.p99 <= Duration::from_millis(10)),
        me.per_second / health.per_second
    );
    drop(server);
    let _ = std::fs::remove_dir_all(data_dir);
    Ok(())
}

/// `connections` clients, each on its own kept-alive connection, for the configured time.
async fn load(base: &str, path: &str, token: Option<&str>, options: &Options) -> Load {
    let latencies = Arc::new(Mutex::new(Vec::new()));
    let deadline = Instant::now() + Duration::from_secs(options.seconds);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..options.connections {
        let http = reqwest::Client::builder()
            .pool_max_idle_per_host(1)
            .build()
            .expect("a client");
        let url = format!("{base}{path}");
        let auth = token.map(|t| format!("Bearer {t}"));
        let latencies = latencies.clone();
        tasks.push(tokio::spawn(async move {
            let mut mine = Vec::new();
            while Instant::now() < deadline {
                let sent = Instant::now();
                let mut request = http.get(&url);
                if let Some(auth) = &auth {
                    request = request.header("authorization", auth);
                }
                let response = request.send().await.expect("a response");
                assert!(response.status().is_success(), "{}", response.status());
                response.bytes().await.expect("a body");
                mine.push(sent.elapsed());
            }
            latencies.lock().extend(mine);
        }));
    }
    for task in tasks {
        task.await.expect("a client");
    }
    let elapsed = started.elapsed();
    let mut latencies = std::mem::take(&mut *latencies.lock());
    Load {
        per_second: latencies.len() as f64 / elapsed.as_secs_f64(),
        p50: percentile(&mut latencies, 50.0),
        p99: percentile(&mut latencies, 99.0),
    }
}

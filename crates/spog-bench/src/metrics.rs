//! Issue 5's metric target: `POST /metrics` ingesting ≥ 20,000 samples/s while 100 metric
//! rules are evaluated against them. Baseline from the same run: the same requests to the
//! same server before any rule exists (validation and the host lookup only).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use spog_core::Timestamp;
use spog_server::testing::Client;

use crate::harness::{self, verdict};

#[derive(clap::Args)]
pub struct Options {
    /// Also run on PostgreSQL, creating databases on this server.
    #[arg(long)]
    postgres: Option<String>,
    #[arg(long, default_value_t = 5)]
    seconds: u64,
    #[arg(long, default_value_t = 100)]
    rules: usize,
    #[arg(long, default_value_t = 20)]
    hosts: usize,
    /// Samples per request.
    #[arg(long, default_value_t = 200)]
    batch: usize,
    #[arg(long, default_value_t = 8)]
    clients: usize,
}

/// Ten metrics; each rule watches one of them with its own threshold.
const METRICS: usize = 10;

pub async fn run(options: Options) -> anyhow::Result<()> {
    let mut backends = vec![None];
    if let Some(url) = &options.postgres {
        backends.push(Some(url.as_str()));
    }
    for postgres in backends {
        let (server, admin) = harness::server(postgres).await;
        let agent = admin.token_client("agent", &["events.publish"]).await;
        let hosts = hosts(&admin, options.hosts).await;
        let baseline = ingest(&agent, &hosts, &options).await;
        let organization = organization(&admin).await;
        for n in 0..options.rules {
            let rule = json!({"kind": "metric", "organization_id": organization,
                "name": format!("rule {n}"), "metric": format!("m.{}", n % METRICS),
                "operator": ">", "threshold": 50 + (n / METRICS) * 5, "for_seconds": 30,
                "severity": "medium"});
            let (status, body) = admin.post("/alert-rules", rule).await;
            assert_eq!(status, reqwest::StatusCode::CREATED, "{body}");
        }
        let evaluated = ingest(&agent, &hosts, &options).await;
        let (_, firing) = admin.get("/alerts?state=firing&limit=1").await;
        println!(
            "== metric ingestion on {} ({} clients, {} samples per request, {} hosts) ==",
            harness::backend_name(postgres),
            options.clients,
            options.batch,
            options.hosts
        );
        println!("no rules (baseline): {baseline:.0} samples/s");
        println!(
            "{} metric rules: {evaluated:.0} samples/s, ratio {:.2} (target ≥ 20,000/s: {}); alerts fired: {}",
            options.rules,
            evaluated / baseline,
            verdict(evaluated >= 20_000.0),
            if firing["items"].as_array().is_some_and(|a| !a.is_empty()) {
                "yes"
            } else {
                "none"
            }
        );
        server.stop().await;
    }
    Ok(())
}

async fn organization(admin: &Client) -> String {
    let (_, organizations) = admin.get("/organizations").await;
    organizations["items"][0]["id"]
        .as_str()
        .or_else(|| organizations[0]["id"].as_str())
        .expect("the default organization")
        .to_owned()
}

async fn hosts(admin: &Client, count: usize) -> Vec<String> {
    let organization = organization(admin).await;
    let mut ids = Vec::new();
    for n in 0..count {
        let (_, host) = admin
            .post(
                "/hosts",
                json!({"organization_id": organization, "hostname": format!("bench-{n}")}),
            )
            .await;
        ids.push(host["id"].as_str().expect("a host").to_owned());
    }
    ids
}

/// Samples a millisecond apart, each metric a slow wave between 20 and 100, so every rule
/// breaches now and then for a while: rules start and stop breaching, fire and resolve.
fn batch(host: &str, size: usize, step: u64, start: Timestamp) -> Value {
    let samples: Vec<Value> = (0..size)
        .map(|i| {
            let n = step * size as u64 + i as u64;
            let value = 60.0 + 40.0 * (n as f64 / 3_000.0).sin();
            let at = start.plus(Duration::from_millis(n));
            json!({"metric": format!("m.{}", n % METRICS as u64), "value": value, "at": at})
        })
        .collect();
    json!({"host_id": host, "samples": samples})
}

/// Samples per second accepted by `clients` concurrent clients over the run.
async fn ingest(agent: &Client, hosts: &[String], options: &Options) -> f64 {
    let accepted = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let deadline = started + Duration::from_secs(options.seconds);
    let start = Timestamp::now().minus(Duration::from_secs(3600));
    let mut tasks = Vec::new();
    for client in 0..options.clients {
        let (agent, accepted) = (agent.clone(), accepted.clone());
        // Each host is fed by one client, in time order, as an agent would.
        let mine: Vec<String> = hosts
            .iter()
            .skip(client)
            .step_by(options.clients)
            .cloned()
            .collect();
        let size = options.batch;
        tasks.push(tokio::spawn(async move {
            let mut step = 0;
            while Instant::now() < deadline {
                for host in &mine {
                    let (status, body) =
                        agent.post("/metrics", batch(host, size, step, start)).await;
                    assert_eq!(status, reqwest::StatusCode::ACCEPTED, "{body}");
                    accepted.fetch_add(size as u64, Ordering::Relaxed);
                }
                step += 1;
            }
        }));
    }
    for task in tasks {
        task.await.expect("a client");
    }
    accepted.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64()
}

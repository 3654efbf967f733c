//! Issue 3's targets: ingest throughput and linking lag beside plain unchained inserts of the
//! same rows; then, on a large chain, search latency, statistics, export and verification
//! beside bare chained SHA-256 over the same bytes.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures::StreamExt;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use spog_core::Timestamp;
use spog_core::audit::{ActorType, AuditEntry, Outcome, Snapshot, Source, write_canonical_json};
use spog_server::testing::{Client, TestServer};
use spog_store::Store;
use spog_store::audit::{self, AuditFilter};

use crate::harness::{self, ms, percentile, verdict};

#[derive(clap::Args)]
pub struct Options {
    /// Also run on PostgreSQL, creating databases on this server.
    #[arg(long)]
    postgres: Option<String>,
    /// Entries in the large chain.
    #[arg(long, default_value_t = 1_000_000)]
    entries: u64,
    /// Seconds per ingest measurement.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Concurrent clients.
    #[arg(long, default_value_t = 32)]
    clients: usize,
    /// Seconds to wait after the large chain's reads before reading it again (steady state).
    #[arg(long, default_value_t = 0)]
    settle: u64,
    /// Run only this part: ingest or large-chain.
    #[arg(long)]
    only: Option<String>,
}

pub async fn run(options: Options) -> anyhow::Result<()> {
    let mut backends = vec![None];
    if let Some(url) = &options.postgres {
        backends.push(Some(url.as_str()));
    }
    for postgres in backends {
        println!("== audit trail on {} ==", harness::backend_name(postgres));
        let run = |part: &str| options.only.as_deref().is_none_or(|only| only == part);
        if run("ingest") {
            ingest(&options, postgres, 100).await;
            ingest(&options, postgres, 1).await;
        }
        if run("large-chain") {
            large_chain(&options, postgres).await?;
        }
    }
    Ok(())
}

fn ingest_body(n: u64) -> Value {
    json!({"action": "job.run", "resource_type": "job", "resource_id": format!("job-{n}"),
           "resource_name": format!("nightly backup {n}"), "outcome": "success",
           "metadata": {"exit_code": 0, "host": "web-1"}})
}

/// What the ingest endpoint stores for `ingest_body(n)`.
fn entry(account: &str, n: u64, at: Timestamp) -> AuditEntry {
    AuditEntry {
        id: uuid::Uuid::now_v7().to_string(),
        seq: None,
        occurred_at: at,
        account_id: account.to_owned(),
        organization_id: None,
        actor_type: ActorType::Agent,
        actor_id: Some("01a21066-0000-7000-8000-000000000001".to_owned()),
        actor_email: None,
        actor_name: Some("agent token".to_owned()),
        source: Source::Agent,
        ip: Some("127.0.0.1".to_owned()),
        user_agent: None,
        request_id: Some(uuid::Uuid::now_v7().to_string()),
        action: "job.run".to_owned(),
        resource_type: "job".to_owned(),
        resource_id: Some(format!("job-{n}")),
        resource_name: Some(format!("nightly backup {n}")),
        outcome: Outcome::Success,
        before: None,
        after: None,
        metadata: Some(Snapshot::redacted(json!({"exit_code": 0, "host": "web-1"}))),
        credential_id: Some("01a21066-0000-7000-8000-000000000001".to_owned()),
        credential_name: Some("agent token".to_owned()),
        recorded_at: Some(at),
        prev_hash: None,
        hash: None,
    }
}

async fn ingest(options: &Options, postgres: Option<&str>, batch: u64) {
    let (server, admin) = harness::server(postgres).await;
    let agent = admin.token_client("agent", &["audit_logs.write"]).await;
    let account = server.state.store.clone();
    let (_, me) = admin.get("/auth/me").await;
    let account_id = me["account_id"].as_str().unwrap().to_owned();

    // Sample the chain head every 5 ms to time when entries become linked.
    let stop = Arc::new(AtomicBool::new(false));
    let heads = tokio::spawn(poll_heads(
        account.clone(),
        account_id.clone(),
        stop.clone(),
    ));
    let deadline = Instant::now() + Duration::from_secs(options.seconds);
    let counter = Arc::new(AtomicU64::new(0));
    let mut clients = Vec::new();
    for c in 0..options.clients {
        let agent = agent.clone();
        let counter = counter.clone();
        clients.push(tokio::spawn(async move {
            let mut samples = Vec::new();
            let mut n = c as u64 * 1_000_000_000;
            while Instant::now() < deadline {
                let (status, body) = if batch == 1 {
                    agent.post("/audit-logs", ingest_body(n)).await
                } else {
                    let entries: Vec<Value> = (0..batch).map(|i| ingest_body(n + i)).collect();
                    agent
                        .post("/audit-logs/batch", json!({"entries": entries}))
                        .await
                };
                assert_eq!(status, reqwest::StatusCode::CREATED, "{body}");
                n += batch;
                counter.fetch_add(batch, Ordering::Relaxed);
                let last = body
                    .get("id")
                    .or_else(|| body["ids"].as_array().and_then(|ids| ids.last()));
                if n.is_multiple_of(batch * 10) || batch == 1 && n.is_multiple_of(50) {
                    samples.push((
                        Instant::now(),
                        last.and_then(Value::as_str).unwrap_or_default().to_owned(),
                    ));
                }
            }
            samples
        }));
    }
    let started = Instant::now();
    let mut samples = Vec::new();
    for client in clients {
        samples.extend(client.await.unwrap());
    }
    let elapsed = started.elapsed();
    let accepted = counter.load(Ordering::Relaxed);
    // Let the linker catch up, then stop sampling.
    linked_up(&account).await;
    stop.store(true, Ordering::Relaxed);
    let heads = heads.await.unwrap();
    let mut lags = Vec::new();
    for (answered, id) in samples {
        let seq: Option<i64> = sqlx::query_scalar("SELECT seq FROM audit_logs WHERE id = $1")
            .bind(&id)
            .fetch_one(&mut *account.conn().await.unwrap())
            .await
            .unwrap();
        let Some(seq) = seq else { continue };
        let linked_at = heads
            .iter()
            .find(|(_, head)| *head >= seq)
            .map(|(at, _)| *at);
        if let Some(linked_at) = linked_at {
            lags.push(linked_at.saturating_duration_since(answered));
        }
    }
    let rate = accepted as f64 / elapsed.as_secs_f64();
    server.stop().await;

    let baseline = plain_inserts(options, postgres, batch).await;
    let label = if batch == 1 {
        "single-entry requests"
    } else {
        "batches of 100"
    };
    let target = match (batch, postgres.is_some()) {
        (1, true) => Some(3_000.0),
        (1, false) => None,
        (_, true) => Some(15_000.0),
        (_, false) => Some(20_000.0),
    };
    println!(
        "ingest, {label}, {} clients: {rate:.0} entries/s; plain unchained INSERTs of the same rows: {baseline:.0} rows/s; ratio {:.2} (aim ≥ 0.7)",
        options.clients,
        rate / baseline
    );
    if let Some(target) = target {
        println!("  target ≥ {target:.0}/s: {}", verdict(rate >= target));
    }
    let p99 = percentile(&mut lags, 99.0);
    println!(
        "  chain linking lag (commit → linked), {} samples: p50 {} p99 {} (target p99 ≤ 1 s: {})",
        lags.len(),
        ms(percentile(&mut lags, 50.0)),
        ms(p99),
        verdict(p99 <= Duration::from_secs(1))
    );
}

/// Waits until no entry is queued for the linker; a figure taken before would be wrong.
async fn linked_up(store: &Store) {
    for _ in 0..3_000 {
        let pending: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM audit_unlinked")
            .fetch_one(&mut *store.conn().await.unwrap())
            .await
            .unwrap();
        if pending == 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("the chain linker is still behind 30 s after the writing stopped");
}

async fn poll_heads(store: Store, account: String, stop: Arc<AtomicBool>) -> Vec<(Instant, i64)> {
    let mut heads = Vec::new();
    while !stop.load(Ordering::Relaxed) {
        let seq: Option<i64> =
            sqlx::query_scalar("SELECT seq FROM audit_heads WHERE account_id = $1")
                .bind(&account)
                .fetch_optional(&mut *store.conn().await.unwrap())
                .await
                .unwrap();
        heads.push((Instant::now(), seq.unwrap_or(0)));
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    heads
}

/// The baseline: the same rows, the same concurrency and batch size, written with plain
/// INSERT transactions straight into the database: no HTTP, no chain.
async fn plain_inserts(options: &Options, postgres: Option<&str>, batch: u64) -> f64 {
    let database = harness::database(postgres).await;
    let store = database.store().await;
    let account = uuid::Uuid::now_v7().to_string();
    let deadline = Instant::now() + Duration::from_secs(options.seconds);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..options.clients {
        let store = store.clone();
        let account = account.clone();
        tasks.push(tokio::spawn(async move {
            let mut written = 0u64;
            while Instant::now() < deadline {
                let now = Timestamp::now();
                let rows = (0..batch)
                    .map(|i| entry(&account, c as u64 * 1_000_000_000 + written + i, now))
                    .collect();
                let mut tx = store.begin().await.unwrap();
                audit::insert_entries(&mut tx, rows).await.unwrap();
                tx.commit_unaudited().await.unwrap();
                written += batch;
            }
            written
        }));
    }
    let mut total = 0;
    for task in tasks {
        total += task.await.unwrap();
    }
    let rate = total as f64 / started.elapsed().as_secs_f64();
    store.close().await;
    rate
}

async fn large_chain(options: &Options, postgres: Option<&str>) -> anyhow::Result<()> {
    let (server, admin) = harness::server(postgres).await;
    let (_, me) = admin.get("/auth/me").await;
    let account = me["account_id"].as_str().unwrap().to_owned();
    let store = server.state.store.clone();
    let started = Instant::now();
    fill(&store, &account, options.entries).await;
    let written = started.elapsed();
    // The server's linker links the rows as they arrive: time what is left when writing stops.
    let started = Instant::now();
    linked_up(&store).await;
    let behind = started.elapsed();
    // Read as a user would right after such a load: no ANALYZE, nothing warmed up.
    println!(
        "large chain: {} entries written in {:.1} s, the last linked {} after the last write",
        options.entries,
        written.as_secs_f64(),
        ms(behind)
    );
    reads(&server, &admin, &account, options.entries).await?;
    if options.settle > 0 {
        tokio::time::sleep(Duration::from_secs(options.settle)).await;
        println!("after {} s idle:", options.settle);
        reads(&server, &admin, &account, options.entries).await?;
    }
    server.stop().await;
    Ok(())
}

async fn reads(
    server: &TestServer,
    admin: &Client,
    account: &str,
    entries: u64,
) -> anyhow::Result<()> {
    searches(admin).await;
    statistics(admin).await;
    export(admin, entries).await;
    verification(server, admin, account).await
}

const ACTIONS: [&str; 8] = [
    "job.run",
    "job.cancel",
    "host.update",
    "webhook.create",
    "webhook.delete",
    "user.login",
    "deployment.start",
    "script.execute",
];

/// Entries spread over the last 7 days, varied in every filtered dimension.
async fn fill(store: &Store, account: &str, count: u64) {
    let now = Timestamp::now().micros();
    let span = 7 * 86_400_000_000_i64;
    let mut n = 0;
    while n < count {
        let mut rows = Vec::with_capacity(1_000);
        for _ in 0..1_000.min(count - n) {
            let at = Timestamp::from_micros(now - span + (span / count as i64) * n as i64);
            let mut e = entry(account, n, at);
            e.action = ACTIONS[(n % 8) as usize].to_owned();
            e.resource_type = ["job", "host", "webhook", "user"][(n % 4) as usize].to_owned();
            e.actor_id = Some(format!("actor-{}", n % 500));
            e.actor_email = Some(format!("user{}@example.com", n % 500));
            e.organization_id = Some(format!("org-{}", n % 20));
            e.outcome = if n % 50 == 0 {
                Outcome::Failure
            } else {
                Outcome::Success
            };
            e.actor_type = [
                ActorType::User,
                ActorType::Agent,
                ActorType::System,
                ActorType::Workflow,
            ][(n % 4) as usize];
            rows.push(e);
            n += 1;
        }
        let mut tx = store.begin().await.unwrap();
        audit::record_all(&mut tx, rows).await.unwrap();
        tx.commit_unaudited().await.unwrap();
    }
}

async fn searches(admin: &Client) {
    let filters = [
        "actor_type=workflow",
        "actor_id=actor-123",
        "actor_email=user77%40example.com",
        "action=webhook.create",
        "action=webhook.*",
        "resource_type=host",
        "resource_id=job-4242",
        "organization_id=org-7",
        "outcome=failure",
        "from=2026-01-01T00:00:00Z",
        // Text in the newest entries, and text only far below them.
        "q=backup%20999",
        "q=backup%204242",
    ];
    let mut worst = Duration::ZERO;
    for filter in filters {
        let mut samples = Vec::new();
        for _ in 0..30 {
            let started = Instant::now();
            let (status, body) = admin.get(&format!("/audit-logs?{filter}")).await;
            samples.push(started.elapsed());
            assert_eq!(status, reqwest::StatusCode::OK, "{body}");
        }
        let p95 = percentile(&mut samples, 95.0);
        worst = worst.max(p95);
        println!("  search first page, {filter}: p95 {}", ms(p95));
    }
    println!(
        "  worst single-filter p95 {} (target ≤ 20 ms: {})",
        ms(worst),
        verdict(worst <= Duration::from_millis(20))
    );
}

async fn statistics(admin: &Client) {
    let mut samples = Vec::new();
    for _ in 0..10 {
        let started = Instant::now();
        let (status, stats) = admin.get("/audit-logs/stats?days=7").await;
        samples.push(started.elapsed());
        assert_eq!(status, reqwest::StatusCode::OK, "{stats}");
    }
    let worst = percentile(&mut samples, 100.0);
    println!(
        "  7-day statistics: worst of 10 {} (target ≤ 500 ms: {})",
        ms(worst),
        verdict(worst <= Duration::from_millis(500))
    );
}

async fn export(admin: &Client, entries: u64) {
    let rss_before = harness::rss_bytes();
    let started = Instant::now();
    let mut response = admin
        .request(reqwest::Method::GET, "/audit-logs/export?format=csv")
        .send()
        .await
        .unwrap();
    let (mut bytes, mut lines, mut peak) = (0usize, 0usize, rss_before);
    while let Some(chunk) = response.chunk().await.unwrap() {
        bytes += chunk.len();
        lines += chunk.iter().filter(|b| **b == b'\n').count();
        peak = peak.max(harness::rss_bytes());
    }
    let elapsed = started.elapsed();
    let rate = (lines.saturating_sub(1)) as f64 / elapsed.as_secs_f64();
    let growth = peak.saturating_sub(rss_before) as f64 / 1_048_576.0;
    println!(
        "  CSV export: {} rows ({:.0} MB) in {:.1} s = {rate:.0} entries/s (target ≥ 150,000: {}); RSS growth {growth:.1} MB (target ≤ 50 MB: {})",
        lines.saturating_sub(1),
        bytes as f64 / 1_048_576.0,
        elapsed.as_secs_f64(),
        verdict(rate >= 150_000.0),
        verdict(growth <= 50.0)
    );
    assert!(lines as u64 > entries, "the export holds every entry");
}

async fn verification(server: &TestServer, admin: &Client, account: &str) -> anyhow::Result<()> {
    let started = Instant::now();
    let (status, report) = admin.get("/audit-logs/integrity").await;
    let elapsed = started.elapsed();
    assert_eq!(status, reqwest::StatusCode::OK);
    assert_eq!(report["valid"], true, "{report}");
    let checked = report["entries_checked"].as_u64().unwrap_or(0);
    let rate = checked as f64 / elapsed.as_secs_f64();

    // Baseline: chained SHA-256 alone over the same canonical bytes (reading is not timed).
    let store = &server.state.store;
    let account = account.parse()?;
    let (mut hashing, mut hashed) = (Duration::ZERO, 0u64);
    let mut prev = [0u8; 32];
    let mut batches = audit::walk(store, account, AuditFilter::default(), 5_000).await?;
    while let Some(batch) = batches.next().await {
        let bytes: Vec<Vec<u8>> = batch?
            .fields()
            .map(|entry| {
                let mut bytes = Vec::new();
                write_canonical_json(&entry, &mut bytes);
                bytes
            })
            .collect();
        let started = Instant::now();
        for entry in &bytes {
            let mut digest = Sha256::new();
            digest.update(prev);
            digest.update(entry);
            prev = digest.finalize().into();
        }
        hashing += started.elapsed();
        hashed += bytes.len() as u64;
    }
    let bare = hashed as f64 / hashing.as_secs_f64();
    println!(
        "  integrity: {checked} entries in {:.1} s = {rate:.0} entries/s (target ≥ 300,000: {}); bare chained SHA-256 over the same bytes {bare:.0} entries/s; ratio {:.2}",
        elapsed.as_secs_f64(),
        verdict(rate >= 300_000.0),
        rate / bare
    );
    Ok(())
}

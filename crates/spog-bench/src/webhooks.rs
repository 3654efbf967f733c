//! Issue 4's targets: sustained delivery to a local receiver beside a bare HTTP client
//! posting the same payloads to the same receiver; publish → first attempt latency at a fixed
//! rate; a 100,000-delivery backlog to a receiver that is down (memory and the cost of
//! one claim, beside the same claim on a small backlog). Issue 12's noisy neighbour is
//! replayed against a release server by `spog-bench abuse --only neighbour`.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use parking_lot::Mutex;
use serde_json::{Value, json};
use spog_core::Timestamp;
use spog_core::events::EventType;
use spog_server::events::{self, Announcements, NewEvent};
use spog_server::testing::{Client, TestServer, test_config};
use spog_store::Store;
use spog_store::testing::TestDatabase;

use crate::harness::{self, ms, percentile, verdict};

#[derive(clap::Args)]
pub struct Options {
    /// Also run on PostgreSQL, creating databases on this server.
    #[arg(long)]
    postgres: Option<String>,
    /// Seconds per throughput and latency measurement.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Subscriptions every event fans out to, in the throughput run.
    #[arg(long, default_value_t = 10)]
    subscriptions: usize,
    /// Concurrent publishing clients in the throughput run.
    #[arg(long, default_value_t = 8)]
    publishers: usize,
    /// Subscriptions every event fans out to, in the latency run.
    #[arg(long, default_value_t = 1)]
    latency_subscriptions: usize,
    /// Events per second in the latency run.
    #[arg(long, default_value_t = 500)]
    rate: u64,
    /// Deliveries in the backlog run.
    #[arg(long, default_value_t = 100_000)]
    backlog: u64,
    /// Run only this part: throughput, latency or backlog.
    #[arg(long)]
    only: Option<String>,
}

pub async fn run(options: Options) -> anyhow::Result<()> {
    let mut backends = vec![None];
    if let Some(url) = &options.postgres {
        backends.push(Some(url.as_str()));
    }
    for postgres in backends {
        println!("== webhooks on {} ==", harness::backend_name(postgres));
        let run = |part: &str| options.only.as_deref().is_none_or(|only| only == part);
        if run("throughput") {
            throughput(&options, postgres).await?;
        }
        if run("latency") {
            latency(&options, postgres).await?;
        }
        if run("backlog") {
            backlog(&options, postgres).await?;
        }
    }
    Ok(())
}

/// A receiver answering 200 at once, counting requests and noting when each event's first
/// request arrived (by the `n` of its data).
#[derive(Clone)]
pub(crate) struct Receiver {
    pub(crate) url: String,
    pub(crate) count: Arc<AtomicU64>,
    arrivals: Arc<Mutex<HashMap<u64, Instant>>>,
}

pub(crate) async fn receiver() -> Receiver {
    let count = Arc::new(AtomicU64::new(0));
    let arrivals: Arc<Mutex<HashMap<u64, Instant>>> = Arc::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let (counter, seen) = (Arc::clone(&count), Arc::clone(&arrivals));
    let app = axum::Router::new().fallback(move |body: Bytes| {
        let (counter, seen) = (Arc::clone(&counter), Arc::clone(&seen));
        async move {
            let at = Instant::now();
            counter.fetch_add(1, Ordering::Relaxed);
            if let Ok(value) = serde_json::from_slice::<Value>(&body)
                && let Some(n) = value["data"]["n"].as_u64()
            {
                seen.lock().entry(n).or_insert(at);
            }
            "ok"
        }
    });
    tokio::spawn(async move { axum::serve(listener, app).await });
    Receiver {
        url,
        count,
        arrivals,
    }
}

pub(crate) async fn start(postgres: Option<&str>) -> TestServer {
    let database = Arc::new(harness::database(postgres).await);
    let dir = std::env::temp_dir().join(format!("spog-bench-{}", uuid::Uuid::now_v7()));
    let mut config = test_config(&database, dir);
    // The production pool size, not the tests' smaller one.
    config.database_max_connections = spog_server::Config::default().database_max_connections;
    TestServer::start_with(database, config).await
}

/// The database a server runs on; it lives as long as this handle or the server does.
fn database_of(server: &TestServer) -> Arc<TestDatabase> {
    Arc::clone(&server.database)
}

pub(crate) async fn organization(admin: &Client) -> String {
    let (_, orgs) = admin.get("/organizations").await;
    orgs[0]["id"].as_str().unwrap().to_owned()
}

pub(crate) async fn subscribe(admin: &Client, org: &str, url: &str, count: usize) {
    for n in 0..count {
        let (status, body) = admin
            .post(
                "/webhooks",
                json!({"organization_id": org, "name": format!("bench {n}"), "url": url,
                       "secret": "a benchmark secret", "event_types": ["job.completed"]}),
            )
            .await;
        assert!(status.is_success(), "{body}");
    }
}

fn event(org: &str, n: u64) -> Value {
    json!({"event_type": "job.completed", "organization_id": org,
           "data": {"n": n, "job_id": format!("job-{n}"), "host": "web-1", "exit_code": 0}})
}

async fn throughput(options: &Options, postgres: Option<&str>) -> anyhow::Result<()> {
    let server = start(postgres).await;
    let admin = server.admin().await;
    let org = organization(&admin).await;
    let receiver = receiver().await;
    subscribe(&admin, &org, &receiver.url, options.subscriptions).await;
    let publisher = admin.token_client("system", &["events.publish"]).await;

    let stop = Arc::new(AtomicBool::new(false));
    let published = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for p in 0..options.publishers {
        let (publisher, org, stop, published) = (
            publisher.clone(),
            org.clone(),
            Arc::clone(&stop),
            Arc::clone(&published),
        );
        tasks.push(tokio::spawn(async move {
            let mut n = p as u64 * 1_000_000_000;
            while !stop.load(Ordering::Relaxed) {
                let (status, body) = publisher.post("/events", event(&org, n)).await;
                assert!(status.is_success(), "{body}");
                published.fetch_add(1, Ordering::Relaxed);
                n += 1;
            }
        }));
    }
    // Measure in the steady state, after a second of warm-up.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (received_before, published_before) = (
        receiver.count.load(Ordering::Relaxed),
        published.load(Ordering::Relaxed),
    );
    let window = Instant::now();
    tokio::time::sleep(Duration::from_secs(options.seconds)).await;
    let elapsed = window.elapsed().as_secs_f64();
    let delivered = receiver.count.load(Ordering::Relaxed) - received_before;
    let events = published.load(Ordering::Relaxed) - published_before;
    stop.store(true, Ordering::Relaxed);
    for task in tasks {
        task.await?;
    }
    let expected = published.load(Ordering::Relaxed) * options.subscriptions as u64;
    let drain = Instant::now();
    while receiver.count.load(Ordering::Relaxed) < expected {
        anyhow::ensure!(
            drain.elapsed() < Duration::from_secs(120),
            "deliveries did not drain"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let drained_in = drain.elapsed();
    let rate = delivered as f64 / elapsed;
    println!(
        "sustained delivery, {} subscriptions, {} publishers: {:.0} deliveries/s while publishing {:.0} events/s; backlog drained {} after publishing stopped ({})",
        options.subscriptions,
        options.publishers,
        rate,
        events as f64 / elapsed,
        ms(drained_in),
        verdict(rate >= 3000.0)
    );
    let (drained, drain_rate) = drain_in_bulk(&server, &org, &receiver).await?;
    println!(
        "  the engine alone: {drained} deliveries enqueued in bulk through the store, delivered at {drain_rate:.0}/s ({})",
        verdict(drain_rate >= 3000.0)
    );
    let bare = bare_client(&receiver, &org, options.seconds).await;
    println!(
        "  baseline: a bare reqwest client, {} in flight, same payloads and receiver: {:.0} requests/s (engine at {:.0}% of it)",
        server.state.config.delivery_concurrency,
        bare,
        100.0 * rate / bare
    );
    server.stop().await;
    Ok(())
}

/// Enqueues 3,000 events (30,000 deliveries to the 10 subscriptions) in bulk transactions,
/// and measures from the first commit to the last delivery.
async fn drain_in_bulk(
    server: &TestServer,
    org: &str,
    receiver: &Receiver,
) -> anyhow::Result<(u64, f64)> {
    let (account, organization) = ids(server, org).await?;
    let subscriptions: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM webhooks")
        .fetch_one(&mut *server.state.store.conn().await?)
        .await?;
    let before = receiver.count.load(Ordering::Relaxed);
    let started = Instant::now();
    for _ in 0..6 {
        let mut tx = server.state.store.begin().await?;
        let mut announcements = Announcements::default();
        for n in 0..500 {
            let data = json!({"n": n, "host": "web-1", "exit_code": 0});
            let now = Timestamp::now();
            let event = NewEvent::new(account, organization, EventType::JobCompleted, now, data);
            events::publish(&mut tx, event, now, &mut announcements).await?;
        }
        tx.commit_unaudited().await?;
        announcements.send(&server.state.bus).await;
    }
    let expected = 3_000 * subscriptions as u64;
    while receiver.count.load(Ordering::Relaxed) - before < expected {
        anyhow::ensure!(
            started.elapsed() < Duration::from_secs(120),
            "the drain stalled"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    Ok((expected, expected as f64 / started.elapsed().as_secs_f64()))
}

/// A plain client posting the engine's payload shape to the same receiver, with as many
/// requests in flight as the engine allows itself.
async fn bare_client(receiver: &Receiver, org: &str, seconds: u64) -> f64 {
    let client = reqwest::Client::new();
    let concurrency = spog_server::Config::default().delivery_concurrency as usize;
    let before = receiver.count.load(Ordering::Relaxed);
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let body = Bytes::from(
        json!({"id": uuid::Uuid::now_v7(), "event_type": "job.completed", "timestamp": Timestamp::now(),
               "account_id": uuid::Uuid::now_v7(), "organization_id": org,
               "data": {"job_id": "job-1", "host": "web-1", "exit_code": 0}})
        .to_string(),
    );
    let started = Instant::now();
    let workers: Vec<_> = (0..concurrency)
        .map(|_| {
            let (client, url, body) = (client.clone(), receiver.url.clone(), body.clone());
            tokio::spawn(async move {
                while Instant::now() < deadline {
                    let response = client
                        .post(&url)
                        .header("content-type", "application/json")
                        .header("x-webhook-event", "job.completed")
                        .body(body.clone())
                        .send()
                        .await
                        .unwrap();
                    let _ = response.bytes().await;
                }
            })
        })
        .collect();
    for worker in workers {
        worker.await.unwrap();
    }
    (receiver.count.load(Ordering::Relaxed) - before) as f64 / started.elapsed().as_secs_f64()
}

async fn latency(options: &Options, postgres: Option<&str>) -> anyhow::Result<()> {
    let server = start(postgres).await;
    let admin = server.admin().await;
    let org = organization(&admin).await;
    let receiver = receiver().await;
    subscribe(&admin, &org, &receiver.url, options.latency_subscriptions).await;
    let publisher = admin.token_client("system", &["events.publish"]).await;
    let total = options.rate * options.seconds;
    let sent: Arc<Mutex<HashMap<u64, Instant>>> = Arc::default();
    let answered: Arc<Mutex<Vec<Duration>>> = Arc::default();
    let mut ticker = tokio::time::interval(Duration::from_secs_f64(1.0 / options.rate as f64));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut tasks = Vec::with_capacity(total as usize);
    for n in 0..total {
        ticker.tick().await;
        let (publisher, org, sent) = (publisher.clone(), org.clone(), Arc::clone(&sent));
        let answered = Arc::clone(&answered);
        tasks.push(tokio::spawn(async move {
            let started = Instant::now();
            sent.lock().insert(n, started);
            let (status, body) = publisher.post("/events", event(&org, n)).await;
            assert!(status.is_success(), "{body}");
            answered.lock().push(started.elapsed());
        }));
    }
    for task in tasks {
        task.await?;
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    while (receiver.arrivals.lock().len() as u64) < total && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut samples: Vec<Duration> = {
        let sent = sent.lock();
        receiver
            .arrivals
            .lock()
            .iter()
            .filter_map(|(n, at)| sent.get(n).map(|s| at.saturating_duration_since(*s)))
            .collect()
    };
    let (p50, p99) = (
        percentile(&mut samples, 50.0),
        percentile(&mut samples, 99.0),
    );
    println!(
        "publish -> first attempt at {} events/s, {} subscriptions ({} events, {} arrived): p50 {}, p99 {}, max {} ({})",
        options.rate,
        options.latency_subscriptions,
        total,
        samples.len(),
        ms(p50),
        ms(p99),
        ms(percentile(&mut samples, 100.0)),
        verdict(
            p50 <= Duration::from_millis(20)
                && p99 <= Duration::from_millis(200)
                && samples.len() as u64 == total
        )
    );
    let mut answers = answered.lock().clone();
    println!(
        "  of which POST /events itself (request to 202): p50 {}, p99 {}",
        ms(percentile(&mut answers, 50.0)),
        ms(percentile(&mut answers, 99.0))
    );
    server.stop().await;
    Ok(())
}

async fn backlog(options: &Options, postgres: Option<&str>) -> anyhow::Result<()> {
    let server = start(postgres).await;
    let admin = server.admin().await;
    let org = organization(&admin).await;
    // Port 9 (discard) has no listener here: every attempt is refused at once.
    subscribe(&admin, &org, "http://127.0.0.1:9/down", 10).await;
    let database = database_of(&server);
    let store = server.state.store.clone();
    let (account, organization) = ids(&server, &org).await?;
    let rss_before = harness::rss_bytes();
    let loaded = Instant::now();
    let events = options.backlog / 10;
    for chunk in 0..events.div_ceil(1000) {
        let mut tx = store.begin().await?;
        let mut announcements = Announcements::default();
        for _ in 0..1000.min(events - chunk * 1000) {
            let data = json!({"job_id": "job-1", "host": "web-1"});
            let now = Timestamp::now();
            let event = NewEvent::new(account, organization, EventType::JobCompleted, now, data);
            events::publish(&mut tx, event, now, &mut announcements).await?;
        }
        tx.commit_unaudited().await?;
        announcements.send(&server.state.bus).await;
    }
    let load_time = loaded.elapsed();
    // The engine makes every first attempt (all refused) and schedules the retries.
    let mut rss = Vec::new();
    let churn = Instant::now();
    loop {
        rss.push(harness::rss_bytes());
        let backlog = spog_store::deliveries::backlog(&mut *store.conn().await?, None).await?;
        if backlog.pending == 0 && backlog.delivering == 0 {
            break;
        }
        anyhow::ensure!(churn.elapsed() < Duration::from_secs(600), "backlog stuck");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let churned_in = churn.elapsed();
    let peak = rss.iter().copied().max().unwrap_or(0);
    println!(
        "backlog of {} deliveries to a down receiver: loaded in {}, first attempts all made in {} ({:.0}/s); RSS {} MB before, peak {} MB, {} MB after",
        options.backlog,
        ms(load_time),
        ms(churned_in),
        options.backlog as f64 / churned_in.as_secs_f64(),
        rss_before / 1_048_576,
        peak / 1_048_576,
        harness::rss_bytes() / 1_048_576
    );
    server.stop().await;
    let store = Store::connect(&database.url, &Default::default()).await?;
    claim_cost(&store, options.backlog).await
}

pub(crate) async fn ids(
    server: &TestServer,
    org: &str,
) -> anyhow::Result<(
    spog_core::Id<spog_core::model::Account>,
    spog_core::Id<spog_core::model::Organization>,
)> {
    let account: String = sqlx::query_scalar("SELECT account_id FROM organizations WHERE id = $1")
        .bind(org)
        .fetch_one(&mut *server.state.store.conn().await?)
        .await?;
    Ok((account.parse()?, org.parse()?))
}

/// After the benchmark's own mass updates, what autovacuum would soon do on PostgreSQL.
async fn settle(store: &Store) -> anyhow::Result<()> {
    if store.backend() == spog_store::Backend::Postgres {
        sqlx::query("VACUUM ANALYZE deliveries")
            .execute(&mut *store.conn().await?)
            .await?;
    }
    Ok(())
}

/// What one engine tick costs with the whole backlog due at once, beside the same tick with
/// a backlog of 1,000: the claim reads an index range of its batch size, whatever waits.
async fn claim_cost(store: &Store, backlog: u64) -> anyhow::Result<()> {
    // The per-target limit lifted, so that each claim takes its whole batch from the ten
    // subscriptions' backlog: this measures the claim's reads, not the limit.
    let policy = spog_store::deliveries::ClaimPolicy {
        lease: Duration::from_secs(60),
        max_in_flight: 100_000,
        timeouts_before_backoff: 3,
        backoff: Duration::from_secs(30),
    };
    let time_claims = |store: Store| async move {
        let mut samples = Vec::new();
        for _ in 0..5 {
            let started = Instant::now();
            let claimed = spog_store::deliveries::claim(
                &store,
                500,
                &policy,
                &Default::default(),
                Timestamp::now(),
            )
            .await?;
            samples.push(started.elapsed());
            anyhow::ensure!(claimed.len() == 500, "claimed {}", claimed.len());
        }
        Ok::<_, anyhow::Error>(percentile(&mut samples, 50.0))
    };
    let due = |limit: Option<u64>| {
        let store = store.clone();
        async move {
            sqlx::query("UPDATE deliveries SET status = 'retrying', next_attempt_at = 0, lease_token = NULL, lease_expires_at = NULL")
                .execute(&mut *store.conn().await?)
                .await?;
            if let Some(limit) = limit {
                // Keep only `limit` due; push the rest far into the future.
                sqlx::query(sqlx::AssertSqlSafe(format!(
                    "UPDATE deliveries SET next_attempt_at = 9000000000000000 WHERE id NOT IN \
                     (SELECT id FROM deliveries ORDER BY id LIMIT {limit})"
                )))
                .execute(&mut *store.conn().await?)
                .await?;
            }
            settle(&store).await
        }
    };
    due(None).await?;
    let large = time_claims(store.clone()).await?;
    due(Some(3_000)).await?;
    let small = time_claims(store.clone()).await?;
    sqlx::query("UPDATE deliveries SET next_attempt_at = 9000000000000000")
        .execute(&mut *store.conn().await?)
        .await?;
    settle(store).await?;
    let idle_claim = {
        let started = Instant::now();
        let claimed = spog_store::deliveries::claim(
            store,
            500,
            &policy,
            &Default::default(),
            Timestamp::now(),
        )
        .await?;
        anyhow::ensure!(claimed.is_empty());
        started.elapsed()
    };
    println!(
        "  one claim of 500: {} with {} due, {} with 3,000 due; an idle tick (nothing due, {} waiting) {}",
        ms(large),
        backlog,
        ms(small),
        backlog,
        ms(idle_claim)
    );
    store.close().await;
    Ok(())
}

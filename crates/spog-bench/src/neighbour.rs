//! Issue 12's noisy neighbour: tenant A has a backlog pending to a black hole (an endpoint
//! that accepts connections and never answers); how long tenant B's delivery takes to reach
//! its receiver. Target: 3 s with 5,000 of A's pending.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde_json::json;
use spog_core::Timestamp;
use spog_core::events::EventType;
use spog_store::events::{self, NewEvent};

use crate::harness::{ms, verdict};
use crate::webhooks::{ids, organization, receiver, start, subscribe};

const TARGET: Duration = Duration::from_secs(3);

/// Accepts connections and never reads, answers or closes them; counts what it accepted.
async fn black_hole() -> (String, Arc<AtomicU64>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let accepted = Arc::new(AtomicU64::new(0));
    let counter = Arc::clone(&accepted);
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            counter.fetch_add(1, Ordering::Relaxed);
            held.push(socket);
        }
    });
    (base, accepted)
}

pub async fn noisy_neighbour(backlog: u64, postgres: Option<&str>) -> anyhow::Result<()> {
    let server = start(postgres).await;
    let acme = server.admin().await;
    let acme_org = organization(&acme).await;
    let (hole, accepted) = black_hole().await;
    subscribe(&acme, &acme_org, &format!("{hole}/never"), 1).await;
    let (account, org) = ids(&server, &acme_org).await?;
    let store = &server.state.store;
    for chunk in 0..backlog.div_ceil(1000) {
        let mut tx = store.begin().await?;
        for _ in 0..1000.min(backlog - chunk * 1000) {
            let event = NewEvent {
                account,
                organization: org,
                event_type: EventType::JobCompleted,
                occurred_at: Timestamp::now(),
                data: r#"{"job_id":"job-1"}"#.to_owned(),
                idempotency_key: None,
            };
            events::publish(&mut tx, event, Timestamp::now()).await?;
        }
        tx.commit_unaudited().await?;
    }
    let started = Instant::now();
    while accepted.load(Ordering::Relaxed) == 0 {
        anyhow::ensure!(
            started.elapsed() < Duration::from_secs(30),
            "no attempt reached the black hole"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    spog_server::bootstrap::create_account(
        store,
        "globex",
        &spog_core::validate::Email::parse("e", "root@globex.example")?,
        "globex admin password",
        spog_core::audit::Source::Cli,
    )
    .await?;
    let globex = server
        .login("root@globex.example", "globex admin password")
        .await;
    let globex_org = organization(&globex).await;
    let receiver = receiver().await;
    subscribe(&globex, &globex_org, &receiver.url, 1).await;
    let published = Instant::now();
    let (status, body) = globex
        .post(
            "/events",
            json!({"event_type": "job.completed", "organization_id": globex_org, "data": {"n": 1}}),
        )
        .await;
    anyhow::ensure!(status.is_success(), "{body}");
    while receiver.count.load(Ordering::Relaxed) == 0 {
        anyhow::ensure!(
            published.elapsed() < Duration::from_secs(120),
            "tenant B's delivery never arrived"
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let waited = published.elapsed();
    println!(
        "noisy neighbour: tenant B's delivery while tenant A has {backlog} pending to a black hole: {} ({}, target {} s); the black hole holds {} of tenant A's attempts",
        ms(waited),
        verdict(waited <= TARGET),
        TARGET.as_secs(),
        accepted.load(Ordering::Relaxed)
    );
    server.stop().await;
    Ok(())
}

//! Issue 12 item 7, the noisy neighbour: tenant A's thousands of deliveries to an endpoint
//! that accepts connections and never answers must not hold up tenant B's delivery to a
//! healthy receiver.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use futures::StreamExt;
use serde_json::json;
use spog_server::testing::Client;
use tokio::io::AsyncReadExt;
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio::task::JoinSet;

use super::{Figure, Options, Tally, figure, start, text, timed};
use crate::harness::ms;
use crate::process;

const ATTACK: &str = "neighbour";
/// How long tenant B's delivery is awaited.
const PATIENCE: Duration = Duration::from_secs(30);
const B_EMAIL: &str = "admin@tenant-b.example.com";
const B_PASSWORD: &str = "tenant b's long password";

pub async fn run(postgres: Option<String>, options: Options) -> anyhow::Result<Vec<Figure>> {
    let target = start(
        postgres.as_deref(),
        &options,
        &[
            ("allow_insecure_targets", "true"),
            ("outbound_allow_cidrs", "127.0.0.0/8"),
        ],
    )
    .await?;
    let mut background = JoinSet::new();
    let (black_hole, held) = black_hole(&mut background).await?;
    let (receiver, mut arrivals) = receiver(&mut background).await?;

    // Tenant B: a second account, made by the command line against the same database.
    create_account(&target).await?;
    let b = login(&target.admin().await, B_EMAIL, B_PASSWORD).await?;
    let b_org = organization(&b).await?;
    subscribe(&b, &b_org, &receiver).await?;

    // Tenant A: one subscription to the black hole and as many events as deliveries.
    let a = target.admin().await;
    let a_org = organization(&a).await?;
    subscribe(&a, &a_org, &black_hole).await?;
    let publisher = a.token_client("system", &["events.publish"]).await;
    let publishing = Instant::now();
    let mut published = Tally::default();
    let answers: Vec<Option<u16>> = futures::stream::iter(0..options.pending)
        .map(|n| {
            let request = publisher
                .request(reqwest::Method::POST, "/events")
                .timeout(Duration::from_secs(30))
                .json(&event(&a_org, n));
            async move { timed(request).await.status }
        })
        .buffer_unordered(32)
        .collect()
        .await;
    answers.into_iter().for_each(|status| published.add(status));
    println!(
        "  tenant A published {} events to its black-hole subscription in {}: {published}",
        options.pending,
        ms(publishing.elapsed())
    );
    // A's attempts are under way once the black hole holds their connections.
    let waiting = Instant::now();
    while held.load(Ordering::Relaxed) == 0 && waiting.elapsed() < Duration::from_secs(10) {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let sent = Instant::now();
    let (status, body) = b.post("/events", event(&b_org, 0)).await;
    anyhow::ensure!(status.is_success(), "tenant B publishing: {status} {body}");
    let arrived = tokio::time::timeout(PATIENCE, arrivals.recv()).await;
    println!(
        "  the black hole held {} of A's connections when B published",
        held.load(Ordering::Relaxed)
    );
    let (value, ok) = match arrived {
        Ok(Some(at)) => {
            let took = at.saturating_duration_since(sent);
            (ms(took), took <= Duration::from_secs(3))
        }
        _ => (format!("not delivered within {}", ms(PATIENCE)), false),
    };
    drop(background);
    Ok(vec![figure(
        ATTACK,
        format!(
            "tenant B's delivery while A has {} pending to a black hole",
            options.pending
        ),
        value,
        "≤ 3 s",
        ok,
    )])
}

fn event(organization: &str, n: usize) -> serde_json::Value {
    json!({"event_type": "job.completed", "organization_id": organization,
           "data": {"n": n, "job_id": format!("job-{n}"), "host": "web-1", "exit_code": 0}})
}

/// A listener that accepts every connection and never answers; it counts those it holds.
async fn black_hole(tasks: &mut JoinSet<()>) -> anyhow::Result<(String, Arc<AtomicUsize>)> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}/hook", listener.local_addr()?);
    let held = Arc::new(AtomicUsize::new(0));
    let counter = held.clone();
    tasks.spawn(async move {
        let mut connections = JoinSet::new();
        while let Ok((mut stream, _)) = listener.accept().await {
            let held = counter.clone();
            held.fetch_add(1, Ordering::Relaxed);
            connections.spawn(async move {
                // Read the request and whatever follows, until the client gives up.
                let mut buf = [0u8; 4096];
                while matches!(stream.read(&mut buf).await, Ok(n) if n > 0) {}
                held.fetch_sub(1, Ordering::Relaxed);
            });
            while connections.try_join_next().is_some() {}
        }
    });
    Ok((url, held))
}

/// A receiver answering 200 at once; it reports when each request arrived.
async fn receiver(
    tasks: &mut JoinSet<()>,
) -> anyhow::Result<(String, mpsc::UnboundedReceiver<Instant>)> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}/hook", listener.local_addr()?);
    let (arrived, arrivals) = mpsc::unbounded_channel();
    let app = axum::Router::new().fallback(move || {
        let _ = arrived.send(Instant::now());
        async { "ok" }
    });
    tasks.spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok((url, arrivals))
}

async fn create_account(target: &super::Target) -> anyhow::Result<()> {
    let mut command = process::command(&target.data_dir, target.database_url.as_deref());
    command
        .args(["admin", "create-account", "--name", "tenant-b"])
        .args(["--admin-email", B_EMAIL, "--admin-password", B_PASSWORD])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped());
    let mut child = command.spawn()?;
    let started = Instant::now();
    loop {
        if let Some(status) = child.try_wait()? {
            let mut error = String::new();
            if let Some(mut stderr) = child.stderr.take() {
                std::io::Read::read_to_string(&mut stderr, &mut error)?;
            }
            anyhow::ensure!(
                status.success(),
                "spog admin create-account: {status} {error}"
            );
            return Ok(());
        }
        if started.elapsed() > Duration::from_secs(60) {
            let _ = child.kill();
            let _ = child.wait();
            anyhow::bail!("spog admin create-account did not finish in 60 s");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn login(any: &Client, email: &str, password: &str) -> anyhow::Result<Client> {
    let anonymous = Client {
        token: None,
        ..any.clone()
    };
    let (status, body) = anonymous
        .post("/auth/login", json!({"email": email, "password": password}))
        .await;
    anyhow::ensure!(
        status.is_success(),
        "logging in as {email}: {status} {body}"
    );
    Ok(anonymous.with_token(&text(&body["token"], "a token")?))
}

async fn organization(client: &Client) -> anyhow::Result<String> {
    let (_, organizations) = client.get("/organizations").await;
    text(&organizations[0]["id"], "an organization")
}

async fn subscribe(client: &Client, organization: &str, url: &str) -> anyhow::Result<()> {
    let (status, body) = client
        .post(
            "/webhooks",
            json!({"organization_id": organization, "name": "abuse", "url": url,
                   "secret": "a webhook secret", "event_types": ["job.completed"]}),
        )
        .await;
    anyhow::ensure!(status.is_success(), "subscribing {url}: {status} {body}");
    Ok(())
}

//! Issue 5's real-time targets on one `spog serve` process: 5,000 open WebSockets within
//! 250 MB of server memory, a broadcast reaching all of them (p99 ≤ 1 s), and a single
//! user's notification arriving within 50 ms (p99) of `POST /notifications` returning.
//! Baselines from the same run: the server's idle memory, and the plain round trip of the
//! same POST.

use std::time::{Duration, Instant};

use futures::StreamExt;
use serde_json::{Value, json};
use spog_server::testing::Client;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;

use crate::harness::{ms, percentile, verdict};
use crate::process::ServerProcess;

#[derive(clap::Args)]
pub struct Options {
    #[arg(long, default_value_t = 5_000)]
    connections: usize,
    /// Single-user notifications to time.
    #[arg(long, default_value_t = 200)]
    notifications: usize,
}

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn open(client: &Client) -> Socket {
    let url = format!(
        "{}/ws?token={}",
        client.url("").replace("http://", "ws://"),
        client.token.as_deref().unwrap()
    );
    let (mut socket, _) = tokio_tungstenite::connect_async(url)
        .await
        .expect("connecting");
    // The greeting carries the unread count.
    socket.next().await.expect("a greeting").expect("a frame");
    socket
}

fn notification(target: Value, title: &str) -> Value {
    let mut body =
        json!({"category": "system", "severity": "info", "title": title, "message": "benchmark"});
    body.as_object_mut()
        .unwrap()
        .extend(target.as_object().unwrap().clone());
    body
}

/// Waits for the next notification on `socket`, returning when it arrived.
async fn next_notification(socket: &mut Socket) -> Instant {
    loop {
        match socket.next().await {
            Some(Ok(Message::Text(text))) if text.contains("\"notification\"") => {
                return Instant::now();
            }
            Some(Ok(_)) => continue,
            other => panic!("the socket ended: {other:?}"),
        }
    }
}

pub async fn run(options: Options) -> anyhow::Result<()> {
    let data_dir =
        std::env::temp_dir().join(format!("spog-bench-realtime-{}", uuid::Uuid::now_v7()));
    let server = ServerProcess::start(data_dir.clone(), None).await;
    let admin = server.admin().await;
    let crowd = admin
        .user_with_roles_on(&server.base, "crowd@example.com", &["viewer"])
        .await;
    let single = admin
        .user_with_roles_on(&server.base, "single@example.com", &["viewer"])
        .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let idle_rss = server.rss_bytes();

    // The crowd: every socket reports when the broadcast reaches it.
    let (arrivals, mut arrived) = mpsc::unbounded_channel();
    let started = Instant::now();
    for _ in 0..options.connections {
        let mut socket = open(&crowd).await;
        let arrivals = arrivals.clone();
        tokio::spawn(async move {
            let at = next_notification(&mut socket).await;
            let _ = arrivals.send(at);
            // Stay open until the benchmark ends.
            while socket.next().await.is_some() {}
        });
    }
    println!(
        "opened {} WebSockets in {:.1} s",
        options.connections,
        started.elapsed().as_secs_f64()
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    let busy_rss = server.rss_bytes();

    let posted = Instant::now();
    let (status, body) = admin
        .post(
            "/notifications",
            notification(json!({"broadcast": true}), "to everyone"),
        )
        .await;
    assert_eq!(status, reqwest::StatusCode::CREATED, "{body}");
    let returned = Instant::now();
    let mut delays = Vec::with_capacity(options.connections);
    while delays.len() < options.connections {
        match tokio::time::timeout(Duration::from_secs(30), arrived.recv()).await {
            Ok(Some(at)) => delays.push(at.saturating_duration_since(returned)),
            _ => break,
        }
    }
    let reached = delays.len();
    let broadcast_p99 = percentile(&mut delays, 99.0);

    let mut socket = open(&single).await;
    let (mut single_delays, mut round_trips) = (Vec::new(), Vec::new());
    for n in 0..options.notifications {
        let sent = Instant::now();
        let (status, _) = admin
            .post(
                "/notifications",
                notification(
                    json!({"user_email": "single@example.com"}),
                    &format!("n{n}"),
                ),
            )
            .await;
        assert_eq!(status, reqwest::StatusCode::CREATED);
        let returned = Instant::now();
        round_trips.push(returned - sent);
        let at = next_notification(&mut socket).await;
        single_delays.push(at.saturating_duration_since(returned));
    }
    let single_p99 = percentile(&mut single_delays, 99.0);
    let mb = |b: u64| b as f64 / 1_048_576.0;
    println!("== real time on one spog serve (SQLite) ==");
    println!(
        "server RSS: idle {:.1} MB (baseline); with {} WebSockets {:.1} MB (target ≤ 250 MB: {})",
        mb(idle_rss),
        options.connections,
        mb(busy_rss),
        verdict(mb(busy_rss) <= 250.0)
    );
    println!(
        "broadcast reached {reached}/{} sockets; after POST returned ({} after it was sent): p50 {} p99 {} (target p99 ≤ 1 s: {})",
        options.connections,
        ms(returned - posted),
        ms(percentile(&mut delays, 50.0)),
        ms(broadcast_p99),
        verdict(reached == options.connections && broadcast_p99 <= Duration::from_secs(1))
    );
    println!(
        "single-user notification, {} samples: after POST returned p50 {} p99 {} (target p99 ≤ 50 ms: {}); the POST's own round trip p50 {} (baseline)",
        options.notifications,
        ms(percentile(&mut single_delays, 50.0)),
        ms(single_p99),
        verdict(single_p99 <= Duration::from_millis(50)),
        ms(percentile(&mut round_trips, 50.0))
    );
    drop(server);
    let _ = std::fs::remove_dir_all(data_dir);
    Ok(())
}

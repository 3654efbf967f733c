//! Issue 12 items 8 and 9: list fields far longer than any real rule needs must be refused
//! (422 naming the field), quickly and never with a 500; one token must not open WebSockets
//! without limit.

use std::time::Duration;

use futures::StreamExt;
use serde_json::{Value, json};
use spog_server::testing::Client;
use tokio::task::JoinSet;
use tokio_tungstenite::tungstenite::Message;

use super::{Figure, Options, figure, fixture, start, timed};
use crate::harness::ms;

const ATTACK: &str = "lists";
const CHANNELS: usize = 40_000;
const HOSTS: usize = 200_000;

pub async fn run(postgres: Option<String>, options: Options) -> anyhow::Result<Vec<Figure>> {
    let target = start(postgres.as_deref(), &options, &[]).await?;
    let admin = target.admin().await;
    let fixture = fixture(&admin).await?;
    let channel_ids: Vec<String> = (0..CHANNELS)
        .map(|_| uuid::Uuid::now_v7().to_string())
        .collect();
    let channels = rule(
        &admin,
        json!({"kind": "event", "organization_id": fixture.organization, "name": "many channels",
               "severity": "high", "event_types": ["job.completed"], "channel_ids": channel_ids}),
    )
    .await;
    // One real host, repeated: every element passes the per-element check.
    let host_ids = vec![fixture.host.clone(); HOSTS];
    let hosts = rule(
        &admin,
        json!({"kind": "metric", "organization_id": fixture.organization, "name": "many hosts",
               "severity": "high", "metric": "cpu.usage", "operator": ">", "threshold": 90.0,
               "host_ids": host_ids}),
    )
    .await;
    let refused = |answer: &super::Answer| answer.status == Some(422);
    let mut figures = vec![
        figure(
            ATTACK,
            format!("an alert rule with {CHANNELS} channel_ids"),
            channels.to_string(),
            "422",
            refused(&channels),
        ),
        // Naming a host twice means naming it once: repeats are dropped while the list is
        // read, so this rule holds one host and costs one host's write (the unfixed service
        // wrote 200,000 rows under the write lock for seconds).
        figure(
            ATTACK,
            format!("an alert rule with {HOSTS} host_ids (one host repeated)"),
            hosts.to_string(),
            "≤ 1 s (repeats count once)",
            hosts.ok(Duration::from_secs(1)) || refused(&hosts),
        ),
    ];
    let accepted = websockets(&admin, options.websockets).await;
    figures.push(figure(
        ATTACK,
        format!("WebSockets accepted of {} on one token", options.websockets),
        accepted.to_string(),
        "capped, fewer than all",
        accepted < options.websockets,
    ));
    Ok(figures)
}

async fn rule(admin: &Client, body: Value) -> super::Answer {
    timed(
        admin
            .request(reqwest::Method::POST, "/alert-rules")
            .timeout(Duration::from_secs(60))
            .json(&body),
    )
    .await
}

/// Opens `count` WebSockets on `client`'s token at once and counts those that were greeted
/// and are still open a second later.
async fn websockets(client: &Client, count: usize) -> usize {
    let url = format!(
        "{}/ws?token={}",
        client.url("").replace("http://", "ws://"),
        client.token.as_deref().unwrap_or_default()
    );
    let mut opening = JoinSet::new();
    for _ in 0..count {
        let url = url.clone();
        opening.spawn(async move {
            let open = async {
                let (mut socket, _) = tokio_tungstenite::connect_async(url).await.ok()?;
                match socket.next().await {
                    Some(Ok(Message::Text(_))) => Some(socket),
                    _ => None,
                }
            };
            tokio::time::timeout(Duration::from_secs(10), open)
                .await
                .ok()
                .flatten()
        });
    }
    let mut sockets = Vec::new();
    while let Some(opened) = opening.join_next().await {
        sockets.extend(opened.ok().flatten());
    }
    let greeted = sockets.len();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let mut open = 0;
    for socket in &mut sockets {
        // Still open: nothing but pings arrive within a moment.
        let closed = loop {
            match tokio::time::timeout(Duration::from_millis(5), socket.next()).await {
                Err(_) => break false,
                Ok(Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Text(_)))) => continue,
                Ok(_) => break true,
            }
        };
        open += usize::from(!closed);
    }
    println!(
        "  {count} WebSockets on one token: {greeted} greeted, {open} still open a second later (waited up to {} each)",
        ms(Duration::from_secs(10))
    );
    open
}

//! Issue 12 item 6: one agent token opening thousands of terminal sessions against the
//! default soft fd limit must get answers (201, or 429 past a quota), never a 5xx, and the
//! server must go on accepting: sessions that were started still take events and end.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use futures::StreamExt;
use serde_json::json;

use super::{Figure, Options, Tally, figure, fixture, fresh_client, pooled_client, start, timed};
use crate::harness::ms;

const ATTACK: &str = "sessions";
const IN_FLIGHT: usize = 16;
/// Past this many requests without an answer the server has stopped answering: the rest are
/// not sent.
const GIVE_UP_AFTER: usize = 32;
/// Started sessions that then stream events and end, from the first and from the last.
const FOLLOWED: usize = 10;

pub async fn run(postgres: Option<String>, options: Options) -> anyhow::Result<Vec<Figure>> {
    let target = start(postgres.as_deref(), &options, &[]).await?;
    let admin = target.admin().await;
    let fixture = fixture(&admin).await?;
    let gateway = admin
        .token_client("agent", &["session_recordings.write"])
        .await;
    let token = gateway.token.clone().unwrap_or_default();
    let http = pooled_client(Duration::from_secs(10));
    let fds_before = target.server().open_fds();
    let unanswered = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let url = gateway.url("/terminal/sessions");
    let body = json!({"host_id": fixture.host, "user_id": fixture.user, "shell": "/bin/bash",
                      "width": 80, "height": 24});
    let results: Vec<Start> = futures::stream::iter(0..options.sessions)
        .map(|_| {
            let (http, url, body, token) = (http.clone(), url.clone(), body.clone(), token.clone());
            let unanswered = unanswered.clone();
            async move {
                if unanswered.load(Ordering::Relaxed) >= GIVE_UP_AFTER {
                    return Start::NotSent;
                }
                let sent = http.post(&url).bearer_auth(&token).json(&body).send().await;
                let Ok(response) = sent else {
                    unanswered.fetch_add(1, Ordering::Relaxed);
                    return Start::Answered(None, None);
                };
                let status = response.status().as_u16();
                let id = response
                    .json::<serde_json::Value>()
                    .await
                    .ok()
                    .and_then(|v| v["id"].as_str().map(str::to_owned));
                Start::Answered(Some(status), id)
            }
        })
        .buffered(IN_FLIGHT)
        .collect()
        .await;
    let took = started.elapsed();
    let fds_after = target.server().open_fds();
    let (mut starts, mut not_sent, mut ids) = (Tally::default(), 0, Vec::new());
    for result in results {
        match result {
            Start::NotSent => not_sent += 1,
            Start::Answered(status, id) => {
                starts.add(status);
                ids.extend(id);
            }
        }
    }
    println!(
        "  {} session starts on one agent token in {}: {starts} ({not_sent} not sent once {GIVE_UP_AFTER} went unanswered); the server's open fds {fds_before} → {fds_after}",
        options.sessions,
        ms(took),
    );
    let mut followed = Tally::default();
    let last = ids
        .len()
        .saturating_sub(FOLLOWED)
        .max(FOLLOWED.min(ids.len()));
    let chosen: Vec<&String> = ids.iter().take(FOLLOWED).chain(&ids[last..]).collect();
    for id in &chosen {
        let events = json!([[0.1, "o", "hello\r\n"], [0.2, "o", "world\r\n"]]);
        let appended = timed(
            http.post(gateway.url(&format!("/terminal/sessions/{id}/events")))
                .bearer_auth(&token)
                .json(&events),
        )
        .await;
        followed.add(appended.status);
        let ended = timed(
            http.post(gateway.url(&format!("/terminal/sessions/{id}/end")))
                .bearer_auth(&token)
                .json(&json!({})),
        )
        .await;
        followed.add(ended.status);
    }
    let health =
        timed(fresh_client(Duration::from_secs(5)).get(format!("{}/healthz", target.base()))).await;
    println!(
        "  events, then end, on {} of the started sessions: {followed}; then GET /healthz on a new connection: {health}",
        chosen.len()
    );
    let failures = starts.server_errors()
        + starts.unanswered()
        + followed.server_errors()
        + followed.unanswered();
    Ok(vec![figure(
        ATTACK,
        format!(
            "{} session starts with a soft fd limit of {}: 5xx or unanswered (then events and end on some)",
            options.sessions, options.fd_limit
        ),
        format!(
            "{} 5xx, {} unanswered; started {}, refused 429 {}; /healthz afterwards {health}",
            starts.server_errors() + followed.server_errors(),
            starts.unanswered() + followed.unanswered(),
            starts.count(201),
            starts.count(429)
        ),
        "no 5xx, all answered",
        failures == 0 && health.status == Some(200),
    )])
}

enum Start {
    /// The server had stopped answering.
    NotSent,
    /// The status (None: no answer) and the session's id.
    Answered(Option<u16>, Option<String>),
}

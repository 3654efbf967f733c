//! `spog-agent run`, the real binary, against a test hub speaking the agent protocol.

mod common;

use std::time::{Duration, Instant};

use common::{CREDENTIAL, TestAgent, TestHub, exit_code, run_binary};
use futures_util::SinkExt;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

const FAST: &str = "metrics_interval = \"1s\"\nreconnect_max_backoff = \"2s\"";

fn metric_names(metrics: &Value) -> Vec<String> {
    metrics["samples"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["metric"].as_str().unwrap().to_owned())
        .collect()
}

fn sample_times(metrics: &Value) -> Vec<String> {
    metrics["samples"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["at"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn the_agent_says_hello_first_and_sends_metrics_once_welcomed() {
    let hub = TestHub::start().await;
    let agent = TestAgent::enrolled(&hub.url(), FAST);
    let _child = agent.spawn_run();

    let mut peer = hub.accept().await;
    assert_eq!(peer.path, "/api/v1/agent/connect");
    assert_eq!(peer.authorization, format!("Bearer {CREDENTIAL}"));
    assert_eq!(peer.protocols, "spog-agent.v1");

    let hello = peer.next_json().await;
    assert_eq!(hello["type"], "hello");
    assert_eq!(hello["agent_version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(hello["facts"]["os"], "linux");
    assert!(!hello["facts"]["hostname"].as_str().unwrap().is_empty());
    assert!(hello["facts"]["cpu_count"].as_u64().unwrap() >= 1);
    assert_eq!(hello["capabilities"]["terminal"], false);

    // Nothing but hello until the hub welcomes the agent.
    assert_eq!(
        peer.next_json_within(Duration::from_millis(2500)).await,
        None
    );
    peer.welcome().await;

    // The batches sampled meanwhile come first, then one a second.
    let first = peer.next_metrics().await;
    let names = metric_names(&first);
    for name in [
        "cpu.percent",
        "memory.used_percent",
        "load1",
        "load5",
        "load15",
    ] {
        assert!(names.iter().any(|n| n == name), "{name} in {names:?}");
    }
    assert!(names.iter().any(|n| n == "disk.used_percent"));
    for sample in first["samples"].as_array().unwrap() {
        match sample["metric"].as_str().unwrap() {
            "disk.used_percent" => assert!(sample["labels"]["mount"].is_string()),
            m if m.starts_with("net.") => assert_ne!(sample["labels"]["interface"], "lo"),
            _ => assert!(sample.get("labels").is_none(), "{sample}"),
        }
    }
    let second = peer.next_metrics().await;
    assert!(sample_times(&second)[0] > sample_times(&first)[0]);

    // A terminal is refused (this build has none); unknown messages are ignored.
    peer.send_json(json!({"type": "reboot", "now": true})).await;
    peer.send_json(
        json!({"type": "open", "channel": 7, "session_id": "s", "cols": 80,
                          "rows": 24, "term": "xterm-256color"}),
    )
    .await;
    let refusal = loop {
        let message = peer.next_json().await;
        if message["type"] != "metrics" {
            break message;
        }
    };
    assert_eq!(
        refusal,
        json!({"type": "open_error", "channel": 7, "code": "terminal_disabled",
               "message": "web terminals are not enabled on this host"})
    );
    peer.next_metrics().await;
}

#[tokio::test]
async fn after_the_hub_drops_the_connection_the_agent_reconnects_within_the_backoff() {
    let hub = TestHub::start().await;
    let agent = TestAgent::enrolled(&hub.url(), FAST);
    let _child = agent.spawn_run();

    let mut peer = hub.accept().await;
    peer.handshake().await;
    peer.next_metrics().await;
    drop(peer);
    let dropped_at = Instant::now();

    let mut peer = hub.accept().await;
    let waited = dropped_at.elapsed();
    assert!(
        waited <= Duration::from_secs(4),
        "reconnected after {waited:?}"
    );
    let hello = peer.handshake().await;
    assert_eq!(hello["type"], "hello");
    peer.next_metrics().await;

    // A protocol violation closes the socket with 1008; the agent comes back.
    peer.send_json(json!({"type": "open", "channel": "seven"}))
        .await;
    let frame = peer.close_frame().await.expect("a close frame");
    assert_eq!(u16::from(frame.code), 1008);
    let mut peer = hub.accept().await;
    peer.handshake().await;

    // A message over 1 MiB closes it with 1009; the agent comes back.
    let huge = format!(r#"{{"type":"note","text":"{}"}}"#, "x".repeat(1 << 20));
    // The agent closes as soon as it reads the message's length, with the rest unread, so its
    // kernel may reset the connection: the send can fail, and a reset can discard the close
    // frame still in flight. Then the agent's own account must name the cause.
    let sent = peer.ws.send(Message::text(huge)).await;
    let frame = match sent {
        Ok(()) => peer.close_frame().await,
        Err(_) => None,
    };
    match frame {
        Some(frame) => assert_eq!(u16::from(frame.code), 1009),
        None => {
            let deadline = Instant::now() + Duration::from_secs(10);
            while !agent.log().contains("the hub sent too much") {
                assert!(Instant::now() < deadline, "{}", agent.log());
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
    let mut peer = hub.accept().await;
    peer.handshake().await;
    assert!(agent.log().contains("disconnected"), "{}", agent.log());
}

#[tokio::test]
async fn a_second_agent_on_the_same_state_directory_refuses_to_start() {
    let hub = TestHub::start().await;
    let agent = TestAgent::enrolled(&hub.url(), FAST);
    let _child = agent.spawn_run();
    let mut peer = hub.accept().await;
    peer.handshake().await;

    let (code, _, stderr) = run_binary(&["run", "--config", agent.config.to_str().unwrap()]).await;
    assert_eq!(code, 1);
    assert!(
        stderr.contains("another spog-agent is already running"),
        "{stderr}"
    );
}

#[tokio::test]
async fn samples_taken_while_the_hub_is_away_arrive_later_and_the_oldest_are_dropped_past_the_buffer()
 {
    let mut hub = TestHub::start().await;
    let agent = TestAgent::enrolled(&hub.url(), &format!("{FAST}\nmetrics_buffer = 100"));
    let _child = agent.spawn_run();

    let mut peer = hub.accept().await;
    peer.handshake().await;
    let before = peer.next_metrics().await;
    let per_batch = before["samples"].as_array().unwrap().len();
    let last_before = sample_times(&before)[0].clone();
    let fit = 100 / per_batch;

    hub.go_away();
    drop(peer);
    // Long enough to sample three batches more than the buffer holds.
    tokio::time::sleep(Duration::from_secs(fit as u64 + 3)).await;
    hub.listen_again().await;

    let mut peer = hub.accept().await;
    peer.handshake().await;
    let mut buffered = Vec::new();
    let mut dropped = 0;
    let reconnected_at = common_time_now();
    loop {
        let metrics = peer.next_metrics().await;
        dropped += metrics["dropped_samples"].as_u64().unwrap_or(0);
        let at = sample_times(&metrics)[0].clone();
        if at >= reconnected_at {
            break;
        }
        buffered.push(metrics);
    }
    let held: usize = buffered
        .iter()
        .map(|m| m["samples"].as_array().unwrap().len())
        .sum();
    assert!(held <= 100, "{held} samples held with a buffer of 100");
    assert!(dropped > 0, "the oldest samples were dropped and counted");
    let oldest_kept = sample_times(&buffered[0])[0].clone();
    assert!(
        oldest_kept > next_second(&last_before),
        "the oldest were dropped, not the newest: {oldest_kept} after {last_before}"
    );
    let status = agent.status_json();
    assert!(status["dropped_samples"].as_u64().unwrap() >= dropped);
}

/// Now, written as the agent writes sample times (fixed width: text order is time order).
fn common_time_now() -> String {
    rfc3339(std::time::SystemTime::now())
}

fn rfc3339(time: std::time::SystemTime) -> String {
    humantime::format_rfc3339_micros(time).to_string()
}

/// A sample time 1.5 s later: past the next sampling at a 1 s interval.
fn next_second(at: &str) -> String {
    rfc3339(humantime::parse_rfc3339(at).unwrap() + Duration::from_millis(1500))
}

#[tokio::test]
async fn a_credential_closed_with_4401_ends_the_agent_with_status_3() {
    let hub = TestHub::start().await;
    let agent = TestAgent::enrolled(&hub.url(), FAST);
    let mut child = agent.spawn_run();

    let mut peer = hub.accept().await;
    peer.handshake().await;
    peer.close(4401, "credential revoked").await;

    assert_eq!(exit_code(&mut child).await, 3);
    assert!(
        agent.log().contains("credential revoked: enroll again"),
        "{}",
        agent.log()
    );
    assert_eq!(agent.status_json()["state"], "revoked");
}

#[tokio::test]
async fn a_credential_refused_at_the_upgrade_ends_the_agent_with_status_3() {
    let hub = TestHub::start().await;
    let agent = TestAgent::enrolled(&hub.url(), FAST);
    let mut child = agent.spawn_run();

    hub.refuse(401).await;

    assert_eq!(exit_code(&mut child).await, 3);
    assert!(agent.log().contains("credential revoked: enroll again"));
}

#[tokio::test]
async fn a_hub_shutting_down_is_followed_by_a_prompt_reconnect_whatever_the_failures_before() {
    let hub = TestHub::start().await;
    let agent = TestAgent::enrolled(
        &hub.url(),
        "metrics_interval = \"1s\"\nreconnect_max_backoff = \"60s\"",
    );
    let _child = agent.spawn_run();

    // Three failures raise the next ceiling to 8 s...
    for _ in 0..3 {
        hub.refuse(503).await;
    }
    let mut peer = hub.accept().await;
    peer.handshake().await;
    // ...but 1001 starts afresh: at most 1 s.
    peer.close(1001, "hub shutting down").await;
    let closed_at = Instant::now();
    let mut peer = hub.accept().await;
    let waited = closed_at.elapsed();
    assert!(
        waited <= Duration::from_millis(2500),
        "reconnected after {waited:?}"
    );
    peer.handshake().await;
    assert!(agent.log().contains("503"), "{}", agent.log());
}

#[tokio::test]
async fn sigterm_closes_the_socket_cleanly_and_status_follows_the_connection() {
    let hub = TestHub::start().await;
    let agent = TestAgent::enrolled(&hub.url(), FAST);
    let mut child = agent.spawn_run();
    let config = agent.config.to_str().unwrap().to_owned();

    let mut peer = hub.accept().await;
    peer.handshake().await;
    peer.next_metrics().await;
    // The status file follows within a moment of the welcome.
    let deadline = Instant::now() + Duration::from_secs(5);
    let (code, stdout, _) = loop {
        let result = run_binary(&["status", "--config", &config]).await;
        if result.0 == 0 || Instant::now() > deadline {
            break result;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(code, 0, "{stdout}");
    assert!(stdout.contains("host 0190c0de"), "{stdout}");
    assert!(stdout.contains("connected since"), "{stdout}");
    assert!(stdout.contains("test-instance"), "{stdout}");

    let pid = child.id().unwrap().to_string();
    let killed = tokio::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .await
        .unwrap();
    assert!(killed.success());
    let frame = peer.close_frame().await.expect("a close frame");
    assert_eq!(u16::from(frame.code), 1000);
    assert_eq!(exit_code(&mut child).await, 0);

    let (code, stdout, _) = run_binary(&["status", "--config", &config]).await;
    assert_eq!(code, 1);
    assert!(stdout.contains("not running"), "{stdout}");
    assert_eq!(agent.status_json()["state"], "stopped");
}

#[tokio::test]
async fn a_hub_that_falls_silent_is_left_after_45_seconds() {
    let hub = TestHub::start().await;
    let agent = TestAgent::enrolled(&hub.url(), FAST);
    let _child = agent.spawn_run();

    let mut peer = hub.accept().await;
    peer.handshake().await;
    let welcomed_at = Instant::now();
    // The hub stops reading: no pong, no message reaches the agent any more.
    let mut next = hub.accept_within(Duration::from_secs(60)).await;
    let silent_for = welcomed_at.elapsed();
    assert!(
        silent_for >= Duration::from_secs(44) && silent_for <= Duration::from_secs(50),
        "left after {silent_for:?}"
    );
    next.handshake().await;
    assert!(
        agent.log().contains("nothing heard from the hub for 45s"),
        "{}",
        agent.log()
    );
    drop(peer);
}

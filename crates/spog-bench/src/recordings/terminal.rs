//! Terminal recordings: concurrent ingest over WebSockets, and the `.cast` download.

use std::io::Write;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};

use spog_server::testing::Client;

use super::{Bench, rate, socket};
use crate::harness::verdict;

/// Output bytes per event, and events per message: 64 KB of output per message.
const EVENT_BYTES: usize = 1024;
const EVENTS: usize = 64;

/// One message of `EVENTS` output events from `time` on, 1 ms apart.
fn message(time: f64) -> String {
    // 1022 printable bytes and CR LF: what a busy terminal prints.
    let line: String = (0..EVENT_BYTES - 2)
        .map(|i| char::from(b'a' + (i % 26) as u8))
        .collect();
    let mut out = String::with_capacity(EVENTS * (EVENT_BYTES + 32));
    out.push('[');
    for i in 0..EVENTS {
        if i > 0 {
            out.push(',');
        }
        out.push_str(&format!(
            "[{:.3},\"o\",\"{line}\\r\\n\"]",
            time + i as f64 * 0.001
        ));
    }
    out.push(']');
    out
}

/// `count` messages in time order.
fn messages(count: usize) -> Vec<Utf8Bytes> {
    (0..count)
        .map(|i| Utf8Bytes::from(message(i as f64 * EVENTS as f64 * 0.001)))
        .collect()
}

async fn start(bench: &Bench) -> Value {
    let (status, session) = bench
        .gateway
        .post(
            "/terminal/sessions",
            json!({"host_id": bench.host, "user_id": bench.user, "shell": "/bin/bash", "width": 200, "height": 50}),
        )
        .await;
    assert!(status.is_success(), "{session}");
    session
}

/// Streams `messages` into a session and waits until the server has taken all of them (it
/// answers the close after the last).
async fn stream(gateway: &Client, session: &str, messages: &[Utf8Bytes]) {
    let mut socket = socket(gateway, &format!("/terminal/sessions/{session}/stream")).await;
    for message in messages {
        socket
            .feed(Message::Text(message.clone()))
            .await
            .expect("streaming");
    }
    socket.close(None).await.expect("closing");
    while let Some(Ok(_)) = socket.next().await {}
}

async fn end(bench: &Bench, session: &str) -> Value {
    let (status, recording) = bench
        .gateway
        .post(&format!("/terminal/sessions/{session}/end"), json!({}))
        .await;
    assert!(status.is_success(), "{recording}");
    recording
}

pub async fn ingest(bench: &Bench, sessions: usize, session_mb: usize) -> anyhow::Result<()> {
    let per_session = (session_mb << 20) / (EVENT_BYTES * EVENTS);
    let messages = Arc::new(messages(per_session));
    let output = (sessions * per_session * EVENTS * EVENT_BYTES) as u64;

    // Baseline: the same bytes appended to as many files, directly.
    let dir = bench.data_dir.join("baseline");
    std::fs::create_dir_all(&dir)?;
    let started = Instant::now();
    for s in 0..sessions {
        let mut file = std::fs::File::create(dir.join(format!("{s}.cast")))?;
        for message in messages.iter() {
            file.write_all(message.as_bytes())?;
        }
        file.sync_data()?;
    }
    let baseline = started.elapsed().as_secs_f64();
    std::fs::remove_dir_all(&dir)?;

    let mut ids = Vec::new();
    for _ in 0..sessions {
        ids.push(start(bench).await["id"].as_str().unwrap().to_owned());
    }
    let started = Instant::now();
    let tasks: Vec<_> = ids
        .iter()
        .map(|id| {
            let (id, messages) = (id.clone(), messages.clone());
            let gateway = bench.gateway.clone();
            tokio::spawn(async move { stream(&gateway, &id, &messages).await })
        })
        .collect();
    for task in tasks {
        task.await?;
    }
    let took = started.elapsed().as_secs_f64();
    let mut recorded = 0;
    for id in &ids {
        recorded += end(bench, id).await["bytes_out"].as_u64().unwrap();
    }
    assert_eq!(recorded, output, "every byte recorded");
    let mb_s = rate(output, took);
    println!(
        "terminal ingest: {sessions} sessions × {session_mb} MB over WebSockets: {mb_s:.0} MB/s \
         ({took:.2} s) — target ≥ 50 MB/s: {}",
        verdict(mb_s >= 50.0)
    );
    println!(
        "  baseline: appending the same bytes to {sessions} files: {:.0} MB/s",
        rate(output, baseline)
    );
    Ok(())
}

pub async fn download(bench: &Bench, mb: usize) -> anyhow::Result<()> {
    let session = start(bench).await;
    let id = session["id"].as_str().unwrap().to_owned();
    let count = (mb << 20) / (EVENT_BYTES * EVENTS);
    stream(&bench.gateway, &id, &messages(count)).await;
    let recording = end(bench, &id).await;
    let recording_id = recording["id"].as_str().unwrap();
    let path = recording["file_path"].as_str().unwrap().to_owned();
    let size = std::fs::metadata(&path)?.len();

    // Baseline: the file read from disk (from the page cache, as the server reads it).
    let started = Instant::now();
    let mut file = std::fs::File::open(&path)?;
    let mut buf = vec![0u8; 1 << 20];
    let mut read = 0u64;
    loop {
        let n = std::io::Read::read(&mut file, &mut buf)?;
        if n == 0 {
            break;
        }
        read += n as u64;
    }
    let baseline = started.elapsed().as_secs_f64();

    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = bench.server.rss_bytes();
    let pid = bench.server.pid();
    let peak = Arc::new(std::sync::atomic::AtomicU64::new(before));
    let sampling = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let sampler = {
        let (peak, sampling) = (peak.clone(), sampling.clone());
        tokio::spawn(async move {
            while sampling.load(std::sync::atomic::Ordering::Relaxed) {
                let rss = crate::harness::rss_of(&format!("/proc/{pid}/status"));
                peak.fetch_max(rss, std::sync::atomic::Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
    };
    let started = Instant::now();
    let response = bench
        .admin
        .request(
            reqwest::Method::GET,
            &format!("/terminal/recordings/{recording_id}/cast"),
        )
        .send()
        .await?;
    assert!(response.status().is_success());
    let mut body = response.bytes_stream();
    let mut downloaded = 0u64;
    let mut first_line = Vec::new();
    while let Some(chunk) = body.next().await {
        let chunk = chunk?;
        if first_line.len() < 4096 {
            first_line.extend_from_slice(&chunk[..chunk.len().min(4096)]);
        }
        downloaded += chunk.len() as u64;
    }
    let took = started.elapsed().as_secs_f64();
    sampling.store(false, std::sync::atomic::Ordering::Relaxed);
    sampler.await?;
    let header_end = first_line.iter().position(|&b| b == b'\n').unwrap();
    let header: Value = serde_json::from_slice(&first_line[..header_end])?;
    assert!(header["duration"].as_f64().unwrap() > 0.0);
    let growth = peak
        .load(std::sync::atomic::Ordering::Relaxed)
        .saturating_sub(before);
    let mb_s = rate(downloaded, took);
    println!(
        ".cast download of {:.0} MB: {mb_s:.0} MB/s ({took:.2} s), server RSS growth {:.1} MB \
         — target ≥ 200 MB/s and ≤ 20 MB: {}",
        downloaded as f64 / 1e6,
        growth as f64 / 1e6,
        verdict(mb_s >= 200.0 && growth <= 20_000_000)
    );
    println!(
        "  baseline: reading the {:.0} MB file: {:.0} MB/s",
        size as f64 / 1e6,
        rate(read, baseline)
    );
    Ok(())
}

//! Terminal recordings: concurrent ingest over WebSockets, and the `.cast` download.

use std::io::Write;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};

use spog_server::testing::Client;

use super::{Bench, Stored, rate, socket};
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
    end_with(&bench.gateway, session).await
}

async fn end_with(gateway: &Client, session: &str) -> Value {
    let (status, recording) = gateway
        .post(&format!("/terminal/sessions/{session}/end"), json!({}))
        .await;
    assert!(status.is_success(), "{status} {recording}");
    assert!(recording["sha256"].is_string(), "sealed: {recording}");
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
    let streamed = started.elapsed().as_secs_f64();
    // Each end seals its recording (hash, compress) and stores it: part of taking it in.
    let ends: Vec<_> = ids
        .iter()
        .map(|id| {
            let (id, gateway) = (id.clone(), bench.gateway.clone());
            tokio::spawn(async move { end_with(&gateway, &id).await })
        })
        .collect();
    let mut recorded = 0;
    for ended in ends {
        recorded += ended.await?["bytes_out"].as_u64().unwrap();
    }
    let took = started.elapsed().as_secs_f64();
    assert_eq!(recorded, output, "every byte recorded");
    let mb_s = rate(output, took);
    println!(
        "terminal ingest: {sessions} sessions × {session_mb} MB over WebSockets, then ended and \
         stored: {mb_s:.0} MB/s ({took:.2} s, of which streaming {streamed:.2} s) — target ≥ 50 \
         MB/s: {}",
        verdict(mb_s >= 50.0)
    );
    println!(
        "  baseline: appending the same bytes to {sessions} files: {:.0} MB/s",
        rate(output, baseline)
    );
    Ok(())
}

pub async fn download(bench: &Bench, stored: &Stored<'_>, mb: usize) -> anyhow::Result<()> {
    let session = start(bench).await;
    let id = session["id"].as_str().unwrap().to_owned();
    let count = (mb << 20) / (EVENT_BYTES * EVENTS);
    stream(&bench.gateway, &id, &messages(count)).await;
    let recording = end(bench, &id).await;
    let recording_id = recording["id"].as_str().unwrap();
    let path = recording["file_path"].as_str().unwrap().to_owned();

    // Baseline: the stored object read and decompressed directly, as the server must.
    let started = Instant::now();
    let compressed = match stored {
        Stored::Local => std::fs::read(&path)?,
        Stored::S3 { s3, bucket } => {
            let key = path.trim_start_matches(&format!("s3://{bucket}/"));
            s3.object(bucket, key).await.expect("the stored object")
        }
    };
    let size = compressed.len();
    let mut decoder = zstd::Decoder::new(compressed.as_slice())?;
    let mut buf = vec![0u8; 1 << 20];
    let mut read = 0u64;
    loop {
        let n = std::io::Read::read(&mut decoder, &mut buf)?;
        if n == 0 {
            break;
        }
        read += n as u64;
    }
    let baseline = started.elapsed().as_secs_f64();
    let target = match stored {
        Stored::Local => 200.0,
        Stored::S3 { .. } => 150.0,
    };

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
    assert_eq!(downloaded, read, "the download is the stored content");
    println!(
        ".cast download of {:.0} MB: {mb_s:.0} MB/s ({took:.2} s), server RSS growth {:.1} MB \
         — target ≥ {target:.0} MB/s and ≤ 20 MB: {}",
        downloaded as f64 / 1e6,
        growth as f64 / 1e6,
        verdict(mb_s >= target && growth <= 20_000_000)
    );
    println!(
        "  baseline: reading the {:.1} MB stored object and decompressing it: {:.0} MB/s",
        size as f64 / 1e6,
        rate(read, baseline)
    );
    Ok(())
}

/// A typical shell session: prompts, commands typed, listings, logs and a build's output,
/// with the colours a shell prints.
fn shell_session() -> Vec<Vec<Value>> {
    let mut batches = Vec::new();
    let mut time = 0.0;
    for n in 0..2_000u32 {
        let mut batch = Vec::new();
        time += 0.8;
        let command = match n % 4 {
            0 => format!("ls -la /var/log/app-{}", n % 37),
            1 => format!("tail -n 5 /var/log/app-{}/server.log", n % 37),
            2 => format!("cargo build --release -p service-{}", n % 11),
            _ => format!("systemctl status worker-{}", n % 13),
        };
        for c in command.chars().chain(['\r']) {
            time += 0.05;
            batch.push(json!([time, "i", c.to_string()]));
        }
        let output: String = match n % 4 {
            0 => (0..6)
                .map(|f| {
                    format!(
                        "-rw-r----- 1 app app {:>7} Dec  7 {:02}:{:02} server.{f}.log\r\n",
                        (n * 7919 + f * 104_729) % 1_000_000,
                        n % 24,
                        (n * 13 + f) % 60
                    )
                })
                .collect(),
            1 => (0..5)
                .map(|l| {
                    format!(
                        "2026-12-07T{:02}:{:02}:{:02}.{:03}Z INFO request id={:08x} path=/api/v1/items/{} status=200 took={}ms\r\n",
                        n % 24, l * 7 % 60, (n + l) % 60, (n * 31 + l) % 1000,
                        n.wrapping_mul(2_654_435_761).wrapping_add(l), n * 5 + l, (n + l * 3) % 250
                    )
                })
                .collect(),
            2 => format!(
                "\u{1b}[1m\u{1b}[32m   Compiling\u{1b}[0m service-{} v0.{}.{}\r\n\u{1b}[1m\u{1b}[32m    Finished\u{1b}[0m `release` profile [optimized] target(s) in {}.{:02}s\r\n",
                n % 11, n % 9, n % 17, 10 + n % 50, n % 100
            ),
            _ => format!(
                "\u{1b}[0;1;32m●\u{1b}[0m worker-{}.service - Worker\r\n     Active: \u{1b}[0;1;32mactive (running)\u{1b}[0m since Mon 2026-12-07 {:02}:{:02}:00 UTC\r\n   Main PID: {} (worker)\r\n",
                n % 13, n % 24, n % 60, 1000 + n * 7
            ),
        };
        time += 0.02;
        batch.push(json!([
            time,
            "o",
            format!("{output}\u{1b}[01;32mops@web-1\u{1b}[0m:\u{1b}[01;34m~\u{1b}[0m$ ")
        ]));
        batches.push(batch);
    }
    batches
}

/// Stored size of a typical shell session against its `.cast`.
pub async fn stored_size(bench: &Bench) -> anyhow::Result<()> {
    let session = start(bench).await;
    let id = session["id"].as_str().unwrap().to_owned();
    for batch in shell_session().chunks(50) {
        let events: Vec<&Value> = batch.iter().flatten().collect();
        let (status, body) = bench
            .gateway
            .post(&format!("/terminal/sessions/{id}/events"), json!(events))
            .await;
        assert!(status.is_success(), "{body}");
    }
    let recording = end(bench, &id).await;
    let cast = bench
        .admin
        .request(
            reqwest::Method::GET,
            &format!(
                "/terminal/recordings/{}/cast",
                recording["id"].as_str().unwrap()
            ),
        )
        .send()
        .await?
        .bytes()
        .await?;
    let stored = recording["stored_bytes"].as_u64().unwrap();
    let share = stored as f64 / cast.len() as f64 * 100.0;
    println!(
        "stored size of a typical shell session: {:.1} KB of a {:.1} KB .cast = {share:.1} % \
         — target ≤ 25 %: {}",
        stored as f64 / 1e3,
        cast.len() as f64 / 1e3,
        verdict(share <= 25.0)
    );
    Ok(())
}

//! Desktop recordings: frame ingest over WebSockets, and the pacing of playback.

use std::io::Write;
use std::time::{Duration, Instant};

use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use spog_server::testing::Client;
use tokio_tungstenite::tungstenite::Message;

use super::{Bench, socket};
use crate::harness::{ms, percentile, verdict};

const FRAME_BYTES: usize = 100 * 1024;
/// Recorded at 20 frames a second.
const FRAME_EVERY_MS: u64 = 50;

/// A 100 KB body that starts like a JPEG (the server checks the magic, not the picture).
fn jpeg(seed: u64) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(FRAME_BYTES);
    bytes.extend_from_slice(&[0xFF, 0xD8, 0xFF, 0xE0]);
    let mut x = seed | 1;
    while bytes.len() < FRAME_BYTES {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        bytes.extend_from_slice(&x.to_le_bytes());
    }
    bytes.truncate(FRAME_BYTES);
    bytes
}

async fn start(bench: &Bench) -> String {
    let (status, recording) = bench
        .gateway
        .post(
            "/desktop/recordings",
            json!({"host_id": bench.host, "user_id": bench.user, "width": 1920, "height": 1080}),
        )
        .await;
    assert!(status.is_success(), "{recording}");
    recording["id"].as_str().unwrap().to_owned()
}

async fn end(client: &Client, id: &str) -> Value {
    let (status, recording) = client
        .post(&format!("/desktop/recordings/{id}/end"), json!({}))
        .await;
    assert!(status.is_success(), "{recording}");
    recording
}

async fn stream(gateway: Client, id: String, frames: usize, image: Vec<u8>) {
    let mut socket = socket(&gateway, &format!("/desktop/recordings/{id}/frames/stream")).await;
    for i in 0..frames {
        let mut message = Vec::with_capacity(8 + image.len());
        message.extend_from_slice(&(i as u64 * FRAME_EVERY_MS).to_be_bytes());
        message.extend_from_slice(&image);
        socket
            .feed(Message::Binary(message.into()))
            .await
            .expect("streaming frames");
    }
    socket.close(None).await.expect("closing");
    while let Some(Ok(_)) = socket.next().await {}
}

pub async fn ingest(bench: &Bench, frames: usize, streams: usize) -> anyhow::Result<()> {
    let per_stream = frames / streams;
    let image = jpeg(7);

    // Baseline: the same frames appended to a file directly.
    let path = bench.data_dir.join("baseline.frames");
    let started = Instant::now();
    let mut file = std::fs::File::create(&path)?;
    for i in 0..per_stream * streams {
        file.write_all(&(i as u64).to_le_bytes())?;
        file.write_all(&(image.len() as u32).to_le_bytes())?;
        file.write_all(&image)?;
    }
    file.sync_data()?;
    let baseline = started.elapsed().as_secs_f64();
    drop(file);
    std::fs::remove_file(&path)?;

    let mut ids = Vec::new();
    for _ in 0..streams {
        ids.push(start(bench).await);
    }
    let started = Instant::now();
    let tasks: Vec<_> = ids
        .iter()
        .map(|id| {
            tokio::spawn(stream(
                bench.gateway.clone(),
                id.clone(),
                per_stream,
                image.clone(),
            ))
        })
        .collect();
    for task in tasks {
        task.await?;
    }
    let took = started.elapsed().as_secs_f64();
    let mut recorded = 0;
    for id in &ids {
        recorded += end(&bench.gateway, id).await["frame_count"]
            .as_u64()
            .unwrap();
    }
    let total = (per_stream * streams) as u64;
    assert_eq!(recorded, total, "every frame recorded");
    let fps = total as f64 / took;
    println!(
        "desktop ingest: {total} frames of 100 KB over {streams} WebSockets: {fps:.0} frames/s \
         ({took:.2} s) — target ≥ 200 frames/s: {}",
        verdict(fps >= 200.0)
    );
    println!(
        "  baseline: appending the same frames to a file: {:.0} frames/s",
        total as f64 / baseline
    );
    Ok(())
}

/// Arrival errors of one player against the recorded times, relative to its first frame.
async fn play(admin: Client, id: String) -> Vec<Duration> {
    let mut socket = socket(&admin, &format!("/desktop/recordings/{id}/stream")).await;
    let mut first: Option<(Instant, u64)> = None;
    let mut errors = Vec::new();
    while let Some(Ok(message)) = socket.next().await {
        match message {
            Message::Binary(bytes) => {
                let now = Instant::now();
                let elapsed = u64::from_be_bytes(bytes[..8].try_into().unwrap());
                let (t0, e0) = *first.get_or_insert((now, elapsed));
                let actual = now - t0;
                let expected = Duration::from_millis(elapsed - e0);
                errors.push(actual.abs_diff(expected));
            }
            Message::Text(text) if text.contains("\"end\"") => break,
            _ => {}
        }
    }
    errors
}

pub async fn pacing(bench: &Bench, players: usize) -> anyhow::Result<()> {
    let id = start(bench).await;
    let frames = 100;
    stream(bench.gateway.clone(), id.clone(), frames, jpeg(11)).await;
    end(&bench.gateway, &id).await;

    // Baseline: the same schedule kept by a bare timer.
    let started = tokio::time::Instant::now();
    let mut timer = Vec::new();
    for i in 0..frames as u64 {
        let due = started + Duration::from_millis(i * FRAME_EVERY_MS);
        tokio::time::sleep_until(due).await;
        timer.push(tokio::time::Instant::now() - due);
    }

    let tasks: Vec<_> = (0..players)
        .map(|_| tokio::spawn(play(bench.admin.clone(), id.clone())))
        .collect();
    let mut errors = Vec::new();
    for task in tasks {
        errors.extend(task.await?);
    }
    assert_eq!(errors.len(), frames * players, "every frame played");
    let p50 = percentile(&mut errors, 50.0);
    let p99 = percentile(&mut errors, 99.0);
    let max = percentile(&mut errors, 100.0);
    println!(
        "desktop playback: {players} players × {frames} frames (100 KB, 20 fps): pacing error \
         p50 {} p99 {} max {} — target p99 ≤ 20 ms: {}",
        ms(p50),
        ms(p99),
        ms(max),
        verdict(p99 <= Duration::from_millis(20))
    );
    println!(
        "  baseline: a bare timer on the same schedule: p99 {}",
        ms(percentile(&mut timer, 99.0))
    );
    Ok(())
}

//! Measures the agent's footprint against its targets (SPEC 12: RSS <= 15 MB, CPU <= 1 % of
//! a core at the default interval, no terminal open). Starts a local hub that speaks the
//! protocol, runs the given agent binary against it with the default configuration (only the
//! state directory changed), and samples /proc/<pid>/stat and /proc/<pid>/status.
//!
//!     cargo build --release -p spog-agent
//!     cargo run -p spog-agent --example footprint -- --agent target/release/spog-agent --seconds 300
//!     (add `--interval 1s` to see in minutes how memory behaves over hours)
#![allow(clippy::result_large_err)] // tungstenite's handshake callback decides its error type.

use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpListener;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::handshake::server::{Request, Response};
use tokio_tungstenite::tungstenite::http::{HeaderValue, header};

const RSS_TARGET_KB: u64 = 15 * 1024;
const CPU_TARGET_PERCENT: f64 = 1.0;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut agent = PathBuf::from("target/release/spog-agent");
    let mut seconds = 300u64;
    // Default: the configuration's (15 s). A shorter one shows in minutes whether memory
    // creeps over hours.
    let mut interval: Option<String> = None;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--agent" => agent = PathBuf::from(args.next().ok_or("--agent PATH")?),
            "--seconds" => seconds = args.next().ok_or("--seconds N")?.parse()?,
            "--interval" => interval = Some(args.next().ok_or("--interval 1s")?),
            other => return Err(format!("unknown argument {other}").into()),
        }
    }

    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let batches = Arc::new(AtomicU64::new(0));
    let samples = Arc::new(AtomicU64::new(0));
    let connections = Arc::new(AtomicU64::new(0));
    tokio::spawn(serve(
        listener,
        connections.clone(),
        batches.clone(),
        samples.clone(),
    ));

    let dir = tempfile::tempdir()?;
    let state = dir.path().join("state");
    std::fs::create_dir_all(&state)?;
    std::fs::write(
        state.join("agent.json"),
        format!(
            r#"{{"server":"http://{addr}","host_id":"footprint","credential":"spog_agent_footprint"}}"#
        ),
    )?;
    let config = dir.path().join("agent.toml");
    let mut toml = format!("state_dir = \"{}\"\n", state.display());
    if let Some(interval) = &interval {
        toml.push_str(&format!("metrics_interval = \"{interval}\"\n"));
    }
    std::fs::write(&config, toml)?;

    let mut child = tokio::process::Command::new(&agent)
        .args(["run", "--config"])
        .arg(&config)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()?;
    let pid = child.id().ok_or("the agent exited at once")?;
    let ticks_per_second = 100.0; // USER_HZ on Linux
    let started = Instant::now();
    let start_ticks = cpu_ticks(pid)?;
    let mut peak_rss = 0;
    let mut rss = 0;
    println!(
        "agent {} (pid {pid}) against ws://{addr}, {seconds} s",
        agent.display()
    );
    while started.elapsed() < Duration::from_secs(seconds) {
        tokio::time::sleep(Duration::from_secs(1)).await;
        if let Some(status) = child.try_wait()? {
            return Err(format!("the agent exited: {status}").into());
        }
        rss = status_kb(pid, "VmRSS:")?;
        peak_rss = peak_rss.max(rss);
        let elapsed = started.elapsed().as_secs();
        if elapsed.is_multiple_of(60) {
            println!("  {elapsed:>4} s: RSS {rss} kB");
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    let used = (cpu_ticks(pid)? - start_ticks) as f64 / ticks_per_second;
    let cpu_percent = used * 100.0 / elapsed;
    let hwm = status_kb(pid, "VmHWM:")?;
    child.kill().await?;

    let interval = interval.as_deref().unwrap_or("15s (default)");
    println!("over {elapsed:.0} s at a metrics interval of {interval}:");
    println!(
        "  RSS now {rss} kB, peak sampled {peak_rss} kB, high-water {hwm} kB (target <= {RSS_TARGET_KB} kB): {}",
        verdict(hwm <= RSS_TARGET_KB)
    );
    println!(
        "  CPU {used:.2} s = {cpu_percent:.3} % of one core (target <= {CPU_TARGET_PERCENT} %): {}",
        verdict(cpu_percent <= CPU_TARGET_PERCENT)
    );
    println!(
        "  hub saw {} connection(s), received {} metrics batches, {} samples",
        connections.load(Ordering::Relaxed),
        batches.load(Ordering::Relaxed),
        samples.load(Ordering::Relaxed)
    );
    Ok(())
}

fn verdict(ok: bool) -> &'static str {
    if ok { "ok" } else { "OVER" }
}

/// utime + stime of the process, in clock ticks.
fn cpu_ticks(pid: u32) -> Result<u64, Box<dyn std::error::Error>> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // Fields after the command name, which is in parentheses and may hold spaces.
    let rest = &stat[stat.rfind(')').ok_or("odd /proc stat")? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of stat, 12 and 13 after the name and state.
    Ok(fields[11].parse::<u64>()? + fields[12].parse::<u64>()?)
}

fn status_kb(pid: u32, key: &str) -> Result<u64, Box<dyn std::error::Error>> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let line = status
        .lines()
        .find(|l| l.starts_with(key))
        .ok_or("no such line")?;
    Ok(line.split_whitespace().nth(1).ok_or("no value")?.parse()?)
}

/// A hub that welcomes every agent and counts its metrics.
async fn serve(
    listener: TcpListener,
    connections: Arc<AtomicU64>,
    batches: Arc<AtomicU64>,
    samples: Arc<AtomicU64>,
) {
    while let Ok((stream, _)) = listener.accept().await {
        connections.fetch_add(1, Ordering::Relaxed);
        let (batches, samples) = (batches.clone(), samples.clone());
        tokio::spawn(async move {
            let callback = |_: &Request, mut response: Response| {
                response.headers_mut().insert(
                    header::SEC_WEBSOCKET_PROTOCOL,
                    HeaderValue::from_static("spog-agent.v1"),
                );
                Ok(response)
            };
            let Ok(mut ws) = tokio_tungstenite::accept_hdr_async(stream, callback).await else {
                return;
            };
            while let Some(Ok(message)) = ws.next().await {
                let Message::Text(text) = message else {
                    continue;
                };
                let Ok(value) = serde_json::from_str::<serde_json::Value>(&text) else {
                    continue;
                };
                match value["type"].as_str() {
                    Some("hello") => {
                        let welcome = r#"{"type":"welcome","host_id":"footprint","instance_id":"local","max_message_bytes":1048576,"server_time":"2026-01-01T00:00:00.000000Z"}"#;
                        if ws.send(Message::text(welcome)).await.is_err() {
                            return;
                        }
                    }
                    Some("metrics") => {
                        batches.fetch_add(1, Ordering::Relaxed);
                        let n = value["samples"].as_array().map_or(0, Vec::len);
                        samples.fetch_add(n as u64, Ordering::Relaxed);
                    }
                    _ => {}
                }
            }
        });
    }
}

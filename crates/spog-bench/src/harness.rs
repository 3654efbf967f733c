//! What every benchmark needs: a real server on a fresh database, clients, percentiles and
//! the process's memory.

use std::time::Duration;

use spog_server::testing::{Client, TestServer};
use spog_store::testing::{self, TestDatabase};

/// A fresh database: PostgreSQL on `postgres` (the server's admin URL) or SQLite.
pub async fn database(postgres: Option<&str>) -> TestDatabase {
    match postgres {
        Some(url) => testing::postgres(url).await,
        None => testing::sqlite(),
    }
}

pub fn backend_name(postgres: Option<&str>) -> &'static str {
    if postgres.is_some() {
        "postgres"
    } else {
        "sqlite"
    }
}

pub async fn server(postgres: Option<&str>) -> (TestServer, Client) {
    let server = TestServer::start(database(postgres).await).await;
    let admin = server.admin().await;
    (server, admin)
}

/// The `p`th percentile (0–100) of `samples`, which it sorts.
pub fn percentile(samples: &mut [Duration], p: f64) -> Duration {
    if samples.is_empty() {
        return Duration::ZERO;
    }
    samples.sort_unstable();
    let rank = ((p / 100.0) * (samples.len() - 1) as f64).round() as usize;
    samples[rank.min(samples.len() - 1)]
}

pub fn ms(duration: Duration) -> String {
    format!("{:.2} ms", duration.as_secs_f64() * 1000.0)
}

/// Resident memory of this process, in bytes.
pub fn rss_bytes() -> u64 {
    rss_of("/proc/self/status")
}

/// `VmRSS` of a `/proc/<pid>/status` file, in bytes.
pub fn rss_of(status_file: &str) -> u64 {
    std::fs::read_to_string(status_file)
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<u64>().ok())
        })
        .map_or(0, |kb| kb * 1024)
}

pub fn verdict(ok: bool) -> &'static str {
    if ok { "meets target" } else { "MISSES target" }
}

//! `cargo run --release -p spog-bench -- <benchmark> [--postgres URL]`

mod abuse;
mod agents;
mod audit;
mod foundation;
mod harness;
mod metrics;
mod process;
mod realtime;
mod recordings;
mod terminal;
mod webhooks;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(about = "spog benchmarks: each prints its figures beside a baseline from the same run")]
struct Cli {
    #[command(subcommand)]
    bench: Bench,
}

#[derive(Subcommand)]
enum Bench {
    /// Hostile load (issue 12): each denial-of-service attack replayed against a release
    /// `spog serve` of its own, each figure beside its target. Needs
    /// `cargo build --release -p spog` first.
    Abuse(abuse::Options),
    /// Host agents (issue 14): 2,000 simulated agents connected to one `spog serve`, each
    /// sending metrics every 15 s; memory, ingest lag and metric range queries. Needs
    /// `cargo build --release -p spog` first.
    Agents(agents::Options),
    /// Audit trail (issue 3): ingest rate and chain-linking lag, search, statistics, export
    /// and verification on a large chain.
    Audit(audit::Options),
    /// Real time (issue 5): 5,000 WebSockets on one `spog serve` process, broadcast and
    /// single-user delivery latency. Needs `cargo build --release -p spog` first.
    Realtime(realtime::Options),
    /// Foundation (issue 2): idle memory and start-up of `spog serve`, authenticated request
    /// rate beside an unauthenticated one. Needs `cargo build --release -p spog` first.
    Foundation(foundation::Options),
    /// Metric ingestion (issue 5): `POST /metrics` with 100 metric rules evaluated, beside
    /// the same requests with no rules.
    Metrics(metrics::Options),
    /// Session recordings (issue 6): 50 terminal sessions streaming at once, a 100 MB `.cast`
    /// download and the server's memory meanwhile, desktop frame ingest and playback pacing.
    /// Needs `cargo build --release -p spog` first.
    Recordings(recordings::Options),
    /// Recording text search (issue 16): `GET /terminal/recordings?q=` over 10,000 terminal
    /// recordings with 1 GB of text, loaded through the store as the indexer writes it, beside
    /// a LIKE scan of the same text.
    RecordingSearch(recordings::search::Options),
    /// Web terminal (issue 15): keystroke echo through the hub and the real `spog-agent`
    /// beside a PTY without spog, alone and beside 200 printing terminals, flat-out output
    /// recorded byte for byte, and the echo across two instances on PostgreSQL. Needs
    /// `cargo build --release -p spog -p spog-agent` first.
    Terminal(terminal::Options),
    /// Webhooks (issue 4): sustained delivery beside a bare HTTP client, publish to first
    /// attempt latency, and a 100,000-delivery backlog to a receiver that is down.
    Webhooks(webhooks::Options),
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    // Errors of in-process servers reach stderr.
    tracing_subscriber::fmt()
        .with_env_filter("error")
        .with_writer(std::io::stderr)
        .init();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        match cli.bench {
            Bench::Abuse(options) => abuse::run(options).await,
            Bench::Agents(options) => agents::run(options).await,
            Bench::Audit(options) => audit::run(options).await,
            Bench::Realtime(options) => realtime::run(options).await,
            Bench::Foundation(options) => foundation::run(options).await,
            Bench::Metrics(options) => metrics::run(options).await,
            Bench::Recordings(options) => recordings::run(options).await,
            Bench::RecordingSearch(options) => recordings::search::run(options).await,
            Bench::Terminal(options) => terminal::run(options).await,
            Bench::Webhooks(options) => webhooks::run(options).await,
        }
    })
}

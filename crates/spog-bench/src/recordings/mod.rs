//! Issue 6's recording targets on one `spog serve` process (the release binary; run
//! `cargo build --release -p spog` first), each beside a baseline from the same run:
//! - terminal ingest: 50 sessions streaming output at once ≥ 50 MB/s in total (baseline:
//!   appending the same bytes to 50 files directly);
//! - `.cast` download of a 100 MB recording ≥ 200 MB/s with server RSS growth ≤ 20 MB
//!   (baseline: reading the file from disk);
//! - desktop ingest ≥ 200 frames/s of 100 KB JPEGs (baseline: appending them to a file), and
//!   playback pacing error p99 ≤ 20 ms against the recorded times.

mod desktop;
pub mod search;
mod terminal;

use std::path::PathBuf;

use serde_json::json;
use spog_server::testing::Client;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use crate::harness;
use crate::process::ServerProcess;

#[derive(clap::Args)]
pub struct Options {
    /// PostgreSQL admin URL: run on PostgreSQL (a fresh database) instead of SQLite.
    #[arg(long)]
    postgres: Option<String>,
    /// Concurrent terminal sessions.
    #[arg(long, default_value_t = 50)]
    sessions: usize,
    /// Output each terminal session streams, in MB.
    #[arg(long, default_value_t = 8)]
    session_mb: usize,
    /// Size of the recording to download, in MB.
    #[arg(long, default_value_t = 100)]
    download_mb: usize,
    /// Desktop frames to ingest (100 KB each), over this many recordings at once.
    #[arg(long, default_value_t = 2_000)]
    frames: usize,
    #[arg(long, default_value_t = 4)]
    desktop_streams: usize,
    /// Concurrent players of the pacing measurement.
    #[arg(long, default_value_t = 8)]
    players: usize,
}

pub type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// What every part needs: the server, a gateway token, a host and a user.
pub struct Bench {
    pub server: ServerProcess,
    pub gateway: Client,
    pub admin: Client,
    pub host: String,
    pub user: String,
    pub data_dir: PathBuf,
}

/// A WebSocket to `path` under `/api/v1`, authenticated like `client`.
pub async fn socket(client: &Client, path: &str) -> Socket {
    let url = client.url(path).replace("http://", "ws://");
    let mut request = url.into_client_request().unwrap();
    let bearer = format!("Bearer {}", client.token.as_deref().unwrap());
    request
        .headers_mut()
        .insert("authorization", bearer.parse().unwrap());
    let config = tokio_tungstenite::tungstenite::protocol::WebSocketConfig::default()
        .max_message_size(Some(64 << 20))
        .max_frame_size(Some(64 << 20));
    tokio_tungstenite::connect_async_with_config(request, Some(config), true)
        .await
        .expect("connecting a WebSocket")
        .0
}

pub async fn run(options: Options) -> anyhow::Result<()> {
    let database = match &options.postgres {
        Some(url) => Some(harness::database(Some(url)).await),
        None => None,
    };
    println!(
        "== recordings on {} ==",
        harness::backend_name(options.postgres.as_deref())
    );
    let data_dir =
        std::env::temp_dir().join(format!("spog-bench-recordings-{}", uuid::Uuid::now_v7()));
    let server =
        ServerProcess::start(data_dir.clone(), database.as_ref().map(|d| d.url.as_str())).await;
    let admin = server.admin().await;
    let gateway = admin
        .token_client("agent", &["session_recordings.write"])
        .await;
    let (_, organizations) = admin.get("/organizations").await;
    let (_, host) = admin
        .post(
            "/hosts",
            json!({"organization_id": organizations[0]["id"], "hostname": "bench-1"}),
        )
        .await;
    let (_, me) = admin.get("/auth/me").await;
    let bench = Bench {
        server,
        gateway,
        admin,
        host: host["id"].as_str().unwrap().to_owned(),
        user: me["user_id"].as_str().unwrap().to_owned(),
        data_dir: data_dir.clone(),
    };
    terminal::ingest(&bench, options.sessions, options.session_mb).await?;
    terminal::download(&bench, options.download_mb).await?;
    desktop::ingest(&bench, options.frames, options.desktop_streams).await?;
    desktop::pacing(&bench, options.players).await?;
    drop(bench);
    let _ = std::fs::remove_dir_all(&data_dir);
    drop(database);
    Ok(())
}

/// `123.4 MB/s`.
pub fn rate(bytes: u64, seconds: f64) -> f64 {
    bytes as f64 / 1e6 / seconds
}

//! The recording targets of issues 6 and 16 on `spog serve` (the release binary; run
//! `cargo build --release -p spog` first), each beside a baseline from the same run, for each
//! storage: the data directory, then S3-compatible object storage (moto, when installed):
//! - terminal ingest: 50 sessions streaming output at once, then ended (sealed and stored),
//!   ≥ 50 MB/s in total (baseline: appending the same bytes to 50 files directly);
//! - `.cast` download of a 100 MB recording ≥ 200 MB/s from the data directory, ≥ 150 MB/s
//!   from object storage, with server RSS growth ≤ 20 MB (baseline: reading and decompressing
//!   the stored object directly);
//! - stored size of a typical shell session ≤ 25 % of its `.cast`;
//! - desktop ingest ≥ 200 frames/s of 100 KB JPEGs (baseline: appending them to a file), and
//!   playback pacing error p99 ≤ 20 ms against the recorded times.

mod desktop;
pub mod search;
mod terminal;

use std::path::PathBuf;

use serde_json::json;
use spog_server::testing::Client;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use spog_server::testing::s3::S3Server;

use crate::harness;
use crate::process::{Launch, ServerProcess};

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
    /// Only the object-storage run (when moto is installed).
    #[arg(long)]
    s3_only: bool,
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
    let s3 = S3Server::start().await;
    for storage in [None, s3.as_ref()] {
        if storage.is_none() && s3.is_some() && options.s3_only {
            continue;
        }
        let database = match &options.postgres {
            Some(url) => Some(harness::database(Some(url)).await),
            None => None,
        };
        println!(
            "== recordings on {}, stored in {} ==",
            harness::backend_name(options.postgres.as_deref()),
            if storage.is_some() {
                "S3 (moto)"
            } else {
                "the data directory"
            }
        );
        run_on(&options, database.as_ref().map(|d| d.url.as_str()), storage).await?;
        if s3.is_none() {
            break;
        }
    }
    Ok(())
}

async fn run_on(
    options: &Options,
    database_url: Option<&str>,
    storage: Option<&S3Server>,
) -> anyhow::Result<()> {
    let data_dir =
        std::env::temp_dir().join(format!("spog-bench-recordings-{}", uuid::Uuid::now_v7()));
    let mut launch = Launch::new(data_dir.clone(), database_url);
    // One gateway streams every session over its one credential, as a deployment with one
    // gateway configures it.
    let streams = (options.sessions + options.players + 16).to_string();
    launch
        .settings
        .push(("websocket_max_per_credential".to_owned(), streams));
    let store = match storage {
        Some(s3) => {
            let bucket = format!("bench-{}", uuid::Uuid::now_v7());
            let mut config = spog_server::config::Config::default();
            s3.configure(&mut config, &bucket, "recordings").await;
            for (key, value) in [
                ("recordings_storage", config.recordings_storage.clone()),
                ("s3_endpoint", s3.endpoint()),
                ("s3_allow_http", "true".to_owned()),
                ("s3_access_key_id", "test".to_owned()),
                ("s3_secret_access_key", "test".to_owned()),
            ] {
                launch.settings.push((key.to_owned(), value));
            }
            Stored::S3 { s3, bucket }
        }
        None => Stored::Local,
    };
    let server = ServerProcess::launch(launch)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
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
    terminal::download(&bench, &store, options.download_mb).await?;
    terminal::stored_size(&bench).await?;
    if let Stored::Local = store {
        desktop::ingest(&bench, options.frames, options.desktop_streams).await?;
        desktop::pacing(&bench, options.players).await?;
    }
    drop(bench);
    let _ = std::fs::remove_dir_all(&data_dir);
    Ok(())
}

/// Where the server under test keeps sealed recordings.
pub enum Stored<'a> {
    Local,
    S3 { s3: &'a S3Server, bucket: String },
}

/// `123.4 MB/s`.
pub fn rate(bytes: u64, seconds: f64) -> f64 {
    bytes as f64 / 1e6 / seconds
}

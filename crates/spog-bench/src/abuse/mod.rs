//! Issue 12's hostile-load suite: each denial-of-service attack replayed against a release
//! `spog serve` process of its own (fresh database, fresh data directory), each figure printed
//! beside its target. Every server starts with the soft file-descriptor limit most Linux
//! services get by default (1,024, or `--fd-limit`; the hard limit stays as inherited), and with only the
//! configuration keys its attack needs: a key this server does not know (an older build) is
//! left out and said so, so that the suite also measures the build before the fixes.
//!
//! Every wait has a timeout and every attack has a time limit; the attack's sockets and tasks
//! end with it.

mod connections;
mod downloads;
mod lists;
mod logins;
mod neighbour;
mod sessions;

use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use spog_server::testing::Client;
use spog_store::testing::TestDatabase;

use crate::harness::{self, verdict};
use crate::process::{Launch, ServerProcess, set_soft_fd_limit};

#[derive(clap::Args, Clone)]
pub struct Options {
    /// Also run on PostgreSQL, creating a fresh database on this server for every attack.
    #[arg(long)]
    postgres: Option<String>,
    /// Run only this attack: logins, slowloris, downloads, sessions, neighbour or lists.
    #[arg(long)]
    only: Option<String>,
    /// Parallel bad logins in the login flood.
    #[arg(long, default_value_t = 300)]
    logins: usize,
    /// Parallel wrong guesses for one email (the throttle race).
    #[arg(long, default_value_t = 100)]
    guesses: usize,
    /// Slowloris connections.
    #[arg(long, default_value_t = 1_000)]
    slow_connections: usize,
    /// Stalled `.cast` downloads, and the size of the recording they download, in MB.
    #[arg(long, default_value_t = 600)]
    downloads: usize,
    #[arg(long, default_value_t = 8)]
    cast_mb: usize,
    /// Open terminal sessions against the default fd limit.
    #[arg(long, default_value_t = 2_000)]
    sessions: usize,
    /// Tenant A's deliveries pending to a black-hole endpoint.
    #[arg(long, default_value_t = 5_000)]
    pending: usize,
    /// WebSockets opened on one token.
    #[arg(long, default_value_t = 300)]
    websockets: usize,
    /// Soft `RLIMIT_NOFILE` each server starts with (the hard limit stays as inherited); the
    /// default is what most Linux services get.
    #[arg(long, default_value_t = 1_024)]
    fd_limit: u64,
}

/// No attack runs longer than this, whatever the server does.
const ATTACK_LIMIT: Duration = Duration::from_secs(300);

type Attack = fn(Option<String>, Options) -> Pin<Box<dyn Future<Output = Outcome> + Send>>;
type Outcome = anyhow::Result<Vec<Figure>>;

const ATTACKS: [(&str, Attack); 6] = [
    ("logins", |p, o| Box::pin(logins::run(p, o))),
    ("slowloris", |p, o| Box::pin(connections::slowloris(p, o))),
    ("downloads", |p, o| Box::pin(downloads::run(p, o))),
    ("sessions", |p, o| Box::pin(sessions::run(p, o))),
    ("neighbour", |p, o| Box::pin(neighbour::run(p, o))),
    ("lists", |p, o| Box::pin(lists::run(p, o))),
];

pub async fn run(options: Options) -> anyhow::Result<()> {
    if let Some(only) = &options.only {
        anyhow::ensure!(
            ATTACKS.iter().any(|(name, _)| name == only),
            "--only takes one of: {}",
            ATTACKS.map(|(name, _)| name).join(", ")
        );
    }
    // The attacks' own sockets: thousands at once.
    set_soft_fd_limit(u64::MAX)?;
    let mut backends = vec![None];
    backends.extend(options.postgres.clone().map(Some));
    let mut summaries = Vec::new();
    for postgres in backends {
        let backend = harness::backend_name(postgres.as_deref());
        println!("== abuse on {backend} ==");
        let mut figures = Vec::new();
        for (name, attack) in ATTACKS {
            if options.only.as_deref().is_some_and(|only| only != name) {
                continue;
            }
            println!("-- {name}");
            let task = tokio::spawn(attack(postgres.clone(), options.clone()));
            let abort = task.abort_handle();
            let why = match tokio::time::timeout(ATTACK_LIMIT, task).await {
                Ok(Ok(Ok(done))) => {
                    figures.extend(done);
                    continue;
                }
                Ok(Ok(Err(error))) => format!("{error:#}"),
                Ok(Err(panicked)) => format!("it panicked: {panicked}"),
                Err(_) => {
                    abort.abort();
                    format!("it did not finish in {} s", ATTACK_LIMIT.as_secs())
                }
            };
            println!("  could not run: {why}");
            figures.push(Figure {
                attack: name,
                measure: "could not run".to_owned(),
                value: why,
                target: String::new(),
                ok: None,
            });
        }
        summaries.push((backend, figures));
    }
    for (backend, figures) in summaries {
        println!("== summary on {backend} ==");
        for figure in figures {
            println!("{figure}");
        }
    }
    Ok(())
}

/// One measured figure beside its target.
pub struct Figure {
    attack: &'static str,
    measure: String,
    value: String,
    target: String,
    /// None: the attack could not run.
    ok: Option<bool>,
}

impl fmt::Display for Figure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.ok {
            Some(ok) => write!(
                f,
                "{:<10} {}: {} (target {}: {})",
                self.attack,
                self.measure,
                self.value,
                self.target,
                verdict(ok)
            ),
            None => write!(f, "{:<10} could not run: {}", self.attack, self.value),
        }
    }
}

/// Prints a figure as it is measured and keeps it for the summary.
pub fn figure(
    attack: &'static str,
    measure: impl Into<String>,
    value: impl Into<String>,
    target: &str,
    ok: bool,
) -> Figure {
    let figure = Figure {
        attack,
        measure: measure.into(),
        value: value.into(),
        target: target.to_owned(),
        ok: Some(ok),
    };
    println!(
        "  {}: {} (target {}: {})",
        figure.measure,
        figure.value,
        target,
        verdict(ok)
    );
    figure
}

/// A server of the attack's own, with its database and data directory, removed afterwards.
pub struct Target {
    server: Option<ServerProcess>,
    pub data_dir: PathBuf,
    pub database_url: Option<String>,
    _database: Option<TestDatabase>,
}

impl Target {
    pub fn server(&self) -> &ServerProcess {
        self.server
            .as_ref()
            .expect("the server runs until the target is dropped")
    }

    pub fn base(&self) -> &str {
        &self.server().base
    }

    /// An address the attacks' raw sockets connect to.
    pub fn addr(&self) -> std::net::SocketAddr {
        self.base()
            .trim_start_matches("http://")
            .parse()
            .expect("the server listens on an address")
    }

    pub async fn admin(&self) -> Client {
        self.server().admin().await
    }
}

impl Drop for Target {
    fn drop(&mut self) {
        // The server first: PostgreSQL drops the database once its connections are gone.
        drop(self.server.take());
        let _ = std::fs::remove_dir_all(&self.data_dir);
    }
}

/// Starts a server on a fresh database with `settings` (configuration keys and values) and
/// the soft fd limit of the options. A key the server refuses as unknown is left out, with a note.
pub async fn start(
    postgres: Option<&str>,
    options: &Options,
    settings: &[(&str, &str)],
) -> anyhow::Result<Target> {
    let database = match postgres {
        Some(url) => Some(harness::database(Some(url)).await),
        None => None,
    };
    let data_dir = std::env::temp_dir().join(format!("spog-abuse-{}", uuid::Uuid::now_v7()));
    let database_url = database.as_ref().map(|d| d.url.clone());
    let mut settings: Vec<(String, String)> = settings
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    loop {
        let launch = Launch {
            data_dir: data_dir.clone(),
            database_url: database_url.as_deref(),
            settings: settings.clone(),
            soft_fd_limit: Some(options.fd_limit),
        };
        match ServerProcess::launch(launch).await {
            Ok(server) => {
                return Ok(Target {
                    server: Some(server),
                    data_dir,
                    database_url,
                    _database: database,
                });
            }
            Err(error) => {
                let message = error.to_string();
                let unknown = settings
                    .iter()
                    .position(|(key, _)| message.contains(&format!("found `{key}`")));
                let Some(unknown) = unknown else {
                    let _ = std::fs::remove_dir_all(&data_dir);
                    return Err(error);
                };
                let (key, _) = settings.remove(unknown);
                println!("  note: this server does not know `{key}`; started without it");
                let _ = std::fs::remove_dir_all(&data_dir);
            }
        }
    }
}

/// A client that opens a new connection for every request, as a new visitor does.
pub fn fresh_client(timeout: Duration) -> reqwest::Client {
    reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .timeout(timeout)
        .build()
        .expect("a client")
}

/// A pooled client whose every request ends within `timeout`.
pub fn pooled_client(timeout: Duration) -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(timeout)
        .build()
        .expect("a client")
}

/// What one request got: its status (None: no answer in time) and how long it took, body
/// included.
#[derive(Clone, Copy)]
pub struct Answer {
    pub status: Option<u16>,
    pub took: Duration,
}

impl Answer {
    pub fn ok(&self, within: Duration) -> bool {
        self.status.is_some_and(|s| (200..300).contains(&s)) && self.took <= within
    }
}

impl fmt::Display for Answer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.status {
            Some(status) => write!(f, "{} ({status})", harness::ms(self.took)),
            None => write!(f, "no answer after {}", harness::ms(self.took)),
        }
    }
}

/// Sends `request` and reads the whole answer.
pub async fn timed(request: reqwest::RequestBuilder) -> Answer {
    let started = Instant::now();
    let status = match request.send().await {
        Ok(response) => {
            let status = response.status().as_u16();
            response.bytes().await.ok().map(|_| status)
        }
        Err(_) => None,
    };
    Answer {
        status,
        took: started.elapsed(),
    }
}

/// How many answers had each status.
#[derive(Default)]
pub struct Tally(BTreeMap<String, usize>);

impl Tally {
    pub fn add(&mut self, status: Option<u16>) {
        let key = status.map_or_else(|| "no answer".to_owned(), |s| s.to_string());
        *self.0.entry(key).or_default() += 1;
    }

    pub fn count(&self, status: u16) -> usize {
        self.0.get(&status.to_string()).copied().unwrap_or(0)
    }

    pub fn server_errors(&self) -> usize {
        self.0
            .iter()
            .filter(|(status, _)| status.starts_with('5'))
            .map(|(_, n)| n)
            .sum()
    }

    pub fn unanswered(&self) -> usize {
        self.0.get("no answer").copied().unwrap_or(0)
    }
}

impl fmt::Display for Tally {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self.0.iter().map(|(k, n)| format!("{k} ×{n}")).collect();
        f.write_str(&parts.join(", "))
    }
}

/// The default organization's id, a host in it and the admin's user id.
pub struct Fixture {
    pub organization: String,
    pub host: String,
    pub user: String,
}

pub async fn fixture(admin: &Client) -> anyhow::Result<Fixture> {
    let (_, organizations) = admin.get("/organizations").await;
    let organization = text(&organizations[0]["id"], "an organization")?;
    let (status, host) = admin
        .post(
            "/hosts",
            json!({"organization_id": organization, "hostname": "abuse-1"}),
        )
        .await;
    anyhow::ensure!(status.is_success(), "creating a host: {status} {host}");
    let (_, me) = admin.get("/auth/me").await;
    Ok(Fixture {
        organization,
        host: text(&host["id"], "a host id")?,
        user: text(&me["user_id"], "the admin's user id")?,
    })
}

pub fn text(value: &Value, what: &str) -> anyhow::Result<String> {
    value
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| anyhow::anyhow!("expected {what}, got {value}"))
}

/// Peak resident memory of the server while it is sampled.
pub struct RssSampler {
    task: tokio::task::JoinHandle<u64>,
    stop: tokio_util::sync::CancellationToken,
}

impl RssSampler {
    pub fn start(server: &ServerProcess) -> Self {
        let status = format!("/proc/{}/status", server.pid());
        let stop = tokio_util::sync::CancellationToken::new();
        let stopped = stop.clone();
        let task = tokio::spawn(async move {
            let mut peak = 0;
            while !stopped.is_cancelled() {
                peak = peak.max(harness::rss_of(&status));
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            peak
        });
        Self { task, stop }
    }

    pub async fn peak(mut self) -> u64 {
        self.stop.cancel();
        (&mut self.task).await.unwrap_or(0)
    }
}

impl Drop for RssSampler {
    fn drop(&mut self) {
        self.task.abort();
    }
}

pub fn mb(bytes: u64) -> f64 {
    bytes as f64 / 1_048_576.0
}

/// `max` and `p95` of `samples`.
pub fn spread(samples: &mut [Duration]) -> (Duration, Duration) {
    (
        harness::percentile(samples, 100.0),
        harness::percentile(samples, 95.0),
    )
}

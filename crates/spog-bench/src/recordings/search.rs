//! Issue 16's search target: `GET /terminal/recordings?q=` over 10,000 terminal recordings
//! holding 1 GB of text, p95 ≤ 200 ms on each database. The text is loaded through the store as
//! the indexing worker writes it (chunks from `spog_core::recordings::text::Indexer`, saved by
//! `spog_store::recordings::text::save`, one transaction per recording; no manual ANALYZE), then
//! searched through the API for rare, medium, common, clustered and absent text. Baseline beside
//! it: the same searches as a `LIKE` scan over the same chunks, which no index serves.

use std::time::{Duration, Instant};

use serde_json::json;
use spog_core::Timestamp;
use spog_core::recordings::text::Indexer;
use spog_core::recordings::{EventCode, TerminalRecording};
use spog_store::recordings::terminal::{Origin, SessionStart};
use spog_store::recordings::{self, EndReason, NewRecording};
use spog_store::{Backend, Sql};

use crate::harness::{self, ms, percentile, verdict};

#[derive(clap::Args)]
pub struct Options {
    /// Also run on PostgreSQL, creating a database on this server.
    #[arg(long)]
    postgres: Option<String>,
    /// With `--postgres`, run there only.
    #[arg(long)]
    postgres_only: bool,
    /// Terminal recordings to load.
    #[arg(long, default_value_t = 10_000)]
    recordings: usize,
    /// Text in all of them, in MB.
    #[arg(long, default_value_t = 1_000)]
    text_mb: usize,
    /// Searches per kind of text (rare, medium, common, clustered, absent).
    #[arg(long, default_value_t = 50)]
    searches: usize,
    /// Baseline scans per kind of text.
    #[arg(long, default_value_t = 2)]
    baseline_scans: usize,
}

const TARGET: Duration = Duration::from_millis(200);

pub async fn run(options: Options) -> anyhow::Result<()> {
    let mut backends = Vec::new();
    if !(options.postgres_only && options.postgres.is_some()) {
        backends.push(None);
    }
    if let Some(url) = &options.postgres {
        backends.push(Some(url.as_str()));
    }
    for postgres in backends {
        println!(
            "== recording text search on {}: {} recordings, {} MB of text ==",
            harness::backend_name(postgres),
            options.recordings,
            options.text_mb
        );
        on_backend(&options, postgres).await?;
    }
    Ok(())
}

async fn on_backend(options: &Options, postgres: Option<&str>) -> anyhow::Result<()> {
    let (server, admin) = harness::server(postgres).await;
    let (_, me) = admin.get("/auth/me").await;
    let (_, organizations) = admin.get("/organizations").await;
    let (_, host) = admin
        .post(
            "/hosts",
            json!({"organization_id": organizations[0]["id"], "hostname": "bench-1"}),
        )
        .await;
    let new = NewRecording {
        account: parsed(&me["account_id"]),
        organization: parsed(&organizations[0]["id"]),
        host: parsed(&host["id"]),
        user: Some(parsed(&me["user_id"])),
        user_email: spog_server::testing::ADMIN_EMAIL,
        width: 80,
        height: 24,
        started_at: Timestamp::now(),
        instance: &server.state.instance_id,
    };
    let per_recording = options.text_mb * 1_000_000 / options.recordings.max(1);
    let started = Instant::now();
    let mut written = 0u64;
    for n in 0..options.recordings {
        written += load(&server.state.store, &new, n, per_recording).await?;
        if (n + 1) % 1000 == 0 {
            println!(
                "  loaded {} recordings, {:.0} MB of text, {:.0} s",
                n + 1,
                written as f64 / 1e6,
                started.elapsed().as_secs_f64()
            );
        }
    }
    println!(
        "load: {} recordings, {:.0} MB of text in {:.0} s ({:.1} MB/s through the store)",
        options.recordings,
        written as f64 / 1e6,
        started.elapsed().as_secs_f64(),
        written as f64 / 1e6 / started.elapsed().as_secs_f64()
    );

    let mut all = Vec::new();
    for kind in Kind::ALL {
        let mut samples = Vec::new();
        let mut found = 0;
        for i in 0..options.searches {
            let q = kind.query(i, options.recordings);
            let path = format!("/terminal/recordings?q={}", form_urlencoded_q(&q));
            let at = Instant::now();
            let (status, page) = admin.get(&path).await;
            samples.push(at.elapsed());
            anyhow::ensure!(status.is_success(), "{path}: {status} {page}");
            found += page["items"].as_array().map_or(0, Vec::len);
        }
        all.extend_from_slice(&samples);
        let mut baseline = Vec::new();
        for i in 0..options.baseline_scans {
            let q = kind.query(i, options.recordings);
            let at = Instant::now();
            scan(&server.state.store, &q).await?;
            baseline.push(at.elapsed());
        }
        println!(
            "  {:<7} q= p50 {} p95 {} ({} recordings listed per search on average) · LIKE scan p50 {}",
            kind.name(),
            ms(percentile(&mut samples, 50.0)),
            ms(percentile(&mut samples, 95.0)),
            found / options.searches.max(1),
            ms(percentile(&mut baseline, 50.0)),
        );
    }
    let p95 = percentile(&mut all, 95.0);
    println!(
        "search: p50 {} p95 {} over {} searches (target p95 ≤ {}): {}",
        ms(percentile(&mut all, 50.0)),
        ms(p95),
        all.len(),
        ms(TARGET),
        verdict(p95 <= TARGET)
    );
    server.stop().await;
    Ok(())
}

fn parsed<T>(id: &serde_json::Value) -> spog_core::Id<T> {
    id.as_str().unwrap().parse().unwrap()
}

fn form_urlencoded_q(q: &str) -> String {
    q.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// What a search looks for.
#[derive(Clone, Copy)]
enum Kind {
    /// A token typed in one recording.
    Rare,
    /// A command typed in one recording of a hundred.
    Medium,
    /// A word shown in every recording.
    Common,
    /// A line shown throughout one recording in eighty: more chunks than a probe reads, in
    /// too few recordings to fill a page from the newest.
    Clustered,
    /// Text in none.
    Absent,
}

impl Kind {
    const ALL: [Kind; 5] = [
        Kind::Rare,
        Kind::Medium,
        Kind::Common,
        Kind::Clustered,
        Kind::Absent,
    ];

    fn name(self) -> &'static str {
        match self {
            Kind::Rare => "rare",
            Kind::Medium => "medium",
            Kind::Common => "common",
            Kind::Clustered => "cluster",
            Kind::Absent => "absent",
        }
    }

    fn query(self, i: usize, recordings: usize) -> String {
        match self {
            Kind::Rare => format!("ticket-{:06}", (i * 7919) % recordings.max(1)),
            Kind::Medium => format!("drain node-{:02}", i % 10),
            Kind::Common => ["Permission denied", "connected", "warning"][i % 3].to_owned(),
            Kind::Clustered => ["batch replay", "replay lagging"][i % 2].to_owned(),
            Kind::Absent => format!("zq{i}xj-nowhere"),
        }
    }
}

/// A small deterministic generator, so every run loads the same text.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

const SYLLABLES: [&str; 24] = [
    "ka", "lo", "mi", "ne", "ru", "sa", "te", "vo", "zi", "pa", "do", "fe", "gu", "ha", "ji", "be",
    "co", "di", "fa", "go", "hu", "li", "mo", "nu",
];
const COMMANDS: [&str; 12] = [
    "ls -la",
    "cd /var/log",
    "tail -n 50 syslog",
    "grep -r",
    "systemctl status nginx",
    "df -h",
    "ps aux",
    "cat /etc/hosts",
    "vim config.yaml",
    "git pull",
    "make test",
    "top -b",
];

/// A word of made-up text: two to four syllables.
fn word(rng: &mut Rng, out: &mut String) {
    for _ in 0..2 + rng.below(3) {
        out.push_str(SYLLABLES[rng.below(SYLLABLES.len())]);
    }
}

/// Loads recording `n` with about `bytes` of text, as the indexing worker would store it.
async fn load(
    store: &spog_store::Store,
    new: &NewRecording<'_>,
    n: usize,
    bytes: usize,
) -> anyhow::Result<u64> {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15 ^ (n as u64 + 1).wrapping_mul(0x2545_F491_4F6C_DD1D));
    let mut indexer = Indexer::default();
    let (mut time, mut text) = (0.0f64, 0usize);
    // Halfway: a token of this recording alone, and in one of ten recordings a command that
    // each of ten nodes gets (one recording in a hundred per node).
    let mut planted = Vec::new();
    if n % 10 == 7 {
        planted.push(format!("kubectl drain node-{:02} --force", (n / 10) % 10));
    }
    planted.push(format!("echo ticket-{n:06}"));
    while text < bytes {
        time += 0.05 + rng.below(2000) as f64 / 1000.0;
        let command = match planted.last() {
            Some(_) if text > bytes / 2 => planted.pop().unwrap_or_default(),
            _ => COMMANDS[rng.below(COMMANDS.len())].to_owned(),
        };
        indexer.event(time, EventCode::Input, &format!("{command}\r"));
        let mut output = String::with_capacity(600);
        for line in 0..1 + rng.below(8) {
            if line % 3 == 0 {
                output.push_str("\u{1b}[1;32m");
            }
            for _ in 0..4 + rng.below(10) {
                word(&mut rng, &mut output);
                output.push(' ');
            }
            match rng.below(40) {
                0 => output.push_str("Permission denied"),
                1 => output.push_str("connected"),
                2 => output.push_str("warning: retrying"),
                _ => {}
            }
            output.push_str("\u{1b}[0m\r\n");
        }
        if n % 80 == 3 {
            output.push_str("batch replay lagging\r\n");
        }
        output.push_str("\u{1b}]0;bench@host\u{7}$ ");
        time += 0.01;
        text += output.len() + command.len();
        indexer.event(time, EventCode::Output, &output);
    }
    // Every recording shows each common word at least once.
    indexer.event(
        time + 0.5,
        EventCode::Output,
        "Permission denied; connected; warning\r\n",
    );
    let mut tx = store.begin().await?;
    let start = SessionStart {
        shell: "/bin/bash",
        origin: Origin::Api,
        os_user: None,
        client_addr: None,
        source_key: None,
    };
    let recording: TerminalRecording = recordings::start(&mut tx, new, start).await?;
    recordings::text::save(&mut tx, new.account, recording.id, 0, 1, &indexer).await?;
    let closing = recordings::Closing {
        progress: None,
        reason: EndReason::Ended,
        exit_code: None,
        sealed: None,
    };
    recordings::end(
        &mut tx,
        new.account,
        recording.id,
        &closing,
        Timestamp::now(),
    )
    .await?;
    tx.commit_unaudited().await?;
    Ok(text as u64)
}

/// The baseline: the recordings whose chunks hold `q`, by a scan of every chunk.
async fn scan(store: &spog_store::Store, q: &str) -> anyhow::Result<usize> {
    let like = if store.backend() == Backend::Postgres {
        // `lower(body)` is not what the trigram index covers: a scan.
        "SELECT COUNT(DISTINCT recording_id) FROM recording_text WHERE lower(body) LIKE "
    } else {
        "SELECT COUNT(DISTINCT recording_id) FROM recording_text WHERE body LIKE "
    };
    let mut sql = Sql::new(like);
    sql.bind(format!("%{}%", q.to_lowercase()));
    let mut conn = store.conn().await?;
    Ok(sql.fetch_scalar::<i64>(&mut conn).await? as usize)
}

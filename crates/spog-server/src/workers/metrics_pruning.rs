//! Forgets old metric data (SPEC 12.4): raw samples past `metrics_raw_retention`, rollups and
//! silent series past `metrics_retention`, a bounded batch per transaction so that ingest is
//! never held up for long.

use std::time::Duration;

use spog_core::Timestamp;
use tokio_util::sync::CancellationToken;

use crate::state::AppState;

pub const NAME: &str = "metrics_pruning";

/// Rows of each kind per transaction.
const BATCH: i64 = 5_000;
/// Transactions per run: at most half a million rows of each kind a minute, several times
/// what a busy instance takes in (2,000 samples a second is 120,000 a minute).
const MAX_BATCHES: usize = 100;

/// Prunes what is past retention as of `now`. Returns the rows deleted.
pub async fn run_once(state: &AppState, now: Timestamp) -> anyhow::Result<u64> {
    let raw_before = now.minus(state.config.metrics_raw_retention);
    let rollups_before = now.minus(state.config.metrics_retention);
    let mut deleted = 0;
    for _ in 0..MAX_BATCHES {
        let mut tx = state.store.begin().await?;
        let pruned = spog_store::metrics::prune(&mut tx, raw_before, rollups_before, BATCH).await?;
        tx.commit_unaudited().await?;
        deleted += pruned.samples + pruned.rollups + pruned.series;
        if !pruned.more(BATCH) {
            break;
        }
        tokio::task::yield_now().await;
    }
    Ok(deleted)
}

pub fn spawn(state: &AppState, shutdown: CancellationToken) -> tokio::task::JoinHandle<()> {
    super::spawn_loop(
        state,
        NAME,
        Duration::from_secs(60),
        None,
        shutdown,
        |state| async move { run_once(&state, Timestamp::now()).await.map(|_| ()) },
    )
}

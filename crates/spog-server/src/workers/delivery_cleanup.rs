//! Deletes `succeeded` deliveries older than `delivery_retention` (SPEC 5.3), `failed` ones
//! older than `failed_delivery_retention` (kept longer: an operator may still retry or inspect
//! them), and the events no delivery refers to any more, a bounded batch per transaction.
//! Deliveries are the queue's records, not user-visible objects: their deletion is not audited.

use std::time::Duration;

use spog_core::Timestamp;
use tokio_util::sync::CancellationToken;

use crate::state::AppState;

pub const NAME: &str = "delivery_cleanup";

const BATCH: u32 = 5_000;

/// Deletes everything past retention as of `now`. Returns the deliveries deleted.
pub async fn run_once(state: &AppState, now: Timestamp) -> anyhow::Result<u64> {
    let before = now.minus(state.config.delivery_retention);
    let failed_before = now.minus(state.config.failed_delivery_retention);
    let mut deleted = 0;
    loop {
        let batch =
            spog_store::deliveries::cleanup(&state.store, before, failed_before, BATCH).await?;
        deleted += batch;
        if batch < u64::from(BATCH) {
            return Ok(deleted);
        }
    }
}

pub fn spawn(state: &AppState, shutdown: CancellationToken) -> tokio::task::JoinHandle<()> {
    super::spawn_loop(
        state,
        NAME,
        Duration::from_secs(600),
        None,
        shutdown,
        |state| async move { run_once(&state, Timestamp::now()).await.map(|_| ()) },
    )
}

//! Appends recorded audit entries to their account's chain soon after their change commits:
//! woken by every commit that recorded entries, and every second for entries other
//! instances left behind.

use std::time::Duration;

use spog_core::Timestamp;
use tokio_util::sync::CancellationToken;

use crate::state::AppState;

pub const NAME: &str = "audit_chain_linker";

pub async fn run_once(state: &AppState) -> anyhow::Result<u64> {
    let linked = spog_store::audit::link_pending(&state.store, Timestamp::now()).await?;
    state.metrics.audit_entries_linked.inc_by(linked);
    Ok(linked)
}

pub fn spawn(state: &AppState, shutdown: CancellationToken) -> tokio::task::JoinHandle<()> {
    super::spawn_loop(
        state,
        NAME,
        Duration::from_secs(1),
        Some(|state| state.store.audit_appended()),
        shutdown,
        |state| async move { run_once(&state).await.map(|_| ()) },
    )
}

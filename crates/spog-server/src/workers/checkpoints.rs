//! Signs a checkpoint of every chain whose head moved, on the configured interval.

use tokio_util::sync::CancellationToken;

use crate::state::AppState;

pub const NAME: &str = "audit_checkpoints";

pub async fn run_once(state: &AppState) -> anyhow::Result<usize> {
    Ok(crate::chain::checkpoint_all(&state.store, &state.keys).await?)
}

pub fn spawn(state: &AppState, shutdown: CancellationToken) -> tokio::task::JoinHandle<()> {
    let every = state.config.checkpoint_interval;
    super::spawn_loop(state, NAME, every, None, shutdown, |state| async move {
        run_once(&state).await.map(|_| ())
    })
}

//! On PostgreSQL, says every 10 s where this instance's peers reach it (SPEC 13.4), so that a
//! terminal opened on another instance can be relayed to the one holding the host's agent.

use std::time::Duration;

use spog_core::Timestamp;
use spog_store::Backend;
use tokio_util::sync::CancellationToken;

use crate::state::AppState;

pub const REFRESH: Duration = Duration::from_secs(10);
/// A row older than this belongs to an instance that stopped without saying so.
pub const FRESH_FOR: Duration = Duration::from_secs(30);

pub async fn run_once(state: &AppState) -> anyhow::Result<()> {
    let Some(url) = state.config.advertised_url() else {
        return Ok(());
    };
    let mut conn = state.store.conn().await?;
    spog_store::cluster::register(&mut conn, &state.instance_id, &url, Timestamp::now()).await?;
    Ok(())
}

pub fn spawn(state: &AppState, shutdown: CancellationToken) -> Option<tokio::task::JoinHandle<()>> {
    if state.store.backend() != Backend::Postgres {
        return None;
    }
    if state.config.advertised_url().is_none() {
        tracing::warn!(
            "listen is a wildcard address and cluster_url is not set: terminals opened on \
             other instances cannot reach the agents connected to this one"
        );
    }
    Some(super::spawn_loop(
        state,
        "cluster",
        REFRESH,
        None,
        shutdown,
        |state| async move { run_once(&state).await },
    ))
}

//! Sends audit streams (SPEC 3.5): woken whenever entries are linked on any instance (the
//! linker's announcement crosses instances over LISTEN/NOTIFY), and every second when idle.
//! A graceful stop finishes the batch in flight, then lets go of this instance's leases so
//! the next holder starts at once from the confirmed cursor.

use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::audit_streams::{alerts, sender};
use crate::state::AppState;

pub const NAME: &str = "audit_streams";
const IDLE_POLL: Duration = Duration::from_secs(1);

pub fn spawn(state: &AppState, shutdown: CancellationToken) -> tokio::task::JoinHandle<()> {
    let state = state.clone();
    tokio::spawn(async move {
        state.workers.set_running(NAME, true);
        let mut ticker = tokio::time::interval(IDLE_POLL);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let linked = state.bus.audit_linked.clone();
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = ticker.tick() => {}
                _ = linked.notified() => {}
            }
            let step = async {
                sender::run_once(&state, &shutdown).await?;
                alerts::announce(&state).await
            };
            let result = step
                .instrument(tracing::info_span!("worker", worker = NAME))
                .await
                .map(|_| ());
            if let Err(error) = &result {
                tracing::warn!(
                    worker = NAME,
                    error = format!("{error:#}"),
                    "worker step failed"
                );
            }
            state.workers.record(NAME, &result);
        }
        let released = async {
            let mut conn = state.store.conn().await?;
            spog_store::audit_streams::sending::release_all(&mut conn, &state.instance_id).await
        };
        if let Err(error) = released.await {
            tracing::warn!(%error, "releasing audit stream leases at shutdown");
        }
        state.workers.set_running(NAME, false);
    })
}

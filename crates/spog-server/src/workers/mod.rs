//! Background work in the server process, under the server's shutdown token. Each loop wakes
//! on a tick, a signal or shutdown, and calls a single-step `run_once` that tests call
//! directly; its outcome is what `/api/v1/system/health` reports. Each step runs in a
//! `worker` span naming its loop.

pub mod alert_evaluation;
pub mod audit_linker;
pub mod audit_streams;
pub mod checkpoints;
pub mod cluster;
pub mod delivery;
pub mod delivery_cleanup;
pub mod liveness;
pub mod metrics_pruning;
pub mod no_data;
pub mod recording_retention;
pub mod recording_text;
pub mod recording_upload;
pub mod recordings;
pub mod retention;
pub mod silences;

use std::collections::BTreeMap;
use std::future::Future;
use std::time::Duration;

use parking_lot::Mutex;
use serde::Serialize;
use spog_core::Timestamp;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;
use utoipa::ToSchema;

use crate::state::AppState;

/// What the health endpoint shows of one worker.
#[derive(Clone, Debug, Default, Serialize, ToSchema)]
pub struct WorkerStatus {
    pub running: bool,
    pub last_run_at: Option<spog_core::Timestamp>,
    pub last_error: Option<String>,
    pub last_error_at: Option<spog_core::Timestamp>,
}

#[derive(Default)]
pub struct Workers {
    status: Mutex<BTreeMap<&'static str, WorkerStatus>>,
}

impl Workers {
    pub fn snapshot(&self) -> BTreeMap<&'static str, WorkerStatus> {
        self.status.lock().clone()
    }

    pub(crate) fn set_running(&self, name: &'static str, running: bool) {
        self.status.lock().entry(name).or_default().running = running;
    }

    pub(crate) fn record(&self, name: &'static str, result: &anyhow::Result<()>) {
        let mut status = self.status.lock();
        let status = status.entry(name).or_default();
        let now = Timestamp::now();
        status.last_run_at = Some(now);
        if let Err(error) = result {
            status.last_error = Some(format!("{error:#}"));
            status.last_error_at = Some(now);
        }
    }
}

/// Runs `step` every `every`, or sooner when `wake` is notified, until `shutdown`.
pub fn spawn_loop<F, Fut>(
    state: &AppState,
    name: &'static str,
    every: Duration,
    wake: Option<fn(&AppState) -> &Notify>,
    shutdown: CancellationToken,
    step: F,
) -> tokio::task::JoinHandle<()>
where
    F: Fn(AppState) -> Fut + Send + 'static,
    Fut: Future<Output = anyhow::Result<()>> + Send,
{
    let state = state.clone();
    tokio::spawn(async move {
        state.workers.set_running(name, true);
        let mut ticker = tokio::time::interval(every);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let woken = async {
                match wake {
                    Some(notify) => notify(&state).notified().await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = ticker.tick() => {}
                _ = woken => {}
            }
            let result = step(state.clone())
                .instrument(tracing::info_span!("worker", worker = name))
                .await;
            if let Err(error) = &result {
                tracing::warn!(
                    worker = name,
                    error = format!("{error:#}"),
                    "worker step failed"
                );
            }
            state.workers.record(name, &result);
        }
        state.workers.set_running(name, false);
    })
}

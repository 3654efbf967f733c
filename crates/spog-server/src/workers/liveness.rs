//! Marks hosts offline when their heartbeat stops (`host_offline_after`), publishing
//! `host.offline` and recording the change, once across all instances.

use std::time::Duration;

use serde_json::json;
use spog_core::Timestamp;
use spog_core::audit::{Action, Actor, Source};
use spog_core::events::EventType;
use spog_store::identity::hosts;
use tokio_util::sync::CancellationToken;

use crate::events::{self, Announcements, NewEvent};
use crate::state::AppState;

pub const NAME: &str = "host_liveness";

/// Marks silent hosts offline; returns how many.
pub async fn run_once(state: &AppState, now: Timestamp) -> anyhow::Result<usize> {
    let cutoff = now.minus(state.config.host_offline_after);
    let mut announcements = Announcements::default();
    let mut tx = state.store.begin().await?;
    let silent = hosts::mark_silent_offline(&mut tx, cutoff, now).await?;
    // Agent connections whose instance stopped without a word no longer count.
    spog_store::agents::credentials::forget_stale(&mut tx, cutoff, now).await?;
    for (account, host) in &silent {
        let mut event = NewEvent::about_host(*account, EventType::HostOffline, host, now);
        event.data["last_heartbeat_at"] = json!(host.last_heartbeat_at);
        events::publish(&mut tx, event, now, &mut announcements).await?;
        let entry = Actor::system(*account, "host liveness", Source::Scheduler)
            .did(Action::HostOffline, host)
            .after(host)
            .metadata(json!({"silent_for_seconds": state.config.host_offline_after.as_secs()}));
        tx.record(entry).await?;
    }
    tx.commit_unaudited().await?;
    announcements.send(&state.bus).await;
    Ok(silent.len())
}

pub fn spawn(state: &AppState, shutdown: CancellationToken) -> tokio::task::JoinHandle<()> {
    let every = (state.config.host_offline_after / 6)
        .clamp(Duration::from_millis(100), Duration::from_secs(5));
    super::spawn_loop(state, NAME, every, None, shutdown, |state| async move {
        run_once(&state, Timestamp::now()).await.map(|_| ())
    })
}

//! Marks hosts offline when their heartbeat stops (`host_offline_after`), publishing
//! `host.offline` and recording the change, once across all instances.

use std::time::Duration;

use serde_json::json;
use spog_core::Timestamp;
use spog_core::events::EventType;
use spog_store::events::NewEvent;
use spog_store::identity::hosts;
use tokio_util::sync::CancellationToken;

use crate::alerting::{Announcements, publish_event, system_entry};
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
        let event = NewEvent {
            account: *account,
            organization: host.organization_id,
            event_type: EventType::HostOffline,
            occurred_at: now,
            data: json!({"host_id": host.id, "hostname": host.hostname, "name": host.name,
                "last_heartbeat_at": host.last_heartbeat_at})
            .to_string(),
            idempotency_key: None,
        };
        publish_event(&mut tx, event, now, &mut announcements).await?;
        let mut entry = system_entry(*account, "host.offline", "host")
            .resource(host.id, &host.hostname)
            .in_organization(host.organization_id)
            .after(host)
            .metadata(json!({"silent_for_seconds": state.config.host_offline_after.as_secs()}));
        entry.actor_name = Some("host liveness".to_owned());
        spog_store::audit::record(&mut tx, entry).await?;
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

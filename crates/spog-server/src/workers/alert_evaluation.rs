//! Fires metric rules whose condition has held for `for_seconds` even when no new sample
//! arrives to say so.

use std::time::Duration;

use spog_core::Timestamp;
use spog_core::alerts::Condition;
use spog_store::alerting::{metric_states, rules};
use spog_store::identity::hosts;
use tokio_util::sync::CancellationToken;

use crate::alerting::metrics::fire_once;
use crate::events::Announcements;
use crate::state::AppState;

pub const NAME: &str = "alert_evaluation";

pub async fn run_once(state: &AppState, now: Timestamp) -> anyhow::Result<()> {
    let breaching = {
        let mut conn = state.store.conn().await?;
        metric_states::breaching_since_before(&mut conn, now).await?
    };
    if breaching.is_empty() {
        return Ok(());
    }
    let mut announcements = Announcements::default();
    let mut tx = state.store.begin().await?;
    for (account, metric_state) in breaching {
        let Ok(rule) = rules::get(&mut tx, account, metric_state.rule).await else {
            continue;
        };
        let Condition::Metric { for_seconds, .. } = &rule.condition else {
            continue;
        };
        let held_long_enough = metric_state
            .breaching_since
            .is_some_and(|since| now.micros() - since.micros() >= for_seconds * 1_000_000);
        if !rule.enabled || !held_long_enough {
            continue;
        }
        let Ok(host) = hosts::get(&mut tx, account, metric_state.host).await else {
            continue;
        };
        fire_once(
            &mut tx,
            account,
            &rule,
            &host,
            &metric_state.labels,
            metric_state.last_value,
            now,
            &mut announcements,
        )
        .await?;
    }
    tx.commit_unaudited().await?;
    announcements.send(&state.bus).await;
    Ok(())
}

pub fn spawn(state: &AppState, shutdown: CancellationToken) -> tokio::task::JoinHandle<()> {
    super::spawn_loop(
        state,
        NAME,
        Duration::from_secs(1),
        None,
        shutdown,
        |state| async move { run_once(&state, Timestamp::now()).await },
    )
}

//! `notification_alert_retention`: deletes in-app notifications older than
//! `notification_retention` and alerts resolved longer ago than `alert_retention`. Both are
//! objects users see, so each deletion is audited as the scheduler's (`notification.delete`,
//! `alert.delete`, `before` the object, `metadata.reason` `retention`); only the instance whose
//! delete took the row records it.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::json;
use spog_core::audit::{Action, Actor, Source};
use spog_core::model::Account;
use spog_core::{Id, Timestamp};
use spog_store::StoreError;
use spog_store::alerting::alerts;
use spog_store::notifications;
use tokio_util::sync::CancellationToken;

use crate::state::AppState;

pub const NAME: &str = "notification_alert_retention";

/// Objects deleted per transaction; a run stops after `MAX_BATCHES` of them and leaves the
/// rest of a backlog to the next.
const BATCH: u32 = 500;
const MAX_BATCHES: usize = 20;

/// Deletes what is past retention as of `now`; returns (notifications, alerts) deleted.
pub async fn run_once(state: &AppState, now: Timestamp) -> anyhow::Result<(usize, usize)> {
    let before = now.minus(state.config.notification_retention);
    let mut notifications_deleted = 0;
    for _ in 0..MAX_BATCHES {
        let old = {
            let mut conn = state.store.conn().await?;
            notifications::older_than(&mut conn, before, BATCH).await?
        };
        for (account, ids) in by_account(&old) {
            notifications_deleted += delete_notifications(state, account, ids).await?;
        }
        if old.len() < BATCH as usize {
            break;
        }
    }
    let before = now.minus(state.config.alert_retention);
    let mut alerts_deleted = 0;
    for _ in 0..MAX_BATCHES {
        let old = {
            let mut conn = state.store.conn().await?;
            alerts::resolved_before(&mut conn, before, BATCH).await?
        };
        for (account, ids) in by_account(&old) {
            alerts_deleted += delete_alerts(state, account, ids).await?;
        }
        if old.len() < BATCH as usize {
            break;
        }
    }
    Ok((notifications_deleted, alerts_deleted))
}

fn by_account<T: Copy>(rows: &[(Id<Account>, T)]) -> BTreeMap<Id<Account>, Vec<T>> {
    let mut grouped: BTreeMap<Id<Account>, Vec<T>> = BTreeMap::new();
    for &(account, id) in rows {
        grouped.entry(account).or_default().push(id);
    }
    grouped
}

fn job(account: Id<Account>) -> Actor {
    Actor::system(account, "retention", Source::Scheduler)
}

async fn delete_notifications(
    state: &AppState,
    account: Id<Account>,
    ids: Vec<Id<spog_core::notification::Notification>>,
) -> anyhow::Result<usize> {
    let job = job(account);
    let mut tx = state.store.begin().await?;
    let mut deleted = 0;
    for id in ids {
        let notification = match notifications::by_id(&mut tx, account, id).await {
            Err(StoreError::NotFound) => continue,
            found => found?,
        };
        if notifications::delete(&mut tx, account, id).await? {
            let entry = job
                .did(Action::NotificationDelete, &notification)
                .before(&notification)
                .metadata(json!({"reason": "retention"}));
            tx.record(entry).await?;
            deleted += 1;
        }
    }
    tx.commit().await?;
    Ok(deleted)
}

async fn delete_alerts(
    state: &AppState,
    account: Id<Account>,
    ids: Vec<Id<spog_core::alerts::Alert>>,
) -> anyhow::Result<usize> {
    let job = job(account);
    let mut tx = state.store.begin().await?;
    let mut deleted = 0;
    for id in ids {
        let alert = match alerts::get(&mut tx, account, id).await {
            Err(StoreError::NotFound) => continue,
            found => found?,
        };
        if alerts::delete_resolved(&mut tx, account, id).await? {
            let entry = job
                .did(Action::AlertDelete, &alert)
                .before(&alert)
                .metadata(json!({"reason": "retention"}));
            tx.record(entry).await?;
            deleted += 1;
        }
    }
    tx.commit().await?;
    Ok(deleted)
}

pub fn spawn(state: &AppState, shutdown: CancellationToken) -> tokio::task::JoinHandle<()> {
    let every = state
        .config
        .notification_retention
        .min(state.config.alert_retention)
        .div_f64(2.0)
        .clamp(Duration::from_secs(1), Duration::from_secs(3600));
    super::spawn_loop(state, NAME, every, None, shutdown, |state| async move {
        run_once(&state, Timestamp::now()).await.map(|_| ())
    })
}

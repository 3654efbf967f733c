//! Alerts (SPEC 7.3): rules fire them, people acknowledge them, conditions resolve them.
//! Each state an alert enters is on record and announced through its `alert.*` event, which
//! [`events::publish`] fans out to webhooks, the rule's channels and the people who watch
//! monitoring; browsers showing alerts hear of it after the transaction commits. Event rules
//! are matched where events are published; metric rules in [`metrics`].

pub mod metrics;
pub mod no_data;
pub mod silenced;

use serde_json::json;
use spog_core::alerts::{Alert, AlertRule, AlertState, ResolvedReason};
use spog_core::audit::{Action, Actor, Source};
use spog_core::model::Account;
use spog_core::notification::Category;
use spog_core::{Id, Timestamp};
use spog_store::alerting::{alerts, rules};
use spog_store::{StoreError, StoreResult, Tx};

use crate::events::{self, Announcements, NewEvent, Notice};
use crate::hub::Dashboard;
use crate::hub::bus::BusEvent;

/// The actor of the changes the alert engine makes on its own.
pub fn alert_engine(account: Id<Account>) -> Actor {
    Actor::system(account, "alert engine", Source::Scheduler)
}

/// Stores a firing alert and, unless the rule's cooldown runs, announces it. Under a matching
/// silence it is stored and its event published (`"suppressed": true`) but it notifies no one.
#[tracing::instrument(name = "alerting::fire", skip_all,
    fields(account = %account, rule = %rule.id, alert = %alert.id))]
pub async fn fire(
    tx: &mut Tx,
    account: Id<Account>,
    rule: &AlertRule,
    mut alert: Alert,
    now: Timestamp,
    announcements: &mut Announcements,
) -> StoreResult<()> {
    alert.suppressed_by = silenced::suppressions(tx, account, &alert, now).await?;
    let suppressed = !alert.suppressed_by.is_empty();
    // A suppressed alert does not take the rule's cooldown: it notified no one.
    let notifies = !suppressed && rules::claim_notification(tx, rule, now).await?;
    if notifies {
        alert.notified_at = Some(now);
    }
    alerts::insert(tx, account, &alert).await?;
    let entry = alert_engine(account)
        .did(Action::AlertFire, &alert)
        .after(&alert)
        .metadata(json!({"rule_id": rule.id, "notified": notifies,
            "suppressed_by": alert.suppressed_by}));
    tx.record(entry).await?;
    if notifies {
        announce(tx, account, &alert, &rule.channel_ids, now, announcements).await?;
    } else if suppressed {
        announce_quietly(tx, account, &alert, now, announcements).await?;
    }
    Ok(())
}

/// Moves an alert to `to` (from the states that allow it) and announces the move; false if
/// the alert was not in such a state. A resolution says why (`resolved_reason`).
#[allow(clippy::too_many_arguments)]
#[tracing::instrument(name = "alerting::change_state", skip_all,
    fields(account = %account, alert = %alert.id, to = ?to))]
pub async fn change_state(
    tx: &mut Tx,
    account: Id<Account>,
    alert: &Alert,
    to: AlertState,
    by: Option<Id<spog_core::model::User>>,
    resolved_reason: Option<ResolvedReason>,
    now: Timestamp,
    announcements: &mut Announcements,
) -> StoreResult<bool> {
    let from: &[AlertState] = match to {
        AlertState::Acknowledged => &[AlertState::Firing],
        AlertState::Resolved => &[AlertState::Firing, AlertState::Acknowledged],
        AlertState::Firing => &[],
    };
    if !alerts::transition(tx, account, alert.id, from, to, by, resolved_reason, now).await? {
        return Ok(false);
    }
    let changed = alerts::get(tx, account, alert.id).await?;
    if changed.notified_at.is_none() && !changed.suppressed_by.is_empty() {
        // Never notified: its acknowledgement or resolution notifies no one either, and it
        // no longer waits for its silences to end.
        alerts::release(tx, account, changed.id, None).await?;
        return announce_quietly(tx, account, &changed, now, announcements)
            .await
            .map(|()| true);
    }
    // A deleted rule notifies no channels; a failed lookup fails the change.
    let channels = match changed.rule_id {
        Some(rule) => match rules::get(tx, account, rule).await {
            Ok(rule) => rule.channel_ids,
            Err(StoreError::NotFound) => Vec::new(),
            Err(other) => return Err(other),
        },
        None => Vec::new(),
    };
    announce(tx, account, &changed, &channels, now, announcements).await?;
    Ok(true)
}

/// Resolves an open alert on the engine's own account, saying why, on record.
pub async fn resolve_by_engine(
    tx: &mut Tx,
    account: Id<Account>,
    open: &Alert,
    reason: ResolvedReason,
    now: Timestamp,
    announcements: &mut Announcements,
) -> StoreResult<()> {
    let moved = change_state(
        tx,
        account,
        open,
        AlertState::Resolved,
        None,
        Some(reason),
        now,
        announcements,
    )
    .await?;
    if moved {
        let entry = alert_engine(account)
            .did(Action::AlertResolve, open)
            .metadata(json!({"resolved_reason": reason}));
        tx.record(entry).await?;
    }
    Ok(())
}

/// The `alert.*` event of a suppressed alert, to webhooks only (no channel, no in-app
/// notification), and the alert to the browsers showing alerts.
async fn announce_quietly(
    tx: &mut Tx,
    account: Id<Account>,
    alert: &Alert,
    now: Timestamp,
    announcements: &mut Announcements,
) -> StoreResult<()> {
    let event = NewEvent::new(
        account,
        alert.organization_id,
        alert.state.event_type(),
        now,
        alert.event_data(now),
    );
    Box::pin(events::publish(tx, event, now, announcements)).await?;
    let dashboard = Dashboard {
        topic: "alerts".to_owned(),
        data: json!({"alert_id": alert.id, "state": alert.state}),
    };
    announcements.push(BusEvent::Dashboard { account, dashboard });
    Ok(())
}

/// The `alert.*` event of the alert's state, to its webhooks, `channels` and the people who
/// watch monitoring, and the alert to the browsers showing alerts.
async fn announce(
    tx: &mut Tx,
    account: Id<Account>,
    alert: &Alert,
    channels: &[String],
    now: Timestamp,
    announcements: &mut Announcements,
) -> StoreResult<()> {
    let notice = Notice {
        category: Category::Alert,
        severity: alert.severity,
        title: format!(
            "[{}] {} — {}",
            alert.severity.as_str().to_uppercase(),
            alert.rule_name,
            alert.state.as_str()
        ),
        message: alert.summary.clone(),
        link: Some(format!("/alerts/{}", alert.id)),
    };
    let event = NewEvent::new(
        account,
        alert.organization_id,
        alert.state.event_type(),
        now,
        alert.event_data(now),
    )
    .to_channels(channels)
    .notice(notice);
    Box::pin(events::publish(tx, event, now, announcements)).await?;
    let dashboard = Dashboard {
        topic: "alerts".to_owned(),
        data: json!({"alert_id": alert.id, "state": alert.state}),
    };
    announcements.push(BusEvent::Dashboard { account, dashboard });
    Ok(())
}

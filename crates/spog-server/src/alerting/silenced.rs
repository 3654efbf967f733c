//! Suppression by silences (SPEC 7.4): an alert firing under a matching active silence is
//! held; when no active silence matches it any more and it is still firing, it notifies
//! then, once. Held alerts no longer firing are let go without a word.

use serde_json::json;
use spog_core::alerts::{Alert, AlertState, Suppression};
use spog_core::audit::Action;
use spog_core::model::{Account, Organization};
use spog_core::{Id, Timestamp};
use spog_store::alerting::{alerts, rules, silences};
use spog_store::{StoreError, StoreResult, Tx};

use super::{alert_engine, announce};
use crate::events::Announcements;

/// Held alerts of an organization looked at in one release; the rest wait for the next round.
pub const RELEASE_BATCH: u32 = 200;

/// The active silences of the alert's organization that match it.
pub async fn suppressions(
    tx: &mut Tx,
    account: Id<Account>,
    alert: &Alert,
    now: Timestamp,
) -> StoreResult<Vec<Suppression>> {
    Ok(silences::active(tx, account, alert.organization_id, now)
        .await?
        .iter()
        .filter(|s| s.matches(alert))
        .map(|s| Suppression::silence(s.id))
        .collect())
}

/// Notifies the held alerts of an organization that no active silence matches now; returns
/// how many notified.
#[tracing::instrument(name = "alerting::silenced::release", skip_all,
    fields(account = %account, organization = %organization))]
pub async fn release(
    tx: &mut Tx,
    account: Id<Account>,
    organization: Id<Organization>,
    now: Timestamp,
    announcements: &mut Announcements,
) -> StoreResult<usize> {
    let active = silences::active(tx, account, organization, now).await?;
    let mut notified = 0;
    for mut alert in alerts::held(tx, account, organization, RELEASE_BATCH).await? {
        if alert.state != AlertState::Firing {
            alerts::release(tx, account, alert.id, None).await?;
            continue;
        }
        if active.iter().any(|s| s.matches(&alert)) {
            continue;
        }
        if !alerts::release(tx, account, alert.id, Some(now)).await? {
            continue; // Another instance released it.
        }
        alert.notified_at = Some(now);
        // A deleted rule notifies no channels; the people who watch monitoring still hear.
        let channels = match alert.rule_id {
            Some(rule) => match rules::get(tx, account, rule).await {
                Ok(rule) => rule.channel_ids,
                Err(StoreError::NotFound) => Vec::new(),
                Err(other) => return Err(other),
            },
            None => Vec::new(),
        };
        let entry = alert_engine(account)
            .did(Action::AlertNotify, &alert)
            .metadata(json!({"suppressed_by": alert.suppressed_by}));
        tx.record(entry).await?;
        announce(tx, account, &alert, &channels, now, announcements).await?;
        notified += 1;
    }
    Ok(notified)
}

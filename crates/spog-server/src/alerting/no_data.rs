//! No data (SPEC 12.5): a series a metric rule watches — or a host in its `host_ids` that never
//! reported since the rule was enabled — without a sample for `no_data_seconds` resolves its
//! open threshold alert (`no_data`) and fires a `no_data` alert through the one firing path.
//! The series' state marks the silence; marking it is conditional, so of several instances
//! checking at once one fires. The next sample ends it (see [`super::metrics`]).

use spog_core::alerts::{AlertReason, AlertRule, Condition, ResolvedReason, no_data_summary};
use spog_core::metrics::Labels;
use spog_core::model::{Account, Host};
use spog_core::{Id, Timestamp};
use spog_store::alerting::{alerts, metric_states, silent_series};
use spog_store::{StoreResult, Tx};

use super::{fire, resolve_by_engine};
use crate::events::Announcements;

/// The last sample of a silent series, if it ever had one.
#[derive(Clone, Copy, Debug)]
pub struct LastSample {
    pub value: f64,
    pub at: Timestamp,
}

/// Marks the series silent and fires its `no_data` alert, first resolving its open threshold
/// alert; false when the series was already marked (by this or another instance) or had a
/// sample since `cutoff` after all.
#[allow(clippy::too_many_arguments)]
#[tracing::instrument(name = "alerting::no_data::fire", skip_all,
    fields(account = %account, rule = %rule.id, host = %host.id))]
pub async fn fire_no_data(
    tx: &mut Tx,
    account: Id<Account>,
    rule: &AlertRule,
    host: &Host,
    labels: &Labels,
    last: Option<LastSample>,
    cutoff: Timestamp,
    now: Timestamp,
    announcements: &mut Announcements,
) -> StoreResult<bool> {
    let Condition::Metric {
        metric,
        no_data_seconds,
        ..
    } = &rule.condition
    else {
        return Ok(false);
    };
    if last.is_some()
        && silent_series::last_sample_at(tx, host.id, metric, labels)
            .await?
            .is_some_and(|at| at >= cutoff)
    {
        return Ok(false); // A sample came while we looked.
    }
    let (last_value, last_at) = last.map_or((0.0, Timestamp::from_micros(0)), |l| (l.value, l.at));
    if !metric_states::claim_no_data(
        tx, account, rule.id, host.id, labels, last_value, last_at, now,
    )
    .await?
    {
        return Ok(false);
    }
    if let Some(open) = alerts::open_for(tx, rule.id, host.id, labels).await? {
        if open.reason == AlertReason::NoData {
            return Ok(false);
        }
        resolve_by_engine(
            tx,
            account,
            &open,
            ResolvedReason::NoData,
            now,
            announcements,
        )
        .await?;
    }
    let summary = no_data_summary(metric, labels, &host.hostname, *no_data_seconds);
    let mut alert = alerts::firing(rule, summary, now);
    alert.reason = AlertReason::NoData;
    alert.host_id = Some(host.id);
    alert.hostname = Some(host.hostname.clone());
    alert.metric = Some(metric.clone());
    alert.labels = labels.clone();
    alert.value = last.map(|l| l.value);
    fire(tx, account, rule, alert, now, announcements).await?;
    Ok(true)
}

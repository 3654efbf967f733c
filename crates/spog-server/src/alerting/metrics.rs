//! Metric rules (SPEC 7.3, 12.5): a rule watches each series (host, labels) of its metric that
//! carries its labels; a series fires when the condition has held for `for_seconds`, and
//! resolves when it stops holding. Samples are stored elsewhere; each (rule, series) keeps
//! only since when its condition has held, written when that changes, so a steady stream of
//! samples costs reads, not writes. A sample for a silent series (see [`super::no_data`])
//! resolves its no-data alert and evaluation starts afresh.

use std::collections::{HashMap, HashSet};

use spog_core::alerts::{AlertRule, Condition, ResolvedReason, metric_summary};
use spog_core::metrics::Labels;
use spog_core::model::{Account, Host};
use spog_core::{Id, Timestamp};
use spog_store::alerting::alerts;
use spog_store::alerting::metric_states::{self, MetricState};
use spog_store::{StoreResult, Tx};

use super::{fire, resolve_by_engine};
use crate::events::Announcements;

/// One reading of a series: what the store keeps is what rules evaluate.
pub use spog_store::metrics::Sample;

/// A rule's series: the rule and the series' labels (the host is the evaluation's).
type Key = (Id<AlertRule>, Labels);

/// Feeds a host's samples, oldest first, to the rules that watch their series.
#[tracing::instrument(name = "alerting::evaluate", skip_all,
    fields(account = %account, host = %host.id))]
pub async fn evaluate(
    tx: &mut Tx,
    account: Id<Account>,
    host: &Host,
    rules: &[AlertRule],
    samples: &[Sample],
    now: Timestamp,
    announcements: &mut Announcements,
) -> StoreResult<()> {
    let watching: Vec<&AlertRule> = rules
        .iter()
        .filter(|r| r.condition.watches_host(host.id))
        .collect();
    if watching.is_empty() {
        return Ok(());
    }
    let ids: Vec<Id<AlertRule>> = watching.iter().map(|r| r.id).collect();
    let mut states: HashMap<Key, MetricState> = metric_states::for_host(tx, host.id, &ids)
        .await?
        .into_iter()
        .map(|s| ((s.rule, s.labels.clone()), s))
        .collect();
    // Series whose stored state changes; each is saved once, as it ends the batch.
    let mut changed: Vec<Key> = Vec::new();
    // Series whose open alert is known to exist in this batch: their later samples that still
    // breach look nothing up, so a steady stream costs no query per sample.
    let mut firing: HashSet<Key> = HashSet::new();
    for rule in watching {
        let Condition::Metric {
            operator,
            threshold,
            for_seconds,
            labels: wanted,
            ..
        } = &rule.condition
        else {
            continue;
        };
        for sample in samples
            .iter()
            .filter(|s| rule.condition.watches_series(host.id, &s.metric, &s.labels))
        {
            let key: Key = (rule.id, sample.labels.clone());
            // Data resumes: the series' own silence ends, and so does that of a listed host
            // that had never reported (kept under the rule's labels).
            let placeholder: Key = (rule.id, wanted.clone());
            for silent in [&key, &placeholder] {
                if states
                    .get(silent)
                    .is_some_and(|s| s.no_data_since.is_some())
                {
                    resume(tx, account, rule.id, host.id, &silent.1, now, announcements).await?;
                    if let Some(state) = states.get_mut(silent) {
                        state.no_data_since = None;
                    }
                }
            }
            let current = states.get(&key);
            if current.is_some_and(|s| s.last_at > sample.at) {
                continue; // Older than what was already evaluated.
            }
            let holds = operator.holds(sample.value, *threshold);
            let since = current.and_then(|s| s.breaching_since);
            let next = match (holds, since) {
                (true, None) => Some(Some(sample.at)),
                (false, Some(_)) => Some(None),
                _ => None,
            };
            let stopped = next == Some(None);
            if let Some(breaching_since) = next {
                if !changed.contains(&key) {
                    changed.push(key.clone());
                }
                states.insert(
                    key.clone(),
                    MetricState {
                        rule: rule.id,
                        host: host.id,
                        labels: sample.labels.clone(),
                        breaching_since,
                        last_value: sample.value,
                        last_at: sample.at,
                        no_data_since: None,
                    },
                );
            }
            if stopped {
                firing.remove(&key);
                if let Some(open) = alerts::open_for(tx, rule.id, host.id, &sample.labels).await? {
                    resolve_by_engine(
                        tx,
                        account,
                        &open,
                        ResolvedReason::Cleared,
                        now,
                        announcements,
                    )
                    .await?;
                }
            } else if holds
                && !firing.contains(&key)
                && let Some(since) = states.get(&key).and_then(|s| s.breaching_since)
                && sample.at.micros() - since.micros() >= for_seconds * 1_000_000
            {
                fire_once(
                    tx,
                    account,
                    rule,
                    host,
                    &sample.labels,
                    sample.value,
                    now,
                    announcements,
                )
                .await?;
                firing.insert(key);
            }
        }
    }
    if !changed.is_empty() {
        let last: Vec<MetricState> = changed.iter().map(|key| states[key].clone()).collect();
        metric_states::save(tx, account, &last).await?;
    }
    Ok(())
}

/// Ends the silence of a series: its no-data alert, if still open, resolves (`data_resumed`).
async fn resume(
    tx: &mut Tx,
    account: Id<Account>,
    rule: Id<AlertRule>,
    host: Id<Host>,
    labels: &Labels,
    now: Timestamp,
    announcements: &mut Announcements,
) -> StoreResult<()> {
    if !metric_states::clear_no_data(tx, rule, host, labels).await? {
        return Ok(()); // Another sample ended it first.
    }
    if let Some(open) = alerts::open_for(tx, rule, host, labels).await?
        && open.reason == spog_core::alerts::AlertReason::NoData
    {
        resolve_by_engine(
            tx,
            account,
            &open,
            ResolvedReason::DataResumed,
            now,
            announcements,
        )
        .await?;
    }
    Ok(())
}

/// Fires the rule's threshold alert for the series unless an alert is already open for it.
#[allow(clippy::too_many_arguments)]
#[tracing::instrument(name = "alerting::fire_once", skip_all,
    fields(account = %account, rule = %rule.id, host = %host.id))]
pub async fn fire_once(
    tx: &mut Tx,
    account: Id<Account>,
    rule: &AlertRule,
    host: &Host,
    labels: &Labels,
    value: f64,
    now: Timestamp,
    announcements: &mut Announcements,
) -> StoreResult<()> {
    let Condition::Metric {
        metric,
        operator,
        threshold,
        for_seconds,
        ..
    } = &rule.condition
    else {
        return Ok(());
    };
    if alerts::open_for(tx, rule.id, host.id, labels)
        .await?
        .is_some()
    {
        return Ok(());
    }
    let summary = metric_summary(
        metric,
        labels,
        value,
        *operator,
        *threshold,
        &host.hostname,
        *for_seconds,
    );
    let mut alert = alerts::firing(rule, summary, now);
    alert.host_id = Some(host.id);
    alert.hostname = Some(host.hostname.clone());
    alert.metric = Some(metric.clone());
    alert.labels = labels.clone();
    alert.value = Some(value);
    alert.threshold = Some(*threshold);
    alert.operator = Some(*operator);
    fire(tx, account, rule, alert, now, announcements).await
}

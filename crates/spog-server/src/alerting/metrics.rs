//! Metric rules (SPEC 7.3): a rule fires for a host when its condition has held for
//! `for_seconds`, and resolves when it stops holding. Samples are not stored; each (rule,
//! host) keeps only since when its condition has held, written when that changes, so a
//! steady stream of samples costs reads, not writes.

use std::collections::HashMap;

use spog_core::alerts::{AlertRule, AlertState, Condition, metric_summary};
use spog_core::audit::Action;
use spog_core::model::{Account, Host};
use spog_core::{Id, Timestamp};
use spog_store::alerting::alerts;
use spog_store::alerting::metric_states::{self, MetricState};
use spog_store::{StoreResult, Tx};

use super::{change_state, fire};
use crate::events::Announcements;

/// One reading of a metric.
#[derive(Clone, Debug)]
pub struct Sample {
    pub metric: String,
    pub labels: spog_core::metrics::Labels,
    pub value: f64,
    pub at: Timestamp,
}

/// What a rule's new reading means.
enum Step {
    Unchanged,
    /// The stored state changes (the condition started or stopped holding).
    Save(MetricState),
}

/// Feeds a host's samples, oldest first, to the rules that watch them.
#[tracing::instrument(name = "alerting::evaluate", skip_all,
    fields(account = %account, host = %host.id))]
pub async fn evaluate(
    tx: &mut Tx,
    account: Id<Account>,
    host: &spog_core::model::Host,
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
    let mut states: HashMap<Id<AlertRule>, MetricState> =
        metric_states::for_host(tx, host.id, &ids)
            .await?
            .into_iter()
            .map(|s| (s.rule, s))
            .collect();
    // Rules whose stored state changes; each is saved once, as it ends the batch.
    let mut changed = Vec::new();
    // Rules whose open alert is known to exist in this batch: their later samples that still
    // breach look nothing up, so a steady stream costs no query per sample.
    let mut firing = std::collections::HashSet::new();
    for rule in watching {
        let Condition::Metric {
            metric,
            operator,
            threshold,
            for_seconds,
            ..
        } = &rule.condition
        else {
            continue;
        };
        for sample in samples.iter().filter(|s| &s.metric == metric) {
            let current = states.get(&rule.id);
            if current.is_some_and(|s| s.last_at > sample.at) {
                continue; // Older than what was already evaluated.
            }
            let holds = operator.holds(sample.value, *threshold);
            let since = current.and_then(|s| s.breaching_since);
            let step = match (holds, since) {
                (true, None) => Step::Save(MetricState {
                    rule: rule.id,
                    host: host.id,
                    breaching_since: Some(sample.at),
                    last_value: sample.value,
                    last_at: sample.at,
                }),
                (false, Some(_)) => Step::Save(MetricState {
                    rule: rule.id,
                    host: host.id,
                    breaching_since: None,
                    last_value: sample.value,
                    last_at: sample.at,
                }),
                _ => Step::Unchanged,
            };
            let stopped = matches!(&step, Step::Save(s) if s.breaching_since.is_none());
            if let Step::Save(state) = step {
                if !changed.contains(&rule.id) {
                    changed.push(rule.id);
                }
                states.insert(rule.id, state);
            }
            if stopped {
                firing.remove(&rule.id);
                resolve_open(tx, account, rule.id, host.id, now, announcements).await?;
            } else if holds
                && !firing.contains(&rule.id)
                && let Some(since) = states.get(&rule.id).and_then(|s| s.breaching_since)
                && sample.at.micros() - since.micros() >= for_seconds * 1_000_000
            {
                fire_once(tx, account, rule, host, sample.value, now, announcements).await?;
                firing.insert(rule.id);
            }
        }
    }
    if !changed.is_empty() {
        let last: Vec<MetricState> = changed.iter().map(|rule| states[rule].clone()).collect();
        metric_states::save(tx, account, &last).await?;
    }
    Ok(())
}

/// Fires the rule for the host unless an alert is already open.
#[tracing::instrument(name = "alerting::fire_once", skip_all,
    fields(account = %account, rule = %rule.id, host = %host.id))]
pub async fn fire_once(
    tx: &mut Tx,
    account: Id<Account>,
    rule: &AlertRule,
    host: &Host,
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
    if alerts::open_for(tx, rule.id, host.id).await?.is_some() {
        return Ok(());
    }
    let summary = metric_summary(
        metric,
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
    alert.value = Some(value);
    alert.threshold = Some(*threshold);
    alert.operator = Some(*operator);
    fire(tx, account, rule, alert, now, announcements).await
}

async fn resolve_open(
    tx: &mut Tx,
    account: Id<Account>,
    rule: Id<AlertRule>,
    host: Id<Host>,
    now: Timestamp,
    announcements: &mut Announcements,
) -> StoreResult<()> {
    if let Some(open) = alerts::open_for(tx, rule, host).await? {
        change_state(
            tx,
            account,
            &open,
            AlertState::Resolved,
            None,
            now,
            announcements,
        )
        .await?;
        let entry = super::alert_engine(account)
            .did(Action::AlertResolve, &open)
            .metadata(serde_json::json!({"reason": "the condition no longer holds"}));
        tx.record(entry).await?;
    }
    Ok(())
}

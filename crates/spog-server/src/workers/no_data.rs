//! Finds the series that metric rules watch and that fell silent (SPEC 12.5), and the hosts
//! their `host_ids` name that never reported, and fires their `no_data` alerts. Each round
//! pages through the rules that watch for silence and takes a bounded number of series from
//! each; what is left waits for the next round.

use std::collections::HashMap;
use std::time::Duration;

use spog_core::alerts::{AlertRule, Condition};
use spog_core::model::{Account, Host};
use spog_core::{Id, Timestamp};
use spog_store::alerting::{metric_states, rules, silent_series};
use spog_store::identity::hosts;
use tokio_util::sync::CancellationToken;

use crate::alerting::no_data::{LastSample, fire_no_data};
use crate::events::Announcements;
use crate::state::AppState;

pub const NAME: &str = "metric_no_data";
/// Rules read at once.
const RULES_PER_PAGE: u32 = 200;
/// Silent series taken from one rule in a round.
const SERIES_PER_RULE: u32 = 100;
/// No-data alerts fired in a round.
const FIRES_PER_ROUND: usize = 500;
/// How often the check runs (SPEC: at least every 5 s).
pub const EVERY: Duration = Duration::from_secs(2);

/// One round; returns how many `no_data` alerts fired.
pub async fn run_once(state: &AppState, now: Timestamp) -> anyhow::Result<usize> {
    let mut fired = 0;
    let mut after = None;
    loop {
        let page = {
            let mut conn = state.store.conn().await?;
            rules::watching_silence(&mut conn, after, RULES_PER_PAGE).await?
        };
        for (account, rule) in &page {
            fired += check_rule(state, *account, rule, now, FIRES_PER_ROUND - fired).await?;
            if fired >= FIRES_PER_ROUND {
                return Ok(fired);
            }
        }
        match page.last() {
            Some((_, last)) if page.len() == RULES_PER_PAGE as usize => after = Some(last.id),
            _ => return Ok(fired),
        }
    }
}

/// A silent series or never-reporting host of one rule.
struct Silent {
    host: Id<Host>,
    labels: spog_core::metrics::Labels,
    last: Option<LastSample>,
}

async fn check_rule(
    state: &AppState,
    account: Id<Account>,
    rule: &AlertRule,
    now: Timestamp,
    budget: usize,
) -> anyhow::Result<usize> {
    let Condition::Metric {
        host_ids,
        labels,
        no_data_seconds,
        ..
    } = &rule.condition
    else {
        return Ok(0);
    };
    let cutoff = Timestamp::from_micros(now.micros() - no_data_seconds * 1_000_000);
    // Silence counts from when the rule was enabled at the earliest.
    if rule.enabled_since.is_none_or(|since| since > cutoff) {
        return Ok(0);
    }
    let mut silent: Vec<Silent> = Vec::new();
    {
        let mut conn = state.store.conn().await?;
        let limit = SERIES_PER_RULE.min(u32::try_from(budget).unwrap_or(u32::MAX));
        for series in silent_series::silent_series(&mut conn, account, rule, cutoff, limit).await? {
            silent.push(Silent {
                host: series.host,
                labels: series.labels,
                last: Some(LastSample {
                    value: series.last_value,
                    at: series.last_at,
                }),
            });
        }
        if !host_ids.is_empty() {
            let reporting = silent_series::reporting(&mut conn, account, rule, host_ids).await?;
            let marked = metric_states::silent_hosts(&mut conn, rule.id, labels, host_ids).await?;
            silent.extend(
                host_ids
                    .iter()
                    .filter(|h| !reporting.contains(h) && !marked.contains(h))
                    .map(|host| Silent {
                        host: *host,
                        labels: labels.clone(),
                        last: None,
                    }),
            );
        }
    }
    if silent.is_empty() {
        return Ok(0);
    }
    let mut fired = 0;
    let mut hosts_seen: HashMap<Id<Host>, Option<Host>> = HashMap::new();
    for item in silent.into_iter().take(budget) {
        let mut announcements = Announcements::default();
        let mut tx = state.store.begin().await?;
        let host = match hosts_seen.get(&item.host) {
            Some(host) => host.clone(),
            None => {
                let found = match hosts::get(&mut tx, account, item.host).await {
                    Ok(host) => Some(host),
                    Err(spog_store::StoreError::NotFound) => None,
                    Err(other) => return Err(other.into()),
                };
                hosts_seen.insert(item.host, found.clone());
                found
            }
        };
        let Some(host) = host.filter(|h| h.organization_id == rule.organization_id) else {
            continue;
        };
        if fire_no_data(
            &mut tx,
            account,
            rule,
            &host,
            &item.labels,
            item.last,
            cutoff,
            now,
            &mut announcements,
        )
        .await?
        {
            fired += 1;
        }
        tx.commit_unaudited().await?;
        announcements.send(&state.bus).await;
    }
    Ok(fired)
}

pub fn spawn(state: &AppState, shutdown: CancellationToken) -> tokio::task::JoinHandle<()> {
    super::spawn_loop(state, NAME, EVERY, None, shutdown, |state| async move {
        run_once(&state, Timestamp::now()).await.map(|_| ())
    })
}

//! The engine's three steps, each bounded: claim a batch of due deliveries (after taking up
//! those whose instance died), attempt each outside any transaction, record the results.
//! The worker pipelines them; [`run_once`] runs them once, in order, for tests and tools.

use std::collections::HashMap;
use std::time::Instant;

use spog_core::Timestamp;
use spog_core::delivery::{DeliveryStatus, TargetKind};
use spog_store::deliveries::{self, AttemptRecord, Claimed, Recorded, Unrecorded};

use super::{Outgoing, channel, webhook};
use crate::metrics::OutcomeLabels;
use crate::state::AppState;

/// Largest batch claimed or taken up again in one statement.
pub const BATCH: u32 = 500;

/// Takes up deliveries whose lease lapsed, then claims up to `limit` due deliveries and
/// prepares what each attempt sends. `unrecorded`: this instance's ended attempts whose
/// results are still on their way to the database, by target.
pub async fn claim(
    state: &AppState,
    limit: u32,
    unrecorded: &Unrecorded,
) -> anyhow::Result<Vec<(Claimed, Outgoing)>> {
    let engine = &state.engine;
    let now = Timestamp::now();
    let abandoned = deliveries::expire_leases(&state.store, &engine.schedule, BATCH, now).await?;
    if abandoned > 0 {
        tracing::warn!(
            abandoned,
            "took up deliveries whose instance stopped mid-attempt"
        );
        state
            .metrics
            .deliveries
            .get_or_create(&OutcomeLabels {
                outcome: "abandoned".to_owned(),
            })
            .inc_by(abandoned);
    }
    let claimed = deliveries::claim(
        &state.store,
        limit.min(BATCH),
        &engine.policy,
        unrecorded,
        Timestamp::now(),
    )
    .await?;
    if claimed.is_empty() {
        return Ok(Vec::new());
    }
    prepare(state, claimed).await
}

/// What each claimed delivery sends, by its target's formatter.
async fn prepare(
    state: &AppState,
    claimed: Vec<Claimed>,
) -> anyhow::Result<Vec<(Claimed, Outgoing)>> {
    let mut by_kind: HashMap<TargetKind, Vec<Claimed>> = HashMap::new();
    for delivery in claimed {
        by_kind
            .entry(delivery.target_kind)
            .or_default()
            .push(delivery);
    }
    let mut conn = state.store.conn().await?;
    let mut prepared = Vec::new();
    for (kind, batch) in by_kind {
        let outgoing = match kind {
            TargetKind::Webhook => {
                webhook::prepare(&mut conn, &state.keys, &batch, Timestamp::now()).await?
            }
            TargetKind::Channel => {
                channel::prepare(&mut conn, &state.keys, &batch, Timestamp::now()).await?
            }
        };
        prepared.extend(batch.into_iter().zip(outgoing));
    }
    Ok(prepared)
}

/// Makes one attempt; never touches the database.
pub async fn attempt(state: &AppState, claimed: &Claimed, outgoing: &Outgoing) -> AttemptRecord {
    let started_at = Timestamp::now();
    let started = Instant::now();
    let report = state.engine.send(outgoing).await;
    state
        .metrics
        .delivery_attempt_seconds
        .observe(started.elapsed().as_secs_f64());
    AttemptRecord {
        delivery: claimed.id,
        lease_token: claimed.lease_token.clone(),
        attempt: claimed.attempt,
        started_at,
        duration_ms: report.duration.as_millis() as u64,
        success: report.success,
        status_code: report.status_code,
        error: report.error,
        response_body: report.response_body,
        timed_out: report.timed_out,
    }
}

/// Records attempts and moves their deliveries on.
pub async fn record(state: &AppState, records: &[AttemptRecord]) -> anyhow::Result<Vec<Recorded>> {
    let recorded = deliveries::record(
        &state.store,
        &state.engine.schedule,
        &state.engine.policy,
        records,
        Timestamp::now(),
    )
    .await?;
    for outcome in &recorded {
        state
            .metrics
            .deliveries
            .get_or_create(&OutcomeLabels {
                outcome: outcome.status.as_str().to_owned(),
            })
            .inc();
    }
    let lapsed = records.len() - recorded.len();
    if lapsed > 0 {
        tracing::warn!(
            lapsed,
            "attempt results arrived after their lease lapsed and were not recorded"
        );
    }
    Ok(recorded)
}

/// What one [`run_once`] did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Round {
    pub attempted: usize,
    pub succeeded: usize,
    pub retrying: usize,
    pub failed: usize,
}

/// One claim, all its attempts concurrently, one record: the engine's step in order.
pub async fn run_once(state: &AppState) -> anyhow::Result<Round> {
    let batch = claim(state, state.engine.concurrency, &Unrecorded::new()).await?;
    let records = futures::future::join_all(
        batch
            .iter()
            .map(|(claimed, outgoing)| attempt(state, claimed, outgoing)),
    )
    .await;
    let recorded = record(state, &records).await?;
    let count = |status| recorded.iter().filter(|r| r.status == status).count();
    Ok(Round {
        attempted: records.len(),
        succeeded: count(DeliveryStatus::Succeeded),
        retrying: count(DeliveryStatus::Retrying),
        failed: count(DeliveryStatus::Failed),
    })
}

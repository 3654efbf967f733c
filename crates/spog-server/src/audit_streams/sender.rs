//! Drives each stream's cursor (SPEC 3.5 "Guarantees"): under the stream's lease, the next
//! range of the chain after `delivered_seq` is read, filtered and formatted, sent, and the
//! cursor moves only once the sink confirms, under the same lease epoch and from where the
//! batch began. A failed batch is retried with the same range after a back-off. One batch
//! at a time per stream; streams are sent side by side.

use std::time::{Duration, Instant};

use futures::StreamExt;
use spog_core::audit_streams::{AuditStream, SinkSecrets};
use spog_core::model::Account;
use spog_core::{Id, Timestamp};
use spog_store::audit::{self, checkpoints};
use spog_store::audit_streams::sending::{self, Attempt, Confirmed, Lease};
use spog_store::audit_streams::{self as store, StoredStream};
use tokio_util::sync::CancellationToken;

use super::{Batch, Outcome, frame_entry, send};
use crate::metrics::{SinkLabels, StreamBatchLabels, StreamIdLabels, StreamLabels};
use crate::secrets::open_stream;
use crate::state::AppState;

/// Streams sent at once by one instance.
const STREAMS_AT_ONCE: usize = 8;
/// Streams looked at per round.
const DUE_PER_ROUND: u32 = 256;
/// Checkpoints sent with one batch, at most.
const CHECKPOINTS_PER_BATCH: u32 = 100;

/// What one round did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Round {
    pub batches: u64,
    pub entries: u64,
}

/// Sends every due stream until it is caught up, fails, or has had its share of the round.
pub async fn run_once(state: &AppState, shutdown: &CancellationToken) -> anyhow::Result<Round> {
    let now = Timestamp::now();
    let due = {
        let mut conn = state.store.conn().await?;
        sending::due(&mut conn, &state.instance_id, now, DUE_PER_ROUND).await?
    };
    let rounds: Vec<anyhow::Result<Round>> = futures::stream::iter(due)
        .map(|(account, stream)| drive(state, account, stream, shutdown))
        .buffer_unordered(STREAMS_AT_ONCE)
        .collect()
        .await;
    let mut total = Round::default();
    for round in rounds {
        let round = round?;
        total.batches += round.batches;
        total.entries += round.entries;
    }
    Ok(total)
}

/// Where a batch stands after it was read.
enum Next {
    /// Caught up, or a partial batch waiting `max_wait_ms` for more.
    Wait,
    /// Nothing in the range matched the filter: the cursor moves, nothing is sent.
    Skip(Confirmed),
    Send(Batch, Confirmed),
}

/// Sends one stream's batches one after another, for at most a third of the lease.
async fn drive(
    state: &AppState,
    account: Id<Account>,
    stream_id: Id<AuditStream>,
    shutdown: &CancellationToken,
) -> anyhow::Result<Round> {
    let lease_for = state.config.audit_stream_lease;
    let budget = Instant::now() + lease_for / 3;
    let mut round = Round::default();
    let now = Timestamp::now();
    let epoch = {
        let mut conn = state.store.conn().await?;
        sending::claim(
            &mut conn,
            stream_id,
            &state.instance_id,
            now,
            now.plus(lease_for),
        )
        .await?
    };
    let Some(epoch) = epoch else { return Ok(round) };
    let lease = Lease {
        stream: stream_id,
        instance: state.instance_id.clone(),
        epoch,
    };
    // A sink that refused a batch as too large gets smaller ones until one passes.
    let mut max_entries: Option<u32> = None;
    while Instant::now() < budget && !shutdown.is_cancelled() {
        let stored = {
            let mut conn = state.store.conn().await?;
            store::get_stored(&mut conn, account, stream_id, Timestamp::now()).await?
        };
        observe_lag(state, &stored.stream);
        if stored.stream.paused {
            break;
        }
        let Some(secrets) = open_stream(&state.keys, stream_id, &stored.secrets) else {
            let error =
                "the sink's secrets cannot be decrypted with this server key; set them again";
            fail(state, &lease, &stored, None, error, None).await?;
            break;
        };
        let limit = max_entries.unwrap_or(stored.stream.batch.max_entries);
        match read_batch(state, account, &stored, limit).await? {
            Next::Wait => break,
            Next::Skip(confirmed) => {
                let mut conn = state.store.conn().await?;
                if !sending::advance(&mut conn, &lease, &confirmed, Timestamp::now()).await? {
                    break;
                }
            }
            Next::Send(batch, confirmed) => {
                let outcome = send(state, &stored.stream.sink, &secrets, &batch).await;
                record(state, account, &stored.stream, &batch, &outcome).await?;
                round.batches += 1;
                if outcome.success {
                    max_entries = None;
                    let mut conn = state.store.conn().await?;
                    let confirmed = Confirmed {
                        bytes: outcome.bytes as i64,
                        ..confirmed
                    };
                    if !sending::advance(&mut conn, &lease, &confirmed, Timestamp::now()).await? {
                        break;
                    }
                    round.entries += confirmed.entries as u64;
                    count_sent(state, &stored.stream, &confirmed);
                } else if outcome.too_large && batch.entries.len() > 1 {
                    max_entries = Some((batch.entries.len() / 2) as u32);
                } else {
                    let error = outcome
                        .error
                        .as_deref()
                        .unwrap_or("the sink refused the batch");
                    let to_seq = batch.range.map(|(_, to)| to);
                    fail(state, &lease, &stored, to_seq, error, outcome.retry_after).await?;
                    break;
                }
            }
        }
        // Renews the lease (a no-op for the epoch while it is held).
        let now = Timestamp::now();
        let mut conn = state.store.conn().await?;
        let renewed = sending::claim(
            &mut conn,
            stream_id,
            &state.instance_id,
            now,
            now.plus(lease_for),
        )
        .await?;
        if renewed != Some(epoch) {
            break;
        }
    }
    Ok(round)
}

/// Reads the range after the cursor (up to `limit` links), keeps what matches the filter
/// and formats it, cut at `max_bytes` (at least one entry).
async fn read_batch(
    state: &AppState,
    account: Id<Account>,
    stored: &StoredStream,
    limit: u32,
) -> anyhow::Result<Next> {
    let stream = &stored.stream;
    let delivered = stream.status.delivered_seq;
    let upto = stored.retry_to_seq;
    let (chain, last) =
        audit::range(&state.store, account, delivered, upto, i64::from(limit)).await?;
    let Some(last) = last else {
        return Ok(Next::Wait);
    };
    let (format, filter, include_snapshots) = (
        stream.format,
        stream.filter.clone(),
        stream.include_snapshots,
    );
    let (sink, account_text) = (stream.sink.clone(), account.to_string());
    let max_bytes = stream.batch.max_bytes as usize;
    let (entries, cut_at, first_recorded) = state
        .blocking
        .run(move || {
            let mut entries = Vec::new();
            let mut bytes = 0;
            let mut cut_at = None;
            let mut first_recorded = None;
            for mut entry in chain.fields() {
                if !filter.matches(&entry) {
                    continue;
                }
                if !include_snapshots {
                    (entry.before, entry.after, entry.metadata) = (None, None, None);
                }
                let mut out = Vec::with_capacity(768);
                frame_entry(&sink, format, &account_text, &entry, &mut out);
                if !entries.is_empty() && bytes + out.len() > max_bytes {
                    // The entry before this one ends the batch.
                    cut_at = entry.seq.map(|seq| seq - 1);
                    break;
                }
                first_recorded = first_recorded.or(entry.recorded_at);
                bytes += out.len();
                entries.push(out);
            }
            (entries, cut_at, first_recorded)
        })
        .await;
    let to_seq = cut_at.unwrap_or(last);
    let from_seq = stored.next_from_seq.min(delivered + 1);
    if entries.is_empty() {
        return Ok(Next::Skip(Confirmed {
            delivered_seq: delivered,
            to_seq,
            next_from_seq: stored.next_from_seq,
            entries: 0,
            bytes: 0,
        }));
    }
    // A retry goes at once; so does a batch that holds all it may.
    let full = upto.is_some() || cut_at.is_some() || (last - delivered) >= i64::from(limit);
    let wait = Duration::from_millis(u64::from(stream.batch.max_wait_ms));
    if !full
        && let Some(recorded) = first_recorded
        && recorded.plus(wait) > Timestamp::now()
    {
        return Ok(Next::Wait);
    }
    let checkpoints = {
        let mut conn = state.store.conn().await?;
        checkpoints::in_range(&mut conn, account, from_seq, to_seq, CHECKPOINTS_PER_BATCH).await?
    };
    let confirmed = Confirmed {
        delivered_seq: delivered,
        to_seq,
        next_from_seq: to_seq + 1,
        entries: entries.len() as i64,
        bytes: 0,
    };
    let batch = Batch {
        stream_id: stream.id,
        account_id: account,
        format,
        range: Some((from_seq, to_seq)),
        entries,
        checkpoints,
    };
    Ok(Next::Send(batch, confirmed))
}

/// Backs the stream off: 1 s doubling per consecutive failure up to
/// `audit_stream_retry_max_delay`, or as long as the sink asked.
pub fn backoff(failures: i64, max: Duration, retry_after: Option<Duration>) -> Duration {
    let doubled = Duration::from_secs(1u64 << failures.clamp(0, 20));
    match retry_after {
        Some(asked) => asked.min(Duration::from_secs(3600)),
        None => doubled.min(max),
    }
}

async fn fail(
    state: &AppState,
    lease: &Lease,
    stored: &StoredStream,
    to_seq: Option<i64>,
    error: &str,
    retry_after: Option<Duration>,
) -> anyhow::Result<()> {
    let failures = stored.stream.status.consecutive_failures;
    let delay = backoff(
        failures,
        state.config.audit_stream_retry_max_delay,
        retry_after,
    );
    let now = Timestamp::now();
    let mut conn = state.store.conn().await?;
    sending::failed(&mut conn, lease, to_seq, error, now.plus(delay), now).await?;
    Ok(())
}

async fn record(
    state: &AppState,
    account: Id<Account>,
    stream: &AuditStream,
    batch: &Batch,
    outcome: &Outcome,
) -> anyhow::Result<()> {
    let sink = stream.sink.type_name().to_owned();
    let labels = StreamBatchLabels {
        stream_id: stream.id.to_string(),
        sink: sink.clone(),
        outcome: if outcome.success {
            "success"
        } else {
            "failure"
        }
        .to_owned(),
    };
    state.metrics.streams.batches.get_or_create(&labels).inc();
    (state.metrics.streams.batch_seconds)
        .get_or_create(&SinkLabels { sink })
        .observe(outcome.duration.as_secs_f64());
    let attempt = Attempt {
        from_seq: batch.range.map(|(from, _)| from),
        to_seq: batch.range.map(|(_, to)| to),
        entries: batch.entries.len() as i64,
        bytes: outcome.bytes as i64,
        success: outcome.success,
        status_code: outcome.status_code,
        error: outcome.error.clone(),
        duration_ms: outcome.duration.as_millis() as i64,
        at: Timestamp::now(),
    };
    let mut conn = state.store.conn().await?;
    sending::record_attempt(&mut conn, account, stream.id, &attempt).await?;
    Ok(())
}

fn count_sent(state: &AppState, stream: &AuditStream, confirmed: &Confirmed) {
    let labels = StreamLabels {
        stream_id: stream.id.to_string(),
        sink: stream.sink.type_name().to_owned(),
    };
    let metrics = &state.metrics.streams;
    metrics
        .entries
        .get_or_create(&labels)
        .inc_by(confirmed.entries as u64);
    metrics
        .bytes
        .get_or_create(&labels)
        .inc_by(confirmed.bytes as u64);
}

fn observe_lag(state: &AppState, stream: &AuditStream) {
    let labels = StreamIdLabels {
        stream_id: stream.id.to_string(),
    };
    let metrics = &state.metrics.streams;
    metrics
        .lag_entries
        .get_or_create(&labels)
        .set(stream.status.lag_entries);
    metrics
        .lag_seconds
        .get_or_create(&labels)
        .set(stream.status.lag_seconds);
}

/// The stream's secrets in clear, for the API's test.
pub fn secrets_of(state: &AppState, stored: &StoredStream) -> Option<SinkSecrets> {
    open_stream(&state.keys, stored.stream.id, &stored.secrets)
}

//! The delivery loop: keeps up to `delivery_concurrency` attempts in flight, claiming more as
//! room frees up, woken at once when a transaction creates deliveries or attempts are
//! recorded (freeing their targets' slots), and every half second for retries that come due
//! and work other instances left. Results are recorded by a
//! companion loop in batches, so a slow receiver only ever occupies its own slot; each batch
//! recorded tells its accounts' dashboards (coalesced) that deliveries moved.
//!
//! Everything runs inside the one task `spawn` returns: aborting it (a crash) abandons the
//! in-flight attempts, whose leases lapse and whose deliveries are then taken up again.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use spog_core::Id;
use spog_core::model::Account;
use spog_store::deliveries::{AttemptRecord, Unrecorded};
use tokio::sync::{Notify, mpsc};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::delivery::engine;
use crate::state::AppState;

pub const NAME: &str = "webhook_delivery";

const POLL: Duration = Duration::from_millis(500);

pub fn spawn(state: &AppState, shutdown: CancellationToken) -> tokio::task::JoinHandle<()> {
    let state = state.clone();
    tokio::spawn(async move {
        state.workers.set_running(NAME, true);
        let capacity = state.engine.concurrency.max(1) as usize;
        let (results, pending) = mpsc::channel(capacity * 2);
        let recorded = Notify::new();
        let ended = Arc::new(Ended::default());
        tokio::join!(
            claim_loop(&state, results, &recorded, &ended, shutdown),
            record_loop(&state, pending, &recorded, &ended)
        );
        state.workers.set_running(NAME, false);
    })
}

/// An attempt's result and the account whose delivery it was.
type Attempted = (Id<Account>, AttemptRecord);

/// This instance's deliveries whose attempts have ended and are not recorded yet (see
/// [`Unrecorded`]): each attempt adds its delivery as it ends, the recording takes them off
/// once it has committed (or given them up to their leases).
type Ended = Mutex<Unrecorded>;

async fn claim_loop(
    state: &AppState,
    results: mpsc::Sender<Attempted>,
    recorded: &Notify,
    ended: &Arc<Ended>,
    shutdown: CancellationToken,
) {
    let capacity = state.engine.concurrency.max(1) as usize;
    // Claim in large batches once the pipe is busy (a claim costs about the same whatever
    // its size), and at once when it is idle (for latency).
    let worth_claiming = (capacity / 2).max(1);
    let mut in_flight = JoinSet::new();
    let mut ticker = tokio::time::interval(POLL);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut more_due = true;
    // Whether the last claim found work: then each ended attempt, which frees its target's
    // slot (see `Ended`), is worth another claim.
    let mut claimed_any = false;
    loop {
        let room = capacity - in_flight.len();
        if more_due && room > 0 && (room >= worth_claiming || in_flight.is_empty()) {
            let unrecorded = ended.lock().clone();
            let claimed = engine::claim(state, room as u32, &unrecorded).await;
            let failure = claimed.as_ref().err().map(|e| anyhow::anyhow!("{e:#}"));
            state
                .workers
                .record(NAME, &failure.map_or(Ok(()), Err::<(), _>));
            match claimed {
                Ok(batch) => {
                    more_due = batch.len() == room.min(engine::BATCH as usize);
                    claimed_any = !batch.is_empty();
                    for (claimed, outgoing) in batch {
                        let state = state.clone();
                        let results = results.clone();
                        let ended = Arc::clone(ended);
                        in_flight.spawn(async move {
                            let record = engine::attempt(&state, &claimed, &outgoing).await;
                            ended.lock().insert(claimed.id.to_string());
                            let attempted = (claimed.account, record);
                            let _ = results.send(attempted).await;
                        });
                    }
                }
                Err(error) => {
                    tracing::warn!(
                        worker = NAME,
                        error = format!("{error:#}"),
                        "claiming failed"
                    );
                    more_due = false;
                    claimed_any = false;
                }
            }
        }
        tokio::select! {
            biased;
            _ = shutdown.cancelled() => break,
            Some(_) = in_flight.join_next(), if !in_flight.is_empty() => more_due |= claimed_any,
            _ = state.store.deliveries_enqueued().notified() => more_due = true,
            // Recorded attempts free their targets' slots (the leased rows are what the
            // per-target limit counts): what was held back may be claimed now.
            _ = recorded.notified() => more_due = true,
            _ = ticker.tick() => more_due = true,
        }
    }
    // Attempts in flight finish (each is bounded by the attempt timeout) and are recorded;
    // nothing more is claimed.
    while in_flight.join_next().await.is_some() {}
}

async fn record_loop(
    state: &AppState,
    mut pending: mpsc::Receiver<Attempted>,
    recorded: &Notify,
    ended: &Ended,
) {
    let mut received = Vec::new();
    let mut accounts = HashSet::new();
    let mut batch = Vec::new();
    while pending
        .recv_many(&mut received, engine::BATCH as usize)
        .await
        > 0
    {
        for (account, record) in received.drain(..) {
            accounts.insert(account);
            batch.push(record);
        }
        let mut tries = 0;
        loop {
            match engine::record(state, &batch).await {
                Ok(_) => {
                    recorded.notify_one();
                    for account in accounts.drain() {
                        state.bus.touch(account, "deliveries");
                    }
                    break;
                }
                Err(error) if tries < 5 => {
                    tries += 1;
                    tracing::warn!(
                        worker = NAME,
                        error = format!("{error:#}"),
                        "recording attempts failed; retrying"
                    );
                    tokio::time::sleep(Duration::from_millis(200 * tries)).await;
                }
                Err(error) => {
                    // The deliveries stay claimed; their leases lapse and they are taken up
                    // again, so nothing is lost.
                    tracing::error!(
                        worker = NAME,
                        error = format!("{error:#}"),
                        "recording attempts failed"
                    );
                    state.workers.record(NAME, &Err(error));
                    break;
                }
            }
        }
        // Recorded (their rows no longer leased), or left to their leases: either way no
        // longer this instance's to discount.
        let mut ended = ended.lock();
        for record in &batch {
            ended.remove(&record.delivery.to_string());
        }
        drop(ended);
        batch.clear();
        accounts.clear();
    }
}

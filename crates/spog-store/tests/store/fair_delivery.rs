//! Fair claiming on both backends (issue 12): one account's backlog to a dead endpoint
//! holds at most that target's limit, another account's due delivery is claimed at once,
//! the limit holds across instances claiming together, and a target that keeps timing out
//! is backed off durably.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use spog_core::Timestamp;
use spog_core::delivery::RetrySchedule;
use spog_core::events::EventType;
use spog_store::deliveries::{self, AttemptRecord, ClaimPolicy, Claimed};
use spog_store::events::{self, NewEvent};
use spog_store::testing::databases;

use crate::deliveries::{enqueue_for, result};

const POLICY: ClaimPolicy = ClaimPolicy {
    lease: Duration::from_secs(60),
    max_in_flight: 4,
    timeouts_before_backoff: 3,
    backoff: Duration::from_secs(30),
};

fn by_target(claimed: &[Claimed]) -> HashMap<String, usize> {
    let mut counts = HashMap::new();
    for c in claimed {
        *counts.entry(c.target_id.clone()).or_default() += 1;
    }
    counts
}

fn timed_out(claimed: &Claimed) -> AttemptRecord {
    AttemptRecord {
        success: false,
        status_code: None,
        error: Some("timed out after 10s".to_owned()),
        response_body: None,
        timed_out: true,
        ..result(claimed, false)
    }
}

#[tokio::test]
async fn another_accounts_delivery_is_claimed_beside_a_backlog_held_to_its_targets_limit() {
    for db in databases().await {
        let store = db.store().await;
        let (_, noisy) = enqueue_for(&store, "noisy", 1, 300).await;
        let (quiet_account, quiet) = enqueue_for(&store, "quiet", 1, 1).await;
        let now = Timestamp::now();
        let first = deliveries::claim(&store, 100, &POLICY, &Default::default(), now)
            .await
            .unwrap();
        let counts = by_target(&first);
        assert_eq!(counts.get(&noisy[0]), Some(&4), "{:?}", db.backend);
        assert_eq!(counts.get(&quiet[0]), Some(&1), "{:?}", db.backend);
        // The noisy target is at its limit: nothing more of it is claimed, however many wait.
        assert!(
            deliveries::claim(&store, 100, &POLICY, &Default::default(), now)
                .await
                .unwrap()
                .is_empty()
        );
        // Another of the quiet account's deliveries comes due, and one noisy attempt ends:
        // with a single free slot and both accounts due, the account holding fewer wins.
        let quiet_claim = first.iter().find(|c| c.account == quiet_account).unwrap();
        let mut tx = store.begin().await.unwrap();
        let event = NewEvent {
            account: quiet_account,
            organization: quiet_claim.organization,
            event_type: EventType::JobFailed,
            occurred_at: now,
            data: "{}".into(),
            idempotency_key: None,
        };
        events::publish(&mut tx, event, now).await.unwrap();
        tx.commit_unaudited().await.unwrap();
        let record: Vec<_> = first
            .iter()
            .filter(|c| c.target_id == noisy[0])
            .take(1)
            .map(|c| result(c, false))
            .collect();
        let schedule = RetrySchedule::new(vec![Duration::from_secs(3600)]);
        deliveries::record(&store, &schedule, &POLICY, &record, now)
            .await
            .unwrap();
        let later = now.plus(Duration::from_millis(1));
        let one = deliveries::claim(&store, 1, &POLICY, &Default::default(), later)
            .await
            .unwrap();
        assert_eq!(one.len(), 1);
        assert_eq!(one[0].account, quiet_account, "{:?}", db.backend);
    }
}

#[tokio::test]
async fn the_per_target_limit_holds_across_instances_claiming_at_once() {
    for db in databases().await {
        let store = db.store().await;
        let (_, hooks) = enqueue_for(&store, "acme", 3, 200).await;
        let now = Timestamp::now();
        // Eight claimers at once, as eight instances would.
        let claimers = (0..8).map(|_| {
            let store = store.clone();
            tokio::spawn(async move {
                deliveries::claim(&store, 50, &POLICY, &Default::default(), now)
                    .await
                    .unwrap()
            })
        });
        let mut all = Vec::new();
        for claimer in claimers {
            all.extend(claimer.await.unwrap());
        }
        let counts = by_target(&all);
        for hook in &hooks {
            assert_eq!(counts.get(hook), Some(&4), "{:?}: {counts:?}", db.backend);
        }
    }
}

#[tokio::test]
async fn a_target_that_keeps_timing_out_is_backed_off_then_probed_one_at_a_time() {
    for db in databases().await {
        let store = db.store().await;
        let (_, hooks) = enqueue_for(&store, "acme", 1, 50).await;
        let schedule = RetrySchedule::new(vec![Duration::from_secs(3600)]);
        let now = Timestamp::now();
        let first = deliveries::claim(&store, 100, &POLICY, &Default::default(), now)
            .await
            .unwrap();
        assert_eq!(first.len(), 4);
        let timeouts: Vec<_> = first.iter().take(3).map(timed_out).collect();
        deliveries::record(&store, &schedule, &POLICY, &timeouts, now)
            .await
            .unwrap();
        // Three slots came free, but the target is backed off: its deliveries wait, with no
        // attempt counted.
        let during = now.plus(Duration::from_secs(29));
        assert!(
            deliveries::claim(&store, 100, &POLICY, &Default::default(), during)
                .await
                .unwrap()
                .is_empty(),
            "{:?}",
            db.backend
        );
        // After the back-off (and with the fourth attempt still out), one probe at a time.
        let finished: Vec<_> = first.iter().skip(3).map(timed_out).collect();
        deliveries::record(&store, &schedule, &POLICY, &finished, now)
            .await
            .unwrap();
        let after = now.plus(Duration::from_secs(31));
        let probe = deliveries::claim(&store, 100, &POLICY, &Default::default(), after)
            .await
            .unwrap();
        assert_eq!(probe.len(), 1, "{:?}", db.backend);
        assert_eq!(
            probe[0].attempt, 1,
            "the waiting deliveries lost no attempt"
        );
        // It answers: the target is back to its full limit at once.
        deliveries::record(
            &store,
            &schedule,
            &POLICY,
            &[result(&probe[0], true)],
            after,
        )
        .await
        .unwrap();
        let back = deliveries::claim(&store, 100, &POLICY, &Default::default(), after)
            .await
            .unwrap();
        assert_eq!(back.len(), 4, "{:?}", db.backend);
        assert!(back.iter().all(|c| c.target_id == hooks[0]));
    }
}

#[tokio::test]
async fn ended_attempts_not_yet_recorded_do_not_hold_their_targets_slots() {
    for db in databases().await {
        let store = db.store().await;
        let _ = enqueue_for(&store, "acme", 1, 20).await;
        let now = Timestamp::now();
        let none = HashSet::new();
        let first = deliveries::claim(&store, 100, &POLICY, &none, now)
            .await
            .unwrap();
        assert_eq!(first.len(), 4);
        assert!(
            deliveries::claim(&store, 100, &POLICY, &none, now)
                .await
                .unwrap()
                .is_empty()
        );
        // Two of them have ended on this instance; their results are on their way.
        let ended: HashSet<String> = first.iter().take(2).map(|c| c.id.to_string()).collect();
        let more = deliveries::claim(&store, 100, &POLICY, &ended, now)
            .await
            .unwrap();
        assert_eq!(more.len(), 2, "{:?}", db.backend);
    }
}

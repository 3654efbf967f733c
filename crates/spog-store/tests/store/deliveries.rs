//! The delivery queue on both backends: claims never overlap, a lapsed claim cannot record,
//! a dead instance's delivery is taken up again, and work per call stays bounded.

use std::collections::HashSet;
use std::time::Duration;

use spog_core::delivery::{DeliveryStatus, RetrySchedule, TargetKind};
use spog_core::events::{Event, EventType};
use spog_core::model::{Account, Organization};
use spog_core::validate::Name;
use spog_core::webhooks::WebhookUrl;
use spog_core::{Id, Timestamp};
use spog_store::deliveries::{self, AttemptRecord, ClaimPolicy, Claimed};
use spog_store::events::{self, EventRecord};
use spog_store::identity::accounts;
use spog_store::testing::databases;
use spog_store::{Store, Tx, webhooks};

const LEASE: Duration = Duration::from_secs(30);

/// No per-target limit to speak of: the queue's own behaviour, apart from fairness.
const UNLIMITED: ClaimPolicy = ClaimPolicy {
    lease: LEASE,
    max_in_flight: 10_000,
    timeouts_before_backoff: 3,
    backoff: Duration::from_secs(30),
};

async fn account(store: &Store, name: &str) -> (Id<Account>, Id<Organization>) {
    let mut tx = store.begin().await.unwrap();
    let (account, organization) = accounts::create(&mut tx, name, Timestamp::now())
        .await
        .unwrap();
    tx.commit_unaudited().await.unwrap();
    (account.id, organization.id)
}

/// `events` events, each fanned out to `subscribers` webhooks.
async fn enqueue(store: &Store, subscribers: usize, events: usize) -> (Id<Account>, Vec<String>) {
    enqueue_for(store, "acme", subscribers, events).await
}

/// `events` events of a new account named `name`, each fanned out to `subscribers` webhooks.
pub async fn enqueue_for(
    store: &Store,
    name: &str,
    subscribers: usize,
    events: usize,
) -> (Id<Account>, Vec<String>) {
    let (account, organization) = account(store, name).await;
    let mut tx = store.begin().await.unwrap();
    let mut hooks = Vec::new();
    for n in 0..subscribers {
        let fields = webhooks::WebhookFields {
            name: Name::parse("name", &format!("hook {n}"), 200).unwrap(),
            url: WebhookUrl::parse("url", "https://hooks.example.com/", false).unwrap(),
            secret_ciphertext: None,
            headers: Default::default(),
            event_types: vec![EventType::JobFailed],
            active: true,
        };
        let hook = webhooks::create(
            &mut tx,
            account,
            organization,
            Id::new(),
            &fields,
            Timestamp::now(),
        )
        .await
        .unwrap();
        hooks.push(hook.id.to_string());
    }
    for _ in 0..events {
        publish(&mut tx, account, organization, Timestamp::now()).await;
    }
    tx.commit_unaudited().await.unwrap();
    (account, hooks)
}

/// Stores a `job.failed` event with one delivery per webhook subscribed to it, as the
/// server's fan-out does.
pub async fn publish(
    tx: &mut Tx,
    account: Id<Account>,
    organization: Id<Organization>,
    now: Timestamp,
) -> Id<Event> {
    let event_type = EventType::JobFailed;
    let record = EventRecord {
        account,
        organization,
        event_type,
        occurred_at: now,
        data: "{}",
        idempotency_key: None,
    };
    let event = events::insert(tx, &record, now).await.unwrap();
    let subscribed: Vec<String> = webhooks::subscribed(tx, account, organization, event_type)
        .await
        .unwrap()
        .iter()
        .map(ToString::to_string)
        .collect();
    deliveries::enqueue(
        tx,
        account,
        organization,
        event,
        event_type,
        TargetKind::Webhook,
        &subscribed,
        now,
    )
    .await
    .unwrap();
    event
}

pub fn result(claimed: &Claimed, success: bool) -> AttemptRecord {
    AttemptRecord {
        delivery: claimed.id,
        lease_token: claimed.lease_token.clone(),
        attempt: claimed.attempt,
        started_at: Timestamp::now(),
        duration_ms: 3,
        success,
        status_code: Some(if success { 200 } else { 500 }),
        error: (!success).then(|| "HTTP 500".to_owned()),
        response_body: Some("body".into()),
        timed_out: false,
    }
}

#[tokio::test]
async fn concurrent_claims_never_hand_out_the_same_delivery() {
    for db in databases().await {
        let store = db.store().await;
        enqueue(&store, 5, 60).await;
        let claimers = (0..4).map(|_| {
            let store = store.clone();
            tokio::spawn(async move {
                let mut mine = Vec::new();
                loop {
                    let batch = deliveries::claim(
                        &store,
                        7,
                        &UNLIMITED,
                        &Default::default(),
                        Timestamp::now(),
                    )
                    .await
                    .unwrap();
                    if batch.is_empty() {
                        return mine;
                    }
                    mine.extend(batch.into_iter().map(|c| c.id));
                }
            })
        });
        let mut all = Vec::new();
        for claimer in claimers {
            all.extend(claimer.await.unwrap());
        }
        let distinct: HashSet<_> = all.iter().collect();
        assert_eq!(all.len(), 300, "{:?}", db.backend);
        assert_eq!(distinct.len(), 300, "{:?}", db.backend);
    }
}

#[tokio::test]
async fn attempts_move_deliveries_through_the_schedule() {
    for db in databases().await {
        let store = db.store().await;
        let (account, hooks) = enqueue(&store, 1, 1).await;
        let schedule = RetrySchedule::new(vec![Duration::from_secs(60)]);
        let start = Timestamp::now();
        let first = deliveries::claim(&store, 10, &UNLIMITED, &Default::default(), start)
            .await
            .unwrap();
        assert_eq!((first.len(), first[0].attempt), (1, 1));
        let recorded = deliveries::record(
            &store,
            &schedule,
            &UNLIMITED,
            &[result(&first[0], false)],
            start,
        )
        .await
        .unwrap();
        assert_eq!(recorded[0].status, DeliveryStatus::Retrying);
        // Not due again until the delay has passed.
        assert!(
            deliveries::claim(
                &store,
                10,
                &UNLIMITED,
                &Default::default(),
                start.plus(Duration::from_secs(59))
            )
            .await
            .unwrap()
            .is_empty()
        );
        let later = start.plus(Duration::from_secs(61));
        let second = deliveries::claim(&store, 10, &UNLIMITED, &Default::default(), later)
            .await
            .unwrap();
        assert_eq!(second[0].attempt, 2);
        let recorded = deliveries::record(
            &store,
            &schedule,
            &UNLIMITED,
            &[result(&second[0], false)],
            later,
        )
        .await
        .unwrap();
        assert_eq!(recorded[0].status, DeliveryStatus::Failed);
        let mut conn = store.conn().await.unwrap();
        let detail = deliveries::detail(
            &mut conn,
            account,
            TargetKind::Webhook,
            &hooks[0],
            first[0].id,
        )
        .await
        .unwrap();
        assert_eq!(detail.delivery.status, DeliveryStatus::Failed);
        assert_eq!(detail.delivery.attempt_count, 2);
        assert_eq!(detail.delivery.last_status_code, Some(500));
        assert_eq!(detail.attempts.len(), 2);
        assert_eq!(detail.payload["event_type"], "job.failed");
    }
}

#[tokio::test]
async fn a_lapsed_claim_is_taken_up_again_and_its_late_result_is_ignored() {
    for db in databases().await {
        let store = db.store().await;
        let (account, hooks) = enqueue(&store, 1, 1).await;
        let schedule = RetrySchedule::new(vec![Duration::from_secs(10)]);
        let start = Timestamp::now();
        let lost = deliveries::claim(&store, 10, &UNLIMITED, &Default::default(), start)
            .await
            .unwrap();
        let lapsed = start.plus(LEASE + Duration::from_secs(1));
        assert_eq!(
            deliveries::expire_leases(&store, &schedule, 100, lapsed)
                .await
                .unwrap(),
            1
        );
        // The lost attempt counts, failed as of when its lease lapsed; the next follows the
        // schedule from there.
        let retry_at = start.plus(LEASE + Duration::from_secs(10));
        let again = deliveries::claim(&store, 10, &UNLIMITED, &Default::default(), retry_at)
            .await
            .unwrap();
        assert_eq!((again.len(), again[0].attempt), (1, 2));
        // The dead instance's result arrives late: its claim no longer holds.
        let late = deliveries::record(
            &store,
            &schedule,
            &UNLIMITED,
            &[result(&lost[0], true)],
            retry_at,
        )
        .await
        .unwrap();
        assert!(late.is_empty());
        let done = deliveries::record(
            &store,
            &schedule,
            &UNLIMITED,
            &[result(&again[0], true)],
            retry_at,
        )
        .await
        .unwrap();
        assert_eq!(done[0].status, DeliveryStatus::Succeeded);
        let mut conn = store.conn().await.unwrap();
        let detail = deliveries::detail(
            &mut conn,
            account,
            TargetKind::Webhook,
            &hooks[0],
            lost[0].id,
        )
        .await
        .unwrap();
        assert_eq!(detail.attempts.len(), 2);
        assert!(
            detail.attempts[0]
                .error
                .as_deref()
                .unwrap()
                .contains("lease expired")
        );
    }
}

#[tokio::test]
async fn claims_and_cleanup_do_bounded_work_whatever_the_backlog() {
    for db in databases().await {
        let store = db.store().await;
        enqueue(&store, 10, 50).await;
        let now = Timestamp::now();
        let batch = deliveries::claim(&store, 25, &UNLIMITED, &Default::default(), now)
            .await
            .unwrap();
        assert_eq!(batch.len(), 25);
        let mut conn = store.conn().await.unwrap();
        let backlog = deliveries::backlog(&mut conn, None).await.unwrap();
        assert_eq!((backlog.pending, backlog.delivering), (475, 25));
        drop(conn);
        let schedule = RetrySchedule::standard();
        let records: Vec<_> = batch.iter().map(|c| result(c, true)).collect();
        deliveries::record(&store, &schedule, &UNLIMITED, &records, now)
            .await
            .unwrap();
        let past_retention = now.plus(Duration::from_secs(1));
        assert_eq!(
            deliveries::cleanup(&store, past_retention, past_retention, 10)
                .await
                .unwrap(),
            10
        );
        assert_eq!(
            deliveries::cleanup(&store, past_retention, past_retention, 100)
                .await
                .unwrap(),
            15
        );
        assert_eq!(
            deliveries::cleanup(&store, past_retention, past_retention, 100)
                .await
                .unwrap(),
            0
        );
    }
}

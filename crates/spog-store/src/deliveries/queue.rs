//! Enqueueing, recording and expiring: the queue side of deliveries (claiming is in
//! [`super::claim`]). Every function does a bounded amount of work, whatever the backlog.

use spog_core::delivery::{Delivery, DeliveryStatus, RetrySchedule, TargetKind};
use spog_core::events::{Event, EventType};
use spog_core::model::{Account, Organization};
use spog_core::{Id, Timestamp};
use sqlx::AssertSqlSafe;

use super::ClaimPolicy;
use crate::rows::id;
use crate::{Conn, Sql, Store, StoreResult, Tx};

/// Rows per multi-row statement: far below both databases' parameter limits.
const ROWS_PER_STATEMENT: usize = 500;

/// Creates one `pending` delivery, due now, per target; in the transaction that accepts the
/// event. The transaction wakes the delivery engine when it commits.
#[allow(clippy::too_many_arguments)]
#[tracing::instrument(name = "deliveries::enqueue", skip_all, fields(account = %account, organization = %organization, event = %event))]
pub async fn enqueue(
    tx: &mut Tx,
    account: Id<Account>,
    organization: Id<Organization>,
    event: Id<Event>,
    event_type: EventType,
    kind: TargetKind,
    targets: &[String],
    now: Timestamp,
) -> StoreResult<Vec<Id<Delivery>>> {
    let mut ids = Vec::with_capacity(targets.len());
    for chunk in targets.chunks(ROWS_PER_STATEMENT) {
        let mut sql = Sql::new(
            "INSERT INTO deliveries (id, account_id, organization_id, target_kind, target_id, event_id, \
             event_type, status, attempt_count, next_attempt_at, created_at, updated_at) VALUES ",
        );
        for (i, target) in chunk.iter().enumerate() {
            let delivery: Id<Delivery> = Id::new();
            ids.push(delivery);
            sql.push(if i == 0 { "(" } else { ", (" })
                .bind(delivery.to_string())
                .push(", ")
                .bind(account.to_string())
                .push(", ")
                .bind(organization.to_string())
                .push(", ")
                .bind(kind.as_str())
                .push(", ")
                .bind(target.clone())
                .push(", ")
                .bind(event.to_string())
                .push(", ")
                .bind(event_type.as_str())
                .push(", 'pending', 0, ")
                .bind(now.micros())
                .push(", ")
                .bind(now.micros())
                .push(", ")
                .bind(now.micros())
                .push(")");
        }
        sql.execute(tx).await?;
    }
    if !ids.is_empty() {
        tx.note_deliveries_enqueued();
    }
    Ok(ids)
}

/// A transaction of the engine's own bookkeeping. Should the database crash and lose it, a
/// lost claim makes its deliveries due again and a lost record leaves them claimed until the
/// lease lapses: either way they are attempted again (at least once), never lost.
pub(super) async fn begin_relaxed(store: &Store) -> StoreResult<Tx> {
    let mut tx = store.begin().await?;
    if let Some(statement) = store.backend().without_flush_wait() {
        sqlx::query(statement).execute(&mut *tx).await?;
    }
    Ok(tx)
}

/// A cheap read first, so an idle engine never takes the write lock.
pub(super) async fn anything_due(store: &Store, now: Timestamp) -> StoreResult<bool> {
    let due: Option<i64> = sqlx::query_scalar(
        "SELECT 1 FROM deliveries WHERE status IN ('pending', 'retrying') AND next_attempt_at <= $1 LIMIT 1",
    )
    .bind(now.micros())
    .fetch_optional(&mut *store.conn().await?)
    .await?;
    Ok(due.is_some())
}

/// The result of one attempt, as the instance that made it reports it.
#[derive(Clone, Debug)]
pub struct AttemptRecord {
    pub delivery: Id<Delivery>,
    pub lease_token: String,
    pub attempt: u32,
    pub started_at: Timestamp,
    pub duration_ms: u64,
    pub success: bool,
    pub status_code: Option<u16>,
    pub error: Option<String>,
    pub response_body: Option<String>,
    /// The attempt used its whole timeout without an answer (it held its slot throughout).
    pub timed_out: bool,
}

/// A recorded attempt and where it left its delivery.
#[derive(Clone, Debug)]
pub struct Recorded {
    pub delivery: Id<Delivery>,
    pub status: DeliveryStatus,
}

/// Records attempts and moves their deliveries on per `schedule`, in one transaction; targets
/// whose attempts timed out move towards back-off per `policy`, and those that answered
/// leave it. An attempt whose claim lapsed (another instance took the delivery up) is not
/// recorded: each claim has its own token, cleared when its attempt is recorded or taken up.
#[tracing::instrument(name = "deliveries::record", skip_all)]
pub async fn record(
    store: &Store,
    schedule: &RetrySchedule,
    policy: &ClaimPolicy,
    records: &[AttemptRecord],
    now: Timestamp,
) -> StoreResult<Vec<Recorded>> {
    let mut tx = begin_relaxed(store).await?;
    let mut recorded = Vec::with_capacity(records.len());
    let mut targets = TargetOutcomes::new();
    for chunk in records.chunks(ROWS_PER_STATEMENT) {
        recorded.extend(record_chunk(&mut tx, schedule, chunk, now, &mut targets).await?);
    }
    super::backoff::note_outcomes(&mut tx, policy, &targets, now).await?;
    tx.commit_unaudited().await?;
    Ok(recorded)
}

/// Per target of a batch: attempts that timed out, and whether any answered.
pub(super) type TargetOutcomes = std::collections::BTreeMap<String, (u32, bool)>;

async fn record_chunk(
    conn: &mut Conn,
    schedule: &RetrySchedule,
    records: &[AttemptRecord],
    now: Timestamp,
    targets: &mut TargetOutcomes,
) -> StoreResult<Vec<Recorded>> {
    let mut update = Sql::new(
        "WITH v (id, token, status, next_attempt_at, completed_at, last_status_code, last_error) AS (VALUES ",
    );
    let mut statuses = std::collections::HashMap::with_capacity(records.len());
    for (i, record) in records.iter().enumerate() {
        let transition = schedule.after_attempt(record.attempt, record.success, now);
        statuses.insert(record.delivery.to_string(), transition.status);
        update
            .push(if i == 0 { "(" } else { ", (" })
            .bind(record.delivery.to_string())
            .push(", ")
            .bind(record.lease_token.clone())
            .push(", ")
            .bind(transition.status.as_str())
            .push(", ")
            .bind(transition.next_attempt_at.map(Timestamp::micros))
            .push(", ")
            .bind(transition.completed_at.map(Timestamp::micros))
            .push(", ")
            .bind(record.status_code.map(i64::from))
            .push(", ")
            .bind(record.error.clone())
            .push(")");
    }
    update
        .push(
            ") UPDATE deliveries SET status = v.status, next_attempt_at = v.next_attempt_at, \
             completed_at = v.completed_at, last_status_code = v.last_status_code, last_error = v.last_error, \
             lease_token = NULL, lease_expires_at = NULL, updated_at = ",
        )
        .bind(now.micros())
        .push(
            " FROM v WHERE deliveries.id = v.id AND deliveries.lease_token = v.token \
             RETURNING deliveries.id, deliveries.target_id",
        );
    let updated: Vec<(String, String)> = update.fetch_all(&mut *conn).await?;
    let updated: std::collections::HashMap<String, String> = updated.into_iter().collect();
    let kept: Vec<&AttemptRecord> = records
        .iter()
        .filter(|r| updated.contains_key(&r.delivery.to_string()))
        .collect();
    for record in &kept {
        let target = targets
            .entry(updated[&record.delivery.to_string()].clone())
            .or_default();
        if record.timed_out {
            target.0 += 1;
        } else if record.status_code.is_some() {
            target.1 = true;
        }
    }
    insert_attempts(conn, &kept).await?;
    Ok(kept
        .iter()
        .map(|r| Recorded {
            delivery: r.delivery,
            status: statuses[&r.delivery.to_string()],
        })
        .collect())
}

async fn insert_attempts(conn: &mut Conn, records: &[&AttemptRecord]) -> StoreResult<()> {
    if records.is_empty() {
        return Ok(());
    }
    let mut sql = Sql::new(
        "INSERT INTO delivery_attempts (id, delivery_id, attempt, started_at, duration_ms, success, \
         status_code, error, response_body) VALUES ",
    );
    for (i, record) in records.iter().enumerate() {
        sql.push(if i == 0 { "(" } else { ", (" })
            .bind(uuid::Uuid::now_v7().to_string())
            .push(", ")
            .bind(record.delivery.to_string())
            .push(", ")
            .bind(i64::from(record.attempt))
            .push(", ")
            .bind(record.started_at.micros())
            .push(", ")
            .bind(record.duration_ms as i64)
            .push(", ")
            .bind(i64::from(record.success))
            .push(", ")
            .bind(record.status_code.map(i64::from))
            .push(", ")
            .bind(record.error.clone())
            .push(", ")
            .bind(record.response_body.clone())
            .push(")");
    }
    sql.execute(conn).await?;
    Ok(())
}

pub const ABANDONED: &str =
    "no result: the instance making this attempt stopped before recording it (lease expired)";

/// Deliveries whose instance died mid-attempt: the lost attempt is recorded as failed at the
/// moment its lease lapsed, and the delivery follows the schedule from there. At most
/// `limit` per call. Returns how many were taken up again.
#[tracing::instrument(name = "deliveries::expire_leases", skip_all)]
pub async fn expire_leases(
    store: &Store,
    schedule: &RetrySchedule,
    limit: u32,
    now: Timestamp,
) -> StoreResult<u64> {
    let expired_any: Option<i64> = sqlx::query_scalar(
        "SELECT 1 FROM deliveries WHERE status = 'delivering' AND lease_expires_at <= $1 LIMIT 1",
    )
    .bind(now.micros())
    .fetch_optional(&mut *store.conn().await?)
    .await?;
    if expired_any.is_none() {
        return Ok(0);
    }
    let mut tx = store.begin().await?;
    let expired: Vec<(String, String, i64, i64)> = sqlx::query_as(AssertSqlSafe(format!(
        "SELECT id, lease_token, attempt_count, lease_expires_at FROM deliveries \
         WHERE status = 'delivering' AND lease_expires_at <= $1 ORDER BY lease_expires_at LIMIT $2{}",
        store.backend().skip_locked()
    )))
    .bind(now.micros())
    .bind(i64::from(limit))
    .fetch_all(&mut *tx)
    .await?;
    let mut count = 0;
    for (delivery, token, attempt, lapsed_at) in expired {
        let lapsed_at = Timestamp::from_micros(lapsed_at);
        let record = AttemptRecord {
            delivery: id(&delivery)?,
            lease_token: token,
            attempt: attempt as u32,
            started_at: lapsed_at,
            duration_ms: 0,
            success: false,
            status_code: None,
            error: Some(ABANDONED.to_owned()),
            response_body: None,
            timed_out: false,
        };
        count += record_chunk(
            &mut tx,
            schedule,
            &[record],
            lapsed_at,
            &mut TargetOutcomes::new(),
        )
        .await?
        .len() as u64;
    }
    tx.commit_unaudited().await?;
    Ok(count)
}

/// Deletes up to `limit` `succeeded` deliveries completed before `before` and up to `limit`
/// `failed` ones completed before `failed_before` (their attempts with them), and events older
/// than `before` which no delivery refers to any more. Returns the deliveries deleted.
#[tracing::instrument(name = "deliveries::cleanup", skip_all)]
pub async fn cleanup(
    store: &Store,
    before: Timestamp,
    failed_before: Timestamp,
    limit: u32,
) -> StoreResult<u64> {
    let mut tx = store.begin().await?;
    let mut deleted = 0;
    for (status, completed_before) in [("succeeded", before), ("failed", failed_before)] {
        deleted += sqlx::query(
            "DELETE FROM deliveries WHERE id IN (SELECT id FROM deliveries WHERE status = $1 \
             AND completed_at < $2 ORDER BY completed_at LIMIT $3)",
        )
        .bind(status)
        .bind(completed_before.micros())
        .bind(i64::from(limit))
        .execute(&mut *tx)
        .await?
        .rows_affected();
    }
    sqlx::query(
        "DELETE FROM events WHERE id IN (SELECT id FROM events WHERE received_at < $1 \
         AND NOT EXISTS (SELECT 1 FROM deliveries WHERE deliveries.event_id = events.id) \
         ORDER BY received_at LIMIT $2)",
    )
    .bind(before.micros())
    .bind(i64::from(limit))
    .execute(&mut *tx)
    .await?;
    tx.commit_unaudited().await?;
    Ok(deleted)
}

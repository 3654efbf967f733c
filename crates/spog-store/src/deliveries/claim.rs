//! Claiming due deliveries fairly (SPEC 5.5 "Fairness", issue 12). A claim finds the targets
//! with due deliveries (a loose index scan: one probe per queued target, whatever the
//! backlog), counts the attempts in flight per target and account from the leased rows (the
//! durable truth, shared by every instance), shares the free slots out with
//! [`fair_share::allocate`], and claims each target's earliest due deliveries. Targets at
//! their in-flight limit or backed off after timing out are skipped; their deliveries stay
//! `pending`/`retrying` with no attempt counted.
//!
//! On PostgreSQL claims of all instances take turns under one transaction-level advisory
//! lock, so two instances never both fill the same target's last free slots; the rows
//! claimed are still locked `FOR UPDATE SKIP LOCKED` against everything else that changes
//! deliveries. SQLite has one writer at a time.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use spog_core::delivery::TargetKind;
use spog_core::events::{Event, EventType};
use spog_core::fair_share::{self, Candidate};
use spog_core::model::{Account, Organization};
use spog_core::{Id, Timestamp};

use super::{event_type, target_kind};
use crate::rows::id;
use crate::{Conn, Sql, Store, StoreResult};
use spog_core::delivery::Delivery;

/// Queued targets looked at per claim; beyond it, the first ones by id.
const MAX_TARGETS: i64 = 10_000;

/// How claims share slots and treat slow targets.
#[derive(Clone, Copy, Debug)]
pub struct ClaimPolicy {
    /// How long an instance holds a delivery it attempts.
    pub lease: Duration,
    /// Attempts in flight at once to one target, across instances.
    pub max_in_flight: u32,
    /// Timed-out attempts in a row after which a target is backed off and gets one attempt
    /// in flight at a time until it answers.
    pub timeouts_before_backoff: u32,
    /// The first back-off; it grows with the timeouts, up to 64 times this.
    pub backoff: Duration,
}

impl ClaimPolicy {
    /// How long a target that has timed out `timeouts` times in a row waits, if at all.
    pub fn backoff_after(&self, timeouts: u32) -> Option<Duration> {
        (timeouts >= self.timeouts_before_backoff).then(|| {
            let rounds = (timeouts / self.timeouts_before_backoff.max(1)).clamp(1, 64);
            self.backoff.saturating_mul(rounds)
        })
    }
}

/// A delivery this instance holds a lease on, for one attempt.
#[derive(Clone, Debug)]
pub struct Claimed {
    pub id: Id<Delivery>,
    pub account: Id<Account>,
    pub organization: Id<Organization>,
    pub target_kind: TargetKind,
    pub target_id: String,
    pub event_id: Id<Event>,
    pub event_type: EventType,
    /// The number of the attempt about to be made (1-based).
    pub attempt: u32,
    pub lease_token: String,
}

/// Deliveries whose attempts on the claiming instance have ended but are not recorded yet:
/// they hold no connection, so they do not count against their target's limit although
/// their rows are still leased. By id, so the count is exact whenever the record commits.
pub type Unrecorded = HashSet<String>;

/// Claims up to `limit` due deliveries for one attempt each, shared fairly across accounts
/// and targets per `policy`.
pub async fn claim(
    store: &Store,
    limit: u32,
    policy: &ClaimPolicy,
    unrecorded: &Unrecorded,
    now: Timestamp,
) -> StoreResult<Vec<Claimed>> {
    if limit == 0 || !super::queue::anything_due(store, now).await? {
        return Ok(Vec::new());
    }
    let token = uuid::Uuid::now_v7().to_string();
    let mut tx = super::queue::begin_relaxed(store).await?;
    if let Some(lock) = store.backend().claim_lock() {
        sqlx::query(lock).execute(&mut *tx).await?;
    }
    // No target gets more than the claim's whole limit: counting further is wasted.
    let countable = policy.max_in_flight.min(limit);
    let candidates = due_targets(&mut tx, countable, now).await?;
    if candidates.is_empty() {
        tx.commit_unaudited().await?;
        return Ok(Vec::new());
    }
    let (target_held, account_held) = in_flight(&mut tx, unrecorded).await?;
    let candidates: Vec<Candidate> = candidates
        .into_iter()
        .map(|due| Candidate {
            held: target_held.get(&due.target).copied().unwrap_or(0),
            limit: match policy.backoff_after(due.timeouts) {
                // A target that keeps timing out is probed one attempt at a time.
                Some(_) => 1,
                None => policy.max_in_flight,
            },
            due: due.count,
            oldest_due: due.oldest_due,
            account: due.account,
            target: due.target,
        })
        .collect();
    let grants = fair_share::allocate(&candidates, &account_held, limit);
    let shares: Vec<(&str, u32)> = candidates
        .iter()
        .zip(grants)
        .filter(|(_, n)| *n > 0)
        .map(|(c, n)| (c.target.as_str(), n))
        .collect();
    let rows = take(
        &mut tx,
        store.backend().skip_locked(),
        &shares,
        &token,
        now.plus(policy.lease),
        now,
    )
    .await?;
    tx.commit_unaudited().await?;
    rows.into_iter()
        .map(|row| {
            Ok(Claimed {
                id: id(&row.id)?,
                account: id(&row.account_id)?,
                organization: id(&row.organization_id)?,
                target_kind: target_kind(&row.target_kind)?,
                target_id: row.target_id,
                event_id: id(&row.event_id)?,
                event_type: event_type(&row.event_type)?,
                attempt: row.attempt_count as u32,
                lease_token: token.clone(),
            })
        })
        .collect()
}

/// A target with due deliveries that is not backed off.
struct DueTarget {
    target: String,
    account: String,
    oldest_due: i64,
    /// Due deliveries, counted up to what one claim could take.
    count: u32,
    timeouts: u32,
}

/// The queued targets (by a loose scan of the queued-target index: one probe each), with
/// each one's earliest due delivery, how many are due (up to `countable`), and its timeouts;
/// targets backed off until later are left out.
async fn due_targets(
    conn: &mut Conn,
    countable: u32,
    now: Timestamp,
) -> StoreResult<Vec<DueTarget>> {
    let rows: Vec<(String, String, i64, i64, Option<i64>)> = sqlx::query_as(
        "WITH RECURSIVE queued (target_id, n) AS ( \
             SELECT MIN(target_id), 1 FROM deliveries WHERE status IN ('pending', 'retrying') \
             UNION ALL \
             SELECT (SELECT MIN(d.target_id) FROM deliveries d WHERE d.status IN ('pending', 'retrying') \
                     AND d.target_id > queued.target_id), queued.n + 1 \
             FROM queued WHERE queued.target_id IS NOT NULL AND queued.n < $3) \
         SELECT q.target_id, head.account_id, head.next_attempt_at, \
             (SELECT COUNT(*) FROM (SELECT 1 FROM deliveries d WHERE d.status IN ('pending', 'retrying') \
                 AND d.target_id = q.target_id AND d.next_attempt_at <= $1 LIMIT $2) AS due) AS due, \
             t.timeouts \
         FROM queued q \
         JOIN deliveries head ON head.id = (SELECT d.id FROM deliveries d \
             WHERE d.status IN ('pending', 'retrying') AND d.target_id = q.target_id \
             AND d.next_attempt_at <= $1 ORDER BY d.target_id, d.next_attempt_at LIMIT 1) \
         LEFT JOIN delivery_targets t ON t.target_id = q.target_id \
         WHERE q.target_id IS NOT NULL AND (t.backoff_until IS NULL OR t.backoff_until <= $1)",
    )
    .bind(now.micros())
    .bind(i64::from(countable))
    .bind(MAX_TARGETS)
    .fetch_all(&mut *conn)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(target, account, oldest_due, count, timeouts)| DueTarget {
            target,
            account,
            oldest_due,
            count: count.clamp(0, i64::from(u32::MAX)) as u32,
            timeouts: timeouts.unwrap_or(0).clamp(0, i64::from(u32::MAX)) as u32,
        })
        .collect())
}

/// Attempts in flight now on every instance, per target and per account; those of this
/// instance that have ended unrecorded are not. The leased rows are few (at most every
/// instance's `delivery_concurrency`), read through the lease index.
async fn in_flight(
    conn: &mut Conn,
    unrecorded: &Unrecorded,
) -> StoreResult<(HashMap<String, u32>, HashMap<String, u32>)> {
    let rows: Vec<(String, String, String)> = sqlx::query_as(
        "SELECT id, target_id, account_id FROM deliveries WHERE status = 'delivering'",
    )
    .fetch_all(&mut *conn)
    .await?;
    let mut targets: HashMap<String, u32> = HashMap::new();
    let mut accounts: HashMap<String, u32> = HashMap::new();
    for (id, target, account) in rows {
        if !unrecorded.contains(&id) {
            *targets.entry(target).or_default() += 1;
            *accounts.entry(account).or_default() += 1;
        }
    }
    Ok((targets, accounts))
}

#[derive(sqlx::FromRow)]
struct ClaimRow {
    id: String,
    account_id: String,
    organization_id: String,
    target_kind: String,
    target_id: String,
    event_id: String,
    event_type: String,
    attempt_count: i64,
}

/// Claims each target's share of its earliest due deliveries in one statement. The update
/// joins the claimed ids by primary key: its cost follows the shares, not the backlog.
async fn take(
    conn: &mut Conn,
    skip_locked: &str,
    shares: &[(&str, u32)],
    token: &str,
    lease_expires_at: Timestamp,
    now: Timestamp,
) -> StoreResult<Vec<ClaimRow>> {
    if shares.is_empty() {
        return Ok(Vec::new());
    }
    let mut sql = Sql::new(
        "UPDATE deliveries SET status = 'delivering', attempt_count = deliveries.attempt_count + 1, \
         lease_token = ",
    );
    sql.bind(token.to_owned())
        .push(", lease_expires_at = ")
        .bind(lease_expires_at.micros())
        .push(", next_attempt_at = NULL, updated_at = ")
        .bind(now.micros())
        .push(" FROM (");
    for (i, (target, n)) in shares.iter().enumerate() {
        if i > 0 {
            sql.push(" UNION ALL ");
        }
        sql.push("SELECT id FROM (SELECT id FROM deliveries WHERE status IN ('pending', 'retrying') AND target_id = ")
            .bind((*target).to_owned())
            .push(" AND next_attempt_at <= ")
            .bind(now.micros())
            // In the queued-target index's own order: its range for this target, never a
            // walk of the whole due index past other targets' backlogs.
            .push(" ORDER BY target_id, next_attempt_at LIMIT ")
            .bind(i64::from(*n))
            .push(skip_locked)
            .push(&format!(") AS share{i}"));
    }
    sql.push(
        ") AS due WHERE deliveries.id = due.id \
         RETURNING deliveries.id, deliveries.account_id, deliveries.organization_id, deliveries.target_kind, \
         deliveries.target_id, deliveries.event_id, deliveries.event_type, deliveries.attempt_count",
    );
    sql.fetch_all(conn).await
}

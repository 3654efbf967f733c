//! The history side of deliveries: listing per target, detail with attempts, manual retry,
//! deletion with the target, and the backlog figures of the health report.

use spog_core::delivery::{Attempt, Delivery, DeliveryDetail, DeliveryStatus, TargetKind};
use spog_core::events::EventType;
use spog_core::model::Account;
use spog_core::page::{Cursor, Page, key_text};
use spog_core::{Id, Timestamp};

use super::{COLUMNS, DeliveryRow};
use crate::error::Found;
use crate::rows::{at, flag, opt_at};
use crate::{Conn, Sql, StoreError, StoreResult, Tx};

#[derive(Clone, Debug, Default)]
pub struct DeliveryFilter {
    pub status: Option<DeliveryStatus>,
    pub event_type: Option<EventType>,
}

/// A target's deliveries, newest first.
pub async fn list(
    conn: &mut Conn,
    account: Id<Account>,
    kind: TargetKind,
    target: &str,
    filter: &DeliveryFilter,
    limit: u32,
    cursor: Option<&str>,
) -> StoreResult<Page<Delivery>> {
    let status = filter.status.map(|s| s.as_str()).unwrap_or_default();
    let event_type = filter.event_type.map(|t| t.as_str()).unwrap_or_default();
    let scope = Cursor::scope(&[
        &account.to_string(),
        "deliveries",
        kind.as_str(),
        target,
        status,
        event_type,
    ]);
    let before = scope.decode(cursor)?;
    let mut sql = Sql::new(&format!(
        "SELECT {COLUMNS} FROM deliveries WHERE account_id = "
    ));
    sql.bind(account.to_string())
        .push(" AND target_kind = ")
        .bind(kind.as_str())
        .push(" AND target_id = ")
        .bind(target.to_owned());
    if let Some(status) = filter.status {
        sql.push(" AND status = ").bind(status.as_str());
    }
    if let Some(event_type) = filter.event_type {
        sql.push(" AND event_type = ").bind(event_type.as_str());
    }
    if let Some(key) = before {
        sql.push(" AND id < ").bind(key_text(&key, 0)?);
    }
    sql.push(" ORDER BY id DESC LIMIT ")
        .bind(i64::from(limit) + 1);
    let deliveries = sql
        .fetch_all::<DeliveryRow>(conn)
        .await?
        .into_iter()
        .map(Delivery::try_from)
        .collect::<StoreResult<Vec<_>>>()?;
    Ok(Page::from_rows(deliveries, limit, &scope, |d| {
        vec![d.id.to_string().into()]
    }))
}

pub async fn get(
    conn: &mut Conn,
    account: Id<Account>,
    kind: TargetKind,
    target: &str,
    delivery: Id<Delivery>,
) -> StoreResult<Delivery> {
    let mut sql = Sql::new(&format!(
        "SELECT {COLUMNS} FROM deliveries WHERE account_id = "
    ));
    sql.bind(account.to_string())
        .push(" AND target_kind = ")
        .bind(kind.as_str())
        .push(" AND target_id = ")
        .bind(target.to_owned())
        .push(" AND id = ")
        .bind(delivery.to_string());
    sql.fetch_optional::<DeliveryRow>(conn)
        .await
        .found()?
        .try_into()
}

#[derive(sqlx::FromRow)]
struct AttemptRow {
    attempt: i64,
    started_at: i64,
    duration_ms: i64,
    success: i64,
    status_code: Option<i64>,
    error: Option<String>,
    response_body: Option<String>,
}

/// A delivery with its payload (the event's body) and every attempt, oldest first.
pub async fn detail(
    conn: &mut Conn,
    account: Id<Account>,
    kind: TargetKind,
    target: &str,
    delivery: Id<Delivery>,
) -> StoreResult<DeliveryDetail> {
    let delivery = get(conn, account, kind, target, delivery).await?;
    let payload: String =
        sqlx::query_scalar("SELECT payload FROM events WHERE account_id = $1 AND id = $2")
            .bind(account.to_string())
            .bind(delivery.event_id.to_string())
            .fetch_optional(&mut *conn)
            .await
            .found()?;
    let payload = serde_json::from_str(&payload)
        .map_err(|_| StoreError::Corrupt(format!("event {} payload", delivery.event_id)))?;
    let attempts = sqlx::query_as::<_, AttemptRow>(
        "SELECT attempt, started_at, duration_ms, success, status_code, error, response_body \
         FROM delivery_attempts WHERE delivery_id = $1 ORDER BY id",
    )
    .bind(delivery.id.to_string())
    .fetch_all(conn)
    .await?
    .into_iter()
    .map(|row| Attempt {
        attempt: row.attempt as u32,
        started_at: at(row.started_at),
        duration_ms: row.duration_ms.max(0) as u64,
        success: flag(row.success),
        status_code: row.status_code.map(|c| c as u16),
        error: row.error,
        response_body: row.response_body,
    })
    .collect();
    Ok(DeliveryDetail {
        delivery,
        payload,
        attempts,
    })
}

/// Sends a `failed` delivery again: back to `pending`, due now, attempt count reset. Any
/// other state is a conflict. The engine is woken when the transaction commits.
pub async fn retry(
    tx: &mut Tx,
    account: Id<Account>,
    kind: TargetKind,
    target: &str,
    delivery: Id<Delivery>,
    now: Timestamp,
) -> StoreResult<Delivery> {
    let current = get(tx, account, kind, target, delivery).await?;
    let done = sqlx::query(
        "UPDATE deliveries SET status = 'pending', attempt_count = 0, next_attempt_at = $3, \
         completed_at = NULL, updated_at = $3 WHERE account_id = $1 AND id = $2 AND status = 'failed'",
    )
    .bind(account.to_string())
    .bind(delivery.to_string())
    .bind(now.micros())
    .execute(&mut **tx)
    .await?;
    if done.rows_affected() == 0 {
        return Err(StoreError::Conflict(format!(
            "only a failed delivery can be retried; this one is {}",
            current.status
        )));
    }
    tx.note_deliveries_enqueued();
    get(tx, account, kind, target, delivery).await
}

/// Deletes a target's deliveries and their attempts. Returns how many deliveries went.
pub async fn delete_for_target(
    conn: &mut Conn,
    account: Id<Account>,
    kind: TargetKind,
    target: &str,
) -> StoreResult<u64> {
    let done = sqlx::query(
        "DELETE FROM deliveries WHERE account_id = $1 AND target_kind = $2 AND target_id = $3",
    )
    .bind(account.to_string())
    .bind(kind.as_str())
    .bind(target)
    .execute(&mut *conn)
    .await?;
    super::forget_target(conn, target).await?;
    Ok(done.rows_affected())
}

/// Deliveries not yet done.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Backlog {
    /// Waiting for their first attempt.
    pub pending: i64,
    /// Waiting for a later attempt.
    pub retrying: i64,
    /// An attempt in progress.
    pub delivering: i64,
    /// Creation time of the oldest delivery still waiting for its first attempt.
    pub oldest_pending_at: Option<Timestamp>,
}

/// The backlog of one account, or of every account.
pub async fn backlog(conn: &mut Conn, account: Option<Id<Account>>) -> StoreResult<Backlog> {
    let mut sql = Sql::new(
        "SELECT status, COUNT(*), MIN(created_at) FROM deliveries \
         WHERE status IN ('pending', 'retrying', 'delivering')",
    );
    if let Some(account) = account {
        sql.push(" AND account_id = ").bind(account.to_string());
    }
    sql.push(" GROUP BY status");
    let rows: Vec<(String, i64, Option<i64>)> = sql.fetch_all(conn).await?;
    let mut backlog = Backlog::default();
    for (status, count, oldest) in rows {
        match status.as_str() {
            "pending" => {
                backlog.pending = count;
                backlog.oldest_pending_at = opt_at(oldest);
            }
            "retrying" => backlog.retrying = count,
            _ => backlog.delivering = count,
        }
    }
    Ok(backlog)
}

/// How many of the account's deliveries failed for good (they stay until retried or their
/// target is deleted).
pub async fn failed_count(conn: &mut Conn, account: Id<Account>) -> StoreResult<i64> {
    Ok(sqlx::query_scalar(
        "SELECT COUNT(*) FROM deliveries WHERE account_id = $1 AND status = 'failed'",
    )
    .bind(account.to_string())
    .fetch_one(conn)
    .await?)
}

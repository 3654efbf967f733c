//! The sender's side of a stream: which streams are due, the lease an instance holds while it
//! sends one (its epoch fences a lapsed holder out of the cursor), the cursor's moves, and the
//! history of batch attempts.

use serde::Serialize;
use spog_core::audit_streams::AuditStream;
use spog_core::model::Account;
use spog_core::{Id, Timestamp};
use utoipa::ToSchema;

use crate::rows::{at, flag, id};
use crate::{Conn, StoreResult};

/// Attempts kept per stream.
pub const ATTEMPTS_KEPT: i64 = 1_000;

/// Streams this instance may send now: not paused, not backing off, and not held by another
/// instance's live lease. `(account, stream)`, at most `limit`.
#[tracing::instrument(name = "audit_streams::due", skip_all)]
pub async fn due(
    conn: &mut Conn,
    instance: &str,
    now: Timestamp,
    limit: u32,
) -> StoreResult<Vec<(Id<Account>, Id<AuditStream>)>> {
    let rows: Vec<(String, String)> = sqlx::query_as(
        "SELECT account_id, id FROM audit_streams WHERE paused = 0 \
         AND (next_attempt_at IS NULL OR next_attempt_at <= $2) \
         AND (lease_holder IS NULL OR lease_until < $2 OR lease_holder = $1) \
         ORDER BY id LIMIT $3",
    )
    .bind(instance.to_owned())
    .bind(now.micros())
    .bind(i64::from(limit))
    .fetch_all(conn)
    .await?;
    rows.into_iter()
        .map(|(account, stream)| Ok((id(&account)?, id(&stream)?)))
        .collect()
}

/// Takes or renews the stream's lease until `until`. Taking it from nobody or from a lapsed
/// holder moves the epoch. Returns the epoch, or `None` when another instance holds it or
/// the stream is paused or gone.
#[tracing::instrument(name = "audit_streams::claim", skip_all, fields(stream = %stream))]
pub async fn claim(
    conn: &mut Conn,
    stream: Id<AuditStream>,
    instance: &str,
    now: Timestamp,
    until: Timestamp,
) -> StoreResult<Option<i64>> {
    Ok(sqlx::query_scalar(
        "UPDATE audit_streams SET \
         lease_epoch = CASE WHEN lease_holder = $2 AND lease_until >= $3 THEN lease_epoch \
                            ELSE lease_epoch + 1 END, \
         lease_holder = $2, lease_until = $4 \
         WHERE id = $1 AND paused = 0 \
         AND (lease_holder IS NULL OR lease_until < $3 OR lease_holder = $2) \
         RETURNING lease_epoch",
    )
    .bind(stream.to_string())
    .bind(instance.to_owned())
    .bind(now.micros())
    .bind(until.micros())
    .fetch_optional(conn)
    .await?)
}

/// The lease a sender holds, as it claimed it.
#[derive(Clone, Debug)]
pub struct Lease {
    pub stream: Id<AuditStream>,
    pub instance: String,
    pub epoch: i64,
}

/// What a batch came to, for the cursor.
#[derive(Clone, Debug)]
pub struct Confirmed {
    /// The cursor the batch started from; the move fails if it is no longer there.
    pub delivered_seq: i64,
    /// Its new value: the batch's `to_seq`.
    pub to_seq: i64,
    /// Where the next batch's range starts: `to_seq + 1` after a sent batch, unchanged when
    /// nothing in the range matched the filter.
    pub next_from_seq: i64,
    /// Entries and bytes the sink confirmed (0 when nothing was sent).
    pub entries: i64,
    pub bytes: i64,
}

/// Moves the cursor, only under the lease as claimed and from where the batch started.
/// Returns whether it moved (a lapsed holder or a backfill in between leaves it).
#[tracing::instrument(name = "audit_streams::advance", skip_all, fields(stream = %lease.stream))]
pub async fn advance(
    conn: &mut Conn,
    lease: &Lease,
    confirmed: &Confirmed,
    now: Timestamp,
) -> StoreResult<bool> {
    let sent = confirmed.entries > 0;
    let done = sqlx::query(
        "UPDATE audit_streams SET delivered_seq = $4, next_from_seq = $5, \
         entries_sent = entries_sent + $6, bytes_sent = bytes_sent + $7, \
         last_delivered_at = CASE WHEN $8 = 1 THEN $9 ELSE last_delivered_at END, \
         consecutive_failures = 0, failing_since = NULL, next_attempt_at = NULL, \
         retry_to_seq = NULL WHERE id = $1 AND lease_holder = $2 AND lease_epoch = $3 AND delivered_seq = $10",
    )
    .bind(lease.stream.to_string())
    .bind(lease.instance.clone())
    .bind(lease.epoch)
    .bind(confirmed.to_seq)
    .bind(confirmed.next_from_seq)
    .bind(confirmed.entries)
    .bind(confirmed.bytes)
    .bind(i64::from(sent))
    .bind(now.micros())
    .bind(confirmed.delivered_seq)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Records a failed batch covering up to `to_seq`: the stream backs off until `retry_at`,
/// and its retry covers the same range.
#[tracing::instrument(name = "audit_streams::failed", skip_all, fields(stream = %lease.stream))]
pub async fn failed(
    conn: &mut Conn,
    lease: &Lease,
    to_seq: Option<i64>,
    error: &str,
    retry_at: Timestamp,
    now: Timestamp,
) -> StoreResult<()> {
    sqlx::query(
        "UPDATE audit_streams SET last_error = $4, last_error_at = $5, \
         failing_since = COALESCE(failing_since, $5), \
         consecutive_failures = consecutive_failures + 1, next_attempt_at = $6, \
         retry_to_seq = $7 WHERE id = $1 AND lease_holder = $2 AND lease_epoch = $3",
    )
    .bind(lease.stream.to_string())
    .bind(lease.instance.clone())
    .bind(lease.epoch)
    .bind(error.to_owned())
    .bind(now.micros())
    .bind(retry_at.micros())
    .bind(to_seq)
    .execute(conn)
    .await?;
    Ok(())
}

/// Lets go of every lease this instance holds (a graceful stop), so another instance or the
/// next start takes the streams up at once.
#[tracing::instrument(name = "audit_streams::release_all", skip_all)]
pub async fn release_all(conn: &mut Conn, instance: &str) -> StoreResult<u64> {
    let done = sqlx::query(
        "UPDATE audit_streams SET lease_holder = NULL, lease_until = NULL WHERE lease_holder = $1",
    )
    .bind(instance.to_owned())
    .execute(conn)
    .await?;
    Ok(done.rows_affected())
}

/// Streams failing since before `since` whose managers were not told yet, and recovered
/// streams whose managers were told: `(account, stream, name, failing)`.
pub async fn to_announce(
    conn: &mut Conn,
    since: Timestamp,
) -> StoreResult<Vec<(Id<Account>, Id<AuditStream>, String, bool)>> {
    let rows: Vec<(String, String, String, i64)> = sqlx::query_as(
        "SELECT account_id, id, name, failing_notified FROM audit_streams \
         WHERE (failing_notified = 0 AND failing_since IS NOT NULL AND failing_since <= $1) \
         OR (failing_notified = 1 AND failing_since IS NULL) ORDER BY id LIMIT 100",
    )
    .bind(since.micros())
    .fetch_all(conn)
    .await?;
    rows.into_iter()
        .map(|(account, stream, name, notified)| {
            Ok((id(&account)?, id(&stream)?, name, !flag(notified)))
        })
        .collect()
}

/// Marks that the managers were told the stream is failing (or recovered).
pub async fn announced(
    conn: &mut Conn,
    stream: Id<AuditStream>,
    failing: bool,
) -> StoreResult<bool> {
    let done = sqlx::query(
        "UPDATE audit_streams SET failing_notified = $2 WHERE id = $1 AND failing_notified <> $2",
    )
    .bind(stream.to_string())
    .bind(i64::from(failing))
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// One batch attempt (SPEC 3.5 `attempts`).
#[derive(Clone, Debug, PartialEq, Serialize, ToSchema)]
pub struct Attempt {
    pub from_seq: Option<i64>,
    pub to_seq: Option<i64>,
    pub entries: i64,
    pub bytes: i64,
    pub success: bool,
    pub status_code: Option<u16>,
    pub error: Option<String>,
    pub duration_ms: i64,
    pub at: Timestamp,
}

/// Records an attempt and drops the stream's attempts beyond the last [`ATTEMPTS_KEPT`].
#[tracing::instrument(name = "audit_streams::record_attempt", skip_all, fields(stream = %stream))]
pub async fn record_attempt(
    conn: &mut Conn,
    account: Id<Account>,
    stream: Id<AuditStream>,
    attempt: &Attempt,
) -> StoreResult<()> {
    let attempt_id = Id::<Attempt>::new().to_string();
    sqlx::query(
        "INSERT INTO audit_stream_attempts (id, stream_id, account_id, from_seq, to_seq, entries, \
         bytes, success, status_code, error, duration_ms, at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
    )
    .bind(attempt_id.clone())
    .bind(stream.to_string())
    .bind(account.to_string())
    .bind(attempt.from_seq)
    .bind(attempt.to_seq)
    .bind(attempt.entries)
    .bind(attempt.bytes)
    .bind(i64::from(attempt.success))
    .bind(attempt.status_code.map(i64::from))
    .bind(attempt.error.clone())
    .bind(attempt.duration_ms)
    .bind(attempt.at.micros())
    .execute(&mut *conn)
    .await?;
    // Ids are time-ordered: the oldest beyond the kept number go, an index range each time.
    sqlx::query(
        "DELETE FROM audit_stream_attempts WHERE stream_id = $1 AND id < \
         (SELECT id FROM audit_stream_attempts WHERE stream_id = $1 ORDER BY id DESC \
          LIMIT 1 OFFSET $2)",
    )
    .bind(stream.to_string())
    .bind(ATTEMPTS_KEPT - 1)
    .execute(conn)
    .await?;
    Ok(())
}

type AttemptRow = (
    Option<i64>,
    Option<i64>,
    i64,
    i64,
    i64,
    Option<i64>,
    Option<String>,
    i64,
    i64,
);

/// The stream's attempts, newest first.
#[tracing::instrument(name = "audit_streams::attempts", skip_all, fields(stream = %stream))]
pub async fn attempts(
    conn: &mut Conn,
    account: Id<Account>,
    stream: Id<AuditStream>,
) -> StoreResult<Vec<Attempt>> {
    let rows: Vec<AttemptRow> = sqlx::query_as(
        "SELECT from_seq, to_seq, entries, bytes, success, status_code, error, duration_ms, at \
         FROM audit_stream_attempts WHERE account_id = $1 AND stream_id = $2 \
         ORDER BY id DESC LIMIT $3",
    )
    .bind(account.to_string())
    .bind(stream.to_string())
    .bind(ATTEMPTS_KEPT)
    .fetch_all(conn)
    .await?;
    Ok(rows
        .into_iter()
        .map(
            |(from_seq, to_seq, entries, bytes, success, status_code, error, duration_ms, at_)| {
                Attempt {
                    from_seq,
                    to_seq,
                    entries,
                    bytes,
                    success: flag(success),
                    status_code: status_code.and_then(|c| u16::try_from(c).ok()),
                    error,
                    duration_ms,
                    at: at(at_),
                }
            },
        )
        .collect())
}

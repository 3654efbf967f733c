//! Audit streams (SPEC 3.5): the stream rows, account-scoped, with the status reads show. A
//! stream's sink secrets arrive sealed by the server and leave sealed; the store never sees
//! them in clear. The sender's side (lease, cursor, attempts) is in [`sending`].

pub mod sending;

use spog_core::audit_streams::{
    AuditStream, BatchLimits, Format, Sink, StreamFilter, StreamState, StreamStatus,
};
use spog_core::model::Account;
use spog_core::page::Page;
use spog_core::{Id, Timestamp};

use crate::by_organization::{self, Table};
use crate::rows::{at, flag, from_json, id, json_text, opt_at};
use crate::{Conn, StoreError, StoreResult};

const COLUMNS: &str = "id, name, sink, sink_secrets, format, filter, batch, include_snapshots, paused, \
     delivered_seq, next_from_seq, retry_to_seq, last_delivered_at, last_error, last_error_at, failing_since, \
     consecutive_failures, next_attempt_at, entries_sent, bytes_sent, lease_holder, lease_until, \
     created_at, updated_at";
const TABLE: Table = Table {
    name: "audit_streams",
    columns: COLUMNS,
    cursor_scope: "audit_streams",
};
const DUPLICATE: &str = "an audit stream with this name already exists in the account";

/// Sealed sink secret values by field.
pub type SealedSinkSecrets = std::collections::BTreeMap<String, String>;

#[derive(sqlx::FromRow)]
struct StreamRow {
    id: String,
    name: String,
    sink: String,
    sink_secrets: String,
    format: String,
    filter: String,
    batch: String,
    include_snapshots: i64,
    paused: i64,
    delivered_seq: i64,
    next_from_seq: i64,
    retry_to_seq: Option<i64>,
    last_delivered_at: Option<i64>,
    last_error: Option<String>,
    last_error_at: Option<i64>,
    failing_since: Option<i64>,
    consecutive_failures: i64,
    next_attempt_at: Option<i64>,
    entries_sent: i64,
    bytes_sent: i64,
    lease_holder: Option<String>,
    lease_until: Option<i64>,
    created_at: i64,
    updated_at: i64,
}

/// A stream with what sending needs beyond its read: sealed secrets and where the next
/// batch's range starts.
#[derive(Clone, Debug)]
pub struct StoredStream {
    pub stream: AuditStream,
    pub secrets: SealedSinkSecrets,
    pub next_from_seq: i64,
    /// The end of the range a failed batch covered, which its retry covers again.
    pub retry_to_seq: Option<i64>,
}

impl StreamRow {
    /// `head`: the chain's head seq; `lag_seconds` is filled in afterwards.
    fn into_stored(self, head: i64, now: Timestamp) -> StoreResult<StoredStream> {
        let format = Format::parse("format", &self.format)
            .map_err(|_| StoreError::Corrupt(format!("audit stream {}: format", self.id)))?;
        let sink: Sink = from_json(&self.sink)?;
        let paused = flag(self.paused);
        let state = if paused {
            StreamState::Paused
        } else if self.consecutive_failures > 0 {
            StreamState::Failing
        } else {
            StreamState::Active
        };
        let holder = self
            .lease_holder
            .filter(|_| self.lease_until.is_some_and(|until| until > now.micros()));
        let status = StreamStatus {
            state,
            delivered_seq: self.delivered_seq,
            head_seq: head,
            lag_entries: (head - self.delivered_seq).max(0),
            lag_seconds: 0.0,
            last_delivered_at: opt_at(self.last_delivered_at),
            last_error: self.last_error,
            last_error_at: opt_at(self.last_error_at),
            failing_since: opt_at(self.failing_since),
            consecutive_failures: self.consecutive_failures,
            next_attempt_at: opt_at(self.next_attempt_at),
            entries_sent: self.entries_sent,
            bytes_sent: self.bytes_sent,
            instance_id: holder,
        };
        Ok(StoredStream {
            stream: AuditStream {
                id: id(&self.id)?,
                name: self.name,
                sink,
                format,
                filter: from_json(&self.filter)?,
                batch: from_json(&self.batch)?,
                include_snapshots: flag(self.include_snapshots),
                paused,
                status,
                created_at: at(self.created_at),
                updated_at: at(self.updated_at),
            },
            secrets: from_json(&self.sink_secrets)?,
            next_from_seq: self.next_from_seq,
            retry_to_seq: self.retry_to_seq,
        })
    }
}

/// The fields a create or update writes.
pub struct StreamFields {
    pub name: String,
    pub sink: Sink,
    pub secrets: SealedSinkSecrets,
    pub format: Format,
    pub filter: StreamFilter,
    pub batch: BatchLimits,
    pub include_snapshots: bool,
    pub paused: bool,
}

pub async fn head_seq(conn: &mut Conn, account: Id<Account>) -> StoreResult<i64> {
    Ok(crate::audit::head(conn, account)
        .await?
        .map(|(seq, _)| seq)
        .unwrap_or(0))
}

/// How many streams the account has.
pub async fn count(conn: &mut Conn, account: Id<Account>) -> StoreResult<i64> {
    Ok(
        sqlx::query_scalar("SELECT COUNT(*) FROM audit_streams WHERE account_id = $1")
            .bind(account.to_string())
            .fetch_one(conn)
            .await?,
    )
}

/// Creates the stream `stream` with its cursor at `delivered_seq` (the first batch starts
/// after it).
#[tracing::instrument(name = "audit_streams::create", skip_all, fields(account = %account, stream = %stream))]
pub async fn create(
    conn: &mut Conn,
    account: Id<Account>,
    stream: Id<AuditStream>,
    fields: &StreamFields,
    delivered_seq: i64,
    now: Timestamp,
) -> StoreResult<StoredStream> {
    sqlx::query(
        "INSERT INTO audit_streams (id, account_id, name, sink, sink_secrets, format, filter, batch, \
         include_snapshots, paused, delivered_seq, next_from_seq, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $13)",
    )
    .bind(stream.to_string())
    .bind(account.to_string())
    .bind(fields.name.clone())
    .bind(json_text(&fields.sink))
    .bind(json_text(&fields.secrets))
    .bind(fields.format.as_str())
    .bind(json_text(&fields.filter))
    .bind(json_text(&fields.batch))
    .bind(i64::from(fields.include_snapshots))
    .bind(i64::from(fields.paused))
    .bind(delivered_seq)
    .bind(delivered_seq + 1)
    .bind(now.micros())
    .execute(&mut *conn)
    .await
    .map_err(|e| StoreError::on_unique(e, DUPLICATE))?;
    get_stored(conn, account, stream, now).await
}

#[tracing::instrument(name = "audit_streams::get", skip_all, fields(account = %account, stream = %stream))]
pub async fn get_stored(
    conn: &mut Conn,
    account: Id<Account>,
    stream: Id<AuditStream>,
    now: Timestamp,
) -> StoreResult<StoredStream> {
    let row: StreamRow = by_organization::one(conn, &TABLE, account, stream.to_string()).await?;
    let head = head_seq(conn, account).await?;
    let stored = row.into_stored(head, now)?;
    lag_seconds(conn, account, stored, now).await
}

pub async fn get(
    conn: &mut Conn,
    account: Id<Account>,
    stream: Id<AuditStream>,
    now: Timestamp,
) -> StoreResult<AuditStream> {
    Ok(get_stored(conn, account, stream, now).await?.stream)
}

/// A page of the account's streams, oldest first.
#[tracing::instrument(name = "audit_streams::list", skip_all, fields(account = %account))]
pub async fn list(
    conn: &mut Conn,
    account: Id<Account>,
    limit: u32,
    cursor: Option<&str>,
    now: Timestamp,
) -> StoreResult<Page<AuditStream>> {
    let head = head_seq(conn, account).await?;
    let page = by_organization::page(
        conn,
        &TABLE,
        account,
        None,
        limit,
        cursor,
        |row: StreamRow| row.into_stored(head, now),
        |s| s.stream.id.to_string(),
    )
    .await?;
    let mut items = Vec::with_capacity(page.items.len());
    for stored in page.items {
        items.push(lag_seconds(conn, account, stored, now).await?.stream);
    }
    Ok(Page {
        items,
        next_cursor: page.next_cursor,
    })
}

/// Fills in `lag_seconds`: the age by recording time of the entry after the cursor.
async fn lag_seconds(
    conn: &mut Conn,
    account: Id<Account>,
    mut stored: StoredStream,
    now: Timestamp,
) -> StoreResult<StoredStream> {
    let status = &mut stored.stream.status;
    if status.lag_entries == 0 {
        return Ok(stored);
    }
    let recorded: Option<Option<i64>> = sqlx::query_scalar(
        "SELECT e.recorded_at FROM audit_links l JOIN audit_entries e \
         ON e.id = l.entry_id AND e.account_id = l.account_id \
         WHERE l.account_id = $1 AND l.seq = $2",
    )
    .bind(account.to_string())
    .bind(status.delivered_seq + 1)
    .fetch_optional(&mut *conn)
    .await?;
    if let Some(Some(recorded)) = recorded {
        status.lag_seconds = ((now.micros() - recorded).max(0) as f64) / 1e6;
    }
    Ok(stored)
}

/// Changes everything but the cursor.
#[tracing::instrument(name = "audit_streams::update", skip_all, fields(account = %account, stream = %stream))]
pub async fn update(
    conn: &mut Conn,
    account: Id<Account>,
    stream: Id<AuditStream>,
    fields: &StreamFields,
    now: Timestamp,
) -> StoreResult<StoredStream> {
    let done = sqlx::query(
        "UPDATE audit_streams SET name = $3, sink = $4, sink_secrets = $5, format = $6, filter = $7, \
         batch = $8, include_snapshots = $9, paused = $10, updated_at = $11, \
         next_attempt_at = NULL WHERE account_id = $1 AND id = $2",
    )
    .bind(account.to_string())
    .bind(stream.to_string())
    .bind(fields.name.clone())
    .bind(json_text(&fields.sink))
    .bind(json_text(&fields.secrets))
    .bind(fields.format.as_str())
    .bind(json_text(&fields.filter))
    .bind(json_text(&fields.batch))
    .bind(i64::from(fields.include_snapshots))
    .bind(i64::from(fields.paused))
    .bind(now.micros())
    .execute(&mut *conn)
    .await
    .map_err(|e| StoreError::on_unique(e, DUPLICATE))?;
    if done.rows_affected() == 0 {
        return Err(StoreError::NotFound);
    }
    get_stored(conn, account, stream, now).await
}

/// Pauses or resumes; returns whether it changed anything.
#[tracing::instrument(name = "audit_streams::set_paused", skip_all, fields(account = %account, stream = %stream))]
pub async fn set_paused(
    conn: &mut Conn,
    account: Id<Account>,
    stream: Id<AuditStream>,
    paused: bool,
    now: Timestamp,
) -> StoreResult<bool> {
    let done = sqlx::query(
        "UPDATE audit_streams SET paused = $3, updated_at = $4, next_attempt_at = NULL \
         WHERE account_id = $1 AND id = $2 AND paused <> $3",
    )
    .bind(account.to_string())
    .bind(stream.to_string())
    .bind(i64::from(paused))
    .bind(now.micros())
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Moves the cursor back so that sending resumes at `from_seq`. The lease epoch moves too,
/// so a batch in flight cannot write its cursor over this one.
#[tracing::instrument(name = "audit_streams::rewind", skip_all, fields(account = %account, stream = %stream))]
pub async fn rewind(
    conn: &mut Conn,
    account: Id<Account>,
    stream: Id<AuditStream>,
    from_seq: i64,
    now: Timestamp,
) -> StoreResult<()> {
    let done = sqlx::query(
        "UPDATE audit_streams SET delivered_seq = $3, next_from_seq = $4, updated_at = $5, \
         next_attempt_at = NULL, retry_to_seq = NULL, lease_epoch = lease_epoch + 1 \
         WHERE account_id = $1 AND id = $2",
    )
    .bind(account.to_string())
    .bind(stream.to_string())
    .bind(from_seq - 1)
    .bind(from_seq)
    .bind(now.micros())
    .execute(conn)
    .await?;
    if done.rows_affected() == 0 {
        return Err(StoreError::NotFound);
    }
    Ok(())
}

#[tracing::instrument(name = "audit_streams::delete", skip_all, fields(account = %account, stream = %stream))]
pub async fn delete(
    conn: &mut Conn,
    account: Id<Account>,
    stream: Id<AuditStream>,
) -> StoreResult<()> {
    sqlx::query("DELETE FROM audit_stream_attempts WHERE account_id = $1 AND stream_id = $2")
        .bind(account.to_string())
        .bind(stream.to_string())
        .execute(&mut *conn)
        .await?;
    let done = sqlx::query("DELETE FROM audit_streams WHERE account_id = $1 AND id = $2")
        .bind(account.to_string())
        .bind(stream.to_string())
        .execute(conn)
        .await?;
    if done.rows_affected() == 0 {
        return Err(StoreError::NotFound);
    }
    Ok(())
}

/// The account's first linked seq (entries before it were removed), if any.
pub async fn first_seq(conn: &mut Conn, account: Id<Account>) -> StoreResult<Option<i64>> {
    Ok(
        sqlx::query_scalar("SELECT MIN(seq) FROM audit_links WHERE account_id = $1")
            .bind(account.to_string())
            .fetch_one(conn)
            .await?,
    )
}

/// The first seq whose entry occurred at or after `at`, if any.
pub async fn first_seq_from(
    conn: &mut Conn,
    account: Id<Account>,
    at: Timestamp,
) -> StoreResult<Option<i64>> {
    Ok(sqlx::query_scalar(
        "SELECT MIN(l.seq) FROM audit_entries e JOIN audit_links l \
         ON l.entry_id = e.id AND l.account_id = e.account_id \
         WHERE e.account_id = $1 AND e.occurred_at >= $2",
    )
    .bind(account.to_string())
    .bind(at.micros())
    .fetch_one(conn)
    .await?)
}

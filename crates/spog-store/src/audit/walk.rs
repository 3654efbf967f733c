//! Walks along a chain (verification and export): an account's linked entries in `seq`
//! order, as [`ChainBatch`]es. The links are read a batch after another, by keyset; each
//! batch's entries are read on a task and connection of their own, several batches at once,
//! through the backend's own driver (rusqlite on SQLite, sqlx's PostgreSQL driver), which
//! lend each value where the Any driver copies it. The chain linker reads its queued
//! entries the same way.

use std::sync::Arc;

use futures::StreamExt;
use futures::stream::BoxStream;
use rusqlite::types::Value;
use spog_core::Id;
use spog_core::model::Account;
use sqlx::{PgConnection, Postgres, Row};
use tokio_stream::wrappers::ReceiverStream;

use super::batch::{BatchBuilder, ChainBatch, ENTRY_COLUMNS, ENTRY_TEXT_COLUMNS, LINK_COLUMNS};
use super::query::AuditFilter;
use crate::sql::QueryText;
use crate::{Backend, Sql, Store, StoreError, StoreResult};

/// Batches whose entries a walk reads at once: enough that the database and the consumer
/// keep both cores of a small server busy. PostgreSQL's work is in another process and
/// between them is a socket, so more there.
fn reads_ahead(backend: Backend) -> usize {
    match backend {
        Backend::Sqlite => 2,
        Backend::Postgres => 4,
    }
}
/// Ids per read of entries by id.
const IDS_PER_READ: usize = 500;

/// The account's linked entries that match `filter`, in `seq` order, as non-empty batches
/// of up to `batch_size` links' worth, up to the last link at the start. A link whose entry
/// is gone yields nothing, which verification reports as a gap. Memory stays constant: a
/// few batches are read ahead of the consumer.
#[tracing::instrument(name = "audit::walk", skip_all, fields(account = %account))]
pub async fn walk(
    store: &Store,
    account: Id<Account>,
    filter: AuditFilter,
    batch_size: i64,
) -> StoreResult<BoxStream<'static, StoreResult<ChainBatch>>> {
    let last: Option<i64> =
        sqlx::query_scalar("SELECT MAX(seq) FROM audit_links WHERE account_id = $1")
            .bind(account.to_string())
            .fetch_one(&mut *store.conn().await?)
            .await?;
    let last = last.unwrap_or(0);
    let reads_ahead = reads_ahead(store.backend());
    let (store, account, filter) = (store.clone(), account.to_string(), Arc::new(filter));
    let links = {
        let (store, account) = (store.clone(), account.clone());
        futures::stream::try_unfold(0, move |after| {
            let (store, account) = (store.clone(), account.clone());
            async move {
                if after >= last {
                    return Ok::<_, StoreError>(None);
                }
                let upto = last.min(after.saturating_add(batch_size.max(1)));
                let links = read_links(&store, account.clone(), after, upto).await?;
                // Past a gap (links gone or moved), on from the next link there is.
                let next = match links.last_seq() {
                    Some(_) => upto,
                    None => next_link(&store, &account, after)
                        .await?
                        .map_or(last, |n| n - 1),
                };
                Ok(Some((links, next)))
            }
        })
    };
    let batches = links
        .map(move |links| {
            let (store, account, filter) = (store.clone(), account.clone(), filter.clone());
            async move {
                let links = links?;
                let read = async move {
                    let _permit = store.walk_permit().await;
                    read_entries(store, account, filter, links).await
                };
                tokio::spawn(read).await.expect("reading does not panic")
            }
        })
        .buffered(reads_ahead)
        .filter(|batch| std::future::ready(!matches!(batch, Ok(batch) if batch.is_empty())));
    // Driven by a task of its own, so that reading goes ahead while the consumer is busy.
    let (sender, receiver) = tokio::sync::mpsc::channel(reads_ahead);
    tokio::spawn(async move {
        let mut batches = std::pin::pin!(batches);
        while let Some(batch) = batches.next().await {
            let failed = batch.is_err();
            if sender.send(batch).await.is_err() || failed {
                return;
            }
        }
    });
    Ok(ReceiverStream::new(receiver).boxed())
}

/// Up to `limit` of the account's linked entries after `after` (and up to `upto`, if
/// given), in `seq` order, with their
/// links: the next batch of an audit stream, whose filter is matched by the sender. Also
/// returns the last seq read (`None`: nothing after `after`), which a link whose entry is
/// gone still counts for.
#[tracing::instrument(name = "audit::range", skip_all, fields(account = %account, after))]
pub async fn range(
    store: &Store,
    account: Id<Account>,
    after: i64,
    upto: Option<i64>,
    limit: i64,
) -> StoreResult<(ChainBatch, Option<i64>)> {
    let account = account.to_string();
    let read = |after: i64| {
        let bound = after.saturating_add(limit.max(1));
        read_links(
            store,
            account.clone(),
            after,
            upto.map_or(bound, |u| u.min(bound)),
        )
    };
    let mut links = read(after).await?;
    if links.last_seq().is_none()
        && let Some(next) = next_link(store, &account, after).await?
    {
        // Past a gap (links gone or moved), from the next link there is.
        links = read(next - 1).await?;
    }
    let last = links.last_seq();
    let filter = Arc::new(AuditFilter::default());
    Ok((
        read_entries(store.clone(), account, filter, links).await?,
        last,
    ))
}

/// The account's first link after `after`, if any: where a walk goes on past a gap.
async fn next_link(store: &Store, account: &str, after: i64) -> StoreResult<Option<i64>> {
    Ok(
        sqlx::query_scalar("SELECT MIN(seq) FROM audit_links WHERE account_id = $1 AND seq > $2")
            .bind(account.to_owned())
            .bind(after)
            .fetch_one(&mut *store.conn().await?)
            .await?,
    )
}

/// The entries of `ids` (queued ones, in id order), read apart from the transaction that
/// found them, as a walk reads: they are committed, and entries never change.
pub(crate) async fn queued_entries(
    store: &Store,
    account: &str,
    ids: Vec<String>,
) -> StoreResult<ChainBatch> {
    let mut batch = BatchBuilder::default();
    ids.iter().for_each(|id| batch.push_queued(id));
    let filter = Arc::new(AuditFilter::default());
    read_entries(store.clone(), account.to_owned(), filter, batch).await
}

/// The account's links after `after` up to `upto`, in `seq` order. A chain's positions are
/// dense, so a batch is a range of them: bounded on both sides, its read has one sensible plan
/// whatever the statistics say (`seq > after … LIMIT n` on a table just filled was planned as
/// a bitmap of every later link, sorted, for each batch). A range whose links are gone yields
/// an empty batch, and the walk goes on past it: verification reports the gap.
async fn read_links(
    store: &Store,
    account: String,
    after: i64,
    upto: i64,
) -> StoreResult<BatchBuilder> {
    // Without a walk's permit: the walk's entry reads hold them, and this read comes first.
    match store.backend() {
        Backend::Sqlite => {
            let store = store.clone();
            tokio::task::spawn_blocking(move || {
                let conn = store.sqlite_reader()?;
                sqlite_links(&conn, &account, after, upto)
            })
            .await
            .expect("reading does not panic")
        }
        Backend::Postgres => {
            postgres_links(&mut *store.bulk_conn().await?, &account, after, upto).await
        }
    }
}

/// Reads the entries of the ids `batch` holds and joins them.
async fn read_entries(
    store: Store,
    account: String,
    filter: Arc<AuditFilter>,
    batch: BatchBuilder,
) -> StoreResult<ChainBatch> {
    match store.backend() {
        Backend::Sqlite => tokio::task::spawn_blocking(move || {
            let conn = store.sqlite_reader()?;
            sqlite_read_entries(&conn, &account, &filter, batch)
        })
        .await
        .expect("reading does not panic"),
        Backend::Postgres => {
            let mut conn = store.bulk_conn().await?;
            postgres_read_entries(&mut conn, &account, &filter, batch).await
        }
    }
}

/// A query for rusqlite, with `?` placeholders.
struct SqliteQuery {
    text: String,
    values: Vec<Value>,
}

impl QueryText for SqliteQuery {
    fn push_text(&mut self, text: &str) {
        self.text.push_str(text);
    }

    fn bind_text(&mut self, value: String) {
        self.text.push('?');
        self.values.push(Value::Text(value));
    }

    fn bind_int(&mut self, value: i64) {
        self.text.push('?');
        self.values.push(Value::Integer(value));
    }
}

/// Writes the conditions every read of entries has: the account, and the walk's filter.
fn entries_of(sql: &mut impl QueryText, account: &str, filter: &AuditFilter) {
    sql.push_text(&format!(
        "SELECT {ENTRY_COLUMNS} FROM audit_entries WHERE account_id = "
    ));
    sql.bind_text(account.to_owned());
    filter.push_conditions(sql);
}

/// Writes the range read of entries between `lo` and `hi`, in id order.
fn entries_between(sql: &mut impl QueryText, lo: String, hi: String, limit: i64) {
    sql.push_text(" AND id >= ");
    sql.bind_text(lo);
    sql.push_text(" AND id <= ");
    sql.bind_text(hi);
    sql.push_text(" ORDER BY id LIMIT ");
    sql.bind_int(limit);
}

/// Writes the read of the entries named by `ids`, in id order.
fn entries_named(sql: &mut impl QueryText, ids: &[String]) {
    for (i, id) in ids.iter().enumerate() {
        sql.push_text(if i == 0 { " AND id IN (" } else { ", " });
        sql.bind_text(id.clone());
    }
    sql.push_text(") ORDER BY id");
}

fn sqlite_links(
    conn: &rusqlite::Connection,
    account: &str,
    after: i64,
    upto: i64,
) -> StoreResult<BatchBuilder> {
    let mut batch = BatchBuilder::default();
    let mut links = conn.prepare(&format!(
        "SELECT {LINK_COLUMNS} FROM audit_links WHERE account_id = ?1 AND seq > ?2 AND seq <= ?3 \
         ORDER BY seq"
    ))?;
    let mut rows = links.query(rusqlite::params![account, after, upto])?;
    while let Some(row) = rows.next()? {
        let text = |i: usize| row.get_ref(i).and_then(|v| Ok(v.as_str()?));
        batch.push_link(text(0)?, row.get(1)?, text(2)?, text(3)?);
    }
    Ok(batch)
}

/// Reads the entries of the ids `batch` holds and joins them.
fn sqlite_read_entries(
    conn: &rusqlite::Connection,
    account: &str,
    filter: &AuditFilter,
    mut batch: BatchBuilder,
) -> StoreResult<ChainBatch> {
    let Some((lo, hi)) = batch.id_range() else {
        return Ok(batch.finish());
    };
    let limit = batch.entry_limit();
    let new_query = || {
        let mut sql = SqliteQuery {
            text: String::new(),
            values: Vec::new(),
        };
        entries_of(&mut sql, account, filter);
        sql
    };
    let mut sql = new_query();
    entries_between(&mut sql, lo, hi, limit);
    sqlite_entries(conn, sql, &mut batch)?;
    if batch.entries_read() as i64 == limit {
        for ids in batch.ids_after_last_entry().chunks(IDS_PER_READ) {
            let mut sql = new_query();
            entries_named(&mut sql, ids);
            sqlite_entries(conn, sql, &mut batch)?;
        }
    }
    Ok(batch.finish())
}

fn sqlite_entries(
    conn: &rusqlite::Connection,
    sql: SqliteQuery,
    batch: &mut BatchBuilder,
) -> StoreResult<()> {
    let mut statement = conn.prepare(&sql.text)?;
    let mut rows = statement.query(rusqlite::params_from_iter(sql.values))?;
    while let Some(row) = rows.next()? {
        let mut text = [None; ENTRY_TEXT_COLUMNS];
        for (i, value) in text.iter_mut().enumerate() {
            *value = row
                .get_ref(i)?
                .as_str_or_null()
                .map_err(rusqlite::Error::from)?;
        }
        batch.push_entry(
            |i| text[i],
            row.get(ENTRY_TEXT_COLUMNS)?,
            row.get(ENTRY_TEXT_COLUMNS + 1)?,
        );
    }
    Ok(())
}

async fn postgres_links(
    conn: &mut PgConnection,
    account: &str,
    after: i64,
    upto: i64,
) -> StoreResult<BatchBuilder> {
    let mut batch = BatchBuilder::default();
    let links = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {LINK_COLUMNS} FROM audit_links WHERE account_id = $1 AND seq > $2 AND seq <= $3 \
         ORDER BY seq"
    )))
    .bind(account)
    .bind(after)
    .bind(upto)
    .fetch_all(&mut *conn)
    .await?;
    for row in &links {
        batch.push_link(
            row.try_get_unchecked(0)?,
            row.try_get_unchecked(1)?,
            row.try_get_unchecked(2)?,
            row.try_get_unchecked(3)?,
        );
    }
    Ok(batch)
}

/// Reads the entries of the ids `batch` holds and joins them.
async fn postgres_read_entries(
    conn: &mut PgConnection,
    account: &str,
    filter: &AuditFilter,
    mut batch: BatchBuilder,
) -> StoreResult<ChainBatch> {
    let Some((lo, hi)) = batch.id_range() else {
        return Ok(batch.finish());
    };
    let limit = batch.entry_limit();
    let new_query = || {
        let mut sql = Sql::<Postgres>::new("");
        entries_of(&mut sql, account, filter);
        sql.planned_per_run();
        sql
    };
    let mut sql = new_query();
    entries_between(&mut sql, lo, hi, limit);
    postgres_entries(conn, sql, &mut batch).await?;
    if batch.entries_read() as i64 == limit {
        for ids in batch.ids_after_last_entry().chunks(IDS_PER_READ) {
            let mut sql = new_query();
            entries_named(&mut sql, ids);
            postgres_entries(conn, sql, &mut batch).await?;
        }
    }
    Ok(batch.finish())
}

async fn postgres_entries(
    conn: &mut PgConnection,
    sql: Sql<Postgres>,
    batch: &mut BatchBuilder,
) -> StoreResult<()> {
    for row in sql.fetch_rows_pg(conn).await? {
        let mut text = [None; ENTRY_TEXT_COLUMNS];
        for (i, value) in text.iter_mut().enumerate() {
            *value = row.try_get_unchecked(i)?;
        }
        batch.push_entry(
            |i| text[i],
            row.try_get_unchecked(ENTRY_TEXT_COLUMNS)?,
            row.try_get_unchecked(ENTRY_TEXT_COLUMNS + 1)?,
        );
    }
    Ok(())
}

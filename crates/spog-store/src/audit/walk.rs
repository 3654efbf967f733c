//! Reading many entries at once: walks along a chain (verification and export) and the
//! linker's queue. SQLite returns a batch as one JSON array of entries (each an array in
//! [`COLUMNS`](super::row::COLUMNS) order): per-row decoding through the Any driver cost more
//! than everything else a walk does. PostgreSQL builds such JSON slowly (7 µs an entry), so a
//! walk there reads rows through PostgreSQL's own driver instead.

use futures::{Stream, StreamExt};
use spog_core::Id;
use spog_core::audit::AuditEntry;
use spog_core::model::Account;
use sqlx::Postgres;
use std::sync::Arc;

use super::query::AuditFilter;
use super::row::EntryRow;
use crate::{Backend, Conn, Sql, Store, StoreError, StoreResult};

/// One batch of a walk, as read: decoding it is left to [`ChainBatch::into_entries`] where
/// that is the expensive part (SQLite's JSON), so that the walk's consumer parses one batch
/// while the database reads the next ones.
#[derive(Debug)]
pub struct ChainBatch(Read);

#[derive(Debug)]
enum Read {
    Json(Option<String>),
    Decoded(Vec<AuditEntry>),
}

impl ChainBatch {
    /// The batch's entries, in `seq` order.
    pub fn into_entries(self) -> StoreResult<Vec<AuditEntry>> {
        let mut entries = match self.0 {
            Read::Json(json) => parse(json)?,
            Read::Decoded(entries) => entries,
        };
        entries.sort_unstable_by_key(|e| e.seq);
        Ok(entries)
    }

    fn is_empty(&self) -> bool {
        match &self.0 {
            Read::Json(json) => json.is_none(),
            Read::Decoded(entries) => entries.is_empty(),
        }
    }
}

/// Every column an entry is read with, the link's from `k` and the entry's from `e`.
const VALUES: &str = "e.id, k.seq, e.occurred_at, e.account_id, e.organization_id, \
     e.actor_type, e.actor_id, e.actor_email, e.actor_name, e.source, e.ip, e.user_agent, \
     e.request_id, e.action, e.resource_type, e.resource_id, e.resource_name, e.outcome, \
     e.before_state, e.after_state, e.metadata, k.prev_hash, k.hash";

/// The account's linked entries that match `filter`, in `seq` order, as non-empty batches
/// of up to `batch_size`. The links are read by their key, by ranges of `seq` up to the last
/// link at the start;
/// a link whose entry is gone yields nothing, which verification reports as a gap.
///
/// Batches are read ahead of the consumer, each on its own connection and task, so that the
/// database and the decoding use every core; memory stays constant. PostgreSQL's rows are
/// decoded as they arrive, on the reading tasks, so more of its batches are read at once.
pub async fn walk(
    store: &Store,
    account: Id<Account>,
    filter: AuditFilter,
    batch_size: i64,
) -> StoreResult<impl Stream<Item = StoreResult<ChainBatch>> + Send + 'static> {
    let read_ahead = match store.backend() {
        Backend::Sqlite => 2,
        Backend::Postgres => 4,
    };
    let last: Option<i64> =
        sqlx::query_scalar("SELECT MAX(seq) FROM audit_links WHERE account_id = $1")
            .bind(account.to_string())
            .fetch_one(&mut *store.conn().await?)
            .await?;
    let (store, filter) = (store.clone(), Arc::new(filter));
    let batches = (0..last.unwrap_or(0))
        .step_by(batch_size.max(1) as usize)
        .map(move |after| {
            let (store, filter) = (store.clone(), filter.clone());
            tokio::spawn(async move {
                links_in(&store, account, &filter, after, after + batch_size).await
            })
        });
    Ok(futures::stream::iter(batches)
        .buffered(read_ahead)
        .map(|read| read.unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic())))
        .filter(|batch| std::future::ready(!matches!(batch, Ok(read) if read.is_empty()))))
}

/// The entries of the account's links with `after < seq <= upto` that match `filter`.
async fn links_in(
    store: &Store,
    account: Id<Account>,
    filter: &AuditFilter,
    after: i64,
    upto: i64,
) -> StoreResult<ChainBatch> {
    let read = match store.bulk_conn().await? {
        Some(mut conn) => {
            // One lookup per link (`LIMIT 1` keeps the subquery apart): as a plain join,
            // PostgreSQL hashed the whole table whenever it expected thousands of links.
            let mut sql = Sql::<Postgres>::new(&format!(
                "SELECT {VALUES} FROM audit_links k CROSS JOIN LATERAL \
                 (SELECT * FROM audit_entries e WHERE e.id = k.entry_id AND e.account_id = "
            ));
            sql.bind(account.to_string());
            filter.push_conditions(&mut sql);
            sql.push(" LIMIT 1) e WHERE k.account_id = ")
                .bind(account.to_string())
                .push(" AND k.seq > ")
                .bind(after)
                .push(" AND k.seq <= ")
                .bind(upto);
            sql.planned_per_run();
            let rows = sql.fetch_rows_pg(&mut conn).await?;
            Read::Decoded(
                rows.iter()
                    .map(|row| AuditEntry::try_from(EntryRow::from_pg(row)?))
                    .collect::<StoreResult<_>>()?,
            )
        }
        None => {
            let keys = |sql: &mut Sql| {
                sql.push(
                    "SELECT entry_id, seq, prev_hash, hash FROM audit_links WHERE account_id = ",
                )
                .bind(account.to_string())
                .push(" AND seq > ")
                .bind(after)
                .push(" AND seq <= ")
                .bind(upto);
            };
            Read::Json(entries_of(&mut *store.conn().await?, account, keys, filter).await?)
        }
    };
    Ok(ChainBatch(read))
}

/// Up to `limit` entries of the account waiting to be linked, in id order.
pub(crate) async fn queued(
    conn: &mut Conn,
    account: Id<Account>,
    limit: i64,
) -> StoreResult<Vec<AuditEntry>> {
    let keys = |sql: &mut Sql| {
        sql.push(
            "SELECT entry_id, NULL AS seq, NULL AS prev_hash, NULL AS hash FROM audit_unlinked \
             WHERE account_id = ",
        )
        .bind(account.to_string())
        .push(" ORDER BY entry_id LIMIT ")
        .bind(limit);
    };
    let mut entries = parse(entries_of(conn, account, keys, &AuditFilter::default()).await?)?;
    entries.sort_unstable_by(|a, b| a.id.cmp(&b.id));
    Ok(entries)
}

/// The entries named by the query `keys` writes (of `entry_id, seq, prev_hash, hash`) that
/// match `filter`, in no particular order, as one JSON array (`None` for none).
async fn entries_of(
    conn: &mut Conn,
    account: Id<Account>,
    keys: impl Fn(&mut Sql),
    filter: &AuditFilter,
) -> StoreResult<Option<String>> {
    let sqlite = conn.backend_name() == "SQLite";
    let mut sql;
    if sqlite {
        sql = Sql::new(&format!(
            "SELECT json_group_array(json_array({VALUES})) FROM ("
        ));
        keys(&mut sql);
        sql.push(") k JOIN audit_entries e ON e.id = k.entry_id WHERE e.account_id = ");
    } else {
        // One lookup per key, as in `links_in`.
        sql = Sql::new(&format!(
            "SELECT json_agg((SELECT json_build_array({VALUES}) FROM audit_entries e \
             WHERE e.id = k.entry_id AND e.account_id = "
        ));
    }
    sql.bind(account.to_string());
    filter.push_conditions(&mut sql);
    if !sqlite {
        sql.push("))::text FROM (");
        keys(&mut sql);
        sql.push(") k");
    }
    sql.planned_per_run();
    sql.fetch_scalar(conn).await
}

fn parse(json: Option<String>) -> StoreResult<Vec<AuditEntry>> {
    let Some(json) = json else {
        return Ok(Vec::new());
    };
    // On PostgreSQL a key whose entry does not match the filter (or is gone) is a null.
    let rows: Vec<Option<EntryRow>> = serde_json::from_str(&json)
        .map_err(|e| StoreError::Corrupt(format!("reading audit entries: {e}")))?;
    rows.into_iter()
        .flatten()
        .map(AuditEntry::try_from)
        .collect()
}

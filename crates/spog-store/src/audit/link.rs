//! The chain linker. Entries arrive unlinked with their changes, queued in `audit_unlinked`;
//! the linker appends every queued entry of an account in one transaction (group commit)
//! under that account's head row lock, so the chain stays linear with any number of writers
//! and instances while the lock is held once per batch rather than once per entry. A link is
//! a narrow row of its own (`audit_links`): the entry itself is never rewritten.

use std::collections::BTreeMap;

use spog_core::Timestamp;
use spog_core::audit::{GENESIS_HASH, chain_hash, write_canonical_json};
use sqlx::AssertSqlSafe;

use super::stats::DailyCounts;
use super::walk::queued_entries;
use crate::sql::pg_array;
use crate::{Backend, Sql, Store, StoreResult, Tx};

/// Entries linked per transaction at most: large, since writers queue behind the linker's
/// transaction and each round costs them one wait.
const BATCH: i64 = 10_000;
/// A round that links this many entries leaves the chain behind: writers then keep pace.
const BEHIND: u64 = 1_000;
/// Rows per INSERT statement on SQLite (5 parameters each, within its limit of 32,766).
const ROWS_PER_INSERT: usize = 2_000;

/// A link to write: entry id, seq, prev_hash, hash.
type Link = (String, i64, String, String);

/// What one call of [`link_pending`] appended.
#[derive(Debug, Default)]
pub struct Linked {
    pub entries: u64,
    /// The new head `seq` of each account that grew.
    pub heads: BTreeMap<String, i64>,
}

/// Links pending entries of every account, a batch per transaction, until none are left.
#[tracing::instrument(name = "audit::link_pending", skip_all)]
pub async fn link_pending(store: &Store, now: Timestamp) -> StoreResult<Linked> {
    let mut linked = Linked::default();
    loop {
        // The queue's accounts by skipping along its key, not by reading every queued row.
        let accounts: Vec<String> = sqlx::query_scalar(
            "WITH RECURSIVE a (id) AS (SELECT MIN(account_id) FROM audit_unlinked UNION ALL \
             SELECT (SELECT MIN(account_id) FROM audit_unlinked WHERE account_id > a.id) \
             FROM a WHERE a.id IS NOT NULL) SELECT id FROM a WHERE id IS NOT NULL ORDER BY id",
        )
        .fetch_all(&mut *store.conn().await?)
        .await?;
        if accounts.is_empty() {
            store.linker_round_done(false);
            return Ok(linked);
        }
        let mut round = 0;
        let mut heads = Vec::new();
        // Accounts in a fixed order, so linkers on several instances never deadlock.
        let mut tx = store.begin().await?;
        for account in &accounts {
            let (count, head) = link_account(&mut tx, store, account, now).await?;
            if count > 0 {
                heads.push((account.clone(), head));
            }
            round += count;
        }
        tx.commit_unaudited().await?;
        store.linker_round_done(round >= BEHIND);
        linked.entries += round;
        linked.heads.extend(heads);
        if round == 0 {
            return Ok(linked);
        }
    }
}

async fn link_account(
    tx: &mut Tx,
    store: &Store,
    account: &str,
    now: Timestamp,
) -> StoreResult<(u64, i64)> {
    sqlx::query(
        "INSERT INTO audit_heads (account_id, seq, hash, updated_at) VALUES ($1, 0, $2, $3) \
         ON CONFLICT (account_id) DO NOTHING",
    )
    .bind(account)
    .bind(GENESIS_HASH)
    .bind(now.micros())
    .execute(&mut **tx)
    .await?;
    let (mut seq, mut prev): (i64, String) = sqlx::query_as(AssertSqlSafe(format!(
        "SELECT seq, hash FROM audit_heads WHERE account_id = $1{}",
        store.backend().for_update()
    )))
    .bind(account)
    .fetch_one(&mut **tx)
    .await?;
    // Taken after the head lock is held: what an earlier linker linked is no longer queued.
    // Taken in the round's transaction: a round that fails leaves them queued.
    let mut ids: Vec<String> = sqlx::query_scalar(dequeue(store.backend()))
        .bind(account)
        .bind(BATCH)
        .fetch_all(&mut **tx)
        .await?;
    if ids.is_empty() {
        return Ok((0, seq));
    }
    ids.sort_unstable();
    let dequeued = ids.len();
    let queued = queued_entries(store, account, ids).await?;
    if queued.len() != dequeued {
        tracing::warn!(
            account,
            missing = dequeued - queued.len(),
            "queued audit entries are gone from the table: they cannot be linked"
        );
    }
    let count = queued.len() as u64;
    let mut counts = DailyCounts::default();
    let mut links: Vec<Link> = Vec::with_capacity(queued.len());
    let mut canonical = Vec::with_capacity(1024);
    for mut entry in queued.fields() {
        counts.add(&entry);
        seq += 1;
        entry.seq = Some(seq);
        entry.prev_hash = Some(&prev);
        canonical.clear();
        write_canonical_json(&entry, &mut canonical);
        let hash = chain_hash(&prev, &canonical);
        links.push((
            entry.id.to_owned(),
            seq,
            std::mem::replace(&mut prev, hash.clone()),
            hash,
        ));
    }
    match store.backend() {
        Backend::Postgres => insert_links_postgres(tx, account, &links).await?,
        Backend::Sqlite => insert_links_sqlite(tx, account, links).await?,
    }
    counts.save(tx, account).await?;
    sqlx::query(
        "UPDATE audit_heads SET seq = $2, hash = $3, updated_at = $4 WHERE account_id = $1",
    )
    .bind(account)
    .bind(seq)
    .bind(prev)
    .bind(now.micros())
    .execute(&mut **tx)
    .await?;
    Ok((count, seq))
}

/// Takes up to `$2` of an account's queued ids out of the queue. On PostgreSQL by their rows'
/// addresses: a join of the queue with the ids chosen may read the whole queue when it is long.
fn dequeue(backend: Backend) -> &'static str {
    match backend {
        Backend::Postgres => {
            "DELETE FROM audit_unlinked WHERE ctid = ANY (ARRAY (SELECT ctid FROM audit_unlinked \
             WHERE account_id = $1 ORDER BY entry_id LIMIT $2)) RETURNING entry_id"
        }
        Backend::Sqlite => {
            "DELETE FROM audit_unlinked WHERE account_id = $1 AND entry_id IN (SELECT entry_id \
             FROM audit_unlinked WHERE account_id = $1 ORDER BY entry_id LIMIT $2) RETURNING entry_id"
        }
    }
}

/// One statement for a round's links, its columns bound as arrays: VALUES lists of
/// thousands of parameters were parsed and planned afresh at every size, which cost
/// PostgreSQL more than writing the rows.
async fn insert_links_postgres(tx: &mut Tx, account: &str, links: &[Link]) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO audit_links (account_id, seq, entry_id, prev_hash, hash) \
         SELECT $1, l.* FROM UNNEST($2::bigint[], $3::text[], $4::text[], $5::text[]) \
         AS l (seq, entry_id, prev_hash, hash)",
    )
    .bind(account)
    .bind(pg_array(links.iter().map(|(_, seq, ..)| seq.to_string())))
    .bind(pg_array(links.iter().map(|(id, ..)| id)))
    .bind(pg_array(links.iter().map(|(_, _, prev, _)| prev)))
    .bind(pg_array(links.iter().map(|(.., hash)| hash)))
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// SQLite binds no arrays; its statements are cheap to prepare.
async fn insert_links_sqlite(tx: &mut Tx, account: &str, links: Vec<Link>) -> StoreResult<()> {
    let mut links = links.into_iter().peekable();
    while links.peek().is_some() {
        let mut insert = Sql::new(
            "INSERT INTO audit_links (account_id, seq, entry_id, prev_hash, hash) VALUES ",
        );
        for (i, (id, seq, prev_hash, hash)) in links.by_ref().take(ROWS_PER_INSERT).enumerate() {
            insert
                .push(if i == 0 { "(" } else { ", (" })
                .bind(account.to_owned())
                .push(", ")
                .bind(seq)
                .push(", ")
                .bind(id)
                .push(", ")
                .bind(prev_hash)
                .push(", ")
                .bind(hash)
                .push(")");
        }
        insert.execute(tx).await?;
    }
    Ok(())
}

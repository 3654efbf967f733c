//! The chain linker. Entries arrive unlinked with their changes; the linker appends every
//! pending entry of an account in one transaction (group commit) under that account's head
//! row lock, so the chain stays linear with any number of writers and instances while the
//! lock is held once per batch rather than once per entry.

use std::collections::BTreeMap;

use spog_core::Timestamp;
use spog_core::audit::{AuditEntry, GENESIS_HASH, canonical_json, chain_hash};
use sqlx::AssertSqlSafe;

use super::row::{COLUMNS, EntryRow};
use super::stats::DailyCounts;
use crate::{Sql, Store, StoreResult};

/// Entries linked per transaction at most: large, since writers queue behind the linker's
/// transaction and each round costs them one wait.
const BATCH: i64 = 10_000;
/// Rows per UPDATE statement (4 parameters each, within SQLite's limit of 32,766).
const ROWS_PER_UPDATE: usize = 2_000;

/// What one call of [`link_pending`] appended.
#[derive(Debug, Default)]
pub struct Linked {
    pub entries: u64,
    /// The new head `seq` of each account that grew.
    pub heads: BTreeMap<String, i64>,
}

/// Links pending entries of every account, a batch per transaction, until none are left.
pub async fn link_pending(store: &Store, now: Timestamp) -> StoreResult<Linked> {
    let mut linked = Linked::default();
    loop {
        let accounts: Vec<String> = sqlx::query_scalar(
            "SELECT DISTINCT account_id FROM audit_logs WHERE seq IS NULL ORDER BY account_id",
        )
        .fetch_all(&mut *store.conn().await?)
        .await?;
        if accounts.is_empty() {
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
        linked.entries += round;
        linked.heads.extend(heads);
        if round == 0 {
            return Ok(linked);
        }
    }
}

async fn link_account(
    tx: &mut crate::Tx,
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
    // Read after the head lock is held: what an earlier linker linked is no longer pending.
    let rows: Vec<EntryRow> = sqlx::query_as(AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM audit_logs WHERE account_id = $1 AND seq IS NULL ORDER BY id LIMIT {BATCH}"
    )))
    .bind(account)
    .fetch_all(&mut **tx)
    .await?;
    if rows.is_empty() {
        return Ok((0, seq));
    }
    let count = rows.len() as u64;
    let mut counts = DailyCounts::default();
    let mut links = Vec::with_capacity(rows.len());
    for row in rows {
        let mut entry = AuditEntry::try_from(row)?;
        counts.add(&entry);
        seq += 1;
        entry.seq = Some(seq);
        entry.prev_hash = Some(prev.clone());
        let hash = chain_hash(&prev, &canonical_json(&entry));
        links.push((
            entry.id,
            seq,
            std::mem::replace(&mut prev, hash.clone()),
            hash,
        ));
    }
    for chunk in links.chunks(ROWS_PER_UPDATE) {
        let mut update = Sql::new("WITH v (id, seq, prev_hash, hash) AS (VALUES ");
        for (i, (id, seq, prev_hash, hash)) in chunk.iter().enumerate() {
            update
                .push(if i == 0 { "(" } else { ", (" })
                .bind(id.clone())
                .push(", ")
                .bind(*seq)
                .push(", ")
                .bind(prev_hash.clone())
                .push(", ")
                .bind(hash.clone())
                .push(")");
        }
        update.push(
            ") UPDATE audit_logs SET seq = v.seq, prev_hash = v.prev_hash, hash = v.hash \
             FROM v WHERE audit_logs.id = v.id AND audit_logs.seq IS NULL",
        );
        let done = update.execute(tx).await?;
        if done.rows_affected() != chunk.len() as u64 {
            return Err(crate::StoreError::Corrupt(format!(
                "linking {} audit entries updated {} rows",
                chunk.len(),
                done.rows_affected()
            )));
        }
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

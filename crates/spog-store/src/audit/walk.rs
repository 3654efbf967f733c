//! Reading many entries at once, for verification and export walks along a chain and for the
//! linker. The database returns a batch as one JSON array of entries (each an array in
//! [`COLUMNS`] order) rather than row by row: per-row decoding through the driver cost more
//! than everything else a walk does.

use spog_core::Id;
use spog_core::audit::AuditEntry;
use spog_core::model::Account;

use super::query::AuditFilter;
use super::row::EntryRow;
use crate::{Conn, Sql, StoreError, StoreResult};

/// One batch of a walk along an account's chain in `seq` order, as read: parsing it is left
/// to [`ChainBatch::into_entries`], so that a walk can parse one batch while it reads the next.
#[derive(Debug)]
pub struct ChainBatch {
    json: Option<String>,
    /// Where the next batch starts; `None` at the end of the chain.
    pub next_after: Option<i64>,
}

impl ChainBatch {
    /// The batch's linked entries that match the filter, in `seq` order.
    pub fn into_entries(self) -> StoreResult<Vec<AuditEntry>> {
        let mut entries = parse(self.json)?;
        entries.sort_unstable_by_key(|e| e.seq);
        Ok(entries)
    }
}

/// The entries of the next `limit` links after `after_seq` that match `filter`: one batch of
/// an export or of a verification walk. The links are read by their key and their entries by
/// theirs; a link whose entry is gone yields nothing, which verification reports as a gap.
pub async fn chain_batch(
    conn: &mut Conn,
    account: Id<Account>,
    filter: &AuditFilter,
    after_seq: i64,
    limit: u32,
) -> StoreResult<ChainBatch> {
    let (count, last): (i64, Option<i64>) = sqlx::query_as(
        "SELECT COUNT(*), MAX(seq) FROM (SELECT seq FROM audit_links \
         WHERE account_id = $1 AND seq > $2 ORDER BY seq LIMIT $3) l",
    )
    .bind(account.to_string())
    .bind(after_seq)
    .bind(i64::from(limit))
    .fetch_one(&mut *conn)
    .await?;
    let Some(last_seq) = last else {
        return Ok(ChainBatch {
            json: None,
            next_after: None,
        });
    };
    let keys = |sql: &mut Sql| {
        sql.push("SELECT entry_id, seq, prev_hash, hash FROM audit_links WHERE account_id = ")
            .bind(account.to_string())
            .push(" AND seq > ")
            .bind(after_seq)
            .push(" AND seq <= ")
            .bind(last_seq);
    };
    Ok(ChainBatch {
        json: entries_of(conn, account, keys, filter).await?,
        next_after: (count == i64::from(limit)).then_some(last_seq),
    })
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
    const VALUES: &str = "e.id, k.seq, e.occurred_at, e.account_id, e.organization_id, \
         e.actor_type, e.actor_id, e.actor_email, e.actor_name, e.source, e.ip, e.user_agent, \
         e.request_id, e.action, e.resource_type, e.resource_id, e.resource_name, e.outcome, \
         e.before_state, e.after_state, e.metadata, k.prev_hash, k.hash";
    let sqlite = conn.backend_name() == "SQLite";
    let mut sql;
    if sqlite {
        sql = Sql::new(&format!(
            "SELECT json_group_array(json_array({VALUES})) FROM ("
        ));
        keys(&mut sql);
        sql.push(") k JOIN audit_entries e ON e.id = k.entry_id WHERE e.account_id = ");
    } else {
        // One lookup per key, written as a subquery: as a join, PostgreSQL hashed the whole
        // table whenever it expected thousands of keys.
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

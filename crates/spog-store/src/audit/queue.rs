//! The chain linker's reads of its queue, inside its transaction: the entries waiting to be
//! linked, returned by the database as one JSON array (each entry an array in
//! [`COLUMNS`](super::row::COLUMNS) order), since per-row decoding through the Any driver
//! cost more than the rest of linking.

use spog_core::Id;
use spog_core::audit::AuditEntry;
use spog_core::model::Account;

use super::row::EntryRow;
use crate::{Conn, Sql, StoreError, StoreResult};

/// Every column an entry is read with, as `audit_logs` names them, from the entry `e`.
const VALUES: &str = "e.id, NULL, e.occurred_at, e.account_id, e.organization_id, \
     e.actor_type, e.actor_id, e.actor_email, e.actor_name, e.source, e.ip, e.user_agent, \
     e.request_id, e.action, e.resource_type, e.resource_id, e.resource_name, e.outcome, \
     e.before_state, e.after_state, e.metadata, NULL, NULL";

/// Up to `limit` entries of the account waiting to be linked, in id order.
pub(crate) async fn queued(
    conn: &mut Conn,
    account: Id<Account>,
    limit: i64,
) -> StoreResult<Vec<AuditEntry>> {
    let sqlite = conn.backend_name() == "SQLite";
    let mut sql = if sqlite {
        Sql::new(&format!(
            "SELECT json_group_array(json_array({VALUES})) FROM (SELECT entry_id FROM \
             audit_unlinked WHERE account_id = "
        ))
    } else {
        // One lookup per key: as a join, PostgreSQL hashed the whole trail.
        Sql::new(&format!(
            "SELECT json_agg((SELECT json_build_array({VALUES}) FROM audit_entries e \
             WHERE e.account_id = k.account_id AND e.id = k.entry_id))::text FROM \
             (SELECT account_id, entry_id FROM audit_unlinked WHERE account_id = "
        ))
    };
    sql.bind(account.to_string())
        .push(" ORDER BY entry_id LIMIT ")
        .bind(limit)
        .push(") k");
    if sqlite {
        sql.push(" JOIN audit_entries e ON e.account_id = ")
            .bind(account.to_string())
            .push(" AND e.id = k.entry_id");
    }
    let json: Option<String> = sql.fetch_scalar(conn).await?;
    let mut entries = parse(json)?;
    entries.sort_unstable_by(|a, b| a.id.cmp(&b.id));
    Ok(entries)
}

fn parse(json: Option<String>) -> StoreResult<Vec<AuditEntry>> {
    let Some(json) = json else {
        return Ok(Vec::new());
    };
    // On PostgreSQL a queued entry that is gone is a null.
    let rows: Vec<Option<EntryRow>> = serde_json::from_str(&json)
        .map_err(|e| StoreError::Corrupt(format!("reading audit entries: {e}")))?;
    rows.into_iter()
        .flatten()
        .map(AuditEntry::try_from)
        .collect()
}

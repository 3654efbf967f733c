use spog_core::audit::{AuditEntry, Snapshot};

use crate::{Sql, StoreResult, Tx};

/// Rows per INSERT statement: 23 parameters each stays far below both databases' limits.
const ROWS_PER_STATEMENT: usize = 200;

/// Records one entry in the mutation's transaction. (Its snapshots were redacted when they
/// were made: [`spog_core::audit::Snapshot`] is the only way to build one.)
#[tracing::instrument(name = "audit::record", skip_all, fields(account = %entry.account_id, resource = ?entry.resource_id))]
pub async fn record(tx: &mut Tx, entry: AuditEntry) -> StoreResult<()> {
    record_all(tx, vec![entry]).await
}

/// Records entries in the mutation's transaction, unlinked; the chain linker appends them.
#[tracing::instrument(name = "audit::record_all", skip_all)]
pub async fn record_all(tx: &mut Tx, entries: Vec<AuditEntry>) -> StoreResult<()> {
    let count = entries.len();
    // Two parameters a row where an entry has twenty-three.
    for chunk in entries.chunks(ROWS_PER_STATEMENT * 10) {
        let mut sql = Sql::new("INSERT INTO audit_unlinked (account_id, entry_id) VALUES ");
        for (i, entry) in chunk.iter().enumerate() {
            sql.push(if i == 0 { "(" } else { ", (" })
                .bind(entry.account_id.clone())
                .push(", ")
                .bind(entry.id.clone())
                .push(")");
        }
        sql.execute(tx).await?;
    }
    insert_entries(tx, entries).await?;
    tx.note_audit_entries(count);
    Ok(())
}

/// Writes entries without queueing them for the chain: the part of [`record_all`] that any
/// audit log pays, chained or not (the benchmarks' baseline).
#[tracing::instrument(name = "audit::insert_entries", skip_all)]
pub async fn insert_entries(tx: &mut Tx, entries: Vec<AuditEntry>) -> StoreResult<()> {
    let mut entries = entries.into_iter().peekable();
    while entries.peek().is_some() {
        let mut sql = Sql::new(
            "INSERT INTO audit_entries (id, occurred_at, account_id, organization_id, actor_type, actor_id, \
             actor_email, actor_name, source, ip, user_agent, request_id, action, resource_type, resource_id, \
             resource_name, outcome, before_state, after_state, metadata, credential_id, credential_name, \
             recorded_at) VALUES ",
        );
        for (i, entry) in entries.by_ref().take(ROWS_PER_STATEMENT).enumerate() {
            let json = |v: Option<Snapshot>| v.map(|v| v.as_str().to_owned());
            sql.push(if i == 0 { "(" } else { ", (" })
                .bind(entry.id)
                .push(", ")
                .bind(entry.occurred_at.micros())
                .push(", ")
                .bind(entry.account_id)
                .push(", ")
                .bind(entry.organization_id)
                .push(", ")
                .bind(entry.actor_type.as_str())
                .push(", ")
                .bind(entry.actor_id)
                .push(", ")
                .bind(entry.actor_email)
                .push(", ")
                .bind(entry.actor_name)
                .push(", ")
                .bind(entry.source.as_str())
                .push(", ")
                .bind(entry.ip)
                .push(", ")
                .bind(entry.user_agent)
                .push(", ")
                .bind(entry.request_id)
                .push(", ")
                .bind(entry.action)
                .push(", ")
                .bind(entry.resource_type)
                .push(", ")
                .bind(entry.resource_id)
                .push(", ")
                .bind(entry.resource_name)
                .push(", ")
                .bind(entry.outcome.as_str())
                .push(", ")
                .bind(json(entry.before))
                .push(", ")
                .bind(json(entry.after))
                .push(", ")
                .bind(json(entry.metadata))
                .push(", ")
                .bind(entry.credential_id)
                .push(", ")
                .bind(entry.credential_name)
                .push(", ")
                .bind(entry.recorded_at.map(|at| at.micros()))
                .push(")");
        }
        sql.execute(tx).await?;
    }
    Ok(())
}

use spog_core::audit::{ActorType, AuditEntry, Outcome, Snapshot, Source};
use spog_core::model::Account;
use spog_core::{Id, Timestamp};
use sqlx::AssertSqlSafe;

use crate::error::Found;
use crate::{Conn, StoreError, StoreResult};

/// Every stored column, in the order [`EntryRow`] reads them.
pub(crate) const COLUMNS: &str = "id, seq, occurred_at, account_id, organization_id, actor_type, actor_id, \
     actor_email, actor_name, source, ip, user_agent, request_id, action, resource_type, resource_id, \
     resource_name, outcome, before_state, after_state, metadata, prev_hash, hash, credential_id, \
     credential_name, recorded_at";

/// A stored entry as read by column.
#[derive(sqlx::FromRow)]
pub(crate) struct EntryRow {
    id: String,
    seq: Option<i64>,
    occurred_at: i64,
    account_id: String,
    organization_id: Option<String>,
    actor_type: String,
    actor_id: Option<String>,
    actor_email: Option<String>,
    actor_name: Option<String>,
    source: String,
    ip: Option<String>,
    user_agent: Option<String>,
    request_id: Option<String>,
    action: String,
    resource_type: String,
    resource_id: Option<String>,
    resource_name: Option<String>,
    outcome: String,
    before_state: Option<String>,
    after_state: Option<String>,
    metadata: Option<String>,
    prev_hash: Option<String>,
    hash: Option<String>,
    credential_id: Option<String>,
    credential_name: Option<String>,
    recorded_at: Option<i64>,
}

fn json(text: Option<String>) -> StoreResult<Option<Snapshot>> {
    text.map(Snapshot::stored)
        .transpose()
        .map_err(|e| StoreError::Corrupt(format!("audit snapshot is not JSON: {e}")))
}

fn corrupt(what: &str, text: &str) -> StoreError {
    StoreError::Corrupt(format!("unknown {what} `{text}` in an audit entry"))
}

impl TryFrom<EntryRow> for AuditEntry {
    type Error = StoreError;
    fn try_from(row: EntryRow) -> StoreResult<Self> {
        Ok(AuditEntry {
            actor_type: ActorType::parse(&row.actor_type)
                .ok_or_else(|| corrupt("actor type", &row.actor_type))?,
            source: Source::parse(&row.source).ok_or_else(|| corrupt("source", &row.source))?,
            outcome: Outcome::parse(&row.outcome)
                .ok_or_else(|| corrupt("outcome", &row.outcome))?,
            id: row.id,
            seq: row.seq,
            occurred_at: Timestamp::from_micros(row.occurred_at),
            account_id: row.account_id,
            organization_id: row.organization_id,
            actor_id: row.actor_id,
            actor_email: row.actor_email,
            actor_name: row.actor_name,
            ip: row.ip,
            user_agent: row.user_agent,
            request_id: row.request_id,
            action: row.action,
            resource_type: row.resource_type,
            resource_id: row.resource_id,
            resource_name: row.resource_name,
            before: json(row.before_state)?,
            after: json(row.after_state)?,
            metadata: json(row.metadata)?,
            credential_id: row.credential_id,
            credential_name: row.credential_name,
            recorded_at: row.recorded_at.map(Timestamp::from_micros),
            prev_hash: row.prev_hash,
            hash: row.hash,
        })
    }
}

#[tracing::instrument(name = "audit::get", skip_all, fields(account = %account, entry = entry))]
pub async fn get(conn: &mut Conn, account: Id<Account>, entry: &str) -> StoreResult<AuditEntry> {
    sqlx::query_as::<_, EntryRow>(AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM audit_logs WHERE account_id = $1 AND id = $2"
    )))
    .bind(account.to_string())
    .bind(entry)
    .fetch_optional(conn)
    .await
    .found()?
    .try_into()
}

/// The latest entry recording `action` on the resource `resource_type`/`resource_id`.
#[tracing::instrument(name = "audit::latest_about", skip_all, fields(account = %account, resource_id = resource_id))]
pub async fn latest_about(
    conn: &mut Conn,
    account: Id<Account>,
    resource_type: &str,
    resource_id: &str,
    action: &str,
) -> StoreResult<Option<AuditEntry>> {
    sqlx::query_as::<_, EntryRow>(AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM audit_logs WHERE account_id = $1 AND resource_id = $2 \
         AND resource_type = $3 AND action = $4 ORDER BY occurred_at DESC, id DESC LIMIT 1"
    )))
    .bind(account.to_string())
    .bind(resource_id)
    .bind(resource_type)
    .bind(action)
    .fetch_optional(conn)
    .await?
    .map(TryInto::try_into)
    .transpose()
}

use spog_core::audit::{ActorType, AuditEntry, Outcome, Snapshot, Source};
use spog_core::model::Account;
use spog_core::{Id, Timestamp};
use sqlx::postgres::PgRow;
use sqlx::{AssertSqlSafe, Row};

use crate::error::Found;
use crate::{Conn, StoreError, StoreResult};

/// Every stored column, in the order [`EntryRow`] reads them.
pub(crate) const COLUMNS: &str = "id, seq, occurred_at, account_id, organization_id, actor_type, actor_id, \
     actor_email, actor_name, source, ip, user_agent, request_id, action, resource_type, resource_id, \
     resource_name, outcome, before_state, after_state, metadata, prev_hash, hash";

/// A stored entry as read, by column or (see [`super::walk`]) as a JSON array in
/// [`COLUMNS`] order.
#[derive(sqlx::FromRow, serde::Deserialize)]
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
}

impl EntryRow {
    /// Decodes a row of [`COLUMNS`] by position, unchecked: by name, sqlx searched for each
    /// column of each row and compared its type, which showed in walks along a chain. The
    /// columns are the schema's; a type that did not fit would fail to decode.
    pub(crate) fn from_pg(row: &PgRow) -> Result<Self, sqlx::Error> {
        Ok(Self {
            id: row.try_get_unchecked(0)?,
            seq: row.try_get_unchecked(1)?,
            occurred_at: row.try_get_unchecked(2)?,
            account_id: row.try_get_unchecked(3)?,
            organization_id: row.try_get_unchecked(4)?,
            actor_type: row.try_get_unchecked(5)?,
            actor_id: row.try_get_unchecked(6)?,
            actor_email: row.try_get_unchecked(7)?,
            actor_name: row.try_get_unchecked(8)?,
            source: row.try_get_unchecked(9)?,
            ip: row.try_get_unchecked(10)?,
            user_agent: row.try_get_unchecked(11)?,
            request_id: row.try_get_unchecked(12)?,
            action: row.try_get_unchecked(13)?,
            resource_type: row.try_get_unchecked(14)?,
            resource_id: row.try_get_unchecked(15)?,
            resource_name: row.try_get_unchecked(16)?,
            outcome: row.try_get_unchecked(17)?,
            before_state: row.try_get_unchecked(18)?,
            after_state: row.try_get_unchecked(19)?,
            metadata: row.try_get_unchecked(20)?,
            prev_hash: row.try_get_unchecked(21)?,
            hash: row.try_get_unchecked(22)?,
        })
    }
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
            prev_hash: row.prev_hash,
            hash: row.hash,
        })
    }
}

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

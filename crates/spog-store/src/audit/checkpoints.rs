//! Signed checkpoints of chain heads (SPEC 3.4). Signing happens in the server, which holds
//! the key; this module stores and reads what was signed.

use serde::Serialize;
use spog_core::model::Account;
use spog_core::{Id, Timestamp};
use utoipa::ToSchema;

use crate::{Conn, StoreResult};

#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct Checkpoint {
    pub id: String,
    pub account_id: String,
    pub seq: i64,
    pub head_hash: String,
    pub signed_at: Timestamp,
    /// Identifies the public key that verifies `signature`.
    pub key_id: String,
    /// Base64 Ed25519 signature of the checkpoint's canonical statement.
    pub signature: String,
}

type CheckpointRow = (String, String, i64, String, i64, String, String);

fn checkpoint(
    (id, account_id, seq, head_hash, signed_at, key_id, signature): CheckpointRow,
) -> Checkpoint {
    Checkpoint {
        id,
        account_id,
        seq,
        head_hash,
        signed_at: Timestamp::from_micros(signed_at),
        key_id,
        signature,
    }
}

/// Stores a checkpoint; one per (account, seq), so instances signing the same head at once
/// keep the first. Returns whether it was stored.
#[tracing::instrument(name = "audit::checkpoints::insert", skip_all, fields(checkpoint = %checkpoint.seq))]
pub async fn insert(conn: &mut Conn, checkpoint: &Checkpoint) -> StoreResult<bool> {
    let done = sqlx::query(
        "INSERT INTO audit_checkpoints (id, account_id, seq, head_hash, signed_at, key_id, signature) \
         VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (account_id, seq) DO NOTHING",
    )
    .bind(&checkpoint.id)
    .bind(&checkpoint.account_id)
    .bind(checkpoint.seq)
    .bind(&checkpoint.head_hash)
    .bind(checkpoint.signed_at.micros())
    .bind(&checkpoint.key_id)
    .bind(&checkpoint.signature)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

const SELECT: &str =
    "SELECT id, account_id, seq, head_hash, signed_at, key_id, signature FROM audit_checkpoints";

/// Newest first.
#[tracing::instrument(name = "audit::checkpoints::list", skip_all, fields(account = %account))]
pub async fn list(
    conn: &mut Conn,
    account: Id<Account>,
    limit: u32,
) -> StoreResult<Vec<Checkpoint>> {
    let rows: Vec<CheckpointRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "{SELECT} WHERE account_id = $1 ORDER BY seq DESC LIMIT $2"
    )))
    .bind(account.to_string())
    .bind(i64::from(limit))
    .fetch_all(conn)
    .await?;
    Ok(rows.into_iter().map(checkpoint).collect())
}

#[tracing::instrument(name = "audit::checkpoints::latest", skip_all, fields(account = %account))]
pub async fn latest(conn: &mut Conn, account: Id<Account>) -> StoreResult<Option<Checkpoint>> {
    Ok(list(conn, account, 1).await?.pop())
}

#[tracing::instrument(name = "audit::checkpoints::by_seq", skip_all, fields(account = %account))]
pub async fn by_seq(
    conn: &mut Conn,
    account: Id<Account>,
    seq: i64,
) -> StoreResult<Option<Checkpoint>> {
    let row: Option<CheckpointRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "{SELECT} WHERE account_id = $1 AND seq = $2"
    )))
    .bind(account.to_string())
    .bind(seq)
    .fetch_optional(conn)
    .await?;
    Ok(row.map(checkpoint))
}

/// Accounts whose chain head moved past their latest checkpoint: `(account, seq, hash)`.
#[tracing::instrument(name = "audit::checkpoints::heads_without_checkpoint", skip_all)]
pub async fn heads_without_checkpoint(conn: &mut Conn) -> StoreResult<Vec<(String, i64, String)>> {
    Ok(sqlx::query_as(
        "SELECT h.account_id, h.seq, h.hash FROM audit_heads h WHERE h.seq > 0 AND h.seq > \
         COALESCE((SELECT MAX(c.seq) FROM audit_checkpoints c WHERE c.account_id = h.account_id), 0) \
         ORDER BY h.account_id",
    )
    .fetch_all(conn)
    .await?)
}

pub fn account_id(text: &str) -> Option<Id<Account>> {
    text.parse().ok()
}

/// The checkpoints signed at a seq in `from..=to`, oldest first, at most `limit`.
#[tracing::instrument(name = "audit::checkpoints::in_range", skip_all, fields(account = %account))]
pub async fn in_range(
    conn: &mut Conn,
    account: Id<Account>,
    from: i64,
    to: i64,
    limit: u32,
) -> StoreResult<Vec<Checkpoint>> {
    let rows: Vec<CheckpointRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "{SELECT} WHERE account_id = $1 AND seq >= $2 AND seq <= $3 ORDER BY seq LIMIT $4"
    )))
    .bind(account.to_string())
    .bind(from)
    .bind(to)
    .bind(i64::from(limit))
    .fetch_all(conn)
    .await?;
    Ok(rows.into_iter().map(checkpoint).collect())
}

//! What may end a recording's life (SPEC 8.3): deletion, by hand or once past its account's
//! retention, which a legal hold blocks; and the account's recording settings.

use spog_core::model::Account;
use spog_core::recordings::RecordingSettings;
use spog_core::{Id, Timestamp};

use super::RecordingKind;
use crate::rows::id;
use crate::{Conn, Sql, StoreResult};

/// Deletes an ended recording that is not on legal hold; false when there is no such
/// recording (active, held, or deleted meanwhile, perhaps by another instance). Only the
/// caller that gets true deleted it, so only that one records the deletion.
#[tracing::instrument(name = "recordings::delete", skip_all, fields(kind = K::TABLE, account = %account, recording = %recording))]
pub async fn delete<K: RecordingKind>(
    conn: &mut Conn,
    account: Id<Account>,
    recording: Id<K>,
) -> StoreResult<bool> {
    let mut sql = Sql::new(&format!("DELETE FROM {} WHERE account_id = ", K::TABLE));
    sql.bind(account.to_string())
        .push(" AND id = ")
        .bind(recording.to_string())
        .push(" AND ended_at IS NOT NULL AND legal_hold = 0");
    Ok(sql.execute(conn).await?.rows_affected() == 1)
}

/// Puts a recording on legal hold with its reason (`Some`), or releases it (`None`).
#[tracing::instrument(name = "recordings::set_legal_hold", skip_all, fields(kind = K::TABLE, account = %account, recording = %recording))]
pub async fn set_legal_hold<K: RecordingKind>(
    conn: &mut Conn,
    account: Id<Account>,
    recording: Id<K>,
    reason: Option<&str>,
) -> StoreResult<()> {
    let mut sql = Sql::new(&format!("UPDATE {} SET legal_hold = ", K::TABLE));
    sql.bind(i64::from(reason.is_some()))
        .push(", legal_hold_reason = ")
        .bind(reason.map(str::to_owned))
        .push(" WHERE account_id = ")
        .bind(account.to_string())
        .push(" AND id = ")
        .bind(recording.to_string());
    sql.execute(conn).await?;
    Ok(())
}

/// Up to `limit` of the account's recordings that ended before `cutoff` and are not held,
/// oldest first.
#[tracing::instrument(name = "recordings::expired", skip_all, fields(kind = K::TABLE, account = %account))]
pub async fn expired<K: RecordingKind>(
    conn: &mut Conn,
    account: Id<Account>,
    cutoff: Timestamp,
    limit: u32,
) -> StoreResult<Vec<Id<K>>> {
    let mut sql = Sql::new(&format!("SELECT id FROM {} WHERE account_id = ", K::TABLE));
    sql.bind(account.to_string())
        .push(" AND ended_at IS NOT NULL AND ended_at < ")
        .bind(cutoff.micros())
        .push(" AND legal_hold = 0 ORDER BY ended_at LIMIT ")
        .bind(i64::from(limit));
    let rows: Vec<(String,)> = sql.fetch_all(conn).await?;
    rows.iter().map(|(recording,)| id(recording)).collect()
}

/// The account's recording settings (the defaults when it never set any).
#[tracing::instrument(name = "recordings::settings", skip_all, fields(account = %account))]
pub async fn settings(conn: &mut Conn, account: Id<Account>) -> StoreResult<RecordingSettings> {
    let mut sql = Sql::new("SELECT retention_days FROM recording_settings WHERE account_id = ");
    sql.bind(account.to_string());
    let row: Option<(Option<i64>,)> = sql.fetch_optional(conn).await?;
    Ok(RecordingSettings {
        account_id: account,
        retention_days: row.and_then(|(days,)| days),
    })
}

/// Sets the account's recording settings.
#[tracing::instrument(name = "recordings::set_settings", skip_all, fields(account = %settings.account_id))]
pub async fn set_settings(
    conn: &mut Conn,
    settings: &RecordingSettings,
    now: Timestamp,
) -> StoreResult<()> {
    let account = settings.account_id;
    let mut sql = Sql::new(
        "INSERT INTO recording_settings (account_id, retention_days, updated_at) VALUES (",
    );
    sql.bind(account.to_string())
        .push(", ")
        .bind(settings.retention_days)
        .push(", ")
        .bind(now.micros())
        .push(
            ") ON CONFLICT (account_id) DO UPDATE SET retention_days = excluded.retention_days, \
             updated_at = excluded.updated_at",
        );
    sql.execute(conn).await?;
    Ok(())
}

/// Accounts after `after` in id order, up to `limit`, with the retention each set (days;
/// None: the service's default).
#[tracing::instrument(name = "recordings::retention_by_account", skip_all)]
pub async fn retention_by_account(
    conn: &mut Conn,
    after: Option<Id<Account>>,
    limit: u32,
) -> StoreResult<Vec<(Id<Account>, Option<i64>)>> {
    let mut sql = Sql::new(
        "SELECT a.id, s.retention_days FROM accounts a \
         LEFT JOIN recording_settings s ON s.account_id = a.id WHERE a.id > ",
    );
    sql.bind(after.map(|a| a.to_string()).unwrap_or_default())
        .push(" ORDER BY a.id LIMIT ")
        .bind(i64::from(limit));
    let rows: Vec<(String, Option<i64>)> = sql.fetch_all(conn).await?;
    rows.iter()
        .map(|(account, days)| Ok((id(account)?, *days)))
        .collect()
}

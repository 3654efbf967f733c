//! Moving sealed recordings between storages (`spog recordings copy-to-storage`, SPEC 8.3):
//! which ended recordings a storage holds, and the conditional switch of a row to another.

use spog_core::Id;
use spog_core::model::Account;

use super::RecordingKind;
use crate::rows::id;
use crate::{Conn, Sql, StoreResult};

/// Up to `limit` ended recordings of any account kept in `storage` (None: ended before
/// recordings were sealed), after `after` in id order.
#[tracing::instrument(name = "recordings::ended_in", skip_all, fields(kind = K::TABLE))]
pub async fn ended_in<K: RecordingKind>(
    conn: &mut Conn,
    storage: Option<&str>,
    after: Option<Id<K>>,
    limit: u32,
) -> StoreResult<Vec<(Id<Account>, Id<K>)>> {
    let mut sql = Sql::new(&format!(
        "SELECT account_id, id FROM {} WHERE ended_at IS NOT NULL AND ",
        K::TABLE
    ));
    match storage {
        Some(storage) => sql.push("storage = ").bind(storage.to_owned()),
        None => sql.push("storage IS NULL"),
    };
    if let Some(after) = after {
        sql.push(" AND id > ").bind(after.to_string());
    }
    sql.push(" ORDER BY id LIMIT ").bind(i64::from(limit));
    let rows: Vec<(String, String)> = sql.fetch_all(conn).await?;
    rows.iter()
        .map(|(account, recording)| Ok((id(account)?, id(recording)?)))
        .collect()
}

/// Records that an ended recording's sealed object moved from storage `from` to `to`, shown
/// as `file_path`; false when the row is not in `from` (moved meanwhile, perhaps by another
/// run: only the caller that gets true moved it, so only that one records the move).
#[tracing::instrument(name = "recordings::move_storage", skip_all, fields(kind = K::TABLE, account = %account, recording = %recording))]
pub async fn move_storage<K: RecordingKind>(
    conn: &mut Conn,
    account: Id<Account>,
    recording: Id<K>,
    from: &str,
    to: &str,
    file_path: &str,
) -> StoreResult<bool> {
    let mut sql = Sql::new(&format!("UPDATE {} SET storage = ", K::TABLE));
    sql.bind(to.to_owned())
        .push(", file_path = ")
        .bind(file_path.to_owned())
        .push(" WHERE account_id = ")
        .bind(account.to_string())
        .push(" AND id = ")
        .bind(recording.to_string())
        .push(" AND ended_at IS NOT NULL AND storage = ")
        .bind(from.to_owned());
    Ok(sql.execute(conn).await?.rows_affected() == 1)
}

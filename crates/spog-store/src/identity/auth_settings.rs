//! An account's sign-in policy (SPEC 2.1 SSO-only accounts). No row: passwords allowed.

use spog_core::model::Account;
use spog_core::sso::AuthSettings;
use spog_core::{Id, Timestamp};

use crate::rows::{flag, from_json, json_text};
use crate::{Conn, StoreResult};

#[tracing::instrument(name = "identity::auth_settings::get", skip_all, fields(account = %account))]
pub async fn get(conn: &mut Conn, account: Id<Account>) -> StoreResult<AuthSettings> {
    let row: Option<(i64, String)> = sqlx::query_as(
        "SELECT sso_only, break_glass_user_ids FROM auth_settings WHERE account_id = $1",
    )
    .bind(account.to_string())
    .fetch_optional(conn)
    .await?;
    Ok(match row {
        Some((sso_only, users)) => AuthSettings {
            account_id: account,
            sso_only: flag(sso_only),
            break_glass_user_ids: from_json(&users)?,
        },
        None => AuthSettings {
            account_id: account,
            ..AuthSettings::default()
        },
    })
}

#[tracing::instrument(name = "identity::auth_settings::put", skip_all, fields(account = %settings.account_id))]
pub async fn put(conn: &mut Conn, settings: &AuthSettings, now: Timestamp) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO auth_settings (account_id, sso_only, break_glass_user_ids, updated_at) \
         VALUES ($1, $2, $3, $4) ON CONFLICT (account_id) DO UPDATE SET \
         sso_only = excluded.sso_only, break_glass_user_ids = excluded.break_glass_user_ids, \
         updated_at = excluded.updated_at",
    )
    .bind(settings.account_id.to_string())
    .bind(i64::from(settings.sso_only))
    .bind(json_text(&settings.break_glass_user_ids))
    .bind(now.micros())
    .execute(conn)
    .await?;
    Ok(())
}

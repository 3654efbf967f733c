//! Login sessions: a JWT names its session, so logging out (or disabling the user) ends it
//! at once even though the JWT itself has not expired.

use spog_core::model::{Account, User};
use spog_core::{Id, Timestamp};

use crate::error::Found;
use crate::rows::{flag, id};
use crate::{Conn, StoreResult};

pub struct Session;

#[tracing::instrument(name = "identity::sessions::create", skip_all, fields(account = %account, user = %user, session = %session))]
pub async fn create(
    conn: &mut Conn,
    account: Id<Account>,
    user: Id<User>,
    session: Id<Session>,
    now: Timestamp,
    expires_at: Timestamp,
) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO sessions (id, account_id, user_id, created_at, expires_at) VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(session.to_string())
    .bind(account.to_string())
    .bind(user.to_string())
    .bind(now.micros())
    .bind(expires_at.micros())
    .execute(conn)
    .await?;
    Ok(())
}

/// The live session's user, as authentication needs it.
pub struct SessionUser {
    pub account: Id<Account>,
    pub user: Id<User>,
    pub email: String,
    pub display_name: String,
}

/// The user of a session that is neither revoked nor expired, and whose user is active.
#[tracing::instrument(name = "identity::sessions::live_user", skip_all, fields(session = %session))]
pub async fn live_user(
    conn: &mut Conn,
    session: Id<Session>,
    now: Timestamp,
) -> StoreResult<SessionUser> {
    let (account, user, email, display_name, active): (String, String, String, String, i64) =
        sqlx::query_as(
            "SELECT s.account_id, u.id, u.email, u.display_name, u.active FROM sessions s \
         JOIN users u ON u.id = s.user_id \
         WHERE s.id = $1 AND s.revoked_at IS NULL AND s.expires_at > $2",
        )
        .bind(session.to_string())
        .bind(now.micros())
        .fetch_optional(conn)
        .await
        .found()?;
    if !flag(active) {
        return Err(crate::StoreError::NotFound);
    }
    Ok(SessionUser {
        account: id(&account)?,
        user: id(&user)?,
        email,
        display_name,
    })
}

#[tracing::instrument(name = "identity::sessions::revoke", skip_all, fields(account = %account, session = %session))]
pub async fn revoke(
    conn: &mut Conn,
    account: Id<Account>,
    session: Id<Session>,
    now: Timestamp,
) -> StoreResult<()> {
    sqlx::query("UPDATE sessions SET revoked_at = $3 WHERE account_id = $1 AND id = $2 AND revoked_at IS NULL")
        .bind(account.to_string())
        .bind(session.to_string())
        .bind(now.micros())
        .execute(conn)
        .await?;
    Ok(())
}

/// Ends every live session of a user (password change, deactivation); returns how many.
#[tracing::instrument(name = "identity::sessions::revoke_all", skip_all, fields(user = %user))]
pub async fn revoke_all(conn: &mut Conn, user: Id<User>, now: Timestamp) -> StoreResult<u64> {
    Ok(sqlx::query(
        "UPDATE sessions SET revoked_at = $2 \
         WHERE user_id = $1 AND revoked_at IS NULL AND expires_at > $2",
    )
    .bind(user.to_string())
    .bind(now.micros())
    .execute(conn)
    .await?
    .rows_affected())
}

/// Deletes sessions that expired before `before`; returns how many.
#[tracing::instrument(name = "identity::sessions::delete_expired", skip_all)]
pub async fn delete_expired(conn: &mut Conn, before: Timestamp) -> StoreResult<u64> {
    Ok(sqlx::query("DELETE FROM sessions WHERE expires_at < $1")
        .bind(before.micros())
        .execute(conn)
        .await?
        .rows_affected())
}

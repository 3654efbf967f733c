//! Login sessions: a JWT names its session, so logging out (or disabling the user) ends it
//! at once even though the JWT itself has not expired.

use spog_core::model::{Account, User};
use spog_core::{Id, Timestamp};

use crate::error::Found;
use crate::rows::{at, flag, id};
use crate::{Conn, StoreError, StoreResult};

pub struct Session;

/// Where a session was opened from, as the user sees it among their sessions.
#[derive(Clone, Debug, Default)]
pub struct Origin {
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    /// The identity provider the session was opened through; none for a password.
    pub provider_id: Option<String>,
}

/// A live session, as its user reviews it.
#[derive(Clone, Debug)]
pub struct LiveSession {
    pub id: Id<Session>,
    pub created_at: Timestamp,
    pub expires_at: Timestamp,
    pub origin: Origin,
}

/// The most sessions a user is shown; older ones still end with "sign out other sessions".
pub const MAX_LISTED: i64 = 200;

#[tracing::instrument(name = "identity::sessions::create", skip_all, fields(account = %account, user = %user, session = %session))]
pub async fn create(
    conn: &mut Conn,
    account: Id<Account>,
    user: Id<User>,
    session: Id<Session>,
    (now, expires_at): (Timestamp, Timestamp),
    origin: &Origin,
) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO sessions (id, account_id, user_id, created_at, expires_at, ip, user_agent, \
         provider_id) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(session.to_string())
    .bind(account.to_string())
    .bind(user.to_string())
    .bind(now.micros())
    .bind(expires_at.micros())
    .bind(origin.ip.as_deref())
    .bind(origin.user_agent.as_deref())
    .bind(origin.provider_id.as_deref())
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

/// Ends a live session of `user`; another user's, or one already ended, is not found.
#[tracing::instrument(name = "identity::sessions::revoke_own", skip_all, fields(account = %account, user = %user, session = %session))]
pub async fn revoke_own(
    conn: &mut Conn,
    account: Id<Account>,
    user: Id<User>,
    session: Id<Session>,
    now: Timestamp,
) -> StoreResult<()> {
    let done = sqlx::query(
        "UPDATE sessions SET revoked_at = $4 WHERE account_id = $1 AND user_id = $2 AND id = $3 \
         AND revoked_at IS NULL AND expires_at > $4",
    )
    .bind(account.to_string())
    .bind(user.to_string())
    .bind(session.to_string())
    .bind(now.micros())
    .execute(conn)
    .await?;
    if done.rows_affected() == 0 {
        return Err(StoreError::NotFound);
    }
    Ok(())
}

/// Ends every live session of a user but `kept` (password change, deactivation, "sign out
/// other sessions"); returns how many.
#[tracing::instrument(name = "identity::sessions::revoke_all", skip_all, fields(account = %account, user = %user))]
pub async fn revoke_all(
    conn: &mut Conn,
    account: Id<Account>,
    user: Id<User>,
    kept: Option<Id<Session>>,
    now: Timestamp,
) -> StoreResult<u64> {
    Ok(sqlx::query(
        "UPDATE sessions SET revoked_at = $3 \
         WHERE account_id = $1 AND user_id = $2 AND revoked_at IS NULL AND expires_at > $3 \
         AND id <> $4",
    )
    .bind(account.to_string())
    .bind(user.to_string())
    .bind(now.micros())
    // No session has an empty id: with none kept, every one ends.
    .bind(kept.map(|k| k.to_string()).unwrap_or_default())
    .execute(conn)
    .await?
    .rows_affected())
}

/// The user's live sessions, newest first (at most [`MAX_LISTED`]).
#[tracing::instrument(name = "identity::sessions::live_of", skip_all, fields(account = %account, user = %user))]
pub async fn live_of(
    conn: &mut Conn,
    account: Id<Account>,
    user: Id<User>,
    now: Timestamp,
) -> StoreResult<Vec<LiveSession>> {
    type Row = (
        String,
        i64,
        i64,
        Option<String>,
        Option<String>,
        Option<String>,
    );
    let rows: Vec<Row> = sqlx::query_as(
        "SELECT id, created_at, expires_at, ip, user_agent, provider_id FROM sessions \
         WHERE account_id = $1 AND user_id = $2 AND revoked_at IS NULL AND expires_at > $3 \
         ORDER BY created_at DESC, id DESC LIMIT $4",
    )
    .bind(account.to_string())
    .bind(user.to_string())
    .bind(now.micros())
    .bind(MAX_LISTED)
    .fetch_all(conn)
    .await?;
    rows.into_iter()
        .map(
            |(session, created_at, expires_at, ip, user_agent, provider_id)| {
                Ok(LiveSession {
                    id: id(&session)?,
                    created_at: at(created_at),
                    expires_at: at(expires_at),
                    origin: Origin {
                        ip,
                        user_agent,
                        provider_id,
                    },
                })
            },
        )
        .collect()
}

/// The identity provider a session of the account was opened through, if any.
#[tracing::instrument(name = "identity::sessions::provider_of", skip_all, fields(account = %account, session = %session))]
pub async fn provider_of(
    conn: &mut Conn,
    account: Id<Account>,
    session: Id<Session>,
) -> StoreResult<Option<String>> {
    let row: Option<(Option<String>,)> =
        sqlx::query_as("SELECT provider_id FROM sessions WHERE account_id = $1 AND id = $2")
            .bind(account.to_string())
            .bind(session.to_string())
            .fetch_optional(conn)
            .await?;
    Ok(row.and_then(|(provider,)| provider))
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

//! Sign-ins under way (SPEC 2.1): what the callback needs to finish one, kept in the
//! database so that any instance can finish a sign-in another started, and taken once.

use spog_core::model::Account;
use spog_core::sso::IdentityProvider;
use spog_core::{Id, Timestamp};

use crate::rows::{at, id};
use crate::{Conn, StoreResult};

/// One sign-in under way. `state_hash` and `browser_hash` are hashes: the values themselves
/// are only in the browser.
#[derive(Clone, Debug)]
pub struct PendingLogin {
    pub state_hash: String,
    pub account: Id<Account>,
    pub provider: Id<IdentityProvider>,
    pub browser_hash: String,
    pub nonce: String,
    pub code_verifier: String,
    pub next: String,
    pub created_at: Timestamp,
    pub expires_at: Timestamp,
}

#[tracing::instrument(name = "identity::sso_logins::insert", skip_all, fields(account = %login.account))]
pub async fn insert(conn: &mut Conn, login: &PendingLogin) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO sso_logins (state_hash, account_id, provider_id, browser_hash, nonce, \
         code_verifier, next, created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(&login.state_hash)
    .bind(login.account.to_string())
    .bind(login.provider.to_string())
    .bind(&login.browser_hash)
    .bind(&login.nonce)
    .bind(&login.code_verifier)
    .bind(&login.next)
    .bind(login.created_at.micros())
    .bind(login.expires_at.micros())
    .execute(conn)
    .await?;
    Ok(())
}

/// Takes the sign-in of `state_hash` out, whatever its age (the caller judges it): a state
/// is used once, even when it turns out expired or another browser's.
#[tracing::instrument(name = "identity::sso_logins::take", skip_all)]
pub async fn take(conn: &mut Conn, state_hash: &str) -> StoreResult<Option<PendingLogin>> {
    type Row = (String, String, String, String, String, String, i64, i64);
    let row: Option<Row> = sqlx::query_as(
        "DELETE FROM sso_logins WHERE state_hash = $1 RETURNING account_id, provider_id, \
         browser_hash, nonce, code_verifier, next, created_at, expires_at",
    )
    .bind(state_hash)
    .fetch_optional(conn)
    .await?;
    let Some((account, provider, browser_hash, nonce, code_verifier, next, created, expires)) = row
    else {
        return Ok(None);
    };
    Ok(Some(PendingLogin {
        state_hash: state_hash.to_owned(),
        account: id(&account)?,
        provider: id(&provider)?,
        browser_hash,
        nonce,
        code_verifier,
        next,
        created_at: at(created),
        expires_at: at(expires),
    }))
}

/// How many sign-ins at `provider` are under way.
#[tracing::instrument(name = "identity::sso_logins::pending", skip_all, fields(provider = %provider))]
pub async fn pending(conn: &mut Conn, provider: Id<IdentityProvider>) -> StoreResult<i64> {
    Ok(
        sqlx::query_scalar("SELECT COUNT(*) FROM sso_logins WHERE provider_id = $1")
            .bind(provider.to_string())
            .fetch_one(conn)
            .await?,
    )
}

/// Deletes sign-ins that expired before `now`; returns how many.
#[tracing::instrument(name = "identity::sso_logins::delete_expired", skip_all)]
pub async fn delete_expired(conn: &mut Conn, now: Timestamp) -> StoreResult<u64> {
    Ok(sqlx::query("DELETE FROM sso_logins WHERE expires_at < $1")
        .bind(now.micros())
        .execute(conn)
        .await?
        .rows_affected())
}

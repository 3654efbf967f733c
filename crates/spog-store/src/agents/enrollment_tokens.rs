//! One-time enrollment tokens: created by a `hosts.manage` caller, consumed by
//! `POST /agent/enroll` in the transaction that enrolls the host.

use spog_core::model::{Account, EnrollmentToken, EnrollmentTokenState, Host, Organization};
use spog_core::page::{Cursor, Page, key_text};
use spog_core::{Id, Timestamp};

use crate::error::Found;
use crate::rows::{at, id, opt_at, opt_id};
use crate::{Conn, Sql, StoreError, StoreResult};

const COLUMNS: &str = "id, organization_id, host_id, description, created_by, created_at, \
    expires_at, used_at, used_by_host_id, revoked_at";

#[derive(sqlx::FromRow)]
struct TokenRow {
    id: String,
    organization_id: String,
    host_id: Option<String>,
    description: Option<String>,
    created_by: Option<String>,
    created_at: i64,
    expires_at: i64,
    used_at: Option<i64>,
    used_by_host_id: Option<String>,
    revoked_at: Option<i64>,
}

impl TokenRow {
    fn into_token(self, now: Timestamp) -> StoreResult<EnrollmentToken> {
        let state = if self.used_at.is_some() {
            EnrollmentTokenState::Used
        } else if self.revoked_at.is_some() {
            EnrollmentTokenState::Revoked
        } else if self.expires_at <= now.micros() {
            EnrollmentTokenState::Expired
        } else {
            EnrollmentTokenState::Active
        };
        Ok(EnrollmentToken {
            id: id(&self.id)?,
            organization_id: id(&self.organization_id)?,
            host_id: opt_id(self.host_id.as_deref())?,
            description: self.description,
            expires_at: at(self.expires_at),
            created_at: at(self.created_at),
            created_by: self.created_by,
            used_at: opt_at(self.used_at),
            used_by_host_id: opt_id(self.used_by_host_id.as_deref())?,
            revoked_at: opt_at(self.revoked_at),
            state,
        })
    }
}

pub struct NewEnrollmentToken {
    pub organization: Id<Organization>,
    pub host: Option<Id<Host>>,
    pub description: Option<String>,
    /// SHA-256 of the secret token; the token itself is never stored.
    pub token_hash: String,
    /// The creating user's (or token's) id.
    pub created_by: Option<String>,
    pub expires_at: Timestamp,
}

pub async fn create(
    conn: &mut Conn,
    account: Id<Account>,
    new: NewEnrollmentToken,
    now: Timestamp,
) -> StoreResult<EnrollmentToken> {
    let token: Id<EnrollmentToken> = Id::new();
    sqlx::query(
        "INSERT INTO enrollment_tokens (id, account_id, organization_id, host_id, description, \
         token_hash, created_by, created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(token.to_string())
    .bind(account.to_string())
    .bind(new.organization.to_string())
    .bind(new.host.map(|h| h.to_string()))
    .bind(new.description)
    .bind(new.token_hash)
    .bind(new.created_by)
    .bind(now.micros())
    .bind(new.expires_at.micros())
    .execute(&mut *conn)
    .await?;
    get(conn, account, token, now).await
}

pub async fn get(
    conn: &mut Conn,
    account: Id<Account>,
    token: Id<EnrollmentToken>,
    now: Timestamp,
) -> StoreResult<EnrollmentToken> {
    let mut sql = Sql::new(&format!(
        "SELECT {COLUMNS} FROM enrollment_tokens WHERE account_id = "
    ));
    sql.bind(account.to_string())
        .push(" AND id = ")
        .bind(token.to_string());
    sql.fetch_optional::<TokenRow>(conn)
        .await
        .found()?
        .into_token(now)
}

/// Tokens of the account, newest first, optionally in one state (as of `now`).
pub async fn list(
    conn: &mut Conn,
    account: Id<Account>,
    state: Option<EnrollmentTokenState>,
    limit: u32,
    cursor: Option<&str>,
    now: Timestamp,
) -> StoreResult<Page<EnrollmentToken>> {
    let state_text = state.map(EnrollmentTokenState::as_str).unwrap_or_default();
    let scope = Cursor::scope(&[&account.to_string(), "enrollment_tokens", state_text]);
    let after = scope.decode(cursor)?;
    let mut sql = Sql::new(&format!(
        "SELECT {COLUMNS} FROM enrollment_tokens WHERE account_id = "
    ));
    sql.bind(account.to_string());
    match state {
        None => {}
        Some(EnrollmentTokenState::Used) => {
            sql.push(" AND used_at IS NOT NULL");
        }
        Some(EnrollmentTokenState::Revoked) => {
            sql.push(" AND used_at IS NULL AND revoked_at IS NOT NULL");
        }
        Some(EnrollmentTokenState::Expired) => {
            sql.push(" AND used_at IS NULL AND revoked_at IS NULL AND expires_at <= ")
                .bind(now.micros());
        }
        Some(EnrollmentTokenState::Active) => {
            sql.push(" AND used_at IS NULL AND revoked_at IS NULL AND expires_at > ")
                .bind(now.micros());
        }
    }
    if let Some(key) = after {
        sql.push(" AND id < ").bind(key_text(&key, 0)?);
    }
    sql.push(" ORDER BY id DESC LIMIT ")
        .bind(i64::from(limit) + 1);
    let tokens = sql
        .fetch_all::<TokenRow>(conn)
        .await?
        .into_iter()
        .map(|row| row.into_token(now))
        .collect::<StoreResult<Vec<_>>>()?;
    Ok(Page::from_rows(tokens, limit, &scope, |t| {
        vec![t.id.to_string().into()]
    }))
}

/// Revokes a token not yet used (revoking twice is harmless); a used token is a conflict.
pub async fn revoke(
    conn: &mut Conn,
    account: Id<Account>,
    token: Id<EnrollmentToken>,
    now: Timestamp,
) -> StoreResult<EnrollmentToken> {
    let done = sqlx::query(
        "UPDATE enrollment_tokens SET revoked_at = COALESCE(revoked_at, $3) \
         WHERE account_id = $1 AND id = $2 AND used_at IS NULL",
    )
    .bind(account.to_string())
    .bind(token.to_string())
    .bind(now.micros())
    .execute(&mut *conn)
    .await?;
    let found = get(conn, account, token, now).await?;
    if done.rows_affected() == 0 {
        return Err(StoreError::Conflict(
            "the enrollment token was used; revoke the host's agent instead".to_owned(),
        ));
    }
    Ok(found)
}

/// A token taken for one enrollment.
pub struct Consumed {
    pub account: Id<Account>,
    pub token: EnrollmentToken,
}

/// Takes the active token with this hash for one enrollment, or `None` (unknown, used,
/// expired or revoked). Of transactions taking the same token at once, exactly one gets it:
/// the others wait on its row (PostgreSQL) or its write lock (SQLite) and find it used.
pub async fn consume(
    conn: &mut Conn,
    token_hash: &str,
    now: Timestamp,
) -> StoreResult<Option<Consumed>> {
    let mut sql = Sql::new("UPDATE enrollment_tokens SET used_at = ");
    sql.bind(now.micros())
        .push(" WHERE token_hash = ")
        .bind(token_hash.to_owned())
        .push(" AND used_at IS NULL AND revoked_at IS NULL AND expires_at > ")
        .bind(now.micros())
        .push(&format!(" RETURNING account_id, {COLUMNS}"));
    let Some(row) = sql.fetch_optional::<ConsumedRow>(conn).await? else {
        return Ok(None);
    };
    Ok(Some(Consumed {
        account: id(&row.account_id)?,
        token: row.token.into_token(now)?,
    }))
}

#[derive(sqlx::FromRow)]
struct ConsumedRow {
    account_id: String,
    #[sqlx(flatten)]
    token: TokenRow,
}

/// Notes which host a consumed token enrolled.
pub async fn used_by(
    conn: &mut Conn,
    token: Id<EnrollmentToken>,
    host: Id<Host>,
) -> StoreResult<()> {
    sqlx::query("UPDATE enrollment_tokens SET used_by_host_id = $2 WHERE id = $1")
        .bind(token.to_string())
        .bind(host.to_string())
        .execute(conn)
        .await?;
    Ok(())
}

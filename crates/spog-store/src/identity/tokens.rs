use spog_core::audit::ActorType;
use spog_core::model::{Account, ApiToken, User};
use spog_core::page::{Cursor, Page, key_text};
use spog_core::{Id, PermissionSet, Timestamp};

use crate::error::Found;
use crate::identity::roles::{parse_permissions, permissions_text};
use crate::rows::{at, id, opt_at, opt_id};
use crate::{Conn, Sql, StoreError, StoreResult};

const COLUMNS: &str = "id, name, prefix, actor_type, permissions, user_id, created_by, created_at, expires_at, revoked_at, last_used_at";

#[derive(sqlx::FromRow)]
struct TokenRow {
    id: String,
    name: String,
    prefix: String,
    actor_type: String,
    permissions: String,
    user_id: Option<String>,
    created_by: Option<String>,
    created_at: i64,
    expires_at: Option<i64>,
    revoked_at: Option<i64>,
    last_used_at: Option<i64>,
}

impl TryFrom<TokenRow> for ApiToken {
    type Error = StoreError;
    fn try_from(row: TokenRow) -> StoreResult<Self> {
        Ok(ApiToken {
            id: id(&row.id)?,
            name: row.name,
            prefix: row.prefix,
            actor_type: actor_type(&row.actor_type)?,
            permissions: parse_permissions(&row.permissions)?,
            user_id: opt_id(row.user_id.as_deref())?,
            created_by: opt_id(row.created_by.as_deref())?,
            created_at: at(row.created_at),
            expires_at: opt_at(row.expires_at),
            revoked_at: opt_at(row.revoked_at),
            last_used_at: opt_at(row.last_used_at),
        })
    }
}

fn actor_type(text: &str) -> StoreResult<ActorType> {
    ActorType::parse(text)
        .ok_or_else(|| StoreError::Corrupt(format!("unknown actor type `{text}`")))
}

pub struct NewToken {
    pub name: String,
    /// SHA-256 of the secret token; the token itself is never stored.
    pub token_hash: String,
    pub prefix: String,
    pub actor_type: ActorType,
    pub permissions: PermissionSet,
    pub user_id: Option<Id<User>>,
    pub created_by: Option<Id<User>>,
    pub expires_at: Option<Timestamp>,
}

#[tracing::instrument(name = "identity::tokens::create", skip_all, fields(account = %account))]
pub async fn create(
    conn: &mut Conn,
    account: Id<Account>,
    new: NewToken,
    now: Timestamp,
) -> StoreResult<ApiToken> {
    let token: Id<ApiToken> = Id::new();
    sqlx::query(
        "INSERT INTO api_tokens (id, account_id, name, token_hash, prefix, actor_type, permissions, user_id, created_by, created_at, expires_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
    )
    .bind(token.to_string())
    .bind(account.to_string())
    .bind(&new.name)
    .bind(&new.token_hash)
    .bind(&new.prefix)
    .bind(new.actor_type.as_str())
    .bind(permissions_text(new.permissions))
    .bind(new.user_id.map(|u| u.to_string()))
    .bind(new.created_by.map(|u| u.to_string()))
    .bind(now.micros())
    .bind(new.expires_at.map(Timestamp::micros))
    .execute(&mut *conn)
    .await?;
    get(conn, account, token).await
}

#[tracing::instrument(name = "identity::tokens::get", skip_all, fields(account = %account, token = %token))]
pub async fn get(
    conn: &mut Conn,
    account: Id<Account>,
    token: Id<ApiToken>,
) -> StoreResult<ApiToken> {
    let mut sql = Sql::new(&format!(
        "SELECT {COLUMNS} FROM api_tokens WHERE account_id = "
    ));
    sql.bind(account.to_string())
        .push(" AND id = ")
        .bind(token.to_string());
    sql.fetch_optional::<TokenRow>(conn)
        .await
        .found()?
        .try_into()
}

/// Tokens of the account (or only those acting as `acting_as`), newest first.
#[tracing::instrument(name = "identity::tokens::list", skip_all, fields(account = %account))]
pub async fn list(
    conn: &mut Conn,
    account: Id<Account>,
    acting_as: Option<Id<User>>,
    limit: u32,
    cursor: Option<&str>,
) -> StoreResult<Page<ApiToken>> {
    let acting_as = acting_as.map(|u| u.to_string());
    let account_text = account.to_string();
    let mut parts = vec![account_text.as_str(), "api_tokens"];
    parts.extend(acting_as.as_deref());
    let scope = Cursor::scope(&parts);
    let after = scope.decode(cursor)?;
    let mut sql = Sql::new(&format!(
        "SELECT {COLUMNS} FROM api_tokens WHERE account_id = "
    ));
    sql.bind(account.to_string());
    if let Some(user) = acting_as {
        sql.push(" AND user_id = ").bind(user);
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
        .map(ApiToken::try_from)
        .collect::<StoreResult<Vec<_>>>()?;
    Ok(Page::from_rows(tokens, limit, &scope, |t| {
        vec![t.id.to_string().into()]
    }))
}

#[tracing::instrument(name = "identity::tokens::revoke", skip_all, fields(account = %account, token = %token))]
pub async fn revoke(
    conn: &mut Conn,
    account: Id<Account>,
    token: Id<ApiToken>,
    now: Timestamp,
) -> StoreResult<ApiToken> {
    let done = sqlx::query(
        "UPDATE api_tokens SET revoked_at = COALESCE(revoked_at, $3) WHERE account_id = $1 AND id = $2",
    )
    .bind(account.to_string())
    .bind(token.to_string())
    .bind(now.micros())
    .execute(&mut *conn)
    .await?;
    if done.rows_affected() == 0 {
        return Err(StoreError::NotFound);
    }
    get(conn, account, token).await
}

/// Revokes every live `user` token acting as `user` (password change, deactivation);
/// returns how many.
#[tracing::instrument(name = "identity::tokens::revoke_acting_as", skip_all, fields(account = %account, user = %user))]
pub async fn revoke_acting_as(
    conn: &mut Conn,
    account: Id<Account>,
    user: Id<User>,
    now: Timestamp,
) -> StoreResult<u64> {
    Ok(sqlx::query(
        "UPDATE api_tokens SET revoked_at = $3 WHERE account_id = $1 AND user_id = $2 \
         AND revoked_at IS NULL AND (expires_at IS NULL OR expires_at > $3)",
    )
    .bind(account.to_string())
    .bind(user.to_string())
    .bind(now.micros())
    .execute(conn)
    .await?
    .rows_affected())
}

/// What authenticating with a token needs, found by the token's hash.
pub struct TokenCredential {
    pub account: Id<Account>,
    pub token: ApiToken,
}

#[tracing::instrument(name = "identity::tokens::by_hash", skip_all)]
pub async fn by_hash(conn: &mut Conn, token_hash: &str) -> StoreResult<TokenCredential> {
    let mut sql = Sql::new(&format!(
        "SELECT account_id, {COLUMNS} FROM api_tokens WHERE token_hash = "
    ));
    sql.bind(token_hash.to_owned());
    let row = sql.fetch_optional::<AccountTokenRow>(conn).await.found()?;
    Ok(TokenCredential {
        account: id(&row.account_id)?,
        token: row.token.try_into()?,
    })
}

#[derive(sqlx::FromRow)]
struct AccountTokenRow {
    account_id: String,
    #[sqlx(flatten)]
    token: TokenRow,
}

/// Records use at most once a minute per token, so that authenticating stays a read.
#[tracing::instrument(name = "identity::tokens::touch", skip_all, fields(token = %token))]
pub async fn touch(conn: &mut Conn, token: Id<ApiToken>, now: Timestamp) -> StoreResult<()> {
    sqlx::query(
        "UPDATE api_tokens SET last_used_at = $2 WHERE id = $1 AND (last_used_at IS NULL OR last_used_at < $3)",
    )
    .bind(token.to_string())
    .bind(now.micros())
    .bind(now.micros() - 60_000_000)
    .execute(conn)
    .await?;
    Ok(())
}

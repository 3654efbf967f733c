//! An account's OpenID Connect identity providers (SPEC 2.1). The client secret is stored
//! sealed by the server; this module only keeps the ciphertext.

use spog_core::model::Account;
use spog_core::sso::{Discovery, IdentityProvider, MAX_PROVIDERS, ProviderSettings};
use spog_core::{Id, Timestamp};
use sqlx::AssertSqlSafe;

use crate::error::Found;
use crate::rows::{at, from_json, id, json_text};
use crate::{Conn, StoreError, StoreResult};

const DUPLICATE: &str = "an identity provider with this name already exists";
const COLUMNS: &str =
    "id, account_id, settings, client_secret_ciphertext, discovery, created_at, updated_at";

/// A provider as stored: its settings, discovery and sealed secret.
#[derive(Clone, Debug)]
pub struct StoredProvider {
    pub id: Id<IdentityProvider>,
    pub account: Id<Account>,
    pub settings: ProviderSettings,
    pub client_secret_ciphertext: Option<String>,
    pub discovery: Discovery,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

#[derive(sqlx::FromRow)]
struct Row {
    id: String,
    account_id: String,
    settings: String,
    client_secret_ciphertext: Option<String>,
    discovery: String,
    created_at: i64,
    updated_at: i64,
}

impl TryFrom<Row> for StoredProvider {
    type Error = StoreError;
    fn try_from(row: Row) -> StoreResult<Self> {
        Ok(StoredProvider {
            id: id(&row.id)?,
            account: id(&row.account_id)?,
            settings: from_json(&row.settings)?,
            client_secret_ciphertext: row.client_secret_ciphertext,
            discovery: from_json(&row.discovery)?,
            created_at: at(row.created_at),
            updated_at: at(row.updated_at),
        })
    }
}

#[tracing::instrument(name = "identity::providers::create", skip_all, fields(account = %provider.account))]
pub async fn create(conn: &mut Conn, provider: &StoredProvider) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO identity_providers (id, account_id, name, enabled, show_on_login, settings, \
         client_secret_ciphertext, discovery, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
    )
    .bind(provider.id.to_string())
    .bind(provider.account.to_string())
    .bind(&provider.settings.name)
    .bind(i64::from(provider.settings.enabled))
    .bind(i64::from(provider.settings.show_on_login))
    .bind(json_text(&provider.settings))
    .bind(provider.client_secret_ciphertext.as_deref())
    .bind(json_text(&provider.discovery))
    .bind(provider.created_at.micros())
    .bind(provider.updated_at.micros())
    .execute(conn)
    .await
    .map_err(|e| StoreError::on_unique(e, DUPLICATE))?;
    Ok(())
}

/// Replaces everything but the id, account and creation time.
#[tracing::instrument(name = "identity::providers::update", skip_all, fields(account = %provider.account, provider = %provider.id))]
pub async fn update(conn: &mut Conn, provider: &StoredProvider) -> StoreResult<()> {
    let done = sqlx::query(
        "UPDATE identity_providers SET name = $3, enabled = $4, show_on_login = $5, settings = $6, \
         client_secret_ciphertext = $7, discovery = $8, updated_at = $9 \
         WHERE account_id = $1 AND id = $2",
    )
    .bind(provider.account.to_string())
    .bind(provider.id.to_string())
    .bind(&provider.settings.name)
    .bind(i64::from(provider.settings.enabled))
    .bind(i64::from(provider.settings.show_on_login))
    .bind(json_text(&provider.settings))
    .bind(provider.client_secret_ciphertext.as_deref())
    .bind(json_text(&provider.discovery))
    .bind(provider.updated_at.micros())
    .execute(conn)
    .await
    .map_err(|e| StoreError::on_unique(e, DUPLICATE))?;
    if done.rows_affected() == 0 {
        return Err(StoreError::NotFound);
    }
    Ok(())
}

#[tracing::instrument(name = "identity::providers::get", skip_all, fields(account = %account, provider = %provider))]
pub async fn get(
    conn: &mut Conn,
    account: Id<Account>,
    provider: Id<IdentityProvider>,
) -> StoreResult<StoredProvider> {
    sqlx::query_as::<_, Row>(AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM identity_providers WHERE account_id = $1 AND id = $2"
    )))
    .bind(account.to_string())
    .bind(provider.to_string())
    .fetch_optional(conn)
    .await
    .found()?
    .try_into()
}

/// A provider by its id alone: a sign-in starts before anyone is known, and the provider
/// names the account it signs into.
#[tracing::instrument(name = "identity::providers::for_sign_in", skip_all, fields(provider = %provider))]
pub async fn for_sign_in(
    conn: &mut Conn,
    provider: Id<IdentityProvider>,
) -> StoreResult<StoredProvider> {
    sqlx::query_as::<_, Row>(AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM identity_providers WHERE id = $1"
    )))
    .bind(provider.to_string())
    .fetch_optional(conn)
    .await
    .found()?
    .try_into()
}

/// The account's providers by name (at most [`MAX_PROVIDERS`]).
#[tracing::instrument(name = "identity::providers::list", skip_all, fields(account = %account))]
pub async fn list(conn: &mut Conn, account: Id<Account>) -> StoreResult<Vec<StoredProvider>> {
    sqlx::query_as::<_, Row>(AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM identity_providers WHERE account_id = $1 ORDER BY name LIMIT $2"
    )))
    .bind(account.to_string())
    .bind(MAX_PROVIDERS as i64)
    .fetch_all(conn)
    .await?
    .into_iter()
    .map(StoredProvider::try_from)
    .collect()
}

/// How many providers the account has, and how many of them are enabled.
#[tracing::instrument(name = "identity::providers::count", skip_all, fields(account = %account))]
pub async fn count(conn: &mut Conn, account: Id<Account>) -> StoreResult<(i64, i64)> {
    let (all, enabled): (i64, i64) = sqlx::query_as(
        "SELECT COUNT(*), COUNT(CASE WHEN enabled = 1 THEN 1 END) FROM identity_providers \
         WHERE account_id = $1",
    )
    .bind(account.to_string())
    .fetch_one(conn)
    .await?;
    Ok((all, enabled))
}

/// The buttons of the login page: `(id, name)` of every enabled provider shown there.
#[tracing::instrument(name = "identity::providers::on_login_page", skip_all)]
pub async fn on_login_page(conn: &mut Conn) -> StoreResult<Vec<(String, String)>> {
    Ok(sqlx::query_as(
        "SELECT id, name FROM identity_providers WHERE enabled = 1 AND show_on_login = 1 \
         ORDER BY name, id LIMIT $1",
    )
    .bind(MAX_PROVIDERS as i64)
    .fetch_all(conn)
    .await?)
}

/// Deletes the provider and unlinks its identities (their users stay); returns how many
/// identities were unlinked.
#[tracing::instrument(name = "identity::providers::delete", skip_all, fields(account = %account, provider = %provider))]
pub async fn delete(
    conn: &mut Conn,
    account: Id<Account>,
    provider: Id<IdentityProvider>,
) -> StoreResult<u64> {
    let unlinked =
        sqlx::query("DELETE FROM user_identities WHERE account_id = $1 AND provider = $2")
            .bind(account.to_string())
            .bind(provider.to_string())
            .execute(&mut *conn)
            .await?
            .rows_affected();
    sqlx::query("DELETE FROM sso_logins WHERE account_id = $1 AND provider_id = $2")
        .bind(account.to_string())
        .bind(provider.to_string())
        .execute(&mut *conn)
        .await?;
    let done = sqlx::query("DELETE FROM identity_providers WHERE account_id = $1 AND id = $2")
        .bind(account.to_string())
        .bind(provider.to_string())
        .execute(conn)
        .await?;
    if done.rows_affected() == 0 {
        return Err(StoreError::NotFound);
    }
    Ok(unlinked)
}

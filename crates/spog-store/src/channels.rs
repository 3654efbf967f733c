//! Notification channels (SPEC 7.1). Secrets and write-only values (the URL, header values)
//! arrive here already sealed with the server key, one sealed value per field, each bound to
//! its row and field; `config` keeps the rest (the URL reduced to its origin). The store never
//! sees them in clear, and reads say only which are set. Rows written before values were
//! bound (`secrets_bound = 0`: URL and headers in `config` in clear, secrets sealed unbound)
//! are re-sealed by the server's start-up pass.

use std::collections::BTreeMap;

use spog_core::channels::{Channel, ChannelConfig};
use spog_core::delivery::TargetKind;
use spog_core::model::{Account, Organization};
use spog_core::page::Page;
use spog_core::validate::Name;
use spog_core::{Id, Timestamp};

use crate::by_organization::{self, Table};
use crate::rows::{at, flag, from_json, id, json_text};
use crate::{Conn, Sql, StoreError, StoreResult};

const COLUMNS: &str = "id, account_id, organization_id, name, channel_type, config, secrets_ciphertext, enabled, created_at, updated_at, secrets_bound";
const TABLE: Table = Table {
    name: "notification_channels",
    columns: COLUMNS,
    cursor_scope: "channels",
};
const DUPLICATE: &str = "a notification channel with this name already exists in the organization";

/// Sealed secrets by field name.
pub type SealedSecrets = BTreeMap<String, String>;

#[derive(sqlx::FromRow)]
struct ChannelRow {
    id: String,
    account_id: String,
    organization_id: String,
    name: String,
    channel_type: String,
    config: String,
    secrets_ciphertext: Option<String>,
    enabled: i64,
    created_at: i64,
    updated_at: i64,
    secrets_bound: i64,
}

/// A channel with its typed configuration and sealed secrets: what sending needs.
#[derive(Clone, Debug)]
pub struct StoredChannel {
    pub channel: Channel,
    pub account: Id<Account>,
    /// Without its write-only values when `bound`; whole on rows written before.
    pub config: ChannelConfig,
    pub sealed: SealedSecrets,
    /// Whether every secret and write-only value is sealed and bound to this row.
    pub bound: bool,
}

impl ChannelRow {
    fn into_stored(self) -> StoreResult<StoredChannel> {
        let config: ChannelConfig = from_json(&self.config)?;
        if config.channel_type().as_str() != self.channel_type {
            return Err(StoreError::Corrupt(format!(
                "channel {}: type and config disagree",
                self.id
            )));
        }
        let sealed: SealedSecrets = match &self.secrets_ciphertext {
            Some(text) => from_json(text)?,
            None => SealedSecrets::new(),
        };
        // The public view only needs to know which secrets are set.
        let present = sealed.keys().map(|k| (k.clone(), String::new())).collect();
        let channel = Channel {
            id: id(&self.id)?,
            organization_id: id(&self.organization_id)?,
            name: self.name,
            channel_type: config.channel_type(),
            config: config.public(&present),
            enabled: flag(self.enabled),
            created_at: at(self.created_at),
            updated_at: at(self.updated_at),
        };
        Ok(StoredChannel {
            channel,
            account: id(&self.account_id)?,
            config,
            sealed,
            bound: flag(self.secrets_bound),
        })
    }
}

/// The fields a create or update writes.
pub struct ChannelFields {
    pub name: Name,
    /// Without its write-only values ([`ChannelConfig::without_write_only`]).
    pub config: ChannelConfig,
    /// Secrets and write-only values, each sealed and bound to the row and field.
    pub sealed: SealedSecrets,
    pub enabled: bool,
}

fn sealed_json(sealed: &SealedSecrets) -> Option<String> {
    (!sealed.is_empty()).then(|| json_text(sealed))
}

/// Creates the channel `channel` (its id chosen by the caller, who binds the sealed values
/// to it).
#[tracing::instrument(name = "channels::create", skip_all, fields(account = %account, organization = %organization, channel = %channel))]
pub async fn create(
    conn: &mut Conn,
    account: Id<Account>,
    organization: Id<Organization>,
    channel: Id<Channel>,
    fields: &ChannelFields,
    now: Timestamp,
) -> StoreResult<Channel> {
    sqlx::query(
        "INSERT INTO notification_channels (id, account_id, organization_id, name, channel_type, config, \
         secrets_ciphertext, enabled, created_at, updated_at, secrets_bound) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9, 1)",
    )
    .bind(channel.to_string())
    .bind(account.to_string())
    .bind(organization.to_string())
    .bind(fields.name.as_str())
    .bind(fields.config.channel_type().as_str())
    .bind(json_text(&fields.config))
    .bind(sealed_json(&fields.sealed))
    .bind(i64::from(fields.enabled))
    .bind(now.micros())
    .execute(&mut *conn)
    .await
    .map_err(|e| StoreError::on_unique(e, DUPLICATE))?;
    get(conn, account, channel).await
}

#[tracing::instrument(name = "channels::get", skip_all, fields(account = %account, channel = %channel))]
pub async fn get(
    conn: &mut Conn,
    account: Id<Account>,
    channel: Id<Channel>,
) -> StoreResult<Channel> {
    Ok(get_stored(conn, account, channel).await?.channel)
}

/// The channel with its configuration and sealed secrets.
#[tracing::instrument(name = "channels::get_stored", skip_all, fields(account = %account, channel = %channel))]
pub async fn get_stored(
    conn: &mut Conn,
    account: Id<Account>,
    channel: Id<Channel>,
) -> StoreResult<StoredChannel> {
    by_organization::one::<ChannelRow>(conn, &TABLE, account, channel.to_string())
        .await?
        .into_stored()
}

#[tracing::instrument(name = "channels::list", skip_all, fields(account = %account, organization = ?organization))]
pub async fn list(
    conn: &mut Conn,
    account: Id<Account>,
    organization: Option<Id<Organization>>,
    limit: u32,
    cursor: Option<&str>,
) -> StoreResult<Page<Channel>> {
    let page = by_organization::page(
        conn,
        &TABLE,
        account,
        organization,
        limit,
        cursor,
        |row: ChannelRow| row.into_stored().map(|s| s.channel),
        |c| c.id.to_string(),
    );
    page.await
}

#[tracing::instrument(name = "channels::update", skip_all, fields(account = %account, channel = %channel))]
pub async fn update(
    conn: &mut Conn,
    account: Id<Account>,
    channel: Id<Channel>,
    fields: &ChannelFields,
    now: Timestamp,
) -> StoreResult<Channel> {
    let done = sqlx::query(
        "UPDATE notification_channels SET name = $3, channel_type = $4, config = $5, secrets_ciphertext = $6, \
         enabled = $7, updated_at = $8, secrets_bound = 1 WHERE account_id = $1 AND id = $2",
    )
    .bind(account.to_string())
    .bind(channel.to_string())
    .bind(fields.name.as_str())
    .bind(fields.config.channel_type().as_str())
    .bind(json_text(&fields.config))
    .bind(sealed_json(&fields.sealed))
    .bind(i64::from(fields.enabled))
    .bind(now.micros())
    .execute(&mut *conn)
    .await
    .map_err(|e| StoreError::on_unique(e, DUPLICATE))?;
    if done.rows_affected() == 0 {
        return Err(StoreError::NotFound);
    }
    get(conn, account, channel).await
}

/// Deletes the channel, its delivery history, and its links from alert rules. Returns how
/// many deliveries went.
#[tracing::instrument(name = "channels::delete", skip_all, fields(account = %account, channel = %channel))]
pub async fn delete(
    conn: &mut Conn,
    account: Id<Account>,
    channel: Id<Channel>,
) -> StoreResult<u64> {
    let text = channel.to_string();
    let deliveries =
        crate::deliveries::delete_for_target(conn, account, TargetKind::Channel, &text).await?;
    let linked: Vec<(String, String)> = sqlx::query_as(
        "SELECT id, channel_ids FROM alert_rules WHERE account_id = $1 AND channel_ids LIKE $2",
    )
    .bind(account.to_string())
    .bind(format!("%\"{text}\"%"))
    .fetch_all(&mut *conn)
    .await?;
    for (rule, channel_ids) in linked {
        let mut ids: Vec<String> = from_json(&channel_ids)?;
        ids.retain(|c| c != &text);
        sqlx::query("UPDATE alert_rules SET channel_ids = $2 WHERE id = $1")
            .bind(rule)
            .bind(json_text(&ids))
            .execute(&mut *conn)
            .await?;
    }
    let done = sqlx::query("DELETE FROM notification_channels WHERE account_id = $1 AND id = $2")
        .bind(account.to_string())
        .bind(&text)
        .execute(conn)
        .await?;
    if done.rows_affected() == 0 {
        return Err(StoreError::NotFound);
    }
    Ok(deliveries)
}

/// Of `ids`, the channels of `organization` (any state), in no particular order.
#[tracing::instrument(name = "channels::of_organization", skip_all, fields(account = %account, organization = %organization))]
pub async fn of_organization(
    conn: &mut Conn,
    account: Id<Account>,
    organization: Id<Organization>,
    ids: &[String],
    enabled_only: bool,
) -> StoreResult<Vec<String>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let mut sql = Sql::new("SELECT id FROM notification_channels WHERE account_id = ");
    sql.bind(account.to_string())
        .push(" AND organization_id = ")
        .bind(organization.to_string());
    if enabled_only {
        sql.push(" AND enabled = 1");
    }
    sql.push(" AND id IN ");
    sql.bind_list(ids.iter().cloned());
    sql.push(" ORDER BY id");
    let rows: Vec<(String,)> = sql.fetch_all(conn).await?;
    Ok(rows.into_iter().map(|(id,)| id).collect())
}

/// Channels by id, across accounts (the engine serves every account); ids that are gone are
/// simply absent.
#[tracing::instrument(name = "channels::targets", skip_all)]
pub async fn targets(conn: &mut Conn, ids: &[String]) -> StoreResult<Vec<StoredChannel>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let mut sql = Sql::new(&format!(
        "SELECT {COLUMNS} FROM notification_channels WHERE id IN "
    ));
    sql.bind_list(ids.iter().cloned());
    sql.fetch_all::<ChannelRow>(conn)
        .await?
        .into_iter()
        .map(ChannelRow::into_stored)
        .collect()
}

/// Up to `limit` channels (any account) after `after` whose values are not yet bound to
/// their row, for the start-up pass that re-seals them.
#[tracing::instrument(name = "channels::unbound", skip_all)]
pub async fn unbound(conn: &mut Conn, after: &str, limit: u32) -> StoreResult<Vec<StoredChannel>> {
    let mut sql = Sql::new(&format!(
        "SELECT {COLUMNS} FROM notification_channels WHERE secrets_bound = 0 AND id > "
    ));
    sql.bind(after.to_owned())
        .push(" ORDER BY id LIMIT ")
        .bind(i64::from(limit));
    sql.fetch_all::<ChannelRow>(conn)
        .await?
        .into_iter()
        .map(ChannelRow::into_stored)
        .collect()
}

/// Stores the re-sealed form of a channel not yet bound; `false` (nothing written) when
/// another instance bound it first.
#[tracing::instrument(name = "channels::bind_secrets", skip_all, fields(channel = %channel))]
pub async fn bind_secrets(
    conn: &mut Conn,
    channel: Id<Channel>,
    config: &ChannelConfig,
    sealed: &SealedSecrets,
) -> StoreResult<bool> {
    let done = sqlx::query(
        "UPDATE notification_channels SET config = $2, secrets_ciphertext = $3, secrets_bound = 1 \
         WHERE id = $1 AND secrets_bound = 0",
    )
    .bind(channel.to_string())
    .bind(json_text(config))
    .bind(sealed_json(sealed))
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

//! Webhook subscriptions (SPEC 5.1). The secret and every header value arrive here already
//! sealed with the server key, each bound to its row and field; the store never sees them in
//! clear, and reads show only the header names (values `[redacted]`) and whether a secret is
//! set. Rows written before values were bound (`secrets_bound = 0`: headers in clear, the
//! secret sealed unbound) are re-sealed by the server's start-up pass.

use std::collections::BTreeMap;

use spog_core::delivery::TargetKind;
use spog_core::events::EventType;
use spog_core::model::{Account, Organization};
use spog_core::page::Page;
use spog_core::redact::REDACTED;
use spog_core::validate::Name;
use spog_core::webhooks::{SealedHeaders, Webhook, WebhookUrl};
use spog_core::{Id, Timestamp};

use crate::by_organization::{self, Table};
use crate::rows::{at, flag, id};
use crate::{Conn, Sql, StoreError, StoreResult};

const COLUMNS: &str = "id, organization_id, name, url, secret_ciphertext, headers, event_types, active, created_at, updated_at, secrets_bound";
const TABLE: Table = Table {
    name: "webhooks",
    columns: COLUMNS,
    cursor_scope: "webhooks",
};
const DUPLICATE: &str = "a webhook with this name already exists in the organization";

#[derive(sqlx::FromRow)]
struct WebhookRow {
    id: String,
    organization_id: String,
    name: String,
    url: String,
    secret_ciphertext: Option<String>,
    headers: String,
    event_types: String,
    active: i64,
    created_at: i64,
    updated_at: i64,
    secrets_bound: i64,
}

/// A subscription with its stored secret values: what sending and updating need.
#[derive(Clone, Debug)]
pub struct StoredWebhook {
    pub webhook: Webhook,
    pub secrets: StoredSecrets,
}

/// A subscription's secret values as stored.
#[derive(Clone, Debug, PartialEq)]
pub struct StoredSecrets {
    /// Sealed; `None` when the subscription has no secret.
    pub secret_ciphertext: Option<String>,
    /// Header values by name: sealed when `bound`, in clear on rows written before.
    pub headers: BTreeMap<String, String>,
    /// Whether every value is sealed and bound to this row (else the start-up pass has yet
    /// to re-seal it).
    pub bound: bool,
}

impl WebhookRow {
    fn into_stored(self) -> StoreResult<StoredWebhook> {
        let corrupt = |what: &str| StoreError::Corrupt(format!("webhook {}: {what}", self.id));
        let headers: BTreeMap<String, String> =
            serde_json::from_str(&self.headers).map_err(|_| corrupt("headers"))?;
        let names: Vec<String> =
            serde_json::from_str(&self.event_types).map_err(|_| corrupt("event types"))?;
        let event_types = names
            .iter()
            .map(|n| EventType::from_name(n).ok_or_else(|| corrupt("event types")))
            .collect::<StoreResult<Vec<_>>>()?;
        let webhook = Webhook {
            id: id(&self.id)?,
            organization_id: id(&self.organization_id)?,
            name: self.name,
            url: self.url,
            has_secret: self.secret_ciphertext.is_some(),
            headers: headers
                .keys()
                .map(|name| (name.clone(), REDACTED.to_owned()))
                .collect(),
            event_types,
            active: flag(self.active),
            created_at: at(self.created_at),
            updated_at: at(self.updated_at),
        };
        Ok(StoredWebhook {
            webhook,
            secrets: StoredSecrets {
                secret_ciphertext: self.secret_ciphertext,
                headers,
                bound: flag(self.secrets_bound),
            },
        })
    }
}

/// The fields a create or update writes.
pub struct WebhookFields {
    pub name: Name,
    pub url: WebhookUrl,
    /// Sealed and bound to the row; `None` for no secret.
    pub secret_ciphertext: Option<String>,
    /// Header values, each sealed and bound to the row and its name.
    pub headers: SealedHeaders,
    pub event_types: Vec<EventType>,
    pub active: bool,
}

fn event_types_json(types: &[EventType]) -> String {
    serde_json::to_string(&types.iter().map(|t| t.as_str()).collect::<Vec<_>>())
        .expect("a list of strings serialises")
}

fn headers_json(headers: &BTreeMap<String, String>) -> String {
    serde_json::to_string(headers).expect("a map of strings serialises")
}

/// Creates the subscription `webhook` (its id chosen by the caller, who binds the sealed
/// values to it).
#[tracing::instrument(name = "webhooks::create", skip_all, fields(account = %account, organization = %organization, webhook = %webhook))]
pub async fn create(
    conn: &mut Conn,
    account: Id<Account>,
    organization: Id<Organization>,
    webhook: Id<Webhook>,
    fields: &WebhookFields,
    now: Timestamp,
) -> StoreResult<Webhook> {
    sqlx::query(
        "INSERT INTO webhooks (id, account_id, organization_id, name, url, secret_ciphertext, headers, \
         event_types, active, created_at, updated_at, secrets_bound) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $10, 1)",
    )
    .bind(webhook.to_string())
    .bind(account.to_string())
    .bind(organization.to_string())
    .bind(fields.name.as_str())
    .bind(fields.url.as_str())
    .bind(fields.secret_ciphertext.clone())
    .bind(headers_json(fields.headers.as_map()))
    .bind(event_types_json(&fields.event_types))
    .bind(i64::from(fields.active))
    .bind(now.micros())
    .execute(&mut *conn)
    .await
    .map_err(|e| StoreError::on_unique(e, DUPLICATE))?;
    get(conn, account, webhook).await
}

#[tracing::instrument(name = "webhooks::get", skip_all, fields(account = %account, webhook = %webhook))]
pub async fn get(
    conn: &mut Conn,
    account: Id<Account>,
    webhook: Id<Webhook>,
) -> StoreResult<Webhook> {
    Ok(get_stored(conn, account, webhook).await?.webhook)
}

/// The subscription and its stored secret values.
#[tracing::instrument(name = "webhooks::get_stored", skip_all, fields(account = %account, webhook = %webhook))]
pub async fn get_stored(
    conn: &mut Conn,
    account: Id<Account>,
    webhook: Id<Webhook>,
) -> StoreResult<StoredWebhook> {
    by_organization::one::<WebhookRow>(conn, &TABLE, account, webhook.to_string())
        .await?
        .into_stored()
}

#[tracing::instrument(name = "webhooks::list", skip_all, fields(account = %account, organization = ?organization))]
pub async fn list(
    conn: &mut Conn,
    account: Id<Account>,
    organization: Option<Id<Organization>>,
    limit: u32,
    cursor: Option<&str>,
) -> StoreResult<Page<Webhook>> {
    let page = by_organization::page(
        conn,
        &TABLE,
        account,
        organization,
        limit,
        cursor,
        |row: WebhookRow| row.into_stored().map(|s| s.webhook),
        |w| w.id.to_string(),
    );
    page.await
}

#[tracing::instrument(name = "webhooks::update", skip_all, fields(account = %account, webhook = %webhook))]
pub async fn update(
    conn: &mut Conn,
    account: Id<Account>,
    webhook: Id<Webhook>,
    fields: &WebhookFields,
    now: Timestamp,
) -> StoreResult<Webhook> {
    let done = sqlx::query(
        "UPDATE webhooks SET name = $3, url = $4, secret_ciphertext = $5, headers = $6, event_types = $7, \
         active = $8, updated_at = $9, secrets_bound = 1 WHERE account_id = $1 AND id = $2",
    )
    .bind(account.to_string())
    .bind(webhook.to_string())
    .bind(fields.name.as_str())
    .bind(fields.url.as_str())
    .bind(fields.secret_ciphertext.clone())
    .bind(headers_json(fields.headers.as_map()))
    .bind(event_types_json(&fields.event_types))
    .bind(i64::from(fields.active))
    .bind(now.micros())
    .execute(&mut *conn)
    .await
    .map_err(|e| StoreError::on_unique(e, DUPLICATE))?;
    if done.rows_affected() == 0 {
        return Err(StoreError::NotFound);
    }
    get(conn, account, webhook).await
}

/// Deletes the subscription and its whole delivery history. Returns how many deliveries went.
#[tracing::instrument(name = "webhooks::delete", skip_all, fields(account = %account, webhook = %webhook))]
pub async fn delete(
    conn: &mut Conn,
    account: Id<Account>,
    webhook: Id<Webhook>,
) -> StoreResult<u64> {
    let deliveries = crate::deliveries::delete_for_target(
        conn,
        account,
        TargetKind::Webhook,
        &webhook.to_string(),
    )
    .await?;
    let done = sqlx::query("DELETE FROM webhooks WHERE account_id = $1 AND id = $2")
        .bind(account.to_string())
        .bind(webhook.to_string())
        .execute(conn)
        .await?;
    if done.rows_affected() == 0 {
        return Err(StoreError::NotFound);
    }
    Ok(deliveries)
}

/// Active subscriptions of `organization` that listen to `event_type`.
#[tracing::instrument(name = "webhooks::subscribed", skip_all, fields(account = %account, organization = %organization))]
pub async fn subscribed(
    conn: &mut Conn,
    account: Id<Account>,
    organization: Id<Organization>,
    event_type: EventType,
) -> StoreResult<Vec<Id<Webhook>>> {
    let rows: Vec<(String, String)> = sqlx::query_as(
        "SELECT id, event_types FROM webhooks WHERE account_id = $1 AND organization_id = $2 AND active = 1 ORDER BY id",
    )
    .bind(account.to_string())
    .bind(organization.to_string())
    .fetch_all(conn)
    .await?;
    // Event type names are quoted in the stored list, so a substring test is exact.
    let quoted = format!("\"{}\"", event_type.as_str());
    rows.into_iter()
        .filter(|(_, types)| types.contains(&quoted))
        .map(|(webhook, _)| id(&webhook))
        .collect()
}

/// What the delivery engine needs to send to a subscription.
pub struct WebhookTarget {
    pub id: Id<Webhook>,
    pub account: Id<Account>,
    pub url: String,
    pub secrets: StoredSecrets,
    pub active: bool,
}

#[derive(sqlx::FromRow)]
struct TargetRow {
    id: String,
    account_id: String,
    url: String,
    secret_ciphertext: Option<String>,
    headers: String,
    active: i64,
    secrets_bound: i64,
}

/// Targets by id, across accounts (the engine serves every account); ids that are gone are
/// simply absent.
#[tracing::instrument(name = "webhooks::targets", skip_all)]
pub async fn targets(conn: &mut Conn, ids: &[String]) -> StoreResult<Vec<WebhookTarget>> {
    let mut sql = Sql::new(
        "SELECT id, account_id, url, secret_ciphertext, headers, active, secrets_bound FROM webhooks WHERE id IN ",
    );
    sql.bind_list(ids.iter().cloned());
    let rows: Vec<TargetRow> = sql.fetch_all(conn).await?;
    rows.into_iter()
        .map(|row| {
            Ok(WebhookTarget {
                id: id(&row.id)?,
                account: id(&row.account_id)?,
                url: row.url,
                secrets: StoredSecrets {
                    secret_ciphertext: row.secret_ciphertext,
                    headers: serde_json::from_str(&row.headers)
                        .map_err(|_| StoreError::Corrupt(format!("webhook {}: headers", row.id)))?,
                    bound: flag(row.secrets_bound),
                },
                active: flag(row.active),
            })
        })
        .collect()
}

/// Up to `limit` subscriptions (any account) after `after` whose values are not yet bound
/// to their row, for the start-up pass that re-seals them.
#[tracing::instrument(name = "webhooks::unbound", skip_all)]
pub async fn unbound(
    conn: &mut Conn,
    after: &str,
    limit: u32,
) -> StoreResult<Vec<(Id<Webhook>, StoredSecrets)>> {
    let rows: Vec<(String, Option<String>, String)> = sqlx::query_as(
        "SELECT id, secret_ciphertext, headers FROM webhooks WHERE secrets_bound = 0 AND id > $1 \
         ORDER BY id LIMIT $2",
    )
    .bind(after)
    .bind(i64::from(limit))
    .fetch_all(conn)
    .await?;
    rows.into_iter()
        .map(|(webhook, secret, headers)| {
            let headers = serde_json::from_str(&headers)
                .map_err(|_| StoreError::Corrupt(format!("webhook {webhook}: headers")))?;
            Ok((
                id(&webhook)?,
                StoredSecrets {
                    secret_ciphertext: secret,
                    headers,
                    bound: false,
                },
            ))
        })
        .collect()
}

/// Stores re-sealed values for a subscription not yet bound; `false` (nothing written) when
/// another instance bound it first.
#[tracing::instrument(name = "webhooks::bind_secrets", skip_all, fields(webhook = %webhook))]
pub async fn bind_secrets(
    conn: &mut Conn,
    webhook: Id<Webhook>,
    secret_ciphertext: Option<&str>,
    headers: &BTreeMap<String, String>,
) -> StoreResult<bool> {
    let done = sqlx::query(
        "UPDATE webhooks SET secret_ciphertext = $2, headers = $3, secrets_bound = 1 \
         WHERE id = $1 AND secrets_bound = 0",
    )
    .bind(webhook.to_string())
    .bind(secret_ciphertext)
    .bind(headers_json(headers))
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

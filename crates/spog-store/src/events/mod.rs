//! Published events (SPEC 4): their rows. What an event fans out to is decided by the
//! server's `events` module, the one place that publishes; this keeps only storage.

use spog_core::events::{Event, EventType, webhook_body};
use spog_core::model::{Account, Organization};
use spog_core::{Id, Timestamp};

use crate::rows::id;
use crate::{Conn, StoreError, StoreResult, Tx};

/// An event's row; `data` is a JSON object already serialised.
pub struct EventRecord<'a> {
    pub account: Id<Account>,
    pub organization: Id<Organization>,
    pub event_type: EventType,
    pub occurred_at: Timestamp,
    pub data: &'a str,
    pub idempotency_key: Option<&'a str>,
}

/// Stores an event with the body its webhook deliveries send. A concurrent publisher of the
/// same idempotency key makes this fail with a conflict; retrying the whole transaction then
/// finds the first event ([`by_idempotency_key`]).
#[tracing::instrument(name = "events::insert", skip_all, fields(account = %event.account, event_type = %event.event_type))]
pub async fn insert(
    tx: &mut Tx,
    event: &EventRecord<'_>,
    now: Timestamp,
) -> StoreResult<Id<Event>> {
    let id: Id<Event> = Id::new();
    let payload = webhook_body(
        &id.to_string(),
        event.event_type.as_str(),
        event.occurred_at,
        event.account,
        event.organization,
        event.data,
    );
    sqlx::query(
        "INSERT INTO events (id, account_id, organization_id, event_type, occurred_at, received_at, data, \
         payload, idempotency_key) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(id.to_string())
    .bind(event.account.to_string())
    .bind(event.organization.to_string())
    .bind(event.event_type.as_str())
    .bind(event.occurred_at.micros())
    .bind(now.micros())
    .bind(event.data)
    .bind(&payload)
    .bind(event.idempotency_key)
    .execute(&mut **tx)
    .await
    .map_err(|e| {
        StoreError::on_unique(e, "an event with this idempotency key is being published")
    })?;
    Ok(id)
}

#[tracing::instrument(name = "events::by_idempotency_key", skip_all, fields(account = %account))]
pub async fn by_idempotency_key(
    conn: &mut Conn,
    account: Id<Account>,
    key: &str,
) -> StoreResult<Option<Id<Event>>> {
    let found: Option<String> =
        sqlx::query_scalar("SELECT id FROM events WHERE account_id = $1 AND idempotency_key = $2")
            .bind(account.to_string())
            .bind(key)
            .fetch_optional(conn)
            .await?;
    found.as_deref().map(id).transpose()
}

/// The body every webhook delivery of the event sends, by event id (the engine serves every
/// account, so this is not scoped to one).
#[tracing::instrument(name = "events::payloads", skip_all)]
pub async fn payloads(conn: &mut Conn, ids: &[String]) -> StoreResult<Vec<(Id<Event>, String)>> {
    let mut sql = crate::Sql::new("SELECT id, payload FROM events WHERE id IN ");
    sql.bind_list(ids.iter().cloned());
    let rows: Vec<(String, String)> = sql.fetch_all(conn).await?;
    rows.into_iter()
        .map(|(event, payload)| Ok((id(&event)?, payload)))
        .collect()
}

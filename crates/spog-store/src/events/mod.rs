//! Published events (SPEC 4) and their fan-out: accepting an event and creating its
//! deliveries happen in the one transaction of the publisher.

use spog_core::delivery::{Delivery, TargetKind};
use spog_core::events::{Event, EventType, webhook_body};
use spog_core::model::{Account, Organization};
use spog_core::{Id, Timestamp};

use crate::rows::id;
use crate::{Conn, StoreError, StoreResult, Tx, deliveries, webhooks};

/// An event about to be published; `data` is a JSON object already serialised.
pub struct NewEvent {
    pub account: Id<Account>,
    pub organization: Id<Organization>,
    pub event_type: EventType,
    pub occurred_at: Timestamp,
    pub data: String,
    pub idempotency_key: Option<String>,
}

/// What publishing did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Published {
    /// A new event and the deliveries it fanned out to.
    New {
        event: Id<Event>,
        deliveries: Vec<Id<Delivery>>,
    },
    /// The idempotency key was used before: the first event, nothing published again.
    Repeated { event: Id<Event> },
}

impl Published {
    pub fn event(&self) -> Id<Event> {
        match self {
            Published::New { event, .. } | Published::Repeated { event } => *event,
        }
    }
}

/// Publishes `event`: stores it with the body its webhook deliveries send and creates one
/// delivery per matching active subscription of its organization. A repeated idempotency key
/// publishes nothing. A concurrent publisher of the same key makes this fail with a conflict;
/// retrying the whole transaction then finds the first event.
pub async fn publish(tx: &mut Tx, event: NewEvent, now: Timestamp) -> StoreResult<Published> {
    if let Some(key) = &event.idempotency_key
        && let Some(first) = by_idempotency_key(tx, event.account, key).await?
    {
        return Ok(Published::Repeated { event: first });
    }
    let id: Id<Event> = Id::new();
    let payload = webhook_body(
        &id.to_string(),
        event.event_type.as_str(),
        event.occurred_at,
        event.account,
        event.organization,
        &event.data,
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
    .bind(&event.data)
    .bind(&payload)
    .bind(event.idempotency_key.clone())
    .execute(&mut **tx)
    .await
    .map_err(|e| {
        StoreError::on_unique(e, "an event with this idempotency key is being published")
    })?;
    let subscribers =
        webhooks::subscribed(tx, event.account, event.organization, event.event_type).await?;
    let targets: Vec<String> = subscribers.iter().map(|w| w.to_string()).collect();
    let deliveries = deliveries::enqueue(
        tx,
        event.account,
        event.organization,
        id,
        event.event_type,
        TargetKind::Webhook,
        &targets,
        now,
    )
    .await?;
    Ok(Published::New {
        event: id,
        deliveries,
    })
}

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
pub async fn payloads(conn: &mut Conn, ids: &[String]) -> StoreResult<Vec<(Id<Event>, String)>> {
    let mut sql = crate::Sql::new("SELECT id, payload FROM events WHERE id IN ");
    sql.bind_list(ids.iter().cloned());
    let rows: Vec<(String, String)> = sql.fetch_all(conn).await?;
    rows.into_iter()
        .map(|(event, payload)| Ok((id(&event)?, payload)))
        .collect()
}

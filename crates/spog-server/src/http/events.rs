//! `POST /events`: platform events from other SPOG components (SPEC 4), published
//! ([`events::publish`]) in the transaction that accepts them and records the publication.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use spog_core::audit::Action;
use spog_core::delivery::Delivery;
use spog_core::events::{self as core_events, Event};
use spog_core::model::Organization;
use spog_core::{FieldErrors, Id, Timestamp};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::Require;
use crate::auth::permissions::EventsPublish;
use crate::error::{ApiError, ApiResult};
use crate::events::{NewEvent, Publication, PublishError, Published};
use crate::extract::AppJson;
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(publish_event))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PublishEvent {
    /// One of the types `GET /webhooks/event-types` lists.
    pub event_type: String,
    pub organization_id: Id<Organization>,
    /// A JSON object, at most 256 KiB serialised.
    #[schema(value_type = Object)]
    pub data: Value,
    /// When it happened; defaults to now.
    pub occurred_at: Option<Timestamp>,
    /// A repeated key returns the first event's id and publishes nothing again.
    pub idempotency_key: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct PublishedEvent {
    /// The event's id (the first event's, for a repeated idempotency key).
    pub id: Id<Event>,
    /// True when the idempotency key was used before and nothing was published.
    pub duplicate: bool,
    /// Deliveries created for webhook subscriptions (0 for a duplicate).
    pub deliveries: usize,
}

/// Publish a platform event.
#[utoipa::path(post, path = "/events", tag = "events", request_body = PublishEvent,
    responses((status = 202, body = PublishedEvent)))]
async fn publish_event(
    State(state): State<AppState>,
    auth: Require<EventsPublish>,
    AppJson(body): AppJson<PublishEvent>,
) -> ApiResult<(StatusCode, Json<PublishedEvent>)> {
    let mut errors = FieldErrors::new();
    let event_type = errors.check(core_events::EventType::parse(
        "event_type",
        &body.event_type,
    ));
    let data = errors.check(core_events::parse_data("data", &body.data));
    let key = body
        .idempotency_key
        .as_deref()
        .map(|k| core_events::parse_idempotency_key("idempotency_key", k))
        .transpose();
    let key = errors.check(key);
    let (event_type, _, idempotency_key) = errors.finish((event_type, data, key))?;
    let now = Timestamp::now();
    let event = || {
        let occurred_at = body.occurred_at.unwrap_or(now);
        NewEvent::new(
            auth.account(),
            body.organization_id,
            event_type,
            occurred_at,
            body.data.clone(),
        )
        .idempotency_key(idempotency_key.clone())
    };
    // A concurrent publisher of the same key wins the race; the second try finds its event.
    let published = match publish(&state, &auth, event(), &body.data).await {
        Err(ApiError::Conflict(_)) if idempotency_key.is_some() => {
            publish(&state, &auth, event(), &body.data).await?
        }
        other => other?,
    };
    let (duplicate, deliveries) = match &published {
        Published::New { deliveries, .. } => (false, deliveries.len()),
        Published::Repeated { .. } => (true, 0),
    };
    Ok((
        StatusCode::ACCEPTED,
        Json(PublishedEvent {
            id: published.event(),
            duplicate,
            deliveries,
        }),
    ))
}

async fn publish(
    state: &AppState,
    auth: &Require<EventsPublish>,
    event: NewEvent,
    data: &Value,
) -> ApiResult<Published> {
    let (auth, data) = (auth.0.clone(), data.clone());
    let (organization, event_type, occurred_at) =
        (event.organization, event.event_type, event.occurred_at);
    let key = event.idempotency_key.clone();
    let entry = move |event: Id<Event>, deliveries: &[Id<Delivery>]| {
        auth.did_on(Action::EventPublish, event, event_type.as_str())
            .in_organization(organization)
            .after(&json!({
                "id": event,
                "event_type": event_type,
                "organization_id": organization,
                "occurred_at": occurred_at,
                "data": data,
            }))
            .metadata(json!({"idempotency_key": key, "deliveries": deliveries.len()}))
    };
    let publication = Publication {
        event,
        entry: Box::new(entry),
    };
    state
        .event_publisher
        .publish(publication)
        .await
        .map_err(|error| match error {
            PublishError::NoOrganization => {
                ApiError::field("organization_id", "is not an organization of this account")
            }
            PublishError::Store(error) => error.into(),
        })
}

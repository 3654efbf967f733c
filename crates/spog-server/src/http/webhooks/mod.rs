//! `/webhooks`: subscriptions (SPEC 5.1), their event types, the synchronous test, and the
//! delivery history with manual retry (SPEC 5.3).

mod deliveries;
mod test;

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::json;
use spog_core::audit::Action;
use spog_core::events::{EventType, EventTypeInfo};
use spog_core::model::Organization;
use spog_core::page::{self, Page};
use spog_core::redact::REDACTED;
use spog_core::validate::Name;
use spog_core::webhooks::{self as rules, Headers, Webhook, WebhookUrl};
use spog_core::{BoundedMap, FieldError, FieldErrors, Id, Timestamp, UniqueList};
use spog_store::StoreError;
use spog_store::identity::organizations;
use spog_store::webhooks::{self as store, WebhookFields};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::Require;
use crate::auth::permissions::{MonitoringManage, MonitoringView};
use crate::error::{ApiError, ApiResult};
use crate::extract::{AppJson, AppPath, AppQuery};
use crate::secrets::{self, WebhookSecrets};
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_event_types))
        .routes(routes!(list_webhooks, create_webhook))
        .routes(routes!(get_webhook, update_webhook, delete_webhook))
        .routes(routes!(test::test_webhook))
        .routes(routes!(deliveries::list_deliveries))
        .routes(routes!(deliveries::get_delivery))
        .routes(routes!(deliveries::retry_delivery))
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct WebhookParams {
    pub organization_id: Option<Id<Organization>>,
    /// 1 to 500; default 50.
    pub limit: Option<i64>,
    pub cursor: Option<String>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateWebhook {
    pub organization_id: Id<Organization>,
    /// Unique in the organization.
    pub name: String,
    /// `https://…` (`http://` only when the server allows insecure targets).
    pub url: String,
    /// HMAC key for the signatures; write-only.
    pub secret: Option<String>,
    /// Extra headers sent with every attempt. Values are write-only: reads show
    /// `[redacted]`.
    #[serde(default)]
    pub headers: BoundedMap<String, 20>,
    pub event_types: UniqueList<String, 50>,
    #[serde(default = "yes")]
    pub active: bool,
}

fn yes() -> bool {
    true
}

/// Absent leaves a field as it is; for `secret`, `null` removes it.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateWebhook {
    pub name: Option<String>,
    pub url: Option<String>,
    /// A new secret, or `null` to send unsigned deliveries.
    #[serde(default, deserialize_with = "crate::extract::present")]
    #[schema(value_type = Option<String>)]
    pub secret: Option<Option<String>>,
    /// Replaces the headers; a header whose value is `null` or `[redacted]` (as reads show
    /// it) keeps its current value.
    #[schema(value_type = Option<BTreeMap<String, Option<String>>>)]
    pub headers: Option<BoundedMap<Option<String>, 20>>,
    pub event_types: Option<UniqueList<String, 50>>,
    pub active: Option<bool>,
}

/// A subscription's fields as a request gives them, before checking.
struct Proposed<'a> {
    name: &'a str,
    url: &'a str,
    /// `Some(text)`: a new secret in clear.
    new_secret: Option<&'a str>,
    headers: &'a BTreeMap<String, String>,
    event_types: &'a [String],
    active: bool,
}

/// Checks every field, naming each one at fault; the secret and header values are sealed
/// for the subscription `id`.
fn check(
    state: &AppState,
    id: Id<Webhook>,
    proposed: Proposed<'_>,
    kept_secret: Option<String>,
) -> Result<WebhookFields, FieldErrors> {
    let mut errors = FieldErrors::new();
    let name = errors.check(Name::parse("name", proposed.name, rules::MAX_NAME));
    let url = errors.check(
        WebhookUrl::parse("url", proposed.url, state.config.allow_insecure_targets).and_then(
            |url| {
                state
                    .engine
                    .http
                    .guard()
                    .check_url(url.url())
                    .map(|()| url)
                    .map_err(|refused| FieldError::new("url", refused.to_string()))
            },
        ),
    );
    let secret = proposed
        .new_secret
        .map(|s| rules::parse_secret("secret", s))
        .transpose();
    let secret = errors.check(secret);
    let headers = errors.check(Headers::parse("headers", proposed.headers));
    let event_types = errors.check(EventType::parse_list("event_types", proposed.event_types));
    let (name, url, secret, headers, event_types) =
        errors.finish((name, url, secret, headers, event_types))?;
    let (secret_ciphertext, headers) =
        secrets::seal_webhook(&state.keys, id, secret.or(kept_secret).as_deref(), &headers);
    Ok(WebhookFields {
        name,
        url,
        secret_ciphertext,
        headers,
        event_types,
        active: proposed.active,
    })
}

/// The headers an update asks for: its values, or the current ones where it gives `null`
/// or `[redacted]`; a header to keep that is not set is the field at fault.
fn headers_after_update(
    given: &BTreeMap<String, Option<String>>,
    current: &BTreeMap<String, String>,
) -> Result<BTreeMap<String, String>, FieldErrors> {
    let mut errors = FieldErrors::new();
    let mut headers = BTreeMap::new();
    for (name, value) in given {
        let value = match value.as_deref() {
            None | Some(REDACTED) => match current.get(name) {
                Some(kept) => kept.clone(),
                None => {
                    errors.add(FieldError::new(
                        format!("headers.{name}"),
                        "has no current value to keep; give its value",
                    ));
                    continue;
                }
            },
            Some(value) => value.to_owned(),
        };
        headers.insert(name.clone(), value);
    }
    errors.into_result().map(|()| headers)
}

/// The subscription's values in clear, or a conflict when this server key cannot open them.
pub(super) fn opened(state: &AppState, stored: &store::StoredWebhook) -> ApiResult<WebhookSecrets> {
    secrets::open_webhook(&state.keys, stored.webhook.id, &stored.secrets).ok_or_else(|| {
        ApiError::Conflict(
            "the webhook's secret or header values cannot be decrypted with this server key; \
             set them again"
                .to_owned(),
        )
    })
}

fn organization_field(error: StoreError) -> ApiError {
    match error {
        StoreError::NotFound => {
            ApiError::field("organization_id", "is not an organization of this account")
        }
        other => other.into(),
    }
}

/// The event types a subscription can choose, with what each means.
#[utoipa::path(get, path = "/webhooks/event-types", tag = "webhooks",
    responses((status = 200, body = Page<EventTypeInfo>)))]
async fn list_event_types(_auth: Require<MonitoringView>) -> Json<Page<EventTypeInfo>> {
    Json(Page {
        items: EventTypeInfo::all(),
        next_cursor: None,
    })
}

/// List webhook subscriptions.
#[utoipa::path(get, path = "/webhooks", tag = "webhooks", params(WebhookParams),
    responses((status = 200, body = Page<Webhook>)))]
async fn list_webhooks(
    State(state): State<AppState>,
    auth: Require<MonitoringView>,
    AppQuery(params): AppQuery<WebhookParams>,
) -> ApiResult<Json<Page<Webhook>>> {
    let limit = page::limit(params.limit, page::DEFAULT_LIMIT, page::MAX_LIMIT)?;
    let mut conn = state.store.conn().await?;
    let page = store::list(
        &mut conn,
        auth.account(),
        params.organization_id,
        limit,
        params.cursor.as_deref(),
    )
    .await?;
    Ok(Json(page))
}

/// Subscribe a URL to event types.
#[utoipa::path(post, path = "/webhooks", tag = "webhooks", request_body = CreateWebhook,
    responses((status = 201, body = Webhook)))]
async fn create_webhook(
    State(state): State<AppState>,
    auth: Require<MonitoringManage>,
    AppJson(body): AppJson<CreateWebhook>,
) -> ApiResult<(StatusCode, Json<Webhook>)> {
    let proposed = Proposed {
        name: &body.name,
        url: &body.url,
        new_secret: body.secret.as_deref(),
        headers: &body.headers,
        event_types: &body.event_types,
        active: body.active,
    };
    let id = Id::new();
    let fields = check(&state, id, proposed, None)?;
    let mut tx = state.store.begin().await?;
    organizations::get(&mut tx, auth.account(), body.organization_id)
        .await
        .map_err(organization_field)?;
    let webhook = store::create(
        &mut tx,
        auth.account(),
        body.organization_id,
        id,
        &fields,
        Timestamp::now(),
    )
    .await?;
    tx.record(auth.did(Action::WebhookCreate, &webhook).after(&webhook))
        .await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, Json(webhook)))
}

/// Get a webhook subscription.
#[utoipa::path(get, path = "/webhooks/{id}", tag = "webhooks", params(("id" = String, Path)),
    responses((status = 200, body = Webhook)))]
async fn get_webhook(
    State(state): State<AppState>,
    auth: Require<MonitoringView>,
    AppPath(id): AppPath<Id<Webhook>>,
) -> ApiResult<Json<Webhook>> {
    let mut conn = state.store.conn().await?;
    Ok(Json(store::get(&mut conn, auth.account(), id).await?))
}

/// Change a webhook subscription; absent fields stay as they are.
#[utoipa::path(patch, path = "/webhooks/{id}", tag = "webhooks", params(("id" = String, Path)),
    request_body = UpdateWebhook, responses((status = 200, body = Webhook)))]
async fn update_webhook(
    State(state): State<AppState>,
    auth: Require<MonitoringManage>,
    AppPath(id): AppPath<Id<Webhook>>,
    AppJson(body): AppJson<UpdateWebhook>,
) -> ApiResult<Json<Webhook>> {
    let mut tx = state.store.begin().await?;
    let stored = store::get_stored(&mut tx, auth.account(), id).await?;
    let current = opened(&state, &stored)?;
    let before = stored.webhook;
    let event_types: Vec<String> = match &body.event_types {
        Some(types) => types.to_vec(),
        None => before
            .event_types
            .iter()
            .map(|t| t.as_str().to_owned())
            .collect(),
    };
    let (new_secret, kept_secret) = match &body.secret {
        None => (None, current.secret),
        Some(None) => (None, None),
        Some(Some(secret)) => (Some(secret.as_str()), None),
    };
    let headers = match &body.headers {
        Some(given) => headers_after_update(given, &current.headers)?,
        None => current.headers,
    };
    let proposed = Proposed {
        name: body.name.as_deref().unwrap_or(&before.name),
        url: body.url.as_deref().unwrap_or(&before.url),
        new_secret,
        headers: &headers,
        event_types: &event_types,
        active: body.active.unwrap_or(before.active),
    };
    let fields = check(&state, id, proposed, kept_secret)?;
    let webhook = store::update(&mut tx, auth.account(), id, &fields, Timestamp::now()).await?;
    tx.record(
        auth.changed(Action::WebhookUpdate, &before, &webhook)
            .metadata(json!({
                "secret_changed": body.secret.is_some(),
                "headers_changed": body.headers.is_some(),
            })),
    )
    .await?;
    tx.commit().await?;
    Ok(Json(webhook))
}

/// Delete a webhook subscription and its whole delivery history.
#[utoipa::path(delete, path = "/webhooks/{id}", tag = "webhooks", params(("id" = String, Path)),
    responses((status = 204)))]
async fn delete_webhook(
    State(state): State<AppState>,
    auth: Require<MonitoringManage>,
    AppPath(id): AppPath<Id<Webhook>>,
) -> ApiResult<StatusCode> {
    let mut tx = state.store.begin().await?;
    let before = store::get(&mut tx, auth.account(), id).await?;
    let deliveries = store::delete(&mut tx, auth.account(), id).await?;
    tx.record(
        auth.did(Action::WebhookDelete, &before)
            .before(&before)
            .metadata(json!({"deliveries_deleted": deliveries})),
    )
    .await?;
    tx.commit().await?;
    if deliveries > 0 {
        state.bus.touch(auth.account(), "deliveries");
    }
    Ok(StatusCode::NO_CONTENT)
}

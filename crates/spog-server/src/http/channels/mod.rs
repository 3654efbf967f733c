//! `/notification-channels` (SPEC 7.1): email (SMTP), webhook, Slack and Teams channels, the
//! synchronous test, and each channel's delivery history with manual retry.

mod deliveries;
pub mod preview;
mod test;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{Map, Value, json};
use spog_core::audit::Action;
use spog_core::channels::{
    self as rules, Channel, ChannelConfig, ChannelType, SecretChange, Secrets, SlackConfig,
    SmtpConfig, TeamsConfig,
};
use spog_core::model::Organization;
use spog_core::page::{self, Page};
use spog_core::validate::Name;
use spog_core::{FieldError, FieldErrors, Id, Timestamp};
use spog_store::StoreError;
use spog_store::channels::{self as store, ChannelFields, StoredChannel};
use spog_store::identity::organizations;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::Require;
use crate::auth::permissions::{MonitoringManage, MonitoringView};
use crate::error::{ApiError, ApiResult};
use crate::extract::{AppJson, AppPath, AppQuery};
use crate::secrets;
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_channels, create_channel))
        .routes(routes!(get_channel, update_channel, delete_channel))
        .routes(routes!(test::test_channel))
        .routes(routes!(preview::preview_channel))
        .routes(routes!(deliveries::list_deliveries))
        .routes(routes!(deliveries::get_delivery))
        .routes(routes!(deliveries::retry_delivery))
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ChannelParams {
    pub organization_id: Option<Id<Organization>>,
    /// 1 to 500; default 50.
    pub limit: Option<i64>,
    pub cursor: Option<String>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateChannel {
    pub organization_id: Id<Organization>,
    /// Unique in the organization.
    pub name: String,
    /// `smtp` (or `email`), `webhook`, `slack` or `teams`.
    #[serde(rename = "type")]
    pub channel_type: String,
    /// The type's fields (SPEC 7.1). `smtp_password` and `secret` are write-only.
    #[schema(value_type = Object)]
    pub config: Map<String, Value>,
    #[serde(default = "yes")]
    pub enabled: bool,
}

fn yes() -> bool {
    true
}

/// Absent fields stay as they are. A given `config` replaces the configuration, except that
/// secret fields left out keep their values (`null` removes one).
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateChannel {
    pub name: Option<String>,
    /// Fixed after creation; may be repeated unchanged.
    #[serde(rename = "type")]
    pub channel_type: Option<String>,
    #[schema(value_type = Option<Object>)]
    pub config: Option<Map<String, Value>>,
    pub enabled: Option<bool>,
}

/// Checks the name and configuration, naming each field at fault; secrets not mentioned
/// keep their `kept` values; secrets and write-only values are sealed for the channel `id`.
pub fn check(
    state: &AppState,
    id: Id<Channel>,
    name: &str,
    channel_type: ChannelType,
    config: &Map<String, Value>,
    enabled: bool,
    kept: &Secrets,
) -> Result<ChannelFields, FieldErrors> {
    let mut errors = FieldErrors::new();
    let name = errors.check(Name::parse("name", name, rules::MAX_NAME));
    let parsed = rules::parse_config(
        channel_type,
        config,
        state.config.allow_insecure_targets,
        &mut errors,
    );
    if let Some((config, _)) = &parsed {
        check_destination(state, config, &mut errors);
    }
    let (name, (config, changes)) = errors.finish((name, parsed))?;
    let mut secrets = Secrets::new();
    for (field, change) in changes {
        let value = match change {
            SecretChange::Keep => kept.get(&field).cloned(),
            SecretChange::Remove => None,
            SecretChange::Set(secret) => Some(secret),
        };
        if let Some(value) = value {
            secrets.insert(field, value);
        }
    }
    let (config, sealed) = secrets::seal_channel(&state.keys, id, &config, &secrets);
    Ok(ChannelFields {
        name,
        config,
        sealed,
        enabled,
    })
}

/// The outbound guard's verdict on literal addresses, at once (names are checked on use).
fn check_destination(state: &AppState, config: &ChannelConfig, errors: &mut FieldErrors) {
    let guard = state.engine.http.guard();
    let (field, url) = match config {
        ChannelConfig::Webhook(webhook) => ("config.url", &webhook.url),
        ChannelConfig::Slack(SlackConfig { webhook_url, .. })
        | ChannelConfig::Teams(TeamsConfig { webhook_url, .. }) => {
            ("config.webhook_url", webhook_url)
        }
        ChannelConfig::Smtp(SmtpConfig { smtp_host, .. }) => {
            if let Ok(ip) = smtp_host.parse::<std::net::IpAddr>()
                && let Err(reason) = guard.check(ip)
            {
                errors.add(FieldError::new(
                    "config.smtp_host",
                    format!("refused by the outbound guard: {ip} is {reason}"),
                ));
            }
            return;
        }
    };
    if let Ok(url) = reqwest::Url::parse(url)
        && let Err(refused) = guard.check_url(&url)
    {
        errors.add(FieldError::new(field, refused.to_string()));
    }
}

fn channel_type(text: &str) -> Result<ChannelType, ApiError> {
    ChannelType::parse("type", text).map_err(|e| ApiError::Validation(e.into()))
}

fn organization_field(error: StoreError) -> ApiError {
    match error {
        StoreError::NotFound => {
            ApiError::field("organization_id", "is not an organization of this account")
        }
        other => other.into(),
    }
}

/// List notification channels.
#[utoipa::path(get, path = "/notification-channels", tag = "channels", params(ChannelParams),
    responses((status = 200, body = Page<Channel>)))]
async fn list_channels(
    State(state): State<AppState>,
    auth: Require<MonitoringView>,
    AppQuery(params): AppQuery<ChannelParams>,
) -> ApiResult<Json<Page<Channel>>> {
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

/// Create a notification channel.
#[utoipa::path(post, path = "/notification-channels", tag = "channels", request_body = CreateChannel,
    responses((status = 201, body = Channel)))]
async fn create_channel(
    State(state): State<AppState>,
    auth: Require<MonitoringManage>,
    AppJson(body): AppJson<CreateChannel>,
) -> ApiResult<(StatusCode, Json<Channel>)> {
    let channel_type = channel_type(&body.channel_type)?;
    let id = Id::new();
    let fields = check(
        &state,
        id,
        &body.name,
        channel_type,
        &body.config,
        body.enabled,
        &Secrets::new(),
    )?;
    let mut tx = state.store.begin().await?;
    organizations::get(&mut tx, auth.account(), body.organization_id)
        .await
        .map_err(organization_field)?;
    let channel = store::create(
        &mut tx,
        auth.account(),
        body.organization_id,
        id,
        &fields,
        Timestamp::now(),
    )
    .await?;
    tx.record(
        auth.did(Action::NotificationChannelCreate, &channel)
            .after(&channel),
    )
    .await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, Json(channel)))
}

/// Get a notification channel (secrets show only as `has_…` flags).
#[utoipa::path(get, path = "/notification-channels/{id}", tag = "channels", params(("id" = String, Path)),
    responses((status = 200, body = Channel)))]
async fn get_channel(
    State(state): State<AppState>,
    auth: Require<MonitoringView>,
    AppPath(id): AppPath<Id<Channel>>,
) -> ApiResult<Json<Channel>> {
    let mut conn = state.store.conn().await?;
    Ok(Json(store::get(&mut conn, auth.account(), id).await?))
}

/// Change a notification channel; absent fields stay as they are.
#[utoipa::path(patch, path = "/notification-channels/{id}", tag = "channels", params(("id" = String, Path)),
    request_body = UpdateChannel, responses((status = 200, body = Channel)))]
async fn update_channel(
    State(state): State<AppState>,
    auth: Require<MonitoringManage>,
    AppPath(id): AppPath<Id<Channel>>,
    AppJson(body): AppJson<UpdateChannel>,
) -> ApiResult<Json<Channel>> {
    let mut tx = state.store.begin().await?;
    let before = store::get_stored(&mut tx, auth.account(), id).await?;
    let current = before.channel.channel_type;
    if let Some(text) = &body.channel_type
        && channel_type(text)? != current
    {
        return Err(ApiError::field(
            "type",
            "cannot change; create another channel",
        ));
    }
    let (whole, kept) = opened(&state, &before)?;
    let config = match &body.config {
        Some(config) => {
            let mut config = config.clone();
            rules::keep_unchanged(&mut config, &whole);
            config
        }
        None => stored_config(&whole),
    };
    let secrets_changed = body.config.as_ref().is_some_and(|c| {
        current
            .secret_fields()
            .iter()
            .any(|field| c.contains_key(*field))
    });
    let fields = check(
        &state,
        id,
        body.name.as_deref().unwrap_or(&before.channel.name),
        current,
        &config,
        body.enabled.unwrap_or(before.channel.enabled),
        &kept,
    )?;
    let channel = store::update(&mut tx, auth.account(), id, &fields, Timestamp::now()).await?;
    tx.record(
        auth.changed(Action::NotificationChannelUpdate, &before.channel, &channel)
            .metadata(json!({"secrets_changed": secrets_changed})),
    )
    .await?;
    tx.commit().await?;
    Ok(Json(channel))
}

/// The channel's whole configuration and secrets in clear, or a conflict when this server
/// key cannot open them.
fn opened(state: &AppState, stored: &StoredChannel) -> ApiResult<(ChannelConfig, Secrets)> {
    secrets::open_channel(&state.keys, stored).ok_or_else(|| {
        ApiError::Conflict(
            "the channel's secrets cannot be decrypted with this server key; set them again"
                .to_owned(),
        )
    })
}

/// The whole configuration as a request would give it (secrets left out, so kept).
fn stored_config(config: &ChannelConfig) -> Map<String, Value> {
    let mut value = serde_json::to_value(config).expect("plain data serialises");
    let map = value.as_object_mut().expect("an object");
    map.remove("type");
    std::mem::take(map)
}

/// Delete a notification channel, its delivery history, and its links from alert rules.
#[utoipa::path(delete, path = "/notification-channels/{id}", tag = "channels", params(("id" = String, Path)),
    responses((status = 204)))]
async fn delete_channel(
    State(state): State<AppState>,
    auth: Require<MonitoringManage>,
    AppPath(id): AppPath<Id<Channel>>,
) -> ApiResult<StatusCode> {
    let mut tx = state.store.begin().await?;
    let before = store::get(&mut tx, auth.account(), id).await?;
    let deliveries = store::delete(&mut tx, auth.account(), id).await?;
    tx.record(
        auth.did(Action::NotificationChannelDelete, &before)
            .before(&before)
            .metadata(json!({"deliveries_deleted": deliveries})),
    )
    .await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

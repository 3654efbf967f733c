//! `/recording-settings` (SPEC 8.3): how long the account keeps ended recordings.

use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};
use spog_core::recordings::{MAX_RETENTION_DAYS, RecordingSettings};
use spog_core::{FieldError, Timestamp};
use spog_store::recordings;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::Require;
use crate::auth::permissions::{SessionRecordingsManage, SessionRecordingsView};
use crate::config::Config;
use crate::error::ApiResult;
use crate::extract::AppJson;
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(get_settings, update_settings))
}

/// The account's settings and what applies where they say nothing.
#[derive(Serialize, ToSchema)]
pub struct Settings {
    #[serde(flatten)]
    pub settings: RecordingSettings,
    /// The service's `recording_retention`, which applies while `retention_days` is null:
    /// `forever` or a duration (`90d`).
    pub default_retention: String,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateSettings {
    /// Days to keep ended recordings (1..36500), or null for the service's default.
    #[serde(default, deserialize_with = "crate::extract::present")]
    #[schema(value_type = Option<i64>)]
    pub retention_days: Option<Option<i64>>,
}

/// The account's recording settings.
#[utoipa::path(get, path = "/recording-settings", tag = "recordings",
    responses((status = 200, body = Settings)))]
async fn get_settings(
    State(state): State<AppState>,
    auth: Require<SessionRecordingsView>,
) -> ApiResult<Json<Settings>> {
    let mut conn = state.store.conn().await?;
    let settings = recordings::settings(&mut conn, auth.account()).await?;
    Ok(Json(shown(&state.config, settings)))
}

/// Change the account's recording settings; a field left out keeps its value.
#[utoipa::path(patch, path = "/recording-settings", tag = "recordings",
    request_body = UpdateSettings, responses((status = 200, body = Settings)))]
async fn update_settings(
    State(state): State<AppState>,
    auth: Require<SessionRecordingsManage>,
    AppJson(body): AppJson<UpdateSettings>,
) -> ApiResult<Json<Settings>> {
    if let Some(Some(days)) = body.retention_days
        && !(1..=MAX_RETENTION_DAYS).contains(&days)
    {
        return Err(FieldError::new(
            "retention_days",
            format!("must be null or between 1 and {MAX_RETENTION_DAYS} days"),
        )
        .into());
    }
    let mut tx = state.store.begin().await?;
    let before = recordings::settings(&mut tx, auth.account()).await?;
    let mut after = before.clone();
    if let Some(days) = body.retention_days {
        after.retention_days = days;
    }
    recordings::set_settings(&mut tx, &after, Timestamp::now()).await?;
    tx.record(auth.changed(
        spog_core::audit::Action::RecordingSettingsUpdate,
        &before,
        &after,
    ))
    .await?;
    tx.commit().await?;
    Ok(Json(shown(&state.config, after)))
}

fn shown(config: &Config, settings: RecordingSettings) -> Settings {
    Settings {
        settings,
        default_retention: config.recording_retention_text(),
    }
}

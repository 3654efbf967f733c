//! `/silences` (SPEC 7.4): alerts matching an active silence fire and are recorded but notify
//! no one until it ends.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;
use spog_core::alerts::silences::{CreatedBy, Silence, SilenceBody, SilenceState};
use spog_core::audit::Action;
use spog_core::model::Organization;
use spog_core::page::{self, Page};
use spog_core::{Id, Timestamp};
use spog_store::StoreError;
use spog_store::alerting::silences;
use spog_store::identity::organizations;
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::alerting;
use crate::auth::Require;
use crate::auth::permissions::{MonitoringManage, MonitoringView};
use crate::error::{ApiError, ApiResult};
use crate::events::Announcements;
use crate::extract::{AppJson, AppPath, AppQuery};
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_silences, create_silence))
        .routes(routes!(get_silence, update_silence))
        .routes(routes!(expire_silence))
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct SilenceParams {
    pub state: Option<SilenceState>,
    pub organization_id: Option<Id<Organization>>,
    pub limit: Option<i64>,
    pub cursor: Option<String>,
}

/// Silences, newest first.
#[utoipa::path(get, path = "/silences", tag = "alerts", params(SilenceParams),
    responses((status = 200, body = Page<Silence>)))]
async fn list_silences(
    State(state): State<AppState>,
    auth: Require<MonitoringView>,
    AppQuery(params): AppQuery<SilenceParams>,
) -> ApiResult<Json<Page<Silence>>> {
    let limit = page::limit(params.limit, page::DEFAULT_LIMIT, page::MAX_LIMIT)?;
    let mut conn = state.store.conn().await?;
    Ok(Json(
        silences::list(
            &mut conn,
            auth.account(),
            params.state,
            params.organization_id,
            Timestamp::now(),
            limit,
            params.cursor.as_deref(),
        )
        .await?,
    ))
}

/// Silence the alerts its matchers match, from `starts_at` (default now) to `ends_at`.
#[utoipa::path(post, path = "/silences", tag = "alerts", request_body = SilenceBody,
    responses((status = 201, body = Silence)))]
async fn create_silence(
    State(state): State<AppState>,
    auth: Require<MonitoringManage>,
    AppJson(body): AppJson<SilenceBody>,
) -> ApiResult<(StatusCode, Json<Silence>)> {
    let now = Timestamp::now();
    let created_by = CreatedBy {
        user_id: auth.principal.user,
        email: auth.principal.email.clone(),
    };
    let silence = body.create(Id::new(), created_by, now)?;
    let mut tx = state.store.begin().await?;
    organizations::get(&mut tx, auth.account(), silence.organization_id)
        .await
        .map_err(|e| match e {
            StoreError::NotFound => {
                ApiError::field("organization_id", "is not an organization of this account")
            }
            other => other.into(),
        })?;
    let current =
        silences::current_count(&mut tx, auth.account(), silence.organization_id, now).await?;
    if current >= i64::from(silences::MAX_ACTIVE_PER_ORGANIZATION) {
        return Err(ApiError::LimitReached(format!(
            "an organization has at most {} pending or active silences",
            silences::MAX_ACTIVE_PER_ORGANIZATION
        )));
    }
    silences::create(&mut tx, auth.account(), &silence).await?;
    tx.record(auth.did(Action::SilenceCreate, &silence).after(&silence))
        .await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, Json(silence)))
}

/// Get a silence.
#[utoipa::path(get, path = "/silences/{id}", tag = "alerts", params(("id" = String, Path)),
    responses((status = 200, body = Silence)))]
async fn get_silence(
    State(state): State<AppState>,
    auth: Require<MonitoringView>,
    AppPath(id): AppPath<Id<Silence>>,
) -> ApiResult<Json<Silence>> {
    let mut conn = state.store.conn().await?;
    Ok(Json(
        silences::get(&mut conn, auth.account(), id, Timestamp::now()).await?,
    ))
}

/// Change a pending or active silence (its organization stays); an expired one is 409.
#[utoipa::path(patch, path = "/silences/{id}", tag = "alerts", params(("id" = String, Path)),
    request_body = SilenceBody, responses((status = 200, body = Silence)))]
async fn update_silence(
    State(state): State<AppState>,
    auth: Require<MonitoringManage>,
    AppPath(id): AppPath<Id<Silence>>,
    AppJson(body): AppJson<SilenceBody>,
) -> ApiResult<Json<Silence>> {
    let now = Timestamp::now();
    let mut tx = state.store.begin().await?;
    let before = silences::get(&mut tx, auth.account(), id, now).await?;
    if before.state == SilenceState::Expired {
        return Err(ApiError::Conflict("the silence has expired".to_owned()));
    }
    let silence = body.update(&before, now)?;
    silences::update(&mut tx, auth.account(), &silence).await?;
    tx.record(auth.changed(Action::SilenceUpdate, &before, &silence))
        .await?;
    let mut announcements = Announcements::default();
    alerting::silenced::release(
        &mut tx,
        auth.account(),
        silence.organization_id,
        now,
        &mut announcements,
    )
    .await?;
    tx.commit().await?;
    announcements.send(&state.bus).await;
    Ok(Json(silence))
}

/// End a silence now; alerts it held that are still firing notify then.
#[utoipa::path(post, path = "/silences/{id}/expire", tag = "alerts", params(("id" = String, Path)),
    responses((status = 200, body = Silence)))]
async fn expire_silence(
    State(state): State<AppState>,
    auth: Require<MonitoringManage>,
    AppPath(id): AppPath<Id<Silence>>,
) -> ApiResult<Json<Silence>> {
    let now = Timestamp::now();
    let mut tx = state.store.begin().await?;
    let before = silences::get(&mut tx, auth.account(), id, now).await?;
    if !silences::expire(&mut tx, auth.account(), id, now).await? {
        return Err(ApiError::Conflict("the silence has expired".to_owned()));
    }
    let silence = silences::get(&mut tx, auth.account(), id, now).await?;
    tx.record(auth.changed(Action::SilenceExpire, &before, &silence))
        .await?;
    let mut announcements = Announcements::default();
    alerting::silenced::release(
        &mut tx,
        auth.account(),
        silence.organization_id,
        now,
        &mut announcements,
    )
    .await?;
    tx.commit().await?;
    announcements.send(&state.bus).await;
    Ok(Json(silence))
}

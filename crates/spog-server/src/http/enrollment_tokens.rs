//! `/enrollment-tokens` (SPEC 12.1): one-time, expiring tokens that enroll a host's agent;
//! shown once, stored hashed, `hosts.manage` only.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use spog_core::audit::Action;
use spog_core::model::{EnrollmentToken, EnrollmentTokenState, Host, Organization};
use spog_core::page::{self, Page};
use spog_core::{Id, Timestamp};
use spog_store::agents::enrollment_tokens;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::agents::tokens::{self, TokenRequest};
use crate::auth::Require;
use crate::auth::permissions::HostsManage;
use crate::error::{ApiError, ApiResult};
use crate::extract::{AppJson, AppPath, AppQuery};
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_enrollment_tokens, create_enrollment_token))
        .routes(routes!(get_enrollment_token, revoke_enrollment_token))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateEnrollmentToken {
    /// Default: the account's first organization (or the host's).
    pub organization_id: Option<Id<Organization>>,
    pub description: Option<String>,
    /// Default: in one hour; at most 7 days ahead.
    pub expires_at: Option<Timestamp>,
    /// An existing host the enrolling agent claims (its previous credential is revoked).
    pub host_id: Option<Id<Host>>,
}

#[derive(Serialize, ToSchema)]
pub struct CreatedEnrollmentToken {
    /// `spog_enroll_…`: shown only in this response.
    pub token: String,
    #[serde(flatten)]
    pub enrollment_token: EnrollmentToken,
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct EnrollmentTokenParams {
    /// `active`, `used`, `expired` or `revoked`.
    pub state: Option<String>,
    pub limit: Option<i64>,
    pub cursor: Option<String>,
}

/// List enrollment tokens, newest first.
#[utoipa::path(get, path = "/enrollment-tokens", tag = "agents", params(EnrollmentTokenParams),
    responses((status = 200, body = Page<EnrollmentToken>)))]
async fn list_enrollment_tokens(
    State(state): State<AppState>,
    auth: Require<HostsManage>,
    AppQuery(params): AppQuery<EnrollmentTokenParams>,
) -> ApiResult<Json<Page<EnrollmentToken>>> {
    let limit = page::limit(params.limit, page::DEFAULT_LIMIT, page::MAX_LIMIT)?;
    let token_state = params
        .state
        .as_deref()
        .map(|s| {
            EnrollmentTokenState::parse(s)
                .ok_or_else(|| ApiError::field("state", "must be active, used, expired or revoked"))
        })
        .transpose()?;
    let mut conn = state.store.conn().await?;
    Ok(Json(
        enrollment_tokens::list(
            &mut conn,
            auth.account(),
            token_state,
            limit,
            params.cursor.as_deref(),
            Timestamp::now(),
        )
        .await?,
    ))
}

/// Create an enrollment token; the response is the only time the token is shown.
#[utoipa::path(post, path = "/enrollment-tokens", tag = "agents",
    request_body = CreateEnrollmentToken, responses((status = 201, body = CreatedEnrollmentToken)))]
async fn create_enrollment_token(
    State(state): State<AppState>,
    auth: Require<HostsManage>,
    AppJson(body): AppJson<CreateEnrollmentToken>,
) -> ApiResult<(StatusCode, Json<CreatedEnrollmentToken>)> {
    let now = Timestamp::now();
    let request = TokenRequest {
        organization: body.organization_id,
        description: body.description,
        expires_at: body.expires_at,
        host: body.host_id,
    };
    let mut tx = state.store.begin().await?;
    let created_by = Some(auth.principal.actor_id.clone());
    let (token, secret) = tokens::create(&mut tx, auth.account(), request, created_by, now).await?;
    tx.record(
        auth.did(Action::EnrollmentTokenCreate, &token)
            .after(&token),
    )
    .await?;
    tx.commit().await?;
    Ok((
        StatusCode::CREATED,
        Json(CreatedEnrollmentToken {
            token: secret,
            enrollment_token: token,
        }),
    ))
}

/// Get an enrollment token (never the secret).
#[utoipa::path(get, path = "/enrollment-tokens/{id}", tag = "agents",
    params(("id" = String, Path)), responses((status = 200, body = EnrollmentToken)))]
async fn get_enrollment_token(
    State(state): State<AppState>,
    auth: Require<HostsManage>,
    AppPath(id): AppPath<Id<EnrollmentToken>>,
) -> ApiResult<Json<EnrollmentToken>> {
    let mut conn = state.store.conn().await?;
    Ok(Json(
        enrollment_tokens::get(&mut conn, auth.account(), id, Timestamp::now()).await?,
    ))
}

/// Revoke an enrollment token not yet used (409 once used).
#[utoipa::path(delete, path = "/enrollment-tokens/{id}", tag = "agents",
    params(("id" = String, Path)), responses((status = 204), (status = 409)))]
async fn revoke_enrollment_token(
    State(state): State<AppState>,
    auth: Require<HostsManage>,
    AppPath(id): AppPath<Id<EnrollmentToken>>,
) -> ApiResult<StatusCode> {
    let now = Timestamp::now();
    let mut tx = state.store.begin().await?;
    let before = enrollment_tokens::get(&mut tx, auth.account(), id, now).await?;
    let after = enrollment_tokens::revoke(&mut tx, auth.account(), id, now).await?;
    tx.record(auth.changed(Action::EnrollmentTokenRevoke, &before, &after))
        .await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

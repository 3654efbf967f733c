//! `/organizations`: units inside the account that own hosts, webhooks, channels and rules.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;
use spog_core::audit::Action;
use spog_core::model::Organization;
use spog_core::validate::Name;
use spog_core::{Id, Timestamp};
use spog_store::identity::organizations;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::permissions::UsersManage;
use crate::auth::{Auth, Require};
use crate::error::ApiResult;
use crate::extract::{AppJson, AppPath};
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_organizations, create_organization))
        .routes(routes!(
            get_organization,
            rename_organization,
            delete_organization
        ))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OrganizationBody {
    pub name: String,
}

/// List the account's organizations (any authenticated caller).
#[utoipa::path(get, path = "/organizations", tag = "organizations",
    responses((status = 200, body = Vec<Organization>)))]
async fn list_organizations(
    State(state): State<AppState>,
    auth: Auth,
) -> ApiResult<Json<Vec<Organization>>> {
    let mut conn = state.store.conn().await?;
    Ok(Json(organizations::list(&mut conn, auth.account()).await?))
}

/// Create an organization.
#[utoipa::path(post, path = "/organizations", tag = "organizations", request_body = OrganizationBody,
    responses((status = 201, body = Organization)))]
async fn create_organization(
    State(state): State<AppState>,
    auth: Require<UsersManage>,
    AppJson(body): AppJson<OrganizationBody>,
) -> ApiResult<(StatusCode, Json<Organization>)> {
    let name = Name::parse("name", &body.name, 200)?;
    let mut tx = state.store.begin().await?;
    let organization =
        organizations::create(&mut tx, auth.account(), &name, Timestamp::now()).await?;
    tx.record(
        auth.did(Action::OrganizationCreate, &organization)
            .after(&organization),
    )
    .await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, Json(organization)))
}

/// Get an organization.
#[utoipa::path(get, path = "/organizations/{id}", tag = "organizations", params(("id" = String, Path)),
    responses((status = 200, body = Organization)))]
async fn get_organization(
    State(state): State<AppState>,
    auth: Auth,
    AppPath(id): AppPath<Id<Organization>>,
) -> ApiResult<Json<Organization>> {
    let mut conn = state.store.conn().await?;
    Ok(Json(
        organizations::get(&mut conn, auth.account(), id).await?,
    ))
}

/// Rename an organization.
#[utoipa::path(patch, path = "/organizations/{id}", tag = "organizations", params(("id" = String, Path)),
    request_body = OrganizationBody, responses((status = 200, body = Organization)))]
async fn rename_organization(
    State(state): State<AppState>,
    auth: Require<UsersManage>,
    AppPath(id): AppPath<Id<Organization>>,
    AppJson(body): AppJson<OrganizationBody>,
) -> ApiResult<Json<Organization>> {
    let name = Name::parse("name", &body.name, 200)?;
    let mut tx = state.store.begin().await?;
    let before = organizations::get(&mut tx, auth.account(), id).await?;
    organizations::rename(&mut tx, auth.account(), id, &name).await?;
    let after = organizations::get(&mut tx, auth.account(), id).await?;
    tx.record(auth.changed(Action::OrganizationUpdate, &before, &after))
        .await?;
    tx.commit().await?;
    Ok(Json(after))
}

/// Delete an organization that owns nothing any more.
#[utoipa::path(delete, path = "/organizations/{id}", tag = "organizations", params(("id" = String, Path)),
    responses((status = 204)))]
async fn delete_organization(
    State(state): State<AppState>,
    auth: Require<UsersManage>,
    AppPath(id): AppPath<Id<Organization>>,
) -> ApiResult<StatusCode> {
    let mut tx = state.store.begin().await?;
    let before = organizations::get(&mut tx, auth.account(), id).await?;
    organizations::delete(&mut tx, auth.account(), id).await?;
    tx.record(
        auth.did(Action::OrganizationDelete, &before)
            .before(&before),
    )
    .await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

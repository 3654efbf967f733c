//! `/roles`: built-in roles and the account's custom roles.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;
use spog_core::audit::Action;
use spog_core::model::Role;
use spog_core::validate;
use spog_core::{FieldErrors, Id, Permission, PermissionSet, Timestamp, UniqueList};
use spog_store::identity::roles;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::Require;
use crate::auth::permissions::UsersManage;
use crate::error::{ApiError, ApiResult};
use crate::extract::{AppJson, AppPath};
use crate::hub::bus::CredentialChange;
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_roles, create_role))
        .routes(routes!(get_role, update_role, delete_role))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateRole {
    pub name: String,
    #[serde(default)]
    pub description: String,
    pub permissions: UniqueList<String, 50>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateRole {
    pub name: Option<String>,
    pub description: Option<String>,
    pub permissions: Option<UniqueList<String, 50>>,
}

fn permissions(names: &[String]) -> Result<PermissionSet, spog_core::FieldError> {
    names
        .iter()
        .map(|name| {
            Permission::parse(name).ok_or_else(|| {
                spog_core::FieldError::new("permissions", format!("unknown permission `{name}`"))
            })
        })
        .collect()
}

const BUILTIN: &str = "built-in roles cannot be changed or deleted";

/// List roles.
#[utoipa::path(get, path = "/roles", tag = "users", responses((status = 200, body = Vec<Role>)))]
async fn list_roles(
    State(state): State<AppState>,
    auth: Require<UsersManage>,
) -> ApiResult<Json<Vec<Role>>> {
    let mut conn = state.store.conn().await?;
    Ok(Json(roles::list(&mut conn, auth.account()).await?))
}

/// Create a custom role.
#[utoipa::path(post, path = "/roles", tag = "users", request_body = CreateRole,
    responses((status = 201, body = Role)))]
async fn create_role(
    State(state): State<AppState>,
    auth: Require<UsersManage>,
    AppJson(body): AppJson<CreateRole>,
) -> ApiResult<(StatusCode, Json<Role>)> {
    let mut errors = FieldErrors::new();
    let name = errors.check(validate::name("name", &body.name, 100));
    let description = errors.check(validate::text("description", &body.description, 1000));
    let permissions = errors.check(permissions(&body.permissions));
    let (name, description, permissions) = errors.finish((name, description, permissions))?;
    let mut tx = state.store.begin().await?;
    let role = roles::create(
        &mut tx,
        auth.account(),
        &name,
        &description,
        permissions,
        Timestamp::now(),
    )
    .await?;
    tx.record(auth.did(Action::RoleCreate, &role).after(&role))
        .await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, Json(role)))
}

/// Get a role.
#[utoipa::path(get, path = "/roles/{id}", tag = "users", params(("id" = String, Path)),
    responses((status = 200, body = Role)))]
async fn get_role(
    State(state): State<AppState>,
    auth: Require<UsersManage>,
    AppPath(id): AppPath<Id<Role>>,
) -> ApiResult<Json<Role>> {
    let mut conn = state.store.conn().await?;
    Ok(Json(roles::get(&mut conn, auth.account(), id).await?))
}

/// Change a custom role.
#[utoipa::path(patch, path = "/roles/{id}", tag = "users", params(("id" = String, Path)),
    request_body = UpdateRole, responses((status = 200, body = Role)))]
async fn update_role(
    State(state): State<AppState>,
    auth: Require<UsersManage>,
    AppPath(id): AppPath<Id<Role>>,
    AppJson(body): AppJson<UpdateRole>,
) -> ApiResult<Json<Role>> {
    let mut errors = FieldErrors::new();
    let name = errors.check(
        body.name
            .as_deref()
            .map(|n| validate::name("name", n, 100))
            .transpose(),
    );
    let description = errors.check(
        body.description
            .as_deref()
            .map(|d| validate::text("description", d, 1000))
            .transpose(),
    );
    let permissions = errors.check(
        body.permissions
            .as_ref()
            .map(|names| permissions(names))
            .transpose(),
    );
    errors.into_result()?;
    let now = Timestamp::now();
    let mut tx = state.store.begin().await?;
    let before = roles::get(&mut tx, auth.account(), id).await?;
    if before.builtin {
        return Err(ApiError::Conflict(BUILTIN.to_owned()));
    }
    let mut role = before.clone();
    if let Some(name) = name.flatten() {
        role.name = name;
    }
    if let Some(description) = description.flatten() {
        role.description = description;
    }
    if let Some(permissions) = permissions.flatten() {
        role.permissions = permissions;
    }
    roles::update(&mut tx, auth.account(), &role, now).await?;
    let role = roles::get(&mut tx, auth.account(), id).await?;
    tx.record(auth.changed(Action::RoleUpdate, &before, &role))
        .await?;
    tx.commit().await?;
    state
        .bus
        .credentials_changed(auth.account(), CredentialChange::RightsChanged)
        .await;
    Ok(Json(role))
}

/// Delete a custom role; users holding it lose it.
#[utoipa::path(delete, path = "/roles/{id}", tag = "users", params(("id" = String, Path)),
    responses((status = 204)))]
async fn delete_role(
    State(state): State<AppState>,
    auth: Require<UsersManage>,
    AppPath(id): AppPath<Id<Role>>,
) -> ApiResult<StatusCode> {
    let mut tx = state.store.begin().await?;
    let before = roles::get(&mut tx, auth.account(), id).await?;
    if before.builtin {
        return Err(ApiError::Conflict(BUILTIN.to_owned()));
    }
    roles::delete(&mut tx, auth.account(), id).await?;
    tx.record(auth.did(Action::RoleDelete, &before).before(&before))
        .await?;
    tx.commit().await?;
    state
        .bus
        .credentials_changed(auth.account(), CredentialChange::RightsChanged)
        .await;
    Ok(StatusCode::NO_CONTENT)
}

//! `/users`: the account's people, their roles and linked identities.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::json;
use spog_core::audit::Action;
use spog_core::model::{ExternalIdentity, User};
use spog_core::page::{self, Page};
use spog_core::permission::Permission;
use spog_core::validate::{self, Email};
use spog_core::{FieldError, FieldErrors, Id, Timestamp, UniqueList};
use spog_store::identity::{roles, sessions, tokens, users};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::Require;
use crate::auth::permissions::UsersManage;
use crate::error::{ApiError, ApiResult};
use crate::extract::{AppJson, AppPath, AppQuery};
use crate::hub::bus::CredentialChange;
use crate::hub::sockets::Revocation;
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_users, create_user))
        .routes(routes!(get_user, update_user, delete_user))
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListParams {
    /// 1 to 500; default 50.
    pub limit: Option<i64>,
    pub cursor: Option<String>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateUser {
    pub email: String,
    pub display_name: Option<String>,
    /// Omit for users who only sign in through an identity provider.
    pub password: Option<String>,
    /// Role names, e.g. `["auditor"]`.
    #[serde(default)]
    pub roles: UniqueList<String, 50>,
    #[serde(default)]
    pub identities: UniqueList<ExternalIdentity, 20>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateUser {
    pub display_name: Option<String>,
    pub password: Option<String>,
    pub active: Option<bool>,
    pub roles: Option<UniqueList<String, 50>>,
    pub identities: Option<UniqueList<ExternalIdentity, 20>>,
}

fn identities(
    field: &str,
    list: Vec<ExternalIdentity>,
) -> Result<Vec<ExternalIdentity>, FieldError> {
    list.into_iter()
        .map(|identity| {
            Ok(ExternalIdentity {
                provider: validate::name(&format!("{field}.provider"), &identity.provider, 100)?,
                subject: validate::name(&format!("{field}.subject"), &identity.subject, 255)?,
            })
        })
        .collect()
}

/// List users.
#[utoipa::path(get, path = "/users", tag = "users", params(ListParams),
    responses((status = 200, body = Page<User>)))]
async fn list_users(
    State(state): State<AppState>,
    auth: Require<UsersManage>,
    AppQuery(params): AppQuery<ListParams>,
) -> ApiResult<Json<Page<User>>> {
    let limit = page::limit(params.limit, page::DEFAULT_LIMIT, page::MAX_LIMIT)?;
    let mut conn = state.store.conn().await?;
    Ok(Json(
        users::list(&mut conn, auth.account(), limit, params.cursor.as_deref()).await?,
    ))
}

/// Create a user.
#[utoipa::path(post, path = "/users", tag = "users", request_body = CreateUser,
    responses((status = 201, body = User)))]
async fn create_user(
    State(state): State<AppState>,
    auth: Require<UsersManage>,
    AppJson(body): AppJson<CreateUser>,
) -> ApiResult<(StatusCode, Json<User>)> {
    let mut errors = FieldErrors::new();
    let email = errors.check(Email::parse("email", &body.email));
    let display_name = match &body.display_name {
        Some(name) => errors.check(validate::name("display_name", name, 200)),
        None => email
            .as_ref()
            .map(|e| e.as_str().split('@').next().unwrap_or_default().to_owned()),
    };
    let password = body
        .password
        .as_deref()
        .map(|p| validate::password("password", p))
        .transpose();
    let password = errors.check(password);
    let identities = errors.check(identities("identities", body.identities.into_inner()));
    let (email, display_name, password, identities) =
        errors.finish((email, display_name, password, identities))?;
    let password_hash = match password {
        Some(p) => Some(state.hashing.hash(p).await?),
        None => None,
    };
    let mut tx = state.store.begin().await?;
    let roles = roles::resolve(&mut tx, auth.account(), &body.roles, "roles").await?;
    let new = users::NewUser {
        email,
        display_name,
        password_hash,
        roles,
        identities,
    };
    let user = users::create(&mut tx, auth.account(), new, Timestamp::now()).await?;
    tx.record(auth.did(Action::UserCreate, &user).after(&user))
        .await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, Json(user)))
}

/// Get a user.
#[utoipa::path(get, path = "/users/{id}", tag = "users", params(("id" = String, Path)),
    responses((status = 200, body = User)))]
async fn get_user(
    State(state): State<AppState>,
    auth: Require<UsersManage>,
    AppPath(id): AppPath<Id<User>>,
) -> ApiResult<Json<User>> {
    let mut conn = state.store.conn().await?;
    Ok(Json(users::get(&mut conn, auth.account(), id).await?))
}

/// Change a user's name, password, roles, identities or active state.
#[utoipa::path(patch, path = "/users/{id}", tag = "users", params(("id" = String, Path)),
    request_body = UpdateUser, responses((status = 200, body = User)))]
async fn update_user(
    State(state): State<AppState>,
    auth: Require<UsersManage>,
    AppPath(id): AppPath<Id<User>>,
    AppJson(body): AppJson<UpdateUser>,
) -> ApiResult<Json<User>> {
    let mut errors = FieldErrors::new();
    let display_name = body
        .display_name
        .as_deref()
        .map(|n| validate::name("display_name", n, 200))
        .transpose();
    let display_name = errors.check(display_name).flatten();
    let password = body
        .password
        .as_deref()
        .map(|p| validate::password("password", p))
        .transpose();
    let password = errors.check(password).flatten();
    let identities = body
        .identities
        .map(|list| identities("identities", list.into_inner()))
        .transpose();
    let identities = errors.check(identities).flatten();
    if body.active == Some(false) && auth.principal.user == Some(id) {
        errors.add(FieldError::new("active", "you cannot deactivate yourself"));
    }
    errors.into_result()?;
    let password_hash = match password {
        Some(p) => Some(state.hashing.hash(p).await?),
        None => None,
    };
    let now = Timestamp::now();
    let mut tx = state.store.begin().await?;
    let before = users::get(&mut tx, auth.account(), id).await?;
    let roles = match &body.roles {
        Some(names) => Some(roles::resolve(&mut tx, auth.account(), names, "roles").await?),
        None => None,
    };
    // Otherwise the last administrator can lock everyone out of user management.
    if auth.principal.user == Some(id)
        && roles.as_ref().is_some_and(|roles| {
            !roles
                .iter()
                .any(|r| r.permissions.contains(Permission::UsersManage))
        })
    {
        return Err(
            FieldError::new("roles", "you cannot take users.manage away from yourself").into(),
        );
    }
    // A new password or a deactivation ends every credential of the user, in this transaction.
    let ends_credentials = password_hash.is_some() || body.active == Some(false);
    let changes = users::UserChanges {
        display_name,
        password_hash,
        active: body.active,
        roles,
        identities,
    };
    let user = users::update(&mut tx, auth.account(), id, changes, now).await?;
    let mut entry = auth.changed(Action::UserUpdate, &before, &user);
    if ends_credentials {
        entry = entry.metadata(end_credentials(&mut tx, auth.account(), id, None, now).await?);
    }
    tx.record(entry).await?;
    tx.commit().await?;
    let change = if ends_credentials {
        CredentialChange::Revoked(Revocation::User { id, kept: None })
    } else {
        CredentialChange::RightsChanged
    };
    state.bus.credentials_changed(auth.account(), change).await;
    Ok(Json(user))
}

/// Ends every session (but `kept`) and every `user` token of a user, in the caller's
/// transaction (a new password, a deactivation); returns the entry's metadata saying how many.
/// Once committed, announce `Revocation::User` with the same `kept` to close their sockets.
pub async fn end_credentials(
    tx: &mut spog_store::Conn,
    account: Id<spog_core::model::Account>,
    user: Id<User>,
    kept: Option<Id<sessions::Session>>,
    now: Timestamp,
) -> ApiResult<serde_json::Value> {
    let sessions_ended = sessions::revoke_all(tx, account, user, kept, now).await?;
    let tokens_revoked = tokens::revoke_acting_as(tx, account, user, now).await?;
    Ok(json!({
        "sessions_ended": sessions_ended,
        "tokens_revoked": tokens_revoked,
    }))
}

/// Delete a user.
#[utoipa::path(delete, path = "/users/{id}", tag = "users", params(("id" = String, Path)),
    responses((status = 204)))]
async fn delete_user(
    State(state): State<AppState>,
    auth: Require<UsersManage>,
    AppPath(id): AppPath<Id<User>>,
) -> ApiResult<StatusCode> {
    if auth.principal.user == Some(id) {
        return Err(ApiError::Conflict("you cannot delete yourself".to_owned()));
    }
    let mut tx = state.store.begin().await?;
    let before = users::get(&mut tx, auth.account(), id).await?;
    users::delete(&mut tx, auth.account(), id).await?;
    tx.record(
        auth.did(Action::UserDelete, &before)
            .before(&before)
            .metadata(serde_json::json!({"email": before.email})),
    )
    .await?;
    tx.commit().await?;
    let revoked = Revocation::User { id, kept: None };
    state
        .bus
        .credentials_changed(auth.account(), CredentialChange::Revoked(revoked))
        .await;
    Ok(StatusCode::NO_CONTENT)
}

//! `/api-tokens`: credentials for other SPOG components, shown once, stored hashed.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::json;
use spog_core::audit::{Action, ActorType};
use spog_core::model::{ApiToken, User};
use spog_core::page::{self, Page};
use spog_core::{
    FieldError, FieldErrors, Id, Permission, PermissionSet, Timestamp, UniqueList, validate,
};
use spog_store::identity::tokens as token_store;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::permissions::UsersManage;
use crate::auth::tokens;
use crate::auth::{Auth, Require};
use crate::error::{ApiError, ApiResult};
use crate::extract::{AppJson, AppPath, AppQuery};
use crate::http::users::ListParams;
use crate::hub::bus::CredentialChange;
use crate::hub::sockets::Revocation;
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_tokens, create_token))
        .routes(routes!(get_token, revoke_token))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateToken {
    pub name: String,
    pub actor_type: ActorType,
    pub permissions: UniqueList<String, 50>,
    /// For `user` tokens: the user the token acts as, which can only be the caller (a
    /// `user` token acts as the user who creates it; no one mints one for someone else).
    pub user_id: Option<Id<User>>,
    pub expires_at: Option<Timestamp>,
}

#[derive(Serialize, ToSchema)]
pub struct CreatedToken {
    /// The secret token. It is shown only in this response.
    pub token: String,
    pub api_token: ApiToken,
}

/// Parses permission names and refuses any the creator does not hold itself.
fn grantable(names: &[String], creator: PermissionSet) -> Result<PermissionSet, FieldError> {
    let mut set = PermissionSet::EMPTY;
    for name in names {
        let permission = Permission::parse(name).ok_or_else(|| {
            FieldError::new("permissions", format!("unknown permission `{name}`"))
        })?;
        if !creator.contains(permission) {
            return Err(FieldError::new(
                "permissions",
                format!("you cannot grant `{name}`, which you do not hold"),
            ));
        }
        set.insert(permission);
    }
    Ok(set)
}

/// The user a new token acts as: none but for `user` tokens, and for those the creator
/// itself. Acting as another user would let an administrator make changes that the trail
/// shows as that user's own; an administrator who needs to act does so as themselves.
fn acting_user(
    body: &CreateToken,
    creator: Option<Id<User>>,
) -> Result<Option<Id<User>>, FieldError> {
    match (body.actor_type, body.user_id, creator) {
        (ActorType::User, Some(asked), Some(creator)) if asked != creator => Err(FieldError::new(
            "user_id",
            "a user token acts as the user who creates it; it cannot be made for another user",
        )),
        (ActorType::User, _, Some(creator)) => Ok(Some(creator)),
        (ActorType::User, _, None) => Err(FieldError::new(
            "actor_type",
            "a user token acts as the user who creates it; a token cannot create one",
        )),
        (_, Some(_), _) => Err(FieldError::new(
            "user_id",
            "only `user` tokens act as a user",
        )),
        (_, None, _) => Ok(None),
    }
}

/// List API tokens, newest first.
#[utoipa::path(get, path = "/api-tokens", tag = "users", params(ListParams),
    responses((status = 200, body = Page<ApiToken>)))]
async fn list_tokens(
    State(state): State<AppState>,
    auth: Require<UsersManage>,
    AppQuery(params): AppQuery<ListParams>,
) -> ApiResult<Json<Page<ApiToken>>> {
    let limit = page::limit(params.limit, page::DEFAULT_LIMIT, page::MAX_LIMIT)?;
    let mut conn = state.store.conn().await?;
    Ok(Json(
        token_store::list(
            &mut conn,
            auth.account(),
            None,
            limit,
            params.cursor.as_deref(),
        )
        .await?,
    ))
}

/// Create an API token; the response is the only time the token is shown.
#[utoipa::path(post, path = "/api-tokens", tag = "users", request_body = CreateToken,
    responses((status = 201, body = CreatedToken)))]
async fn create_token(
    State(state): State<AppState>,
    auth: Require<UsersManage>,
    AppJson(body): AppJson<CreateToken>,
) -> ApiResult<(StatusCode, Json<CreatedToken>)> {
    let created = create(&state, &auth, body, false).await?;
    Ok((StatusCode::CREATED, Json(created)))
}

/// The one way a token is made: by an administrator (`/api-tokens`) or, `self_service`, by
/// a user for themselves (`/auth/me/api-tokens`, entries marked `self_service: true`).
pub async fn create(
    state: &AppState,
    auth: &Auth,
    body: CreateToken,
    self_service: bool,
) -> ApiResult<CreatedToken> {
    let now = Timestamp::now();
    let mut errors = FieldErrors::new();
    let name = errors.check(validate::name("name", &body.name, 200));
    let permissions = errors.check(grantable(&body.permissions, auth.principal.permissions));
    if body.expires_at.is_some_and(|at| at <= now) {
        errors.add(FieldError::new("expires_at", "must be in the future"));
    }
    let user_id = errors.check(acting_user(&body, auth.principal.user));
    let (name, permissions, user_id) = errors.finish((name, permissions, user_id))?;
    let mut tx = state.store.begin().await?;
    let secret = tokens::generate();
    let new = token_store::NewToken {
        name,
        token_hash: secret.hash,
        prefix: secret.prefix,
        actor_type: body.actor_type,
        permissions,
        user_id,
        created_by: auth.principal.user,
        expires_at: body.expires_at,
    };
    let api_token = token_store::create(&mut tx, auth.account(), new, now).await?;
    let mut entry = auth
        .did(Action::ApiTokenCreate, &api_token)
        .after(&api_token);
    if self_service {
        entry = entry.metadata(json!({"self_service": true}));
    }
    tx.record(entry).await?;
    tx.commit().await?;
    Ok(CreatedToken {
        token: secret.token,
        api_token,
    })
}

/// Get an API token (never the secret).
#[utoipa::path(get, path = "/api-tokens/{id}", tag = "users", params(("id" = String, Path)),
    responses((status = 200, body = ApiToken)))]
async fn get_token(
    State(state): State<AppState>,
    auth: Require<UsersManage>,
    AppPath(id): AppPath<Id<ApiToken>>,
) -> ApiResult<Json<ApiToken>> {
    let mut conn = state.store.conn().await?;
    Ok(Json(token_store::get(&mut conn, auth.account(), id).await?))
}

/// Revoke an API token; it stops working at once.
#[utoipa::path(delete, path = "/api-tokens/{id}", tag = "users", params(("id" = String, Path)),
    responses((status = 204)))]
async fn revoke_token(
    State(state): State<AppState>,
    auth: Require<UsersManage>,
    AppPath(id): AppPath<Id<ApiToken>>,
) -> ApiResult<StatusCode> {
    revoke(&state, &auth, id, None).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The one way a token is revoked; with `acting_as` (a user revoking their own), a token
/// acting as anyone else is not found, and the entry is marked `self_service: true`.
pub async fn revoke(
    state: &AppState,
    auth: &Auth,
    id: Id<ApiToken>,
    acting_as: Option<Id<User>>,
) -> ApiResult<()> {
    let mut tx = state.store.begin().await?;
    let before = token_store::get(&mut tx, auth.account(), id).await?;
    if acting_as.is_some() && before.user_id != acting_as {
        return Err(ApiError::NotFound);
    }
    let after = token_store::revoke(&mut tx, auth.account(), id, Timestamp::now()).await?;
    let mut entry = auth.changed(Action::ApiTokenRevoke, &before, &after);
    if acting_as.is_some() {
        entry = entry.metadata(json!({"self_service": true}));
    }
    tx.record(entry).await?;
    tx.commit().await?;
    state
        .bus
        .credentials_changed(
            auth.account(),
            CredentialChange::Revoked(Revocation::ApiToken { id }),
        )
        .await;
    Ok(())
}

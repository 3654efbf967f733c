//! `GET/PUT /auth-settings`: whether the account signs in only through single sign-on, and
//! which break-glass users keep their passwords (SPEC 2.1). A policy that would lock
//! everyone out is refused.

use axum::Json;
use axum::extract::State;
use serde::Deserialize;
use spog_core::audit::Action;
use spog_core::model::User;
use spog_core::sso::{AuthSettings, MAX_BREAK_GLASS};
use spog_core::{FieldError, FieldErrors, Id, Permission, Timestamp, UniqueList};
use spog_store::StoreError;
use spog_store::identity::{auth_settings, providers, roles, users};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::Require;
use crate::auth::permissions::UsersManage;
use crate::error::ApiResult;
use crate::extract::AppJson;
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(get_settings, put_settings))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PutAuthSettings {
    pub sso_only: bool,
    #[serde(default)]
    #[schema(value_type = Vec<String>)]
    pub break_glass_user_ids: UniqueList<Id<User>, MAX_BREAK_GLASS>,
}

/// The account's sign-in policy.
#[utoipa::path(get, path = "/auth-settings", tag = "users",
    responses((status = 200, body = AuthSettings)))]
async fn get_settings(
    State(state): State<AppState>,
    auth: Require<UsersManage>,
) -> ApiResult<Json<AuthSettings>> {
    let mut conn = state.store.conn().await?;
    Ok(Json(auth_settings::get(&mut conn, auth.account()).await?))
}

/// Set the account's sign-in policy.
#[utoipa::path(put, path = "/auth-settings", tag = "users", request_body = PutAuthSettings,
    responses((status = 200, body = AuthSettings)))]
async fn put_settings(
    State(state): State<AppState>,
    auth: Require<UsersManage>,
    AppJson(body): AppJson<PutAuthSettings>,
) -> ApiResult<Json<AuthSettings>> {
    let account = auth.account();
    let after = AuthSettings {
        account_id: account,
        sso_only: body.sso_only,
        break_glass_user_ids: body.break_glass_user_ids.into_inner(),
    };
    let mut tx = state.store.begin().await?;
    let mut errors = FieldErrors::new();
    let mut can_manage = false;
    for (i, user) in after.break_glass_user_ids.iter().enumerate() {
        match users::get(&mut tx, account, *user).await {
            Ok(found) => {
                let permissions = roles::permissions_of(&mut tx, found.id).await?;
                can_manage |= found.active && permissions.contains(Permission::UsersManage);
            }
            Err(StoreError::NotFound) => errors.add(FieldError::new(
                format!("break_glass_user_ids[{i}]"),
                format!("unknown user `{user}`"),
            )),
            Err(other) => return Err(other.into()),
        }
    }
    if after.sso_only {
        if providers::count(&mut tx, account).await?.1 == 0 {
            errors.add(FieldError::new(
                "sso_only",
                "needs an enabled identity provider to sign in with",
            ));
        }
        if errors.get("break_glass_user_ids").is_none() && !can_manage {
            errors.add(FieldError::new(
                "break_glass_user_ids",
                "needs an active break-glass user holding users.manage, so that no one is locked out",
            ));
        }
    }
    errors.into_result()?;
    let before = auth_settings::get(&mut tx, account).await?;
    auth_settings::put(&mut tx, &after, Timestamp::now()).await?;
    tx.record(auth.changed(Action::AuthSettingsUpdate, &before, &after))
        .await?;
    tx.commit().await?;
    Ok(Json(after))
}

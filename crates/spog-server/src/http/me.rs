//! `/auth/me/...`: what every user may do for themselves (SPEC 2.1 self-service): change their
//! password, review and end their sessions, make and revoke their own API tokens. No
//! permission is needed, but a login session is: an API token cannot manage its own user.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::json;
use spog_core::audit::{Action, ActorType};
use spog_core::model::{ApiToken, User};
use spog_core::page::{self, Page};
use spog_core::validate::{self, Email};
use spog_core::{FieldError, FieldErrors, Id, Timestamp, UniqueList};
use spog_store::identity::sessions::{self, Session};
use spog_store::identity::{auth_settings, tokens as token_store, users};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::{Auth, Credential};
use crate::error::{ApiError, ApiResult};
use crate::extract::{AppJson, AppPath, AppQuery};
use crate::http::tokens::{self, CreateToken, CreatedToken};
use crate::http::users::{ListParams, end_credentials};
use crate::hub::bus::CredentialChange;
use crate::hub::sockets::Revocation;
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(change_password))
        .routes(routes!(list_sessions))
        .routes(routes!(revoke_session))
        .routes(routes!(revoke_other_sessions))
        .routes(routes!(list_tokens, create_token))
        .routes(routes!(revoke_token))
}

/// The caller's user and login session, or 403 for any other credential.
pub fn login_session(auth: &Auth) -> ApiResult<(Id<User>, Id<Session>)> {
    match (&auth.principal.credential, auth.principal.user) {
        (Credential::Session { id, .. }, Some(user)) => Ok((user, *id)),
        _ => Err(ApiError::Forbidden(
            "this needs a login session; an API token cannot manage its user".to_owned(),
        )),
    }
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChangePassword {
    pub current_password: Option<String>,
    pub new_password: Option<String>,
}

/// Changes the caller's password after checking the current one (through the login
/// throttle, as a login would); every other session and every `user` token of the caller
/// ends in the same transaction, the calling session stays.
pub async fn change_own_password(
    state: &AppState,
    auth: &Auth,
    current: &str,
    new: &str,
) -> ApiResult<()> {
    let (user, session) = login_session(auth)?;
    let mut errors = FieldErrors::new();
    errors.check(crate::auth::password::check_length(
        "current_password",
        current,
    ));
    let new = errors.check(validate::password("new_password", new));
    if new.as_deref() == Some(current) {
        errors.add(FieldError::new(
            "new_password",
            "must differ from the current password",
        ));
    }
    let new = errors.finish(new)?;
    let mut conn = state.store.conn().await?;
    if !auth_settings::get(&mut conn, auth.account())
        .await?
        .allows_password(user)
    {
        return Err(crate::http::auth::sso_required());
    }
    let me = users::get(&mut conn, auth.account(), user).await?;
    let hash = users::password_hash(&mut conn, auth.account(), user).await?;
    drop(conn);
    let email = Email::parse("email", &me.email)?;
    let client = auth.request.origin.map(|o| o.ip);
    let attempt = state
        .login_throttle
        .reserve(&state.store, client, &email, Timestamp::now())
        .await?;
    let matched = match state
        .hashing
        .verify_any(attempt.lane(), current.to_owned(), vec![hash])
        .await
    {
        Ok(matched) => matched,
        Err(error) => {
            let now = Timestamp::now();
            state
                .login_throttle
                .unchecked(&state.store, attempt, now)
                .await;
            return Err(error);
        }
    };
    if matched.is_none() {
        // The reservation stays counted as a failed login; the attempt is on record.
        drop(attempt);
        let mut tx = state.store.begin().await?;
        let entry = auth.did(Action::AuthPasswordChange, &me);
        tx.record(
            entry
                .failed()
                .metadata(json!({"reason": "wrong current password"})),
        )
        .await?;
        tx.commit().await?;
        return Err(FieldError::new("current_password", "is not your current password").into());
    }
    let now = Timestamp::now();
    state
        .login_throttle
        .succeeded(&state.store, attempt, now)
        .await;
    let new_hash = state.hashing.hash(new).await?;
    let mut tx = state.store.begin().await?;
    let changes = users::UserChanges {
        password_hash: Some(new_hash),
        ..Default::default()
    };
    let user_after = users::update(&mut tx, auth.account(), user, changes, now).await?;
    let ended = end_credentials(&mut tx, auth.account(), user, Some(session), now).await?;
    tx.record(
        auth.did(Action::AuthPasswordChange, &user_after)
            .metadata(ended),
    )
    .await?;
    tx.commit().await?;
    let revoked = Revocation::User {
        id: user,
        kept: Some(session),
    };
    state
        .bus
        .credentials_changed(auth.account(), CredentialChange::Revoked(revoked))
        .await;
    Ok(())
}

/// Change your own password; your other sessions and your API tokens end.
#[utoipa::path(post, path = "/auth/me/password", tag = "auth", request_body = ChangePassword,
    responses((status = 204), (status = 422)))]
async fn change_password(
    State(state): State<AppState>,
    auth: Auth,
    AppJson(body): AppJson<ChangePassword>,
) -> ApiResult<StatusCode> {
    let current = body.current_password.unwrap_or_default();
    let new = body.new_password.unwrap_or_default();
    change_own_password(&state, &auth, &current, &new).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Serialize, ToSchema)]
pub struct MySession {
    #[schema(value_type = String)]
    pub id: Id<Session>,
    pub created_at: Timestamp,
    pub expires_at: Timestamp,
    /// `password` or `sso`.
    pub method: &'static str,
    /// The identity provider of an `sso` session.
    pub provider_id: Option<String>,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    /// The session this request is made with.
    pub current: bool,
}

/// The caller's live sessions, newest first (the calling one marked `current`).
pub async fn own_sessions(state: &AppState, auth: &Auth) -> ApiResult<Vec<MySession>> {
    let (user, current) = login_session(auth)?;
    let mut conn = state.store.conn().await?;
    let live = sessions::live_of(&mut conn, auth.account(), user, Timestamp::now()).await?;
    Ok(live
        .into_iter()
        .map(|s| MySession {
            id: s.id,
            created_at: s.created_at,
            expires_at: s.expires_at,
            method: if s.origin.provider_id.is_some() {
                "sso"
            } else {
                "password"
            },
            provider_id: s.origin.provider_id,
            ip: s.origin.ip,
            user_agent: s.origin.user_agent,
            current: s.id == current,
        })
        .collect())
}

/// Your live sessions, newest first.
#[utoipa::path(get, path = "/auth/me/sessions", tag = "auth",
    responses((status = 200, body = Vec<MySession>)))]
async fn list_sessions(
    State(state): State<AppState>,
    auth: Auth,
) -> ApiResult<Json<Vec<MySession>>> {
    Ok(Json(own_sessions(&state, &auth).await?))
}

/// Ends one of the caller's sessions at once (another user's is not found).
pub async fn revoke_own_session(state: &AppState, auth: &Auth, id: Id<Session>) -> ApiResult<()> {
    let (user, _) = login_session(auth)?;
    let mut tx = state.store.begin().await?;
    sessions::revoke_own(&mut tx, auth.account(), user, id, Timestamp::now()).await?;
    tx.record(auth.did_on(Action::AuthSessionRevoke, id, "session"))
        .await?;
    tx.commit().await?;
    state
        .bus
        .credentials_changed(
            auth.account(),
            CredentialChange::Revoked(Revocation::Session { id }),
        )
        .await;
    Ok(())
}

/// End one of your sessions; it stops working at once.
#[utoipa::path(delete, path = "/auth/me/sessions/{id}", tag = "auth",
    params(("id" = String, Path)), responses((status = 204), (status = 404)))]
async fn revoke_session(
    State(state): State<AppState>,
    auth: Auth,
    AppPath(id): AppPath<Id<Session>>,
) -> ApiResult<StatusCode> {
    revoke_own_session(&state, &auth, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Ends every session of the caller but the calling one; returns how many.
pub async fn revoke_own_other_sessions(state: &AppState, auth: &Auth) -> ApiResult<u64> {
    let (user, current) = login_session(auth)?;
    let mut tx = state.store.begin().await?;
    let revoked = sessions::revoke_all(
        &mut tx,
        auth.account(),
        user,
        Some(current),
        Timestamp::now(),
    )
    .await?;
    let entry = auth
        .entry(Action::AuthSessionRevoke)
        .metadata(json!({"revoked": revoked, "kept_session_id": current.to_string()}));
    tx.record(entry).await?;
    tx.commit().await?;
    // Only sessions ended, not the user's tokens: every open socket of the account has its
    // credential looked up again, and those of the ended sessions close.
    if revoked > 0 {
        state
            .bus
            .credentials_changed(auth.account(), CredentialChange::RightsChanged)
            .await;
    }
    Ok(revoked)
}

#[derive(Serialize, ToSchema)]
pub struct Revoked {
    pub revoked: u64,
}

/// Sign out every other session of yours.
#[utoipa::path(post, path = "/auth/me/sessions/revoke-others", tag = "auth",
    responses((status = 200, body = Revoked)))]
async fn revoke_other_sessions(
    State(state): State<AppState>,
    auth: Auth,
) -> ApiResult<Json<Revoked>> {
    let revoked = revoke_own_other_sessions(&state, &auth).await?;
    Ok(Json(Revoked { revoked }))
}

/// Your API tokens (those acting as you), newest first.
#[utoipa::path(get, path = "/auth/me/api-tokens", tag = "auth", params(ListParams),
    responses((status = 200, body = Page<ApiToken>)))]
async fn list_tokens(
    State(state): State<AppState>,
    auth: Auth,
    AppQuery(params): AppQuery<ListParams>,
) -> ApiResult<Json<Page<ApiToken>>> {
    let (user, _) = login_session(&auth)?;
    let limit = page::limit(params.limit, page::DEFAULT_LIMIT, page::MAX_LIMIT)?;
    let mut conn = state.store.conn().await?;
    let cursor = params.cursor.as_deref();
    Ok(Json(
        token_store::list(&mut conn, auth.account(), Some(user), limit, cursor).await?,
    ))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateOwnToken {
    pub name: String,
    pub permissions: UniqueList<String, 50>,
    pub expires_at: Option<Timestamp>,
}

/// Create an API token acting as you, with permissions you hold; shown only in this response.
#[utoipa::path(post, path = "/auth/me/api-tokens", tag = "auth", request_body = CreateOwnToken,
    responses((status = 201, body = CreatedToken)))]
async fn create_token(
    State(state): State<AppState>,
    auth: Auth,
    AppJson(body): AppJson<CreateOwnToken>,
) -> ApiResult<(StatusCode, Json<CreatedToken>)> {
    let (user, _) = login_session(&auth)?;
    let body = CreateToken {
        name: body.name,
        actor_type: ActorType::User,
        permissions: body.permissions,
        user_id: Some(user),
        expires_at: body.expires_at,
    };
    let created = tokens::create(&state, &auth, body, true).await?;
    Ok((StatusCode::CREATED, Json(created)))
}

/// Revoke one of your API tokens (one acting as someone else is not found).
#[utoipa::path(delete, path = "/auth/me/api-tokens/{id}", tag = "auth",
    params(("id" = String, Path)), responses((status = 204), (status = 404)))]
async fn revoke_token(
    State(state): State<AppState>,
    auth: Auth,
    AppPath(id): AppPath<Id<ApiToken>>,
) -> ApiResult<StatusCode> {
    let (user, _) = login_session(&auth)?;
    tokens::revoke(&state, &auth, id, Some(user)).await?;
    Ok(StatusCode::NO_CONTENT)
}

//! `POST /auth/login`, `POST /auth/logout`, `GET /auth/me`.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::json;
use spog_core::audit::{Action, Actor, ActorType, AuditEntry, Source};
use spog_core::model::{Account, User};
use spog_core::validate::Email;
use spog_core::{FieldErrors, Id, PermissionSet, Timestamp};
use spog_store::identity::sessions::{self, Session};
use spog_store::identity::{auth_settings, users};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::{Auth, Credential, RequestInfo, jwt, password};
use crate::error::{ApiError, ApiResult};
use crate::extract::AppJson;
use crate::hub::bus::CredentialChange;
use crate::hub::sockets::Revocation;
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(login))
        .routes(routes!(logout))
        .routes(routes!(me))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    pub email: String,
    pub password: String,
}

#[derive(Serialize, ToSchema)]
pub struct LoginResponse {
    /// A session JWT for `Authorization: Bearer`.
    pub token: String,
    pub expires_at: Timestamp,
    pub user: User,
}

/// The outcome of a successful login, shared by the API and the console's login form.
pub struct LoggedIn {
    pub token: String,
    pub session: Id<Session>,
    pub expires_at: Timestamp,
    pub user: User,
}

const BAD_LOGIN: &str = "the email or password is wrong";

/// Checks the password, opens a session and records the login, or records the failure.
/// The attempt passes the throttle before any password is hashed (429 otherwise), and the
/// hashing itself is bounded (429 when no core frees up in time).
pub async fn log_in(
    state: &AppState,
    request: &RequestInfo,
    email: &str,
    password_text: &str,
    source: Source,
) -> ApiResult<LoggedIn> {
    let mut errors = FieldErrors::new();
    let email = errors.check(Email::parse("email", email));
    errors.check(password::check_length("password", password_text));
    let email = errors.finish(email)?;
    let client = request.origin.map(|o| o.ip);
    let attempt = state
        .login_throttle
        .reserve(&state.store, client, &email, Timestamp::now())
        .await?;
    let mut conn = state.store.conn().await?;
    let candidates = users::login_candidates(&mut conn, &email).await?;
    drop(conn);
    let hashes = candidates.iter().map(|c| c.password_hash.clone()).collect();
    let matched = match state
        .hashing
        .verify_any(attempt.lane(), password_text.to_owned(), hashes)
        .await
    {
        Ok(matched) => matched,
        Err(error) => {
            state
                .login_throttle
                .unchecked(&state.store, attempt, Timestamp::now())
                .await;
            return Err(error);
        }
    };
    let now = Timestamp::now();
    let candidate = match matched {
        Some(index) if candidates[index].active => &candidates[index],
        _ => {
            if candidates.is_empty() {
                // No account to record the attempt in: log it for the operator instead.
                tracing::warn!(email = email.as_str(), ip = ?request.ip, "login with an unknown email");
            }
            // The attempt stays counted. Each account with this email records it.
            for candidate in &candidates {
                let reason = if matched.is_some_and(|i| candidates[i].user == candidate.user) {
                    "user is deactivated"
                } else {
                    "wrong password"
                };
                let mut tx = state.store.begin().await?;
                let user = users::get(&mut tx, candidate.account, candidate.user).await?;
                let entry = login_entry(request, candidate.account, &user, source);
                tx.record(entry.failed().metadata(json!({"reason": reason})))
                    .await?;
                tx.commit().await?;
            }
            return Err(ApiError::Unauthenticated(BAD_LOGIN.to_owned()));
        }
    };
    let policy = {
        let mut conn = state.store.conn().await?;
        auth_settings::get(&mut conn, candidate.account).await?
    };
    if !policy.allows_password(candidate.user) {
        // A correct password, refused by the account's policy: on record, no session.
        let mut tx = state.store.begin().await?;
        let user = users::get(&mut tx, candidate.account, candidate.user).await?;
        let entry = login_entry(request, candidate.account, &user, source);
        tx.record(entry.failed().metadata(json!({"reason": "sso_only"})))
            .await?;
        tx.commit().await?;
        return Err(sso_required());
    }
    state
        .login_throttle
        .succeeded(&state.store, attempt, now)
        .await;
    let mut tx = state.store.begin().await?;
    let user = users::get(&mut tx, candidate.account, candidate.user).await?;
    let entry = login_entry(request, candidate.account, &user, source);
    let session: Id<Session> = Id::new();
    let expires_at = now.plus(state.config.session_ttl);
    let origin = sessions::Origin {
        ip: request.ip.clone(),
        user_agent: request.user_agent.clone(),
        provider_id: None,
    };
    sessions::create(
        &mut tx,
        candidate.account,
        user.id,
        session,
        (now, expires_at),
        &origin,
    )
    .await?;
    users::record_login(&mut tx, user.id, now).await?;
    tx.record(entry.metadata(json!({"session_id": session.to_string()})))
        .await?;
    tx.commit().await?;
    let claims = jwt::Claims {
        sub: user.id.to_string(),
        sid: session.to_string(),
        acc: candidate.account.to_string(),
        iat: now.unix_seconds(),
        exp: expires_at.unix_seconds(),
    };
    Ok(LoggedIn {
        token: jwt::issue(&state.keys.jwt, &claims),
        session,
        expires_at,
        user,
    })
}

/// 403 `sso_required`: the account signs in through its identity providers only.
pub fn sso_required() -> ApiError {
    ApiError::Coded {
        status: StatusCode::FORBIDDEN,
        code: "sso_required",
        message: "this account signs in through single sign-on; use your identity provider"
            .to_owned(),
        details: None,
    }
}

/// The `auth.login` entry of an attempt on `user`.
fn login_entry(
    request: &RequestInfo,
    account: Id<Account>,
    user: &User,
    source: Source,
) -> AuditEntry {
    let actor = Actor {
        id: Some(user.id.to_string()),
        email: Some(user.email.clone()),
        name: Some(user.display_name.clone()),
        ..request.actor(account, ActorType::User, source)
    };
    actor.did(Action::AuthLogin, user)
}

/// Ends the caller's session (for session credentials; API tokens are revoked instead).
pub async fn log_out(state: &AppState, auth: &Auth) -> ApiResult<()> {
    let Credential::Session { id, .. } = auth.principal.credential else {
        return Err(ApiError::BadRequest(
            "API tokens do not log out; revoke the token instead".to_owned(),
        ));
    };
    let mut tx = state.store.begin().await?;
    sessions::revoke(&mut tx, auth.account(), id, Timestamp::now()).await?;
    let mut entry = auth.entry(Action::AuthLogout);
    entry.resource_id = Some(auth.principal.actor_id.clone());
    entry.resource_name = auth.principal.email.clone();
    tx.record(entry).await?;
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

/// Log in with email and password.
#[utoipa::path(post, path = "/auth/login", tag = "auth", request_body = LoginRequest,
    responses((status = 200, body = LoginResponse)))]
async fn login(
    State(state): State<AppState>,
    request: RequestInfoExtract,
    AppJson(body): AppJson<LoginRequest>,
) -> ApiResult<Json<LoginResponse>> {
    let logged_in = log_in(&state, &request.0, &body.email, &body.password, Source::Api).await?;
    Ok(Json(LoginResponse {
        token: logged_in.token,
        expires_at: logged_in.expires_at,
        user: logged_in.user,
    }))
}

/// End the current session.
#[utoipa::path(post, path = "/auth/logout", tag = "auth", responses((status = 204)))]
async fn logout(State(state): State<AppState>, auth: Auth) -> ApiResult<StatusCode> {
    log_out(&state, &auth).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Serialize, ToSchema)]
pub struct Me {
    pub account_id: Id<Account>,
    pub actor_type: ActorType,
    pub actor_id: String,
    pub user_id: Option<Id<User>>,
    pub email: Option<String>,
    pub name: String,
    pub permissions: PermissionSet,
}

/// The caller: account, identity and effective permissions.
#[utoipa::path(get, path = "/auth/me", tag = "auth", responses((status = 200, body = Me)))]
async fn me(auth: Auth) -> Json<Me> {
    let principal = auth.principal;
    Json(Me {
        account_id: principal.account,
        actor_type: principal.actor_type,
        actor_id: principal.actor_id,
        user_id: principal.user,
        email: principal.email,
        name: principal.name,
        permissions: principal.permissions,
    })
}

/// The request's origin, for handlers that run before anyone is authenticated.
pub struct RequestInfoExtract(pub RequestInfo);

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for RequestInfoExtract {
    type Rejection = std::convert::Infallible;
    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _: &S,
    ) -> Result<Self, Self::Rejection> {
        Ok(Self(RequestInfo::from_parts(parts)))
    }
}

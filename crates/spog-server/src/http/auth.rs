//! `POST /auth/login`, `POST /auth/logout`, `GET /auth/me`.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::json;
use spog_core::audit::{ActorType, Source};
use spog_core::model::{Account, User};
use spog_core::validate::Email;
use spog_core::{Id, PermissionSet, Timestamp};
use spog_store::identity::sessions::{self, Session};
use spog_store::identity::users;
use spog_store::{StoreError, audit};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::{Auth, Credential, RequestInfo, jwt, password};
use crate::error::{ApiError, ApiResult};
use crate::extract::AppJson;
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
pub async fn log_in(
    state: &AppState,
    request: &RequestInfo,
    email: &str,
    password_text: &str,
    source: Source,
) -> ApiResult<LoggedIn> {
    let email = Email::parse("email", email)?;
    let ip = request.ip.as_deref();
    let started = std::time::Instant::now();
    if !state.login_throttle.allows(ip, email.as_str(), started) {
        return Err(ApiError::RateLimited);
    }
    let mut conn = state.store.conn().await?;
    let candidate = match users::login_candidate(&mut conn, &email).await {
        Ok(candidate) => Some(candidate),
        Err(StoreError::NotFound) => None,
        Err(other) => return Err(other.into()),
    };
    drop(conn);
    let stored = candidate.as_ref().and_then(|c| c.password_hash.clone());
    let password_ok = password::verify(password_text.to_owned(), stored).await;
    if !password_ok {
        state.login_throttle.failed(ip, email.as_str(), started);
    }
    let Some(candidate) = candidate else {
        // No account to record the attempt in: log it for the operator instead.
        tracing::warn!(email = email.as_str(), ip = ?request.ip, "login with an unknown email");
        return Err(ApiError::Unauthenticated(BAD_LOGIN.to_owned()));
    };
    let now = Timestamp::now();
    let mut tx = state.store.begin().await?;
    let user = users::get(&mut tx, candidate.account, candidate.user).await?;
    let mut entry = request.entry(candidate.account, "auth.login", "user");
    entry.actor_type = ActorType::User;
    entry.actor_id = Some(user.id.to_string());
    entry.actor_email = Some(user.email.clone());
    entry.actor_name = Some(user.display_name.clone());
    entry.source = source;
    entry.resource_id = Some(user.id.to_string());
    entry.resource_name = Some(user.email.clone());
    if !password_ok || !candidate.active {
        let reason = if password_ok {
            "user is deactivated"
        } else {
            "wrong password"
        };
        audit::record(&mut tx, entry.failed().metadata(json!({"reason": reason}))).await?;
        tx.commit().await?;
        return Err(ApiError::Unauthenticated(BAD_LOGIN.to_owned()));
    }
    state.login_throttle.succeeded(ip, email.as_str());
    let session: Id<Session> = Id::new();
    let expires_at = now.plus(state.config.session_ttl);
    sessions::create(
        &mut tx,
        candidate.account,
        user.id,
        session,
        now,
        expires_at,
    )
    .await?;
    users::record_login(&mut tx, user.id, now).await?;
    audit::record(
        &mut tx,
        entry.metadata(json!({"session_id": session.to_string()})),
    )
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

/// Ends the caller's session (for session credentials; API tokens are revoked instead).
pub async fn log_out(state: &AppState, auth: &Auth) -> ApiResult<()> {
    let Credential::Session { id, .. } = auth.principal.credential else {
        return Err(ApiError::BadRequest(
            "API tokens do not log out; revoke the token instead".to_owned(),
        ));
    };
    let mut tx = state.store.begin().await?;
    sessions::revoke(&mut tx, auth.account(), id, Timestamp::now()).await?;
    let mut entry = auth.entry("auth.logout", "user");
    entry.resource_id = Some(auth.principal.actor_id.clone());
    entry.resource_name = auth.principal.email.clone();
    audit::record(&mut tx, entry).await?;
    tx.commit().await?;
    state.auth_cache.clear();
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

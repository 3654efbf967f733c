//! Who is calling: resolved once per request from a bearer token or the session cookie.

use std::net::SocketAddr;

use axum::extract::ConnectInfo;
use axum::http::HeaderMap;
use axum::http::header::{AUTHORIZATION, USER_AGENT};
use axum::http::request::Parts;
use axum_extra::extract::CookieJar;
use spog_core::audit::{Actor, ActorType, Source};
use spog_core::model::{Account, ApiToken, Host, HostAgent, User};
use spog_core::{Id, Permission, PermissionSet, Timestamp};
use spog_store::agents::credentials;
use spog_store::identity::sessions::Session;
use spog_store::identity::{roles, sessions, tokens as token_store};
use spog_store::{Conn, Store, StoreError};

use super::client::ClientOrigin;
use super::csrf::SESSION_COOKIE;
use super::{jwt, tokens};
use crate::agents;
use crate::error::ApiError;
use crate::hub::sockets::CredentialId;
use crate::state::AppState;
use crate::trace;

#[derive(Clone, Debug)]
pub enum Credential {
    /// A login session, presented as a bearer JWT or (from the console) as a cookie.
    Session {
        id: Id<Session>,
        cookie: bool,
    },
    ApiToken(Id<ApiToken>),
    /// A host's agent credential (SPEC 12.1): it acts for its own host only.
    Agent {
        id: Id<HostAgent>,
        host: Id<Host>,
    },
}

#[derive(Clone, Debug)]
pub struct Principal {
    pub account: Id<Account>,
    pub actor_type: ActorType,
    /// The user's id, or for non-user tokens the token's id.
    pub actor_id: String,
    /// The user acted as: a session's user or a `user` token's user.
    pub user: Option<Id<User>>,
    pub email: Option<String>,
    pub name: String,
    pub permissions: PermissionSet,
    pub credential: Credential,
    /// The credential's name in the audit trail: `session`, or the API token's name.
    pub credential_name: String,
}

impl Principal {
    /// The id of the session or API token, as entries name it.
    pub fn credential_id(&self) -> String {
        match &self.credential {
            Credential::Session { id, .. } => id.to_string(),
            Credential::ApiToken(id) => id.to_string(),
            Credential::Agent { id, .. } => id.to_string(),
        }
    }

    /// For an agent credential, the one host it acts for.
    pub fn agent_host(&self) -> Option<Id<Host>> {
        match self.credential {
            Credential::Agent { host, .. } => Some(host),
            _ => None,
        }
    }

    pub fn source(&self) -> Source {
        match (&self.credential, self.actor_type) {
            (Credential::Session { cookie: true, .. }, _) => Source::Web,
            (_, ActorType::Agent) => Source::Agent,
            (_, ActorType::Workflow) => Source::Workflow,
            _ => Source::Api,
        }
    }
}

/// Where a request came from, for the audit trail, the login throttle and cookies.
#[derive(Clone, Debug, Default)]
pub struct RequestInfo {
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    pub request_id: Option<String>,
    /// The client as [`super::client`] decided it (absent only without a socket address).
    pub origin: Option<ClientOrigin>,
}

impl RequestInfo {
    pub fn from_parts(parts: &Parts) -> Self {
        let header = |name: &str| {
            parts
                .headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(|v| v.chars().take(512).collect::<String>())
        };
        let origin = parts.extensions.get::<ClientOrigin>().copied().or_else(|| {
            parts
                .extensions
                .get::<ConnectInfo<SocketAddr>>()
                .map(|ConnectInfo(addr)| ClientOrigin {
                    ip: addr.ip(),
                    https: false,
                })
        });
        Self {
            ip: origin.map(|o| o.ip.to_string()),
            user_agent: header(USER_AGENT.as_str()),
            request_id: header("x-request-id"),
            origin,
        }
    }

    /// An actor of `account` at the request's origin, known only by its type and source:
    /// the start of every actor of a request.
    pub fn actor(&self, account: Id<Account>, actor_type: ActorType, source: Source) -> Actor {
        Actor {
            ip: self.ip.clone(),
            user_agent: self.user_agent.clone(),
            request_id: self.request_id.clone(),
            ..Actor::new(account, actor_type, source)
        }
    }
}

/// The credential a request presents, before it is checked.
enum Presented {
    Bearer(String),
    Cookie(String),
}

fn presented(headers: &HeaderMap) -> Option<Presented> {
    if let Some(value) = headers.get(AUTHORIZATION).and_then(|v| v.to_str().ok()) {
        let token = value
            .strip_prefix("Bearer ")
            .or_else(|| value.strip_prefix("bearer "))?;
        return Some(Presented::Bearer(token.trim().to_owned()));
    }
    CookieJar::from_headers(headers)
        .get(SESSION_COOKIE)
        .map(|c| Presented::Cookie(c.value().to_owned()))
}

/// The credential a request presents as it was given (a bearer token or the session cookie's
/// token), to be presented again on the caller's behalf to a peer instance (SPEC 13.4).
pub fn presented_token(headers: &HeaderMap) -> Option<String> {
    match presented(headers)? {
        Presented::Bearer(token) | Presented::Cookie(token) => Some(token),
    }
}

const INVALID: &str = "the credential is invalid, expired or revoked";

/// Resolves the caller, or 401. An agent credential is refused (403): it serves only the
/// endpoints that take one (see [`authenticate_any`]).
pub async fn authenticate(state: &AppState, headers: &HeaderMap) -> Result<Principal, ApiError> {
    let principal = authenticate_any(state, headers).await?;
    if principal.agent_host().is_some() {
        return Err(agent_refused());
    }
    Ok(principal)
}

/// What an agent credential is told where it is not accepted.
pub fn agent_refused() -> ApiError {
    ApiError::Forbidden(
        "an agent credential may only connect the agent socket and report for its own host"
            .to_owned(),
    )
}

/// Resolves the caller, agent credentials included, or 401.
pub async fn authenticate_any(
    state: &AppState,
    headers: &HeaderMap,
) -> Result<Principal, ApiError> {
    let presented = presented(headers)
        .ok_or_else(|| ApiError::Unauthenticated("authentication required".to_owned()))?;
    let principal = match presented {
        Presented::Bearer(token) if token.starts_with(agents::CREDENTIAL_PREFIX) => {
            from_agent_credential(state, &token).await
        }
        Presented::Bearer(token) if token.starts_with(tokens::PREFIX) => {
            from_api_token(state, &token).await
        }
        Presented::Bearer(token) => from_session(state, &token, false).await,
        Presented::Cookie(token) => from_session(state, &token, true).await,
    }?;
    trace::record_caller(&principal);
    Ok(principal)
}

/// `resolve`'s caller, or the one it gave for `key` within the cache's time to live.
async fn cached<F>(state: &AppState, key: String, resolve: F) -> Result<Principal, ApiError>
where
    F: Future<Output = Result<Principal, ApiError>>,
{
    if let Some(principal) = state.auth_cache.get(&key) {
        return Ok(principal);
    }
    let principal = resolve.await?;
    state.auth_cache.put(key, &principal);
    Ok(principal)
}

/// Resolves a session JWT or an API token given outside the usual headers (`?token=`).
pub async fn authenticate_token(state: &AppState, token: &str) -> Result<Principal, ApiError> {
    let principal = if token.starts_with(agents::CREDENTIAL_PREFIX) {
        Err(agent_refused())
    } else if token.starts_with(tokens::PREFIX) {
        from_api_token(state, token).await
    } else {
        from_session(state, token, false).await
    }?;
    trace::record_caller(&principal);
    Ok(principal)
}

fn unauthenticated() -> ApiError {
    ApiError::Unauthenticated(INVALID.to_owned())
}

fn missing_is_unauthenticated(error: StoreError) -> ApiError {
    match error {
        StoreError::NotFound => unauthenticated(),
        other => other.into(),
    }
}

async fn from_session(state: &AppState, token: &str, cookie: bool) -> Result<Principal, ApiError> {
    let now = Timestamp::now();
    // The signature and expiry are checked on every request; only the lookup is cached.
    let claims = jwt::verify(&state.keys.jwt, token, now).ok_or_else(unauthenticated)?;
    let session: Id<Session> = claims.sid.parse().map_err(|_| unauthenticated())?;
    let key = format!("session:{cookie}:{session}");
    cached(
        state,
        key,
        session_principal(state, claims, session, cookie, now),
    )
    .await
}

async fn session_principal(
    state: &AppState,
    claims: jwt::Claims,
    session: Id<Session>,
    cookie: bool,
    now: Timestamp,
) -> Result<Principal, ApiError> {
    let mut conn = state.store.conn().await?;
    let principal = principal_of_session(&mut conn, session, cookie, now).await?;
    if principal.actor_id != claims.sub || principal.account.to_string() != claims.acc {
        return Err(unauthenticated());
    }
    Ok(principal)
}

/// The caller a live session stands for, with its user's permissions now.
async fn principal_of_session(
    conn: &mut Conn,
    session: Id<Session>,
    cookie: bool,
    now: Timestamp,
) -> Result<Principal, ApiError> {
    let user = sessions::live_user(conn, session, now)
        .await
        .map_err(missing_is_unauthenticated)?;
    let permissions = roles::permissions_of(conn, user.user).await?;
    Ok(Principal {
        account: user.account,
        actor_type: ActorType::User,
        actor_id: user.user.to_string(),
        user: Some(user.user),
        email: Some(user.email),
        name: user.display_name,
        permissions,
        credential: Credential::Session {
            id: session,
            cookie,
        },
        credential_name: "session".to_owned(),
    })
}

/// Looks a credential up again by its id, bypassing the cache (open sockets' re-checks):
/// its caller as it is now, or 401 when it has ended.
pub async fn principal_again(
    store: &Store,
    account: Id<Account>,
    credential: CredentialId,
    now: Timestamp,
) -> Result<Principal, ApiError> {
    let mut conn = store.conn().await?;
    let principal = match credential {
        CredentialId::Session(session) => {
            principal_of_session(&mut conn, session, false, now).await?
        }
        CredentialId::ApiToken(token) => {
            let api_token = token_store::get(&mut conn, account, token)
                .await
                .map_err(missing_is_unauthenticated)?;
            principal_of_token(&mut conn, account, api_token, now).await?
        }
        CredentialId::Agent(id) => {
            let found = credentials::by_id(&mut conn, account, id)
                .await
                .map_err(missing_is_unauthenticated)?;
            principal_of_agent(found)
        }
    };
    if principal.account != account {
        return Err(unauthenticated());
    }
    Ok(principal)
}

/// Agent credentials are looked up on every use, never cached: a revocation refuses them at
/// once on every instance (SPEC 12.1). Agents use them once per connection, not per request.
async fn from_agent_credential(state: &AppState, token: &str) -> Result<Principal, ApiError> {
    let mut conn = state.store.conn().await?;
    let found = credentials::by_hash(&mut conn, &tokens::hash(token))
        .await
        .map_err(missing_is_unauthenticated)?;
    Ok(principal_of_agent(found))
}

/// The caller an agent credential stands for: actor type `agent`, named `agent:{hostname}`,
/// reporting (heartbeats, metrics, recordings) for its host only.
pub fn principal_of_agent(found: credentials::AgentCredential) -> Principal {
    let name = format!("agent:{}", found.hostname);
    Principal {
        account: found.account,
        actor_type: ActorType::Agent,
        actor_id: found.credential.to_string(),
        user: None,
        email: None,
        name: name.clone(),
        permissions: PermissionSet::from_iter([
            Permission::EventsPublish,
            Permission::SessionRecordingsWrite,
        ]),
        credential: Credential::Agent {
            id: found.credential,
            host: found.host,
        },
        credential_name: name,
    }
}

async fn from_api_token(state: &AppState, token: &str) -> Result<Principal, ApiError> {
    cached(
        state,
        format!("token:{token}"),
        api_token_principal(state, token),
    )
    .await
}

async fn api_token_principal(state: &AppState, token: &str) -> Result<Principal, ApiError> {
    let now = Timestamp::now();
    let mut conn = state.store.conn().await?;
    let found = token_store::by_hash(&mut conn, &tokens::hash(token))
        .await
        .map_err(missing_is_unauthenticated)?;
    let api_token = found.token;
    let last_used_at = api_token.last_used_at;
    let id = api_token.id;
    let principal = principal_of_token(&mut conn, found.account, api_token, now).await?;
    drop(conn);
    if last_used_at.is_none_or(|at| at.micros() < now.micros() - 60_000_000) {
        let store = state.store.clone();
        // Bookkeeping off the request path; losing one update costs nothing.
        tokio::spawn(async move {
            if let Ok(mut tx) = store.begin().await
                && token_store::touch(&mut tx, id, now).await.is_ok()
            {
                let _ = tx.commit_unaudited().await;
            }
        });
    }
    Ok(principal)
}

/// The caller an API token stands for, unless it is revoked or expired; a `user` token acts
/// as its user, never beyond what the user may do now, and not at all for an inactive user.
async fn principal_of_token(
    conn: &mut Conn,
    account: Id<Account>,
    api_token: ApiToken,
    now: Timestamp,
) -> Result<Principal, ApiError> {
    let expired = api_token.expires_at.is_some_and(|at| at <= now);
    if api_token.revoked_at.is_some() || expired {
        return Err(unauthenticated());
    }
    let mut principal = Principal {
        account,
        actor_type: api_token.actor_type,
        actor_id: api_token.id.to_string(),
        user: None,
        email: None,
        name: api_token.name.clone(),
        permissions: api_token.permissions,
        credential: Credential::ApiToken(api_token.id),
        credential_name: api_token.name.clone(),
    };
    if let Some(user_id) = api_token.user_id {
        let user = spog_store::identity::users::get(conn, account, user_id)
            .await
            .map_err(missing_is_unauthenticated)?;
        if !user.active {
            return Err(unauthenticated());
        }
        let user_permissions = roles::permissions_of(conn, user_id).await?;
        principal.actor_id = user_id.to_string();
        principal.user = Some(user_id);
        principal.email = Some(user.email);
        principal.name = user.display_name;
        principal.permissions = api_token.permissions.intersection(user_permissions);
    }
    Ok(principal)
}

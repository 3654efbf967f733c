use std::marker::PhantomData;
use std::ops::Deref;

use axum::extract::{FromRequestParts, MatchedPath, RawPathParams};
use axum::http::Method;
use axum::http::request::Parts;
use serde::Serialize;
use serde_json::json;
use spog_core::audit::{Action, Actor, AuditEntry, Audited};
use spog_core::model::{Account, Host};
use spog_core::recordings::{DesktopRecording, TerminalRecording};
use spog_core::{Id, Permission};
use spog_store::identity::hosts::HostScope;
use spog_store::recordings;

use super::csrf;
use super::principal::{Credential, Principal, RequestInfo, agent_refused, authenticate_any};
use crate::error::ApiError;
use crate::state::AppState;

/// An authenticated caller and where the request came from.
#[derive(Clone, Debug)]
pub struct Auth {
    pub principal: Principal,
    pub request: RequestInfo,
}

impl Auth {
    pub fn account(&self) -> Id<Account> {
        self.principal.account
    }

    pub fn has(&self, permission: Permission) -> bool {
        self.principal.permissions.contains(permission)
    }

    /// Refuses (404, as for a host of another account) an agent credential acting for a host
    /// other than its own; other callers pass.
    pub fn acts_for(&self, host: Id<Host>) -> Result<(), ApiError> {
        match self.principal.agent_host() {
            Some(own) if own != host => Err(ApiError::NotFound),
            _ => Ok(()),
        }
    }

    /// Which hosts (and so which sessions and recordings) the caller may see: all of the
    /// account's with `hosts.manage` or as a component's token, else those granted to the user.
    pub fn host_scope(&self) -> HostScope {
        match self.principal.user {
            Some(user) if !self.has(Permission::HostsManage) => HostScope::GrantedTo(user),
            _ => HostScope::All,
        }
    }

    /// The caller as the audit trail names it, with the credential the change is made with:
    /// a `user` token acting as its user is told apart from the user's own session.
    pub fn actor(&self) -> Actor {
        let principal = &self.principal;
        Actor {
            id: Some(principal.actor_id.clone()),
            email: principal.email.clone(),
            name: Some(principal.name.clone()),
            credential_id: Some(principal.credential_id()),
            credential_name: Some(principal.credential_name.clone()),
            ..self
                .request
                .actor(principal.account, principal.actor_type, principal.source())
        }
    }

    /// The entry of `action` done by this caller to `object` ([`Actor::did`]).
    pub fn did(&self, action: Action, object: &impl Audited) -> AuditEntry {
        self.actor().did(action, object)
    }

    /// The entry of `action` changing `before` into `after` ([`Actor::changed`]).
    pub fn changed<T: Audited + Serialize>(
        &self,
        action: Action,
        before: &impl Serialize,
        after: &T,
    ) -> AuditEntry {
        self.actor().changed(action, before, after)
    }

    /// The entry of `action` done by this caller to something known by its id and name.
    pub fn did_on(&self, action: Action, id: impl ToString, name: impl Into<String>) -> AuditEntry {
        self.actor().did_on(action, id, name)
    }

    /// The entry of `action` done by this caller, naming no object.
    pub fn entry(&self, action: Action) -> AuditEntry {
        self.actor().entry(action)
    }
}

impl FromRequestParts<AppState> for Auth {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        if let Some(auth) = parts.extensions.get::<Auth>() {
            return Ok(auth.clone());
        }
        let principal = authenticate_any(state, &parts.headers).await?;
        agent_may_call(parts, state, &principal).await?;
        if let Credential::Session { id, cookie: true } = &principal.credential {
            csrf::check(&state.keys, &id.to_string(), &parts.method, &parts.headers)?;
        }
        let auth = Auth {
            principal,
            request: RequestInfo::from_parts(parts),
        };
        parts.extensions.insert(auth.clone());
        Ok(auth)
    }
}

/// What an endpoint an agent credential may call acts on.
#[derive(Clone, Copy)]
enum AgentTarget {
    /// A host the handler checks with [`Auth::acts_for`].
    Host,
    /// The terminal session named by the path's `{id}`.
    Session,
    /// The desktop recording named by the path's `{id}`.
    Desktop,
}

/// The endpoints an agent credential may call besides its socket (SPEC 12.1), as routes
/// under `/api/v1`: heartbeats, metrics and recordings of its own host.
const AGENT_ROUTES: &[(Method, &str, AgentTarget)] = &[
    (
        Method::POST,
        "/api/v1/hosts/{id}/heartbeat",
        AgentTarget::Host,
    ),
    (Method::POST, "/api/v1/metrics", AgentTarget::Host),
    (Method::POST, "/api/v1/terminal/sessions", AgentTarget::Host),
    (
        Method::POST,
        "/api/v1/terminal/sessions/{id}/events",
        AgentTarget::Session,
    ),
    (
        Method::POST,
        "/api/v1/terminal/sessions/{id}/end",
        AgentTarget::Session,
    ),
    (
        Method::GET,
        "/api/v1/terminal/sessions/{id}/stream",
        AgentTarget::Session,
    ),
    (
        Method::POST,
        "/api/v1/desktop/recordings",
        AgentTarget::Host,
    ),
    (
        Method::POST,
        "/api/v1/desktop/recordings/{id}/frames",
        AgentTarget::Desktop,
    ),
    (
        Method::GET,
        "/api/v1/desktop/recordings/{id}/frames/stream",
        AgentTarget::Desktop,
    ),
    (
        Method::POST,
        "/api/v1/desktop/recordings/{id}/end",
        AgentTarget::Desktop,
    ),
];

/// Lets an agent credential through to the endpoints it may call, for its own host only:
/// another host's recording is 404, any other endpoint 403.
async fn agent_may_call(
    parts: &mut Parts,
    state: &AppState,
    principal: &Principal,
) -> Result<(), ApiError> {
    let Some(own) = principal.agent_host() else {
        return Ok(());
    };
    let route = parts
        .extensions
        .get::<MatchedPath>()
        .map(|r| r.as_str().to_owned());
    let Some((_, _, target)) = AGENT_ROUTES
        .iter()
        .find(|(method, path, _)| parts.method == method && route.as_deref() == Some(*path))
    else {
        return Err(agent_refused());
    };
    let target = *target;
    if matches!(target, AgentTarget::Host) {
        return Ok(());
    }
    let params = RawPathParams::from_request_parts(parts, state)
        .await
        .map_err(|_| ApiError::NotFound)?;
    let id = params
        .iter()
        .find(|(name, _)| *name == "id")
        .map(|(_, value)| value.to_owned())
        .ok_or(ApiError::NotFound)?;
    let mut conn = state.store.conn().await?;
    let host = match target {
        AgentTarget::Session => {
            let session = id.parse().map_err(|_| ApiError::NotFound)?;
            recordings::addressed::<TerminalRecording>(
                &mut conn,
                principal.account,
                session,
                &HostScope::All,
            )
            .await?
            .host_id
        }
        AgentTarget::Desktop => {
            let recording = id.parse().map_err(|_| ApiError::NotFound)?;
            recordings::get::<DesktopRecording>(
                &mut conn,
                principal.account,
                recording,
                &HostScope::All,
            )
            .await?
            .host_id
        }
        AgentTarget::Host => own,
    };
    if host != own {
        return Err(ApiError::NotFound);
    }
    Ok(())
}

/// A permission a handler requires, named by a marker type in [`permissions`].
pub trait RequiredPermission {
    const PERMISSION: Permission;
}

/// An authenticated caller holding permission `P`; otherwise 403, and for a mutation an audit
/// entry of the refusal.
pub struct Require<P>(pub Auth, PhantomData<P>);

impl<P> Deref for Require<P> {
    type Target = Auth;
    fn deref(&self) -> &Auth {
        &self.0
    }
}

impl<P: RequiredPermission + Send + Sync> FromRequestParts<AppState> for Require<P> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let auth = Auth::from_request_parts(parts, state).await?;
        if auth.has(P::PERMISSION) {
            return Ok(Require(auth, PhantomData));
        }
        if !matches!(parts.method, Method::GET | Method::HEAD | Method::OPTIONS) {
            record_denial(state, &auth, parts, P::PERMISSION).await;
        }
        Err(ApiError::Forbidden(format!(
            "this requires the {} permission",
            P::PERMISSION
        )))
    }
}

/// Refused mutations are on record too; failing to record one must not hide the 403.
async fn record_denial(state: &AppState, auth: &Auth, parts: &Parts, permission: Permission) {
    let mut entry = auth
        .entry(Action::PermissionDenied)
        .metadata(json!({"permission": permission.as_str()}))
        .failed();
    entry.resource_id = Some(format!("{} {}", parts.method, parts.uri.path()));
    let recorded = async {
        let mut tx = state.store.begin().await?;
        tx.record(entry).await?;
        tx.commit().await
    };
    if let Err(error) = recorded.await {
        tracing::error!(%error, "recording a refused request");
    }
}

/// Marker types for [`Require`], one per permission of SPEC 2.
pub mod permissions {
    use super::RequiredPermission;
    use spog_core::Permission;

    pub struct AuditLogsView;
    pub struct AuditLogsExport;
    pub struct AuditLogsWrite;
    pub struct SessionRecordingsView;
    pub struct SessionRecordingsWrite;
    pub struct MonitoringView;
    pub struct MonitoringManage;
    pub struct EventsPublish;
    pub struct NotificationsSend;
    pub struct HostsManage;
    pub struct UsersManage;
    pub struct TerminalConnect;
    pub struct SessionRecordingsManage;
    pub struct AuditStreamsManage;

    impl RequiredPermission for AuditStreamsManage {
        const PERMISSION: Permission = Permission::AuditStreamsManage;
    }

    impl RequiredPermission for SessionRecordingsManage {
        const PERMISSION: Permission = Permission::SessionRecordingsManage;
    }
    impl RequiredPermission for TerminalConnect {
        const PERMISSION: Permission = Permission::TerminalConnect;
    }
    impl RequiredPermission for AuditLogsView {
        const PERMISSION: Permission = Permission::AuditLogsView;
    }
    impl RequiredPermission for AuditLogsExport {
        const PERMISSION: Permission = Permission::AuditLogsExport;
    }
    impl RequiredPermission for AuditLogsWrite {
        const PERMISSION: Permission = Permission::AuditLogsWrite;
    }
    impl RequiredPermission for SessionRecordingsView {
        const PERMISSION: Permission = Permission::SessionRecordingsView;
    }
    impl RequiredPermission for SessionRecordingsWrite {
        const PERMISSION: Permission = Permission::SessionRecordingsWrite;
    }
    impl RequiredPermission for MonitoringView {
        const PERMISSION: Permission = Permission::MonitoringView;
    }
    impl RequiredPermission for MonitoringManage {
        const PERMISSION: Permission = Permission::MonitoringManage;
    }
    impl RequiredPermission for EventsPublish {
        const PERMISSION: Permission = Permission::EventsPublish;
    }
    impl RequiredPermission for NotificationsSend {
        const PERMISSION: Permission = Permission::NotificationsSend;
    }
    impl RequiredPermission for HostsManage {
        const PERMISSION: Permission = Permission::HostsManage;
    }
    impl RequiredPermission for UsersManage {
        const PERMISSION: Permission = Permission::UsersManage;
    }
}

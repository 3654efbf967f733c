//! `/hosts` and host access grants: who may see which host's sessions and recordings.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;
use spog_core::audit::Action;
use spog_core::model::{Host, HostAccess, Organization, User};
use spog_core::page::{self, Page};
use spog_core::recordings::{DesktopRecording, TerminalRecording};
use spog_core::{FieldErrors, Id, Timestamp, validate};
use spog_store::agents::credentials;
use spog_store::identity::hosts::{self, HostScope};
use spog_store::identity::{organizations, users};
use spog_store::recordings::{self, EndReason, Filter};
use spog_store::{Conn, StoreError};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::permissions::HostsManage;
use crate::auth::{Auth, Require};
use crate::error::{ApiError, ApiResult};
use crate::extract::{AppJson, AppPath, AppQuery};
use crate::recordings::ending;
use crate::recordings::kind::Recorded;
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_hosts, create_host))
        .routes(routes!(get_host, rename_host, delete_host))
        .routes(routes!(list_access))
        .routes(routes!(grant_access, revoke_access))
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct HostParams {
    pub organization_id: Option<Id<Organization>>,
    pub limit: Option<i64>,
    pub cursor: Option<String>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateHost {
    pub organization_id: Id<Organization>,
    pub hostname: String,
    pub name: Option<String>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RenameHost {
    pub name: String,
}

/// A host the caller may see, or 404.
pub async fn visible_host(conn: &mut Conn, auth: &Auth, id: Id<Host>) -> ApiResult<Host> {
    let host = hosts::get(conn, auth.account(), id).await?;
    if let HostScope::GrantedTo(user) = auth.host_scope()
        && !hosts::has_access(conn, auth.account(), id, user).await?
    {
        return Err(ApiError::NotFound);
    }
    Ok(host)
}

/// List the hosts the caller may see.
#[utoipa::path(get, path = "/hosts", tag = "hosts", params(HostParams),
    responses((status = 200, body = Page<Host>)))]
async fn list_hosts(
    State(state): State<AppState>,
    auth: Auth,
    AppQuery(params): AppQuery<HostParams>,
) -> ApiResult<Json<Page<Host>>> {
    let limit = page::limit(params.limit, page::DEFAULT_LIMIT, page::MAX_LIMIT)?;
    let mut conn = state.store.conn().await?;
    let page = hosts::list(
        &mut conn,
        auth.account(),
        params.organization_id,
        &auth.host_scope(),
        limit,
        params.cursor.as_deref(),
    )
    .await?;
    Ok(Json(page))
}

/// Register a host.
#[utoipa::path(post, path = "/hosts", tag = "hosts", request_body = CreateHost,
    responses((status = 201, body = Host)))]
async fn create_host(
    State(state): State<AppState>,
    auth: Require<HostsManage>,
    AppJson(body): AppJson<CreateHost>,
) -> ApiResult<(StatusCode, Json<Host>)> {
    let mut errors = FieldErrors::new();
    let hostname = errors.check(validate::hostname("hostname", &body.hostname));
    let name = body
        .name
        .as_deref()
        .map(|n| validate::name("name", n, 200))
        .transpose();
    let name = errors.check(name);
    let (hostname, name) = errors.finish((hostname, name))?;
    let name = name.unwrap_or_else(|| hostname.clone());
    let mut tx = state.store.begin().await?;
    organizations::get(&mut tx, auth.account(), body.organization_id)
        .await
        .map_err(|e| match e {
            StoreError::NotFound => {
                ApiError::field("organization_id", "is not an organization of this account")
            }
            other => other.into(),
        })?;
    let host = hosts::create(
        &mut tx,
        auth.account(),
        body.organization_id,
        &hostname,
        &name,
        Timestamp::now(),
    )
    .await?;
    tx.record(auth.did(Action::HostCreate, &host).after(&host))
        .await?;
    tx.commit().await?;
    state.bus.touch(auth.account(), "hosts");
    Ok((StatusCode::CREATED, Json(host)))
}

/// Get a host.
#[utoipa::path(get, path = "/hosts/{id}", tag = "hosts", params(("id" = String, Path)),
    responses((status = 200, body = Host)))]
async fn get_host(
    State(state): State<AppState>,
    auth: Auth,
    AppPath(id): AppPath<Id<Host>>,
) -> ApiResult<Json<Host>> {
    let mut conn = state.store.conn().await?;
    Ok(Json(visible_host(&mut conn, &auth, id).await?))
}

/// Rename a host.
#[utoipa::path(patch, path = "/hosts/{id}", tag = "hosts", params(("id" = String, Path)),
    request_body = RenameHost, responses((status = 200, body = Host)))]
async fn rename_host(
    State(state): State<AppState>,
    auth: Require<HostsManage>,
    AppPath(id): AppPath<Id<Host>>,
    AppJson(body): AppJson<RenameHost>,
) -> ApiResult<Json<Host>> {
    let name = validate::name("name", &body.name, 200)?;
    let mut tx = state.store.begin().await?;
    let before = hosts::get(&mut tx, auth.account(), id).await?;
    let host = hosts::rename(&mut tx, auth.account(), id, &name, Timestamp::now()).await?;
    tx.record(auth.changed(Action::HostUpdate, &before, &host))
        .await?;
    tx.commit().await?;
    Ok(Json(host))
}

/// Delete a host and its access grants. Its active sessions and recordings end
/// (`host_deleted`); its recordings stay, with its id and hostname.
#[utoipa::path(delete, path = "/hosts/{id}", tag = "hosts", params(("id" = String, Path)),
    responses((status = 204)))]
async fn delete_host(
    State(state): State<AppState>,
    auth: Require<HostsManage>,
    AppPath(id): AppPath<Id<Host>>,
) -> ApiResult<StatusCode> {
    {
        let mut conn = state.store.conn().await?;
        hosts::get(&mut conn, auth.account(), id).await?;
    }
    end_recordings::<TerminalRecording>(&state, &auth, id).await?;
    end_recordings::<DesktopRecording>(&state, &auth, id).await?;
    let mut tx = state.store.begin().await?;
    let before = hosts::get(&mut tx, auth.account(), id).await?;
    // The host's agent goes with it: its credential is refused and its socket closed.
    let agent = match credentials::revoke(&mut tx, auth.account(), id, Timestamp::now()).await {
        Err(StoreError::NotFound) => None,
        revoked => revoked?,
    };
    hosts::delete(&mut tx, auth.account(), id).await?;
    tx.record(auth.did(Action::HostDelete, &before).before(&before))
        .await?;
    tx.commit().await?;
    state.bus.agent_revoked(auth.account(), agent).await;
    state.bus.touch(auth.account(), "hosts");
    Ok(StatusCode::NO_CONTENT)
}

/// Ends the host's active recordings of a kind, as done by the caller deleting it. One that
/// starts meanwhile is refused once the host is gone, or ended by the idle job.
async fn end_recordings<R: Recorded>(
    state: &AppState,
    auth: &Auth,
    host: Id<Host>,
) -> ApiResult<()> {
    let filter = Filter {
        host: Some(host),
        active: true,
        ..Filter::default()
    };
    let mut cursor = None;
    loop {
        let page: Page<R> = {
            let mut conn = state.store.conn().await?;
            let limit = page::MAX_LIMIT;
            recordings::list(
                &mut conn,
                auth.account(),
                &HostScope::All,
                &filter,
                limit,
                cursor.as_deref(),
            )
            .await?
        };
        for recording in &page.items {
            let ending = EndReason::HostDeleted.into();
            let now = Timestamp::now();
            match ending::end(
                state,
                &auth.actor(),
                recording.id(),
                Some(recording),
                ending,
                now,
            )
            .await
            {
                Ok(_) | Err(StoreError::Conflict(_)) => {}
                Err(other) => return Err(other.into()),
            }
        }
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => return Ok(()),
        }
    }
}

/// Users granted access to a host.
#[utoipa::path(get, path = "/hosts/{id}/access", tag = "hosts", params(("id" = String, Path)),
    responses((status = 200, body = Vec<HostAccess>)))]
async fn list_access(
    State(state): State<AppState>,
    auth: Require<HostsManage>,
    AppPath(id): AppPath<Id<Host>>,
) -> ApiResult<Json<Vec<HostAccess>>> {
    let mut conn = state.store.conn().await?;
    hosts::get(&mut conn, auth.account(), id).await?;
    Ok(Json(
        hosts::access_list(&mut conn, auth.account(), id).await?,
    ))
}

/// Grant a user access to a host.
#[utoipa::path(post, path = "/hosts/{id}/access/{user_id}", tag = "hosts",
    params(("id" = String, Path), ("user_id" = String, Path)), responses((status = 204)))]
async fn grant_access(
    State(state): State<AppState>,
    auth: Require<HostsManage>,
    AppPath((id, user_id)): AppPath<(Id<Host>, Id<User>)>,
) -> ApiResult<StatusCode> {
    change_access(&state, &auth, id, user_id, true).await
}

/// Revoke a user's access to a host.
#[utoipa::path(delete, path = "/hosts/{id}/access/{user_id}", tag = "hosts",
    params(("id" = String, Path), ("user_id" = String, Path)), responses((status = 204)))]
async fn revoke_access(
    State(state): State<AppState>,
    auth: Require<HostsManage>,
    AppPath((id, user_id)): AppPath<(Id<Host>, Id<User>)>,
) -> ApiResult<StatusCode> {
    change_access(&state, &auth, id, user_id, false).await
}

async fn change_access(
    state: &AppState,
    auth: &Auth,
    host_id: Id<Host>,
    user_id: Id<User>,
    grant: bool,
) -> ApiResult<StatusCode> {
    let now = Timestamp::now();
    let mut tx = state.store.begin().await?;
    let host = hosts::get(&mut tx, auth.account(), host_id).await?;
    let user = users::get(&mut tx, auth.account(), user_id).await?;
    let changed = if grant {
        hosts::grant(&mut tx, auth.account(), host_id, user_id, now).await?
    } else {
        hosts::revoke(&mut tx, auth.account(), host_id, user_id).await?
    };
    let action = if grant {
        Action::HostAccessGrant
    } else {
        Action::HostAccessRevoke
    };
    let entry = auth.did(action, &host).metadata(
        serde_json::json!({"user_id": user.id, "user_email": user.email, "changed": changed}),
    );
    tx.record(entry).await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

//! The agent endpoints of the API (SPEC 12.1): enrollment, and a host's agent
//! (`GET`/`DELETE /hosts/{id}/agent`). The agent socket is [`crate::agents::socket`].

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use spog_core::audit::Action;
use spog_core::model::{Host, HostAgent};
use spog_core::{Id, Timestamp};
use spog_store::agents::credentials;
use spog_store::identity::hosts;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::agents::{enroll, socket};
use crate::auth::permissions::HostsManage;
use crate::auth::{Auth, Require};
use crate::error::ApiResult;
use crate::extract::AppPath;
use crate::http::hosts::visible_host;
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(enroll::enroll))
        .routes(routes!(socket::connect))
        .routes(routes!(get_agent, revoke_agent))
}

/// A host's agent: enrollment and connection (404 if it never enrolled).
#[utoipa::path(get, path = "/hosts/{id}/agent", tag = "agents", params(("id" = String, Path)),
    responses((status = 200, body = HostAgent)))]
async fn get_agent(
    State(state): State<AppState>,
    auth: Auth,
    AppPath(id): AppPath<Id<Host>>,
) -> ApiResult<Json<HostAgent>> {
    let mut conn = state.store.conn().await?;
    visible_host(&mut conn, &auth, id).await?;
    Ok(Json(credentials::get(&mut conn, auth.account(), id).await?))
}

/// Revoke a host's agent credential: refused at once everywhere, its socket closed (4401).
#[utoipa::path(delete, path = "/hosts/{id}/agent", tag = "agents", params(("id" = String, Path)),
    responses((status = 204)))]
async fn revoke_agent(
    State(state): State<AppState>,
    auth: Require<HostsManage>,
    AppPath(id): AppPath<Id<Host>>,
) -> ApiResult<StatusCode> {
    let now = Timestamp::now();
    let mut tx = state.store.begin().await?;
    let host = hosts::get(&mut tx, auth.account(), id).await?;
    let before = credentials::get(&mut tx, auth.account(), id).await?;
    let revoked = credentials::revoke(&mut tx, auth.account(), id, now).await?;
    let after = credentials::get(&mut tx, auth.account(), id).await?;
    let entry = auth
        .did(Action::HostAgentRevoke, &host)
        .before(&before)
        .after(&after)
        .metadata(serde_json::json!({"changed": revoked.is_some()}));
    tx.record(entry).await?;
    tx.commit().await?;
    state.bus.agent_revoked(auth.account(), revoked).await;
    state.bus.touch(auth.account(), "hosts");
    Ok(StatusCode::NO_CONTENT)
}

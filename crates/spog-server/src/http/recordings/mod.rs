//! Session recordings (SPEC 8): terminal sessions in asciicast v2 and desktop sessions as
//! image frames. Starting and ending are audited; the events and frames appended in between
//! are the recording itself, not changes of record, and are not (the file is their record).

pub mod desktop;
pub mod lifecycle;
mod live;
mod playback;
mod retention;
mod settings;
mod stream;
pub mod terminal;
mod verify;

use serde::Deserialize;
use spog_core::model::{Host, Organization, User};
use spog_core::{FieldError, Id};
use spog_store::identity::hosts::{self, HostScope};
use spog_store::identity::users;
use spog_store::{Conn, StoreError};
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;

use crate::auth::Auth;
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .merge(terminal::router())
        .merge(desktop::router())
        .merge(verify::router())
        .merge(settings::router())
}

/// The host and user a new recording is of: both of the caller's account, and the host one
/// the caller may see. Anything else names the field at fault.
pub async fn recording_subject(
    conn: &mut Conn,
    auth: &Auth,
    host: Id<Host>,
    user: Option<Id<User>>,
) -> ApiResult<(Id<Organization>, String)> {
    auth.acts_for(host)?;
    let not_a_host = || ApiError::field("host_id", "is not a host of this account");
    let host = hosts::get(conn, auth.account(), host)
        .await
        .map_err(|e| match e {
            StoreError::NotFound => not_a_host(),
            other => other.into(),
        })?;
    if let HostScope::GrantedTo(caller) = auth.host_scope()
        && !hosts::has_access(conn, auth.account(), host.id, caller).await?
    {
        return Err(not_a_host());
    }
    let Some(user) = user else {
        return Ok((host.organization_id, String::new()));
    };
    let user = users::get(conn, auth.account(), user)
        .await
        .map_err(|e| match e {
            StoreError::NotFound => ApiError::field("user_id", "is not a user of this account"),
            other => other.into(),
        })?;
    Ok((host.organization_id, user.email))
}

/// Refuses (429) a new recording when the account has `max_active_recordings_per_account`
/// active already, counted in the start's transaction so concurrent starts on any instance
/// cannot pass it together. Each active recording holds a recorder and its file, and one
/// runaway credential must not take those from every other tenant.
pub async fn within_active_quota(
    state: &AppState,
    tx: &mut spog_store::Tx,
    account: Id<spog_core::model::Account>,
) -> ApiResult<()> {
    let limit = state.config.max_active_recordings_per_account;
    if spog_store::recordings::active_for_start(tx, account).await? >= limit {
        return Err(ApiError::LimitReached(format!(
            "this account has {limit} active recordings (terminal sessions and desktop \
             recordings), the most allowed at once; end some before starting more"
        )));
    }
    Ok(())
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct RecordingParams {
    pub host_id: Option<Id<Host>>,
    pub user_id: Option<Id<User>>,
    pub limit: Option<i64>,
    pub cursor: Option<String>,
}

/// A WebSocket endpoint asked without a WebSocket handshake answers in the API's format.
pub fn websocket(
    upgrade: Result<
        axum::extract::WebSocketUpgrade,
        axum::extract::ws::rejection::WebSocketUpgradeRejection,
    >,
) -> ApiResult<axum::extract::WebSocketUpgrade> {
    upgrade.map_err(|rejection| {
        ApiError::BadRequest(format!(
            "this endpoint speaks WebSocket only: {}",
            rejection.body_text()
        ))
    })
}

pub fn size_field(field: &str, value: i64, max: i64) -> Result<i64, FieldError> {
    spog_core::recordings::size(field, value, max)
}

//! The API's part of a recording's lifecycle, alike for terminal sessions and desktop
//! recordings: starting one (within the account's quota, its file created before its row
//! commits), reading and listing what the caller may see, and ending it by its source.

use std::sync::Arc;

use axum::extract::WebSocketUpgrade;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::http::HeaderMap;
use axum::response::Response;
use spog_core::model::{Host, User};
use spog_core::page::{self, Page};
use spog_core::{Id, Permission, Timestamp};
use spog_store::recordings::{self, EndReason, Filter, NewRecording};
use tracing::{Instrument, Span};

use super::{RecordingParams, recording_subject};
use crate::auth::{Auth, presented_token};
use crate::error::{ApiError, ApiResult};
use crate::events::{self, Announcements};
use crate::http::ws::admit;
use crate::hub::sockets::SocketLease;
use crate::recordings::kind::Recorded;
use crate::recordings::{ending, remote};
use crate::state::AppState;
use crate::terminal::cluster::{self, Refused};

/// What a start names, checked by its handler.
pub struct Start {
    pub host: Id<Host>,
    /// None for a terminal session that started on the host (`spog-agent shell`).
    pub user: Option<Id<User>>,
    pub width: i64,
    pub height: i64,
    /// When it started: now, or when `spog-agent shell` started it while spog was away.
    pub at: Timestamp,
}

/// Starts a recording of `start.host` and `start.user`. Its files exist before it does (so it
/// plays even before its first write), and one whose files cannot be created never starts.
pub async fn start<K: Recorded>(
    state: &AppState,
    auth: &Auth,
    start: Start,
    own: K::Start<'_>,
) -> ApiResult<K> {
    let mut tx = state.store.begin().await?;
    let (organization, user_email) =
        recording_subject(&mut tx, auth, start.host, start.user).await?;
    super::within_active_quota(state, &mut tx, auth.account()).await?;
    let new = NewRecording {
        account: auth.account(),
        organization,
        host: start.host,
        user: start.user,
        user_email: &user_email,
        width: start.width,
        height: start.height,
        started_at: start.at,
        instance: &state.instance_id,
    };
    let recording: K = recordings::start(&mut tx, &new, own).await?;
    let opened = state.recorders.recorder(&recording).await;
    let mut announcements = Announcements::default();
    let committed = async {
        opened?;
        let mut entry = auth
            .did(K::STARTED, &recording)
            .after(&recording.while_running());
        if let Some(metadata) = recording.started_metadata() {
            entry = entry.metadata(metadata);
        }
        tx.record(entry).await?;
        if let Some(event) = recording.lifecycle_event(auth.account(), new.started_at) {
            events::publish(&mut tx, event, new.started_at, &mut announcements).await?;
        }
        tx.commit().await?;
        Ok::<_, ApiError>(())
    }
    .await;
    if let Err(error) = committed {
        state
            .recorders
            .discard(recording.id(), recording.file_path())
            .await;
        return Err(error);
    }
    announcements.send(&state.bus).await;
    Ok(recording)
}

/// A recording the caller may see, at the address the API knows it by.
pub async fn visible<K: Recorded>(
    state: &AppState,
    auth: &Auth,
    address: K::Address,
) -> ApiResult<K> {
    let mut conn = state.store.conn().await?;
    Ok(recordings::addressed(&mut conn, auth.account(), address, &auth.host_scope()).await?)
}

/// A recording the caller may see that is still active (409 once it has ended).
pub async fn active<K: Recorded>(
    state: &AppState,
    auth: &Auth,
    address: K::Address,
) -> ApiResult<K> {
    let recording: K = visible(state, auth, address).await?;
    if recording.has_ended() {
        return Err(ApiError::Conflict(format!("the {} has ended", K::NOUN)));
    }
    Ok(recording)
}

/// Shows the recording's spool file as an absolute path (a sealed one's object location is
/// shown as it was recorded).
pub fn located<K: Recorded>(state: &AppState, mut recording: K) -> K {
    if recording.stored().storage.is_some() {
        return recording;
    }
    let path = state.recorders.path(recording.file_path());
    *recording.file_path_mut() = path.display().to_string();
    recording
}

/// Recordings the caller may see (with `active`, only active ones), newest first.
pub async fn list<K: Recorded>(
    state: &AppState,
    auth: &Auth,
    params: RecordingParams,
    active: bool,
) -> ApiResult<Page<K>> {
    let limit = page::limit(params.limit, page::DEFAULT_LIMIT, page::MAX_LIMIT)?;
    let filter = Filter {
        host: params.host_id,
        user: params.user_id,
        active,
    };
    let mut conn = state.store.conn().await?;
    let page = recordings::list(
        &mut conn,
        auth.account(),
        &auth.host_scope(),
        &filter,
        limit,
        params.cursor.as_deref(),
    )
    .await?;
    Ok(page.map(|r| located(state, r)))
}

/// Where a source's stream into an active recording (at `path`, under `/api/v1`) goes.
pub enum Streamed<K: Recorded> {
    /// Into its recorder here: the WebSocket to accept and its lease on the instance's sockets.
    Here(WebSocketUpgrade, SocketLease, Arc<K::Recorder>),
    /// To the instance writing it, spliced: the answer to give.
    Spliced(Response),
}

pub async fn streamed<K: Recorded>(
    state: &AppState,
    auth: &Auth,
    headers: &HeaderMap,
    path: &str,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
    address: K::Address,
) -> ApiResult<Streamed<K>> {
    let upgrade = super::websocket(upgrade)?.max_message_size(state.config.body_limit);
    let lease = admit(
        state,
        &auth.principal,
        headers,
        Some(Permission::SessionRecordingsWrite),
    )?;
    let recording: K = active(state, auth, address).await?;
    if let Some(writer) =
        remote::appends_to(state, auth.account(), &recording, headers, path).await?
    {
        let credential = presented_token(headers).unwrap_or_default();
        let ip = auth.request.ip.as_deref();
        match cluster::connect(state, &writer.base, path, "", &credential, ip).await {
            Ok(upstream) => {
                let span = Span::current();
                return Ok(Streamed::Spliced(upgrade.on_upgrade(move |socket| {
                    cluster::splice(socket, upstream, lease).instrument(span)
                })));
            }
            Err(Refused::Answer(answer)) => return Ok(Streamed::Spliced(*answer)),
            Err(Refused::Unreachable) => {
                remote::take_over(state, auth.account(), &recording, &writer).await?;
            }
        }
    }
    let recorder = state.recorders.recorder(&recording).await?;
    Ok(Streamed::Here(upgrade, lease, recorder))
}

/// Ends an active recording at its source's request.
pub async fn end<K: Recorded>(state: &AppState, auth: &Auth, address: K::Address) -> ApiResult<K> {
    let recording: K = active(state, auth, address).await?;
    let ended = ending::end(
        state,
        &auth.actor(),
        recording.id(),
        Some(&recording),
        EndReason::Ended.into(),
        Timestamp::now(),
    )
    .await?;
    Ok(located(state, ended))
}

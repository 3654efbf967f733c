//! Reads of an active recording that another instance writes (SPEC 8.3, 13.4): its content so
//! far lives in that instance's spool, so it is read from there, over
//! `/internal/v1/accounts/{account}/{kind}/recordings/{id}/spool?from=N` with a cluster token.
//! The writer flushes its recorder and answers the spool's bytes from `N` up to what is on
//! disk, whole events and frames only; the caller was checked by the instance it reached.
//! One endpoint serves every reader (download, events, watch, desktop stream): the instance
//! that reads either streams the bytes on or keeps them in a private copy it follows.

use std::io;
use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::header::CONTENT_TYPE;
use axum::http::{HeaderMap, Uri};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures::stream::BoxStream;
use futures::{StreamExt, TryStreamExt};
use serde::Deserialize;
use spog_core::model::Account;
use spog_core::recordings::{DesktopRecording, TerminalRecording};
use spog_core::{Id, Timestamp};
use spog_store::recordings;

use super::kind::{Recorded, Recorder};
use super::{parts, read};
use crate::error::{ApiError, ApiResult};
use crate::extract::AppPath;
use crate::state::AppState;
use crate::terminal::cluster::{self, CLUSTER_TOKEN};
use crate::workers::cluster::FRESH_FOR;

/// The endpoint's path for one recording.
fn spool_path<R: Recorded>(account: Id<Account>, id: Id<R>) -> String {
    format!(
        "/internal/v1/accounts/{account}/{}/recordings/{id}/spool",
        R::NAME
    )
}

pub fn internal_router() -> axum::Router<AppState> {
    let route =
        |kind: &str| format!("/internal/v1/accounts/{{account}}/{kind}/recordings/{{id}}/spool");
    axum::Router::new()
        .route(
            &route(TerminalRecording::NAME),
            axum::routing::get(spool::<TerminalRecording>),
        )
        .route(
            &route(DesktopRecording::NAME),
            axum::routing::get(spool::<DesktopRecording>),
        )
}

/// Headers an append is forwarded with: the caller's credential (checked again there) and
/// what describes the body.
const FORWARDED_HEADERS: [&str; 3] = ["authorization", "content-type", "x-frame-elapsed-ms"];

/// The instance writing an active recording, when that is another one and it is alive.
#[derive(Clone)]
pub struct Remote {
    instance: String,
    /// Where it is reached.
    pub base: String,
    /// Its spool endpoint for the recording.
    path: String,
}

/// Where `recording` is written, when it is active and written by another live instance.
pub async fn writer<R: Recorded>(
    state: &AppState,
    account: Id<Account>,
    recording: &R,
) -> io::Result<Option<Remote>> {
    if recording.has_ended() || state.recorders.open(recording.id()).is_some() {
        return Ok(None);
    }
    let mut conn = state.store.conn().await.map_err(io::Error::other)?;
    let instance = recordings::writer::<R>(&mut conn, account, recording.id())
        .await
        .map_err(io::Error::other)?;
    let Some(instance) = instance.filter(|instance| *instance != state.instance_id) else {
        return Ok(None);
    };
    let seen_after = Timestamp::now().minus(FRESH_FOR);
    let base = spog_store::cluster::url_of(&mut conn, &instance, seen_after)
        .await
        .map_err(io::Error::other)?;
    Ok(base.map(|base| Remote {
        instance,
        base: base.trim_end_matches('/').to_owned(),
        path: spool_path(account, recording.id()),
    }))
}

impl Remote {
    /// The spool's bytes from `from` on, as far as the writer has them now. NotFound once it
    /// no longer writes the recording (it ended there).
    pub async fn read(
        &self,
        state: &AppState,
        from: u64,
    ) -> io::Result<BoxStream<'static, io::Result<Bytes>>> {
        let token = cluster::token(&state.keys.cluster, &self.path, Timestamp::now());
        let response = state
            .peers
            .get(format!("{}{}?from={from}", self.base, self.path))
            .header(CLUSTER_TOKEN, token)
            .send()
            .await
            .map_err(io::Error::other)?;
        match response.status() {
            status if status.is_success() => {
                Ok(response.bytes_stream().map_err(io::Error::other).boxed())
            }
            reqwest::StatusCode::NOT_FOUND => Err(io::ErrorKind::NotFound.into()),
            status => Err(io::Error::other(format!(
                "the instance writing the recording answered {status}"
            ))),
        }
    }

    /// Sends an append that reached this instance (at `path`) on to the instance writing the
    /// recording, with a cluster token that keeps it there; its answer is the caller's. None
    /// when that instance does not answer: the caller then takes the recording over.
    pub async fn forward(
        &self,
        state: &AppState,
        path: &str,
        headers: &HeaderMap,
        body: Bytes,
    ) -> ApiResult<Option<Response>> {
        let mut request = state
            .peers
            .post(format!("{}{path}", self.base))
            .header(
                CLUSTER_TOKEN,
                cluster::token(&state.keys.cluster, path, Timestamp::now()),
            )
            .body(body);
        for name in FORWARDED_HEADERS {
            if let Some(value) = headers.get(name) {
                request = request.header(name, value);
            }
        }
        let answer = match request.send().await {
            Ok(answer) => answer,
            Err(error) if error.is_connect() => return Ok(None),
            Err(error) => {
                tracing::warn!(%error, "forwarding an append to the instance recording it");
                return Err(unreachable());
            }
        };
        let status = answer.status();
        let kind = answer.headers().get(CONTENT_TYPE).cloned();
        let body = answer.bytes().await.map_err(|_| unreachable())?;
        let mut response = (status, body).into_response();
        if let Some(kind) = kind {
            response.headers_mut().insert(CONTENT_TYPE, kind);
        }
        Ok(Some(response))
    }
}

/// Makes this instance the writer of `recording`, whose writer stopped answering (a crash,
/// or this very instance before a restart, whose registration has not expired yet): its spool
/// is restored from the uploaded parts unless it is here already, and appends go on here.
pub async fn take_over<R: Recorded>(
    state: &AppState,
    account: Id<Account>,
    recording: &R,
    from: &Remote,
) -> ApiResult<()> {
    tracing::warn!(recording = %recording.id(), writer = %from.instance,
        "the instance writing a recording does not answer; it is written here from now on");
    let mut conn = state.store.conn().await?;
    let id = recording.id();
    if !recordings::take_over(&mut conn, account, id, &from.instance, &state.instance_id).await? {
        return Err(ApiError::Unavailable(
            "the recording's writer changed meanwhile; send it again".to_owned(),
        ));
    }
    let spool = state.recorders.path(recording.file_path());
    if !tokio::fs::try_exists(&spool).await.unwrap_or(false) {
        parts::restore(state, account, id, &spool)
            .await
            .map_err(ApiError::internal)?;
    }
    Ok(())
}

/// The instance writing a recording did not answer.
pub fn unreachable() -> ApiError {
    ApiError::Unavailable("the instance recording this session cannot be reached".to_owned())
}

/// Where appends to `recording` arriving at `path` (under `/api/v1`) go: None to write them
/// here (this instance writes it, none does, or the request was forwarded from another).
pub async fn appends_to<R: Recorded>(
    state: &AppState,
    account: Id<Account>,
    recording: &R,
    headers: &HeaderMap,
    path: &str,
) -> ApiResult<Option<Remote>> {
    if cluster::forwarded(state, headers, path) {
        return Ok(None);
    }
    writer(state, account, recording)
        .await
        .map_err(ApiError::internal)
}

#[derive(Deserialize)]
struct SpoolParams {
    #[serde(default)]
    from: u64,
}

/// The spool of a recording written here, from `from` to what its recorder has flushed.
async fn spool<R: Recorded>(
    State(state): State<AppState>,
    headers: HeaderMap,
    uri: Uri,
    AppPath((account, id)): AppPath<(Id<Account>, Id<R>)>,
    Query(params): Query<SpoolParams>,
) -> ApiResult<Response> {
    cluster::check(&state, &headers, uri.path())?;
    let recorder = state
        .recorders
        .open(id)
        .filter(|recorder| recorder.account() == Some(account))
        .ok_or(ApiError::NotFound)?;
    let file = state
        .blocking
        .run(move || {
            recorder.flush()?;
            Ok::<_, super::RecordingError>(std::fs::File::open(recorder.path())?)
        })
        .await?;
    // The file stays open while it is read: sealing removes its name when the recording ends.
    let file = Arc::new(file);
    let opened = file.clone();
    let end = state
        .blocking
        .run(move || opened.metadata().map(|m| m.len()))
        .await
        .map_err(ApiError::internal)?;
    let body = read::range(state.blocking.clone(), file, params.from.min(end), end);
    Ok(axum::body::Body::from_stream(body).into_response())
}

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
use axum::http::{HeaderMap, Uri};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures::stream::BoxStream;
use futures::{StreamExt, TryStreamExt};
use serde::Deserialize;
use spog_core::model::Account;
use spog_core::recordings::{DesktopRecording, TerminalRecording};
use spog_core::{Id, Timestamp};

use super::kind::{Recorded, Recorder};
use super::read;
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

/// The instance writing an active recording, when that is another one and it is alive.
#[derive(Clone)]
pub struct Remote {
    url: String,
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
    let instance = spog_store::recordings::writer::<R>(&mut conn, account, recording.id())
        .await
        .map_err(io::Error::other)?;
    let Some(instance) = instance.filter(|instance| *instance != state.instance_id) else {
        return Ok(None);
    };
    let seen_after = Timestamp::now().minus(FRESH_FOR);
    let base = spog_store::cluster::url_of(&mut conn, &instance, seen_after)
        .await
        .map_err(io::Error::other)?;
    Ok(base.map(|base| {
        let path = spool_path(account, recording.id());
        Remote {
            url: format!("{}{path}", base.trim_end_matches('/')),
            path,
        }
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
            .get(format!("{}?from={from}", self.url))
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

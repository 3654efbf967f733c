//! `/terminal/sessions` and `/terminal/recordings` (SPEC 8.1).

use std::time::Duration;

use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::ws::Message;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::{OriginalUri, State, WebSocketUpgrade};
use axum::http::header::{CONTENT_DISPOSITION, CONTENT_TYPE};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use serde::Deserialize;
use spog_core::model::{Host, User};
use spog_core::page::{self, Page};
use spog_core::recordings::text::{self, TextMatch};
use spog_core::recordings::{
    MAX_TERMINAL_SIZE, RawEvent, TerminalRecording, TerminalSession, download_header,
};
use spog_core::{BoundedList, FieldErrors, Id, validate};
use spog_store::recordings::terminal::{Origin, SessionStart};
use spog_store::recordings::{self, Filter};
use tracing::{Instrument, Span};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::lifecycle::{self, Start, Streamed};
use super::retention::{self, LegalHold};
use super::stream::{self, INVALID, UNSUPPORTED};
use super::{RecordingParams, size_field};
use crate::auth::permissions::{
    SessionRecordingsManage, SessionRecordingsView, SessionRecordingsWrite,
};
use crate::auth::{Auth, Require};
use crate::error::{ApiError, ApiResult};
use crate::extract::{AppJson, AppPath, AppQuery, DataJson};
use crate::recordings::content::{self, Source};
use crate::recordings::kind::Recorded;
use crate::recordings::{Appended, CastRecorder, cast, read, remote};
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_sessions, start_session))
        .routes(routes!(get_session))
        .routes(routes!(append_events))
        .routes(routes!(end_session))
        .routes(routes!(stream_events))
        .routes(routes!(super::live::watch_session))
        .routes(routes!(list_recordings))
        .routes(routes!(get_recording, delete_recording))
        .routes(routes!(set_legal_hold))
        .routes(routes!(download_cast))
}

/// A recording with its events, as `GET /terminal/recordings/{id}` streams it.
#[derive(serde::Serialize, ToSchema)]
pub struct RecordingWithEvents {
    #[serde(flatten)]
    pub recording: TerminalRecording,
    /// `[[elapsed_seconds, code, data], ...]`, in time order.
    pub events: Vec<Vec<serde_json::Value>>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StartSession {
    pub host_id: Id<Host>,
    pub user_id: Id<User>,
    pub shell: String,
    pub width: i64,
    pub height: i64,
}

/// Start a terminal session and its recording (gateways and agents).
#[utoipa::path(post, path = "/terminal/sessions", tag = "recordings", request_body = StartSession,
    responses((status = 201, body = TerminalSession)))]
async fn start_session(
    State(state): State<AppState>,
    auth: Require<SessionRecordingsWrite>,
    AppJson(body): AppJson<StartSession>,
) -> ApiResult<(StatusCode, Json<TerminalSession>)> {
    let mut errors = FieldErrors::new();
    let shell = errors.check(validate::text("shell", &body.shell, 200));
    errors.check(size_field("width", body.width, MAX_TERMINAL_SIZE));
    errors.check(size_field("height", body.height, MAX_TERMINAL_SIZE));
    errors.into_result()?;
    let shell = shell.unwrap_or_default();
    let start = Start {
        host: body.host_id,
        user: Some(body.user_id),
        at: spog_core::Timestamp::now(),
        width: body.width,
        height: body.height,
    };
    let own = SessionStart {
        shell: shell.as_str(),
        origin: Origin::Api,
        os_user: None,
        client_addr: None,
        source_key: None,
    };
    let recording: TerminalRecording = lifecycle::start(&state, &auth, start, own).await?;
    let session = recording.session();
    Ok((StatusCode::CREATED, Json(session)))
}

/// Active terminal sessions on the hosts the caller may see.
#[utoipa::path(get, path = "/terminal/sessions", tag = "recordings", params(RecordingParams),
    responses((status = 200, body = Page<TerminalSession>)))]
async fn list_sessions(
    State(state): State<AppState>,
    auth: Require<SessionRecordingsView>,
    AppQuery(params): AppQuery<RecordingParams>,
) -> ApiResult<Json<Page<TerminalSession>>> {
    let page = lifecycle::list::<TerminalRecording>(&state, &auth, params, true).await?;
    Ok(Json(page.map(|r| r.session())))
}

/// A terminal session, active or ended.
#[utoipa::path(get, path = "/terminal/sessions/{id}", tag = "recordings",
    params(("id" = String, Path)), responses((status = 200, body = TerminalSession)))]
async fn get_session(
    State(state): State<AppState>,
    auth: Require<SessionRecordingsView>,
    AppPath(id): AppPath<Id<TerminalSession>>,
) -> ApiResult<Json<TerminalSession>> {
    let recording: TerminalRecording = lifecycle::visible(&state, &auth, id).await?;
    Ok(Json(recording.session()))
}

/// Append asciicast events `[[elapsed_seconds, "o"|"i"|"r"|"m", data], ...]`, in time order.
/// The batch is checked as a whole and is in the recording file when this answers. An empty
/// batch only says the source is alive.
#[utoipa::path(post, path = "/terminal/sessions/{id}/events", tag = "recordings",
    params(("id" = String, Path)),
    request_body(content = Vec<Vec<serde_json::Value>>, description = "asciicast v2 events"),
    responses((status = 200, body = Appended)))]
async fn append_events(
    State(state): State<AppState>,
    auth: Require<SessionRecordingsWrite>,
    AppPath(id): AppPath<Id<TerminalSession>>,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
    DataJson(events): DataJson<BoundedList<RawEvent, 10_000>>,
) -> ApiResult<Response> {
    let recording: TerminalRecording = lifecycle::active(&state, &auth, id).await?;
    let path = uri.path();
    if let Some(writer) =
        remote::appends_to(&state, auth.account(), &recording, &headers, path).await?
    {
        let body = serde_json::to_vec(&*events).map_err(ApiError::internal)?;
        match writer.forward(&state, path, &headers, body.into()).await? {
            Some(answer) => return Ok(answer),
            None => remote::take_over(&state, auth.account(), &recording, &writer).await?,
        }
    }
    let recorder = state.recorders.recorder(&recording).await?;
    let record_input = state.config.record_input;
    let appended = state
        .blocking
        .run(move || recorder.append(events.into_inner(), record_input, "body", true))
        .await?;
    Ok(Json(appended).into_response())
}

/// End a session; its recording is complete.
#[utoipa::path(post, path = "/terminal/sessions/{id}/end", tag = "recordings",
    params(("id" = String, Path)), responses((status = 200, body = TerminalRecording)))]
async fn end_session(
    State(state): State<AppState>,
    auth: Require<SessionRecordingsWrite>,
    AppPath(id): AppPath<Id<TerminalSession>>,
) -> ApiResult<Json<TerminalRecording>> {
    Ok(Json(lifecycle::end(&state, &auth, id).await?))
}

/// Stream events over a WebSocket: each text message is one event `[t, code, data]` or a
/// batch of them. A message that breaks the rules closes the socket (1007, with the reason);
/// what came before it stays recorded. Closes with 1000 when the session ends.
#[utoipa::path(get, path = "/terminal/sessions/{id}/stream", tag = "recordings",
    params(("id" = String, Path)), responses((status = 101, description = "WebSocket")))]
async fn stream_events(
    State(state): State<AppState>,
    auth: Require<SessionRecordingsWrite>,
    AppPath(id): AppPath<Id<TerminalSession>>,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> ApiResult<Response> {
    let streamed =
        lifecycle::streamed::<TerminalRecording>(&state, &auth, &headers, uri.path(), upgrade, id)
            .await?;
    let (upgrade, lease, recorder) = match streamed {
        Streamed::Here(upgrade, lease, recorder) => (upgrade, lease, recorder),
        Streamed::Spliced(answer) => return Ok(answer),
    };
    let span = Span::current();
    Ok(upgrade.on_upgrade(move |socket| {
        let record_input = state.config.record_input;
        stream::ingest::<TerminalRecording, _>(
            state.blocking.clone(),
            recorder,
            socket,
            lease,
            read_events,
            move |recorder: &CastRecorder, events| {
                recorder
                    .append(events, record_input, "message", false)
                    .map(|_| ())
            },
        )
        .instrument(span)
    }))
}

/// A text message of asciicast events.
fn read_events(message: Message) -> Result<Vec<RawEvent>, (u16, String)> {
    let Message::Text(text) = message else {
        return Err((UNSUPPORTED, "send events as text messages".to_owned()));
    };
    parse_events(text.as_bytes())
        .map_err(|error| (INVALID, format!("not asciicast events: {error}")))
}

/// One event or a batch of them.
fn parse_events(text: &[u8]) -> Result<Vec<RawEvent>, serde_json::Error> {
    let batch = text
        .iter()
        .filter(|b| !b.is_ascii_whitespace())
        .take(2)
        .eq(b"[[".iter());
    if batch {
        serde_json::from_slice::<Vec<RawEvent>>(text)
    } else {
        serde_json::from_slice::<RawEvent>(text).map(|event| vec![event])
    }
}

/// The filters of `GET /terminal/recordings`: the common ones and a text search.
#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct TerminalRecordingParams {
    pub host_id: Option<Id<Host>>,
    pub user_id: Option<Id<User>>,
    pub limit: Option<i64>,
    pub cursor: Option<String>,
    /// Only recordings whose output or input contains this text (3 to 200 characters,
    /// case-insensitive, escape sequences removed); each then lists its matches.
    pub q: Option<String>,
}

/// A listed terminal recording, with its matches when the listing searched.
#[derive(serde::Serialize, ToSchema)]
pub struct ListedRecording {
    #[serde(flatten)]
    pub recording: TerminalRecording,
    /// Only with `q`: up to 20 matches in time order, each at the event where it starts.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub matches: Option<Vec<TextMatch>>,
}

/// Terminal recordings on the hosts the caller may see, newest first; with `q`, those whose
/// text contains it, with their matches.
#[utoipa::path(get, path = "/terminal/recordings", tag = "recordings",
    params(TerminalRecordingParams),
    responses((status = 200, body = Page<ListedRecording>)))]
async fn list_recordings(
    State(state): State<AppState>,
    auth: Require<SessionRecordingsView>,
    AppQuery(params): AppQuery<TerminalRecordingParams>,
) -> ApiResult<Json<Page<ListedRecording>>> {
    let TerminalRecordingParams {
        host_id,
        user_id,
        limit,
        cursor,
        q,
    } = params;
    let params = RecordingParams {
        host_id,
        user_id,
        limit,
        cursor,
    };
    let page = match q {
        None => lifecycle::list(&state, &auth, params, false)
            .await?
            .map(|recording| ListedRecording {
                recording,
                matches: None,
            }),
        Some(q) => search(&state, &auth, params, &q)
            .await?
            .map(|(recording, matches)| ListedRecording {
                recording,
                matches: Some(matches),
            }),
    };
    Ok(Json(page))
}

/// Recordings the caller may see whose text contains `q`, with their matches.
pub async fn search(
    state: &AppState,
    auth: &Auth,
    params: RecordingParams,
    q: &str,
) -> ApiResult<Page<(TerminalRecording, Vec<TextMatch>)>> {
    let mut errors = FieldErrors::new();
    let q = errors.check(text::query("q", q));
    let limit = errors.check(page::limit(
        params.limit,
        page::DEFAULT_LIMIT,
        page::MAX_LIMIT,
    ));
    let (q, limit) = errors.finish((q, limit))?;
    let filter = Filter {
        host: params.host_id,
        user: params.user_id,
        active: false,
    };
    let mut conn = state.store.conn().await?;
    let page = recordings::text::search(
        &mut conn,
        auth.account(),
        &auth.host_scope(),
        &filter,
        &q,
        limit,
        params.cursor.as_deref(),
    )
    .await?;
    Ok(page.map(|(recording, matches)| (lifecycle::located(state, recording), matches)))
}

/// The recording as far as it is written (its progress from the local writer if any).
async fn readable(
    state: &AppState,
    auth: &Auth,
    id: Id<TerminalRecording>,
) -> ApiResult<(TerminalRecording, Option<u64>)> {
    let fetch = || async {
        let mut conn = state.store.conn().await?;
        ApiResult::Ok(recordings::get(&mut conn, auth.account(), id, &auth.host_scope()).await?)
    };
    let mut recording = fetch().await?;
    if let Some(recorder) = state.recorders.open(recording.id) {
        recording.progressed(&recorder.progress());
        return Ok((recording, Some(recorder.flushed_len())));
    }
    // Ended elsewhere and sealed here just now: the spool is gone once the row says where
    // the sealed content is.
    if recording.ended_at.is_some()
        && let Source::File(spool) = content::source(state, auth.account(), &recording)
            .await
            .map_err(ApiError::internal)?
        && !crate::recordings::seal::exists(state, &spool).await
    {
        recording = fetch().await?;
    }
    Ok((recording, None))
}

/// A recording's metadata and its events, for playback: the fields of a recording plus
/// `events` (`[[elapsed_seconds, code, data], ...]`). Streamed, however long the recording;
/// a download (capped per credential).
#[utoipa::path(get, path = "/terminal/recordings/{id}", tag = "recordings",
    params(("id" = String, Path)), responses((status = 200, body = RecordingWithEvents)))]
async fn get_recording(
    State(state): State<AppState>,
    auth: Require<SessionRecordingsView>,
    AppPath(id): AppPath<Id<TerminalRecording>>,
) -> ApiResult<Response> {
    let (recording, end) = readable(&state, &auth, id).await?;
    let slot = state.downloads.start(&auth)?;
    let source = content::source(&state, auth.account(), &recording)
        .await
        .map_err(ApiError::internal)?;
    let recording = lifecycle::located(&state, recording);
    let mut head = serde_json::to_string(&recording).map_err(ApiError::internal)?;
    head.pop();
    head.push_str(r#","events":["#);
    let mut first = true;
    let shape = move |chunk: Bytes| {
        let mut out = Vec::with_capacity(chunk.len() + 1);
        if !first {
            out.push(b',');
        }
        first = false;
        out.extend(
            chunk[..chunk.len() - 1]
                .iter()
                .map(|&b| if b == b'\n' { b',' } else { b }),
        );
        Bytes::from(out)
    };
    let body = match source {
        Source::File(path) => {
            let offset = events_offset(&state, &path).await?;
            stream_file(&state, path, offset, end, head, "]}", shape).boxed()
        }
        Source::Sealed(sealed) => {
            let lines = content::lines_after_header(sealed.read(&state).await.map_err(unreadable)?);
            let mut shape = shape;
            framed(head, lines.map(move |chunk| chunk.map(&mut shape)), "]}").boxed()
        }
        Source::Remote(remote) => {
            let lines = content::lines_after_header(relayed(&state, &remote).await?);
            let mut shape = shape;
            framed(head, lines.map(move |chunk| chunk.map(&mut shape)), "]}").boxed()
        }
    };
    Ok((
        [(CONTENT_TYPE, "application/json")],
        Body::from_stream(slot.hold(body)),
    )
        .into_response())
}

/// The recording as an asciicast v2 file (`application/x-asciicast`), streamed; a download
/// (capped per credential).
#[utoipa::path(get, path = "/terminal/recordings/{id}/cast", tag = "recordings",
    params(("id" = String, Path)),
    responses((status = 200, content_type = "application/x-asciicast", body = String)))]
async fn download_cast(
    State(state): State<AppState>,
    auth: Require<SessionRecordingsView>,
    AppPath(id): AppPath<Id<TerminalRecording>>,
) -> ApiResult<Response> {
    let (recording, end) = readable(&state, &auth, id).await?;
    let slot = state.downloads.start(&auth)?;
    let source = content::source(&state, auth.account(), &recording)
        .await
        .map_err(ApiError::internal)?;
    let mut head = download_header(&recording, recording.duration_seconds);
    head.push('\n');
    let body = match source {
        Source::File(path) => {
            let offset = events_offset(&state, &path).await?;
            stream_file(&state, path, offset, end, head, "", |chunk| chunk).boxed()
        }
        // Sealed: its content is the download, byte for byte (what its hash covers).
        Source::Sealed(sealed) => sealed.read(&state).await.map_err(unreadable)?,
        Source::Remote(remote) => {
            let lines = content::lines_after_header(relayed(&state, &remote).await?);
            framed(head, lines, "").boxed()
        }
    };
    let disposition = format!("attachment; filename=\"{}.cast\"", recording.id);
    Ok((
        [
            (CONTENT_TYPE, "application/x-asciicast".to_owned()),
            (CONTENT_DISPOSITION, disposition),
        ],
        Body::from_stream(slot.hold(body)),
    )
        .into_response())
}

/// What the instance writing a recording has of it now.
async fn relayed(
    state: &AppState,
    remote: &remote::Remote,
) -> ApiResult<futures::stream::BoxStream<'static, std::io::Result<Bytes>>> {
    remote.read(state, 0).await.map_err(|error| {
        tracing::warn!(%error, "reading a recording from the instance writing it");
        remote::unreachable()
    })
}

/// A sealed recording whose object cannot be read.
fn unreadable(error: std::io::Error) -> ApiError {
    if error.kind() == std::io::ErrorKind::NotFound {
        ApiError::Conflict("the recording's stored content is missing".to_owned())
    } else {
        ApiError::internal(error)
    }
}

/// Delete an ended terminal recording and its content (`session_recordings.manage`); 409 while it is
/// recorded, 409 `legal_hold` while it is held.
#[utoipa::path(delete, path = "/terminal/recordings/{id}", tag = "recordings",
    params(("id" = String, Path)), responses((status = 204)))]
async fn delete_recording(
    State(state): State<AppState>,
    auth: Require<SessionRecordingsManage>,
    AppPath(id): AppPath<Id<TerminalRecording>>,
) -> ApiResult<StatusCode> {
    retention::delete(&state, &auth, id).await
}

/// Put a terminal recording on legal hold (`{"hold": true, "reason"}`) or release it (`{"hold": false}`).
#[utoipa::path(put, path = "/terminal/recordings/{id}/legal-hold", tag = "recordings",
    params(("id" = String, Path)), request_body = LegalHold,
    responses((status = 200, body = TerminalRecording)))]
async fn set_legal_hold(
    State(state): State<AppState>,
    auth: Require<SessionRecordingsManage>,
    AppPath(id): AppPath<Id<TerminalRecording>>,
    AppJson(body): AppJson<LegalHold>,
) -> ApiResult<Json<TerminalRecording>> {
    Ok(Json(
        retention::set_legal_hold(&state, &auth, id, body).await?,
    ))
}

/// Where the events of the recording file at `path` start; `None` when it has no file.
async fn events_offset(state: &AppState, path: &std::path::Path) -> ApiResult<Option<u64>> {
    let path = path.to_owned();
    match state.blocking.run(move || cast::read_header(&path)).await {
        Ok((_, offset)) => Ok(Some(offset)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(ApiError::internal(e)),
    }
}

/// `head`, the complete lines of the file from `offset` (each chunk through `shape`), then
/// `tail`. A chunk is read only when the client has taken the one before, so memory stays
/// constant whatever the file's size and a client that stops reading holds no thread.
fn stream_file(
    state: &AppState,
    path: std::path::PathBuf,
    offset: Option<u64>,
    end: Option<u64>,
    head: String,
    tail: &'static str,
    shape: impl FnMut(Bytes) -> Bytes + Send + 'static,
) -> impl futures::Stream<Item = std::io::Result<Bytes>> + Send + 'static {
    use futures::StreamExt;
    let lines = match offset {
        Some(offset) => {
            read::complete_lines(state.blocking.clone(), path.clone(), offset, end).left_stream()
        }
        None => futures::stream::empty().right_stream(),
    };
    let mut shape = shape;
    let lines = lines.map(move |chunk| {
        chunk.map(&mut shape).inspect_err(|error| {
            tracing::warn!(%error, path = %path.display(), "reading a recording");
        })
    });
    framed(head, lines, tail)
}

/// `head`, then `body`, then `tail`.
fn framed(
    head: String,
    body: impl futures::Stream<Item = std::io::Result<Bytes>> + Send + 'static,
    tail: &'static str,
) -> impl futures::Stream<Item = std::io::Result<Bytes>> + Send + 'static {
    use futures::StreamExt;
    let tail = (!tail.is_empty()).then(|| Ok(Bytes::from_static(tail.as_bytes())));
    futures::stream::once(async move { Ok(Bytes::from(head)) })
        .chain(body)
        .chain(futures::stream::iter(tail))
}

/// How often a live follower looks for new events when not woken.
pub(super) const FOLLOW_POLL: Duration = Duration::from_millis(250);

//! `/desktop/recordings` (SPEC 8.2): ingest of JPEG or PNG frames and their listing.

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::ws::Message;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::{OriginalUri, State, WebSocketUpgrade};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use spog_core::model::{Host, User};
use spog_core::page::Page;
use spog_core::recordings::{DesktopRecording, MAX_DESKTOP_SIZE, image_kind};
use spog_core::{FieldError, FieldErrors, Id};
use tracing::{Instrument, Span};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::lifecycle::{self, Start, Streamed};
use super::retention::{self, LegalHold};
use super::stream::{self, INVALID, UNSUPPORTED};
use super::{RecordingParams, size_field};
use crate::auth::Require;
use crate::auth::permissions::{
    SessionRecordingsManage, SessionRecordingsView, SessionRecordingsWrite,
};
use crate::error::{ApiError, ApiResult};
use crate::extract::{AppJson, AppPath, AppQuery};
use crate::recordings::{FrameRecorder, RecordingError, remote};
use crate::state::AppState;

pub const ELAPSED_HEADER: &str = "x-frame-elapsed-ms";

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_recordings, start_recording))
        .routes(routes!(get_recording, delete_recording))
        .routes(routes!(set_legal_hold))
        .routes(routes!(append_frame))
        .routes(routes!(stream_frames))
        .routes(routes!(end_recording))
        .routes(routes!(super::playback::play))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StartDesktop {
    pub host_id: Id<Host>,
    pub user_id: Id<User>,
    pub width: i64,
    pub height: i64,
}

#[derive(Serialize, ToSchema)]
pub struct FrameAccepted {
    /// Frames recorded so far.
    pub frame_count: i64,
}

/// Start a desktop recording (gateways and agents).
#[utoipa::path(post, path = "/desktop/recordings", tag = "recordings", request_body = StartDesktop,
    responses((status = 201, body = DesktopRecording)))]
async fn start_recording(
    State(state): State<AppState>,
    auth: Require<SessionRecordingsWrite>,
    AppJson(body): AppJson<StartDesktop>,
) -> ApiResult<(StatusCode, Json<DesktopRecording>)> {
    let mut errors = FieldErrors::new();
    errors.check(size_field("width", body.width, MAX_DESKTOP_SIZE));
    errors.check(size_field("height", body.height, MAX_DESKTOP_SIZE));
    errors.into_result()?;
    let start = Start {
        host: body.host_id,
        user: Some(body.user_id),
        at: spog_core::Timestamp::now(),
        width: body.width,
        height: body.height,
    };
    let recording: DesktopRecording = lifecycle::start(&state, &auth, start, ()).await?;
    Ok((
        StatusCode::CREATED,
        Json(lifecycle::located(&state, recording)),
    ))
}

/// Desktop recordings on the hosts the caller may see, newest first.
#[utoipa::path(get, path = "/desktop/recordings", tag = "recordings", params(RecordingParams),
    responses((status = 200, body = Page<DesktopRecording>)))]
async fn list_recordings(
    State(state): State<AppState>,
    auth: Require<SessionRecordingsView>,
    AppQuery(params): AppQuery<RecordingParams>,
) -> ApiResult<Json<Page<DesktopRecording>>> {
    Ok(Json(lifecycle::list(&state, &auth, params, false).await?))
}

/// A desktop recording.
#[utoipa::path(get, path = "/desktop/recordings/{id}", tag = "recordings",
    params(("id" = String, Path)), responses((status = 200, body = DesktopRecording)))]
async fn get_recording(
    State(state): State<AppState>,
    auth: Require<SessionRecordingsView>,
    AppPath(id): AppPath<Id<DesktopRecording>>,
) -> ApiResult<Json<DesktopRecording>> {
    let recording: DesktopRecording = lifecycle::visible(&state, &auth, id).await?;
    Ok(Json(lifecycle::located(&state, recording)))
}

/// Append one frame: the body is a JPEG or PNG image, `X-Frame-Elapsed-Ms` the milliseconds
/// since the recording started (not earlier than the frame before). The frame is in the file
/// when this answers.
#[utoipa::path(post, path = "/desktop/recordings/{id}/frames", tag = "recordings",
    params(("id" = String, Path), ("X-Frame-Elapsed-Ms" = u64, Header)),
    request_body(content = Vec<u8>, content_type = "image/jpeg"),
    responses((status = 200, body = FrameAccepted)))]
async fn append_frame(
    State(state): State<AppState>,
    auth: Require<SessionRecordingsWrite>,
    AppPath(id): AppPath<Id<DesktopRecording>>,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<Response> {
    let body = body.map_err(|rejection| match rejection.status() {
        StatusCode::PAYLOAD_TOO_LARGE => ApiError::PayloadTooLarge,
        _ => ApiError::BadRequest(rejection.body_text()),
    })?;
    let recording: DesktopRecording = lifecycle::active(&state, &auth, id).await?;
    let path = uri.path();
    if let Some(writer) =
        remote::appends_to(&state, auth.account(), &recording, &headers, path).await?
    {
        match writer.forward(&state, path, &headers, body.clone()).await? {
            Some(answer) => return Ok(answer),
            None => remote::take_over(&state, auth.account(), &recording, &writer).await?,
        }
    }
    let elapsed = headers
        .get(ELAPSED_HEADER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .filter(|ms| *ms <= MAX_ELAPSED_MS)
        .ok_or_else(|| {
            ApiError::field(
                "X-Frame-Elapsed-Ms",
                "must be the frame's elapsed milliseconds since the recording started",
            )
        })?;
    check_image(&body)?;
    let recorder = state.recorders.recorder(&recording).await?;
    let frame_count = state
        .blocking
        .run(move || recorder.append(elapsed, &body, "X-Frame-Elapsed-Ms", true))
        .await?;
    Ok(Json(FrameAccepted { frame_count }).into_response())
}

/// A year of milliseconds.
const MAX_ELAPSED_MS: u64 = 366 * 86_400 * 1000;

fn check_image(bytes: &[u8]) -> Result<(), FieldError> {
    image_kind(bytes)
        .map(|_| ())
        .ok_or_else(|| FieldError::new("body", "must be a JPEG or PNG image"))
}

/// Stream frames over a WebSocket: each binary message is the frame's elapsed milliseconds
/// (8 bytes, big-endian) followed by the JPEG or PNG image. A message that breaks the rules
/// closes the socket (1007) with the reason; the frames before it stay recorded.
#[utoipa::path(get, path = "/desktop/recordings/{id}/frames/stream", tag = "recordings",
    params(("id" = String, Path)), responses((status = 101, description = "WebSocket")))]
async fn stream_frames(
    State(state): State<AppState>,
    auth: Require<SessionRecordingsWrite>,
    AppPath(id): AppPath<Id<DesktopRecording>>,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> ApiResult<Response> {
    let streamed =
        lifecycle::streamed::<DesktopRecording>(&state, &auth, &headers, uri.path(), upgrade, id)
            .await?;
    let (upgrade, lease, recorder) = match streamed {
        Streamed::Here(upgrade, lease, recorder) => (upgrade, lease, recorder),
        Streamed::Spliced(answer) => return Ok(answer),
    };
    let blocking = state.blocking.clone();
    let span = Span::current();
    Ok(upgrade.on_upgrade(move |socket| {
        stream::ingest::<DesktopRecording, _>(
            blocking,
            recorder,
            socket,
            lease,
            read_frame,
            |recorder: &FrameRecorder, (ms, bytes): (u64, Bytes)| {
                recorder
                    .append(ms, &bytes[8..], "message", false)
                    .map(|_| ())
            },
        )
        .instrument(span)
    }))
}

/// A binary message of a frame: its elapsed milliseconds (8 bytes, big-endian), then the
/// image.
fn read_frame(message: Message) -> Result<(u64, Bytes), (u16, String)> {
    let Message::Binary(bytes) = message else {
        return Err((UNSUPPORTED, "send frames as binary messages".to_owned()));
    };
    (bytes.len() >= 8)
        .then(|| u64::from_be_bytes(bytes[..8].try_into().expect("8 bytes")))
        .filter(|ms| *ms <= MAX_ELAPSED_MS)
        .ok_or_else(|| FieldError::new("message", "must start with 8 bytes of elapsed ms"))
        .and_then(|ms| check_image(&bytes[8..]).map(|()| (ms, bytes)))
        .map_err(|error| (INVALID, RecordingError::from(error).to_string()))
}

/// End a desktop recording.
#[utoipa::path(post, path = "/desktop/recordings/{id}/end", tag = "recordings",
    params(("id" = String, Path)), responses((status = 200, body = DesktopRecording)))]
async fn end_recording(
    State(state): State<AppState>,
    auth: Require<SessionRecordingsWrite>,
    AppPath(id): AppPath<Id<DesktopRecording>>,
) -> ApiResult<Json<DesktopRecording>> {
    Ok(Json(lifecycle::end(&state, &auth, id).await?))
}

/// Delete an ended desktop recording and its content (`session_recordings.manage`); 409 while it is
/// recorded, 409 `legal_hold` while it is held.
#[utoipa::path(delete, path = "/desktop/recordings/{id}", tag = "recordings",
    params(("id" = String, Path)), responses((status = 204)))]
async fn delete_recording(
    State(state): State<AppState>,
    auth: Require<SessionRecordingsManage>,
    AppPath(id): AppPath<Id<DesktopRecording>>,
) -> ApiResult<StatusCode> {
    retention::delete(&state, &auth, id).await
}

/// Put a desktop recording on legal hold (`{"hold": true, "reason"}`) or release it (`{"hold": false}`).
#[utoipa::path(put, path = "/desktop/recordings/{id}/legal-hold", tag = "recordings",
    params(("id" = String, Path)), request_body = LegalHold,
    responses((status = 200, body = DesktopRecording)))]
async fn set_legal_hold(
    State(state): State<AppState>,
    auth: Require<SessionRecordingsManage>,
    AppPath(id): AppPath<Id<DesktopRecording>>,
    AppJson(body): AppJson<LegalHold>,
) -> ApiResult<Json<DesktopRecording>> {
    Ok(Json(
        retention::set_legal_hold(&state, &auth, id, body).await?,
    ))
}

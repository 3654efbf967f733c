//! `GET /terminal/recordings/{id}/verify` and `GET /desktop/recordings/{id}/verify` (SPEC
//! 8.3): the stored object is read, decompressed and hashed, and compared with the hash the
//! end's audit entry holds — the chain protects that one, while the row's copy is only as safe
//! as the database. Each check is audited.

use axum::Json;
use axum::extract::State;
use serde::Serialize;
use serde_json::json;
use spog_core::recordings::{DesktopRecording, TerminalRecording};
use spog_core::{Id, Timestamp};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::lifecycle::visible;
use crate::auth::permissions::SessionRecordingsView;
use crate::auth::{Auth, Require};
use crate::error::{ApiError, ApiResult};
use crate::extract::AppPath;
use crate::recordings::content::{self, Source};
use crate::recordings::kind::Recorded;
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(verify_terminal))
        .routes(routes!(verify_desktop))
}

/// The outcome of a check of a recording's stored content.
#[derive(Debug, Serialize, ToSchema)]
pub struct Verification {
    pub valid: bool,
    /// The hash the end's audit entry holds.
    pub sha256_expected: Option<String>,
    /// The hash of the content as stored now; null when it could not be read.
    pub sha256_actual: Option<String>,
    /// The audit entry holding the expected hash: the end's, or the seal's when another
    /// instance ended it.
    pub audit_entry_id: Option<String>,
    /// Why it is not valid: `content_mismatch`, `missing`, `unreadable`,
    /// `audit_entry_missing`, or `not_sealed` (it ended before recordings were sealed).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<&'static str>,
    pub checked_at: Timestamp,
}

/// Check a terminal recording's stored content against its end's audit entry.
#[utoipa::path(get, path = "/terminal/recordings/{id}/verify", tag = "recordings",
    params(("id" = String, Path, description = "the recording's id")),
    responses((status = 200, body = Verification), (status = 409, description = "still active")))]
async fn verify_terminal(
    State(state): State<AppState>,
    auth: Require<SessionRecordingsView>,
    AppPath(id): AppPath<Id<TerminalRecording>>,
) -> ApiResult<Json<Verification>> {
    let recording: TerminalRecording = {
        let mut conn = state.store.conn().await?;
        spog_store::recordings::get(&mut conn, auth.account(), id, &auth.host_scope()).await?
    };
    Ok(Json(verify(&state, &auth, recording).await?))
}

/// Check a desktop recording's stored content against its end's audit entry.
#[utoipa::path(get, path = "/desktop/recordings/{id}/verify", tag = "recordings",
    params(("id" = String, Path)),
    responses((status = 200, body = Verification), (status = 409, description = "still active")))]
async fn verify_desktop(
    State(state): State<AppState>,
    auth: Require<SessionRecordingsView>,
    AppPath(id): AppPath<Id<DesktopRecording>>,
) -> ApiResult<Json<Verification>> {
    let recording: DesktopRecording = visible(&state, &auth, id).await?;
    Ok(Json(verify(&state, &auth, recording).await?))
}

async fn verify<K: Recorded>(
    state: &AppState,
    auth: &Auth,
    recording: K,
) -> ApiResult<Verification> {
    if !recording.has_ended() {
        return Err(ApiError::Conflict(format!(
            "the {} is active; it is sealed when it ends",
            K::NOUN
        )));
    }
    // The end holds the hash, unless another instance ended it: then the writer's seal does.
    let mut entry = None;
    let mut expected = None;
    for action in [K::ENDED, K::SEALED] {
        let mut conn = state.store.conn().await?;
        let found = spog_store::audit::latest_about(
            &mut conn,
            auth.account(),
            K::RESOURCE_TYPE,
            &recording.audit_id(),
            action.as_str(),
        )
        .await?;
        expected = found
            .as_ref()
            .and_then(|e| e.metadata.as_ref())
            .and_then(|m| m.to_value().get("sha256")?.as_str().map(str::to_owned));
        if expected.is_some() || entry.is_none() {
            entry = found;
        }
        if expected.is_some() {
            break;
        }
    }
    let source = content::source(state, auth.account(), &recording)
        .await
        .map_err(ApiError::internal)?;
    let actual = match source {
        Source::Sealed(sealed) => sealed.sha256(state).await,
        Source::File(_) | Source::Remote(_) => Err("not_sealed"),
    };
    let reason = match (&expected, &actual) {
        (_, Err(reason)) => Some(*reason),
        (None, Ok(_)) => Some("audit_entry_missing"),
        (Some(expected), Ok(actual)) => (expected != actual).then_some("content_mismatch"),
    };
    let verification = Verification {
        valid: reason.is_none(),
        sha256_expected: expected,
        sha256_actual: actual.ok(),
        audit_entry_id: entry.map(|e| e.id),
        reason,
        checked_at: Timestamp::now(),
    };
    let mut tx = state.store.begin().await?;
    let metadata = json!({"valid": verification.valid, "reason": verification.reason,
        "sha256_actual": verification.sha256_actual});
    tx.record(auth.did(K::VERIFIED, &recording).metadata(metadata))
        .await?;
    tx.commit().await?;
    Ok(verification)
}

//! A stream's controls: pause and resume (idempotent), backfill (only backwards), the
//! synchronous test with one synthetic entry, and the history of batch attempts.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use spog_core::Id;
use spog_core::Timestamp;
use spog_core::audit::{Action, EntryFields};
use spog_core::audit_streams::{AuditStream, Position};
use spog_core::page::Page;
use spog_store::audit_streams::sending::{self, Attempt};
use spog_store::audit_streams::{self as store};
use utoipa::ToSchema;

use super::{may_read, resolve};
use crate::audit_streams::sender::secrets_of;
use crate::audit_streams::{Batch, frame_entry, send};
use crate::auth::permissions::AuditStreamsManage;
use crate::auth::{Auth, Require};
use crate::error::{ApiError, ApiResult};
use crate::extract::{AppJson, AppPath};
use crate::state::AppState;

async fn set_paused(
    state: &AppState,
    auth: &Require<AuditStreamsManage>,
    id: Id<AuditStream>,
    paused: bool,
) -> ApiResult<Json<AuditStream>> {
    let mut tx = state.store.begin().await?;
    let now = Timestamp::now();
    store::get(&mut tx, auth.account(), id, now).await?;
    let changed = store::set_paused(&mut tx, auth.account(), id, paused, now).await?;
    let stream = store::get(&mut tx, auth.account(), id, now).await?;
    let action = if paused {
        Action::AuditStreamPause
    } else {
        Action::AuditStreamResume
    };
    tx.record(
        auth.did(action, &stream)
            .metadata(json!({"changed": changed})),
    )
    .await?;
    tx.commit().await?;
    if !paused {
        state.bus.audit_linked.notify_one();
    }
    Ok(Json(stream))
}

/// Pause a stream: nothing is sent until it resumes; the cursor stays.
#[utoipa::path(post, path = "/audit-streams/{id}/pause", tag = "audit-streams",
    params(("id" = String, Path)), responses((status = 200, body = AuditStream)))]
pub(super) async fn pause_stream(
    State(state): State<AppState>,
    auth: Require<AuditStreamsManage>,
    AppPath(id): AppPath<Id<AuditStream>>,
) -> ApiResult<Json<AuditStream>> {
    set_paused(&state, &auth, id, true).await
}

/// Resume a paused stream from its cursor.
#[utoipa::path(post, path = "/audit-streams/{id}/resume", tag = "audit-streams",
    params(("id" = String, Path)), responses((status = 200, body = AuditStream)))]
pub(super) async fn resume_stream(
    State(state): State<AppState>,
    auth: Require<AuditStreamsManage>,
    AppPath(id): AppPath<Id<AuditStream>>,
) -> ApiResult<Json<AuditStream>> {
    set_paused(&state, &auth, id, false).await
}

/// `{"from_seq"}` or `{"from_time"}`.
#[derive(Deserialize, ToSchema)]
#[schema(value_type = Object)]
pub struct Backfill(Value);

/// Send again from an earlier point of the chain: only backwards, never past what retention
/// removed.
#[utoipa::path(post, path = "/audit-streams/{id}/backfill", tag = "audit-streams",
    params(("id" = String, Path)), request_body = Backfill,
    responses((status = 202, body = AuditStream)))]
pub(super) async fn backfill_stream(
    State(state): State<AppState>,
    auth: Require<AuditStreamsManage>,
    AppPath(id): AppPath<Id<AuditStream>>,
    AppJson(Backfill(body)): AppJson<Backfill>,
) -> ApiResult<(StatusCode, Json<AuditStream>)> {
    let position = Position::parse("from", &body, false).map_err(|mut error| {
        // The body is the position: its fields are named as given.
        error.field = error.field.trim_start_matches("from.").to_owned();
        if error.field == "from" {
            error.field = "from_seq".to_owned();
        }
        ApiError::from(error)
    })?;
    let mut tx = state.store.begin().await?;
    let now = Timestamp::now();
    let before = store::get(&mut tx, auth.account(), id, now).await?;
    let field = match position {
        Position::FromTime(_) => "from_time",
        _ => "from_seq",
    };
    let from_seq = resolve(&mut tx, &auth, "backfill", position)
        .await
        .map_err(|error| match error {
            ApiError::Validation(errors) => {
                let message = errors
                    .iter()
                    .next()
                    .map(|(_, m)| m.to_owned())
                    .unwrap_or_default();
                ApiError::field(field, message)
            }
            other => other,
        })?;
    let delivered = before.status.delivered_seq;
    if from_seq > delivered + 1 {
        return Err(ApiError::field(
            field,
            format!(
                "a backfill only goes backwards: the stream resumes at seq {} already",
                delivered + 1
            ),
        ));
    }
    store::rewind(&mut tx, auth.account(), id, from_seq, now).await?;
    let stream = store::get(&mut tx, auth.account(), id, now).await?;
    tx.record(
        auth.did(Action::AuditStreamBackfill, &stream)
            .metadata(json!({
                "old_delivered_seq": delivered,
                "new_delivered_seq": from_seq - 1,
                "from": body,
            })),
    )
    .await?;
    tx.commit().await?;
    state.bus.audit_linked.notify_one();
    Ok((StatusCode::ACCEPTED, Json(stream)))
}

/// What the test came to.
#[derive(Serialize, ToSchema)]
pub struct TestResult {
    pub success: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status_code: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub duration_ms: u64,
}

/// Send one synthetic entry (`audit_stream.test`, `seq` null, not in the chain) now.
#[utoipa::path(post, path = "/audit-streams/{id}/test", tag = "audit-streams",
    params(("id" = String, Path)), responses((status = 200, body = TestResult)))]
pub(super) async fn test_stream(
    State(state): State<AppState>,
    auth: Require<AuditStreamsManage>,
    AppPath(id): AppPath<Id<AuditStream>>,
) -> ApiResult<Json<TestResult>> {
    let stored = {
        let mut conn = state.store.conn().await?;
        store::get_stored(&mut conn, auth.account(), id, Timestamp::now()).await?
    };
    let secrets = secrets_of(&state, &stored).ok_or_else(|| {
        ApiError::Conflict(
            "the stream's sink secrets cannot be decrypted with this server key; set them again"
                .to_owned(),
        )
    })?;
    let stream = stored.stream;
    let entry_id = Id::<AuditStream>::new().to_string();
    let account = auth.account().to_string();
    let stream_id = stream.id.to_string();
    let metadata =
        json!({"message": "A test entry from spog.", "stream_id": stream_id}).to_string();
    let entry = EntryFields {
        id: &entry_id,
        seq: None,
        occurred_at: Timestamp::now(),
        account_id: &account,
        organization_id: None,
        actor_type: "system",
        actor_id: None,
        actor_email: None,
        actor_name: Some("spog"),
        source: "api",
        ip: None,
        user_agent: None,
        request_id: None,
        action: Action::AuditStreamTest.as_str(),
        resource_type: "audit_stream",
        resource_id: Some(&stream_id),
        resource_name: Some(&stream.name),
        outcome: "success",
        before: None,
        after: None,
        metadata: Some(&metadata),
        credential_id: None,
        credential_name: None,
        recorded_at: None,
        prev_hash: None,
        hash: None,
    };
    let mut formatted = Vec::new();
    frame_entry(
        &stream.sink,
        stream.format,
        &account,
        &entry,
        &mut formatted,
    );
    let batch = Batch {
        stream_id: stream.id,
        account_id: auth.account(),
        format: stream.format,
        range: None,
        entries: vec![formatted],
        checkpoints: Vec::new(),
    };
    let outcome = send(&state, &stream.sink, &secrets, &batch).await;
    let result = TestResult {
        success: outcome.success,
        status_code: outcome.status_code,
        error: outcome.error,
        duration_ms: outcome.duration.as_millis() as u64,
    };
    let mut tx = state.store.begin().await?;
    tx.record(auth.did(Action::AuditStreamTest, &stream).metadata(json!({
        "success": result.success,
        "status_code": result.status_code,
        "error": result.error,
        "duration_ms": result.duration_ms,
    })))
    .await?;
    tx.commit().await?;
    Ok(Json(result))
}

/// The stream's last 1,000 batch attempts, newest first.
#[utoipa::path(get, path = "/audit-streams/{id}/attempts", tag = "audit-streams",
    params(("id" = String, Path)), responses((status = 200, body = Page<Attempt>)))]
pub(super) async fn list_attempts(
    State(state): State<AppState>,
    auth: Auth,
    AppPath(id): AppPath<Id<AuditStream>>,
) -> ApiResult<Json<Page<Attempt>>> {
    may_read(&auth)?;
    let mut conn = state.store.conn().await?;
    store::get(&mut conn, auth.account(), id, Timestamp::now()).await?;
    let items = sending::attempts(&mut conn, auth.account(), id).await?;
    Ok(Json(Page {
        items,
        next_cursor: None,
    }))
}

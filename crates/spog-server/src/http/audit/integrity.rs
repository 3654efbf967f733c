use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::json;
use spog_core::audit::Action;
use spog_core::page;
use spog_store::audit::checkpoints::{self, Checkpoint};
use utoipa::IntoParams;

use crate::auth::permissions::AuditLogsView;
use crate::auth::{Auth, Require};
use crate::chain::{self, IntegrityReport, PublicKey};
use crate::error::{ApiError, ApiResult};
use crate::extract::AppQuery;
use crate::state::AppState;

/// Verify the account's whole chain (and against the latest signed checkpoint).
#[utoipa::path(get, path = "/audit-logs/integrity", tag = "audit",
    responses((status = 200, body = IntegrityReport)))]
pub async fn verify_integrity(
    State(state): State<AppState>,
    auth: Require<AuditLogsView>,
) -> ApiResult<Json<IntegrityReport>> {
    Ok(Json(verify_and_record(&state, &auth).await?))
}

/// Walks the chain and puts the check on record (the console runs it the same way).
pub(crate) async fn verify_and_record(state: &AppState, auth: &Auth) -> ApiResult<IntegrityReport> {
    let report = chain::verify(&state.store, &state.blocking, auth.account()).await?;
    let mut tx = state.store.begin().await?;
    tx.record(auth.entry(Action::AuditLogVerify).metadata(json!({
        "valid": report.report.valid,
        "entries_checked": report.report.entries_checked,
        "head_seq": report.report.head_seq,
        "broken_links": report.report.broken_links.len() as u64 + report.report.broken_links_omitted,
    }))).await?;
    tx.commit().await?;
    Ok(report)
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct CheckpointParams {
    /// 1 to 500; default 50.
    pub limit: Option<i64>,
}

/// Signed checkpoints of the account's chain, newest first.
#[utoipa::path(get, path = "/audit-logs/checkpoints", tag = "audit", params(CheckpointParams),
    responses((status = 200, body = Vec<Checkpoint>)))]
pub async fn list_checkpoints(
    State(state): State<AppState>,
    auth: Require<AuditLogsView>,
    AppQuery(params): AppQuery<CheckpointParams>,
) -> ApiResult<Json<Vec<Checkpoint>>> {
    let limit = page::limit(params.limit, page::DEFAULT_LIMIT, page::MAX_LIMIT)?;
    let mut conn = state.store.conn().await?;
    Ok(Json(
        checkpoints::list(&mut conn, auth.account(), limit).await?,
    ))
}

/// Sign a checkpoint of the chain's current head now.
#[utoipa::path(post, path = "/audit-logs/checkpoints", tag = "audit",
    responses((status = 201, body = Checkpoint)))]
pub async fn create_checkpoint(
    State(state): State<AppState>,
    auth: Require<AuditLogsView>,
) -> ApiResult<(StatusCode, Json<Checkpoint>)> {
    // Record the request first, so the checkpoint covers its own entry.
    let mut tx = state.store.begin().await?;
    tx.record(auth.entry(Action::AuditLogCheckpoint)).await?;
    tx.commit().await?;
    let checkpoint = chain::sign_checkpoint(&state.store, &state.keys, auth.account())
        .await?
        .ok_or_else(|| ApiError::Conflict("the chain is empty".to_owned()))?;
    Ok((StatusCode::CREATED, Json(checkpoint)))
}

/// The Ed25519 public key that verifies checkpoints.
#[utoipa::path(get, path = "/audit-logs/checkpoints/public-key", tag = "audit",
    responses((status = 200, body = PublicKey)))]
pub async fn checkpoint_public_key(
    State(state): State<AppState>,
    _auth: Require<AuditLogsView>,
) -> Json<PublicKey> {
    Json(chain::public_key(&state.keys))
}

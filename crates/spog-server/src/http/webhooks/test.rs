//! `POST /webhooks/{id}/test`: a signed `ping` sent synchronously, outside any transaction,
//! and never recorded as a delivery (the test itself is audited).

use axum::Json;
use axum::extract::State;
use bytes::Bytes;
use serde::Serialize;
use serde_json::json;
use spog_core::audit::Action;
use spog_core::webhooks::Webhook;
use spog_core::{Id, Timestamp};
use spog_store::webhooks as store;
use utoipa::ToSchema;

use crate::auth::Require;
use crate::auth::permissions::MonitoringManage;
use crate::delivery::webhook::signed_request;
use crate::error::ApiResult;
use crate::extract::AppPath;
use crate::state::AppState;

/// What the test delivery came to.
#[derive(Serialize, ToSchema)]
pub struct TestResult {
    /// True for a 2xx answer.
    pub success: bool,
    pub status_code: Option<u16>,
    /// The first 4 KiB of the response.
    pub response_body: Option<String>,
    pub duration_ms: u64,
    pub error: Option<String>,
}

/// Send a signed `ping` to the webhook's URL now.
#[utoipa::path(post, path = "/webhooks/{id}/test", tag = "webhooks", params(("id" = String, Path)),
    responses((status = 200, body = TestResult)))]
pub(super) async fn test_webhook(
    State(state): State<AppState>,
    auth: Require<MonitoringManage>,
    AppPath(id): AppPath<Id<Webhook>>,
) -> ApiResult<Json<TestResult>> {
    let stored = {
        let mut conn = state.store.conn().await?;
        store::get_stored(&mut conn, auth.account(), id).await?
    };
    let secrets = super::opened(&state, &stored)?;
    let webhook = stored.webhook;
    let now = Timestamp::now();
    let ping = Id::<Webhook>::new().to_string();
    let body = json!({
        "id": ping,
        "event_type": "ping",
        "timestamp": now,
        "account_id": auth.account(),
        "organization_id": webhook.organization_id,
        "data": {"webhook_id": webhook.id, "name": webhook.name, "message": "A test delivery from spog."},
    });
    let request = signed_request(
        &webhook.url,
        secrets.secret.as_deref(),
        &secrets.headers,
        &ping,
        "ping",
        Bytes::from(body.to_string()),
        now,
    );
    let report = state
        .engine
        .http
        .post(&request, state.engine.attempt_timeout)
        .await;
    let result = TestResult {
        success: report.success,
        status_code: report.status_code,
        response_body: report.response_body,
        duration_ms: report.duration.as_millis() as u64,
        error: report.error,
    };
    let mut tx = state.store.begin().await?;
    tx.record(auth.did(Action::WebhookTest, &webhook).metadata(json!({
        "url": webhook.url,
        "success": result.success,
        "status_code": result.status_code,
        "error": result.error,
        "duration_ms": result.duration_ms,
    })))
    .await?;
    tx.commit().await?;
    Ok(Json(result))
}

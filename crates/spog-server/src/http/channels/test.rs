//! `POST /notification-channels/{id}/test`: a test notice in the channel's format, sent
//! synchronously outside any transaction and never recorded as a delivery (the test itself
//! is audited).

use axum::Json;
use axum::extract::State;
use serde::Serialize;
use serde_json::json;
use spog_core::audit::Action;
use spog_core::channels::{Channel, Notice};
use spog_core::{Id, Timestamp};
use spog_store::channels as store;
use utoipa::ToSchema;

use crate::auth::Require;
use crate::auth::permissions::MonitoringManage;
use crate::delivery::channel::outgoing;
use crate::error::ApiResult;
use crate::extract::AppPath;
use crate::state::AppState;

/// What the test notification came to.
#[derive(Serialize, ToSchema)]
pub struct ChannelTestResult {
    /// True when the channel accepted it (a 2xx, Slack's `ok`, or the SMTP server's 250).
    pub success: bool,
    /// The HTTP status, or the SMTP reply code.
    pub status_code: Option<u16>,
    /// The first 4 KiB of the response, or the SMTP server's reply.
    pub response_body: Option<String>,
    pub duration_ms: u64,
    pub error: Option<String>,
}

/// Send a test notification through the channel now.
#[utoipa::path(post, path = "/notification-channels/{id}/test", tag = "channels",
    params(("id" = String, Path)), responses((status = 200, body = ChannelTestResult)))]
pub(super) async fn test_channel(
    State(state): State<AppState>,
    auth: Require<MonitoringManage>,
    AppPath(id): AppPath<Id<Channel>>,
) -> ApiResult<Json<ChannelTestResult>> {
    let stored = {
        let mut conn = state.store.conn().await?;
        store::get_stored(&mut conn, auth.account(), id).await?
    };
    let now = Timestamp::now();
    let notice = Notice::test(&stored.channel.name, now);
    let message = Id::<Channel>::new().to_string();
    let report = state
        .engine
        .send(&outgoing(&state.keys, &stored, &notice, &message, now))
        .await;
    let result = ChannelTestResult {
        success: report.success,
        status_code: report.status_code,
        response_body: report.response_body,
        duration_ms: report.duration.as_millis() as u64,
        error: report.error,
    };
    let mut tx = state.store.begin().await?;
    tx.record(
        auth.did(Action::NotificationChannelTest, &stored.channel)
            .metadata(json!({
                "type": stored.channel.channel_type,
                "success": result.success,
                "status_code": result.status_code,
                "error": result.error,
                "duration_ms": result.duration_ms,
            })),
    )
    .await?;
    tx.commit().await?;
    Ok(Json(result))
}

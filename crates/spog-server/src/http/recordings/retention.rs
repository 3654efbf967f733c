//! Ending a recording's life by hand, alike for terminal and desktop recordings (SPEC 8.3):
//! deleting one (`session_recordings.manage`, host visible), and legal holds that block it.

use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::json;
use spog_core::recordings::MAX_LEGAL_HOLD_REASON;
use spog_core::{Id, validate};
use spog_store::identity::hosts::HostScope;
use spog_store::recordings;
use utoipa::ToSchema;

use crate::auth::Auth;
use crate::error::{ApiError, ApiResult};
use crate::recordings::deletion::{self, Deletion, Why};
use crate::recordings::kind::Recorded;
use crate::state::AppState;

/// `PUT …/recordings/{id}/legal-hold`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LegalHold {
    /// True to hold the recording, false to release it.
    pub hold: bool,
    /// Why it is held (up to 500 characters); required when holding.
    pub reason: Option<String>,
}

/// Deletes an ended recording the caller may see that is not on legal hold.
pub async fn delete<R: Recorded>(
    state: &AppState,
    auth: &Auth,
    id: Id<R>,
) -> ApiResult<StatusCode> {
    let mut conn = state.store.conn().await?;
    recordings::get::<R>(&mut conn, auth.account(), id, &auth.host_scope()).await?;
    drop(conn);
    match deletion::delete::<R>(state, &auth.actor(), id, Why::Manual).await? {
        Deletion::Deleted(_) => Ok(StatusCode::NO_CONTENT),
        Deletion::Active => Err(ApiError::Conflict(format!(
            "the {} is still being recorded; end it first",
            R::NOUN
        ))),
        Deletion::Held => Err(ApiError::Coded {
            status: StatusCode::CONFLICT,
            code: "legal_hold",
            message: "the recording is on legal hold; release the hold first".to_owned(),
            details: None,
        }),
    }
}

/// Puts a recording the caller may see on legal hold, or releases it; the recording as it is
/// then.
pub async fn set_legal_hold<R: Recorded>(
    state: &AppState,
    auth: &Auth,
    id: Id<R>,
    body: LegalHold,
) -> ApiResult<R> {
    let reason = body
        .reason
        .as_deref()
        .map(|r| validate::text("reason", r, MAX_LEGAL_HOLD_REASON))
        .transpose()?
        .filter(|r| !r.is_empty());
    if body.hold && reason.is_none() {
        return Err(ApiError::field("reason", "is required to hold a recording"));
    }
    let mut tx = state.store.begin().await?;
    let before: R = recordings::get(&mut tx, auth.account(), id, &auth.host_scope()).await?;
    let held = if body.hold { reason.as_deref() } else { None };
    recordings::set_legal_hold::<R>(&mut tx, auth.account(), id, held).await?;
    let after: R = recordings::get(&mut tx, auth.account(), id, &HostScope::All).await?;
    let action = if body.hold { R::HELD } else { R::RELEASED };
    let entry = auth
        .did(action, &after.kept())
        .before(&before)
        .after(&after)
        .metadata(json!({"reason": reason}));
    tx.record(entry).await?;
    tx.commit().await?;
    Ok(super::lifecycle::located(state, after))
}

//! Settings > Recordings (SPEC 11.1): how long the account keeps ended recordings. Read with
//! `session_recordings.view`; the form (through the API) needs `session_recordings.manage`.

use askama::Template;
use axum::extract::State;
use spog_core::Permission;
use spog_store::recordings;

use super::error::PageResult;
use super::layout::{Chrome, render};
use super::session::RequirePage;
use crate::auth::permissions::SessionRecordingsView;
use crate::state::AppState;

pub const PATH: &str = "/settings/recordings";
pub const TITLE: &str = "Recording settings";

#[derive(Template)]
#[template(path = "recordings/settings.html")]
struct SettingsPage {
    chrome: Chrome,
    retention_days: Option<i64>,
    default_retention: String,
    can_manage: bool,
}

pub async fn settings_page(
    State(state): State<AppState>,
    viewer: RequirePage<SessionRecordingsView>,
) -> PageResult {
    let chrome = Chrome::new(&viewer, TITLE);
    let mut conn = state.store.conn().await?;
    let settings = recordings::settings(&mut conn, viewer.auth.account()).await?;
    render(&SettingsPage {
        chrome,
        retention_days: settings.retention_days,
        default_retention: state.config.recording_retention_text(),
        can_manage: viewer.has(Permission::SessionRecordingsManage),
    })
}

//! Desktop recordings: frames in a file under the data directory, described by one row (see
//! [`super::lifecycle`]).

use spog_core::recordings::{DesktopRecording, Stored};
use spog_core::{Id, Timestamp};

use super::RecordingKind;
use crate::rows::{at, flag, id, opt_at};
use crate::{Sql, StoreError, StoreResult};

const SELECT: &str = "SELECT r.id, r.organization_id, r.host_id, r.hostname, r.user_id, r.user_email, \
     r.width, r.height, r.started_at, r.ended_at, r.end_reason, r.duration_ms, r.frame_count, \
     r.total_bytes, r.file_path, r.sha256, r.stored_bytes, r.storage, \
     r.legal_hold, r.legal_hold_reason FROM desktop_recordings r WHERE r.account_id = ";

#[derive(sqlx::FromRow)]
/// A row as read.
pub struct Row {
    id: String,
    organization_id: String,
    host_id: String,
    hostname: String,
    user_id: String,
    user_email: String,
    width: i64,
    height: i64,
    started_at: i64,
    ended_at: Option<i64>,
    end_reason: Option<String>,
    duration_ms: i64,
    frame_count: i64,
    total_bytes: i64,
    file_path: String,
    sha256: Option<String>,
    stored_bytes: Option<i64>,
    storage: Option<String>,
    legal_hold: i64,
    legal_hold_reason: Option<String>,
}

impl TryFrom<Row> for DesktopRecording {
    type Error = StoreError;
    fn try_from(row: Row) -> StoreResult<Self> {
        Ok(DesktopRecording {
            id: id(&row.id)?,
            organization_id: id(&row.organization_id)?,
            host_id: id(&row.host_id)?,
            hostname: row.hostname,
            user_id: id(&row.user_id)?,
            user_email: row.user_email,
            width: row.width,
            height: row.height,
            frame_count: row.frame_count,
            total_bytes: row.total_bytes,
            duration_seconds: row.duration_ms as f64 / 1e3,
            file_path: row.file_path,
            started_at: at(row.started_at),
            ended_at: opt_at(row.ended_at),
            end_reason: row.end_reason,
            stored: Stored {
                sha256: row.sha256,
                stored_bytes: row.stored_bytes,
                storage: row.storage,
            },
            legal_hold: flag(row.legal_hold),
            legal_hold_reason: row.legal_hold_reason,
        })
    }
}

/// Its frames file is `<id>.frames` under the data directory, its seek index beside it with
/// the extension `.index`.
impl RecordingKind for DesktopRecording {
    const TABLE: &'static str = "desktop_recordings";
    const SELECT: &'static str = SELECT;
    const EXTENSION: &'static str = "frames";
    const OWN_COLUMNS: &'static str = "";
    const NOUN: &'static str = "recording";
    const ADDRESS_COLUMN: &'static str = "r.id";

    type Address = Id<DesktopRecording>;
    type Row = Row;
    type Start<'a> = ();
    type Progress = Progress;

    fn bind_own(_: &mut Sql, (): &()) {}

    fn set_progress(sql: &mut Sql, progress: &Progress) {
        sql.push("duration_ms = ")
            .bind(progress.duration_ms)
            .push(", frame_count = ")
            .bind(progress.frame_count)
            .push(", total_bytes = ")
            .bind(progress.total_bytes);
    }

    fn last_activity(progress: &Progress) -> Timestamp {
        progress.last_activity_at
    }

    fn id(&self) -> Id<Self> {
        self.id
    }
}

/// How far a desktop recording has grown.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Progress {
    pub duration_ms: i64,
    pub frame_count: i64,
    pub total_bytes: i64,
    pub last_activity_at: Timestamp,
}

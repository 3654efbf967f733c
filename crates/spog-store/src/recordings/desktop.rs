//! Desktop recordings: frames in a file under the data directory, described by one row.

use spog_core::model::Account;
use spog_core::page::{Cursor, Page, key_text};
use spog_core::recordings::DesktopRecording;
use spog_core::{Id, Timestamp};

use super::terminal::Filter;
use super::{EndReason, NewRecording, scoped};
use crate::error::Found;
use crate::identity::hosts::HostScope;
use crate::rows::{at, id, opt_at};
use crate::{Conn, Sql, StoreError, StoreResult};

const SELECT: &str = "SELECT r.id, r.organization_id, r.host_id, h.hostname, r.user_id, r.user_email, \
     r.width, r.height, r.started_at, r.ended_at, r.end_reason, r.duration_ms, r.frame_count, \
     r.total_bytes, r.file_path \
     FROM desktop_recordings r JOIN hosts h ON h.id = r.host_id WHERE r.account_id = ";

#[derive(sqlx::FromRow)]
struct Row {
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
        })
    }
}

/// The frames file of a recording, relative to the data directory (its seek index sits
/// beside it with the extension `.index`).
pub fn file_path(account: Id<Account>, recording: Id<DesktopRecording>) -> String {
    format!("recordings/{account}/{recording}.frames")
}

#[tracing::instrument(name = "recordings::desktop::start", skip_all)]
pub async fn start(conn: &mut Conn, new: &NewRecording<'_>) -> StoreResult<DesktopRecording> {
    let recording: Id<DesktopRecording> = Id::new();
    let mut sql = Sql::new(
        "INSERT INTO desktop_recordings (id, account_id, organization_id, host_id, user_id, \
         user_email, width, height, started_at, last_activity_at, file_path) VALUES (",
    );
    sql.bind(recording.to_string())
        .push(", ")
        .bind(new.account.to_string())
        .push(", ")
        .bind(new.organization.to_string())
        .push(", ")
        .bind(new.host.to_string())
        .push(", ")
        .bind(new.user.to_string())
        .push(", ")
        .bind(new.user_email.to_owned())
        .push(", ")
        .bind(new.width)
        .push(", ")
        .bind(new.height)
        .push(", ")
        .bind(new.started_at.micros())
        .push(", ")
        .bind(new.started_at.micros())
        .push(", ")
        .bind(file_path(new.account, recording))
        .push(")");
    sql.execute(conn).await?;
    get(conn, new.account, recording, &HostScope::All).await
}

#[tracing::instrument(name = "recordings::desktop::get", skip_all, fields(account = %account, recording = %recording))]
pub async fn get(
    conn: &mut Conn,
    account: Id<Account>,
    recording: Id<DesktopRecording>,
    scope: &HostScope,
) -> StoreResult<DesktopRecording> {
    let mut sql = Sql::new(SELECT);
    sql.bind(account.to_string())
        .push(" AND r.id = ")
        .bind(recording.to_string());
    scoped(&mut sql, scope);
    sql.fetch_optional::<Row>(conn).await.found()?.try_into()
}

/// Recordings, newest first.
#[tracing::instrument(name = "recordings::desktop::list", skip_all, fields(account = %account))]
pub async fn list(
    conn: &mut Conn,
    account: Id<Account>,
    scope: &HostScope,
    filter: &Filter,
    limit: u32,
    cursor: Option<&str>,
) -> StoreResult<Page<DesktopRecording>> {
    let text = |v: Option<String>| v.unwrap_or_default();
    let granted = match scope {
        HostScope::All => String::new(),
        HostScope::GrantedTo(user) => user.to_string(),
    };
    let scope_cursor = Cursor::scope(&[
        &account.to_string(),
        "desktop_recordings",
        &text(filter.host.map(|h| h.to_string())),
        &text(filter.user.map(|u| u.to_string())),
        if filter.active { "active" } else { "all" },
        &granted,
    ]);
    let after = scope_cursor.decode(cursor)?;
    let mut sql = Sql::new(SELECT);
    sql.bind(account.to_string());
    scoped(&mut sql, scope);
    if let Some(host) = filter.host {
        sql.push(" AND r.host_id = ").bind(host.to_string());
    }
    if let Some(user) = filter.user {
        sql.push(" AND r.user_id = ").bind(user.to_string());
    }
    if filter.active {
        sql.push(" AND r.ended_at IS NULL");
    }
    if let Some(key) = after {
        sql.push(" AND r.id < ").bind(key_text(&key, 0)?);
    }
    sql.push(" ORDER BY r.id DESC LIMIT ")
        .bind(i64::from(limit) + 1);
    let rows = sql
        .fetch_all::<Row>(conn)
        .await?
        .into_iter()
        .map(DesktopRecording::try_from)
        .collect::<StoreResult<Vec<_>>>()?;
    Ok(Page::from_rows(rows, limit, &scope_cursor, |r| {
        vec![r.id.to_string().into()]
    }))
}

/// How far a desktop recording has grown.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Progress {
    pub duration_ms: i64,
    pub frame_count: i64,
    pub total_bytes: i64,
    pub last_activity_at: Timestamp,
}

/// Records progress of an active recording; false when it has ended meanwhile.
#[tracing::instrument(name = "recordings::desktop::record_progress", skip_all, fields(recording = %recording))]
pub async fn record_progress(
    conn: &mut Conn,
    recording: Id<DesktopRecording>,
    progress: &Progress,
) -> StoreResult<bool> {
    let mut sql = Sql::new("UPDATE desktop_recordings SET duration_ms = ");
    sql.bind(progress.duration_ms)
        .push(", frame_count = ")
        .bind(progress.frame_count)
        .push(", total_bytes = ")
        .bind(progress.total_bytes)
        .push(", last_activity_at = ")
        .bind(progress.last_activity_at.micros())
        .push(" WHERE id = ")
        .bind(recording.to_string())
        .push(" AND ended_at IS NULL");
    Ok(sql.execute(conn).await?.rows_affected() == 1)
}

/// Ends an active recording; `Conflict` when it had ended already.
#[tracing::instrument(name = "recordings::desktop::end", skip_all, fields(account = %account, recording = %recording))]
pub async fn end(
    conn: &mut Conn,
    account: Id<Account>,
    recording: Id<DesktopRecording>,
    progress: Option<&Progress>,
    reason: EndReason,
    now: Timestamp,
) -> StoreResult<DesktopRecording> {
    if let Some(progress) = progress {
        record_progress(conn, recording, progress).await?;
    }
    let mut sql = Sql::new("UPDATE desktop_recordings SET ended_at = ");
    sql.bind(now.micros())
        .push(", end_reason = ")
        .bind(reason.as_str())
        .push(" WHERE account_id = ")
        .bind(account.to_string())
        .push(" AND id = ")
        .bind(recording.to_string())
        .push(" AND ended_at IS NULL");
    if sql.execute(conn).await?.rows_affected() == 0 {
        get(conn, account, recording, &HostScope::All).await?;
        return Err(StoreError::Conflict(
            "the recording has already ended".to_owned(),
        ));
    }
    get(conn, account, recording, &HostScope::All).await
}

/// Active recordings silent since before `cutoff`, in any account.
#[tracing::instrument(name = "recordings::desktop::silent", skip_all)]
pub async fn silent(
    conn: &mut Conn,
    cutoff: Timestamp,
    limit: u32,
) -> StoreResult<Vec<(Id<Account>, Id<DesktopRecording>)>> {
    let mut sql = Sql::new(
        "SELECT account_id, id FROM desktop_recordings WHERE ended_at IS NULL AND last_activity_at < ",
    );
    sql.bind(cutoff.micros())
        .push(" ORDER BY last_activity_at LIMIT ")
        .bind(i64::from(limit));
    let rows: Vec<(String, String)> = sql.fetch_all(conn).await?;
    rows.iter()
        .map(|(account, recording)| Ok((id(account)?, id(recording)?)))
        .collect()
}

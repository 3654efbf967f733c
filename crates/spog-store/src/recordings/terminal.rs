//! Terminal recordings and their sessions: one row each, active while `ended_at` is NULL.

use spog_core::model::{Account, Host, User};
use spog_core::page::{Cursor, Page, key_text};
use spog_core::recordings::{TerminalRecording, TerminalSession};
use spog_core::{Id, Timestamp};

use super::{EndReason, NewRecording, scoped};
use crate::error::Found;
use crate::identity::hosts::HostScope;
use crate::rows::{at, id, opt_at};
use crate::{Conn, Sql, StoreError, StoreResult};

const SELECT: &str = "SELECT r.id, r.session_id, r.organization_id, r.host_id, h.hostname, r.user_id, \
     r.user_email, r.shell, r.width, r.height, r.started_at, r.ended_at, r.end_reason, \
     r.duration_micros, r.bytes_in, r.bytes_out, r.event_count, r.file_path \
     FROM terminal_recordings r JOIN hosts h ON h.id = r.host_id WHERE r.account_id = ";

#[derive(sqlx::FromRow)]
struct Row {
    id: String,
    session_id: String,
    organization_id: String,
    host_id: String,
    hostname: String,
    user_id: String,
    user_email: String,
    shell: String,
    width: i64,
    height: i64,
    started_at: i64,
    ended_at: Option<i64>,
    end_reason: Option<String>,
    duration_micros: i64,
    bytes_in: i64,
    bytes_out: i64,
    event_count: i64,
    file_path: String,
}

impl TryFrom<Row> for TerminalRecording {
    type Error = StoreError;
    fn try_from(row: Row) -> StoreResult<Self> {
        Ok(TerminalRecording {
            id: id(&row.id)?,
            session_id: id(&row.session_id)?,
            organization_id: id(&row.organization_id)?,
            host_id: id(&row.host_id)?,
            hostname: row.hostname,
            user_id: id(&row.user_id)?,
            user_email: row.user_email,
            shell: row.shell,
            width: row.width,
            height: row.height,
            started_at: at(row.started_at),
            ended_at: opt_at(row.ended_at),
            duration_seconds: row.duration_micros as f64 / 1e6,
            bytes_in: row.bytes_in,
            bytes_out: row.bytes_out,
            event_count: row.event_count,
            end_reason: row.end_reason,
            file_path: row.file_path,
        })
    }
}

/// The file a recording is written to, relative to the data directory.
pub fn file_path(account: Id<Account>, recording: Id<TerminalRecording>) -> String {
    format!("recordings/{account}/{recording}.cast")
}

/// Starts a session and its recording.
#[tracing::instrument(name = "recordings::terminal::start", skip_all)]
pub async fn start(
    conn: &mut Conn,
    new: &NewRecording<'_>,
    shell: &str,
) -> StoreResult<TerminalRecording> {
    let recording: Id<TerminalRecording> = Id::new();
    let session: Id<TerminalSession> = Id::new();
    let mut sql = Sql::new(
        "INSERT INTO terminal_recordings (id, session_id, account_id, organization_id, host_id, \
         user_id, user_email, shell, width, height, started_at, last_activity_at, file_path) VALUES (",
    );
    sql.bind(recording.to_string())
        .push(", ")
        .bind(session.to_string())
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
        .bind(shell.to_owned())
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

/// A recording the scope may see.
#[tracing::instrument(name = "recordings::terminal::get", skip_all, fields(account = %account, recording = %recording))]
pub async fn get(
    conn: &mut Conn,
    account: Id<Account>,
    recording: Id<TerminalRecording>,
    scope: &HostScope,
) -> StoreResult<TerminalRecording> {
    let mut sql = Sql::new(SELECT);
    sql.bind(account.to_string())
        .push(" AND r.id = ")
        .bind(recording.to_string());
    scoped(&mut sql, scope);
    sql.fetch_optional::<Row>(conn).await.found()?.try_into()
}

/// The recording of a session the scope may see.
#[tracing::instrument(name = "recordings::terminal::by_session", skip_all, fields(account = %account, session = %session))]
pub async fn by_session(
    conn: &mut Conn,
    account: Id<Account>,
    session: Id<TerminalSession>,
    scope: &HostScope,
) -> StoreResult<TerminalRecording> {
    let mut sql = Sql::new(SELECT);
    sql.bind(account.to_string())
        .push(" AND r.session_id = ")
        .bind(session.to_string());
    scoped(&mut sql, scope);
    sql.fetch_optional::<Row>(conn).await.found()?.try_into()
}

/// Filters of a recordings listing.
#[derive(Default)]
pub struct Filter {
    pub host: Option<Id<Host>>,
    pub user: Option<Id<User>>,
    /// Only active sessions.
    pub active: bool,
}

/// Recordings (or with `filter.active`, active sessions), newest first.
#[tracing::instrument(name = "recordings::terminal::list", skip_all, fields(account = %account))]
pub async fn list(
    conn: &mut Conn,
    account: Id<Account>,
    scope: &HostScope,
    filter: &Filter,
    limit: u32,
    cursor: Option<&str>,
) -> StoreResult<Page<TerminalRecording>> {
    let text = |v: Option<String>| v.unwrap_or_default();
    let granted = match scope {
        HostScope::All => String::new(),
        HostScope::GrantedTo(user) => user.to_string(),
    };
    let scope_cursor = Cursor::scope(&[
        &account.to_string(),
        "terminal_recordings",
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
        .map(TerminalRecording::try_from)
        .collect::<StoreResult<Vec<_>>>()?;
    Ok(Page::from_rows(rows, limit, &scope_cursor, |r| {
        vec![r.id.to_string().into()]
    }))
}

/// How far a recording has grown.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Progress {
    pub duration_micros: i64,
    pub bytes_in: i64,
    pub bytes_out: i64,
    pub event_count: i64,
    pub last_activity_at: Timestamp,
}

/// Records the progress of an active recording; false when it has ended meanwhile (perhaps
/// on another instance).
#[tracing::instrument(name = "recordings::terminal::record_progress", skip_all, fields(recording = %recording))]
pub async fn record_progress(
    conn: &mut Conn,
    recording: Id<TerminalRecording>,
    progress: &Progress,
) -> StoreResult<bool> {
    let mut sql = Sql::new("UPDATE terminal_recordings SET duration_micros = ");
    sql.bind(progress.duration_micros)
        .push(", bytes_in = ")
        .bind(progress.bytes_in)
        .push(", bytes_out = ")
        .bind(progress.bytes_out)
        .push(", event_count = ")
        .bind(progress.event_count)
        .push(", last_activity_at = ")
        .bind(progress.last_activity_at.micros())
        .push(" WHERE id = ")
        .bind(recording.to_string())
        .push(" AND ended_at IS NULL");
    Ok(sql.execute(conn).await?.rows_affected() == 1)
}

/// Ends an active session with its final progress; `Conflict` when it had ended already.
#[tracing::instrument(name = "recordings::terminal::end", skip_all, fields(account = %account, recording = %recording))]
pub async fn end(
    conn: &mut Conn,
    account: Id<Account>,
    recording: Id<TerminalRecording>,
    progress: Option<&Progress>,
    reason: EndReason,
    now: Timestamp,
) -> StoreResult<TerminalRecording> {
    if let Some(progress) = progress {
        record_progress(conn, recording, progress).await?;
    }
    let mut sql = Sql::new("UPDATE terminal_recordings SET ended_at = ");
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
            "the session has already ended".to_owned(),
        ));
    }
    get(conn, account, recording, &HostScope::All).await
}

/// Active sessions silent since before `cutoff`, in any account, oldest first.
#[tracing::instrument(name = "recordings::terminal::silent", skip_all)]
pub async fn silent(
    conn: &mut Conn,
    cutoff: Timestamp,
    limit: u32,
) -> StoreResult<Vec<(Id<Account>, Id<TerminalRecording>)>> {
    let mut sql = Sql::new(
        "SELECT account_id, id FROM terminal_recordings WHERE ended_at IS NULL AND last_activity_at < ",
    );
    sql.bind(cutoff.micros())
        .push(" ORDER BY last_activity_at LIMIT ")
        .bind(i64::from(limit));
    let rows: Vec<(String, String)> = sql.fetch_all(conn).await?;
    rows.iter()
        .map(|(account, recording)| Ok((id(account)?, id(recording)?)))
        .collect()
}

//! Terminal recordings and their sessions: one row each, its session's id and shell beside
//! what every recording has (see [`super::lifecycle`]).

use spog_core::recordings::{Stored, TerminalRecording, TerminalSession};
use spog_core::{Id, Timestamp};

use super::RecordingKind;
use crate::rows::{at, flag, id, opt_at};
use crate::{Sql, StoreError, StoreResult};

const SELECT: &str = "SELECT r.id, r.session_id, r.organization_id, r.host_id, r.hostname, r.user_id, \
     r.user_email, r.shell, r.width, r.height, r.started_at, r.ended_at, r.end_reason, \
     r.duration_micros, r.bytes_in, r.bytes_out, r.event_count, r.file_path, r.origin, r.os_user, \
     r.client_addr, r.exit_code, r.sha256, r.stored_bytes, r.storage, \
     r.legal_hold, r.legal_hold_reason FROM terminal_recordings r WHERE r.account_id = ";

#[derive(sqlx::FromRow)]
/// A row as read.
pub struct Row {
    id: String,
    session_id: String,
    organization_id: String,
    host_id: String,
    hostname: String,
    user_id: Option<String>,
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
    sha256: Option<String>,
    stored_bytes: Option<i64>,
    storage: Option<String>,
    origin: String,
    os_user: Option<String>,
    client_addr: Option<String>,
    exit_code: Option<i64>,
    legal_hold: i64,
    legal_hold_reason: Option<String>,
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
            user_id: row.user_id.as_deref().map(id).transpose()?,
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
            origin: row.origin,
            os_user: row.os_user,
            client_addr: row.client_addr,
            exit_code: row.exit_code.and_then(|code| i32::try_from(code).ok()),
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

impl RecordingKind for TerminalRecording {
    const TABLE: &'static str = "terminal_recordings";
    const SELECT: &'static str = SELECT;
    const EXTENSION: &'static str = "cast";
    const OWN_COLUMNS: &'static str =
        ", session_id, shell, origin, os_user, client_addr, source_key";
    const NOUN: &'static str = "session";
    const ADDRESS_COLUMN: &'static str = "r.session_id";

    type Address = Id<TerminalSession>;
    type Row = Row;
    type Start<'a> = SessionStart<'a>;
    type Progress = Progress;

    /// A new session starts with its recording.
    fn bind_own(sql: &mut Sql, start: &SessionStart<'_>) {
        let session: Id<TerminalSession> = Id::new();
        sql.push(", ")
            .bind(session.to_string())
            .push(", ")
            .bind(start.shell.to_owned())
            .push(", ")
            .bind(start.origin.as_str())
            .push(", ")
            .bind(start.os_user.map(str::to_owned))
            .push(", ")
            .bind(start.client_addr.map(str::to_owned))
            .push(", ")
            .bind(start.source_key.map(str::to_owned));
    }

    fn set_progress(sql: &mut Sql, progress: &Progress) {
        sql.push("duration_micros = ")
            .bind(progress.duration_micros)
            .push(", bytes_in = ")
            .bind(progress.bytes_in)
            .push(", bytes_out = ")
            .bind(progress.bytes_out)
            .push(", event_count = ")
            .bind(progress.event_count);
    }

    fn last_activity(progress: &Progress) -> Timestamp {
        progress.last_activity_at
    }

    fn id(&self) -> Id<Self> {
        self.id
    }
}

/// What a terminal session starts with beside what every recording has.
pub struct SessionStart<'a> {
    /// The shell the session runs.
    pub shell: &'a str,
    pub origin: Origin,
    pub os_user: Option<&'a str>,
    pub client_addr: Option<&'a str>,
    /// What the agent knows a `spog-agent shell` session by, to find it again when it
    /// uploads the rest of it after a reconnect.
    pub source_key: Option<&'a str>,
}

/// The active session of `host` that its agent knows by `key`.
#[tracing::instrument(name = "recordings::terminal::by_source", skip_all, fields(host = %host))]
pub async fn by_source(
    conn: &mut crate::Conn,
    account: Id<spog_core::model::Account>,
    host: Id<spog_core::model::Host>,
    key: &str,
) -> StoreResult<Option<TerminalRecording>> {
    let mut sql = Sql::new(SELECT);
    sql.bind(account.to_string())
        .push(" AND r.host_id = ")
        .bind(host.to_string())
        .push(" AND r.source_key = ")
        .bind(key.to_owned())
        .push(" AND r.ended_at IS NULL");
    sql.fetch_optional::<Row>(conn)
        .await?
        .map(TerminalRecording::try_from)
        .transpose()
}

/// Where a session started (SPEC 13).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Origin {
    /// Streamed by a gateway through the ingest API (SPEC 8.1).
    Api,
    /// The console's web terminal.
    Console,
    /// `spog-agent shell` under sshd.
    Ssh,
    /// `spog-agent shell` as a local login shell.
    Local,
}

impl Origin {
    pub const fn as_str(self) -> &'static str {
        match self {
            Origin::Api => "api",
            Origin::Console => "console",
            Origin::Ssh => "ssh",
            Origin::Local => "local",
        }
    }
}

/// How far a terminal recording has grown.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Progress {
    pub duration_micros: i64,
    pub bytes_in: i64,
    pub bytes_out: i64,
    pub event_count: i64,
    pub last_activity_at: Timestamp,
}

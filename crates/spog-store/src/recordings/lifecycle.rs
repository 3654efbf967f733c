//! The one lifecycle every kind of recording goes through: started (one row, active while
//! `ended_at` is NULL), read and listed within a host scope, its progress recorded while it
//! grows, ended by its source or for silence. A kind says only what differs: its table, the
//! row it reads, its file's extension and what its progress counts.

use spog_core::model::Account;
use spog_core::page::{Cursor, Page, key_text};
use spog_core::{Id, Timestamp};
use sqlx::FromRow;
use sqlx::any::AnyRow;

use super::{Closing, Filter, NewRecording, Sealed, scoped};
use crate::error::Found;
use crate::identity::hosts::HostScope;
use crate::rows::id;
use crate::{Conn, Sql, StoreError, StoreResult};

/// A kind of recording (terminal, desktop), implemented by its model type.
pub trait RecordingKind: Sized + Send + Sync + 'static {
    /// Its table, aliased `r` in reads.
    const TABLE: &'static str;
    /// The read of its rows joined with their host, up to `WHERE r.account_id = `.
    const SELECT: &'static str;
    /// Its file's extension under the data directory.
    const EXTENSION: &'static str;
    /// The columns a start writes beyond the common ones, each after a ", ".
    const OWN_COLUMNS: &'static str;
    /// What its users call it ("session", "recording").
    const NOUN: &'static str;
    /// The column of its [`Self::Address`].
    const ADDRESS_COLUMN: &'static str;

    /// The id the API addresses it by (a terminal recording by its session's).
    type Address: std::fmt::Display + Copy + Send + Sync;
    type Row: for<'r> FromRow<'r, AnyRow> + Send + Unpin + TryInto<Self, Error = StoreError>;
    /// What a start of this kind is given beyond a [`NewRecording`].
    type Start<'a>;
    /// How far a recording of this kind has grown.
    type Progress: Send + Sync;

    /// Binds the values of `OWN_COLUMNS`, each after a ", ".
    fn bind_own(sql: &mut Sql, start: &Self::Start<'_>);
    /// Binds `column = value, …` for every column of `progress` but the last activity.
    fn set_progress(sql: &mut Sql, progress: &Self::Progress);
    fn last_activity(progress: &Self::Progress) -> Timestamp;
    /// The recording's own id (the listing's cursor key).
    fn id(&self) -> Id<Self>;
}

/// The spool file a recording is written to while active, relative to the data directory.
pub fn file_path<K: RecordingKind>(account: Id<Account>, recording: Id<K>) -> String {
    format!("spool/{account}/{recording}.{}", K::EXTENSION)
}

/// Starts a recording.
#[tracing::instrument(name = "recordings::start", skip_all, fields(kind = K::TABLE))]
pub async fn start<K: RecordingKind>(
    conn: &mut Conn,
    new: &NewRecording<'_>,
    own: K::Start<'_>,
) -> StoreResult<K> {
    let recording: Id<K> = Id::new();
    let mut sql = Sql::new(&format!(
        "INSERT INTO {} (id, account_id, organization_id, host_id, hostname, user_id, user_email, \
         width, height, started_at, last_activity_at, file_path, instance_id{}) VALUES (",
        K::TABLE,
        K::OWN_COLUMNS
    ));
    sql.bind(recording.to_string())
        .push(", ")
        .bind(new.account.to_string())
        .push(", ")
        .bind(new.organization.to_string())
        .push(", ")
        .bind(new.host.to_string())
        // The recording keeps its host's name, for when the host is deleted.
        .push(", (SELECT hostname FROM hosts WHERE id = ")
        .bind(new.host.to_string())
        .push("), ")
        .bind(new.user.map(|user| user.to_string()))
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
        .push(", ")
        .bind(new.instance.to_owned());
    K::bind_own(&mut sql, &own);
    sql.push(")");
    sql.execute(conn).await?;
    get(conn, new.account, recording, &HostScope::All).await
}

/// The instance writing `recording` while it is active; None once it has ended (or for one
/// started before writers were kept).
#[tracing::instrument(name = "recordings::writer", skip_all, fields(kind = K::TABLE, recording = %recording))]
pub async fn writer<K: RecordingKind>(
    conn: &mut Conn,
    account: Id<Account>,
    recording: Id<K>,
) -> StoreResult<Option<String>> {
    let mut sql = Sql::new(&format!(
        "SELECT instance_id FROM {} WHERE account_id = ",
        K::TABLE
    ));
    sql.bind(account.to_string())
        .push(" AND id = ")
        .bind(recording.to_string())
        .push(" AND ended_at IS NULL");
    let row: Option<(Option<String>,)> = sql.fetch_optional(conn).await?;
    Ok(row.and_then(|(instance,)| instance))
}

/// Makes `to` the instance writing an active recording that `from` wrote; false when it has
/// ended or another instance took it over first.
#[tracing::instrument(name = "recordings::take_over", skip_all, fields(kind = K::TABLE, recording = %recording))]
pub async fn take_over<K: RecordingKind>(
    conn: &mut Conn,
    account: Id<Account>,
    recording: Id<K>,
    from: &str,
    to: &str,
) -> StoreResult<bool> {
    let mut sql = Sql::new(&format!("UPDATE {} SET instance_id = ", K::TABLE));
    sql.bind(to.to_owned())
        .push(" WHERE account_id = ")
        .bind(account.to_string())
        .push(" AND id = ")
        .bind(recording.to_string())
        .push(" AND instance_id = ")
        .bind(from.to_owned())
        .push(" AND ended_at IS NULL");
    Ok(sql.execute(conn).await?.rows_affected() == 1)
}

/// A recording the scope may see.
#[tracing::instrument(name = "recordings::get", skip_all, fields(kind = K::TABLE, account = %account, recording = %recording))]
pub async fn get<K: RecordingKind>(
    conn: &mut Conn,
    account: Id<Account>,
    recording: Id<K>,
    scope: &HostScope,
) -> StoreResult<K> {
    get_where(conn, account, "r.id", recording.to_string(), scope).await
}

/// The recording at the address the API knows it by, if the scope may see it.
#[tracing::instrument(name = "recordings::addressed", skip_all, fields(kind = K::TABLE, account = %account, address = %address))]
pub async fn addressed<K: RecordingKind>(
    conn: &mut Conn,
    account: Id<Account>,
    address: K::Address,
    scope: &HostScope,
) -> StoreResult<K> {
    get_where(conn, account, K::ADDRESS_COLUMN, address.to_string(), scope).await
}

async fn get_where<K: RecordingKind>(
    conn: &mut Conn,
    account: Id<Account>,
    column: &str,
    value: String,
    scope: &HostScope,
) -> StoreResult<K> {
    let mut sql = Sql::new(K::SELECT);
    sql.bind(account.to_string())
        .push(&format!(" AND {column} = "))
        .bind(value);
    scoped(&mut sql, scope);
    sql.fetch_optional::<K::Row>(conn).await.found()?.try_into()
}

/// Recordings (or with `filter.active`, active ones), newest first.
#[tracing::instrument(name = "recordings::list", skip_all, fields(kind = K::TABLE, account = %account))]
pub async fn list<K: RecordingKind>(
    conn: &mut Conn,
    account: Id<Account>,
    scope: &HostScope,
    filter: &Filter,
    limit: u32,
    cursor: Option<&str>,
) -> StoreResult<Page<K>> {
    list_narrowed(conn, account, scope, filter, None, limit, cursor).await
}

/// A condition a listing adds beyond its [`Filter`] (a text search), and what of it its
/// cursor is bound to.
pub(crate) struct Narrowing<'a> {
    pub key: &'a str,
    /// Pushes ` AND …` over the recording `r`.
    pub push: &'a (dyn Fn(&mut Sql) + Sync),
}

pub(crate) async fn list_narrowed<K: RecordingKind>(
    conn: &mut Conn,
    account: Id<Account>,
    scope: &HostScope,
    filter: &Filter,
    narrowing: Option<Narrowing<'_>>,
    limit: u32,
    cursor: Option<&str>,
) -> StoreResult<Page<K>> {
    let text = |v: Option<String>| v.unwrap_or_default();
    let granted = match scope {
        HostScope::All => String::new(),
        HostScope::GrantedTo(user) => user.to_string(),
    };
    let (account_text, host, user) = (
        account.to_string(),
        text(filter.host.map(|h| h.to_string())),
        text(filter.user.map(|u| u.to_string())),
    );
    let mut parts = vec![
        account_text.as_str(),
        K::TABLE,
        &host,
        &user,
        if filter.active { "active" } else { "all" },
        &granted,
    ];
    parts.extend(narrowing.as_ref().map(|n| n.key));
    let scope_cursor = Cursor::scope(&parts);
    let after = scope_cursor.decode(cursor)?;
    let mut sql = Sql::new(K::SELECT);
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
    if let Some(narrowing) = &narrowing {
        (narrowing.push)(&mut sql);
    }
    if let Some(key) = after {
        sql.push(" AND r.id < ").bind(key_text(&key, 0)?);
    }
    sql.push(" ORDER BY r.id DESC LIMIT ")
        .bind(i64::from(limit) + 1);
    let rows = sql
        .fetch_all::<K::Row>(conn)
        .await?
        .into_iter()
        .map(K::Row::try_into)
        .collect::<StoreResult<Vec<K>>>()?;
    Ok(Page::from_rows(rows, limit, &scope_cursor, |r| {
        vec![r.id().to_string().into()]
    }))
}

/// Records the progress of an active recording; false when it has ended meanwhile (perhaps
/// on another instance).
#[tracing::instrument(name = "recordings::record_progress", skip_all, fields(kind = K::TABLE, recording = %recording))]
pub async fn record_progress<K: RecordingKind>(
    conn: &mut Conn,
    recording: Id<K>,
    progress: &K::Progress,
) -> StoreResult<bool> {
    let mut sql = Sql::new(&format!("UPDATE {} SET ", K::TABLE));
    K::set_progress(&mut sql, progress);
    sql.push(", last_activity_at = ")
        .bind(K::last_activity(progress).micros())
        .push(" WHERE id = ")
        .bind(recording.to_string())
        .push(" AND ended_at IS NULL");
    Ok(sql.execute(conn).await?.rows_affected() == 1)
}

/// Ends an active recording with its final progress and, when its content was sealed, where
/// that is kept; `Conflict` when it had ended already.
#[tracing::instrument(name = "recordings::end", skip_all, fields(kind = K::TABLE, account = %account, recording = %recording))]
pub async fn end<K: RecordingKind>(
    conn: &mut Conn,
    account: Id<Account>,
    recording: Id<K>,
    closing: &Closing<'_, K>,
    now: Timestamp,
) -> StoreResult<K> {
    let Closing {
        progress,
        reason,
        exit_code,
        sealed,
    } = closing;
    if let Some(progress) = progress {
        record_progress(conn, recording, progress).await?;
    }
    let mut sql = Sql::new(&format!("UPDATE {} SET ended_at = ", K::TABLE));
    sql.bind(now.micros())
        .push(", end_reason = ")
        .bind(reason.as_str());
    // Terminal sessions only: the exit status of the shell.
    if let Some(code) = exit_code {
        sql.push(", exit_code = ").bind(i64::from(*code));
    }
    if let Some(sealed) = sealed {
        sql.push(", sha256 = ")
            .bind(sealed.sha256.to_owned())
            .push(", stored_bytes = ")
            .bind(sealed.stored_bytes)
            .push(", storage = ")
            .bind(sealed.storage)
            .push(", file_path = ")
            .bind(sealed.file_path.to_owned());
    }
    sql.push(" WHERE account_id = ")
        .bind(account.to_string())
        .push(" AND id = ")
        .bind(recording.to_string())
        .push(" AND ended_at IS NULL");
    if sql.execute(conn).await?.rows_affected() == 0 {
        get(conn, account, recording, &HostScope::All).await?;
        return Err(StoreError::Conflict(format!(
            "the {} has already ended",
            K::NOUN
        )));
    }
    get(conn, account, recording, &HostScope::All).await
}

/// Records where the content of a recording that ended unsealed (its writer was another
/// instance) was sealed to; false when it is not ended, or was sealed meanwhile.
#[tracing::instrument(name = "recordings::seal", skip_all, fields(kind = K::TABLE, recording = %recording))]
pub async fn seal<K: RecordingKind>(
    conn: &mut Conn,
    account: Id<Account>,
    recording: Id<K>,
    progress: Option<&K::Progress>,
    sealed: &Sealed<'_>,
) -> StoreResult<bool> {
    let mut sql = Sql::new(&format!("UPDATE {} SET ", K::TABLE));
    // What the writer had beyond the progress it last recorded.
    if let Some(progress) = progress {
        K::set_progress(&mut sql, progress);
        sql.push(", ");
    }
    sql.push("sha256 = ")
        .bind(sealed.sha256.to_owned())
        .push(", stored_bytes = ")
        .bind(sealed.stored_bytes)
        .push(", storage = ")
        .bind(sealed.storage)
        .push(", file_path = ")
        .bind(sealed.file_path.to_owned())
        .push(" WHERE account_id = ")
        .bind(account.to_string())
        .push(" AND id = ")
        .bind(recording.to_string())
        .push(" AND ended_at IS NOT NULL AND sha256 IS NULL");
    Ok(sql.execute(conn).await?.rows_affected() == 1)
}

/// Active recordings silent since before `cutoff`, in any account, oldest first.
#[tracing::instrument(name = "recordings::silent", skip_all, fields(kind = K::TABLE))]
pub async fn silent<K: RecordingKind>(
    conn: &mut Conn,
    cutoff: Timestamp,
    limit: u32,
) -> StoreResult<Vec<(Id<Account>, Id<K>)>> {
    let mut sql = Sql::new(&format!(
        "SELECT account_id, id FROM {} WHERE ended_at IS NULL AND last_activity_at < ",
        K::TABLE
    ));
    sql.bind(cutoff.micros())
        .push(" ORDER BY last_activity_at LIMIT ")
        .bind(i64::from(limit));
    let rows: Vec<(String, String)> = sql.fetch_all(conn).await?;
    rows.iter()
        .map(|(account, recording)| Ok((id(account)?, id(recording)?)))
        .collect()
}

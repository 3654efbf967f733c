//! Terminal > Sessions and Recordings, Desktop > Recordings and Playback (SPEC 10). Listings
//! read through the store with the API's host scoping; the players load the recording from
//! the API (`.cast` for the asciinema player, the live follow socket for an active session,
//! the paced playback socket for desktop recordings).

use askama::Template;
use axum::extract::{Path, Query, State};
use serde::Deserialize;
use spog_core::model::Host;
use spog_core::page::{self, Page};
use spog_core::recordings::text::{self, TextMatch};
use spog_core::recordings::{DesktopRecording, TerminalRecording};
use spog_core::{Id, Permission};
use spog_store::identity::{hosts, users};
use spog_store::recordings::{self, Filter, RecordingKind};

use super::error::{PageError, PageResult};
use super::layout::{Chrome, render, when, when_or};
use super::lists::parse_id;
use super::session::{RequirePage, Viewer};
use crate::auth::permissions::SessionRecordingsView;
use crate::http::recordings::lifecycle::located;
use crate::recordings::kind::Recorded;
use crate::state::AppState;

pub const SESSIONS: &str = "/terminal/sessions";
pub const TERMINAL: &str = "/terminal/recordings";
pub const DESKTOP: &str = "/desktop/recordings";

#[derive(Deserialize)]
pub struct ListQuery {
    pub host_id: Option<String>,
    pub user_id: Option<String>,
    pub cursor: Option<String>,
    /// Terminal recordings: text to search for (SPEC 8.3).
    pub q: Option<String>,
}

/// A search's match, linking to the player at its time.
pub struct MatchLink {
    /// Seconds from the start, as the player takes them.
    pub time: String,
    /// `m:ss`.
    pub at: String,
    pub input: bool,
    pub snippet: String,
}

impl MatchLink {
    fn new(found: &TextMatch) -> Self {
        let whole = found.time.max(0.0) as u64;
        Self {
            time: format!("{:.3}", found.time),
            at: format!("{}:{:02}", whole / 60, whole % 60),
            input: found.code == "i",
            snippet: found.snippet.clone(),
        }
    }
}

pub struct Row {
    pub id: String,
    pub session_id: String,
    pub hostname: String,
    pub host_id: String,
    pub user_email: String,
    pub user_id: String,
    pub started: String,
    pub ended: String,
    pub active: bool,
    pub duration: String,
    pub detail: String,
    /// Terminal sessions: where it was opened (`console`, `ssh`, `local`), as the OS user, from
    /// which address; empty for desktop recordings.
    pub origin: String,
    pub os_user: String,
    pub client_addr: String,
    /// Why a terminal session ended, in words (empty while active).
    pub ended_why: String,
    /// On legal hold, and why (SPEC 8.3).
    pub legal_hold: bool,
    pub legal_hold_reason: String,
    /// Once sealed: its hash and where it is kept (empty before).
    pub sha256: String,
    pub storage: String,
    /// Where a desktop recording's file is.
    pub file_path: String,
    /// With a search: the recording's matches.
    pub matches: Vec<MatchLink>,
}

pub struct HostOption {
    pub id: String,
    pub hostname: String,
    pub selected: bool,
}

pub struct UserOption {
    pub id: String,
    pub email: String,
    pub selected: bool,
}

/// `1h 02m 03s`, `4m 05s`, `6.2s`.
pub fn duration(seconds: f64) -> String {
    let whole = seconds.max(0.0) as u64;
    match whole {
        0..60 => format!("{seconds:.1}s"),
        60..3600 => format!("{}m {:02}s", whole / 60, whole % 60),
        _ => format!(
            "{}h {:02}m {:02}s",
            whole / 3600,
            whole / 60 % 60,
            whole % 60
        ),
    }
}

/// `1.2 MB`.
pub fn bytes(n: i64) -> String {
    let n = n.max(0) as f64;
    match n {
        n if n < 1e3 => format!("{n} B"),
        n if n < 1e6 => format!("{:.1} kB", n / 1e3),
        n if n < 1e9 => format!("{:.1} MB", n / 1e6),
        n => format!("{:.2} GB", n / 1e9),
    }
}

/// A recording's row: what every kind shows, then its own `session_id` and `detail`.
macro_rules! row {
    ($r:expr, session_id: $session_id:expr, detail: $detail:expr $(,)?) => {{
        let r = $r;
        Row {
            id: r.id.to_string(),
            session_id: $session_id,
            hostname: r.hostname.clone(),
            host_id: r.host_id.to_string(),
            user_email: r.user_email.clone(),
            // A terminal session that started on the host has no spog user.
            user_id: Option::<spog_core::Id<spog_core::model::User>>::from(r.user_id)
                .map(|user| user.to_string())
                .unwrap_or_default(),
            started: when(r.started_at),
            ended: when_or(r.ended_at, ""),
            active: r.ended_at.is_none(),
            duration: duration(r.duration_seconds),
            detail: $detail,
            origin: String::new(),
            os_user: String::new(),
            client_addr: String::new(),
            ended_why: String::new(),
            legal_hold: r.legal_hold,
            legal_hold_reason: r.legal_hold_reason.clone().unwrap_or_default(),
            sha256: r.stored.sha256.clone().unwrap_or_default(),
            storage: match r.stored.storage.as_deref() {
                Some("s3") => "object storage".to_owned(),
                Some(_) => "the data directory".to_owned(),
                None => String::new(),
            },
            file_path: r.file_path.clone(),
            matches: Vec::new(),
        }
    }};
}

/// A kind of recording as the console lists and plays it.
trait Listed: RecordingKind {
    fn row(&self) -> Row;
}

impl Listed for TerminalRecording {
    fn row(&self) -> Row {
        let row = row!(
            self,
            session_id: self.session_id.to_string(),
            detail: format!(
                "{} · in {} · out {}",
                self.shell,
                bytes(self.bytes_in),
                bytes(self.bytes_out),
            ),
        );
        Row {
            origin: self.origin.clone(),
            os_user: self.os_user.clone().unwrap_or_default(),
            client_addr: self.client_addr.clone().unwrap_or_default(),
            ended_why: self
                .end_reason
                .as_deref()
                .map(|reason| ended_why(reason, self.exit_code))
                .unwrap_or_default(),
            ..row
        }
    }
}

/// A terminal session's `end_reason` (SPEC 8.1, 13.1) as people say it.
pub fn ended_why(reason: &str, exit_code: Option<i32>) -> String {
    match (reason, exit_code) {
        ("exited", Some(code)) => format!("exited with code {code}"),
        ("exited", None) => "exited".to_owned(),
        ("closed", _) => "closed".to_owned(),
        ("agent_disconnected", _) => "agent disconnected".to_owned(),
        ("ended", _) => "ended by its source or an administrator".to_owned(),
        ("idle", _) => "idle".to_owned(),
        ("spawn_failed", _) => "could not start".to_owned(),
        ("host_deleted", _) => "host deleted".to_owned(),
        (other, _) => other.replace('_', " "),
    }
}

impl Listed for DesktopRecording {
    fn row(&self) -> Row {
        row!(
            self,
            session_id: String::new(),
            detail: format!(
                "{}×{} · {} frames · {}",
                self.width,
                self.height,
                self.frame_count,
                bytes(self.total_bytes)
            ),
        )
    }
}

/// One listing page of a kind's rows and the cursor of the next.
async fn rows<K: Listed + Recorded>(
    state: &AppState,
    conn: &mut spog_store::Conn,
    viewer: &Viewer,
    filter: &Filter,
    cursor: Option<&str>,
) -> Result<(Vec<Row>, Option<String>), PageError> {
    let page: Page<K> = recordings::list(
        conn,
        viewer.auth.account(),
        &viewer.auth.host_scope(),
        filter,
        page::DEFAULT_LIMIT,
        cursor,
    )
    .await?;
    let next = next_cursor(&page);
    Ok((
        page.items
            .into_iter()
            .map(|r| located(state, r).row())
            .collect(),
        next,
    ))
}

/// One page of the terminal recordings whose text contains `q`, each with its matches.
async fn found_rows(
    state: &AppState,
    conn: &mut spog_store::Conn,
    viewer: &Viewer,
    filter: &Filter,
    q: &str,
    cursor: Option<&str>,
) -> Result<(Vec<Row>, Option<String>), PageError> {
    let page = recordings::text::search(
        conn,
        viewer.auth.account(),
        &viewer.auth.host_scope(),
        filter,
        q,
        page::DEFAULT_LIMIT,
        cursor,
    )
    .await?;
    let next = next_cursor(&page);
    let rows = page
        .items
        .into_iter()
        .map(|(recording, matches)| Row {
            matches: matches.iter().map(MatchLink::new).collect(),
            ..located(state, recording).row()
        })
        .collect();
    Ok((rows, next))
}

/// The recording a player page shows, if the viewer may see it.
async fn played<K: Listed>(state: &AppState, viewer: &Viewer, id: &str) -> Result<K, PageError> {
    let id: Id<K> = parse_id(id)?;
    let mut conn = state.store.conn().await?;
    recordings::get(
        &mut conn,
        viewer.auth.account(),
        id,
        &viewer.auth.host_scope(),
    )
    .await
    .map_err(|e| match e {
        spog_store::StoreError::NotFound => PageError::NotFound,
        other => other.into(),
    })
}

#[derive(Template)]
#[template(path = "recordings/list.html")]
struct ListPage {
    chrome: Chrome,
    heading: &'static str,
    path: &'static str,
    kind: &'static str,
    rows: Vec<Row>,
    hosts: Vec<HostOption>,
    users: Vec<UserOption>,
    /// The search of a terminal recordings page.
    q: String,
    /// The search as a query string, for the matches' links.
    q_query: String,
    /// The filters as a query string, for paging links.
    query: String,
    paged: bool,
    next: Option<String>,
    /// An unknown filter value (a hand-edited link).
    error: Option<String>,
}

/// A listing page: Terminal sessions (active), Terminal recordings or Desktop recordings.
async fn list(
    state: &AppState,
    viewer: &Viewer,
    query: ListQuery,
    path: &'static str,
) -> PageResult {
    let (heading, kind) = match path {
        SESSIONS => ("Terminal sessions", "sessions"),
        TERMINAL => ("Terminal recordings", "terminal"),
        _ => ("Desktop recordings", "desktop"),
    };
    let chrome = Chrome::new(viewer, heading);
    let mut error = None;
    let q = query
        .q
        .as_deref()
        .filter(|q| kind == "terminal" && !q.is_empty())
        .and_then(|q| match text::query("q", q) {
            Ok(q) => Some(q),
            Err(e) => {
                error = Some(format!("Search: {}", e.message));
                None
            }
        });
    let filter = Filter {
        host: parse_filter(&query.host_id, &mut error),
        user: parse_filter(&query.user_id, &mut error),
        active: kind == "sessions",
    };
    let account = viewer.auth.account();
    let scope = viewer.auth.host_scope();
    let mut conn = state.store.conn().await?;
    let cursor = query.cursor.as_deref();
    let (rows, next) = match (&q, kind) {
        (_, "desktop") => {
            rows::<DesktopRecording>(state, &mut conn, viewer, &filter, cursor).await?
        }
        (Some(q), _) => found_rows(state, &mut conn, viewer, &filter, q, cursor).await?,
        (None, _) => rows::<TerminalRecording>(state, &mut conn, viewer, &filter, cursor).await?,
    };
    let hosts = hosts::list(&mut conn, account, None, &scope, page::MAX_LIMIT, None)
        .await?
        .items
        .into_iter()
        .map(|h: Host| HostOption {
            selected: Some(h.id) == filter.host,
            id: h.id.to_string(),
            hostname: h.hostname,
        })
        .collect();
    let users = users::list(&mut conn, account, page::MAX_LIMIT, None)
        .await?
        .items
        .into_iter()
        .map(|u| UserOption {
            selected: Some(u.id) == filter.user,
            id: u.id.to_string(),
            email: u.email.to_string(),
        })
        .collect();
    let mut pairs = form_urlencoded::Serializer::new(String::new());
    if let Some(host) = filter.host {
        pairs.append_pair("host_id", &host.to_string());
    }
    if let Some(user) = filter.user {
        pairs.append_pair("user_id", &user.to_string());
    }
    let q_query = q.as_deref().map(|q| {
        form_urlencoded::Serializer::new(String::new())
            .append_pair("q", q)
            .finish()
    });
    if let Some(q_query) = &q_query {
        pairs.extend_pairs(form_urlencoded::parse(q_query.as_bytes()));
    }
    render(&ListPage {
        chrome,
        heading,
        path,
        kind,
        rows,
        hosts,
        users,
        q: q.unwrap_or_default(),
        q_query: q_query.unwrap_or_default(),
        query: pairs.finish(),
        paged: cursor.is_some(),
        next,
        error,
    })
}

/// An id filter of a listing; one that does not parse is reported, not silently dropped.
fn parse_filter<T>(text: &Option<String>, error: &mut Option<String>) -> Option<Id<T>> {
    let text = text.as_deref().filter(|t| !t.is_empty())?;
    match text.parse() {
        Ok(id) => Some(id),
        Err(_) => {
            *error = Some(format!("`{text}` is not an id"));
            None
        }
    }
}

fn next_cursor<T>(page: &Page<T>) -> Option<String> {
    page.next_cursor
        .as_ref()
        .map(|c| form_urlencoded::byte_serialize(c.as_bytes()).collect())
}

pub async fn sessions_page(
    State(state): State<AppState>,
    viewer: RequirePage<SessionRecordingsView>,
    Query(query): Query<ListQuery>,
) -> PageResult {
    list(&state, &viewer, query, SESSIONS).await
}

pub async fn terminal_page(
    State(state): State<AppState>,
    viewer: RequirePage<SessionRecordingsView>,
    Query(query): Query<ListQuery>,
) -> PageResult {
    list(&state, &viewer, query, TERMINAL).await
}

pub async fn desktop_page(
    State(state): State<AppState>,
    viewer: RequirePage<SessionRecordingsView>,
    Query(query): Query<ListQuery>,
) -> PageResult {
    list(&state, &viewer, query, DESKTOP).await
}

#[derive(Template)]
#[template(path = "recordings/terminal_play.html")]
struct TerminalPlay {
    chrome: Chrome,
    row: Row,
    /// The recording's API path, its player's page and its listing (legal hold, deletion).
    api: String,
    page: String,
    list: &'static str,
    /// The viewer may hold and delete it (`session_recordings.manage`).
    manage: bool,
    width: i64,
    height: i64,
    /// Where playback starts (seconds; empty: the start).
    start_at: String,
    /// The search that led here: its matches as the player's markers, `[[time, label]]`.
    markers: String,
    q: String,
}

/// How a search's match opens the player: at its time, the search's matches marked.
#[derive(Deserialize)]
pub struct PlayQuery {
    /// Seconds; a value that is not a number is ignored like a missing one.
    pub t: Option<String>,
    pub q: Option<String>,
}

/// One terminal recording in the asciinema player; an active session is followed live.
pub async fn terminal_play(
    State(state): State<AppState>,
    viewer: RequirePage<SessionRecordingsView>,
    Path(id): Path<String>,
    Query(query): Query<PlayQuery>,
) -> PageResult {
    let chrome = Chrome::new(&viewer, "Terminal recording");
    let recording: TerminalRecording = played(&state, &viewer, &id).await?;
    let q = query.q.as_deref().and_then(|q| text::query("q", q).ok());
    let markers = match &q {
        Some(q) => {
            let mut conn = state.store.conn().await?;
            recordings::text::matches_in(&mut conn, viewer.auth.account(), &recording, q)
                .await?
                .iter()
                .map(|m| serde_json::json!([m.time, m.snippet]))
                .collect()
        }
        None => Vec::new(),
    };
    let start_at = query
        .t
        .and_then(|t| t.parse::<f64>().ok())
        .filter(|t| t.is_finite() && *t >= 0.0)
        .map(|t| format!("{t:.3}"))
        .unwrap_or_default();
    render(&TerminalPlay {
        chrome,
        api: format!("/api/v1{TERMINAL}/{id}"),
        page: format!("{TERMINAL}/{id}"),
        list: TERMINAL,
        row: recording.row(),
        manage: viewer.has(Permission::SessionRecordingsManage),
        width: recording.width,
        height: recording.height,
        start_at,
        markers: serde_json::Value::from(markers).to_string(),
        q: q.unwrap_or_default(),
    })
}

#[derive(Template)]
#[template(path = "recordings/desktop_play.html")]
struct DesktopPlay {
    chrome: Chrome,
    row: Row,
    /// The recording's API path, its player's page and its listing (legal hold, deletion).
    api: String,
    page: String,
    list: &'static str,
    manage: bool,
    width: i64,
    height: i64,
    duration_ms: i64,
}

/// Desktop > Playback: one recording on a canvas, paced by the server.
pub async fn desktop_play(
    State(state): State<AppState>,
    viewer: RequirePage<SessionRecordingsView>,
    Path(id): Path<String>,
) -> PageResult {
    let chrome = Chrome::new(&viewer, "Desktop playback");
    let recording: DesktopRecording = played(&state, &viewer, &id).await?;
    render(&DesktopPlay {
        chrome,
        api: format!("/api/v1{DESKTOP}/{id}"),
        page: format!("{DESKTOP}/{id}"),
        list: DESKTOP,
        row: recording.row(),
        manage: viewer.has(Permission::SessionRecordingsManage),
        width: recording.width,
        height: recording.height,
        duration_ms: (recording.duration_seconds * 1000.0).round() as i64,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_durations_read_like_people_say_them() {
        assert_eq!(duration(6.24), "6.2s");
        assert_eq!(duration(245.0), "4m 05s");
        assert_eq!(duration(3723.0), "1h 02m 03s");
        assert_eq!(bytes(999), "999 B");
        assert_eq!(bytes(1_200_000), "1.2 MB");
    }

    #[test]
    fn end_reasons_read_as_words() {
        assert_eq!(ended_why("exited", Some(3)), "exited with code 3");
        assert_eq!(ended_why("agent_disconnected", None), "agent disconnected");
        assert_eq!(ended_why("spawn_failed", None), "could not start");
        assert_eq!(ended_why("truncated_somehow", None), "truncated somehow");
    }
}

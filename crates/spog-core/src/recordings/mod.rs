//! Session recordings (SPEC 8): terminal sessions recorded as asciicast v2 and desktop sessions
//! recorded as image frames. The rules an event or a frame must follow to be recorded, and the
//! bytes of the asciicast format; the server keeps the files, the store the metadata.

pub mod text;

use serde::Serialize;
use serde_json::json;
use utoipa::ToSchema;

use crate::model::{Host, Organization, User};
use crate::{FieldError, Id, Timestamp};

/// An active terminal session as `GET /terminal/sessions` lists it.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct TerminalSession {
    /// The session id (ingest and live follow address the session by it).
    pub id: Id<TerminalSession>,
    /// The recording this session writes.
    pub recording_id: Id<TerminalRecording>,
    pub host_id: Id<Host>,
    pub hostname: String,
    /// The spog user who opened it; null for a session that started on the host.
    pub user_id: Option<Id<User>>,
    /// Empty for a session that started on the host.
    pub user_email: String,
    pub started_at: Timestamp,
    pub shell: String,
    pub width: i64,
    pub height: i64,
    /// Where the session started: `console` (web terminal), `ssh` or `local` (`spog-agent
    /// shell`), or `api` (streamed through the ingest API).
    pub origin: String,
    /// The local account the shell runs as, when the agent ran it.
    pub os_user: Option<String>,
    /// The SSH client (`ip:port`), or the browser's address for a console session.
    pub client_addr: Option<String>,
    /// False once the session has ended.
    pub active: bool,
}

/// A terminal recording, finished or still being written.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct TerminalRecording {
    pub id: Id<TerminalRecording>,
    pub session_id: Id<TerminalSession>,
    #[serde(skip)]
    pub organization_id: Id<Organization>,
    pub host_id: Id<Host>,
    pub hostname: String,
    pub user_id: Option<Id<User>>,
    pub user_email: String,
    pub shell: String,
    pub width: i64,
    pub height: i64,
    pub started_at: Timestamp,
    /// Null while the session is active.
    pub ended_at: Option<Timestamp>,
    /// Time of the last recorded event.
    pub duration_seconds: f64,
    /// Bytes of input (`i`) events recorded; zero when input capture is off.
    pub bytes_in: i64,
    /// Bytes of output (`o`) events recorded.
    pub bytes_out: i64,
    /// Events recorded.
    pub event_count: i64,
    /// `ended` (by its source or an administrator), `idle` (no input or output for too long),
    /// `exited` (the shell exited), `closed` (the browser left), `agent_disconnected`,
    /// `spawn_failed`, `host_deleted`; null while active.
    pub end_reason: Option<String>,
    /// See [`TerminalSession::origin`].
    pub origin: String,
    pub os_user: Option<String>,
    pub client_addr: Option<String>,
    /// The shell's exit status when it exited (`exited`).
    pub exit_code: Option<i32>,
    /// The spool file while active; once sealed, the object holding it (a path under the
    /// data directory, or `s3://bucket/prefix/...`).
    pub file_path: String,
    #[serde(flatten)]
    pub stored: Stored,
    /// Held recordings are never deleted, by hand or by retention (SPEC 8.3).
    pub legal_hold: bool,
    /// Why it is held; null when it is not.
    pub legal_hold_reason: Option<String>,
}

/// How a finished recording is kept and what its content must hash to (SPEC 8.3); all null
/// while it is active, and for a recording ended before sealing existed.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, ToSchema)]
pub struct Stored {
    /// SHA-256 (hex) of its content: for a terminal recording the bytes `GET …/cast` serves,
    /// for a desktop recording its frames file. The end's audit entry holds it too.
    pub sha256: Option<String>,
    /// Bytes the compressed object takes.
    pub stored_bytes: Option<i64>,
    /// `local` (the data directory) or `s3`.
    pub storage: Option<String>,
}

impl TerminalRecording {
    pub fn session(&self) -> TerminalSession {
        TerminalSession {
            id: self.session_id,
            recording_id: self.id,
            host_id: self.host_id,
            hostname: self.hostname.clone(),
            user_id: self.user_id,
            user_email: self.user_email.clone(),
            started_at: self.started_at,
            shell: self.shell.clone(),
            width: self.width,
            height: self.height,
            origin: self.origin.clone(),
            os_user: self.os_user.clone(),
            client_addr: self.client_addr.clone(),
            active: self.ended_at.is_none(),
        }
    }
}

/// A desktop recording.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct DesktopRecording {
    pub id: Id<DesktopRecording>,
    #[serde(skip)]
    pub organization_id: Id<Organization>,
    pub host_id: Id<Host>,
    pub hostname: String,
    pub user_id: Id<User>,
    pub user_email: String,
    pub width: i64,
    pub height: i64,
    pub frame_count: i64,
    /// Bytes of image data recorded.
    pub total_bytes: i64,
    /// Elapsed time of the last frame.
    pub duration_seconds: f64,
    /// As [`TerminalRecording::file_path`].
    pub file_path: String,
    pub started_at: Timestamp,
    pub ended_at: Option<Timestamp>,
    pub end_reason: Option<String>,
    /// Held recordings are never deleted, by hand or by retention (SPEC 8.3).
    pub legal_hold: bool,
    /// Why it is held; null when it is not.
    pub legal_hold_reason: Option<String>,
    #[serde(flatten)]
    pub stored: Stored,
}

/// An account's recording settings (SPEC 8.3).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, ToSchema)]
pub struct RecordingSettings {
    #[serde(skip)]
    pub account_id: Id<crate::model::Account>,
    /// Days an ended recording is kept; null: the service's `recording_retention`.
    pub retention_days: Option<i64>,
}

/// The longest retention an account may set, in days (100 years).
pub const MAX_RETENTION_DAYS: i64 = 36_500;

/// A legal hold's reason: what a reviewer reads later, not a document.
pub const MAX_LEGAL_HOLD_REASON: usize = 500;

/// Largest terminal width or height accepted.
pub const MAX_TERMINAL_SIZE: i64 = 1000;
/// Largest desktop width or height accepted.
pub const MAX_DESKTOP_SIZE: i64 = 16_384;

pub fn size(field: &str, value: i64, max: i64) -> Result<i64, FieldError> {
    if (1..=max).contains(&value) {
        Ok(value)
    } else {
        Err(FieldError::new(
            field,
            format!("must be between 1 and {max}"),
        ))
    }
}

/// The codes of asciicast v2 events.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventCode {
    Output,
    Input,
    Resize,
    Marker,
}

impl EventCode {
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "o" => Some(EventCode::Output),
            "i" => Some(EventCode::Input),
            "r" => Some(EventCode::Resize),
            "m" => Some(EventCode::Marker),
            _ => None,
        }
    }

    pub const fn as_str(self) -> &'static str {
        match self {
            EventCode::Output => "o",
            EventCode::Input => "i",
            EventCode::Resize => "r",
            EventCode::Marker => "m",
        }
    }
}

/// An event as a source sends it: `[elapsed_seconds, code, data]`.
pub type RawEvent = (f64, String, String);

/// A checked event.
#[derive(Clone, Debug, PartialEq)]
pub struct CastEvent {
    pub time: f64,
    pub code: EventCode,
    pub data: String,
}

/// Longest a recording may run, in seconds (a year): keeps times finite and printable.
const MAX_ELAPSED: f64 = 366.0 * 86_400.0;

/// Checks one event against the time of the event before it. `field` names it in errors
/// (`events[3]`).
pub fn check_event(field: &str, raw: RawEvent, previous: f64) -> Result<CastEvent, FieldError> {
    let (time, code, data) = raw;
    if !time.is_finite() || !(0.0..=MAX_ELAPSED).contains(&time) {
        return Err(FieldError::new(
            format!("{field}[0]"),
            "must be the elapsed seconds since the session started, a non-negative number",
        ));
    }
    if time < previous {
        return Err(FieldError::new(
            format!("{field}[0]"),
            format!(
                "is earlier than the event before it ({previous}); events must be in time order"
            ),
        ));
    }
    let code = EventCode::parse(&code).ok_or_else(|| {
        FieldError::new(
            format!("{field}[1]"),
            "must be one of the asciicast codes o, i, r, m",
        )
    })?;
    if code == EventCode::Resize && parse_resize(&data).is_none() {
        return Err(FieldError::new(
            format!("{field}[2]"),
            format!("a resize must be COLSxROWS with each between 1 and {MAX_TERMINAL_SIZE}"),
        ));
    }
    Ok(CastEvent { time, code, data })
}

/// `120x40` → `(120, 40)`.
pub fn parse_resize(data: &str) -> Option<(i64, i64)> {
    let (cols, rows) = data.split_once('x')?;
    let digits = |s: &str| !s.is_empty() && s.len() <= 5 && s.bytes().all(|b| b.is_ascii_digit());
    if !digits(cols) || !digits(rows) {
        return None;
    }
    let (cols, rows): (i64, i64) = (cols.parse().ok()?, rows.parse().ok()?);
    let ok = |v: i64| (1..=MAX_TERMINAL_SIZE).contains(&v);
    (ok(cols) && ok(rows)).then_some((cols, rows))
}

/// Appends the asciicast line of `event` (with its newline) to `out`.
pub fn write_event(out: &mut Vec<u8>, event: &CastEvent) {
    use std::io::Write;
    let _ = write!(out, "[{:.6}, \"{}\", ", event.time, event.code.as_str());
    serde_json::to_writer(&mut *out, &event.data).expect("writing a string to memory");
    out.extend_from_slice(b"]\n");
}

/// The header line a recording file starts with (no duration yet: it grows).
pub fn file_header(width: i64, height: i64, started_at: Timestamp, shell: &str) -> String {
    json!({"version": 2, "width": width, "height": height,
        "timestamp": started_at.unix_seconds(), "env": {"SHELL": shell, "TERM": TERM}})
    .to_string()
}

/// The header of a downloaded `.cast` (SPEC 8.1).
pub fn download_header(recording: &TerminalRecording, duration: f64) -> String {
    json!({"version": 2, "width": recording.width, "height": recording.height,
        "timestamp": recording.started_at.unix_seconds(),
        "duration": (duration * 1e6).round() / 1e6,
        "title": format!("{}@{} {}", recording.user_email, recording.hostname, recording.started_at),
        "env": {"SHELL": recording.shell, "TERM": TERM}})
    .to_string()
}

const TERM: &str = "xterm-256color";

/// The kind of image a frame holds, from its first bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ImageKind {
    Jpeg,
    Png,
}

pub fn image_kind(bytes: &[u8]) -> Option<ImageKind> {
    if bytes.starts_with(&[0xFF, 0xD8, 0xFF]) {
        Some(ImageKind::Jpeg)
    } else if bytes.starts_with(&[0x89, b'P', b'N', b'G', 0x0D, 0x0A, 0x1A, 0x0A]) {
        Some(ImageKind::Png)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(time: f64, code: &str, data: &str) -> RawEvent {
        (time, code.to_owned(), data.to_owned())
    }

    #[test]
    fn events_must_keep_time_order_and_use_known_codes() {
        assert!(check_event("e", raw(1.5, "o", "hi"), 1.0).is_ok());
        assert!(check_event("e", raw(1.0, "o", "hi"), 1.0).is_ok());
        let early = check_event("e", raw(0.5, "o", "hi"), 1.0).unwrap_err();
        assert_eq!(early.field, "e[0]");
        assert_eq!(
            check_event("e", raw(1.0, "x", ""), 0.0).unwrap_err().field,
            "e[1]"
        );
        assert!(check_event("e", raw(f64::NAN, "o", ""), 0.0).is_err());
        assert!(check_event("e", raw(-1.0, "o", ""), -5.0).is_err());
    }

    #[test]
    fn resizes_name_a_sensible_size() {
        assert_eq!(parse_resize("120x40"), Some((120, 40)));
        for bad in ["0x40", "120x", "x", "12x-3", "120 x 40", "99999x2", "1.5x2"] {
            assert_eq!(parse_resize(bad), None, "{bad}");
        }
        assert!(check_event("e", raw(0.0, "r", "abc"), 0.0).is_err());
    }

    #[test]
    fn event_lines_are_asciicast_json() {
        let mut out = Vec::new();
        let event = CastEvent {
            time: 1.25,
            code: EventCode::Output,
            data: "a\"b\n\u{1b}[0m".to_owned(),
        };
        write_event(&mut out, &event);
        let line = String::from_utf8(out).unwrap();
        assert!(line.ends_with('\n'));
        let value: serde_json::Value = serde_json::from_str(line.trim_end()).unwrap();
        assert_eq!(value, json!([1.25, "o", "a\"b\n\u{1b}[0m"]));
    }

    #[test]
    fn frames_are_recognised_by_their_magic() {
        assert_eq!(image_kind(&[0xFF, 0xD8, 0xFF, 0xE0]), Some(ImageKind::Jpeg));
        assert_eq!(image_kind(b"\x89PNG\r\n\x1a\n...."), Some(ImageKind::Png));
        assert_eq!(image_kind(b"GIF89a"), None);
        assert_eq!(image_kind(b""), None);
    }
}

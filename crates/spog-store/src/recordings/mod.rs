//! Session recordings' metadata (SPEC 8): who recorded what on which host, and how far each
//! recording has grown. The recorded bytes are files the server writes.

pub mod desktop;
mod lifecycle;
mod relocation;
mod retention;
pub mod terminal;
pub mod text;

pub use lifecycle::{
    RecordingKind, addressed, end, file_path, get, list, record_progress, seal, silent, start,
    take_over, writer,
};
pub use relocation::{ended_in, move_storage};
pub use retention::{
    delete, expired, retention_by_account, set_legal_hold, set_settings, settings,
};
use spog_core::model::{Account, Host, Organization, User};
use spog_core::{Id, Timestamp};

use crate::identity::hosts::HostScope;
use crate::{Sql, StoreResult, Tx};

/// What a new recording is of.
pub struct NewRecording<'a> {
    pub account: Id<Account>,
    pub organization: Id<Organization>,
    pub host: Id<Host>,
    /// None for a session that started on the host (terminal recordings only).
    pub user: Option<Id<User>>,
    pub user_email: &'a str,
    pub width: i64,
    pub height: i64,
    pub started_at: Timestamp,
    /// The instance that writes it (reads elsewhere are relayed from it).
    pub instance: &'a str,
}

/// How a recording ends.
pub struct Closing<'a, K: RecordingKind> {
    /// What its writer had last; None when another instance writes it.
    pub progress: Option<&'a K::Progress>,
    pub reason: EndReason,
    /// A terminal's shell exit status.
    pub exit_code: Option<i32>,
    pub sealed: Option<Sealed<'a>>,
}

/// Where the content of a recording that ended was sealed to (SPEC 8.3).
pub struct Sealed<'a> {
    /// SHA-256 (hex) of the content before compression.
    pub sha256: &'a str,
    pub stored_bytes: i64,
    /// `local` or `s3`.
    pub storage: &'static str,
    /// The object, as `file_path` shows it.
    pub file_path: &'a str,
}

/// Filters of a recordings listing.
#[derive(Default)]
pub struct Filter {
    pub host: Option<Id<Host>>,
    pub user: Option<Id<User>>,
    /// Only active recordings.
    pub active: bool,
}

/// How a recording ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EndReason {
    /// Its source ended it, or an administrator did.
    Ended,
    /// The scheduler ended it after its source went silent, or a web terminal had no input
    /// for `terminal_idle_timeout`.
    Idle,
    /// The terminal's shell exited.
    Exited,
    /// The browser closed the web terminal.
    Closed,
    /// The agent's connection dropped.
    AgentDisconnected,
    /// The agent could not start the shell.
    SpawnFailed,
    /// The instance writing it stopped answering; another ended it from what was uploaded.
    InstanceLost,
    /// Its host was deleted.
    HostDeleted,
}

impl EndReason {
    pub const fn as_str(self) -> &'static str {
        match self {
            EndReason::Ended => "ended",
            EndReason::Idle => "idle",
            EndReason::Exited => "exited",
            EndReason::Closed => "closed",
            EndReason::AgentDisconnected => "agent_disconnected",
            EndReason::SpawnFailed => "spawn_failed",
            EndReason::InstanceLost => "instance_lost",
            EndReason::HostDeleted => "host_deleted",
        }
    }
}

/// The account's active recordings (terminal sessions and desktop recordings), counted for
/// a start in `tx`: on PostgreSQL the account's row is locked first (`FOR NO KEY UPDATE`,
/// which rows referring to it do not wait for), so concurrent starts on any instance count
/// one after another and a cap checked against this holds; SQLite's write lock does the same.
#[tracing::instrument(name = "recordings::active_for_start", skip_all, fields(account = %account))]
pub async fn active_for_start(tx: &mut Tx, account: Id<Account>) -> StoreResult<i64> {
    if tx.store().backend() == crate::Backend::Postgres {
        let mut lock = Sql::new("SELECT id FROM accounts WHERE id = ");
        lock.bind(account.to_string()).push(" FOR NO KEY UPDATE");
        lock.fetch_optional::<(String,)>(tx).await?;
    }
    let mut sql = Sql::new(
        "SELECT (SELECT COUNT(*) FROM terminal_recordings WHERE ended_at IS NULL AND account_id = ",
    );
    sql.bind(account.to_string())
        .push(
            ") + (SELECT COUNT(*) FROM desktop_recordings WHERE ended_at IS NULL AND account_id = ",
        )
        .bind(account.to_string())
        .push(")");
    sql.fetch_scalar::<i64>(tx).await
}

/// Restricts a query on `table` (aliased `r`) to the hosts `scope` may see.
fn scoped(sql: &mut Sql, scope: &HostScope) {
    if let HostScope::GrantedTo(user) = scope {
        sql.push(" AND r.host_id IN (SELECT host_id FROM host_access WHERE user_id = ")
            .bind(user.to_string())
            .push(")");
    }
}

//! Session recordings' metadata (SPEC 8): who recorded what on which host, and how far each
//! recording has grown. The recorded bytes are files the server writes.

pub mod desktop;
pub mod terminal;

use spog_core::model::{Account, Host, Organization, User};
use spog_core::{Id, Timestamp};

use crate::Sql;
use crate::identity::hosts::HostScope;

/// What a new recording is of.
pub struct NewRecording<'a> {
    pub account: Id<Account>,
    pub organization: Id<Organization>,
    pub host: Id<Host>,
    pub user: Id<User>,
    pub user_email: &'a str,
    pub width: i64,
    pub height: i64,
    pub started_at: Timestamp,
}

/// How a recording ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EndReason {
    /// Its source ended it.
    Ended,
    /// The scheduler ended it after its source went silent.
    Idle,
}

impl EndReason {
    pub const fn as_str(self) -> &'static str {
        match self {
            EndReason::Ended => "ended",
            EndReason::Idle => "idle",
        }
    }
}

/// Restricts a query on `table` (aliased `r`) to the hosts `scope` may see.
fn scoped(sql: &mut Sql, scope: &HostScope) {
    if let HostScope::GrantedTo(user) = scope {
        sql.push(" AND r.host_id IN (SELECT host_id FROM host_access WHERE user_id = ")
            .bind(user.to_string())
            .push(")");
    }
}

//! `GET /`: what exists now at a glance (users, hosts, organizations, unread notifications)
//! and the account's latest audit entries, refreshed when the WebSocket says the trail grew
//! (every 10 seconds while it is down).

use askama::Template;
use axum::extract::State;
use spog_core::Permission;
use spog_core::audit::{AuditEntry, Outcome};
use spog_store::audit::{self, AuditFilter};
use spog_store::identity::hosts::{self, HostCounts};
use spog_store::identity::{organizations, users};
use spog_store::notifications;

use super::error::PageResult;
use super::layout::{Chrome, render, when};
use super::session::Viewer;
use crate::state::AppState;

const RECENT: u32 = 10;

/// One audit entry as the activity list shows it.
pub struct ActivityRow {
    pub when: String,
    pub actor: String,
    pub action: String,
    pub resource: String,
    pub failed: bool,
    pub source: &'static str,
}

impl From<AuditEntry> for ActivityRow {
    fn from(entry: AuditEntry) -> Self {
        let actor = entry
            .actor_email
            .or(entry.actor_name)
            .unwrap_or_else(|| entry.actor_type.as_str().to_owned());
        let resource = match entry.resource_name.or(entry.resource_id) {
            Some(name) => format!("{} {name}", entry.resource_type),
            None => entry.resource_type,
        };
        ActivityRow {
            when: when(entry.occurred_at),
            actor,
            action: entry.action,
            resource,
            failed: entry.outcome == Outcome::Failure,
            source: entry.source.as_str(),
        }
    }
}

#[derive(Template)]
#[template(path = "dashboard.html")]
struct DashboardPage {
    chrome: Chrome,
    /// With `users.manage`, like the users API.
    users: Option<i64>,
    hosts: HostCounts,
    organizations: usize,
    /// The viewer's unread notifications (kept current by the bell's script).
    unread: i64,
    /// With `audit_logs.view`, like the audit API.
    activity: Option<Vec<ActivityRow>>,
}

#[derive(Template)]
#[template(path = "dashboard_activity.html")]
struct ActivityPartial {
    activity: Option<Vec<ActivityRow>>,
}

async fn activity(
    state: &AppState,
    viewer: &Viewer,
) -> Result<Option<Vec<ActivityRow>>, spog_store::StoreError> {
    if !viewer.has(Permission::AuditLogsView) {
        return Ok(None);
    }
    let mut conn = state.store.conn().await?;
    // Newest first, as `GET /audit-logs/recent` reads them.
    let everything = AuditFilter::default();
    let newest = audit::list(&mut conn, viewer.auth.account(), &everything, RECENT, None).await?;
    Ok(Some(
        newest.items.into_iter().map(ActivityRow::from).collect(),
    ))
}

pub async fn dashboard(State(state): State<AppState>, viewer: Viewer) -> PageResult {
    let account = viewer.auth.account();
    let mut conn = state.store.conn().await?;
    let users = match viewer.has(Permission::UsersManage) {
        true => Some(users::count(&mut conn, account).await?),
        false => None,
    };
    let hosts = hosts::counts(&mut conn, account, &viewer.auth.host_scope()).await?;
    let organizations = organizations::list(&mut conn, account).await?.len();
    let unread = match viewer.auth.principal.user {
        Some(user) => notifications::unread_count(&mut conn, account, user).await?,
        None => 0,
    };
    drop(conn);
    render(&DashboardPage {
        chrome: Chrome::new(&viewer, "Dashboard", "/"),
        users,
        hosts,
        organizations,
        unread,
        activity: activity(&state, &viewer).await?,
    })
}

/// `GET /dashboard/activity`: the activity list alone, for polling.
pub async fn activity_partial(State(state): State<AppState>, viewer: Viewer) -> PageResult {
    render(&ActivityPartial {
        activity: activity(&state, &viewer).await?,
    })
}

//! `GET /`: what exists now at a glance — tiles of users, hosts online and offline,
//! organizations, unread notifications, firing alerts and failed or waiting deliveries — and
//! the account's latest audit entries. Both refresh when the WebSocket says their data changed
//! (`dashboard` messages of the topics `alerts`, `deliveries` and `hosts` for the tiles,
//! `audit` for the activity; the bell's messages for the unread count), and every 10 seconds
//! while it is down.

use askama::Template;
use axum::extract::State;
use spog_core::Permission;
use spog_core::alerts::AlertState;
use spog_core::audit::{AuditEntry, Outcome};
use spog_store::alerting::alerts;
use spog_store::audit::{self, AuditFilter};
use spog_store::identity::hosts::{self, HostCounts};
use spog_store::identity::{organizations, users};
use spog_store::{deliveries, notifications};

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

/// The counts of the tiles, each as the viewer may see it.
pub struct Tiles {
    /// With `users.manage`, like the users API.
    pub users: Option<i64>,
    pub hosts: HostCounts,
    pub organizations: usize,
    /// The viewer's unread notifications.
    pub unread: i64,
    /// With `monitoring.view`, like the alerts and webhooks APIs.
    pub monitoring: Option<Monitoring>,
}

impl Tiles {
    pub fn hosts_offline(&self) -> i64 {
        self.hosts.total - self.hosts.online
    }
}

pub struct Monitoring {
    pub firing: i64,
    pub acknowledged: i64,
    pub deliveries_failed: i64,
    /// Waiting for a first or later attempt, or being attempted.
    pub deliveries_pending: i64,
}

#[derive(Template)]
#[template(path = "dashboard.html")]
struct DashboardPage {
    chrome: Chrome,
    tiles: Tiles,
    /// With `audit_logs.view`, like the audit API.
    activity: Option<Vec<ActivityRow>>,
}

#[derive(Template)]
#[template(path = "dashboard_tiles.html")]
struct TilesPartial {
    tiles: Tiles,
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

async fn tiles(state: &AppState, viewer: &Viewer) -> Result<Tiles, spog_store::StoreError> {
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
    let monitoring = match viewer.has(Permission::MonitoringView) {
        true => {
            let backlog = deliveries::backlog(&mut conn, Some(account)).await?;
            Some(Monitoring {
                firing: alerts::count(&mut conn, account, AlertState::Firing).await?,
                acknowledged: alerts::count(&mut conn, account, AlertState::Acknowledged).await?,
                deliveries_failed: deliveries::failed_count(&mut conn, account).await?,
                deliveries_pending: backlog.pending + backlog.retrying + backlog.delivering,
            })
        }
        false => None,
    };
    Ok(Tiles {
        users,
        hosts,
        organizations,
        unread,
        monitoring,
    })
}

pub async fn dashboard(State(state): State<AppState>, viewer: Viewer) -> PageResult {
    render(&DashboardPage {
        chrome: Chrome::new(&viewer, "Dashboard"),
        tiles: tiles(&state, &viewer).await?,
        activity: activity(&state, &viewer).await?,
    })
}

/// `GET /dashboard/tiles`: the tiles alone, for live refreshes.
pub async fn tiles_partial(State(state): State<AppState>, viewer: Viewer) -> PageResult {
    render(&TilesPartial {
        tiles: tiles(&state, &viewer).await?,
    })
}

/// `GET /dashboard/activity`: the activity list alone, for polling.
pub async fn activity_partial(State(state): State<AppState>, viewer: Viewer) -> PageResult {
    render(&ActivityPartial {
        activity: activity(&state, &viewer).await?,
    })
}

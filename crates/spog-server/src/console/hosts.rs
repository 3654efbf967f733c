//! `/admin/hosts`: the fleet a viewer may see (all with hosts.manage, else those granted to
//! them, as `GET /hosts`), each with its agent's state; a host's page shows the facts its
//! agent reported, the agent's connection, "Open terminal" (with terminal.connect) and (with
//! monitoring.view) its metric charts (SPEC 11.1 "§10 console"). hosts.manage creates, renames and deletes hosts, revokes agents
//! and grants and revokes users' access through `/api/v1/hosts`.

use std::collections::HashMap;

use askama::Template;
use axum::extract::{Path, Query, State};
use serde::Deserialize;
use serde_json::Value;
use spog_core::metrics::Labels;
use spog_core::model::{Host, HostAgent, Organization, User};
use spog_core::{Id, Permission, Timestamp, page};
use spog_store::StoreError;
use spog_store::agents::credentials;
use spog_store::identity::{hosts, users};
use spog_store::metrics::{self as series, Source};

use super::error::{PageError, PageResult};
use super::host_metrics::{self, ChartRange, HostCharts, RANGES, StoredSeries};
use super::layout::{Chrome, render, when, when_or};
use super::lists::{
    ListQuery, OrganizationOption, Pager, organization_name, organization_names,
    organization_options, parse_id,
};
use super::metric_charts::Point;
use super::session::{RequirePage, Viewer};
use super::terminal;
use crate::auth::permissions::{HostsManage, MonitoringView};
use crate::http::hosts::visible_host;
use crate::state::AppState;

const PATH: &str = "/admin/hosts";

pub struct HostRow {
    pub id: String,
    pub hostname: String,
    pub name: String,
    pub organization: String,
    pub online: bool,
    pub last_heartbeat: String,
    /// An agent enrolled the host (its credential may since have been revoked).
    pub enrolled: bool,
    pub agent_connected: bool,
    /// Its agent's credential was revoked (and no agent enrolled it since).
    pub agent_revoked: bool,
    pub agent_version: String,
    /// What the agent says the system is (`Debian GNU/Linux 12 (bookworm)`), else its `os`.
    pub os: String,
}

pub struct HostsTable {
    pub rows: Vec<HostRow>,
    pub pager: Pager,
    pub can_manage: bool,
}

#[derive(Template)]
#[template(path = "admin/hosts.html")]
struct HostsPage {
    chrome: Chrome,
    organizations: Vec<OrganizationOption>,
    table: HostsTable,
}

#[derive(Template)]
#[template(path = "admin/hosts_table.html")]
struct HostsTablePartial {
    table: HostsTable,
}

/// A user granted access to a host; their email only for viewers who may read users.
pub struct AccessRow {
    pub user_id: String,
    pub user: String,
    pub granted: String,
}

pub struct AccessTable {
    pub host_id: String,
    pub rows: Vec<AccessRow>,
}

pub struct UserOption {
    pub id: String,
    pub email: String,
}

/// What the host page's live part shows: the host's state, its facts and its agent.
pub struct Overview {
    pub host: HostRow,
    pub created: String,
    pub facts: Vec<Fact>,
    /// `None`: no agent ever enrolled the host.
    pub agent: Option<AgentView>,
    pub can_manage: bool,
    /// With terminal.connect: whether "Open terminal" can open one now (`None`) or why not.
    pub terminal: Option<Option<&'static str>>,
}

#[derive(Template)]
#[template(path = "admin/host_edit.html")]
struct HostPage {
    chrome: Chrome,
    overview: Overview,
    /// With monitoring.view: the charts over this range.
    charts: Option<HostCharts>,
    ranges: &'static [ChartRange],
    can_manage: bool,
    /// With users.manage: the users to pick from; without, the grant form takes a user id.
    users: Option<Vec<UserOption>>,
    access: Option<AccessTable>,
}

#[derive(Template)]
#[template(path = "admin/host_overview.html")]
struct OverviewPartial {
    overview: Overview,
}

#[derive(Template)]
#[template(path = "admin/host_charts.html")]
struct ChartsPartial {
    charts: HostCharts,
}

#[derive(Template)]
#[template(path = "admin/host_access.html")]
struct AccessPartial {
    access: Option<AccessTable>,
}

fn row(host: &Host, organization_names: &HashMap<Id<Organization>, String>) -> HostRow {
    HostRow {
        id: host.id.to_string(),
        hostname: host.hostname.clone(),
        name: host.name.clone(),
        organization: organization_name(organization_names, host.organization_id),
        online: host.online,
        last_heartbeat: when_or(host.last_heartbeat_at, "never"),
        enrolled: host.enrolled_at.is_some(),
        agent_connected: host.agent_connected,
        agent_revoked: false,
        agent_version: host.agent_version.clone().unwrap_or_default(),
        os: fact_text(host.facts.as_ref(), "os_name")
            .or_else(|| fact_text(host.facts.as_ref(), "os"))
            .unwrap_or_default(),
    }
}

/// A text fact, when the agent reported one.
fn fact_text(facts: Option<&Value>, name: &str) -> Option<String> {
    facts?
        .get(name)?
        .as_str()
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .map(str::to_owned)
}

/// A name and its reading, as the facts list shows them.
pub struct Fact {
    pub name: &'static str,
    pub value: String,
}

/// `1.5 GiB`: memory as people read it.
fn bytes(value: u64) -> String {
    let units = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut amount = value as f64;
    let mut unit = 0;
    while amount >= 1024.0 && unit < units.len() - 1 {
        amount /= 1024.0;
        unit += 1;
    }
    match unit {
        0 => format!("{value} B"),
        _ => format!("{amount:.1} {}", units[unit]),
    }
}

/// The facts of SPEC 12.2 that the agent reported, in a fixed order; those it did not report
/// are left out (an agent of another version may send fewer, or more, which are ignored).
fn facts(host: &Host) -> Vec<Fact> {
    let Some(facts) = host.facts.as_ref() else {
        return Vec::new();
    };
    let text = |name| fact_text(Some(facts), name);
    let mut shown = Vec::new();
    let mut add = |name: &'static str, value: Option<String>| {
        if let Some(value) = value {
            shown.push(Fact { name, value });
        }
    };
    add("OS", text("os_name").or_else(|| text("os")));
    add("Kernel", text("kernel"));
    add("Architecture", text("arch"));
    add("Reported hostname", text("hostname"));
    let addresses = facts["ips"].as_array().map(|ips| {
        ips.iter()
            .filter_map(Value::as_str)
            .take(64)
            .collect::<Vec<_>>()
            .join(", ")
    });
    add("Addresses", addresses.filter(|a| !a.is_empty()));
    add("CPUs", facts["cpu_count"].as_u64().map(|n| n.to_string()));
    add("Memory", facts["memory_bytes"].as_u64().map(bytes));
    let boot = text("boot_time").map(|at| match Timestamp::parse(&at) {
        Some(at) => when(at),
        None => at,
    });
    add("Booted", boot);
    add(
        "Agent version",
        text("agent_version").or_else(|| host.agent_version.clone()),
    );
    shown
}

/// The host's agent as its page shows it.
pub struct AgentView {
    pub connected: bool,
    pub revoked: bool,
    pub enrolled: String,
    pub connected_at: String,
    pub last_seen: String,
    pub version: String,
    pub remote_addr: String,
    pub revoked_at: String,
}

impl AgentView {
    fn new(agent: &HostAgent) -> Self {
        AgentView {
            connected: agent.connected,
            revoked: agent.revoked_at.is_some(),
            enrolled: when(agent.enrolled_at),
            connected_at: when_or(agent.connected_at, ""),
            last_seen: when_or(agent.last_seen_at, "never"),
            version: agent.agent_version.clone().unwrap_or_default(),
            remote_addr: agent.remote_addr.clone().unwrap_or_default(),
            revoked_at: when_or(agent.revoked_at, ""),
        }
    }
}

async fn table(
    state: &AppState,
    viewer: &Viewer,
    query: &ListQuery,
) -> Result<HostsTable, PageError> {
    let mut conn = state.store.conn().await?;
    let names = organization_names(&mut conn, viewer.auth.account()).await?;
    let page = hosts::list(
        &mut conn,
        viewer.auth.account(),
        None,
        &viewer.auth.host_scope(),
        page::DEFAULT_LIMIT,
        query.cursor.as_deref(),
    )
    .await?;
    let enrolled: Vec<Id<Host>> = page
        .items
        .iter()
        .filter(|h| h.enrolled_at.is_some())
        .map(|h| h.id)
        .collect();
    let revoked = credentials::revoked_among(&mut conn, viewer.auth.account(), &enrolled).await?;
    let rows = page
        .items
        .iter()
        .map(|h| HostRow {
            agent_revoked: revoked.contains(&h.id),
            ..row(h, &names)
        })
        .collect();
    Ok(HostsTable {
        rows,
        pager: Pager::of(PATH, query, &page),
        can_manage: viewer.has(Permission::HostsManage),
    })
}

pub async fn list_page(
    State(state): State<AppState>,
    viewer: Viewer,
    Query(query): Query<ListQuery>,
) -> PageResult {
    let mut conn = state.store.conn().await?;
    let organizations = organization_options(&mut conn, viewer.auth.account()).await?;
    drop(conn);
    render(&HostsPage {
        chrome: Chrome::new(&viewer, "Hosts"),
        organizations,
        table: table(&state, &viewer, &query).await?,
    })
}

pub async fn table_partial(
    State(state): State<AppState>,
    viewer: Viewer,
    Query(query): Query<ListQuery>,
) -> PageResult {
    render(&HostsTablePartial {
        table: table(&state, &viewer, &query).await?,
    })
}

/// Who may see the host's sessions and recordings (hosts.manage only, like the API).
async fn access(
    state: &AppState,
    viewer: &Viewer,
    host: Id<Host>,
) -> Result<Option<AccessTable>, PageError> {
    if !viewer.has(Permission::HostsManage) {
        return Ok(None);
    }
    let account = viewer.auth.account();
    let mut conn = state.store.conn().await?;
    let grants = hosts::access_list(&mut conn, account, host).await?;
    let mut rows = Vec::with_capacity(grants.len());
    for grant in grants {
        let user = match viewer.has(Permission::UsersManage) {
            true => users::get(&mut conn, account, grant.user_id)
                .await
                .map(|u| u.email)
                .unwrap_or_else(|_| grant.user_id.to_string()),
            false => grant.user_id.to_string(),
        };
        rows.push(AccessRow {
            user_id: grant.user_id.to_string(),
            user,
            granted: when(grant.granted_at),
        });
    }
    Ok(Some(AccessTable {
        host_id: host.to_string(),
        rows,
    }))
}

async fn overview(
    conn: &mut spog_store::Conn,
    viewer: &Viewer,
    host: &Host,
) -> Result<Overview, PageError> {
    let account = viewer.auth.account();
    let names = organization_names(conn, account).await?;
    let agent = terminal::agent_of(conn, account, host.id).await?;
    let terminal = viewer
        .has(Permission::TerminalConnect)
        .then(|| terminal::unavailable(agent.as_ref()));
    let agent = agent.as_ref().map(AgentView::new);
    Ok(Overview {
        host: HostRow {
            agent_revoked: agent.as_ref().is_some_and(|a| a.revoked),
            ..row(host, &names)
        },
        created: when(host.created_at),
        facts: facts(host),
        agent,
        can_manage: viewer.has(Permission::HostsManage),
        terminal,
    })
}

/// The charts of `host` over `range` up to `now`, read as `GET /hosts/{id}/metrics` reads
/// the series.
async fn host_charts(
    state: &AppState,
    conn: &mut spog_store::Conn,
    viewer: &Viewer,
    host: &Host,
    range: &'static ChartRange,
    now: Timestamp,
) -> Result<HostCharts, PageError> {
    let window = host_metrics::window(range, now);
    // As the API chooses: raw samples for steps under a minute while they are kept, else the
    // one-minute rollups (and then no step under a minute).
    let raw = window.0 >= now.minus(state.config.metrics_raw_retention);
    let step_seconds = match raw {
        true => range.step_seconds,
        false => range.step_seconds.max(60),
    };
    let source = match raw && step_seconds % 60 != 0 {
        true => Source::Raw,
        false => Source::Rollups,
    };
    let no_labels = Labels::new();
    let mut stored = HashMap::new();
    for metric in host_metrics::metrics() {
        let query = series::Query {
            metric,
            labels: &no_labels,
            from: window.0,
            to: window.1,
            step: step_seconds * 1_000_000,
            source,
        };
        let found = match series::query(conn, viewer.auth.account(), host.id, &query).await {
            Ok(found) => Some(
                found
                    .into_iter()
                    .map(|s| StoredSeries {
                        labels: s.labels,
                        points: s
                            .points
                            .into_iter()
                            .map(|b| Point {
                                at: b.at,
                                value: b.value,
                                min: b.min,
                                max: b.max,
                            })
                            .collect(),
                    })
                    .collect(),
            ),
            // More series (or buckets) than one query returns: the chart says so.
            Err(StoreError::Invalid(_)) => None,
            Err(error) => return Err(error.into()),
        };
        stored.insert(metric, found);
    }
    Ok(host_metrics::charts_of(range, window, step_seconds, stored))
}

/// `?range=` of the host page and its charts.
#[derive(Deserialize)]
pub struct RangeQuery {
    range: Option<String>,
}

impl RangeQuery {
    fn range(&self) -> Result<&'static ChartRange, PageError> {
        match self.range.as_deref() {
            None | Some("") => Ok(&RANGES[0]),
            Some(name) => RANGES.iter().find(|r| r.name == name).ok_or_else(|| {
                PageError::BadRequest("The range must be one of 1h, 6h, 24h or 7d.".to_owned())
            }),
        }
    }
}

pub async fn host_page(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(id): Path<String>,
    Query(query): Query<RangeQuery>,
) -> PageResult {
    let id = parse_id::<Host>(&id)?;
    let range = query.range()?;
    let mut conn = state.store.conn().await?;
    let host = visible_host(&mut conn, &viewer.auth, id).await?;
    let overview = overview(&mut conn, &viewer, &host).await?;
    let can_manage = viewer.has(Permission::HostsManage);
    let users = match can_manage && viewer.has(Permission::UsersManage) {
        true => {
            let page = users::list(&mut conn, viewer.auth.account(), page::MAX_LIMIT, None).await?;
            Some(
                page.items
                    .into_iter()
                    .map(|u: User| UserOption {
                        id: u.id.to_string(),
                        email: u.email,
                    })
                    .collect(),
            )
        }
        false => None,
    };
    let charts = match viewer.has(Permission::MonitoringView) {
        true => {
            Some(host_charts(&state, &mut conn, &viewer, &host, range, Timestamp::now()).await?)
        }
        false => None,
    };
    drop(conn);
    render(&HostPage {
        chrome: Chrome::new(&viewer, "Hosts"),
        overview,
        charts,
        ranges: &RANGES,
        can_manage,
        users,
        access: access(&state, &viewer, id).await?,
    })
}

/// The host's state, facts and agent, for live refreshes.
pub async fn overview_partial(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(id): Path<String>,
) -> PageResult {
    let id = parse_id::<Host>(&id)?;
    let mut conn = state.store.conn().await?;
    let host = visible_host(&mut conn, &viewer.auth, id).await?;
    render(&OverviewPartial {
        overview: overview(&mut conn, &viewer, &host).await?,
    })
}

/// The host's charts over `?range=`, for live refreshes (monitoring.view, like
/// `GET /hosts/{id}/metrics`).
pub async fn charts_partial(
    State(state): State<AppState>,
    viewer: RequirePage<MonitoringView>,
    Path(id): Path<String>,
    Query(query): Query<RangeQuery>,
) -> PageResult {
    let id = parse_id::<Host>(&id)?;
    let range = query.range()?;
    let mut conn = state.store.conn().await?;
    let host = visible_host(&mut conn, &viewer.auth, id).await?;
    render(&ChartsPartial {
        charts: host_charts(&state, &mut conn, &viewer, &host, range, Timestamp::now()).await?,
    })
}

pub async fn access_partial(
    State(state): State<AppState>,
    viewer: RequirePage<HostsManage>,
    Path(id): Path<String>,
) -> PageResult {
    let id = parse_id::<Host>(&id)?;
    let mut conn = state.store.conn().await?;
    hosts::get(&mut conn, viewer.auth.account(), id).await?;
    drop(conn);
    render(&AccessPartial {
        access: access(&state, &viewer, id).await?,
    })
}

//! `/alerts` and `/alert-rules` (SPEC 7.3, 10): the alerts with state and reason filters
//! (and the rule's or host's alerts, from links), each saying why it fired and resolved, refreshed
//! live when an alert fires or moves, each with Acknowledge and Resolve; and the rules (in
//! [`rules`]). Pages read through the store functions `GET /api/v1/alerts` uses; buttons and
//! forms go through the JSON API (the audited path that also publishes `alert.*` events).
//! Without `monitoring.manage` they are not there.

mod rules;

pub use rules::{edit_rule_page, new_rule_page, rules_page, rules_table};

use std::collections::HashMap;

use askama::Template;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse};
use spog_core::alerts::{Alert, AlertReason, AlertState, label_text};
use spog_core::model::Organization;
use spog_core::notification::Severity;
use spog_core::page::{self, Page};
use spog_core::{FieldError, FieldErrors, Id, Permission};
use spog_store::alerting::alerts;

use super::error::{PageError, PageResult};
use super::layout::{Chrome, render, when, when_or};
use super::list_filters::{ListFilters, unshown_errors};
use super::lists::{FilteredPager, organization_name, organization_names, parse_id};
use super::session::{RequirePage, Viewer};
use crate::auth::permissions::MonitoringView;
use crate::state::AppState;

const ALERTS: &str = "/alerts";
const RULES: &str = "/alert-rules";

/// The badge class of a severity.
pub fn severity_badge(severity: Severity) -> &'static str {
    match severity {
        Severity::Critical | Severity::High => "bad",
        Severity::Medium => "warn",
        Severity::Low | Severity::Info => "",
    }
}

const STATES: [AlertState; 3] = [
    AlertState::Firing,
    AlertState::Acknowledged,
    AlertState::Resolved,
];

pub struct AlertRow {
    pub id: String,
    pub rule: String,
    pub rule_id: String,
    pub organization: String,
    pub severity: &'static str,
    pub severity_badge: &'static str,
    pub state: &'static str,
    pub state_badge: &'static str,
    pub summary: String,
    pub host: String,
    pub host_id: String,
    /// `event`, `threshold` or `no_data`.
    pub reason: &'static str,
    /// `{mount="/data"}` of a labelled series; empty without labels.
    pub labels: String,
    /// Why it resolved; empty while open.
    pub resolved_reason: &'static str,
    /// `cpu.usage 93 > 90` of a metric alert.
    pub reading: String,
    pub fired: String,
    pub acknowledged: String,
    pub resolved: String,
    pub can_acknowledge: bool,
    pub can_resolve: bool,
}

impl AlertRow {
    fn new(alert: &Alert, names: &HashMap<Id<Organization>, String>) -> Self {
        let reading = match (&alert.metric, alert.value, alert.operator, alert.threshold) {
            (Some(metric), Some(value), Some(operator), Some(threshold)) => {
                format!("{metric} {value} {} {threshold}", operator.as_str())
            }
            _ => String::new(),
        };
        AlertRow {
            id: alert.id.to_string(),
            rule: alert.rule_name.clone(),
            rule_id: alert.rule_id.map(|r| r.to_string()).unwrap_or_default(),
            organization: organization_name(names, alert.organization_id),
            severity: alert.severity.as_str(),
            severity_badge: severity_badge(alert.severity),
            state: alert.state.as_str(),
            state_badge: match alert.state {
                AlertState::Firing => "bad",
                AlertState::Acknowledged => "warn",
                AlertState::Resolved => "ok",
            },
            summary: alert.summary.clone(),
            host: alert.hostname.clone().unwrap_or_default(),
            host_id: alert.host_id.map(|h| h.to_string()).unwrap_or_default(),
            reason: alert.reason.as_str(),
            labels: label_text(&alert.labels),
            resolved_reason: alert.resolved_reason.map_or("", |r| r.as_str()),
            reading,
            fired: when(alert.fired_at),
            acknowledged: when_or(alert.acknowledged_at, ""),
            resolved: when_or(alert.resolved_at, ""),
            can_acknowledge: alert.state == AlertState::Firing,
            can_resolve: alert.state != AlertState::Resolved,
        }
    }
}

pub struct AlertsTable {
    /// `None` when the filter is invalid and nothing was listed.
    pub rows: Option<Vec<AlertRow>>,
    pub pager: FilteredPager,
    pub can_manage: bool,
}

const REASONS: [AlertReason; 3] = [
    AlertReason::Event,
    AlertReason::Threshold,
    AlertReason::NoData,
];

/// `?state=&reason=&rule_id=&host_id=&cursor=` as given, and the filter they make.
struct Filters {
    given: ListFilters,
    parsed: alerts::Filter,
}

impl Filters {
    fn read(raw: Option<&str>) -> Self {
        let mut given = ListFilters::read(raw, &["state", "reason", "rule_id", "host_id"]);
        let wrong = |field: &str, message: &str| FieldError::new(field, message);
        let parsed = alerts::Filter {
            state: given.parse("state", |text| {
                AlertState::parse(text)
                    .ok_or_else(|| wrong("state", "must be firing, acknowledged or resolved"))
            }),
            reason: given.parse("reason", |text| {
                AlertReason::parse(text)
                    .ok_or_else(|| wrong("reason", "must be event, threshold or no_data"))
            }),
            rule: given.parse("rule_id", |text| {
                text.parse()
                    .map_err(|_| wrong("rule_id", "must be a rule's id"))
            }),
            host: given.parse("host_id", |text| {
                text.parse()
                    .map_err(|_| wrong("host_id", "must be a host's id"))
            }),
            ..alerts::Filter::default()
        };
        Filters { given, parsed }
    }
}

async fn table(
    state: &AppState,
    viewer: &Viewer,
    filters: &Filters,
) -> Result<AlertsTable, PageError> {
    let query = filters.given.query();
    let can_manage = viewer.has(Permission::MonitoringManage);
    if !filters.given.errors.is_empty() {
        let nothing = Page::<Alert> {
            items: Vec::new(),
            next_cursor: None,
        };
        return Ok(AlertsTable {
            rows: None,
            pager: FilteredPager::of(ALERTS.to_owned(), query, None, &nothing),
            can_manage,
        });
    }
    let account = viewer.auth.account();
    let mut conn = state.store.conn().await?;
    let names = organization_names(&mut conn, account).await?;
    let found = alerts::list(
        &mut conn,
        account,
        filters.parsed,
        page::DEFAULT_LIMIT,
        filters.given.cursor.as_deref(),
    )
    .await?;
    Ok(AlertsTable {
        rows: Some(
            found
                .items
                .iter()
                .map(|a| AlertRow::new(a, &names))
                .collect(),
        ),
        pager: FilteredPager::of(
            ALERTS.to_owned(),
            query,
            filters.given.cursor.as_deref(),
            &found,
        ),
        can_manage,
    })
}

#[derive(Template)]
#[template(path = "alerts/list.html")]
struct AlertsPage {
    chrome: Chrome,
    tab: &'static str,
    state: String,
    states: Vec<&'static str>,
    reason: String,
    reasons: Vec<&'static str>,
    errors: FieldErrors,
    table: AlertsTable,
}

impl AlertsPage {
    fn error(&self, name: &str) -> Option<&str> {
        self.errors.get(name)
    }

    fn other_errors(&self) -> Vec<String> {
        unshown_errors(&self.errors, &["state", "reason"])
    }
}

#[derive(Template)]
#[template(path = "alerts/table.html")]
struct AlertsTablePartial {
    table: AlertsTable,
}

pub async fn alerts_page(
    State(state): State<AppState>,
    viewer: RequirePage<MonitoringView>,
    RawQuery(raw): RawQuery,
) -> PageResult {
    let filters = Filters::read(raw.as_deref());
    let page = AlertsPage {
        chrome: Chrome::new(&viewer, "Alerts"),
        tab: "alerts",
        table: table(&state, &viewer, &filters).await?,
        states: STATES.iter().map(|s| s.as_str()).collect(),
        state: filters.given.value("state"),
        reasons: REASONS.iter().map(|r| r.as_str()).collect(),
        reason: filters.given.value("reason"),
        errors: filters.given.errors,
    };
    let status = match page.errors.is_empty() {
        true => StatusCode::OK,
        false => StatusCode::UNPROCESSABLE_ENTITY,
    };
    Ok((status, Html(page.render()?)).into_response())
}

/// The table alone, for paging and live refreshes.
pub async fn alerts_table(
    State(state): State<AppState>,
    viewer: RequirePage<MonitoringView>,
    RawQuery(raw): RawQuery,
) -> PageResult {
    let filters = Filters::read(raw.as_deref());
    render(&AlertsTablePartial {
        table: table(&state, &viewer, &filters).await?,
    })
}

#[derive(Template)]
#[template(path = "alerts/detail.html")]
struct AlertPage {
    chrome: Chrome,
    alert: AlertRow,
    can_manage: bool,
}

/// One alert (where in-app notifications of alerts link to).
pub async fn alert_page(
    State(state): State<AppState>,
    viewer: RequirePage<MonitoringView>,
    Path(id): Path<String>,
) -> PageResult {
    let id = parse_id::<Alert>(&id)?;
    let account = viewer.auth.account();
    let mut conn = state.store.conn().await?;
    let alert = alerts::get(&mut conn, account, id).await?;
    let names = organization_names(&mut conn, account).await?;
    drop(conn);
    render(&AlertPage {
        chrome: Chrome::new(&viewer, "Alerts"),
        alert: AlertRow::new(&alert, &names),
        can_manage: viewer.has(Permission::MonitoringManage),
    })
}

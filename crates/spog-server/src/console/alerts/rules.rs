//! `/alert-rules`: the rules list, and the create and edit forms of event rules (event types
//! plus a data match) and metric rules (metric, operator, threshold, `for_seconds`, hosts,
//! series labels, `no_data_seconds`),
//! each with severity, cooldown, enabled and the notification channels it delivers to. The
//! forms send exactly the fields of the rule's kind to `/api/v1/alert-rules`, whose 422s show
//! beside their fields.

use askama::Template;
use axum::extract::{Path, Query, State};
use spog_core::alerts::{AlertRule, Condition, Operator};
use spog_core::events::EventType;
use spog_core::notification::Severity;
use spog_core::{Id, Permission, page};
use spog_store::alerting::rules;
use spog_store::channels;
use spog_store::identity::hosts::{self, HostScope};

use super::{RULES, severity_badge};
use crate::auth::permissions::{MonitoringManage, MonitoringView};
use crate::console::error::{PageError, PageResult};
use crate::console::layout::{Chrome, render, when};
use crate::console::lists::{
    EventTypeOption, ListQuery, OrganizationOption, Pager, event_type_options, organization_name,
    organization_names, organization_options, parse_id,
};
use crate::console::session::{RequirePage, Viewer};
use crate::state::AppState;

const OPERATORS: [Operator; 4] = [
    Operator::Above,
    Operator::AtLeast,
    Operator::Below,
    Operator::AtMost,
];

/// Event types that may fire a rule: not the alerts' own.
fn rule_event_types() -> impl Iterator<Item = EventType> {
    EventType::ALL
        .into_iter()
        .filter(|t| !t.as_str().starts_with("alert."))
}

/// A rule as the pages show it.
pub struct RuleView {
    pub id: String,
    pub name: String,
    pub organization: String,
    pub kind: &'static str,
    /// What fires it, in a line.
    pub condition: String,
    pub severity: &'static str,
    pub severity_badge: &'static str,
    pub cooldown_seconds: i64,
    pub enabled: bool,
    /// Event rules: the `match` object as JSON (empty for none).
    pub matches: String,
    pub metric: String,
    pub operator: &'static str,
    pub threshold: String,
    pub for_seconds: i64,
    /// Metric rules: the `labels` object as JSON (empty for none).
    pub labels: String,
    pub no_data_seconds: i64,
    pub updated: String,
}

impl RuleView {
    fn new(rule: &AlertRule, organization: String) -> Self {
        let mut view = RuleView {
            id: rule.id.to_string(),
            name: rule.name.clone(),
            organization,
            kind: "event",
            condition: String::new(),
            severity: rule.severity.as_str(),
            severity_badge: severity_badge(rule.severity),
            cooldown_seconds: rule.cooldown_seconds,
            enabled: rule.enabled,
            matches: String::new(),
            metric: String::new(),
            operator: Operator::Above.as_str(),
            threshold: String::new(),
            for_seconds: 0,
            labels: String::new(),
            no_data_seconds: 0,
            updated: when(rule.updated_at),
        };
        match &rule.condition {
            Condition::Event {
                event_types,
                matches,
            } => {
                let types: Vec<&str> = event_types.iter().map(|t| t.as_str()).collect();
                view.condition = types.join(", ");
                if !matches.is_empty() {
                    let text = serde_json::to_string(matches).unwrap_or_default();
                    view.condition = format!("{} where {text}", view.condition);
                    view.matches = serde_json::to_string_pretty(matches).unwrap_or_default();
                }
            }
            Condition::Metric {
                metric,
                operator,
                threshold,
                for_seconds,
                host_ids,
                labels,
                no_data_seconds,
            } => {
                view.kind = "metric";
                view.condition = format!(
                    "{metric}{} {} {threshold}",
                    spog_core::alerts::label_text(labels),
                    operator.as_str()
                );
                if *for_seconds > 0 {
                    view.condition = format!("{} for {for_seconds} s", view.condition);
                }
                view.condition = match host_ids.len() {
                    0 => format!("{} on any host", view.condition),
                    1 => format!("{} on 1 host", view.condition),
                    n => format!("{} on {n} hosts", view.condition),
                };
                view.metric = metric.clone();
                view.operator = operator.as_str();
                view.threshold = threshold.to_string();
                view.for_seconds = *for_seconds;
                if *no_data_seconds > 0 {
                    view.condition =
                        format!("{}; no data after {no_data_seconds} s", view.condition);
                }
                if !labels.is_empty() {
                    view.labels = serde_json::to_string_pretty(labels).unwrap_or_default();
                }
                view.no_data_seconds = *no_data_seconds;
            }
        }
        view
    }
}

pub struct RulesTable {
    pub rows: Vec<RuleView>,
    pub pager: Pager,
    pub can_manage: bool,
}

#[derive(Template)]
#[template(path = "alerts/rules.html")]
struct RulesPage {
    chrome: Chrome,
    tab: &'static str,
    table: RulesTable,
}

#[derive(Template)]
#[template(path = "alerts/rules_table.html")]
struct RulesTablePartial {
    table: RulesTable,
}

async fn table(
    state: &AppState,
    viewer: &Viewer,
    query: &ListQuery,
) -> Result<RulesTable, PageError> {
    let account = viewer.auth.account();
    let mut conn = state.store.conn().await?;
    let names = organization_names(&mut conn, account).await?;
    let page = rules::list(
        &mut conn,
        account,
        None,
        page::DEFAULT_LIMIT,
        query.cursor.as_deref(),
    )
    .await?;
    Ok(RulesTable {
        rows: page
            .items
            .iter()
            .map(|r| RuleView::new(r, organization_name(&names, r.organization_id)))
            .collect(),
        pager: Pager::of(RULES, query, &page),
        can_manage: viewer.has(Permission::MonitoringManage),
    })
}

pub async fn rules_page(
    State(state): State<AppState>,
    viewer: RequirePage<MonitoringView>,
    Query(query): Query<ListQuery>,
) -> PageResult {
    render(&RulesPage {
        chrome: Chrome::new(&viewer, "Alert rules"),
        tab: "rules",
        table: table(&state, &viewer, &query).await?,
    })
}

pub async fn rules_table(
    State(state): State<AppState>,
    viewer: RequirePage<MonitoringView>,
    Query(query): Query<ListQuery>,
) -> PageResult {
    render(&RulesTablePartial {
        table: table(&state, &viewer, &query).await?,
    })
}

/// A host as a checkbox of a metric rule's host filter.
pub struct HostOption {
    pub id: String,
    pub label: String,
    pub checked: bool,
}

/// A notification channel as a checkbox; while creating, shown only for the organization
/// chosen (channels of another organization are refused).
pub struct ChannelOption {
    pub id: String,
    pub label: String,
    pub organization_id: String,
    pub checked: bool,
}

/// The channels a rule may link (those of its organization once it has one), ticked as the
/// rule links them; a linked channel beyond the first page is kept by its id.
async fn channel_options(
    conn: &mut spog_store::Conn,
    viewer: &Viewer,
    organization: Option<Id<spog_core::model::Organization>>,
    checked: &[String],
) -> Result<Vec<ChannelOption>, PageError> {
    let account = viewer.auth.account();
    let names = organization_names(conn, account).await?;
    let page = channels::list(conn, account, organization, page::MAX_LIMIT, None).await?;
    let mut options: Vec<ChannelOption> = page
        .items
        .iter()
        .map(|c| ChannelOption {
            id: c.id.to_string(),
            label: match organization {
                Some(_) => format!("{} ({})", c.name, c.channel_type.as_str()),
                None => format!(
                    "{} ({}, {})",
                    c.name,
                    c.channel_type.as_str(),
                    organization_name(&names, c.organization_id)
                ),
            },
            organization_id: c.organization_id.to_string(),
            checked: checked.contains(&c.id.to_string()),
        })
        .collect();
    for id in checked {
        if !options.iter().any(|o| o.id == *id) {
            options.push(ChannelOption {
                id: id.clone(),
                label: id.clone(),
                organization_id: organization.map(|o| o.to_string()).unwrap_or_default(),
                checked: true,
            });
        }
    }
    Ok(options)
}

/// The create form (`rule` is `None`) or the edit form of a rule of a fixed kind.
#[derive(Template)]
#[template(path = "alerts/rule_form.html")]
struct RuleForm {
    chrome: Chrome,
    rule: Option<RuleView>,
    organizations: Vec<OrganizationOption>,
    severities: Vec<&'static str>,
    operators: Vec<&'static str>,
    event_types: Vec<EventTypeOption>,
    hosts: Vec<HostOption>,
    channels: Vec<ChannelOption>,
    /// What a new metric rule's `no_data_seconds` starts at (`metric_no_data_after`).
    default_no_data_seconds: u64,
    /// Without `monitoring.manage` the rule shows in the form's fields, read only.
    can_manage: bool,
}

impl RuleForm {
    /// Whether the form shows the fields of `kind` (both kinds while creating).
    fn shows(&self, kind: &str) -> bool {
        self.rule.as_ref().is_none_or(|r| r.kind == kind)
    }

    fn severity(&self) -> &str {
        self.rule
            .as_ref()
            .map_or(Severity::High.as_str(), |r| r.severity)
    }
}

/// Every host of the account (a rule may watch hosts the viewer was not granted), ticked as
/// the rule has them; a ticked host beyond the first page is kept by its id.
async fn host_options(
    conn: &mut spog_store::Conn,
    viewer: &Viewer,
    checked: &[Id<spog_core::model::Host>],
) -> Result<Vec<HostOption>, PageError> {
    let account = viewer.auth.account();
    let names = organization_names(conn, account).await?;
    let page = hosts::list(conn, account, None, &HostScope::All, page::MAX_LIMIT, None).await?;
    let mut options: Vec<HostOption> = page
        .items
        .iter()
        .map(|h| HostOption {
            id: h.id.to_string(),
            label: format!(
                "{} ({})",
                h.hostname,
                organization_name(&names, h.organization_id)
            ),
            checked: checked.contains(&h.id),
        })
        .collect();
    for id in checked {
        if !page.items.iter().any(|h| h.id == *id) {
            options.push(HostOption {
                id: id.to_string(),
                label: id.to_string(),
                checked: true,
            });
        }
    }
    Ok(options)
}

fn form(
    state: &AppState,
    chrome: Chrome,
    rule: Option<RuleView>,
    organizations: Vec<OrganizationOption>,
    checked_types: &[EventType],
    hosts: Vec<HostOption>,
    channels: Vec<ChannelOption>,
) -> RuleForm {
    RuleForm {
        chrome,
        rule,
        organizations,
        severities: Severity::ALL.iter().map(|s| s.as_str()).collect(),
        operators: OPERATORS.iter().map(|o| o.as_str()).collect(),
        event_types: event_type_options(rule_event_types(), checked_types),
        hosts,
        channels,
        default_no_data_seconds: state.config.metric_no_data_after.as_secs(),
        can_manage: true,
    }
}

pub async fn new_rule_page(
    State(state): State<AppState>,
    viewer: RequirePage<MonitoringManage>,
) -> PageResult {
    let chrome = Chrome::new(&viewer, "New alert rule");
    let mut conn = state.store.conn().await?;
    let organizations = organization_options(&mut conn, viewer.auth.account()).await?;
    let hosts = host_options(&mut conn, &viewer, &[]).await?;
    let channels = channel_options(&mut conn, &viewer, None, &[]).await?;
    drop(conn);
    render(&form(
        &state,
        chrome,
        None,
        organizations,
        &[],
        hosts,
        channels,
    ))
}

pub async fn edit_rule_page(
    State(state): State<AppState>,
    viewer: RequirePage<MonitoringView>,
    Path(id): Path<String>,
) -> PageResult {
    let id = parse_id::<AlertRule>(&id)?;
    let account = viewer.auth.account();
    let mut conn = state.store.conn().await?;
    let rule = rules::get(&mut conn, account, id).await?;
    let names = organization_names(&mut conn, account).await?;
    let (types, host_ids) = match &rule.condition {
        Condition::Event { event_types, .. } => (event_types.clone(), Vec::new()),
        Condition::Metric { host_ids, .. } => (Vec::new(), host_ids.clone()),
    };
    let hosts = host_options(&mut conn, &viewer, &host_ids).await?;
    let channels = channel_options(
        &mut conn,
        &viewer,
        Some(rule.organization_id),
        &rule.channel_ids,
    )
    .await?;
    drop(conn);
    let view = RuleView::new(&rule, organization_name(&names, rule.organization_id));
    let chrome = Chrome::new(&viewer, &rule.name);
    let mut page = form(
        &state,
        chrome,
        Some(view),
        Vec::new(),
        &types,
        hosts,
        channels,
    );
    page.can_manage = viewer.has(Permission::MonitoringManage);
    render(&page)
}

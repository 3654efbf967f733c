//! `/alert-rules` and `/alerts` (SPEC 7.3).

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{Map, Value};
use spog_core::alerts::{
    Alert, AlertReason, AlertRule, AlertState, Condition, Operator, ResolvedReason,
};
use spog_core::audit::Action;
use spog_core::events::EventType;
use spog_core::metrics::{self, Labels, metric_name};
use spog_core::model::{Host, Organization};
use spog_core::notification::Severity;
use spog_core::page::{self, Page};
use spog_core::{BoundedMap, FieldError, FieldErrors, Id, Timestamp, UniqueList, validate};
use spog_store::alerting::{alerts, rules};
use spog_store::identity::{hosts, organizations};
use spog_store::{Conn, StoreError, channels};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::alerting;
use crate::auth::Require;
use crate::auth::permissions::{MonitoringManage, MonitoringView};
use crate::error::{ApiError, ApiResult};
use crate::events::Announcements;
use crate::extract::{AppJson, AppPath, AppQuery};
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_rules, create_rule))
        .routes(routes!(get_rule, update_rule, delete_rule))
        .routes(routes!(list_alerts))
        .routes(routes!(get_alert))
        .routes(routes!(acknowledge_alert))
        .routes(routes!(resolve_alert))
}

/// The fields of an alert rule; which apply depends on `kind`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RuleBody {
    /// `event` or `metric`; required on create, fixed afterwards.
    pub kind: Option<String>,
    pub organization_id: Option<Id<Organization>>,
    pub name: Option<String>,
    pub severity: Option<Severity>,
    /// Notification channels of the rule's organization; repeats are dropped.
    pub channel_ids: Option<UniqueList<String, 50>>,
    pub enabled: Option<bool>,
    /// Default 300.
    pub cooldown_seconds: Option<i64>,
    /// Event rules: the event types that fire it (not `alert.*`).
    pub event_types: Option<UniqueList<String, 50>>,
    /// Event rules: data fields (dotted paths) that must equal these values (at most 50).
    #[serde(rename = "match")]
    pub matches: Option<BoundedMap<Value, 50>>,
    /// Metric rules.
    pub metric: Option<String>,
    /// `>`, `>=`, `<` or `<=`.
    pub operator: Option<String>,
    pub threshold: Option<f64>,
    pub for_seconds: Option<i64>,
    /// Empty or absent: every host of the organization; repeats are dropped.
    pub host_ids: Option<UniqueList<Id<Host>, 1000>>,
    /// Metric rules: labels a series must carry to be watched (at most 8); `{}`: every
    /// series of the metric.
    #[schema(value_type = Option<Object>)]
    pub labels: Option<Labels>,
    /// Metric rules: silence after which a watched series (or a listed host that never
    /// reported) fires a `no_data` alert: 0 (off) or 5 to 604,800; default the server's
    /// `metric_no_data_after`.
    pub no_data_seconds: Option<i64>,
}

fn event_types(names: &[String]) -> Result<Vec<EventType>, FieldError> {
    let types = EventType::parse_list("event_types", names)?;
    if types.is_empty() {
        return Err(FieldError::new(
            "event_types",
            "must name at least one event type",
        ));
    }
    if types.iter().any(|t| t.as_str().starts_with("alert.")) {
        return Err(FieldError::new(
            "event_types",
            "alert events cannot fire alerts (that could loop)",
        ));
    }
    Ok(types)
}

fn ranged(field: &str, value: i64, max: i64) -> Result<i64, FieldError> {
    if (0..=max).contains(&value) {
        Ok(value)
    } else {
        Err(FieldError::new(
            field,
            format!("must be between 0 and {max}"),
        ))
    }
}

const WEEK: i64 = 7 * 86_400;
/// The shortest silence a rule may watch for (the check runs every few seconds).
pub const MIN_NO_DATA_SECONDS: i64 = 5;

/// 0 (off) or 5 s to a week.
pub fn no_data_seconds(value: i64) -> Result<i64, FieldError> {
    if value == 0 || (MIN_NO_DATA_SECONDS..=WEEK).contains(&value) {
        Ok(value)
    } else {
        Err(FieldError::new(
            "no_data_seconds",
            format!("must be 0 (off) or between {MIN_NO_DATA_SECONDS} and {WEEK}"),
        ))
    }
}

/// Applies `body` to `rule` (new or existing) at `now`, collecting every field error.
fn apply(
    body: RuleBody,
    rule: &mut AlertRule,
    creating: bool,
    now: Timestamp,
    errors: &mut FieldErrors,
) {
    if let Some(name) = &body.name {
        rule.name = errors
            .check(validate::name("name", name, 200))
            .unwrap_or_default();
    }
    if let Some(severity) = body.severity {
        rule.severity = severity;
    }
    if let Some(channels) = body.channel_ids {
        rule.channel_ids = channels.into_inner();
    }
    if let Some(enabled) = body.enabled {
        rule.enabled = enabled;
    }
    // Silence counts from when the rule was (re-)enabled.
    rule.enabled_since = match (rule.enabled, rule.enabled_since) {
        (false, _) => None,
        (true, None) => Some(now),
        (true, since) => since,
    };
    if let Some(cooldown) = body.cooldown_seconds {
        rule.cooldown_seconds = errors
            .check(ranged("cooldown_seconds", cooldown, WEEK))
            .unwrap_or(0);
    }
    let event_fields = body.event_types.is_some() || body.matches.is_some();
    let metric_fields = body.metric.is_some()
        || body.operator.is_some()
        || body.threshold.is_some()
        || body.for_seconds.is_some()
        || body.host_ids.is_some()
        || body.labels.is_some()
        || body.no_data_seconds.is_some();
    match &mut rule.condition {
        Condition::Event {
            event_types: types,
            matches,
        } => {
            if metric_fields {
                errors.add(FieldError::new(
                    "metric",
                    "is a field of metric rules, not event rules",
                ));
            }
            if let Some(names) = &body.event_types {
                *types = errors.check(event_types(names)).unwrap_or_default();
            } else if creating {
                errors.add(FieldError::new(
                    "event_types",
                    "is required for event rules",
                ));
            }
            if let Some(new) = body.matches {
                *matches = new.into_inner().into_iter().collect();
            }
        }
        Condition::Metric {
            metric,
            operator,
            threshold,
            for_seconds,
            host_ids,
            labels,
            no_data_seconds: silence,
        } => {
            if event_fields {
                errors.add(FieldError::new(
                    "event_types",
                    "is a field of event rules, not metric rules",
                ));
            }
            match (&body.metric, creating) {
                (Some(name), _) => {
                    *metric = errors
                        .check(metric_name("metric", name))
                        .unwrap_or_default()
                }
                (None, true) => {
                    errors.add(FieldError::new("metric", "is required for metric rules"))
                }
                _ => {}
            }
            match (&body.operator, creating) {
                (Some(text), _) => match Operator::parse(text) {
                    Some(parsed) => *operator = parsed,
                    None => errors.add(FieldError::new("operator", "must be >, >=, < or <=")),
                },
                (None, true) => {
                    errors.add(FieldError::new("operator", "is required for metric rules"))
                }
                _ => {}
            }
            match (body.threshold, creating) {
                (Some(value), _) if value.is_finite() => *threshold = value,
                (Some(_), _) => errors.add(FieldError::new("threshold", "must be a finite number")),
                (None, true) => {
                    errors.add(FieldError::new("threshold", "is required for metric rules"))
                }
                _ => {}
            }
            if let Some(seconds) = body.for_seconds {
                *for_seconds = errors
                    .check(ranged("for_seconds", seconds, WEEK))
                    .unwrap_or(0);
            }
            if let Some(hosts) = body.host_ids {
                *host_ids = hosts.into_inner();
            }
            if let Some(wanted) = body.labels {
                *labels = errors
                    .check(metrics::labels("labels", wanted))
                    .unwrap_or_default();
            }
            if let Some(seconds) = body.no_data_seconds {
                *silence = errors.check(no_data_seconds(seconds)).unwrap_or(0);
            }
        }
    }
}

/// Checks that the rule's hosts and channels belong to its organization.
async fn check_references(
    conn: &mut Conn,
    account: Id<spog_core::model::Account>,
    rule: &AlertRule,
) -> ApiResult<()> {
    if let Condition::Metric { host_ids, .. } = &rule.condition {
        let found: std::collections::HashSet<Id<Host>> =
            hosts::of_organization(conn, account, rule.organization_id, host_ids)
                .await?
                .into_iter()
                .collect();
        if let Some(i) = host_ids.iter().position(|h| !found.contains(h)) {
            return Err(ApiError::field(
                &format!("host_ids[{i}]"),
                "is not a host of the rule's organization",
            ));
        }
    }
    let found = channels::of_organization(
        conn,
        account,
        rule.organization_id,
        &rule.channel_ids,
        false,
    )
    .await?;
    if rule.channel_ids.iter().any(|c| !found.contains(c)) {
        // A channel of another organization or account is as absent as one that never was.
        return Err(ApiError::NotFound);
    }
    Ok(())
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct RuleParams {
    pub organization_id: Option<Id<Organization>>,
    pub limit: Option<i64>,
    pub cursor: Option<String>,
}

/// List alert rules.
#[utoipa::path(get, path = "/alert-rules", tag = "alerts", params(RuleParams),
    responses((status = 200, body = Page<AlertRule>)))]
async fn list_rules(
    State(state): State<AppState>,
    auth: Require<MonitoringView>,
    AppQuery(params): AppQuery<RuleParams>,
) -> ApiResult<Json<Page<AlertRule>>> {
    let limit = page::limit(params.limit, page::DEFAULT_LIMIT, page::MAX_LIMIT)?;
    let mut conn = state.store.conn().await?;
    Ok(Json(
        rules::list(
            &mut conn,
            auth.account(),
            params.organization_id,
            limit,
            params.cursor.as_deref(),
        )
        .await?,
    ))
}

/// Create an event or metric alert rule.
#[utoipa::path(post, path = "/alert-rules", tag = "alerts", request_body = RuleBody,
    responses((status = 201, body = AlertRule)))]
async fn create_rule(
    State(state): State<AppState>,
    auth: Require<MonitoringManage>,
    AppJson(body): AppJson<RuleBody>,
) -> ApiResult<(StatusCode, Json<AlertRule>)> {
    let mut errors = FieldErrors::new();
    let condition = match body.kind.as_deref() {
        Some("event") => Some(Condition::Event {
            event_types: Vec::new(),
            matches: Map::new(),
        }),
        Some("metric") => Some(Condition::Metric {
            metric: String::new(),
            operator: Operator::Above,
            threshold: 0.0,
            for_seconds: 0,
            host_ids: Vec::new(),
            labels: Labels::new(),
            no_data_seconds: i64::try_from(state.config.metric_no_data_after.as_secs())
                .unwrap_or(WEEK),
        }),
        Some(_) => {
            errors.add(FieldError::new("kind", "must be event or metric"));
            None
        }
        None => {
            errors.add(FieldError::new("kind", "is required"));
            None
        }
    };
    let organization = body.organization_id;
    if organization.is_none() {
        errors.add(FieldError::new("organization_id", "is required"));
    }
    if body.name.is_none() {
        errors.add(FieldError::new("name", "is required"));
    }
    if body.severity.is_none() {
        errors.add(FieldError::new("severity", "is required"));
    }
    let now = Timestamp::now();
    let mut rule = AlertRule {
        id: Id::new(),
        organization_id: organization.unwrap_or_default(),
        name: String::new(),
        condition: condition.unwrap_or(Condition::Event {
            event_types: Vec::new(),
            matches: Map::new(),
        }),
        severity: Severity::Info,
        channel_ids: Vec::new(),
        enabled: true,
        enabled_since: None,
        cooldown_seconds: 300,
        created_at: now,
        updated_at: now,
    };
    apply(body, &mut rule, true, now, &mut errors);
    errors.into_result()?;
    let mut tx = state.store.begin().await?;
    organizations::get(&mut tx, auth.account(), rule.organization_id)
        .await
        .map_err(|e| match e {
            StoreError::NotFound => {
                ApiError::field("organization_id", "is not an organization of this account")
            }
            other => other.into(),
        })?;
    check_references(&mut tx, auth.account(), &rule).await?;
    rules::create(&mut tx, auth.account(), &rule).await?;
    tx.record(auth.did(Action::AlertRuleCreate, &rule).after(&rule))
        .await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, Json(rule)))
}

/// Get an alert rule.
#[utoipa::path(get, path = "/alert-rules/{id}", tag = "alerts", params(("id" = String, Path)),
    responses((status = 200, body = AlertRule)))]
async fn get_rule(
    State(state): State<AppState>,
    auth: Require<MonitoringView>,
    AppPath(id): AppPath<Id<AlertRule>>,
) -> ApiResult<Json<AlertRule>> {
    let mut conn = state.store.conn().await?;
    Ok(Json(rules::get(&mut conn, auth.account(), id).await?))
}

/// Change an alert rule (its kind and organization stay).
#[utoipa::path(patch, path = "/alert-rules/{id}", tag = "alerts", params(("id" = String, Path)),
    request_body = RuleBody, responses((status = 200, body = AlertRule)))]
async fn update_rule(
    State(state): State<AppState>,
    auth: Require<MonitoringManage>,
    AppPath(id): AppPath<Id<AlertRule>>,
    AppJson(body): AppJson<RuleBody>,
) -> ApiResult<Json<AlertRule>> {
    let mut tx = state.store.begin().await?;
    let before = rules::get(&mut tx, auth.account(), id).await?;
    let mut errors = FieldErrors::new();
    if body.kind.is_some() {
        errors.add(FieldError::new(
            "kind",
            "cannot change; create another rule",
        ));
    }
    if body
        .organization_id
        .is_some_and(|o| o != before.organization_id)
    {
        errors.add(FieldError::new(
            "organization_id",
            "cannot change; create another rule",
        ));
    }
    let mut rule = before.clone();
    let now = Timestamp::now();
    apply(body, &mut rule, false, now, &mut errors);
    errors.into_result()?;
    rule.updated_at = now;
    check_references(&mut tx, auth.account(), &rule).await?;
    rules::update(&mut tx, auth.account(), &rule).await?;
    tx.record(auth.changed(Action::AlertRuleUpdate, &before, &rule))
        .await?;
    tx.commit().await?;
    Ok(Json(rule))
}

/// Delete an alert rule; its alerts stay, naming it.
#[utoipa::path(delete, path = "/alert-rules/{id}", tag = "alerts", params(("id" = String, Path)),
    responses((status = 204)))]
async fn delete_rule(
    State(state): State<AppState>,
    auth: Require<MonitoringManage>,
    AppPath(id): AppPath<Id<AlertRule>>,
) -> ApiResult<StatusCode> {
    let mut tx = state.store.begin().await?;
    let before = rules::get(&mut tx, auth.account(), id).await?;
    rules::delete(&mut tx, auth.account(), id).await?;
    tx.record(auth.did(Action::AlertRuleDelete, &before).before(&before))
        .await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct AlertParams {
    pub state: Option<AlertState>,
    pub organization_id: Option<Id<Organization>>,
    pub rule_id: Option<Id<AlertRule>>,
    pub host_id: Option<Id<Host>>,
    /// `event`, `threshold` or `no_data`.
    pub reason: Option<AlertReason>,
    pub limit: Option<i64>,
    pub cursor: Option<String>,
}

/// Alerts, newest first.
#[utoipa::path(get, path = "/alerts", tag = "alerts", params(AlertParams),
    responses((status = 200, body = Page<Alert>)))]
async fn list_alerts(
    State(state): State<AppState>,
    auth: Require<MonitoringView>,
    AppQuery(params): AppQuery<AlertParams>,
) -> ApiResult<Json<Page<Alert>>> {
    let limit = page::limit(params.limit, page::DEFAULT_LIMIT, page::MAX_LIMIT)?;
    let mut conn = state.store.conn().await?;
    Ok(Json(
        alerts::list(
            &mut conn,
            auth.account(),
            alerts::Filter {
                state: params.state,
                organization: params.organization_id,
                rule: params.rule_id,
                host: params.host_id,
                reason: params.reason,
            },
            limit,
            params.cursor.as_deref(),
        )
        .await?,
    ))
}

/// Get an alert.
#[utoipa::path(get, path = "/alerts/{id}", tag = "alerts", params(("id" = String, Path)),
    responses((status = 200, body = Alert)))]
async fn get_alert(
    State(state): State<AppState>,
    auth: Require<MonitoringView>,
    AppPath(id): AppPath<Id<Alert>>,
) -> ApiResult<Json<Alert>> {
    let mut conn = state.store.conn().await?;
    Ok(Json(alerts::get(&mut conn, auth.account(), id).await?))
}

async fn move_alert(
    state: &AppState,
    auth: &Require<MonitoringManage>,
    id: Id<Alert>,
    to: AlertState,
    action: Action,
) -> ApiResult<Json<Alert>> {
    let now = Timestamp::now();
    let mut announcements = Announcements::default();
    let mut tx = state.store.begin().await?;
    let before = alerts::get(&mut tx, auth.account(), id).await?;
    if !alerting::change_state(
        &mut tx,
        auth.account(),
        &before,
        to,
        auth.principal.user,
        (to == AlertState::Resolved).then_some(ResolvedReason::Manual),
        now,
        &mut announcements,
    )
    .await?
    {
        return Err(ApiError::Conflict(format!(
            "the alert is {}",
            before.state.as_str()
        )));
    }
    let after = alerts::get(&mut tx, auth.account(), id).await?;
    tx.record(auth.changed(action, &before, &after)).await?;
    tx.commit().await?;
    announcements.send(&state.bus).await;
    Ok(Json(after))
}

/// Acknowledge a firing alert.
#[utoipa::path(post, path = "/alerts/{id}/acknowledge", tag = "alerts", params(("id" = String, Path)),
    responses((status = 200, body = Alert)))]
async fn acknowledge_alert(
    State(state): State<AppState>,
    auth: Require<MonitoringManage>,
    AppPath(id): AppPath<Id<Alert>>,
) -> ApiResult<Json<Alert>> {
    move_alert(
        &state,
        &auth,
        id,
        AlertState::Acknowledged,
        Action::AlertAcknowledge,
    )
    .await
}

/// Resolve an alert by hand (metric alerts also resolve on their own).
#[utoipa::path(post, path = "/alerts/{id}/resolve", tag = "alerts", params(("id" = String, Path)),
    responses((status = 200, body = Alert)))]
async fn resolve_alert(
    State(state): State<AppState>,
    auth: Require<MonitoringManage>,
    AppPath(id): AppPath<Id<Alert>>,
) -> ApiResult<Json<Alert>> {
    move_alert(
        &state,
        &auth,
        id,
        AlertState::Resolved,
        Action::AlertResolve,
    )
    .await
}

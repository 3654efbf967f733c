//! `/alert-rules` and `/alerts` (SPEC 7.3).

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;
use spog_core::alerts::{
    Alert, AlertReason, AlertRule, AlertState, Condition, ResolvedReason, RuleBody,
};
use spog_core::audit::Action;
use spog_core::model::{Host, Organization};
use spog_core::page::{self, Page};
use spog_core::{Id, Timestamp};
use spog_store::alerting::{alerts, rules};
use spog_store::identity::{hosts, organizations};
use spog_store::{Conn, StoreError, channels};
use utoipa::IntoParams;
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
        .routes(routes!(super::channels::preview::preview_rule))
        .routes(routes!(list_alerts))
        .routes(routes!(get_alert))
        .routes(routes!(acknowledge_alert))
        .routes(routes!(resolve_alert))
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
    let rule = body.create(
        Id::new(),
        Timestamp::now(),
        state.config.metric_no_data_after,
    )?;
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
    let rule = body.update(&before, Timestamp::now())?;
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

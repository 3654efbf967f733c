use spog_core::alerts::{Alert, AlertReason, AlertRule, AlertState, Operator, ResolvedReason};
use spog_core::metrics::Labels;
use spog_core::model::{Account, Host, Organization, User};
use spog_core::notification::Severity;
use spog_core::page::{Cursor, Page, key_int, key_text};
use spog_core::{Id, Timestamp};

use crate::error::Found;
use crate::rows::{at, from_json, id, json_text, opt_at, opt_id};
use crate::{Conn, Sql, StoreError, StoreResult};

const COLUMNS: &str = "id, organization_id, rule_id, rule_name, kind, reason, severity, state, summary, host_id, hostname, \
     metric, labels, value, threshold, operator, source_event_id, fired_at, acknowledged_at, acknowledged_by, resolved_at, \
     resolved_reason, updated_at, suppressed_by, notified_at";

#[derive(sqlx::FromRow)]
struct AlertRow {
    id: String,
    organization_id: String,
    rule_id: Option<String>,
    rule_name: String,
    kind: String,
    reason: String,
    severity: String,
    state: String,
    summary: String,
    host_id: Option<String>,
    hostname: Option<String>,
    metric: Option<String>,
    labels: String,
    value: Option<f64>,
    threshold: Option<f64>,
    operator: Option<String>,
    source_event_id: Option<String>,
    fired_at: i64,
    acknowledged_at: Option<i64>,
    acknowledged_by: Option<String>,
    resolved_at: Option<i64>,
    resolved_reason: Option<String>,
    updated_at: i64,
    suppressed_by: String,
    notified_at: Option<i64>,
}

impl TryFrom<AlertRow> for Alert {
    type Error = StoreError;
    fn try_from(row: AlertRow) -> StoreResult<Self> {
        let corrupt = |what: &str| StoreError::Corrupt(format!("alert: {what}"));
        Ok(Alert {
            id: id(&row.id)?,
            organization_id: id(&row.organization_id)?,
            rule_id: opt_id(row.rule_id.as_deref())?,
            rule_name: row.rule_name,
            kind: row.kind,
            reason: AlertReason::parse(&row.reason).ok_or_else(|| corrupt("reason"))?,
            severity: Severity::parse(&row.severity).ok_or_else(|| corrupt("severity"))?,
            state: AlertState::parse(&row.state).ok_or_else(|| corrupt("state"))?,
            summary: row.summary,
            host_id: opt_id(row.host_id.as_deref())?,
            hostname: row.hostname,
            metric: row.metric,
            labels: from_json(&row.labels)?,
            value: row.value,
            threshold: row.threshold,
            operator: row.operator.as_deref().and_then(Operator::parse),
            source_event_id: row.source_event_id,
            fired_at: at(row.fired_at),
            acknowledged_at: opt_at(row.acknowledged_at),
            acknowledged_by: opt_id(row.acknowledged_by.as_deref())?,
            resolved_at: opt_at(row.resolved_at),
            resolved_reason: row
                .resolved_reason
                .as_deref()
                .map(|r| ResolvedReason::parse(r).ok_or_else(|| corrupt("resolved_reason")))
                .transpose()?,
            updated_at: at(row.updated_at),
            suppressed_by: from_json(&row.suppressed_by)?,
            notified_at: opt_at(row.notified_at),
        })
    }
}

/// A new firing alert of `rule`, filled in by the caller (summary, host, metric figures).
pub fn firing(rule: &AlertRule, summary: String, now: Timestamp) -> Alert {
    let (kind, reason) = match rule.condition {
        spog_core::alerts::Condition::Event { .. } => ("event", AlertReason::Event),
        spog_core::alerts::Condition::Metric { .. } => ("metric", AlertReason::Threshold),
    };
    Alert {
        id: Id::new(),
        organization_id: rule.organization_id,
        rule_id: Some(rule.id),
        rule_name: rule.name.clone(),
        kind: kind.to_owned(),
        reason,
        severity: rule.severity,
        state: AlertState::Firing,
        summary,
        host_id: None,
        hostname: None,
        metric: None,
        labels: Labels::new(),
        value: None,
        threshold: None,
        operator: None,
        source_event_id: None,
        fired_at: now,
        acknowledged_at: None,
        acknowledged_by: None,
        resolved_at: None,
        resolved_reason: None,
        updated_at: now,
        suppressed_by: Vec::new(),
        notified_at: None,
    }
}

/// Stores a new alert; `Conflict` if its metric rule already has an open alert for the series.
#[tracing::instrument(name = "alerting::alerts::insert", skip_all, fields(account = %account, alert = %alert.id))]
pub async fn insert(conn: &mut Conn, account: Id<Account>, alert: &Alert) -> StoreResult<()> {
    let mut sql = Sql::new(&format!(
        "INSERT INTO alerts (account_id, held, {COLUMNS}) VALUES ("
    ));
    // Suppressed and not notified: it waits for its silences to end.
    let held = !alert.suppressed_by.is_empty() && alert.notified_at.is_none();
    sql.bind(account.to_string())
        .push(", ")
        .bind(i64::from(held))
        .push(", ")
        .bind(alert.id.to_string())
        .push(", ")
        .bind(alert.organization_id.to_string())
        .push(", ")
        .bind(alert.rule_id.map(|r| r.to_string()))
        .push(", ")
        .bind(alert.rule_name.clone())
        .push(", ")
        .bind(alert.kind.clone())
        .push(", ")
        .bind(alert.reason.as_str())
        .push(", ")
        .bind(alert.severity.as_str())
        .push(", ")
        .bind(alert.state.as_str())
        .push(", ")
        .bind(alert.summary.clone())
        .push(", ")
        .bind(alert.host_id.map(|h| h.to_string()))
        .push(", ")
        .bind(alert.hostname.clone())
        .push(", ")
        .bind(alert.metric.clone())
        .push(", ")
        .bind(json_text(&alert.labels))
        .push(", ")
        .bind_double(alert.value)
        .push(", ")
        .bind_double(alert.threshold)
        .push(", ")
        .bind(alert.operator.map(|o| o.as_str()))
        .push(", ")
        .bind(alert.source_event_id.clone())
        .push(", ")
        .bind(alert.fired_at.micros())
        .push(", NULL, NULL, NULL, NULL, ")
        .bind(alert.updated_at.micros())
        .push(", ")
        .bind(json_text(&alert.suppressed_by))
        .push(", ")
        .bind(alert.notified_at.map(|t| t.micros()))
        .push(")");
    sql.execute(conn).await.map_err(|e| match e {
        StoreError::Database(db) => {
            StoreError::on_unique(db, "the rule already has an open alert for this series")
        }
        other => other,
    })?;
    Ok(())
}

#[tracing::instrument(name = "alerting::alerts::get", skip_all, fields(account = %account, alert = %alert))]
pub async fn get(conn: &mut Conn, account: Id<Account>, alert: Id<Alert>) -> StoreResult<Alert> {
    let mut sql = Sql::new(&format!("SELECT {COLUMNS} FROM alerts WHERE account_id = "));
    sql.bind(account.to_string())
        .push(" AND id = ")
        .bind(alert.to_string());
    sql.fetch_optional::<AlertRow>(conn)
        .await
        .found()?
        .try_into()
}

/// The open (firing or acknowledged) alert of a metric rule for a series of a host.
#[tracing::instrument(name = "alerting::alerts::open_for", skip_all, fields(rule = %rule, host = %host))]
pub async fn open_for(
    conn: &mut Conn,
    rule: Id<AlertRule>,
    host: Id<Host>,
    labels: &Labels,
) -> StoreResult<Option<Alert>> {
    let mut sql = Sql::new(&format!("SELECT {COLUMNS} FROM alerts WHERE rule_id = "));
    sql.bind(rule.to_string())
        .push(" AND host_id = ")
        .bind(host.to_string())
        .push(" AND labels = ")
        .bind(json_text(labels))
        .push(" AND state <> 'resolved' AND kind = 'metric'");
    sql.fetch_optional::<AlertRow>(conn)
        .await?
        .map(Alert::try_from)
        .transpose()
}

/// What `GET /alerts` narrows the list to; every filter is optional.
#[derive(Clone, Copy, Debug, Default)]
pub struct Filter {
    pub state: Option<AlertState>,
    pub organization: Option<Id<Organization>>,
    pub rule: Option<Id<AlertRule>>,
    pub host: Option<Id<Host>>,
    pub reason: Option<AlertReason>,
}

/// Newest first.
#[tracing::instrument(name = "alerting::alerts::list", skip_all, fields(account = %account, filter = ?filter))]
pub async fn list(
    conn: &mut Conn,
    account: Id<Account>,
    filter: Filter,
    limit: u32,
    cursor: Option<&str>,
) -> StoreResult<Page<Alert>> {
    let text = |id: Option<String>| id.unwrap_or_default();
    let scope = Cursor::scope(&[
        &account.to_string(),
        "alerts",
        filter.state.map(|s| s.as_str()).unwrap_or_default(),
        &text(filter.organization.map(|o| o.to_string())),
        &text(filter.rule.map(|r| r.to_string())),
        &text(filter.host.map(|h| h.to_string())),
        filter.reason.map(|r| r.as_str()).unwrap_or_default(),
    ]);
    let after = scope.decode(cursor)?;
    let mut sql = Sql::new(&format!("SELECT {COLUMNS} FROM alerts WHERE account_id = "));
    sql.bind(account.to_string());
    if let Some(state) = filter.state {
        sql.push(" AND state = ").bind(state.as_str());
    }
    if let Some(organization) = filter.organization {
        sql.push(" AND organization_id = ")
            .bind(organization.to_string());
    }
    if let Some(rule) = filter.rule {
        sql.push(" AND rule_id = ").bind(rule.to_string());
    }
    if let Some(host) = filter.host {
        sql.push(" AND host_id = ").bind(host.to_string());
    }
    if let Some(reason) = filter.reason {
        sql.push(" AND reason = ").bind(reason.as_str());
    }
    if let Some(key) = after {
        sql.push(" AND (fired_at, id) < (")
            .bind(key_int(&key, 0)?)
            .push(", ")
            .bind(key_text(&key, 1)?)
            .push(")");
    }
    sql.push(" ORDER BY fired_at DESC, id DESC LIMIT ")
        .bind(i64::from(limit) + 1);
    let alerts = sql
        .fetch_all::<AlertRow>(conn)
        .await?
        .into_iter()
        .map(Alert::try_from)
        .collect::<StoreResult<Vec<_>>>()?;
    Ok(Page::from_rows(alerts, limit, &scope, |a| {
        vec![a.fired_at.micros().into(), a.id.to_string().into()]
    }))
}

/// How many of the account's alerts are in `state`.
#[tracing::instrument(name = "alerting::alerts::count", skip_all, fields(account = %account))]
pub async fn count(conn: &mut Conn, account: Id<Account>, state: AlertState) -> StoreResult<i64> {
    Ok(
        sqlx::query_scalar("SELECT COUNT(*) FROM alerts WHERE account_id = $1 AND state = $2")
            .bind(account.to_string())
            .bind(state.as_str())
            .fetch_one(conn)
            .await?,
    )
}

/// Moves an alert to `to` if it is in one of `from`; returns whether it moved. A resolved
/// alert keeps `resolved_reason`.
#[allow(clippy::too_many_arguments)]
#[tracing::instrument(name = "alerting::alerts::transition", skip_all, fields(account = %account, alert = %alert, by = ?by))]
pub async fn transition(
    conn: &mut Conn,
    account: Id<Account>,
    alert: Id<Alert>,
    from: &[AlertState],
    to: AlertState,
    by: Option<Id<User>>,
    resolved_reason: Option<ResolvedReason>,
    now: Timestamp,
) -> StoreResult<bool> {
    let mut sql = Sql::new("UPDATE alerts SET state = ");
    sql.bind(to.as_str())
        .push(", updated_at = ")
        .bind(now.micros());
    match to {
        AlertState::Acknowledged => {
            sql.push(", acknowledged_at = ")
                .bind(now.micros())
                .push(", acknowledged_by = ")
                .bind(by.map(|u| u.to_string()));
        }
        AlertState::Resolved => {
            sql.push(", resolved_at = ")
                .bind(now.micros())
                .push(", resolved_reason = ")
                .bind(resolved_reason.map(|r| r.as_str()));
        }
        AlertState::Firing => {}
    }
    sql.push(" WHERE account_id = ")
        .bind(account.to_string())
        .push(" AND id = ")
        .bind(alert.to_string())
        .push(" AND state IN ")
        .bind_list(from.iter().map(|s| s.as_str()));
    Ok(sql.execute(conn).await?.rows_affected() == 1)
}

/// Up to `limit` alerts resolved before `before`, in any account, oldest first.
#[tracing::instrument(name = "alerting::alerts::resolved_before", skip_all)]
pub async fn resolved_before(
    conn: &mut Conn,
    before: Timestamp,
    limit: u32,
) -> StoreResult<Vec<(Id<Account>, Id<Alert>)>> {
    let mut sql = Sql::new(
        "SELECT account_id, id FROM alerts WHERE resolved_at IS NOT NULL AND resolved_at < ",
    );
    sql.bind(before.micros())
        .push(" ORDER BY resolved_at LIMIT ")
        .bind(i64::from(limit));
    let rows: Vec<(String, String)> = sql.fetch_all(conn).await?;
    rows.iter()
        .map(|(account, alert)| Ok((id(account)?, id(alert)?)))
        .collect()
}

/// Deletes a resolved alert; false when it was gone already (or is not resolved).
#[tracing::instrument(name = "alerting::alerts::delete_resolved", skip_all, fields(account = %account, alert = %alert))]
pub async fn delete_resolved(
    conn: &mut Conn,
    account: Id<Account>,
    alert: Id<Alert>,
) -> StoreResult<bool> {
    let mut sql = Sql::new("DELETE FROM alerts WHERE account_id = ");
    sql.bind(account.to_string())
        .push(" AND id = ")
        .bind(alert.to_string())
        .push(" AND state = 'resolved'");
    Ok(sql.execute(conn).await?.rows_affected() == 1)
}

/// Up to `limit` alerts of an organization that a silence held back from notifying.
#[tracing::instrument(name = "alerting::alerts::held", skip_all, fields(account = %account, organization = %organization))]
pub async fn held(
    conn: &mut Conn,
    account: Id<Account>,
    organization: Id<Organization>,
    limit: u32,
) -> StoreResult<Vec<Alert>> {
    let mut sql = Sql::new(&format!("SELECT {COLUMNS} FROM alerts WHERE account_id = "));
    sql.bind(account.to_string())
        .push(" AND organization_id = ")
        .bind(organization.to_string())
        .push(" AND held = 1 ORDER BY fired_at, id LIMIT ")
        .bind(i64::from(limit));
    sql.fetch_all::<AlertRow>(conn)
        .await?
        .into_iter()
        .map(Alert::try_from)
        .collect()
}

/// Up to `limit` organizations with held alerts, in any account.
#[tracing::instrument(name = "alerting::alerts::organizations_holding", skip_all)]
pub async fn organizations_holding(
    conn: &mut Conn,
    limit: u32,
) -> StoreResult<Vec<(Id<Account>, Id<Organization>)>> {
    let mut sql =
        Sql::new("SELECT DISTINCT account_id, organization_id FROM alerts WHERE held = 1 LIMIT ");
    sql.bind(i64::from(limit));
    let rows: Vec<(String, String)> = sql.fetch_all(conn).await?;
    rows.iter()
        .map(|(account, organization)| Ok((id(account)?, id(organization)?)))
        .collect()
}

/// Stops holding an alert; `notified_at` marks that it notified now. False when another
/// instance released it first.
#[tracing::instrument(name = "alerting::alerts::release", skip_all, fields(account = %account, alert = %alert))]
pub async fn release(
    conn: &mut Conn,
    account: Id<Account>,
    alert: Id<Alert>,
    notified_at: Option<Timestamp>,
) -> StoreResult<bool> {
    let mut sql = Sql::new("UPDATE alerts SET held = 0, notified_at = ");
    sql.bind(notified_at.map(|t| t.micros()))
        .push(" WHERE account_id = ")
        .bind(account.to_string())
        .push(" AND id = ")
        .bind(alert.to_string())
        .push(" AND held = 1");
    Ok(sql.execute(conn).await?.rows_affected() == 1)
}

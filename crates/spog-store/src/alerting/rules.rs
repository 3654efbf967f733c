use serde_json::{Map, Value};
use spog_core::alerts::{AlertRule, Condition, Operator};
use spog_core::events::EventType;
use spog_core::model::{Account, Organization};
use spog_core::notification::Severity;
use spog_core::page::Page;
use spog_core::{Id, Timestamp};

use crate::by_organization::{self, Table};
use crate::rows::{at, flag, from_json, id, json_text, opt_at};
use crate::{Conn, Sql, StoreError, StoreResult};

const TABLE: Table = Table {
    name: "alert_rules",
    columns: COLUMNS,
    cursor_scope: "alert_rules",
};
const DUPLICATE: &str = "an alert rule with this name already exists in the organization";
const COLUMNS: &str = "id, organization_id, name, kind, event_types, match_fields, metric, operator, threshold, \
     for_seconds, host_ids, labels, no_data_seconds, severity, channel_ids, enabled, enabled_since, cooldown_seconds, \
     created_at, updated_at";

#[derive(sqlx::FromRow)]
struct RuleRow {
    id: String,
    organization_id: String,
    name: String,
    kind: String,
    event_types: Option<String>,
    match_fields: Option<String>,
    metric: Option<String>,
    operator: Option<String>,
    threshold: Option<f64>,
    for_seconds: Option<i64>,
    host_ids: Option<String>,
    labels: Option<String>,
    no_data_seconds: i64,
    severity: String,
    channel_ids: String,
    enabled: i64,
    enabled_since: Option<i64>,
    cooldown_seconds: i64,
    created_at: i64,
    updated_at: i64,
}

fn corrupt(what: &str) -> StoreError {
    StoreError::Corrupt(format!("alert rule: {what}"))
}

impl TryFrom<RuleRow> for AlertRule {
    type Error = StoreError;
    fn try_from(row: RuleRow) -> StoreResult<Self> {
        let condition = match row.kind.as_str() {
            "event" => {
                let names: Vec<String> = from_json(row.event_types.as_deref().unwrap_or("[]"))?;
                let event_types = names
                    .iter()
                    .map(|n| EventType::from_name(n).ok_or_else(|| corrupt("event type")))
                    .collect::<StoreResult<Vec<_>>>()?;
                let matches: Map<String, Value> =
                    from_json(row.match_fields.as_deref().unwrap_or("{}"))?;
                Condition::Event {
                    event_types,
                    matches,
                }
            }
            "metric" => Condition::Metric {
                metric: row.metric.ok_or_else(|| corrupt("metric"))?,
                operator: row
                    .operator
                    .as_deref()
                    .and_then(Operator::parse)
                    .ok_or_else(|| corrupt("operator"))?,
                threshold: row.threshold.ok_or_else(|| corrupt("threshold"))?,
                for_seconds: row.for_seconds.unwrap_or(0),
                host_ids: from_json(row.host_ids.as_deref().unwrap_or("[]"))?,
                labels: from_json(row.labels.as_deref().unwrap_or("{}"))?,
                no_data_seconds: row.no_data_seconds,
            },
            other => return Err(corrupt(other)),
        };
        Ok(AlertRule {
            id: id(&row.id)?,
            organization_id: id(&row.organization_id)?,
            name: row.name,
            condition,
            severity: Severity::parse(&row.severity).ok_or_else(|| corrupt("severity"))?,
            channel_ids: from_json(&row.channel_ids)?,
            enabled: flag(row.enabled),
            enabled_since: opt_at(row.enabled_since),
            cooldown_seconds: row.cooldown_seconds,
            created_at: at(row.created_at),
            updated_at: at(row.updated_at),
        })
    }
}

/// Binds every column of `rule` after `id, account_id` (in [`COLUMNS`] order).
fn bind_rule(sql: &mut Sql, rule: &AlertRule) {
    let (kind, event_types, matches, metric, operator, threshold, for_seconds, host_ids) =
        match &rule.condition {
            Condition::Event {
                event_types,
                matches,
            } => {
                let names: Vec<&str> = event_types.iter().map(|t| t.as_str()).collect();
                (
                    "event",
                    Some(json_text(&names)),
                    Some(json_text(matches)),
                    None,
                    None,
                    None,
                    None,
                    None,
                )
            }
            Condition::Metric {
                metric,
                operator,
                threshold,
                for_seconds,
                host_ids,
                ..
            } => (
                "metric",
                None,
                None,
                Some(metric.clone()),
                Some(operator.as_str()),
                Some(*threshold),
                Some(*for_seconds),
                Some(json_text(host_ids)),
            ),
        };
    let (labels, no_data_seconds) = match &rule.condition {
        Condition::Metric {
            labels,
            no_data_seconds,
            ..
        } => (Some(json_text(labels)), *no_data_seconds),
        Condition::Event { .. } => (None, 0),
    };
    sql.bind(rule.organization_id.to_string())
        .push(", ")
        .bind(rule.name.clone())
        .push(", ")
        .bind(kind)
        .push(", ")
        .bind(event_types)
        .push(", ")
        .bind(matches)
        .push(", ")
        .bind(metric)
        .push(", ")
        .bind(operator)
        .push(", ")
        .bind_double(threshold)
        .push(", ")
        .bind(for_seconds)
        .push(", ")
        .bind(host_ids)
        .push(", ")
        .bind(labels)
        .push(", ")
        .bind(no_data_seconds)
        .push(", ")
        .bind(rule.severity.as_str())
        .push(", ")
        .bind(json_text(&rule.channel_ids))
        .push(", ")
        .bind(i64::from(rule.enabled))
        .push(", ")
        .bind(rule.enabled_since.map(Timestamp::micros))
        .push(", ")
        .bind(rule.cooldown_seconds)
        .push(", ")
        .bind(rule.created_at.micros())
        .push(", ")
        .bind(rule.updated_at.micros());
}

#[tracing::instrument(name = "alerting::rules::create", skip_all, fields(account = %account, rule = %rule.id))]
pub async fn create(conn: &mut Conn, account: Id<Account>, rule: &AlertRule) -> StoreResult<()> {
    let mut sql = Sql::new(&format!(
        "INSERT INTO alert_rules (account_id, {COLUMNS}) VALUES ("
    ));
    sql.bind(account.to_string())
        .push(", ")
        .bind(rule.id.to_string())
        .push(", ");
    bind_rule(&mut sql, rule);
    sql.push(")");
    sql.execute(conn).await.map_err(|e| match e {
        StoreError::Database(db) => StoreError::on_unique(db, DUPLICATE),
        other => other,
    })?;
    Ok(())
}

/// Replaces every field of the rule (the caller read and changed it in this transaction).
#[tracing::instrument(name = "alerting::rules::update", skip_all, fields(account = %account, rule = %rule.id))]
pub async fn update(conn: &mut Conn, account: Id<Account>, rule: &AlertRule) -> StoreResult<()> {
    let mut sql = Sql::new("UPDATE alert_rules SET (");
    sql.push(COLUMNS.trim_start_matches("id, ")).push(") = (");
    bind_rule(&mut sql, rule);
    sql.push(") WHERE account_id = ")
        .bind(account.to_string())
        .push(" AND id = ")
        .bind(rule.id.to_string());
    let done = sql.execute(conn).await.map_err(|e| match e {
        StoreError::Database(db) => StoreError::on_unique(db, DUPLICATE),
        other => other,
    })?;
    if done.rows_affected() == 0 {
        return Err(StoreError::NotFound);
    }
    Ok(())
}

#[tracing::instrument(name = "alerting::rules::get", skip_all, fields(account = %account, rule = %rule))]
pub async fn get(
    conn: &mut Conn,
    account: Id<Account>,
    rule: Id<AlertRule>,
) -> StoreResult<AlertRule> {
    by_organization::one::<RuleRow>(conn, &TABLE, account, rule.to_string())
        .await?
        .try_into()
}

#[tracing::instrument(name = "alerting::rules::list", skip_all, fields(account = %account, organization = ?organization))]
pub async fn list(
    conn: &mut Conn,
    account: Id<Account>,
    organization: Option<Id<Organization>>,
    limit: u32,
    cursor: Option<&str>,
) -> StoreResult<Page<AlertRule>> {
    let page = by_organization::page(
        conn,
        &TABLE,
        account,
        organization,
        limit,
        cursor,
        |row: RuleRow| AlertRule::try_from(row),
        |r| r.id.to_string(),
    );
    page.await
}

#[tracing::instrument(name = "alerting::rules::delete", skip_all, fields(account = %account, rule = %rule))]
pub async fn delete(conn: &mut Conn, account: Id<Account>, rule: Id<AlertRule>) -> StoreResult<()> {
    let done = sqlx::query("DELETE FROM alert_rules WHERE account_id = $1 AND id = $2")
        .bind(account.to_string())
        .bind(rule.to_string())
        .execute(conn)
        .await?;
    if done.rows_affected() == 0 {
        return Err(StoreError::NotFound);
    }
    Ok(())
}

/// Enabled rules of `kind` in the organization (event rules are few per organization).
#[tracing::instrument(name = "alerting::rules::enabled", skip_all, fields(account = %account, organization = %organization))]
pub async fn enabled(
    conn: &mut Conn,
    account: Id<Account>,
    organization: Id<Organization>,
    kind: &str,
) -> StoreResult<Vec<AlertRule>> {
    let mut sql = Sql::new(&format!(
        "SELECT {COLUMNS} FROM alert_rules WHERE account_id = "
    ));
    sql.bind(account.to_string())
        .push(" AND organization_id = ")
        .bind(organization.to_string())
        .push(" AND kind = ")
        .bind(kind.to_owned())
        .push(" AND enabled = 1 ORDER BY id");
    sql.fetch_all::<RuleRow>(conn)
        .await?
        .into_iter()
        .map(AlertRule::try_from)
        .collect()
}

/// Enabled metric rules of every account that watch for silence (`no_data_seconds` > 0),
/// after `after` in id order, at most `limit`: the no-data check pages through them.
#[tracing::instrument(name = "alerting::rules::watching_silence", skip_all)]
pub async fn watching_silence(
    conn: &mut Conn,
    after: Option<Id<AlertRule>>,
    limit: u32,
) -> StoreResult<Vec<(Id<Account>, AlertRule)>> {
    #[derive(sqlx::FromRow)]
    struct Row {
        account_id: String,
        #[sqlx(flatten)]
        rule: RuleRow,
    }
    let mut sql = Sql::new(&format!(
        "SELECT account_id, {COLUMNS} FROM alert_rules WHERE kind = 'metric' AND enabled = 1 AND no_data_seconds > 0"
    ));
    if let Some(after) = after {
        sql.push(" AND id > ").bind(after.to_string());
    }
    sql.push(" ORDER BY id LIMIT ").bind(i64::from(limit));
    sql.fetch_all::<Row>(conn)
        .await?
        .into_iter()
        .map(|row| Ok((id(&row.account_id)?, AlertRule::try_from(row.rule)?)))
        .collect()
}

/// Claims the right to notify for `rule` at `now`: false while its cooldown runs. Within the
/// caller's transaction, so concurrent firings of one rule notify once.
#[tracing::instrument(name = "alerting::rules::claim_notification", skip_all, fields(rule = %rule.id))]
pub async fn claim_notification(
    conn: &mut Conn,
    rule: &AlertRule,
    now: Timestamp,
) -> StoreResult<bool> {
    let done = sqlx::query(
        "UPDATE alert_rules SET last_fired_at = $2 WHERE id = $1 \
         AND (last_fired_at IS NULL OR last_fired_at <= $3)",
    )
    .bind(rule.id.to_string())
    .bind(now.micros())
    .bind(now.micros() - rule.cooldown_seconds * 1_000_000)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

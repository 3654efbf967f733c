//! Since when each metric rule's condition has held for each series (host, labels), and
//! whether the series is silent (its no-data alert stands).

use spog_core::Id;
use spog_core::Timestamp;
use spog_core::alerts::AlertRule;
use spog_core::metrics::Labels;
use spog_core::model::{Account, Host};

use crate::rows::{from_json, id, json_text};
use crate::{Conn, Sql, StoreResult};

#[derive(Clone, Debug, PartialEq)]
pub struct MetricState {
    pub rule: Id<AlertRule>,
    pub host: Id<Host>,
    pub labels: Labels,
    pub breaching_since: Option<Timestamp>,
    pub last_value: f64,
    pub last_at: Timestamp,
    /// Set while the series is silent and its no-data alert stands; only
    /// [`claim_no_data`] sets it and [`clear_no_data`] clears it.
    pub no_data_since: Option<Timestamp>,
}

const COLUMNS: &str =
    "rule_id, host_id, labels, breaching_since, last_value, last_at, no_data_since";

#[derive(sqlx::FromRow)]
struct StateRecord {
    rule_id: String,
    host_id: String,
    labels: String,
    breaching_since: Option<i64>,
    last_value: f64,
    last_at: i64,
    no_data_since: Option<i64>,
}

impl TryFrom<StateRecord> for MetricState {
    type Error = crate::StoreError;
    fn try_from(row: StateRecord) -> StoreResult<Self> {
        Ok(MetricState {
            rule: id(&row.rule_id)?,
            host: id(&row.host_id)?,
            labels: from_json(&row.labels)?,
            breaching_since: row.breaching_since.map(Timestamp::from_micros),
            last_value: row.last_value,
            last_at: Timestamp::from_micros(row.last_at),
            no_data_since: row.no_data_since.map(Timestamp::from_micros),
        })
    }
}

/// The states of every series of `rules` for `host`.
#[tracing::instrument(name = "alerting::metric_states::for_host", skip_all, fields(host = %host))]
pub async fn for_host(
    conn: &mut Conn,
    host: Id<Host>,
    rules: &[Id<AlertRule>],
) -> StoreResult<Vec<MetricState>> {
    let mut sql = Sql::new(&format!(
        "SELECT {COLUMNS} FROM alert_metric_states WHERE host_id = "
    ));
    sql.bind(host.to_string())
        .push(" AND rule_id IN ")
        .bind_list(rules.iter().map(|r| r.to_string()));
    sql.fetch_all::<StateRecord>(conn)
        .await?
        .into_iter()
        .map(MetricState::try_from)
        .collect()
}

/// Writes the evaluation state of series (`breaching_since`, `last_value`, `last_at`); leaves
/// `no_data_since` as it is.
#[tracing::instrument(name = "alerting::metric_states::save", skip_all, fields(account = %account))]
pub async fn save(
    conn: &mut Conn,
    account: Id<Account>,
    states: &[MetricState],
) -> StoreResult<()> {
    for chunk in states.chunks(500) {
        let mut sql = Sql::new(
            "INSERT INTO alert_metric_states (rule_id, host_id, labels, account_id, breaching_since, last_value, last_at) VALUES ",
        );
        for (i, s) in chunk.iter().enumerate() {
            sql.push(if i == 0 { "(" } else { ", (" })
                .bind(s.rule.to_string())
                .push(", ")
                .bind(s.host.to_string())
                .push(", ")
                .bind(json_text(&s.labels))
                .push(", ")
                .bind(account.to_string())
                .push(", ")
                .bind(s.breaching_since.map(Timestamp::micros))
                .push(", ")
                .bind(s.last_value)
                .push(", ")
                .bind(s.last_at.micros())
                .push(")");
        }
        sql.push(
            " ON CONFLICT (rule_id, host_id, labels) DO UPDATE SET breaching_since = excluded.breaching_since, \
             last_value = excluded.last_value, last_at = excluded.last_at",
        );
        sql.execute(conn).await?;
    }
    Ok(())
}

/// Marks the series silent since `now` and ends its breach, unless it already is: true for
/// the caller that marked it, so one instance of several fires its no-data alert. A series
/// without a state gets one (`last_value`, `last_at`: its last sample, if any).
#[allow(clippy::too_many_arguments)]
#[tracing::instrument(name = "alerting::metric_states::claim_no_data", skip_all, fields(rule = %rule, host = %host))]
pub async fn claim_no_data(
    conn: &mut Conn,
    account: Id<Account>,
    rule: Id<AlertRule>,
    host: Id<Host>,
    labels: &Labels,
    last_value: f64,
    last_at: Timestamp,
    now: Timestamp,
) -> StoreResult<bool> {
    let mut sql = Sql::new(
        "INSERT INTO alert_metric_states (rule_id, host_id, labels, account_id, breaching_since, last_value, last_at, no_data_since) VALUES (",
    );
    sql.bind(rule.to_string())
        .push(", ")
        .bind(host.to_string())
        .push(", ")
        .bind(json_text(labels))
        .push(", ")
        .bind(account.to_string())
        .push(", NULL, ")
        .bind(last_value)
        .push(", ")
        .bind(last_at.micros())
        .push(", ")
        .bind(now.micros())
        .push(
            ") ON CONFLICT (rule_id, host_id, labels) DO UPDATE SET no_data_since = excluded.no_data_since, \
             breaching_since = NULL WHERE alert_metric_states.no_data_since IS NULL",
        );
    Ok(sql.execute(conn).await?.rows_affected() == 1)
}

/// Ends the silence of a series; true if it was silent (its no-data alert resolves).
#[tracing::instrument(name = "alerting::metric_states::clear_no_data", skip_all, fields(rule = %rule, host = %host))]
pub async fn clear_no_data(
    conn: &mut Conn,
    rule: Id<AlertRule>,
    host: Id<Host>,
    labels: &Labels,
) -> StoreResult<bool> {
    let mut sql = Sql::new("UPDATE alert_metric_states SET no_data_since = NULL WHERE rule_id = ");
    sql.bind(rule.to_string())
        .push(" AND host_id = ")
        .bind(host.to_string())
        .push(" AND labels = ")
        .bind(json_text(labels))
        .push(" AND no_data_since IS NOT NULL");
    Ok(sql.execute(conn).await?.rows_affected() == 1)
}

/// States whose condition has held since before `cutoff` (the alert evaluation job checks
/// whether their `for_seconds` has passed without a new sample): `(account, state)`.
#[tracing::instrument(name = "alerting::metric_states::breaching_since_before", skip_all)]
pub async fn breaching_since_before(
    conn: &mut Conn,
    cutoff: Timestamp,
) -> StoreResult<Vec<(Id<Account>, MetricState)>> {
    #[derive(sqlx::FromRow)]
    struct Row {
        account_id: String,
        #[sqlx(flatten)]
        state: StateRecord,
    }
    let mut sql = Sql::new(&format!(
        "SELECT account_id, {COLUMNS} FROM alert_metric_states \
         WHERE breaching_since IS NOT NULL AND breaching_since <= "
    ));
    sql.bind(cutoff.micros())
        .push(" ORDER BY rule_id, host_id, labels LIMIT 1000");
    let rows: Vec<Row> = sql.fetch_all(conn).await?;
    rows.into_iter()
        .map(|row| Ok((id(&row.account_id)?, row.state.try_into()?)))
        .collect()
}

/// Those of `hosts` whose series of `rule` with `labels` is marked silent.
#[tracing::instrument(name = "alerting::metric_states::silent_hosts", skip_all, fields(rule = %rule))]
pub async fn silent_hosts(
    conn: &mut Conn,
    rule: Id<AlertRule>,
    labels: &Labels,
    hosts: &[Id<Host>],
) -> StoreResult<std::collections::HashSet<Id<Host>>> {
    let mut sql = Sql::new("SELECT host_id FROM alert_metric_states WHERE rule_id = ");
    sql.bind(rule.to_string())
        .push(" AND labels = ")
        .bind(json_text(labels))
        .push(" AND no_data_since IS NOT NULL AND host_id IN ")
        .bind_list(hosts.iter().map(|h| h.to_string()));
    sql.fetch_all::<(String,)>(conn)
        .await?
        .iter()
        .map(|(host,)| id(host))
        .collect()
}

//! Which series a metric rule watches have fallen silent (SPEC 12.5), read from the stored
//! series (`metric_series`: one row per host, metric and labels, with its last sample).

use std::collections::HashSet;

use spog_core::alerts::{AlertRule, Condition, carries};
use spog_core::metrics::Labels;
use spog_core::model::{Account, Host};
use spog_core::{Id, Timestamp};

use crate::rows::{from_json, id};
use crate::{Conn, Sql, StoreResult};

/// A watched series whose last sample is older than the silence allowed.
#[derive(Clone, Debug, PartialEq)]
pub struct SilentSeries {
    pub host: Id<Host>,
    pub labels: Labels,
    pub last_value: f64,
    pub last_at: Timestamp,
}

/// Narrows `sql` (over `metric_series` as `alias`) to series carrying every label of
/// `wanted`. Labels are stored as canonical JSON (`{"a":"x","b":"y"}`), so a pair is there
/// exactly when `"k":"v"` (each JSON-encoded) stands between `{` or `,` and `,` or `}`: a
/// quote inside a value is escaped and cannot open such a match.
fn carrying(sql: &mut Sql, conn: &Conn, alias: &str, wanted: &Labels) {
    let contains = if conn.backend_name() == "SQLite" {
        "instr"
    } else {
        "strpos"
    };
    for (key, value) in wanted {
        let pair = format!(
            "{}:{}",
            serde_json::Value::from(key.as_str()),
            serde_json::Value::from(value.as_str())
        );
        sql.push(" AND (");
        for (i, (before, after)) in [("{", ","), ("{", "}"), (",", ","), (",", "}")]
            .into_iter()
            .enumerate()
        {
            if i > 0 {
                sql.push(" OR ");
            }
            sql.push(&format!("{contains}({alias}.labels, "))
                .bind(format!("{before}{pair}{after}"))
                .push(") > 0");
        }
        sql.push(")");
    }
}

/// Up to `limit` series of the rule's metric on the hosts it watches, carrying its labels,
/// with no sample since `cutoff` and no standing silence: the series that fall silent now.
#[tracing::instrument(name = "alerting::silent_series::silent_series", skip_all, fields(rule = %rule.id))]
pub async fn silent_series(
    conn: &mut Conn,
    account: Id<Account>,
    rule: &AlertRule,
    cutoff: Timestamp,
    limit: u32,
) -> StoreResult<Vec<SilentSeries>> {
    let Condition::Metric {
        metric,
        host_ids,
        labels,
        ..
    } = &rule.condition
    else {
        return Ok(Vec::new());
    };
    let mut sql = Sql::new(
        "SELECT s.host_id, s.labels, s.last_value, s.last_at FROM metric_series s \
         JOIN hosts h ON h.id = s.host_id WHERE s.account_id = ",
    );
    sql.bind(account.to_string())
        .push(" AND h.account_id = ")
        .bind(account.to_string())
        .push(" AND h.organization_id = ")
        .bind(rule.organization_id.to_string())
        .push(" AND s.metric = ")
        .bind(metric.clone())
        .push(" AND s.last_at < ")
        .bind(cutoff.micros());
    if !host_ids.is_empty() {
        sql.push(" AND s.host_id IN ")
            .bind_list(host_ids.iter().map(|h| h.to_string()));
    }
    carrying(&mut sql, conn, "s", labels);
    sql.push(
        " AND NOT EXISTS (SELECT 1 FROM alert_metric_states st WHERE st.rule_id = ",
    )
    .bind(rule.id.to_string())
    .push(
        " AND st.host_id = s.host_id AND st.labels = s.labels AND st.no_data_since IS NOT NULL) \
         ORDER BY s.host_id, s.labels LIMIT ",
    )
    .bind(i64::from(limit));
    let rows: Vec<(String, String, f64, i64)> = sql.fetch_all(conn).await?;
    let mut silent = Vec::with_capacity(rows.len());
    for (host, text, last_value, last_at) in rows {
        let series: Labels = from_json(&text)?;
        if carries(&series, labels) {
            silent.push(SilentSeries {
                host: id(&host)?,
                labels: series,
                last_value,
                last_at: Timestamp::from_micros(last_at),
            });
        }
    }
    Ok(silent)
}

/// Those of `hosts` that have a series of the rule's metric carrying its labels.
#[tracing::instrument(name = "alerting::silent_series::reporting", skip_all, fields(rule = %rule.id))]
pub async fn reporting(
    conn: &mut Conn,
    account: Id<Account>,
    rule: &AlertRule,
    hosts: &[Id<Host>],
) -> StoreResult<HashSet<Id<Host>>> {
    let Condition::Metric { metric, labels, .. } = &rule.condition else {
        return Ok(HashSet::new());
    };
    let mut sql = Sql::new("SELECT DISTINCT s.host_id FROM metric_series s WHERE s.account_id = ");
    sql.bind(account.to_string())
        .push(" AND s.metric = ")
        .bind(metric.clone())
        .push(" AND s.host_id IN ")
        .bind_list(hosts.iter().map(|h| h.to_string()));
    carrying(&mut sql, conn, "s", labels);
    let rows: Vec<(String,)> = sql.fetch_all(conn).await?;
    rows.iter().map(|(host,)| id(host)).collect()
}

/// When the series last had a sample, if it exists.
#[tracing::instrument(name = "alerting::silent_series::last_sample_at", skip_all, fields(host = %host))]
pub async fn last_sample_at(
    conn: &mut Conn,
    host: Id<Host>,
    metric: &str,
    labels: &Labels,
) -> StoreResult<Option<Timestamp>> {
    let mut sql = Sql::new("SELECT last_at FROM metric_series WHERE host_id = ");
    sql.bind(host.to_string())
        .push(" AND metric = ")
        .bind(metric.to_owned())
        .push(" AND labels = ")
        .bind(crate::rows::json_text(labels));
    Ok(sql
        .fetch_optional::<(i64,)>(conn)
        .await?
        .map(|(at,)| Timestamp::from_micros(at)))
}

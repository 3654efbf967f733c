//! Since when each metric rule's condition has held for each host.

use spog_core::Id;
use spog_core::Timestamp;
use spog_core::alerts::AlertRule;
use spog_core::model::{Account, Host};

use crate::rows::id;
use crate::{Conn, Sql, StoreResult};

#[derive(Clone, Debug, PartialEq)]
pub struct MetricState {
    pub rule: Id<AlertRule>,
    pub host: Id<Host>,
    pub breaching_since: Option<Timestamp>,
    pub last_value: f64,
    pub last_at: Timestamp,
}

type StateRow = (String, String, Option<i64>, f64, i64);

fn state((rule, host, since, value, at): StateRow) -> StoreResult<MetricState> {
    Ok(MetricState {
        rule: id(&rule)?,
        host: id(&host)?,
        breaching_since: since.map(Timestamp::from_micros),
        last_value: value,
        last_at: Timestamp::from_micros(at),
    })
}

/// The states of `rules` for `host`.
#[tracing::instrument(name = "alerting::metric_states::for_host", skip_all, fields(host = %host))]
pub async fn for_host(
    conn: &mut Conn,
    host: Id<Host>,
    rules: &[Id<AlertRule>],
) -> StoreResult<Vec<MetricState>> {
    let mut sql = Sql::new(
        "SELECT rule_id, host_id, breaching_since, last_value, last_at FROM alert_metric_states WHERE host_id = ",
    );
    sql.bind(host.to_string())
        .push(" AND rule_id IN ")
        .bind_list(rules.iter().map(|r| r.to_string()));
    sql.fetch_all::<StateRow>(conn)
        .await?
        .into_iter()
        .map(state)
        .collect()
}

#[tracing::instrument(name = "alerting::metric_states::save", skip_all, fields(account = %account))]
pub async fn save(
    conn: &mut Conn,
    account: Id<Account>,
    states: &[MetricState],
) -> StoreResult<()> {
    for chunk in states.chunks(500) {
        let mut sql = Sql::new(
            "INSERT INTO alert_metric_states (rule_id, host_id, account_id, breaching_since, last_value, last_at) VALUES ",
        );
        for (i, s) in chunk.iter().enumerate() {
            sql.push(if i == 0 { "(" } else { ", (" })
                .bind(s.rule.to_string())
                .push(", ")
                .bind(s.host.to_string())
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
            " ON CONFLICT (rule_id, host_id) DO UPDATE SET breaching_since = excluded.breaching_since, \
             last_value = excluded.last_value, last_at = excluded.last_at",
        );
        sql.execute(conn).await?;
    }
    Ok(())
}

/// States whose condition has held since before `cutoff` (the alert evaluation job checks
/// whether their `for_seconds` has passed without a new sample): `(account, state)`.
#[tracing::instrument(name = "alerting::metric_states::breaching_since_before", skip_all)]
pub async fn breaching_since_before(
    conn: &mut Conn,
    cutoff: Timestamp,
) -> StoreResult<Vec<(Id<Account>, MetricState)>> {
    let rows: Vec<(String, String, String, Option<i64>, f64, i64)> = sqlx::query_as(
        "SELECT account_id, rule_id, host_id, breaching_since, last_value, last_at FROM alert_metric_states \
         WHERE breaching_since IS NOT NULL AND breaching_since <= $1 ORDER BY rule_id, host_id LIMIT 1000",
    )
    .bind(cutoff.micros())
    .fetch_all(conn)
    .await?;
    rows.into_iter()
        .map(|(account, rule, host, since, value, at)| {
            Ok((id(&account)?, state((rule, host, since, value, at))?))
        })
        .collect()
}

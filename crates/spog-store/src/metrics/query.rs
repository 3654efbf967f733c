//! Reading series: a host's latest values, and one metric's series bucketed over a range,
//! from the raw samples or the one-minute rollups. Every read is keyed by the host (series)
//! or by series ids and a time range (samples, rollups): their primary keys, whatever the
//! statistics say.

use std::collections::HashMap;

use spog_core::metrics::Labels;
use spog_core::model::{Account, Host};
use spog_core::{FieldError, Id, Timestamp};

use super::{
    Latest, MAX_POINTS_PER_QUERY, MAX_SERIES_PER_HOST, MAX_SERIES_PER_QUERY, parse_labels,
};
use crate::{Conn, Sql, StoreError, StoreResult};

/// Where buckets are summed from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    /// Raw samples: any step, within the raw retention.
    Raw,
    /// One-minute rollups: each minute falls in the bucket holding its start (exact for steps
    /// of whole minutes).
    Rollups,
}

/// One metric's series on a host, bucketed.
#[derive(Clone, Debug)]
pub struct Query<'a> {
    pub metric: &'a str,
    /// Labels every series must carry (with these values); empty: all the metric's series.
    pub labels: &'a Labels,
    pub from: Timestamp,
    pub to: Timestamp,
    /// Bucket width in µs (positive); buckets start at multiples of it since the epoch.
    pub step: i64,
    pub source: Source,
}

/// The samples in `[at, at + step)`; buckets without any are left out.
#[derive(Clone, Debug, PartialEq)]
pub struct Bucket {
    pub at: Timestamp,
    /// The mean.
    pub value: f64,
    pub min: f64,
    pub max: f64,
    pub count: i64,
}

#[derive(Clone, Debug, PartialEq)]
pub struct SeriesPoints {
    pub labels: Labels,
    pub points: Vec<Bucket>,
}

/// A host's series with their newest samples, by metric and labels.
#[tracing::instrument(name = "metrics::latest", skip_all, fields(account = %account, host = %host))]
pub async fn latest(
    conn: &mut Conn,
    account: Id<Account>,
    host: Id<Host>,
) -> StoreResult<Vec<Latest>> {
    let mut sql =
        Sql::new("SELECT metric, labels, last_value, last_at FROM metric_series WHERE host_id = ");
    sql.bind(host.to_string())
        .push(" AND account_id = ")
        .bind(account.to_string())
        .push(" ORDER BY metric, labels LIMIT ")
        .bind(MAX_SERIES_PER_HOST as i64);
    sql.fetch_all::<(String, String, f64, i64)>(conn)
        .await?
        .into_iter()
        .map(|(metric, labels, value, at)| {
            Ok(Latest {
                metric,
                labels: parse_labels(&labels)?,
                value,
                at: Timestamp::from_micros(at),
            })
        })
        .collect()
}

/// The series of `query.metric` on `host` that carry `query.labels`, bucketed over
/// `[from, to)` with `from` moved back to its bucket's start, so that every bucket is whole.
/// Series without a sample in the range are left out. More than [`MAX_SERIES_PER_QUERY`]
/// matching series is `Invalid` naming `label`, more than [`MAX_POINTS_PER_QUERY`] buckets
/// over all of them `Invalid` naming `step`.
#[tracing::instrument(name = "metrics::query", skip_all, fields(account = %account, host = %host, metric = query.metric))]
pub async fn query(
    conn: &mut Conn,
    account: Id<Account>,
    host: Id<Host>,
    query: &Query<'_>,
) -> StoreResult<Vec<SeriesPoints>> {
    if query.step <= 0 {
        return Err(StoreError::Invalid(FieldError::new(
            "step",
            "must be positive",
        )));
    }
    let mut sql = Sql::new("SELECT id, labels FROM metric_series WHERE host_id = ");
    sql.bind(host.to_string())
        .push(" AND metric = ")
        .bind(query.metric.to_owned())
        .push(" AND account_id = ")
        .bind(account.to_string())
        .push(" ORDER BY labels");
    let mut series = Vec::new();
    for (id, labels) in sql.fetch_all::<(String, String)>(conn).await? {
        let labels = parse_labels(&labels)?;
        if query
            .labels
            .iter()
            .all(|(k, v)| labels.get(k).is_some_and(|have| have == v))
        {
            series.push((id, labels));
        }
    }
    if series.len() > MAX_SERIES_PER_QUERY {
        return Err(StoreError::Invalid(FieldError::new(
            "label",
            format!(
                "{} series match; narrow them to at most {MAX_SERIES_PER_QUERY} with label=KEY:VALUE",
                series.len()
            ),
        )));
    }
    let start = query.from.micros().div_euclid(query.step) * query.step;
    let buckets = ((query.to.micros() - start).max(0) + query.step - 1) / query.step;
    if (series.len() as i64).saturating_mul(buckets) > MAX_POINTS_PER_QUERY {
        return Err(StoreError::Invalid(FieldError::new(
            "step",
            format!(
                "{} series of {buckets} buckets exceed {MAX_POINTS_PER_QUERY} points; \
                 choose a larger step or narrow the series with label=KEY:VALUE",
                series.len()
            ),
        )));
    }
    if series.is_empty() {
        return Ok(Vec::new());
    }
    let (table, time, sum, min, max, count) = match query.source {
        Source::Raw => (
            "metric_samples",
            "at",
            "SUM(value)",
            "MIN(value)",
            "MAX(value)",
            "COUNT(*)",
        ),
        Source::Rollups => (
            "metric_rollups",
            "minute",
            "SUM(value_sum)",
            "MIN(value_min)",
            "MAX(value_max)",
            "CAST(SUM(samples) AS BIGINT)",
        ),
    };
    // Times at or after `start`, which is a multiple of the step: (t - start) / step floors.
    let mut sql = Sql::new("SELECT series_id, (");
    sql.push(time)
        .push(" - ")
        .bind(start)
        .push(") / ")
        .bind(query.step)
        .push(&format!(
            ", {sum}, {min}, {max}, {count} FROM {table} WHERE series_id IN "
        ))
        .bind_list(series.iter().map(|(id, _)| id.clone()))
        .push(&format!(" AND {time} >= "))
        .bind(start)
        .push(&format!(" AND {time} < "))
        .bind(query.to.micros())
        .push(" GROUP BY 1, 2 ORDER BY 1, 2");
    let rows: Vec<(String, i64, f64, f64, f64, i64)> = sql.fetch_all(conn).await?;
    let mut points: HashMap<String, Vec<Bucket>> = HashMap::with_capacity(series.len());
    for (series_id, index, sum, min, max, count) in rows {
        if count <= 0 {
            continue;
        }
        // Rounding may take a mean past the bucket's extremes (three samples of 0.1).
        let mean = (sum / count as f64).max(min).min(max);
        points.entry(series_id).or_default().push(Bucket {
            at: Timestamp::from_micros(start + index * query.step),
            value: mean,
            min,
            max,
            count,
        });
    }
    Ok(series
        .into_iter()
        .filter_map(|(id, labels)| {
            points
                .remove(&id)
                .map(|points| SeriesPoints { labels, points })
        })
        .collect())
}

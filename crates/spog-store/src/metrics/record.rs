//! Taking a batch of samples in the caller's transaction: the batch's series are created or
//! brought up to date, its samples inserted raw, and only those not stored before (a re-sent
//! sample counts once) are folded into the one-minute rollups. Every step is a few multi-row
//! statements, whatever the batch's size, in key order so concurrent batches lock alike.

use std::collections::{BTreeMap, HashMap};

use spog_core::model::{Account, Host};
use spog_core::{FieldError, Id};

use super::{MAX_SERIES_PER_HOST, MINUTE, Sample, labels_text};
use crate::{Conn, Sql, StoreError, StoreResult};

/// Rows per statement: a few thousand parameters, well within both backends' limits.
const CHUNK: usize = 500;

/// (metric, labels as stored)
type SeriesKey = (String, String);

/// Stores `samples` of `host` (validated by the caller); returns how many were new.
#[tracing::instrument(name = "metrics::record", skip_all, fields(account = %account, host = %host, samples = samples.len()))]
pub async fn record(
    conn: &mut Conn,
    account: Id<Account>,
    host: Id<Host>,
    samples: &[Sample],
) -> StoreResult<usize> {
    // Each series once, with its newest sample; each (series, at) once.
    let mut newest: BTreeMap<SeriesKey, (f64, i64)> = BTreeMap::new();
    let mut readings: BTreeMap<(SeriesKey, i64), f64> = BTreeMap::new();
    for sample in samples {
        let key = (sample.metric.clone(), labels_text(&sample.labels));
        let at = sample.at.micros();
        let last = newest.entry(key.clone()).or_insert((sample.value, at));
        if at > last.1 {
            *last = (sample.value, at);
        }
        readings.entry((key, at)).or_insert(sample.value);
    }
    if newest.is_empty() {
        return Ok(0);
    }
    check_series_bound(conn, account, host, &newest).await?;
    let ids = upsert_series(conn, account, host, &newest).await?;
    let rows: Vec<(&str, i64, f64)> = readings
        .iter()
        .filter_map(|((key, at), value)| ids.get(key).map(|id| (id.as_str(), *at, *value)))
        .collect();
    let inserted = insert_raw(conn, &rows).await?;
    let count = inserted.len();
    add_to_rollups(conn, inserted).await?;
    Ok(count)
}

/// Refuses a batch that would give the host more than [`MAX_SERIES_PER_HOST`] series.
async fn check_series_bound(
    conn: &mut Conn,
    account: Id<Account>,
    host: Id<Host>,
    batch: &BTreeMap<SeriesKey, (f64, i64)>,
) -> StoreResult<()> {
    let mut sql = Sql::new("SELECT metric, labels FROM metric_series WHERE host_id = ");
    sql.bind(host.to_string())
        .push(" AND account_id = ")
        .bind(account.to_string());
    let existing: Vec<SeriesKey> = sql.fetch_all(conn).await?;
    let existing: std::collections::HashSet<SeriesKey> = existing.into_iter().collect();
    let new = batch.keys().filter(|k| !existing.contains(*k)).count();
    if new > 0 && existing.len() + new > MAX_SERIES_PER_HOST {
        return Err(StoreError::Invalid(FieldError::new(
            "samples",
            format!(
                "would give the host more than {MAX_SERIES_PER_HOST} series (metric and labels)"
            ),
        )));
    }
    Ok(())
}

/// Creates the batch's new series and moves each one's latest value forward (never back);
/// returns every series' id.
async fn upsert_series(
    conn: &mut Conn,
    account: Id<Account>,
    host: Id<Host>,
    batch: &BTreeMap<SeriesKey, (f64, i64)>,
) -> StoreResult<HashMap<SeriesKey, String>> {
    let mut ids = HashMap::with_capacity(batch.len());
    let entries: Vec<_> = batch.iter().collect();
    for chunk in entries.chunks(CHUNK) {
        let mut sql = Sql::new(
            "INSERT INTO metric_series (id, account_id, host_id, metric, labels, last_value, last_at) VALUES ",
        );
        for (i, ((metric, labels), (value, at))) in chunk.iter().enumerate() {
            sql.push(if i == 0 { "(" } else { ", (" })
                .bind(uuid::Uuid::now_v7().to_string())
                .push(", ")
                .bind(account.to_string())
                .push(", ")
                .bind(host.to_string())
                .push(", ")
                .bind(metric.clone())
                .push(", ")
                .bind(labels.clone())
                .push(", ")
                .bind(*value)
                .push(", ")
                .bind(*at)
                .push(")");
        }
        sql.push(
            " ON CONFLICT (host_id, metric, labels) DO UPDATE SET \
             last_value = CASE WHEN excluded.last_at > metric_series.last_at \
             THEN excluded.last_value ELSE metric_series.last_value END, \
             last_at = CASE WHEN excluded.last_at > metric_series.last_at \
             THEN excluded.last_at ELSE metric_series.last_at END \
             RETURNING id, metric, labels",
        );
        let rows: Vec<(String, String, String)> = sql.fetch_all(conn).await?;
        for (id, metric, labels) in rows {
            ids.insert((metric, labels), id);
        }
    }
    Ok(ids)
}

/// Inserts raw samples; returns those not stored before.
async fn insert_raw(
    conn: &mut Conn,
    rows: &[(&str, i64, f64)],
) -> StoreResult<Vec<(String, i64, f64)>> {
    let mut inserted = Vec::with_capacity(rows.len());
    for chunk in rows.chunks(CHUNK) {
        let mut sql = Sql::new("INSERT INTO metric_samples (series_id, at, value) VALUES ");
        for (i, (series, at, value)) in chunk.iter().enumerate() {
            sql.push(if i == 0 { "(" } else { ", (" })
                .bind((*series).to_owned())
                .push(", ")
                .bind(*at)
                .push(", ")
                .bind(*value)
                .push(")");
        }
        sql.push(" ON CONFLICT (series_id, at) DO NOTHING RETURNING series_id, at, value");
        inserted.extend(sql.fetch_all::<(String, i64, f64)>(conn).await?);
    }
    Ok(inserted)
}

#[derive(Clone, Copy)]
struct Rollup {
    sum: f64,
    min: f64,
    max: f64,
    count: i64,
}

/// Folds new samples into their minutes' rollups.
async fn add_to_rollups(conn: &mut Conn, samples: Vec<(String, i64, f64)>) -> StoreResult<()> {
    let mut minutes: BTreeMap<(String, i64), Rollup> = BTreeMap::new();
    for (series, at, value) in samples {
        let minute = at.div_euclid(MINUTE) * MINUTE;
        minutes
            .entry((series, minute))
            .and_modify(|r| {
                r.sum += value;
                r.min = r.min.min(value);
                r.max = r.max.max(value);
                r.count += 1;
            })
            .or_insert(Rollup {
                sum: value,
                min: value,
                max: value,
                count: 1,
            });
    }
    let minutes: Vec<_> = minutes.into_iter().collect();
    for chunk in minutes.chunks(CHUNK) {
        let mut sql = Sql::new(
            "INSERT INTO metric_rollups (series_id, minute, value_sum, value_min, value_max, samples) VALUES ",
        );
        for (i, ((series, minute), r)) in chunk.iter().enumerate() {
            sql.push(if i == 0 { "(" } else { ", (" })
                .bind(series.clone())
                .push(", ")
                .bind(*minute)
                .push(", ")
                .bind(r.sum)
                .push(", ")
                .bind(r.min)
                .push(", ")
                .bind(r.max)
                .push(", ")
                .bind(r.count)
                .push(")");
        }
        sql.push(
            " ON CONFLICT (series_id, minute) DO UPDATE SET \
             value_sum = metric_rollups.value_sum + excluded.value_sum, \
             value_min = CASE WHEN excluded.value_min < metric_rollups.value_min \
             THEN excluded.value_min ELSE metric_rollups.value_min END, \
             value_max = CASE WHEN excluded.value_max > metric_rollups.value_max \
             THEN excluded.value_max ELSE metric_rollups.value_max END, \
             samples = metric_rollups.samples + excluded.samples",
        );
        sql.execute(conn).await?;
    }
    Ok(())
}

//! A host's metric series (SPEC 12.4): one metric bucketed over a range, and the latest value
//! of each series. Steps of whole minutes read the one-minute rollups, shorter ones the raw
//! samples; every answer is bounded in buckets and series.

use std::time::Duration;

use axum::Json;
use axum::extract::{RawQuery, State};
use serde::{Deserialize, Serialize};
use spog_core::metrics::{self, Labels};
use spog_core::model::Host;
use spog_core::{FieldError, FieldErrors, Id, Timestamp};
use spog_store::metrics::{self as series, Query, Source};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::Require;
use crate::auth::permissions::MonitoringView;
use crate::error::{ApiError, ApiResult};
use crate::extract::{AppPath, check_query_text};
use crate::http::hosts::visible_host;
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(host_metrics))
        .routes(routes!(latest_metrics))
}

/// The default step: the smallest of these giving at most [`DEFAULT_BUCKETS`] buckets.
const STEPS: [i64; 7] = [15, 60, 300, 900, 3_600, 21_600, 86_400];
const DEFAULT_BUCKETS: i64 = 500;
/// The most buckets one answer may cover.
const MAX_BUCKETS: i64 = 11_000;
/// The longest step: a year (any range of interest is a bucket or a few).
const MAX_STEP: i64 = 366 * 86_400;
const SECOND: i64 = 1_000_000;

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)] // Documents the parameters; they are parsed by hand (`label` repeats).
pub struct SeriesParams {
    /// The metric, like `cpu.percent` (required).
    pub name: String,
    /// Default: `to` − 1 h.
    pub from: Option<Timestamp>,
    /// Default: now.
    pub to: Option<Timestamp>,
    /// Bucket width: a duration (`15s`, `1m`, `1h`; a bare number is seconds), at least 1 s.
    /// Default: the smallest of 15s, 1m, 5m, 15m, 1h, 6h, 1d giving at most 500 buckets.
    pub step: Option<String>,
    /// `KEY:VALUE`, repeatable: only series carrying these labels.
    pub label: Option<Vec<String>>,
}

#[derive(Serialize, ToSchema)]
pub struct MetricPoint {
    /// The bucket's start: `[at, at + step)`, a multiple of the step since the epoch.
    pub at: Timestamp,
    /// The mean of the bucket's samples.
    pub value: f64,
    pub min: f64,
    pub max: f64,
    pub count: i64,
}

#[derive(Serialize, ToSchema)]
pub struct MetricSeries {
    pub labels: Labels,
    /// Buckets with samples, oldest first.
    pub points: Vec<MetricPoint>,
}

#[derive(Serialize, ToSchema)]
pub struct MetricRange {
    pub host_id: Id<Host>,
    pub name: String,
    pub from: Timestamp,
    pub to: Timestamp,
    pub step_seconds: i64,
    /// One per label set with samples in the range, by labels.
    pub series: Vec<MetricSeries>,
}

#[derive(Serialize, ToSchema)]
pub struct LatestMetric {
    pub metric: String,
    pub labels: Labels,
    pub value: f64,
    pub at: Timestamp,
}

#[derive(Serialize, ToSchema)]
pub struct LatestMetrics {
    pub items: Vec<LatestMetric>,
}

/// What a range query asks, checked.
struct RangeQuery {
    name: String,
    from: Timestamp,
    to: Timestamp,
    step: i64,
    labels: Labels,
    source: Source,
}

/// One metric of a host, bucketed.
#[utoipa::path(get, path = "/hosts/{id}/metrics", tag = "hosts",
    params(("id" = String, Path), SeriesParams),
    responses((status = 200, body = MetricRange)))]
async fn host_metrics(
    State(state): State<AppState>,
    auth: Require<MonitoringView>,
    AppPath(id): AppPath<Id<Host>>,
    RawQuery(query): RawQuery,
) -> ApiResult<Json<MetricRange>> {
    let raw_horizon = Timestamp::now().minus(state.config.metrics_raw_retention);
    let range = parse_range(query.as_deref(), Timestamp::now(), raw_horizon)?;
    let mut conn = state.store.conn().await?;
    visible_host(&mut conn, &auth, id).await?;
    let found = series::query(
        &mut conn,
        auth.account(),
        id,
        &Query {
            metric: &range.name,
            labels: &range.labels,
            from: range.from,
            to: range.to,
            step: range.step,
            source: range.source,
        },
    )
    .await?;
    Ok(Json(MetricRange {
        host_id: id,
        name: range.name,
        from: range.from,
        to: range.to,
        step_seconds: range.step / SECOND,
        series: found
            .into_iter()
            .map(|s| MetricSeries {
                labels: s.labels,
                points: s
                    .points
                    .into_iter()
                    .map(|b| MetricPoint {
                        at: b.at,
                        value: b.value,
                        min: b.min,
                        max: b.max,
                        count: b.count,
                    })
                    .collect(),
            })
            .collect(),
    }))
}

/// The newest sample of each of a host's series.
#[utoipa::path(get, path = "/hosts/{id}/metrics/latest", tag = "hosts",
    params(("id" = String, Path)),
    responses((status = 200, body = LatestMetrics)))]
async fn latest_metrics(
    State(state): State<AppState>,
    auth: Require<MonitoringView>,
    AppPath(id): AppPath<Id<Host>>,
) -> ApiResult<Json<LatestMetrics>> {
    let mut conn = state.store.conn().await?;
    visible_host(&mut conn, &auth, id).await?;
    let items = series::latest(&mut conn, auth.account(), id)
        .await?
        .into_iter()
        .map(|l| LatestMetric {
            metric: l.metric,
            labels: l.labels,
            value: l.value,
            at: l.at,
        })
        .collect();
    Ok(Json(LatestMetrics { items }))
}

/// Reads `name`, `from`, `to`, `step` (each at most once) and `label` (repeatable); every
/// problem is 422 naming its parameter. `raw_horizon`: the oldest raw sample kept.
fn parse_range(
    query: Option<&str>,
    now: Timestamp,
    raw_horizon: Timestamp,
) -> ApiResult<RangeQuery> {
    let query = query.unwrap_or_default();
    check_query_text(query)?;
    let mut errors = FieldErrors::new();
    let (mut name, mut from, mut to, mut step) = (None, None, None, None);
    let mut labels = Labels::new();
    for (key, value) in form_urlencoded::parse(query.as_bytes()) {
        let value = value.into_owned();
        let slot = match key.as_ref() {
            "name" => &mut name,
            "from" => &mut from,
            "to" => &mut to,
            "step" => &mut step,
            "label" => {
                match value.split_once(':') {
                    Some((k, v)) => {
                        labels.insert(k.to_owned(), v.to_owned());
                    }
                    None => errors.add(FieldError::new("label", "must be KEY:VALUE")),
                }
                continue;
            }
            other => {
                return Err(ApiError::field(
                    other,
                    "is not a parameter of this endpoint",
                ));
            }
        };
        if slot.replace(value).is_some() {
            errors.add(FieldError::new(key.as_ref(), "must be given at most once"));
        }
    }
    let labels = errors.check(metrics::labels("label", labels));
    let name = match name {
        Some(name) => errors.check(metrics::metric_name("name", &name)),
        None => {
            errors.add(FieldError::new("name", "is required"));
            None
        }
    };
    let mut time = |field: &str, text: Option<String>| match text {
        None => Some(None),
        Some(text) => match Timestamp::parse(&text) {
            Some(at) => Some(Some(at)),
            None => {
                errors.add(FieldError::new(field, "must be an RFC 3339 time"));
                None
            }
        },
    };
    let to = time("to", to).map(|t| t.unwrap_or(now));
    let from = time("from", from);
    let step = match step {
        None => Some(None),
        Some(text) => errors.check(parse_step(&text)).map(Some),
    };
    let (name, labels, to, from, step) = errors.finish((name, labels, to, from, step))?;
    let from = from.unwrap_or(to.minus(Duration::from_secs(3_600)));
    if from >= to {
        return Err(ApiError::field("from", "must be before to"));
    }
    let raw = from >= raw_horizon;
    let step = match step {
        Some(step) => step,
        None => STEPS
            .iter()
            .map(|s| s * SECOND)
            .find(|&s| buckets(from, to, s) <= DEFAULT_BUCKETS && (raw || s >= 60 * SECOND))
            .unwrap_or(STEPS[STEPS.len() - 1] * SECOND),
    };
    if buckets(from, to, step) > MAX_BUCKETS {
        return Err(ApiError::field(
            "step",
            format!("gives more than {MAX_BUCKETS} buckets over the range; choose a larger one"),
        ));
    }
    if step < 60 * SECOND && !raw {
        return Err(ApiError::field(
            "step",
            "must be at least 1m for a range older than metrics_raw_retention",
        ));
    }
    // Whole minutes sum the rollups exactly; other steps need the raw samples, or (for a
    // range older than they are kept) fall back on the rollups a minute at a time.
    let source = if step % (60 * SECOND) == 0 || !raw {
        Source::Rollups
    } else {
        Source::Raw
    };
    Ok(RangeQuery {
        name,
        from,
        to,
        step,
        labels,
        source,
    })
}

/// A step in µs: a duration of whole seconds from 1 s to a year.
fn parse_step(text: &str) -> Result<i64, FieldError> {
    let step = crate::config::parse_duration(text).map_err(|e| FieldError::new("step", e))?;
    if step < Duration::from_secs(1) {
        return Err(FieldError::new("step", "must be at least 1s"));
    }
    if step.subsec_nanos() != 0 {
        return Err(FieldError::new("step", "must be a whole number of seconds"));
    }
    if step.as_secs() > MAX_STEP as u64 {
        return Err(FieldError::new("step", "must be at most 366d"));
    }
    Ok(step.as_secs() as i64 * SECOND)
}

/// How many buckets of `step` (aligned to the epoch) `[from, to)` touches.
fn buckets(from: Timestamp, to: Timestamp, step: i64) -> i64 {
    let first = from.micros().div_euclid(step);
    let last = (to.micros() - 1).div_euclid(step);
    last - first + 1
}

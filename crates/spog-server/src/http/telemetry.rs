//! What agents report about hosts: heartbeats (SPEC 4, host liveness) and metric samples
//! (stored as series, SPEC 12.4, and evaluated by metric alert rules). A heartbeat that brings a host online and the alerts
//! samples fire or resolve are on record; the readings themselves are not changes.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use spog_core::metrics::{self, Labels};
use spog_core::model::{Account, Host};
use spog_core::{BoundedList, FieldError, FieldErrors, Id, Timestamp};
use spog_store::StoreError;
use spog_store::alerting::rules;
use spog_store::identity::hosts;
use spog_store::metrics as series;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::agents::liveness;
use crate::alerting::metrics::{Sample, evaluate};
use crate::auth::Require;
use crate::auth::permissions::EventsPublish;
use crate::error::{ApiError, ApiResult};
use crate::events::Announcements;
use crate::extract::{AppJson, AppPath};
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(heartbeat))
        .routes(routes!(ingest_metrics))
}

#[derive(Serialize, ToSchema)]
pub struct HeartbeatAccepted {
    pub online: bool,
    /// True when this heartbeat brought the host back online.
    pub came_online: bool,
}

/// A host's agent is alive.
#[utoipa::path(post, path = "/hosts/{id}/heartbeat", tag = "hosts", params(("id" = String, Path)),
    responses((status = 202, body = HeartbeatAccepted)))]
async fn heartbeat(
    State(state): State<AppState>,
    auth: Require<EventsPublish>,
    AppPath(id): AppPath<Id<Host>>,
) -> ApiResult<(StatusCode, Json<HeartbeatAccepted>)> {
    auth.acts_for(id)?;
    let now = Timestamp::now();
    let mut announcements = Announcements::default();
    let mut tx = state.store.begin().await?;
    let came_online = liveness::alive(&mut tx, &auth, id, now, &mut announcements).await?;
    tx.commit_unaudited().await?;
    announcements.send(&state.bus).await;
    Ok((
        StatusCode::ACCEPTED,
        Json(HeartbeatAccepted {
            online: true,
            came_online,
        }),
    ))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SampleBody {
    pub metric: String,
    /// A finite number of magnitude at most 1e200 (sums of a week's samples stay finite).
    pub value: f64,
    /// When it was measured; defaults to now.
    pub at: Option<Timestamp>,
    /// What tells this series from the metric's others on the host (a mount, an interface):
    /// at most 8, keys `[a-z_][a-z0-9_]{0,63}`, values of at most 200 characters.
    #[serde(default)]
    pub labels: Labels,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MetricBatch {
    pub host_id: Id<Host>,
    /// 1 to 10,000 samples.
    pub samples: BoundedList<SampleBody, 10_000>,
}

#[derive(Serialize, ToSchema)]
pub struct MetricsAccepted {
    pub accepted: usize,
}

const MAX_SAMPLES: usize = 10_000;

/// Metric samples of a host, for metric alert rules.
#[utoipa::path(post, path = "/metrics", tag = "alerts", request_body = MetricBatch,
    responses((status = 202, body = MetricsAccepted)))]
async fn ingest_metrics(
    State(state): State<AppState>,
    auth: Require<EventsPublish>,
    AppJson(batch): AppJson<MetricBatch>,
) -> ApiResult<(StatusCode, Json<MetricsAccepted>)> {
    auth.acts_for(batch.host_id)?;
    let samples: Vec<SampleBody> = batch.samples.into_iter().collect();
    let accepted = ingest(
        &state,
        auth.account(),
        batch.host_id,
        samples,
        Timestamp::now(),
    )
    .await?;
    Ok((StatusCode::ACCEPTED, Json(MetricsAccepted { accepted })))
}

/// Takes a host's samples: the one path of `POST /metrics` and of the agent socket's
/// `metrics` messages. Validates them all (422 naming `samples[i]…`), stores them in the
/// host's series (one transaction), then lets the metric rules watching the host evaluate
/// them; returns how many were accepted.
pub async fn ingest(
    state: &AppState,
    account: Id<Account>,
    host_id: Id<Host>,
    incoming: Vec<SampleBody>,
    now: Timestamp,
) -> ApiResult<usize> {
    let mut errors = FieldErrors::new();
    if incoming.is_empty() || incoming.len() > MAX_SAMPLES {
        errors.add(FieldError::new(
            "samples",
            format!("must hold 1 to {MAX_SAMPLES} samples"),
        ));
    }
    let oldest = now.minus(state.config.metrics_retention);
    let mut samples = Vec::with_capacity(incoming.len());
    for (i, sample) in incoming.into_iter().enumerate() {
        let metric = errors.check(metrics::metric_name(
            &format!("samples[{i}].metric"),
            &sample.metric,
        ));
        let labels = errors.check(metrics::labels(
            &format!("samples[{i}].labels"),
            sample.labels,
        ));
        if !sample.value.is_finite() || sample.value.abs() > metrics::MAX_VALUE {
            errors.add(FieldError::new(
                format!("samples[{i}].value"),
                "must be a finite number of magnitude at most 1e200",
            ));
        }
        let at = sample.at.unwrap_or(now);
        if at.micros() > now.micros() + 300_000_000 {
            errors.add(FieldError::new(
                format!("samples[{i}].at"),
                "must not be in the future",
            ));
        } else if at < oldest {
            errors.add(FieldError::new(
                format!("samples[{i}].at"),
                "must not be older than metrics_retention",
            ));
        }
        if let (Some(metric), Some(labels)) = (metric, labels) {
            samples.push(Sample {
                metric,
                labels,
                value: sample.value,
                at,
            });
        }
    }
    errors.into_result()?;
    samples.sort_by_key(|s| s.at);
    let accepted = samples.len();
    let host = {
        let mut conn = state.store.conn().await?;
        hosts::get(&mut conn, account, host_id)
            .await
            .map_err(|e| match e {
                StoreError::NotFound => ApiError::field("host_id", "is not a host of this account"),
                other => other.into(),
            })?
    };
    let mut tx = state.store.begin().await?;
    series::record(&mut tx, account, host.id, &samples).await?;
    tx.commit_unaudited().await?;
    let rules = {
        let mut conn = state.store.conn().await?;
        rules::enabled(&mut conn, account, host.organization_id, "metric").await?
    };
    let watched = rules.iter().any(|r| r.condition.watches_host(host.id));
    if watched {
        let mut announcements = Announcements::default();
        let mut tx = state.store.begin().await?;
        evaluate(
            &mut tx,
            account,
            &host,
            &rules,
            &samples,
            now,
            &mut announcements,
        )
        .await?;
        tx.commit_unaudited().await?;
        announcements.send(&state.bus).await;
    }
    Ok(accepted)
}

//! Liveness, readiness, Prometheus metrics and the system health report (SPEC 9).

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::State;
use axum::http::header::{AUTHORIZATION, CONTENT_TYPE, WWW_AUTHENTICATE};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use spog_core::model::Account;
use spog_core::{Id, Timestamp};
use spog_store::deliveries;
use subtle::ConstantTimeEq;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::Require;
use crate::auth::permissions::MonitoringView;
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;
use crate::workers::WorkerStatus;

/// Routes under `/api/v1`.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(system_health))
}

/// Routes at the root, for load balancers and scrapers.
pub fn root_router() -> axum::Router<AppState> {
    axum::Router::new()
        .route("/healthz", axum::routing::get(healthz))
        .route("/readyz", axum::routing::get(readyz))
        .route("/metrics", axum::routing::get(metrics))
}

async fn healthz() -> &'static str {
    "ok"
}

async fn readyz(State(state): State<AppState>) -> (StatusCode, &'static str) {
    match state.store.migrations_applied().await {
        Ok(true) => (StatusCode::OK, "ready"),
        Ok(false) => (StatusCode::SERVICE_UNAVAILABLE, "migrations pending"),
        Err(_) => (StatusCode::SERVICE_UNAVAILABLE, "database unreachable"),
    }
}

/// `/metrics` alone, for the separate `metrics_listen` address: no token there, the address
/// is kept private instead.
pub fn metrics_router(state: AppState) -> axum::Router {
    axum::Router::new()
        .route("/metrics", axum::routing::get(render_metrics))
        .with_state(state)
}

/// `/metrics` on the main listener: only with `metrics_token`, and only to its bearer. With
/// no token configured it does not exist here (the metrics hold every tenant's counts).
async fn metrics(State(state): State<AppState>, headers: HeaderMap) -> ApiResult<Response> {
    let Some(token) = &state.config.metrics_token else {
        return Err(ApiError::NotFound);
    };
    let presented = headers
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default();
    if !bool::from(presented.as_bytes().ct_eq(token.expose().as_bytes())) {
        let mut response = ApiError::Unauthenticated(
            "`/metrics` needs `Authorization: Bearer <metrics_token>`".to_owned(),
        )
        .into_response();
        response
            .headers_mut()
            .insert(WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        return Ok(response);
    }
    Ok(render_metrics(State(state)).await.into_response())
}

async fn render_metrics(State(state): State<AppState>) -> impl IntoResponse {
    // The backlog is counted when scraped, not on every engine tick.
    if let Ok(mut conn) = state.store.conn().await
        && let Ok(backlog) = deliveries::backlog(&mut conn, None).await
    {
        state
            .metrics
            .delivery_queue_depth
            .set(backlog.pending + backlog.retrying + backlog.delivering);
    }
    (
        [(
            CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        state.metrics.render(),
    )
}

#[derive(Serialize, ToSchema)]
pub struct DatabaseHealth {
    pub backend: String,
    pub ok: bool,
    pub error: Option<String>,
}

/// The caller's account's deliveries not yet done.
#[derive(Serialize, ToSchema)]
pub struct DeliveryBacklog {
    /// Waiting for their first attempt.
    pub pending: i64,
    /// Waiting for a later attempt.
    pub retrying: i64,
    /// An attempt in progress.
    pub delivering: i64,
    pub oldest_pending_at: Option<Timestamp>,
    /// How long the oldest delivery has waited for its first attempt.
    pub oldest_pending_age_seconds: Option<f64>,
}

#[derive(Serialize, ToSchema)]
pub struct SystemHealth {
    pub status: String,
    pub version: String,
    pub instance_id: String,
    pub started_at: Timestamp,
    pub database: DatabaseHealth,
    /// Scheduler jobs by name.
    pub workers: BTreeMap<String, WorkerStatus>,
    /// Null when the database cannot be read.
    pub deliveries: Option<DeliveryBacklog>,
    pub websocket_connections: i64,
}

async fn delivery_backlog(state: &AppState, account: Id<Account>) -> Option<DeliveryBacklog> {
    let mut conn = state.store.conn().await.ok()?;
    let backlog = deliveries::backlog(&mut conn, Some(account)).await.ok()?;
    let now = Timestamp::now();
    Some(DeliveryBacklog {
        pending: backlog.pending,
        retrying: backlog.retrying,
        delivering: backlog.delivering,
        oldest_pending_at: backlog.oldest_pending_at,
        oldest_pending_age_seconds: backlog
            .oldest_pending_at
            .map(|at| (now.micros() - at.micros()).max(0) as f64 / 1e6),
    })
}

/// Database, scheduler jobs and backlogs of this instance.
#[utoipa::path(get, path = "/system/health", tag = "system",
    responses((status = 200, body = SystemHealth)))]
async fn system_health(
    State(state): State<AppState>,
    auth: Require<MonitoringView>,
) -> ApiResult<Json<SystemHealth>> {
    Ok(Json(health(&state, auth.account()).await))
}

/// The health report, shared by the API and the console's System health page; the delivery
/// backlog is the account's own.
pub async fn health(state: &AppState, account: Id<Account>) -> SystemHealth {
    let deliveries = delivery_backlog(state, account).await;
    let ping = state.store.ping().await;
    let database = DatabaseHealth {
        backend: state.store.backend().name().to_owned(),
        ok: ping.is_ok(),
        error: ping.err().map(|e| e.to_string()),
    };
    let workers: BTreeMap<String, WorkerStatus> = state
        .workers
        .snapshot()
        .into_iter()
        .map(|(name, status)| (name.to_owned(), status))
        .collect();
    let healthy = database.ok && workers.values().all(|w| w.running);
    SystemHealth {
        status: if healthy { "ok" } else { "degraded" }.to_owned(),
        version: env!("CARGO_PKG_VERSION").to_owned(),
        instance_id: state.instance_id.clone(),
        started_at: state.started_at,
        database,
        workers,
        deliveries,
        websocket_connections: state.metrics.websocket_connections.get(),
    }
}

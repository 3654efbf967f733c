//! `/system/health`: the report of `GET /api/v1/system/health` (monitoring.view), refreshed
//! every 10 seconds.

use askama::Template;
use axum::extract::State;

use super::error::PageResult;
use super::layout::{Chrome, render, when, when_or};
use super::session::RequirePage;
use crate::auth::permissions::MonitoringView;
use crate::http::system::{SystemHealth, health};
use crate::state::AppState;

pub struct WorkerRow {
    pub name: String,
    pub running: bool,
    pub last_run: String,
    pub last_error: Option<String>,
    pub last_error_at: String,
}

pub struct HealthView {
    pub ok: bool,
    pub status: String,
    pub version: String,
    pub instance_id: String,
    pub started: String,
    pub backend: String,
    pub database_ok: bool,
    pub database_error: Option<String>,
    pub workers: Vec<WorkerRow>,
    pub websocket_connections: i64,
}

impl From<SystemHealth> for HealthView {
    fn from(report: SystemHealth) -> Self {
        HealthView {
            ok: report.status == "ok",
            status: report.status,
            version: report.version,
            instance_id: report.instance_id,
            started: when(report.started_at),
            backend: report.database.backend,
            database_ok: report.database.ok,
            database_error: report.database.error,
            workers: report
                .workers
                .into_iter()
                .map(|(name, worker)| WorkerRow {
                    name,
                    running: worker.running,
                    last_run: when_or(worker.last_run_at, "not yet"),
                    last_error: worker.last_error,
                    last_error_at: when_or(worker.last_error_at, ""),
                })
                .collect(),
            websocket_connections: report.websocket_connections,
        }
    }
}

#[derive(Template)]
#[template(path = "system_health.html")]
struct HealthPage {
    chrome: Chrome,
    health: HealthView,
}

#[derive(Template)]
#[template(path = "system_health_report.html")]
struct HealthPartial {
    health: HealthView,
}

pub async fn health_page(
    State(state): State<AppState>,
    viewer: RequirePage<MonitoringView>,
) -> PageResult {
    let chrome = Chrome::new(&viewer, "System health");
    render(&HealthPage {
        chrome,
        health: health(&state, viewer.auth.account()).await.into(),
    })
}

pub async fn health_partial(
    State(state): State<AppState>,
    viewer: RequirePage<MonitoringView>,
) -> PageResult {
    render(&HealthPartial {
        health: health(&state, viewer.auth.account()).await.into(),
    })
}

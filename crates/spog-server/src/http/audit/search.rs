use axum::Json;
use axum::extract::{RawQuery, State};
use serde::Deserialize;
use spog_core::audit::AuditEntry;
use spog_core::page::{self, Page};
use spog_core::{FieldError, Timestamp};
use spog_store::audit::{self, AuditFilter, AuditStats};
use utoipa::IntoParams;

use super::filter::{FILTER_NAMES, FilterParams};
use crate::auth::Require;
use crate::auth::permissions::AuditLogsView;
use crate::error::{ApiError, ApiResult};
use crate::extract::{AppPath, AppQuery, parse_query};
use crate::state::AppState;

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct Paging {
    /// 1 to 500; default 50.
    pub limit: Option<i64>,
    pub cursor: Option<String>,
}

const PAGING_NAMES: &[&str] = &["limit", "cursor"];

/// Search entries, newest first.
#[utoipa::path(get, path = "/audit-logs", tag = "audit", params(FilterParams, Paging),
    responses((status = 200, body = Page<AuditEntry>)))]
pub async fn list_audit_logs(
    State(state): State<AppState>,
    auth: Require<AuditLogsView>,
    RawQuery(query): RawQuery,
) -> ApiResult<Json<Page<AuditEntry>>> {
    let allowed = [FILTER_NAMES, PAGING_NAMES];
    let filter = parse_query::<FilterParams>(query.as_deref(), &allowed)?.parse()?;
    let paging: Paging = parse_query(query.as_deref(), &allowed)?;
    let limit = page::limit(paging.limit, page::DEFAULT_LIMIT, page::MAX_LIMIT)?;
    let mut conn = state.store.conn().await?;
    Ok(Json(
        audit::list(
            &mut conn,
            auth.account(),
            &filter,
            limit,
            paging.cursor.as_deref(),
        )
        .await?,
    ))
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct RecentParams {
    /// 1 to 50; default 10.
    pub limit: Option<i64>,
}

/// The latest entries (for the dashboard).
#[utoipa::path(get, path = "/audit-logs/recent", tag = "audit", params(RecentParams),
    responses((status = 200, body = Vec<AuditEntry>)))]
pub async fn recent_audit_logs(
    State(state): State<AppState>,
    auth: Require<AuditLogsView>,
    AppQuery(params): AppQuery<RecentParams>,
) -> ApiResult<Json<Vec<AuditEntry>>> {
    let limit = page::limit(params.limit, 10, 50)?;
    let mut conn = state.store.conn().await?;
    let page = audit::list(
        &mut conn,
        auth.account(),
        &AuditFilter::default(),
        limit,
        None,
    )
    .await?;
    Ok(Json(page.items))
}

/// One entry with its before/after snapshots and metadata.
#[utoipa::path(get, path = "/audit-logs/{id}", tag = "audit", params(("id" = String, Path)),
    responses((status = 200, body = AuditEntry)))]
pub async fn get_audit_log(
    State(state): State<AppState>,
    auth: Require<AuditLogsView>,
    AppPath(id): AppPath<uuid::Uuid>,
) -> ApiResult<Json<AuditEntry>> {
    let mut conn = state.store.conn().await?;
    Ok(Json(
        audit::get(&mut conn, auth.account(), &id.to_string()).await?,
    ))
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct StatsParams {
    /// The last N days including today (1 to 366; default 7). Not with from/to.
    pub days: Option<i64>,
    /// RFC 3339; statistics cover whole UTC days from this day.
    pub from: Option<String>,
    /// RFC 3339; up to and including this day (default now).
    pub to: Option<String>,
}

/// Counts by action, actor type, resource type, outcome, top actors and per day.
#[utoipa::path(get, path = "/audit-logs/stats", tag = "audit", params(StatsParams),
    responses((status = 200, body = AuditStats)))]
pub async fn audit_stats(
    State(state): State<AppState>,
    auth: Require<AuditLogsView>,
    AppQuery(params): AppQuery<StatsParams>,
) -> ApiResult<Json<AuditStats>> {
    let (from, to) = stats_range(
        params.days,
        params.from.as_deref(),
        params.to.as_deref(),
        Timestamp::now(),
    )?;
    let mut conn = state.store.conn().await?;
    Ok(Json(
        audit::stats(&mut conn, auth.account(), from, to).await?,
    ))
}

/// The range statistics cover: the last `days` days up to `now`, or `from`/`to` (RFC 3339),
/// by default the seven days up to `to`.
pub(crate) fn stats_range(
    days: Option<i64>,
    from: Option<&str>,
    to: Option<&str>,
    now: Timestamp,
) -> ApiResult<(Timestamp, Timestamp)> {
    let parse = |field: &str, text: Option<&str>| {
        text.map(|t| {
            Timestamp::parse(t).ok_or_else(|| FieldError::new(field, "must be an RFC 3339 time"))
        })
        .transpose()
    };
    match (days, parse("from", from)?, parse("to", to)?) {
        (Some(_), Some(_), _) | (Some(_), _, Some(_)) => Err(ApiError::field(
            "days",
            "give either days or from/to, not both",
        )),
        (days, None, None) => {
            let days = days.unwrap_or(7);
            if !(1..=366).contains(&days) {
                return Err(ApiError::field("days", "must be between 1 and 366"));
            }
            Ok((
                now.minus(std::time::Duration::from_secs((days as u64 - 1) * 86_400)),
                now,
            ))
        }
        (None, from, to) => {
            let to = to.unwrap_or(now);
            let from = from.unwrap_or(to.minus(std::time::Duration::from_secs(6 * 86_400)));
            if from > to {
                return Err(ApiError::field("to", "must not be before from"));
            }
            if to.micros() - from.micros() > 366 * 86_400_000_000 {
                return Err(ApiError::field(
                    "from",
                    "the range must be at most 366 days",
                ));
            }
            Ok((from, to))
        }
    }
}

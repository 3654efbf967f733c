//! `/audit-logs`: search, statistics, export, integrity, checkpoints and ingest (SPEC 3).

mod export;
pub(crate) mod filter;
mod ingest;
pub(crate) mod integrity;
pub(crate) mod search;

use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(search::list_audit_logs, ingest::ingest_one))
        .routes(routes!(ingest::ingest_batch))
        .routes(routes!(search::recent_audit_logs))
        .routes(routes!(search::audit_stats))
        .routes(routes!(export::export_audit_logs))
        .routes(routes!(integrity::verify_integrity))
        .routes(routes!(
            integrity::list_checkpoints,
            integrity::create_checkpoint
        ))
        .routes(routes!(integrity::checkpoint_public_key))
        .routes(routes!(search::get_audit_log))
}

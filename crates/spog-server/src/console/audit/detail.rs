//! `GET /audit-logs/{id}`: one entry in full, as `GET /api/v1/audit-logs/{id}` returns it: who,
//! what, where from, the before/after diff, metadata, and its links in the chain.

use askama::Template;
use axum::extract::{Path, State};
use spog_core::audit::{AuditEntry, Outcome, Snapshot};
use spog_store::audit;
use spog_store::identity::organizations;

use super::diff::{DiffRow, DiffSummary, diff, flatten, summary};
use super::encode;
use crate::auth::permissions::AuditLogsView;
use crate::console::error::{PageError, PageResult};
use crate::console::layout::{Chrome, render, when};
use crate::console::session::RequirePage;
use crate::state::AppState;

/// A snapshot pretty-printed, for reading it whole.
fn pretty(snapshot: &Option<Snapshot>) -> Option<String> {
    snapshot
        .as_ref()
        .map(|s| serde_json::to_string_pretty(&s.to_value()).unwrap_or_default())
}

#[derive(Template)]
#[template(path = "audit/detail.html")]
struct DetailPage {
    chrome: Chrome,
    entry: AuditEntry,
    when: String,
    /// When the service stored the entry (for reading, and exactly), where it was kept.
    recorded: Option<(String, String)>,
    failed: bool,
    organization: Option<String>,
    diff: Vec<DiffRow>,
    summary: DiffSummary,
    before: Option<String>,
    after: Option<String>,
    metadata: Vec<(String, String)>,
    metadata_json: Option<String>,
    /// A search for the same resource's history.
    history_query: Option<String>,
    /// A search for everything the same actor did.
    actor_query: Option<String>,
}

pub async fn detail_page(
    State(state): State<AppState>,
    viewer: RequirePage<AuditLogsView>,
    Path(id): Path<String>,
) -> PageResult {
    let chrome = Chrome::new(&viewer, "Audit entry");
    let id: uuid::Uuid = id.parse().map_err(|_| PageError::NotFound)?;
    let account = viewer.auth.account();
    let mut conn = state.store.conn().await?;
    let entry = audit::get(&mut conn, account, &id.to_string()).await?;
    let organization = match &entry.organization_id {
        Some(org) => Some(
            organizations::list(&mut conn, account)
                .await?
                .into_iter()
                .find(|o| o.id.to_string() == *org)
                .map_or_else(|| org.clone(), |o| format!("{} ({org})", o.name)),
        ),
        None => None,
    };
    let before = entry.before.as_ref().map(Snapshot::to_value);
    let after = entry.after.as_ref().map(Snapshot::to_value);
    let rows = diff(before.as_ref(), after.as_ref());
    let history_query = entry.resource_id.as_ref().map(|resource| {
        encode(&[
            ("resource_type".to_owned(), entry.resource_type.clone()),
            ("resource_id".to_owned(), resource.clone()),
        ])
    });
    let actor_query = entry
        .actor_id
        .as_ref()
        .map(|actor| encode(&[("actor_id".to_owned(), actor.clone())]));
    render(&DetailPage {
        actor_query,
        chrome,
        when: when(entry.occurred_at),
        recorded: entry.recorded_at.map(|at| (when(at), at.to_string())),
        failed: entry.outcome == Outcome::Failure,
        organization,
        summary: summary(&rows),
        diff: rows,
        before: pretty(&entry.before),
        after: pretty(&entry.after),
        metadata: entry
            .metadata
            .as_ref()
            .map(|m| flatten(&m.to_value()))
            .unwrap_or_default(),
        metadata_json: pretty(&entry.metadata),
        history_query,
        entry,
    })
}

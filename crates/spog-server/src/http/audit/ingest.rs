//! Ingest for other SPOG components (`audit_logs.write`): the actor and the credential are
//! the token's, the service stamps when it stored the entry (`recorded_at`), and a component
//! may neither back-date an entry beyond `audit_ingest_max_backdate` nor record an action in
//! the service's own namespaces. A batch is all or nothing.

use std::collections::BTreeSet;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use spog_core::audit::{self, ActorType, AuditEntry, Outcome, Snapshot};
use spog_core::model::Organization;
use spog_core::{BoundedList, FieldError, FieldErrors, Id, Timestamp, validate};
use spog_store::identity::organizations;
use utoipa::ToSchema;

use crate::auth::Require;
use crate::auth::permissions::AuditLogsWrite;
use crate::error::ApiResult;
use crate::extract::AppJson;
use crate::state::AppState;

const MAX_BATCH: usize = 1_000;
const MAX_SNAPSHOT_BYTES: usize = 64 * 1024;
/// Clocks of other components may run a little ahead.
const FUTURE_SKEW_MICROS: i64 = 5 * 60 * 1_000_000;

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct IngestEntry {
    /// Dotted verb, e.g. `job.run`.
    pub action: String,
    pub resource_type: String,
    pub resource_id: Option<String>,
    pub resource_name: Option<String>,
    pub outcome: Outcome,
    pub organization_id: Option<Id<Organization>>,
    /// Default: now.
    pub occurred_at: Option<Timestamp>,
    pub before: Option<Value>,
    pub after: Option<Value>,
    pub metadata: Option<Value>,
    /// Optional; must be the token's own actor type.
    pub actor_type: Option<ActorType>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct IngestBatch {
    /// 1 to 1,000 entries.
    pub entries: BoundedList<IngestEntry, 1000>,
}

#[derive(Serialize, ToSchema)]
pub struct Ingested {
    pub id: String,
}

#[derive(Serialize, ToSchema)]
pub struct IngestedBatch {
    pub ids: Vec<String>,
}

fn word(field: &str, text: &str, dotted: bool) -> Result<String, FieldError> {
    let parts: Vec<&str> = text.split('.').collect();
    let part_ok = |p: &&str| {
        !p.is_empty()
            && p.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
            && p.starts_with(|c: char| c.is_ascii_lowercase())
    };
    let shape_ok = if dotted {
        parts.len() >= 2
    } else {
        parts.len() == 1
    };
    if text.len() > 100 || !shape_ok || !parts.iter().all(part_ok) {
        let example = if dotted {
            "like job.run (lowercase, dotted)"
        } else {
            "like host (lowercase)"
        };
        return Err(FieldError::new(field, format!("must be {example}")));
    }
    Ok(text.to_owned())
}

fn optional_text(field: &str, text: Option<String>) -> Result<Option<String>, FieldError> {
    text.map(|t| validate::single_line(field, &t, 500))
        .transpose()
}

/// An action of the component's own: dotted, and outside the service's namespaces.
fn action(field: &str, text: &str) -> Result<String, FieldError> {
    let action = word(field, text, true)?;
    if audit::is_server_action(&action) {
        return Err(FieldError::new(
            field,
            format!(
                "`{}.*` is reserved to the service's own actions; name the component's (like job.run)",
                audit::namespace(&action)
            ),
        ));
    }
    Ok(action)
}

/// The times an ingested `occurred_at` may fall between: back to the configured bound, and
/// ahead by a little clock skew.
#[derive(Clone, Copy)]
struct Window {
    now: Timestamp,
    oldest: Timestamp,
}

impl Window {
    fn new(state: &AppState) -> Self {
        let now = Timestamp::now();
        Window {
            now,
            oldest: now.minus(state.config.audit_ingest_max_backdate),
        }
    }

    fn check(&self, field: &str, at: Timestamp) -> Result<Timestamp, FieldError> {
        if at.micros() > self.now.micros() + FUTURE_SKEW_MICROS {
            return Err(FieldError::new(field, "must not be in the future"));
        }
        if at < self.oldest {
            return Err(FieldError::new(
                field,
                format!(
                    "must not be before {} (audit_ingest_max_backdate)",
                    self.oldest
                ),
            ));
        }
        Ok(at)
    }
}

fn snapshot(field: &str, value: Option<Value>) -> Result<Option<Snapshot>, FieldError> {
    match value.map(Snapshot::redacted) {
        Some(s) if s.as_str().len() > MAX_SNAPSHOT_BYTES => {
            Err(FieldError::new(field, "must be at most 64 KiB of JSON"))
        }
        other => Ok(other),
    }
}

/// Validates one entry into an audit entry of the caller; errors are named `{prefix}field`.
fn to_entry(
    auth: &Require<AuditLogsWrite>,
    input: IngestEntry,
    prefix: &str,
    window: Window,
    errors: &mut FieldErrors,
) -> Option<AuditEntry> {
    let field = |name: &str| format!("{prefix}{name}");
    let claimed = auth.principal.actor_type;
    if input.actor_type.is_some_and(|a| a != claimed) {
        errors.add(FieldError::new(
            field("actor_type"),
            format!("this token records as `{}`", claimed.as_str()),
        ));
    }
    let occurred_at = errors.check(
        input
            .occurred_at
            .map(|at| window.check(&field("occurred_at"), at))
            .transpose(),
    );
    let action = errors.check(action(&field("action"), &input.action));
    let resource_type = errors.check(word(&field("resource_type"), &input.resource_type, false));
    let resource_id = errors.check(optional_text(&field("resource_id"), input.resource_id));
    let resource_name = errors.check(optional_text(&field("resource_name"), input.resource_name));
    let before = errors.check(snapshot(&field("before"), input.before));
    let after = errors.check(snapshot(&field("after"), input.after));
    let metadata = errors.check(snapshot(&field("metadata"), input.metadata));
    let mut entry = auth.actor().ingested(&action?, &resource_type?);
    entry.occurred_at = occurred_at?.unwrap_or(window.now);
    entry.resource_id = resource_id?;
    entry.resource_name = resource_name?;
    entry.outcome = input.outcome;
    entry.organization_id = input.organization_id.map(|o| o.to_string());
    entry.before = before?;
    entry.after = after?;
    entry.metadata = metadata?;
    Some(entry)
}

/// Checks that every named organization belongs to the caller's account.
async fn check_organizations(
    state: &AppState,
    auth: &Require<AuditLogsWrite>,
    named: &[(String, Id<Organization>)],
) -> ApiResult<()> {
    if named.is_empty() {
        return Ok(());
    }
    let known: BTreeSet<Id<Organization>> = {
        let mut conn = state.store.conn().await?;
        organizations::list(&mut conn, auth.account())
            .await?
            .into_iter()
            .map(|o| o.id)
            .collect()
    };
    let mut errors = FieldErrors::new();
    for (field, organization) in named {
        if !known.contains(organization) {
            errors.add(FieldError::new(
                field.clone(),
                "is not an organization of this account",
            ));
        }
    }
    Ok(errors.into_result()?)
}

async fn store_entries(state: &AppState, entries: Vec<AuditEntry>) -> ApiResult<Vec<String>> {
    let ids = entries.iter().map(|e| e.id.clone()).collect();
    state.audit_ingest.record(entries).await?;
    Ok(ids)
}

/// Record one entry.
#[utoipa::path(post, path = "/audit-logs", tag = "audit", request_body = IngestEntry,
    responses((status = 201, body = Ingested)))]
pub async fn ingest_one(
    State(state): State<AppState>,
    auth: Require<AuditLogsWrite>,
    AppJson(input): AppJson<IngestEntry>,
) -> ApiResult<(StatusCode, Json<Ingested>)> {
    let organization = input
        .organization_id
        .map(|o| ("organization_id".to_owned(), o));
    let mut errors = FieldErrors::new();
    let entry = to_entry(&auth, input, "", Window::new(&state), &mut errors);
    errors.into_result()?;
    check_organizations(&state, &auth, &organization.into_iter().collect::<Vec<_>>()).await?;
    let entry = entry.expect("an entry without field errors");
    let mut ids = store_entries(&state, vec![entry]).await?;
    Ok((StatusCode::CREATED, Json(Ingested { id: ids.remove(0) })))
}

/// Record up to 1,000 entries, all or nothing.
#[utoipa::path(post, path = "/audit-logs/batch", tag = "audit", request_body = IngestBatch,
    responses((status = 201, body = IngestedBatch)))]
pub async fn ingest_batch(
    State(state): State<AppState>,
    auth: Require<AuditLogsWrite>,
    AppJson(batch): AppJson<IngestBatch>,
) -> ApiResult<(StatusCode, Json<IngestedBatch>)> {
    if batch.entries.is_empty() || batch.entries.len() > MAX_BATCH {
        return Err(
            FieldError::new("entries", format!("must hold 1 to {MAX_BATCH} entries")).into(),
        );
    }
    let window = Window::new(&state);
    let mut errors = FieldErrors::new();
    let mut organizations = Vec::new();
    let mut entries = Vec::with_capacity(batch.entries.len());
    for (i, input) in batch.entries.into_iter().enumerate() {
        let prefix = format!("entries[{i}].");
        if let Some(organization) = input.organization_id {
            organizations.push((format!("{prefix}organization_id"), organization));
        }
        entries.extend(to_entry(&auth, input, &prefix, window, &mut errors));
    }
    errors.into_result()?;
    check_organizations(&state, &auth, &organizations).await?;
    let ids = store_entries(&state, entries).await?;
    Ok((StatusCode::CREATED, Json(IngestedBatch { ids })))
}

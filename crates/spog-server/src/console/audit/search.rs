//! `GET /audit-logs`: the search page. The filters live in the URL (a search is shared by
//! sharing its link), are parsed exactly as `GET /api/v1/audit-logs` parses them, and page
//! with the API's keyset cursors; the export buttons carry the same filters to the API.

use std::collections::HashMap;

use askama::Template;
use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse};
use spog_core::audit::{Action, ActorType, AuditEntry, Outcome};
use spog_core::{FieldErrors, Permission, page};
use spog_store::StoreError;
use spog_store::audit;
use spog_store::identity::organizations;

use super::{datetime_field, encode, field_errors, non_empty_pairs, utc_time};
use crate::auth::permissions::AuditLogsView;
use crate::console::error::PageResult;
use crate::console::layout::{Chrome, when};
use crate::console::session::RequirePage;
use crate::extract::parse_query;
use crate::http::audit::filter::{FILTER_NAMES, FilterParams};
use crate::state::AppState;

/// One entry as a row of results.
pub struct EntryRow {
    pub id: String,
    pub when: String,
    pub actor: String,
    pub actor_type: &'static str,
    /// `actor_id=…` of a search for this actor's entries.
    pub actor_query: Option<String>,
    pub action: String,
    pub action_query: String,
    pub resource: String,
    pub organization: String,
    pub failed: bool,
    pub source: &'static str,
    /// Empty until the linker has chained the entry.
    pub seq: String,
}

fn query_of(name: &str, value: &str) -> String {
    encode(&[(name.to_owned(), value.to_owned())])
}

impl EntryRow {
    fn new(entry: AuditEntry, organizations: &HashMap<String, String>) -> Self {
        let actor = entry
            .actor_email
            .clone()
            .or(entry.actor_name.clone())
            .or(entry.actor_id.clone())
            .unwrap_or_else(|| entry.actor_type.as_str().to_owned());
        let resource = match entry.resource_name.as_ref().or(entry.resource_id.as_ref()) {
            Some(name) => format!("{} {name}", entry.resource_type),
            None => entry.resource_type.clone(),
        };
        let organization = entry
            .organization_id
            .as_ref()
            .map(|id| organizations.get(id).cloned().unwrap_or_else(|| id.clone()))
            .unwrap_or_default();
        EntryRow {
            when: when(entry.occurred_at),
            actor,
            actor_type: entry.actor_type.as_str(),
            actor_query: entry.actor_id.as_ref().map(|id| query_of("actor_id", id)),
            action_query: query_of("action", &entry.action),
            action: entry.action,
            resource,
            organization,
            failed: entry.outcome == Outcome::Failure,
            source: entry.source.as_str(),
            seq: entry.seq.map(|s| s.to_string()).unwrap_or_default(),
            id: entry.id,
        }
    }
}

pub struct Choice {
    pub value: String,
    pub label: String,
}

#[derive(Template)]
#[template(path = "audit/search.html")]
struct SearchPage {
    chrome: Chrome,
    tab: &'static str,
    /// The filters as given, by name.
    values: HashMap<String, String>,
    errors: FieldErrors,
    actor_types: Vec<&'static str>,
    /// The service's own actions, offered as the action filter's suggestions.
    actions: &'static [Action],
    organizations: Vec<Choice>,
    /// `None` when the filters are invalid and nothing was searched.
    rows: Option<Vec<EntryRow>>,
    /// The validated filters as a query string, for paging and export links.
    query: String,
    paged: bool,
    next: Option<String>,
    can_export: bool,
}

impl SearchPage {
    fn value(&self, name: &str) -> &str {
        self.values.get(name).map_or("", String::as_str)
    }

    fn error(&self, name: &str) -> Option<&str> {
        self.errors.get(name)
    }

    /// A time filter as a `datetime-local` field shows it (UTC).
    fn time_value(&self, name: &str) -> String {
        datetime_field(self.value(name))
    }

    /// Errors about parameters the form has no field for (a hand-edited link).
    fn other_errors(&self) -> Vec<String> {
        self.errors
            .iter()
            .filter(|(field, _)| !FILTER_NAMES.contains(field))
            .map(|(field, message)| format!("{field} {message}"))
            .collect()
    }

    /// `?<filters>&` or `?`, ready for another parameter.
    fn with(&self, more: &str) -> String {
        match self.query.is_empty() {
            true => format!("?{more}"),
            false => format!("?{}&{more}", self.query),
        }
    }
}

pub async fn search_page(
    State(state): State<AppState>,
    viewer: RequirePage<AuditLogsView>,
    RawQuery(raw): RawQuery,
) -> PageResult {
    let chrome = Chrome::new(&viewer, "Audit logs");
    let mut cursor = None;
    let mut filters = Vec::new();
    for (name, value) in non_empty_pairs(raw.as_deref()) {
        match name.as_str() {
            "cursor" => cursor = Some(value),
            "from" | "to" => filters.push((name, utc_time(&value))),
            _ => filters.push((name, value)),
        }
    }
    let query = encode(&filters);
    let values: HashMap<String, String> = filters.iter().cloned().collect();
    let account = viewer.auth.account();
    let mut conn = state.store.conn().await?;
    let known = organizations::list(&mut conn, account).await?;
    let names: HashMap<String, String> = known
        .iter()
        .map(|o| (o.id.to_string(), o.name.clone()))
        .collect();
    let parsed = parse_query::<FilterParams>(Some(&query), &[FILTER_NAMES])
        .and_then(|params| params.parse().map_err(Into::into));
    let mut errors = FieldErrors::new();
    let mut rows = None;
    let mut next = None;
    match parsed {
        Err(error) => errors = field_errors(error)?,
        Ok(filter) => {
            let limit = page::DEFAULT_LIMIT;
            match audit::list(&mut conn, account, &filter, limit, cursor.as_deref()).await {
                Ok(found) => {
                    next = found
                        .next_cursor
                        .map(|c| form_urlencoded::byte_serialize(c.as_bytes()).collect());
                    rows = Some(
                        found
                            .items
                            .into_iter()
                            .map(|e| EntryRow::new(e, &names))
                            .collect(),
                    );
                }
                Err(StoreError::Invalid(error)) => errors.add(error),
                Err(other) => return Err(other.into()),
            }
        }
    }
    let mut organizations: Vec<Choice> = known
        .into_iter()
        .map(|o| Choice {
            value: o.id.to_string(),
            label: o.name,
        })
        .collect();
    // A shared link may name an organization this account does not have: keep it selectable.
    if let Some(id) = values.get("organization_id")
        && !names.contains_key(id)
    {
        organizations.push(Choice {
            value: id.clone(),
            label: id.clone(),
        });
    }
    let page = SearchPage {
        chrome,
        tab: "search",
        values,
        actor_types: ActorType::ALL.iter().map(|a| a.as_str()).collect(),
        actions: Action::ALL,
        organizations,
        rows,
        paged: cursor.is_some(),
        next,
        can_export: viewer.has(Permission::AuditLogsExport),
        query,
        errors,
    };
    let status = match page.errors.is_empty() {
        true => StatusCode::OK,
        false => StatusCode::UNPROCESSABLE_ENTITY,
    };
    Ok((status, Html(page.render()?)).into_response())
}

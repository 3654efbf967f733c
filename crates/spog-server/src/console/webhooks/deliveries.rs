//! A subscription's Deliveries tab (SPEC 5.3, 10): the history with status and event-type
//! filters in the link (parsed as `GET /api/v1/webhooks/{id}/deliveries` parses them, errors
//! beside the filter at fault), each delivery's payload and attempts, and Retry on `failed`
//! ones through `POST /api/v1/webhooks/{id}/deliveries/{delivery_id}/retry`. The table
//! refreshes itself when the WebSocket says deliveries moved.

use askama::Template;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse};
use spog_core::delivery::{Delivery, DeliveryStatus, TargetKind};
use spog_core::events::EventType;
use spog_core::page::{self, Page};
use spog_core::webhooks::Webhook;
use spog_core::{FieldErrors, Permission};
use spog_store::deliveries::{self, DeliveryFilter};
use spog_store::webhooks as store;

use super::WebhookView;
use crate::auth::permissions::MonitoringView;
use crate::console::error::{PageError, PageResult};
use crate::console::layout::{Chrome, render, when, when_or};
use crate::console::list_filters::{ListFilters, unshown_errors};
use crate::console::lists::{FilteredPager, organization_names, parse_id};
use crate::console::session::{RequirePage, Viewer};
use crate::state::AppState;

/// The badge class of a delivery's status.
fn badge(status: DeliveryStatus) -> &'static str {
    match status {
        DeliveryStatus::Succeeded => "ok",
        DeliveryStatus::Failed => "bad",
        DeliveryStatus::Retrying => "warn",
        DeliveryStatus::Pending | DeliveryStatus::Delivering => "",
    }
}

pub struct DeliveryRow {
    pub id: String,
    pub event_type: &'static str,
    pub status: &'static str,
    pub badge: &'static str,
    pub failed: bool,
    pub attempts: u32,
    pub last_status_code: String,
    pub last_error: String,
    pub next_attempt: String,
    pub created: String,
    pub completed: String,
}

impl From<&Delivery> for DeliveryRow {
    fn from(delivery: &Delivery) -> Self {
        DeliveryRow {
            id: delivery.id.to_string(),
            event_type: delivery.event_type.as_str(),
            status: delivery.status.as_str(),
            badge: badge(delivery.status),
            failed: delivery.status == DeliveryStatus::Failed,
            attempts: delivery.attempt_count,
            last_status_code: delivery
                .last_status_code
                .map(|c| c.to_string())
                .unwrap_or_default(),
            last_error: delivery.last_error.clone().unwrap_or_default(),
            next_attempt: when_or(delivery.next_attempt_at, ""),
            created: when(delivery.created_at),
            completed: when_or(delivery.completed_at, ""),
        }
    }
}

/// `?status=&event_type=&cursor=` as given, and the filter they make.
struct Filters {
    given: ListFilters,
    parsed: DeliveryFilter,
}

impl Filters {
    fn read(raw: Option<&str>) -> Self {
        let mut given = ListFilters::read(raw, &["status", "event_type"]);
        let parsed = DeliveryFilter {
            status: given.parse("status", |text| DeliveryStatus::parse("status", text)),
            event_type: given.parse("event_type", |text| EventType::parse("event_type", text)),
        };
        Filters { given, parsed }
    }
}

pub struct DeliveriesTable {
    pub webhook_id: String,
    /// `None` when the filters are invalid and nothing was listed.
    pub rows: Option<Vec<DeliveryRow>>,
    pub pager: FilteredPager,
    pub can_manage: bool,
}

#[derive(Template)]
#[template(path = "webhooks/deliveries.html")]
struct DeliveriesPage {
    chrome: Chrome,
    tab: &'static str,
    webhook: WebhookView,
    status: String,
    event_type: String,
    statuses: Vec<&'static str>,
    event_types: Vec<&'static str>,
    errors: FieldErrors,
    table: DeliveriesTable,
}

impl DeliveriesPage {
    fn error(&self, name: &str) -> Option<&str> {
        self.errors.get(name)
    }

    /// Errors about parameters the form has no field for (a hand-edited link).
    fn other_errors(&self) -> Vec<String> {
        unshown_errors(&self.errors, &["status", "event_type"])
    }
}

#[derive(Template)]
#[template(path = "webhooks/deliveries_table.html")]
struct DeliveriesTablePartial {
    table: DeliveriesTable,
}

async fn table(
    state: &AppState,
    viewer: &Viewer,
    webhook: &Webhook,
    filters: &Filters,
) -> Result<DeliveriesTable, PageError> {
    let path = format!("/webhooks/{}/deliveries", webhook.id);
    let can_manage = viewer.has(Permission::MonitoringManage);
    let webhook_id = webhook.id.to_string();
    if !filters.given.errors.is_empty() {
        let nothing = Page::<Delivery> {
            items: Vec::new(),
            next_cursor: None,
        };
        return Ok(DeliveriesTable {
            pager: FilteredPager::of(path, filters.given.query(), None, &nothing),
            webhook_id,
            rows: None,
            can_manage,
        });
    }
    let mut conn = state.store.conn().await?;
    let found = deliveries::list(
        &mut conn,
        viewer.auth.account(),
        TargetKind::Webhook,
        &webhook_id,
        &filters.parsed,
        page::DEFAULT_LIMIT,
        filters.given.cursor.as_deref(),
    )
    .await?;
    Ok(DeliveriesTable {
        pager: FilteredPager::of(
            path,
            filters.given.query(),
            filters.given.cursor.as_deref(),
            &found,
        ),
        rows: Some(found.items.iter().map(DeliveryRow::from).collect()),
        webhook_id,
        can_manage,
    })
}

pub async fn deliveries_page(
    State(state): State<AppState>,
    viewer: RequirePage<MonitoringView>,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
) -> PageResult {
    let id = parse_id::<Webhook>(&id)?;
    let account = viewer.auth.account();
    let mut conn = state.store.conn().await?;
    let webhook = store::get(&mut conn, account, id).await?;
    let names = organization_names(&mut conn, account).await?;
    drop(conn);
    let filters = Filters::read(raw.as_deref());
    let page = DeliveriesPage {
        chrome: Chrome::new(&viewer, &webhook.name),
        tab: "deliveries",
        table: table(&state, &viewer, &webhook, &filters).await?,
        webhook: WebhookView::new(&webhook, &names),
        statuses: DeliveryStatus::ALL.iter().map(|s| s.as_str()).collect(),
        event_types: EventType::ALL.iter().map(|t| t.as_str()).collect(),
        status: filters.given.value("status"),
        event_type: filters.given.value("event_type"),
        errors: filters.given.errors,
    };
    let status = match page.errors.is_empty() {
        true => StatusCode::OK,
        false => StatusCode::UNPROCESSABLE_ENTITY,
    };
    Ok((status, Html(page.render()?)).into_response())
}

/// The table alone, for paging and refreshing in place.
pub async fn deliveries_table(
    State(state): State<AppState>,
    viewer: RequirePage<MonitoringView>,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
) -> PageResult {
    let id = parse_id::<Webhook>(&id)?;
    let mut conn = state.store.conn().await?;
    let webhook = store::get(&mut conn, viewer.auth.account(), id).await?;
    drop(conn);
    let filters = Filters::read(raw.as_deref());
    render(&DeliveriesTablePartial {
        table: table(&state, &viewer, &webhook, &filters).await?,
    })
}

pub struct AttemptRow {
    pub attempt: u32,
    pub started: String,
    pub duration_ms: u64,
    pub success: bool,
    pub status_code: String,
    pub error: String,
    pub response_body: String,
}

#[derive(Template)]
#[template(path = "webhooks/delivery.html")]
struct DeliveryPage {
    chrome: Chrome,
    webhook: WebhookView,
    delivery: DeliveryRow,
    payload: String,
    attempts: Vec<AttemptRow>,
    can_manage: bool,
}

/// One delivery: its payload and every attempt, with Retry when it failed.
pub async fn delivery_page(
    State(state): State<AppState>,
    viewer: RequirePage<MonitoringView>,
    Path((id, delivery)): Path<(String, String)>,
) -> PageResult {
    let id = parse_id::<Webhook>(&id)?;
    let delivery = parse_id::<Delivery>(&delivery)?;
    let account = viewer.auth.account();
    let mut conn = state.store.conn().await?;
    let webhook = store::get(&mut conn, account, id).await?;
    let names = organization_names(&mut conn, account).await?;
    let detail = deliveries::detail(
        &mut conn,
        account,
        TargetKind::Webhook,
        &id.to_string(),
        delivery,
    )
    .await?;
    drop(conn);
    let attempts = detail
        .attempts
        .iter()
        .map(|a| AttemptRow {
            attempt: a.attempt,
            started: when(a.started_at),
            duration_ms: a.duration_ms,
            success: a.success,
            status_code: a.status_code.map(|c| c.to_string()).unwrap_or_default(),
            error: a.error.clone().unwrap_or_default(),
            response_body: a.response_body.clone().unwrap_or_default(),
        })
        .collect();
    render(&DeliveryPage {
        chrome: Chrome::new(&viewer, &webhook.name),
        delivery: DeliveryRow::from(&detail.delivery),
        payload: serde_json::to_string_pretty(&detail.payload).unwrap_or_default(),
        attempts,
        webhook: WebhookView::new(&webhook, &names),
        can_manage: viewer.has(Permission::MonitoringManage),
    })
}

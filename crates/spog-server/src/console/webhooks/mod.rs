//! `/webhooks`: subscriptions (SPEC 5.1, 10) — the list, the Event Types tab, create and edit
//! forms, and a subscription's page with the synchronous Test; its Deliveries tab is in
//! [`deliveries`]. Pages read through the same store functions as `GET /api/v1/webhooks`;
//! every change is a form that goes through the JSON API (the audited path), whose 422 field
//! errors show next to their fields. Without `monitoring.manage` the forms and buttons are
//! not there.

mod deliveries;

pub use deliveries::{deliveries_page, deliveries_table, delivery_page};

use std::collections::HashMap;

use askama::Template;
use axum::extract::{Path, Query, State};
use spog_core::events::EventType;
use spog_core::model::Organization;
use spog_core::webhooks::Webhook;
use spog_core::{Id, Permission, page};
use spog_store::webhooks as store;

use super::error::{PageError, PageResult};
use super::layout::{Chrome, render, when};
use super::lists::{
    EventTypeOption, ListQuery, OrganizationOption, Pager, event_type_options, organization_name,
    organization_names, organization_options, parse_id,
};
use super::session::{RequirePage, Viewer};
use crate::auth::permissions::{MonitoringManage, MonitoringView};
use crate::state::AppState;

const PATH: &str = "/webhooks";

/// A subscription as the pages show it.
pub struct WebhookView {
    pub id: String,
    pub name: String,
    pub url: String,
    pub organization: String,
    pub event_types: Vec<&'static str>,
    pub active: bool,
    pub has_secret: bool,
    /// `Name: value` lines, as the headers field takes them.
    pub headers: String,
    pub created: String,
    pub updated: String,
}

impl WebhookView {
    fn new(webhook: &Webhook, names: &HashMap<Id<Organization>, String>) -> Self {
        WebhookView {
            id: webhook.id.to_string(),
            name: webhook.name.clone(),
            url: webhook.url.clone(),
            organization: organization_name(names, webhook.organization_id),
            event_types: webhook.event_types.iter().map(|t| t.as_str()).collect(),
            active: webhook.active,
            has_secret: webhook.has_secret,
            headers: webhook
                .headers
                .iter()
                .map(|(name, value)| format!("{name}: {value}"))
                .collect::<Vec<_>>()
                .join("\n"),
            created: when(webhook.created_at),
            updated: when(webhook.updated_at),
        }
    }
}

pub struct WebhooksTable {
    pub rows: Vec<WebhookView>,
    pub pager: Pager,
    pub can_manage: bool,
}

#[derive(Template)]
#[template(path = "webhooks/list.html")]
struct ListPage {
    chrome: Chrome,
    tab: &'static str,
    table: WebhooksTable,
}

#[derive(Template)]
#[template(path = "webhooks/table.html")]
struct TablePartial {
    table: WebhooksTable,
}

async fn table(
    state: &AppState,
    viewer: &Viewer,
    query: &ListQuery,
) -> Result<WebhooksTable, PageError> {
    let account = viewer.auth.account();
    let mut conn = state.store.conn().await?;
    let names = organization_names(&mut conn, account).await?;
    let page = store::list(
        &mut conn,
        account,
        None,
        page::DEFAULT_LIMIT,
        query.cursor.as_deref(),
    )
    .await?;
    Ok(WebhooksTable {
        rows: page
            .items
            .iter()
            .map(|w| WebhookView::new(w, &names))
            .collect(),
        pager: Pager::of(PATH, query, &page),
        can_manage: viewer.has(Permission::MonitoringManage),
    })
}

pub async fn list_page(
    State(state): State<AppState>,
    viewer: RequirePage<MonitoringView>,
    Query(query): Query<ListQuery>,
) -> PageResult {
    render(&ListPage {
        chrome: Chrome::new(&viewer, "Webhooks"),
        tab: "webhooks",
        table: table(&state, &viewer, &query).await?,
    })
}

pub async fn table_partial(
    State(state): State<AppState>,
    viewer: RequirePage<MonitoringView>,
    Query(query): Query<ListQuery>,
) -> PageResult {
    render(&TablePartial {
        table: table(&state, &viewer, &query).await?,
    })
}

#[derive(Template)]
#[template(path = "webhooks/event_types.html")]
struct EventTypesPage {
    chrome: Chrome,
    tab: &'static str,
    event_types: Vec<EventTypeOption>,
}

/// The Event Types tab: what `GET /api/v1/webhooks/event-types` lists.
pub async fn event_types_page(viewer: RequirePage<MonitoringView>) -> PageResult {
    render(&EventTypesPage {
        chrome: Chrome::new(&viewer, "Webhooks"),
        tab: "event-types",
        event_types: event_type_options(EventType::ALL, &[]),
    })
}

/// The create form (`webhook` is `None`) or the edit form of a subscription.
#[derive(Template)]
#[template(path = "webhooks/form.html")]
struct FormPage {
    chrome: Chrome,
    webhook: Option<WebhookView>,
    organizations: Vec<OrganizationOption>,
    event_types: Vec<EventTypeOption>,
    active: bool,
}

pub async fn new_page(
    State(state): State<AppState>,
    viewer: RequirePage<MonitoringManage>,
) -> PageResult {
    let mut conn = state.store.conn().await?;
    let organizations = organization_options(&mut conn, viewer.auth.account()).await?;
    drop(conn);
    render(&FormPage {
        chrome: Chrome::new(&viewer, "New webhook"),
        webhook: None,
        organizations,
        event_types: event_type_options(EventType::ALL, &[]),
        active: true,
    })
}

pub async fn edit_page(
    State(state): State<AppState>,
    viewer: RequirePage<MonitoringManage>,
    Path(id): Path<String>,
) -> PageResult {
    let id = parse_id::<Webhook>(&id)?;
    let account = viewer.auth.account();
    let mut conn = state.store.conn().await?;
    let webhook = store::get(&mut conn, account, id).await?;
    let names = organization_names(&mut conn, account).await?;
    drop(conn);
    render(&FormPage {
        chrome: Chrome::new(&viewer, "Edit webhook"),
        event_types: event_type_options(EventType::ALL, &webhook.event_types),
        active: webhook.active,
        webhook: Some(WebhookView::new(&webhook, &names)),
        organizations: Vec::new(),
    })
}

#[derive(Template)]
#[template(path = "webhooks/detail.html")]
struct DetailPage {
    chrome: Chrome,
    tab: &'static str,
    webhook: WebhookView,
    can_manage: bool,
}

/// A subscription: what it sends where, the Test button, Edit and Delete.
pub async fn detail_page(
    State(state): State<AppState>,
    viewer: RequirePage<MonitoringView>,
    Path(id): Path<String>,
) -> PageResult {
    let id = parse_id::<Webhook>(&id)?;
    let account = viewer.auth.account();
    let mut conn = state.store.conn().await?;
    let webhook = store::get(&mut conn, account, id).await?;
    let names = organization_names(&mut conn, account).await?;
    drop(conn);
    render(&DetailPage {
        chrome: Chrome::new(&viewer, &webhook.name),
        tab: "overview",
        webhook: WebhookView::new(&webhook, &names),
        can_manage: viewer.has(Permission::MonitoringManage),
    })
}

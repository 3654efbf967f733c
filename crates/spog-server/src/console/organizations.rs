//! `/admin/organizations`: every signed-in user sees the account's organizations (as
//! `GET /organizations` allows); users.manage creates, renames and deletes them through
//! `/api/v1/organizations`.

use askama::Template;
use axum::extract::{Path, State};
use spog_core::Permission;
use spog_core::model::Organization;
use spog_store::identity::organizations;

use super::error::{PageError, PageResult};
use super::layout::{Chrome, render, when};
use super::lists::parse_id;
use super::session::Viewer;
use crate::state::AppState;

pub struct OrganizationRow {
    pub id: String,
    pub name: String,
    pub created: String,
}

pub struct OrganizationsTable {
    pub rows: Vec<OrganizationRow>,
    pub can_manage: bool,
}

#[derive(Template)]
#[template(path = "admin/organizations.html")]
struct OrganizationsPage {
    chrome: Chrome,
    table: OrganizationsTable,
}

#[derive(Template)]
#[template(path = "admin/organizations_table.html")]
struct OrganizationsTablePartial {
    table: OrganizationsTable,
}

#[derive(Template)]
#[template(path = "admin/organization_edit.html")]
struct OrganizationEditPage {
    chrome: Chrome,
    organization: OrganizationRow,
    can_manage: bool,
}

fn row(organization: Organization) -> OrganizationRow {
    OrganizationRow {
        id: organization.id.to_string(),
        name: organization.name,
        created: when(organization.created_at),
    }
}

async fn table(state: &AppState, viewer: &Viewer) -> Result<OrganizationsTable, PageError> {
    let mut conn = state.store.conn().await?;
    let list = organizations::list(&mut conn, viewer.auth.account()).await?;
    Ok(OrganizationsTable {
        rows: list.into_iter().map(row).collect(),
        can_manage: viewer.has(Permission::UsersManage),
    })
}

pub async fn list_page(State(state): State<AppState>, viewer: Viewer) -> PageResult {
    render(&OrganizationsPage {
        chrome: Chrome::new(&viewer, "Organizations"),
        table: table(&state, &viewer).await?,
    })
}

pub async fn table_partial(State(state): State<AppState>, viewer: Viewer) -> PageResult {
    render(&OrganizationsTablePartial {
        table: table(&state, &viewer).await?,
    })
}

pub async fn edit_page(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(id): Path<String>,
) -> PageResult {
    let id = parse_id::<Organization>(&id)?;
    let mut conn = state.store.conn().await?;
    let organization = organizations::get(&mut conn, viewer.auth.account(), id).await?;
    render(&OrganizationEditPage {
        chrome: Chrome::new(&viewer, "Organizations"),
        organization: row(organization),
        can_manage: viewer.has(Permission::UsersManage),
    })
}

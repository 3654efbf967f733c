//! `/admin/roles`: built-in and custom roles; create, edit and delete custom ones with their
//! permissions. Reads like `GET /roles` (users.manage); changes go through `/api/v1/roles`.

use askama::Template;
use axum::extract::{Path, State};
use spog_core::PermissionSet;
use spog_core::model::Role;
use spog_store::identity::roles;

use super::error::{PageError, PageResult};
use super::layout::{Chrome, render};
use super::lists::{PermissionOption, parse_id, permission_options};
use super::session::{RequirePage, Viewer};
use crate::auth::permissions::UsersManage;
use crate::state::AppState;

pub struct RoleRow {
    pub id: String,
    pub name: String,
    pub description: String,
    pub permissions: Vec<&'static str>,
    pub builtin: bool,
}

pub struct RolesTable {
    pub rows: Vec<RoleRow>,
}

#[derive(Template)]
#[template(path = "admin/roles.html")]
struct RolesPage {
    chrome: Chrome,
    permissions: Vec<PermissionOption>,
    table: RolesTable,
}

#[derive(Template)]
#[template(path = "admin/roles_table.html")]
struct RolesTablePartial {
    table: RolesTable,
}

#[derive(Template)]
#[template(path = "admin/role_edit.html")]
struct RoleEditPage {
    chrome: Chrome,
    role: RoleRow,
    permissions: Vec<PermissionOption>,
}

fn row(role: Role) -> RoleRow {
    RoleRow {
        id: role.id.to_string(),
        name: role.name,
        description: role.description,
        permissions: role.permissions.names(),
        builtin: role.builtin,
    }
}

async fn table(state: &AppState, viewer: &Viewer) -> Result<RolesTable, PageError> {
    let mut conn = state.store.conn().await?;
    let roles = roles::list(&mut conn, viewer.auth.account()).await?;
    Ok(RolesTable {
        rows: roles.into_iter().map(row).collect(),
    })
}

pub async fn list_page(
    State(state): State<AppState>,
    viewer: RequirePage<UsersManage>,
) -> PageResult {
    let chrome = Chrome::new(&viewer, "Roles");
    render(&RolesPage {
        chrome,
        permissions: permission_options(PermissionSet::all(), PermissionSet::EMPTY),
        table: table(&state, &viewer).await?,
    })
}

pub async fn table_partial(
    State(state): State<AppState>,
    viewer: RequirePage<UsersManage>,
) -> PageResult {
    render(&RolesTablePartial {
        table: table(&state, &viewer).await?,
    })
}

pub async fn edit_page(
    State(state): State<AppState>,
    viewer: RequirePage<UsersManage>,
    Path(id): Path<String>,
) -> PageResult {
    let chrome = Chrome::new(&viewer, "Roles");
    let id = parse_id::<Role>(&id)?;
    let mut conn = state.store.conn().await?;
    let role = roles::get(&mut conn, viewer.auth.account(), id).await?;
    render(&RoleEditPage {
        chrome,
        permissions: permission_options(PermissionSet::all(), role.permissions),
        role: row(role),
    })
}

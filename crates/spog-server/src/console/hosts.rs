//! `/admin/hosts`: the hosts a viewer may see (all with hosts.manage, else those granted to
//! them, as `GET /hosts`); hosts.manage creates, renames and deletes hosts and grants and
//! revokes users' access through `/api/v1/hosts`.

use std::collections::HashMap;

use askama::Template;
use axum::extract::{Path, Query, State};
use spog_core::model::{Host, Organization, User};
use spog_core::{Id, Permission, page};
use spog_store::identity::{hosts, users};

use super::error::{PageError, PageResult};
use super::layout::{Chrome, render, when, when_or};
use super::lists::{
    ListQuery, OrganizationOption, Pager, organization_name, organization_names,
    organization_options, parse_id,
};
use super::session::{RequirePage, Viewer};
use crate::auth::permissions::HostsManage;
use crate::http::hosts::visible_host;
use crate::state::AppState;

const PATH: &str = "/admin/hosts";

pub struct HostRow {
    pub id: String,
    pub hostname: String,
    pub name: String,
    pub organization: String,
    pub online: bool,
    pub last_heartbeat: String,
}

pub struct HostsTable {
    pub rows: Vec<HostRow>,
    pub pager: Pager,
    pub can_manage: bool,
}

#[derive(Template)]
#[template(path = "admin/hosts.html")]
struct HostsPage {
    chrome: Chrome,
    organizations: Vec<OrganizationOption>,
    table: HostsTable,
}

#[derive(Template)]
#[template(path = "admin/hosts_table.html")]
struct HostsTablePartial {
    table: HostsTable,
}

/// A user granted access to a host; their email only for viewers who may read users.
pub struct AccessRow {
    pub user_id: String,
    pub user: String,
    pub granted: String,
}

pub struct AccessTable {
    pub host_id: String,
    pub rows: Vec<AccessRow>,
}

pub struct UserOption {
    pub id: String,
    pub email: String,
}

#[derive(Template)]
#[template(path = "admin/host_edit.html")]
struct HostPage {
    chrome: Chrome,
    host: HostRow,
    created: String,
    can_manage: bool,
    /// With users.manage: the users to pick from; without, the grant form takes a user id.
    users: Option<Vec<UserOption>>,
    access: Option<AccessTable>,
}

#[derive(Template)]
#[template(path = "admin/host_access.html")]
struct AccessPartial {
    access: Option<AccessTable>,
}

fn row(host: &Host, organization_names: &HashMap<Id<Organization>, String>) -> HostRow {
    HostRow {
        id: host.id.to_string(),
        hostname: host.hostname.clone(),
        name: host.name.clone(),
        organization: organization_name(organization_names, host.organization_id),
        online: host.online,
        last_heartbeat: when_or(host.last_heartbeat_at, "never"),
    }
}

async fn table(
    state: &AppState,
    viewer: &Viewer,
    query: &ListQuery,
) -> Result<HostsTable, PageError> {
    let mut conn = state.store.conn().await?;
    let names = organization_names(&mut conn, viewer.auth.account()).await?;
    let page = hosts::list(
        &mut conn,
        viewer.auth.account(),
        None,
        &viewer.auth.host_scope(),
        page::DEFAULT_LIMIT,
        query.cursor.as_deref(),
    )
    .await?;
    Ok(HostsTable {
        rows: page.items.iter().map(|h| row(h, &names)).collect(),
        pager: Pager::of(PATH, query, &page),
        can_manage: viewer.has(Permission::HostsManage),
    })
}

pub async fn list_page(
    State(state): State<AppState>,
    viewer: Viewer,
    Query(query): Query<ListQuery>,
) -> PageResult {
    let mut conn = state.store.conn().await?;
    let organizations = organization_options(&mut conn, viewer.auth.account()).await?;
    drop(conn);
    render(&HostsPage {
        chrome: Chrome::new(&viewer, "Hosts"),
        organizations,
        table: table(&state, &viewer, &query).await?,
    })
}

pub async fn table_partial(
    State(state): State<AppState>,
    viewer: Viewer,
    Query(query): Query<ListQuery>,
) -> PageResult {
    render(&HostsTablePartial {
        table: table(&state, &viewer, &query).await?,
    })
}

/// Who may see the host's sessions and recordings (hosts.manage only, like the API).
async fn access(
    state: &AppState,
    viewer: &Viewer,
    host: Id<Host>,
) -> Result<Option<AccessTable>, PageError> {
    if !viewer.has(Permission::HostsManage) {
        return Ok(None);
    }
    let account = viewer.auth.account();
    let mut conn = state.store.conn().await?;
    let grants = hosts::access_list(&mut conn, account, host).await?;
    let mut rows = Vec::with_capacity(grants.len());
    for grant in grants {
        let user = match viewer.has(Permission::UsersManage) {
            true => users::get(&mut conn, account, grant.user_id)
                .await
                .map(|u| u.email)
                .unwrap_or_else(|_| grant.user_id.to_string()),
            false => grant.user_id.to_string(),
        };
        rows.push(AccessRow {
            user_id: grant.user_id.to_string(),
            user,
            granted: when(grant.granted_at),
        });
    }
    Ok(Some(AccessTable {
        host_id: host.to_string(),
        rows,
    }))
}

pub async fn host_page(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(id): Path<String>,
) -> PageResult {
    let id = parse_id::<Host>(&id)?;
    let mut conn = state.store.conn().await?;
    let host = visible_host(&mut conn, &viewer.auth, id).await?;
    let names = organization_names(&mut conn, viewer.auth.account()).await?;
    let can_manage = viewer.has(Permission::HostsManage);
    let users = match can_manage && viewer.has(Permission::UsersManage) {
        true => {
            let page = users::list(&mut conn, viewer.auth.account(), page::MAX_LIMIT, None).await?;
            Some(
                page.items
                    .into_iter()
                    .map(|u: User| UserOption {
                        id: u.id.to_string(),
                        email: u.email,
                    })
                    .collect(),
            )
        }
        false => None,
    };
    drop(conn);
    render(&HostPage {
        chrome: Chrome::new(&viewer, "Hosts"),
        created: when(host.created_at),
        host: row(&host, &names),
        can_manage,
        users,
        access: access(&state, &viewer, id).await?,
    })
}

pub async fn access_partial(
    State(state): State<AppState>,
    viewer: RequirePage<HostsManage>,
    Path(id): Path<String>,
) -> PageResult {
    let id = parse_id::<Host>(&id)?;
    let mut conn = state.store.conn().await?;
    hosts::get(&mut conn, viewer.auth.account(), id).await?;
    drop(conn);
    render(&AccessPartial {
        access: access(&state, &viewer, id).await?,
    })
}

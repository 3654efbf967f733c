//! `/admin/users`: the account's users; create with roles, edit roles and active state,
//! delete. Reads like `GET /users` (users.manage); changes go through `/api/v1/users`.

use askama::Template;
use axum::extract::{Path, Query, State};
use spog_core::model::User;
use spog_core::page;
use spog_store::identity::{roles, users};

use super::error::PageResult;
use super::layout::{Chrome, render, when, when_or};
use super::lists::{ListQuery, Pager, RoleOption, parse_id, role_options};
use super::session::{RequirePage, Viewer};
use crate::auth::permissions::UsersManage;
use crate::state::AppState;

const PATH: &str = "/admin/users";

pub struct UserRow {
    pub id: String,
    pub email: String,
    pub name: String,
    pub roles: Vec<String>,
    pub active: bool,
    pub last_login: String,
    /// Nobody deletes themselves (the API refuses too).
    pub is_self: bool,
}

pub struct UsersTable {
    pub rows: Vec<UserRow>,
    pub pager: Pager,
}

#[derive(Template)]
#[template(path = "admin/users.html")]
struct UsersPage {
    chrome: Chrome,
    roles: Vec<RoleOption>,
    table: UsersTable,
}

#[derive(Template)]
#[template(path = "admin/users_table.html")]
struct UsersTablePartial {
    table: UsersTable,
}

#[derive(Template)]
#[template(path = "admin/user_edit.html")]
struct UserEditPage {
    chrome: Chrome,
    user: UserRow,
    created: String,
    identities: Vec<String>,
    roles: Vec<RoleOption>,
}

fn row(viewer: &Viewer, user: User) -> UserRow {
    UserRow {
        id: user.id.to_string(),
        is_self: viewer.auth.principal.user == Some(user.id),
        email: user.email,
        name: user.display_name,
        roles: user.roles,
        active: user.active,
        last_login: when_or(user.last_login_at, "never"),
    }
}

async fn table(
    state: &AppState,
    viewer: &Viewer,
    query: &ListQuery,
) -> Result<UsersTable, super::error::PageError> {
    let mut conn = state.store.conn().await?;
    let page = users::list(
        &mut conn,
        viewer.auth.account(),
        page::DEFAULT_LIMIT,
        query.cursor.as_deref(),
    )
    .await?;
    let pager = Pager::of(PATH, query, &page);
    Ok(UsersTable {
        rows: page.items.into_iter().map(|u| row(viewer, u)).collect(),
        pager,
    })
}

pub async fn list_page(
    State(state): State<AppState>,
    viewer: RequirePage<UsersManage>,
    Query(query): Query<ListQuery>,
) -> PageResult {
    let chrome = Chrome::new(&viewer, "Users");
    let mut conn = state.store.conn().await?;
    let roles = roles::list(&mut conn, viewer.auth.account()).await?;
    drop(conn);
    render(&UsersPage {
        chrome,
        roles: role_options(&roles, &[]),
        table: table(&state, &viewer, &query).await?,
    })
}

pub async fn table_partial(
    State(state): State<AppState>,
    viewer: RequirePage<UsersManage>,
    Query(query): Query<ListQuery>,
) -> PageResult {
    render(&UsersTablePartial {
        table: table(&state, &viewer, &query).await?,
    })
}

pub async fn edit_page(
    State(state): State<AppState>,
    viewer: RequirePage<UsersManage>,
    Path(id): Path<String>,
) -> PageResult {
    let chrome = Chrome::new(&viewer, "Users");
    let id = parse_id::<User>(&id)?;
    let mut conn = state.store.conn().await?;
    let user = users::get(&mut conn, viewer.auth.account(), id).await?;
    let all_roles = roles::list(&mut conn, viewer.auth.account()).await?;
    render(&UserEditPage {
        chrome,
        roles: role_options(&all_roles, &user.roles),
        created: when(user.created_at),
        identities: user
            .identities
            .iter()
            .map(|i| format!("{}: {}", i.provider, i.subject))
            .collect(),
        user: row(&viewer, user),
    })
}

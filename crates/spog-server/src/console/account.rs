//! `/account`: every signed-in user's own page (SPEC 2.1 self-service): profile, roles and
//! linked identities; changing the password, reviewing and ending sessions, making and
//! revoking their own API tokens. Reads like the `/api/v1/auth/me/...` endpoints; changes go
//! through them.

use askama::Template;
use axum::extract::{Query, State};
use spog_core::PermissionSet;
use spog_core::model::{ExternalIdentity, User};
use spog_store::identity::users;

use super::error::{PageError, PageResult};
use super::layout::{Chrome, render, when, when_or};
use super::lists::{ListQuery, PermissionOption, permission_options};
use super::session::Viewer;
use super::tokens::{self, TokensTable};
use crate::http::me::{login_session, own_sessions};
use crate::state::AppState;

const PATH: &str = "/account";

pub struct SessionRow {
    pub id: String,
    pub created: String,
    pub expires: String,
    pub method: &'static str,
    pub ip: String,
    pub user_agent: String,
    pub current: bool,
}

pub struct SessionsList {
    pub rows: Vec<SessionRow>,
}

#[derive(Template)]
#[template(path = "account/page.html")]
struct AccountPage {
    chrome: Chrome,
    user: User,
    last_login: String,
    identities: Vec<ExternalIdentity>,
    permissions: Vec<PermissionOption>,
    sessions: SessionsList,
    table: TokensTable,
}

#[derive(Template)]
#[template(path = "account/sessions.html")]
struct SessionsPartial {
    sessions: SessionsList,
}

#[derive(Template)]
#[template(path = "admin/tokens_table.html")]
struct TokensPartial {
    table: TokensTable,
}

async fn sessions(state: &AppState, viewer: &Viewer) -> Result<SessionsList, PageError> {
    let rows = own_sessions(state, &viewer.auth)
        .await?
        .into_iter()
        .map(|s| SessionRow {
            id: s.id.to_string(),
            created: when(s.created_at),
            expires: when(s.expires_at),
            method: s.method,
            ip: s.ip.unwrap_or_else(|| "unknown".to_owned()),
            user_agent: s.user_agent.unwrap_or_else(|| "unknown".to_owned()),
            current: s.current,
        })
        .collect();
    Ok(SessionsList { rows })
}

/// The viewer's own tokens (those acting as them), newest first.
/// The caller's own tokens.
async fn table(
    state: &AppState,
    viewer: &Viewer,
    query: &ListQuery,
) -> Result<TokensTable, PageError> {
    let (user, _) = login_session(&viewer.auth)?;
    tokens::table(state, viewer, query, Some(user), PATH).await
}

pub async fn account_page(
    State(state): State<AppState>,
    viewer: Viewer,
    Query(query): Query<ListQuery>,
) -> PageResult {
    let (user, _) = login_session(&viewer.auth)?;
    let mut conn = state.store.conn().await?;
    let user = users::get(&mut conn, viewer.auth.account(), user).await?;
    drop(conn);
    render(&AccountPage {
        chrome: Chrome::new(&viewer, "Account"),
        last_login: when_or(user.last_login_at, "never"),
        identities: user.identities.clone(),
        user,
        // A token never holds more than its user (the API refuses it too).
        permissions: permission_options(viewer.auth.principal.permissions, PermissionSet::EMPTY),
        sessions: sessions(&state, &viewer).await?,
        table: table(&state, &viewer, &query).await?,
    })
}

pub async fn sessions_partial(State(state): State<AppState>, viewer: Viewer) -> PageResult {
    render(&SessionsPartial {
        sessions: sessions(&state, &viewer).await?,
    })
}

pub async fn tokens_partial(
    State(state): State<AppState>,
    viewer: Viewer,
    Query(query): Query<ListQuery>,
) -> PageResult {
    render(&TokensPartial {
        table: table(&state, &viewer, &query).await?,
    })
}

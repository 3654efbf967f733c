//! `/admin/api-tokens`: credentials for other SPOG components; create (the token is shown
//! once, in the page, from the API's answer) and revoke. Reads like `GET /api-tokens`
//! (users.manage); changes go through `/api/v1/api-tokens`.

use askama::Template;
use axum::extract::{Query, State};
use spog_core::audit::ActorType;
use spog_core::model::{ApiToken, User};
use spog_core::{Id, PermissionSet, Timestamp, page};
use spog_store::identity::tokens;

use super::error::{PageError, PageResult};
use super::layout::{Chrome, render, when, when_or};
use super::lists::{ListQuery, Pager, PermissionOption, permission_options};
use super::session::{RequirePage, Viewer};
use crate::auth::permissions::UsersManage;
use crate::state::AppState;

const PATH: &str = "/admin/api-tokens";

pub struct TokenRow {
    pub id: String,
    pub name: String,
    pub prefix: String,
    pub actor_type: &'static str,
    pub permissions: Vec<&'static str>,
    pub created: String,
    pub last_used: String,
    pub expires: String,
    /// `active`, `revoked` or `expired`.
    pub status: &'static str,
    pub active: bool,
}

pub struct TokensTable {
    pub rows: Vec<TokenRow>,
    pub pager: Pager,
    /// The caller's own tokens (My account), revoked through `/auth/me/api-tokens`.
    pub own: bool,
}

#[derive(Template)]
#[template(path = "admin/tokens.html")]
struct TokensPage {
    chrome: Chrome,
    /// The first is preselected: `system`, the usual kind for another component.
    actor_types: Vec<&'static str>,
    permissions: Vec<PermissionOption>,
    table: TokensTable,
}

#[derive(Template)]
#[template(path = "admin/tokens_table.html")]
struct TokensTablePartial {
    table: TokensTable,
}

pub(super) fn row(token: ApiToken, now: Timestamp) -> TokenRow {
    let status = if token.revoked_at.is_some() {
        "revoked"
    } else if token.expires_at.is_some_and(|at| at <= now) {
        "expired"
    } else {
        "active"
    };
    TokenRow {
        id: token.id.to_string(),
        name: token.name,
        prefix: token.prefix,
        actor_type: token.actor_type.as_str(),
        permissions: token.permissions.names(),
        created: when(token.created_at),
        last_used: when_or(token.last_used_at, "never"),
        expires: when_or(token.expires_at, "never"),
        active: status == "active",
        status,
    }
}

/// The account's tokens on the page at `path`, or only those acting as `own` (My account).
pub(super) async fn table(
    state: &AppState,
    viewer: &Viewer,
    query: &ListQuery,
    own: Option<Id<User>>,
    path: &'static str,
) -> Result<TokensTable, PageError> {
    let mut conn = state.store.conn().await?;
    let page = tokens::list(
        &mut conn,
        viewer.auth.account(),
        own,
        page::DEFAULT_LIMIT,
        query.cursor.as_deref(),
    )
    .await?;
    let pager = Pager::of(path, query, &page);
    let now = Timestamp::now();
    Ok(TokensTable {
        rows: page.items.into_iter().map(|t| row(t, now)).collect(),
        pager,
        own: own.is_some(),
    })
}

pub async fn list_page(
    State(state): State<AppState>,
    viewer: RequirePage<UsersManage>,
    Query(query): Query<ListQuery>,
) -> PageResult {
    let chrome = Chrome::new(&viewer, "API tokens");
    // Nobody grants a permission they do not hold (the API refuses it too).
    let grantable = viewer.auth.principal.permissions;
    render(&TokensPage {
        chrome,
        actor_types: [
            ActorType::System,
            ActorType::Agent,
            ActorType::Workflow,
            ActorType::User,
        ]
        .map(ActorType::as_str)
        .to_vec(),
        permissions: permission_options(grantable, PermissionSet::EMPTY),
        table: table(&state, &viewer, &query, None, PATH).await?,
    })
}

pub async fn table_partial(
    State(state): State<AppState>,
    viewer: RequirePage<UsersManage>,
    Query(query): Query<ListQuery>,
) -> PageResult {
    render(&TokensTablePartial {
        table: table(&state, &viewer, &query, None, PATH).await?,
    })
}

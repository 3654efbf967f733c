//! `/admin/sso`: the account's identity providers (list, add, edit with the redirect URI to
//! register, Test, delete) and its sign-in policy (SSO-only, break-glass users). Reads like
//! `GET /identity-providers` (users.manage); changes go through the JSON API.

use askama::Template;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use spog_core::sso::{IdentityProvider, TokenAuthMethod};
use spog_store::identity::{auth_settings, providers, users};

use super::error::PageResult;
use super::layout::{Chrome, render};
use super::lists::parse_id;
use super::session::RequirePage;
use crate::auth::permissions::UsersManage;
use crate::sso::{public_base, shown};
use crate::state::AppState;

/// Users offered as break-glass users (the first of the account by email).
const MAX_USERS_SHOWN: u32 = 200;

pub struct BreakGlassOption {
    pub id: String,
    pub email: String,
    pub checked: bool,
}

#[derive(Template)]
#[template(path = "admin/sso.html")]
struct SsoPage {
    chrome: Chrome,
    providers: Vec<IdentityProvider>,
    sso_only: bool,
    users: Vec<BreakGlassOption>,
}

#[derive(Template)]
#[template(path = "admin/sso_edit.html")]
struct SsoEditPage {
    chrome: Chrome,
    provider: IdentityProvider,
    role_mappings: String,
    method: &'static str,
}

pub async fn list_page(
    State(state): State<AppState>,
    viewer: RequirePage<UsersManage>,
    headers: HeaderMap,
) -> PageResult {
    let account = viewer.auth.account();
    let base = public_base(&state.config, &headers, viewer.auth.request.origin.as_ref());
    let mut conn = state.store.conn().await?;
    let providers = providers::list(&mut conn, account)
        .await?
        .into_iter()
        .map(|p| shown(p, &base))
        .collect();
    let settings = auth_settings::get(&mut conn, account).await?;
    let users = users::list(&mut conn, account, MAX_USERS_SHOWN, None)
        .await?
        .items
        .into_iter()
        .map(|u| BreakGlassOption {
            checked: settings.break_glass_user_ids.contains(&u.id),
            id: u.id.to_string(),
            email: u.email,
        })
        .collect();
    render(&SsoPage {
        chrome: Chrome::new(&viewer, "Single sign-on"),
        providers,
        sso_only: settings.sso_only,
        users,
    })
}

pub async fn edit_page(
    State(state): State<AppState>,
    viewer: RequirePage<UsersManage>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> PageResult {
    let id = parse_id::<IdentityProvider>(&id)?;
    let base = public_base(&state.config, &headers, viewer.auth.request.origin.as_ref());
    let mut conn = state.store.conn().await?;
    let provider = shown(
        providers::get(&mut conn, viewer.auth.account(), id).await?,
        &base,
    );
    let role_mappings = serde_json::to_string_pretty(&provider.settings.role_mappings)
        .unwrap_or_else(|_| "[]".to_owned());
    let method = match provider.settings.token_auth_method {
        TokenAuthMethod::ClientSecretBasic => "client_secret_basic",
        TokenAuthMethod::ClientSecretPost => "client_secret_post",
        TokenAuthMethod::None => "none",
    };
    render(&SsoEditPage {
        chrome: Chrome::new(&viewer, "Single sign-on"),
        provider,
        role_mappings,
        method,
    })
}

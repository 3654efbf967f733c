//! `/admin/enrollment-tokens` (SPEC 11.1 "§10 console", 12.1): one-time tokens that enroll a
//! host's agent. Create shows the token and the one-line `spog-agent enroll` command once, from
//! the API's answer; the list filters by state; Revoke goes through the API. Reads like
//! `GET /enrollment-tokens` (hosts.manage); changes go through `/api/v1/enrollment-tokens`.

use std::collections::HashMap;

use askama::Template;
use axum::Extension;
use axum::extract::{RawQuery, State};
use axum::http::header::HOST;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse};
use spog_core::model::{EnrollmentToken, EnrollmentTokenState, Host};
use spog_core::page::{self, Page};
use spog_core::{FieldError, FieldErrors, Id, Timestamp};
use spog_store::agents::enrollment_tokens;
use spog_store::identity::hosts::{self, HostScope};

use super::error::{PageError, PageResult};
use super::layout::{Chrome, render, when, when_or};
use super::list_filters::{ListFilters, unshown_errors};
use super::lists::{
    FilteredPager, OrganizationOption, organization_name, organization_names, organization_options,
};
use super::session::{RequirePage, Viewer};
use crate::auth::client::ClientOrigin;
use crate::auth::permissions::HostsManage;
use crate::state::AppState;

pub const PATH: &str = "/admin/enrollment-tokens";
pub const TITLE: &str = "Enrollment tokens";

const STATES: [EnrollmentTokenState; 4] = [
    EnrollmentTokenState::Active,
    EnrollmentTokenState::Used,
    EnrollmentTokenState::Expired,
    EnrollmentTokenState::Revoked,
];

pub struct TokenRow {
    pub id: String,
    pub description: String,
    pub organization: String,
    /// The host it claims: (id, hostname).
    pub host: Option<(String, String)>,
    pub created: String,
    pub expires: String,
    pub used: String,
    /// The host that enrolled with it: (id, hostname).
    pub used_by: Option<(String, String)>,
    pub revoked: String,
    pub state: &'static str,
    pub state_badge: &'static str,
    pub active: bool,
}

pub struct TokensTable {
    /// `None` when the filter is invalid and nothing was listed.
    pub rows: Option<Vec<TokenRow>>,
    pub pager: FilteredPager,
}

/// `?state=&cursor=` as given, and the state it names.
struct Filters {
    given: ListFilters,
    parsed: Option<EnrollmentTokenState>,
}

impl Filters {
    fn read(raw: Option<&str>) -> Self {
        let mut given = ListFilters::read(raw, &["state"]);
        let parsed = given.parse("state", |text| {
            EnrollmentTokenState::parse(text)
                .ok_or_else(|| FieldError::new("state", "must be active, used, expired or revoked"))
        });
        Filters { given, parsed }
    }
}

/// The hostnames of the hosts `tokens` name, read one by one (a page holds at most
/// [`page::DEFAULT_LIMIT`] tokens, each naming at most two hosts).
async fn hostnames(
    conn: &mut spog_store::Conn,
    viewer: &Viewer,
    tokens: &[EnrollmentToken],
) -> Result<HashMap<Id<Host>, String>, PageError> {
    let mut names = HashMap::new();
    let wanted: Vec<Id<Host>> = tokens
        .iter()
        .flat_map(|t| [t.host_id, t.used_by_host_id])
        .flatten()
        .collect();
    for host in wanted {
        if names.contains_key(&host) {
            continue;
        }
        match hosts::get(conn, viewer.auth.account(), host).await {
            Ok(found) => {
                names.insert(host, found.hostname);
            }
            // Deleted since: the id is all there is.
            Err(spog_store::StoreError::NotFound) => {
                names.insert(host, host.to_string());
            }
            Err(error) => return Err(error.into()),
        }
    }
    Ok(names)
}

async fn table(
    state: &AppState,
    viewer: &Viewer,
    filters: &Filters,
) -> Result<TokensTable, PageError> {
    let query = filters.given.query();
    if !filters.given.errors.is_empty() {
        let nothing = Page::<EnrollmentToken> {
            items: Vec::new(),
            next_cursor: None,
        };
        return Ok(TokensTable {
            rows: None,
            pager: FilteredPager::of(PATH.to_owned(), query, None, &nothing),
        });
    }
    let account = viewer.auth.account();
    let mut conn = state.store.conn().await?;
    let found = enrollment_tokens::list(
        &mut conn,
        account,
        filters.parsed,
        page::DEFAULT_LIMIT,
        filters.given.cursor.as_deref(),
        Timestamp::now(),
    )
    .await?;
    let organizations = organization_names(&mut conn, account).await?;
    let hostnames = hostnames(&mut conn, viewer, &found.items).await?;
    let host = |id: Option<Id<Host>>| {
        id.map(|id| {
            let name = hostnames
                .get(&id)
                .cloned()
                .unwrap_or_else(|| id.to_string());
            (id.to_string(), name)
        })
    };
    let rows = found
        .items
        .iter()
        .map(|token| TokenRow {
            id: token.id.to_string(),
            description: token.description.clone().unwrap_or_default(),
            organization: organization_name(&organizations, token.organization_id),
            host: host(token.host_id),
            created: when(token.created_at),
            expires: when(token.expires_at),
            used: when_or(token.used_at, ""),
            used_by: host(token.used_by_host_id),
            revoked: when_or(token.revoked_at, ""),
            state: token.state.as_str(),
            state_badge: match token.state {
                EnrollmentTokenState::Active => "ok",
                EnrollmentTokenState::Used => "",
                EnrollmentTokenState::Expired => "warn",
                EnrollmentTokenState::Revoked => "bad",
            },
            active: token.state == EnrollmentTokenState::Active,
        })
        .collect();
    Ok(TokensTable {
        rows: Some(rows),
        pager: FilteredPager::of(
            PATH.to_owned(),
            query,
            filters.given.cursor.as_deref(),
            &found,
        ),
    })
}

pub struct HostOption {
    pub id: String,
    pub hostname: String,
}

#[derive(Template)]
#[template(path = "admin/enrollment_tokens.html")]
struct TokensPage {
    chrome: Chrome,
    /// Where agents reach this hub, for the `spog-agent enroll` command.
    server: String,
    organizations: Vec<OrganizationOption>,
    hosts: Vec<HostOption>,
    /// More hosts than the form lists.
    more_hosts: bool,
    state: String,
    states: Vec<&'static str>,
    errors: FieldErrors,
    table: TokensTable,
}

impl TokensPage {
    fn error(&self, name: &str) -> Option<&str> {
        self.errors.get(name)
    }

    fn other_errors(&self) -> Vec<String> {
        unshown_errors(&self.errors, &["state"])
    }
}

#[derive(Template)]
#[template(path = "admin/enrollment_tokens_table.html")]
struct TokensTablePartial {
    table: TokensTable,
}

/// The hub's address as this request reached it: its `Host` (when it is a plain authority),
/// over HTTPS when a trusted proxy says the browser used it.
fn server_url(headers: &HeaderMap, origin: Option<&ClientOrigin>, state: &AppState) -> String {
    let authority = headers
        .get(HOST)
        .and_then(|v| v.to_str().ok())
        .filter(|host| {
            !host.is_empty()
                && host.len() <= 255
                && host
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || ".-:[]".contains(c))
        })
        .map(str::to_owned)
        .unwrap_or_else(|| state.config.listen.to_string());
    let scheme = match origin.is_some_and(|o| o.https) {
        true => "https",
        false => "http",
    };
    format!("{scheme}://{authority}")
}

pub async fn list_page(
    State(state): State<AppState>,
    viewer: RequirePage<HostsManage>,
    origin: Option<Extension<ClientOrigin>>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> PageResult {
    let filters = Filters::read(raw.as_deref());
    let account = viewer.auth.account();
    let mut conn = state.store.conn().await?;
    let organizations = organization_options(&mut conn, account).await?;
    let every_host = HostScope::All;
    let listed = hosts::list(&mut conn, account, None, &every_host, page::MAX_LIMIT, None).await?;
    drop(conn);
    let page = TokensPage {
        chrome: Chrome::new(&viewer, TITLE),
        server: server_url(&headers, origin.as_deref(), &state),
        organizations,
        more_hosts: listed.next_cursor.is_some(),
        hosts: listed
            .items
            .into_iter()
            .map(|h| HostOption {
                id: h.id.to_string(),
                hostname: h.hostname,
            })
            .collect(),
        table: table(&state, &viewer, &filters).await?,
        states: STATES.iter().map(|s| s.as_str()).collect(),
        state: filters.given.value("state"),
        errors: filters.given.errors,
    };
    let status = match page.errors.is_empty() {
        true => StatusCode::OK,
        false => StatusCode::UNPROCESSABLE_ENTITY,
    };
    Ok((status, Html(page.render()?)).into_response())
}

/// The table alone, for paging and refreshes.
pub async fn table_partial(
    State(state): State<AppState>,
    viewer: RequirePage<HostsManage>,
    RawQuery(raw): RawQuery,
) -> PageResult {
    let filters = Filters::read(raw.as_deref());
    render(&TokensTablePartial {
        table: table(&state, &viewer, &filters).await?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_name_what_is_wrong_with_them() {
        let good = Filters::read(Some("state=used&cursor=abc"));
        assert!(good.given.errors.is_empty());
        assert_eq!(good.parsed, Some(EnrollmentTokenState::Used));
        assert_eq!(good.given.cursor.as_deref(), Some("abc"));
        let bad = Filters::read(Some("state=gone&colour=red"));
        assert_eq!(
            bad.given.errors.get("state"),
            Some("must be active, used, expired or revoked")
        );
        assert_eq!(
            bad.given.errors.get("colour"),
            Some("is not a filter of this list")
        );
        assert!(Filters::read(None).parsed.is_none());
    }
}

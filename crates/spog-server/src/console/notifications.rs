//! The viewer's notifications (SPEC 6, 10): the `/notifications` page with filters and paging,
//! and the bell's dropdown list. Both read like `GET /api/v1/notifications`; marking read goes
//! through the API, which tells the user's other tabs. Every signed-in user has them.

use askama::Template;
use axum::extract::{Query, State};
use serde::Deserialize;
use spog_core::notification::{Category, Notification, Severity};
use spog_core::page::{self, Page};
use spog_store::notifications;

use super::error::{PageError, PageResult};
use super::layout::{Chrome, render, when, when_or};
use super::session::Viewer;
use crate::state::AppState;

/// Notifications the bell's dropdown shows.
const MENU_SIZE: u32 = 8;

/// `?read=&category=&cursor=` as forms send them: empty means "any".
#[derive(Deserialize)]
pub struct NotificationQuery {
    #[serde(default)]
    read: String,
    #[serde(default)]
    category: String,
    cursor: Option<String>,
}

struct Filter {
    read: Option<bool>,
    category: Option<Category>,
}

impl NotificationQuery {
    fn filter(&self) -> Result<Filter, PageError> {
        let read = match self.read.as_str() {
            "" => None,
            "true" => Some(true),
            "false" => Some(false),
            _ => {
                return Err(PageError::BadRequest(
                    "read must be true or false".to_owned(),
                ));
            }
        };
        let category = match self.category.as_str() {
            "" => None,
            text => Some(Category::parse(text).ok_or_else(|| {
                PageError::BadRequest(
                    "category must be job, deployment, alert, security or system".to_owned(),
                )
            })?),
        };
        Ok(Filter { read, category })
    }

    /// The filters as a query string, without the cursor.
    fn filters(&self) -> String {
        form_urlencoded::Serializer::new(String::new())
            .extend_pairs(
                [("read", &self.read), ("category", &self.category)]
                    .into_iter()
                    .filter(|(_, v)| !v.is_empty()),
            )
            .finish()
    }
}

pub struct NotificationRow {
    pub id: String,
    pub title: String,
    pub message: String,
    pub link: Option<String>,
    pub category: &'static str,
    pub severity: &'static str,
    /// The badge class of the severity.
    pub tone: &'static str,
    pub broadcast: bool,
    pub read: bool,
    pub created: String,
    pub read_at: String,
}

impl From<Notification> for NotificationRow {
    fn from(n: Notification) -> Self {
        NotificationRow {
            id: n.id.to_string(),
            title: n.title,
            message: n.message,
            link: n.link,
            category: n.category.as_str(),
            severity: n.severity.as_str(),
            tone: match n.severity {
                Severity::Critical | Severity::High => "bad",
                Severity::Medium => "warn",
                Severity::Low => "ok",
                Severity::Info => "",
            },
            broadcast: n.broadcast,
            read: n.read,
            created: when(n.created_at),
            read_at: when_or(n.read_at, ""),
        }
    }
}

pub struct NotificationList {
    pub rows: Vec<NotificationRow>,
    /// The filters, for the pager's links.
    pub filters: String,
    pub paged: bool,
    pub next: Option<String>,
    /// `?…` of this very page (filters and cursor), for refreshing it in place.
    pub here: String,
}

impl NotificationList {
    /// `?<filters>&` or `?`.
    fn link(&self, more: &str) -> String {
        let parts: Vec<&str> = [self.filters.as_str(), more]
            .into_iter()
            .filter(|p| !p.is_empty())
            .collect();
        match parts.is_empty() {
            true => String::new(),
            false => format!("?{}", parts.join("&")),
        }
    }
}

#[derive(Template)]
#[template(path = "notifications/page.html")]
struct NotificationsPage {
    chrome: Chrome,
    read: String,
    category: String,
    categories: Vec<&'static str>,
    list: NotificationList,
}

#[derive(Template)]
#[template(path = "notifications/list.html")]
struct ListPartial {
    list: NotificationList,
}

#[derive(Template)]
#[template(path = "notifications/menu.html")]
struct MenuPartial {
    rows: Vec<NotificationRow>,
    more: bool,
}

async fn read_page(
    state: &AppState,
    viewer: &Viewer,
    query: &NotificationQuery,
    limit: u32,
) -> Result<Page<Notification>, PageError> {
    let filter = query.filter()?;
    // Console sessions always act as a user.
    let user = viewer.auth.principal.user.ok_or(PageError::NotFound)?;
    let mut conn = state.store.conn().await?;
    Ok(notifications::list(
        &mut conn,
        viewer.auth.account(),
        user,
        filter.read,
        filter.category,
        limit,
        query.cursor.as_deref(),
    )
    .await?)
}

async fn list(
    state: &AppState,
    viewer: &Viewer,
    query: &NotificationQuery,
) -> Result<NotificationList, PageError> {
    let page = read_page(state, viewer, query, page::DEFAULT_LIMIT).await?;
    let cursor = query.cursor.as_ref().map(|c| {
        format!(
            "cursor={}",
            form_urlencoded::byte_serialize(c.as_bytes()).collect::<String>()
        )
    });
    let mut list = NotificationList {
        rows: page.items.into_iter().map(Into::into).collect(),
        filters: query.filters(),
        paged: query.cursor.is_some(),
        next: page.next_cursor.map(|c| {
            format!(
                "cursor={}",
                form_urlencoded::byte_serialize(c.as_bytes()).collect::<String>()
            )
        }),
        here: String::new(),
    };
    list.here = list.link(cursor.as_deref().unwrap_or_default());
    Ok(list)
}

pub async fn notifications_page(
    State(state): State<AppState>,
    viewer: Viewer,
    Query(query): Query<NotificationQuery>,
) -> PageResult {
    let list = list(&state, &viewer, &query).await?;
    render(&NotificationsPage {
        chrome: Chrome::new(&viewer, "Notifications"),
        read: query.read,
        category: query.category,
        categories: categories(),
        list,
    })
}

/// `GET /notifications/list`: the page's list alone, refreshed live and after changes.
pub async fn list_partial(
    State(state): State<AppState>,
    viewer: Viewer,
    Query(query): Query<NotificationQuery>,
) -> PageResult {
    render(&ListPartial {
        list: list(&state, &viewer, &query).await?,
    })
}

/// `GET /notifications/menu`: the newest few for the bell's dropdown.
pub async fn menu_partial(
    State(state): State<AppState>,
    viewer: Viewer,
    Query(query): Query<NotificationQuery>,
) -> PageResult {
    let page = read_page(&state, &viewer, &query, MENU_SIZE).await?;
    render(&MenuPartial {
        more: page.next_cursor.is_some(),
        rows: page.items.into_iter().map(Into::into).collect(),
    })
}

/// The categories a filter offers.
pub fn categories() -> Vec<&'static str> {
    Category::ALL.iter().map(|c| c.as_str()).collect()
}

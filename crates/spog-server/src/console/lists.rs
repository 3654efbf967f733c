//! What the list pages share: `?cursor=` paging of htmx-refreshable tables (with or without
//! filters in the link), ids in paths, organizations by name, and checkbox lists of
//! permissions, roles and event types.

use std::collections::HashMap;

use serde::Deserialize;
use spog_core::events::EventType;
use spog_core::model::{Account, Organization, Role};
use spog_core::page::Page;
use spog_core::{Id, Permission, PermissionSet};
use spog_store::identity::organizations;

use super::error::PageError;

/// `?cursor=` of a list page or its table partial; nothing else is expected, nothing else
/// breaks the page.
#[derive(Deserialize)]
pub struct ListQuery {
    pub cursor: Option<String>,
}

/// Links between pages of a table: the page's path, the next page's cursor.
pub struct Pager {
    pub path: &'static str,
    pub paged: bool,
    pub next: Option<String>,
}

impl Pager {
    pub fn of<T>(path: &'static str, query: &ListQuery, page: &Page<T>) -> Self {
        Pager {
            path,
            paged: query.cursor.is_some(),
            next: page
                .next_cursor
                .as_ref()
                .map(|c| form_urlencoded::byte_serialize(c.as_bytes()).collect()),
        }
    }
}

/// Links between pages of a filtered table: the filters stay in every link, and the table's
/// partial is the page's path plus `/table`.
pub struct FilteredPager {
    pub path: String,
    /// The validated filters as a query string (no cursor).
    pub query: String,
    pub paged: bool,
    /// This page's cursor, URL-encoded.
    pub cursor: Option<String>,
    pub next: Option<String>,
}

impl FilteredPager {
    pub fn of<T>(path: String, query: String, cursor: Option<&str>, page: &Page<T>) -> Self {
        FilteredPager {
            path,
            query,
            paged: cursor.is_some(),
            cursor: cursor.map(|c| form_urlencoded::byte_serialize(c.as_bytes()).collect()),
            next: page
                .next_cursor
                .as_ref()
                .map(|c| form_urlencoded::byte_serialize(c.as_bytes()).collect()),
        }
    }

    /// This very page (filters and cursor), so that a live refresh stays on it.
    pub fn here(&self, table: bool) -> String {
        match &self.cursor {
            Some(cursor) => self.link(table, &format!("cursor={cursor}")),
            None => self.link(table, ""),
        }
    }

    /// The page's link with its filters and, if any, `more` (`cursor=…`).
    pub fn link(&self, table: bool, more: &str) -> String {
        let path = match table {
            true => format!("{}/table", self.path),
            false => self.path.clone(),
        };
        match (self.query.is_empty(), more.is_empty()) {
            (true, true) => path,
            (true, false) => format!("{path}?{more}"),
            (false, true) => format!("{path}?{}", self.query),
            (false, false) => format!("{path}?{}&{more}", self.query),
        }
    }
}

/// A query string of the non-empty `pairs`, in order.
pub fn encode_query(pairs: &[(&str, String)]) -> String {
    let mut serializer = form_urlencoded::Serializer::new(String::new());
    for (name, value) in pairs.iter().filter(|(_, v)| !v.is_empty()) {
        serializer.append_pair(name, value);
    }
    serializer.finish()
}

/// The account's organizations' names by id.
pub async fn organization_names(
    conn: &mut spog_store::Conn,
    account: Id<Account>,
) -> Result<HashMap<Id<Organization>, String>, PageError> {
    Ok(organizations::list(conn, account)
        .await?
        .into_iter()
        .map(|o| (o.id, o.name))
        .collect())
}

/// An organization's name, or its id when it is not (or no longer) known.
pub fn organization_name(
    names: &HashMap<Id<Organization>, String>,
    id: Id<Organization>,
) -> String {
    names.get(&id).cloned().unwrap_or_else(|| id.to_string())
}

/// An organization as a choice of a form.
pub struct OrganizationOption {
    pub id: String,
    pub name: String,
}

pub async fn organization_options(
    conn: &mut spog_store::Conn,
    account: Id<Account>,
) -> Result<Vec<OrganizationOption>, PageError> {
    Ok(organizations::list(conn, account)
        .await?
        .into_iter()
        .map(|o| OrganizationOption {
            id: o.id.to_string(),
            name: o.name,
        })
        .collect())
}

/// An event type as a checkbox.
pub struct EventTypeOption {
    pub name: &'static str,
    pub description: &'static str,
    pub checked: bool,
}

/// Checkboxes for `offered` event types, ticked where `checked` lists them.
pub fn event_type_options(
    offered: impl IntoIterator<Item = EventType>,
    checked: &[EventType],
) -> Vec<EventTypeOption> {
    offered
        .into_iter()
        .map(|t| EventTypeOption {
            name: t.as_str(),
            description: t.description(),
            checked: checked.contains(&t),
        })
        .collect()
}

/// An id from a page's path; one that does not parse names nothing, so the page is 404.
pub fn parse_id<T>(text: &str) -> Result<Id<T>, PageError> {
    text.parse().map_err(|_| PageError::NotFound)
}

/// A permission as a checkbox.
pub struct PermissionOption {
    pub name: &'static str,
    pub description: &'static str,
    pub checked: bool,
}

/// Checkboxes for `offered` permissions, ticked where `checked` holds them.
pub fn permission_options(offered: PermissionSet, checked: PermissionSet) -> Vec<PermissionOption> {
    offered
        .iter()
        .map(|p: Permission| PermissionOption {
            name: p.as_str(),
            description: p.description(),
            checked: checked.contains(p),
        })
        .collect()
}

/// A role as a checkbox.
pub struct RoleOption {
    pub name: String,
    pub description: String,
    pub checked: bool,
}

pub fn role_options(roles: &[Role], checked: &[String]) -> Vec<RoleOption> {
    roles
        .iter()
        .map(|role| RoleOption {
            name: role.name.clone(),
            description: role.description.clone(),
            checked: checked.contains(&role.name),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filtered_pages_keep_their_filters_in_every_link() {
        let page = Page {
            items: vec![1],
            next_cursor: Some("a+b/c".to_owned()),
        };
        let query = encode_query(&[("status", "failed".into()), ("event_type", String::new())]);
        assert_eq!(query, "status=failed");
        let pager = FilteredPager::of("/webhooks/1/deliveries".into(), query, Some("x y"), &page);
        assert_eq!(pager.next.as_deref(), Some("a%2Bb%2Fc"));
        assert_eq!(
            pager.link(false, ""),
            "/webhooks/1/deliveries?status=failed"
        );
        assert_eq!(
            pager.link(true, "cursor=z"),
            "/webhooks/1/deliveries/table?status=failed&cursor=z"
        );
        assert_eq!(
            pager.here(true),
            "/webhooks/1/deliveries/table?status=failed&cursor=x+y"
        );
        let first = FilteredPager::of("/alerts".into(), String::new(), None, &page);
        assert_eq!(first.here(false), "/alerts");
        assert_eq!(first.link(true, "cursor=z"), "/alerts/table?cursor=z");
    }
}

//! What the admin pages share: `?cursor=` paging of htmx-refreshable tables, ids in paths,
//! and checkbox lists of permissions and roles.

use serde::Deserialize;
use spog_core::model::Role;
use spog_core::page::Page;
use spog_core::{Id, Permission, PermissionSet};

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

//! What every signed-in page shares: the sidebar of SPEC 10, the top bar, the CSRF token, and
//! the "you do not have access" state of a page whose permission the viewer lacks.

use askama::Template;
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse};
use spog_core::{Permission, Timestamp};

use super::assets;
use super::error::PageResult;
use super::session::Viewer;

struct NavEntry {
    section: &'static str,
    label: &'static str,
    href: &'static str,
    /// Hidden from viewers without it (the page itself says why it shows nothing).
    requires: Option<Permission>,
}

/// The sidebar in the order of SPEC 10. Pages not built yet have no entry until they exist;
/// each is one line.
const NAV: &[NavEntry] = &[
    NavEntry {
        section: "",
        label: "Dashboard",
        href: "/",
        requires: None,
    },
    NavEntry {
        section: "",
        label: "Audit logs",
        href: "/audit-logs",
        requires: Some(Permission::AuditLogsView),
    },
    NavEntry {
        section: "Terminal",
        label: "Sessions",
        href: "/terminal/sessions",
        requires: Some(Permission::SessionRecordingsView),
    },
    NavEntry {
        section: "Terminal",
        label: "Recordings",
        href: "/terminal/recordings",
        requires: Some(Permission::SessionRecordingsView),
    },
    NavEntry {
        section: "Desktop",
        label: "Recordings",
        href: "/desktop/recordings",
        requires: Some(Permission::SessionRecordingsView),
    },
    NavEntry {
        section: "",
        label: "Webhooks",
        href: "/webhooks",
        requires: Some(Permission::MonitoringView),
    },
    NavEntry {
        section: "",
        label: "Notification channels",
        href: "/notification-channels",
        requires: Some(Permission::MonitoringView),
    },
    NavEntry {
        section: "",
        label: "Alerts",
        href: "/alerts",
        requires: Some(Permission::MonitoringView),
    },
    NavEntry {
        section: "",
        label: "System health",
        href: "/system/health",
        requires: Some(Permission::MonitoringView),
    },
    NavEntry {
        section: "Admin",
        label: "Users",
        href: "/admin/users",
        requires: Some(Permission::UsersManage),
    },
    NavEntry {
        section: "Admin",
        label: "Roles",
        href: "/admin/roles",
        requires: Some(Permission::UsersManage),
    },
    NavEntry {
        section: "Admin",
        label: "API tokens",
        href: "/admin/api-tokens",
        requires: Some(Permission::UsersManage),
    },
    NavEntry {
        section: "Admin",
        label: "Organizations",
        href: "/admin/organizations",
        requires: None,
    },
    NavEntry {
        section: "Admin",
        label: "Hosts",
        href: "/admin/hosts",
        requires: None,
    },
];

pub struct NavSection {
    pub title: &'static str,
    pub links: Vec<NavLink>,
}

pub struct NavLink {
    pub label: &'static str,
    pub href: &'static str,
    pub current: bool,
}

/// The layout's data, a field of every page template (`base.html` reads it).
pub struct Chrome {
    pub title: String,
    pub user_name: String,
    pub user_email: String,
    pub csrf: String,
    pub assets: String,
    pub sections: Vec<NavSection>,
    /// The bell's category filter.
    pub notification_categories: Vec<&'static str>,
}

impl Chrome {
    /// The layout for `viewer` on the page whose sidebar entry is `href`.
    pub fn new(viewer: &Viewer, title: &str, href: &str) -> Self {
        let mut sections: Vec<NavSection> = Vec::new();
        let visible = NAV
            .iter()
            .filter(|entry| entry.requires.is_none_or(|p| viewer.has(p)));
        for entry in visible {
            let link = NavLink {
                label: entry.label,
                href: entry.href,
                current: entry.href == href,
            };
            match sections.last_mut() {
                Some(section) if section.title == entry.section => section.links.push(link),
                _ => sections.push(NavSection {
                    title: entry.section,
                    links: vec![link],
                }),
            }
        }
        let principal = &viewer.auth.principal;
        Chrome {
            title: title.to_owned(),
            user_name: principal.name.clone(),
            user_email: principal.email.clone().unwrap_or_default(),
            csrf: viewer.csrf.clone(),
            assets: assets::base(),
            sections,
            notification_categories: super::notifications::categories(),
        }
    }
}

/// Renders a page (or partial) with status 200.
pub fn render(template: &impl Template) -> PageResult {
    Ok(Html(template.render()?).into_response())
}

#[derive(Template)]
#[template(path = "no_access.html")]
struct NoAccess {
    chrome: Chrome,
    permission: &'static str,
}

/// The page for a viewer who lacks `permission`: the layout, and what to ask for.
pub fn no_access(chrome: Chrome, permission: Permission) -> PageResult {
    let page = NoAccess {
        chrome,
        permission: permission.as_str(),
    };
    Ok((StatusCode::FORBIDDEN, Html(page.render()?)).into_response())
}

/// `2026-11-25 10:00:00 UTC`: to the second, which is what people read.
pub fn when(at: Timestamp) -> String {
    let text = at.to_string();
    format!("{} {} UTC", &text[..10], &text[11..19])
}

pub fn when_or(at: Option<Timestamp>, none: &str) -> String {
    at.map(when).unwrap_or_else(|| none.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_read_to_the_second_in_utc() {
        let at = Timestamp::parse("2026-11-25T10:00:00.123456Z").unwrap();
        assert_eq!(when(at), "2026-11-25 10:00:00 UTC");
        assert_eq!(when_or(None, "never"), "never");
    }
}

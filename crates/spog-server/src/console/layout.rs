//! What every signed-in page shares: the sidebar of SPEC 10 (drawn from [`NAV`]), the top
//! bar, the CSRF token, and the "you do not have access" state of a page whose permission the
//! viewer lacks.

use askama::Template;
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use spog_core::{Permission, Timestamp};

use super::assets;
use super::error::{PageError, PageResult};
use super::pages::NAV;
use super::session::Viewer;

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
    /// The layout for `viewer` on a page titled `title`: the sidebar holds the entries shown
    /// to them, the one the page stands under highlighted.
    pub fn new(viewer: &Viewer, title: &str) -> Self {
        let here = viewer.here.map(|here| here.entry.path());
        let mut sections: Vec<NavSection> = Vec::new();
        for entry in NAV.iter().filter(|entry| entry.shown_to(viewer)) {
            let link = NavLink {
                label: entry.label,
                href: entry.path(),
                current: here == Some(entry.path()),
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
pub fn no_access(viewer: &Viewer, permission: Permission) -> Response {
    let title = viewer.here.map_or("this page", |here| here.page.title);
    let page = NoAccess {
        chrome: Chrome::new(viewer, title),
        permission: permission.as_str(),
    };
    match page.render() {
        Ok(html) => (StatusCode::FORBIDDEN, Html(html)).into_response(),
        Err(error) => PageError::from(error).into_response(),
    }
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

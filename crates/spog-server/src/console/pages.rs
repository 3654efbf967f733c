//! The console's pages in one table: each sidebar entry of SPEC 10, the permission that shows
//! it, and the pages behind it. The router mounts the table and the sidebar is drawn from it,
//! so an entry cannot exist without its pages. Each page's handler names the permission it
//! needs with [`RequirePage`](super::session::RequirePage) (the entry's, or `*.manage` for a
//! form that changes things); the browser test
//! `every_sidebar_entrys_pages_refuse_viewers_without_its_permission` walks the table to prove
//! that none of them forgets.

use axum::routing::{MethodRouter, get, post};
use axum::{Extension, Router};
use spog_core::Permission;

use super::session::Viewer;
use super::{
    alerts, audit, channels, dashboard, enrollment_tokens, hosts, organizations,
    recording_settings, recordings, roles, sso_admin, system, terminal, tokens, users, webhooks,
};
use crate::state::AppState;

/// One route of the console.
pub struct Page {
    pub path: &'static str,
    /// What the no-access page calls it (its own heading may name the object it shows).
    pub title: &'static str,
    route: fn() -> MethodRouter<AppState>,
}

const fn page(
    path: &'static str,
    title: &'static str,
    route: fn() -> MethodRouter<AppState>,
) -> Page {
    Page { path, title, route }
}

/// A sidebar entry and the pages behind it.
pub struct NavEntry {
    pub label: &'static str,
    /// The sidebar heading it stands under (`""`: none).
    pub section: &'static str,
    /// Hidden from viewers without it; the pages behind it refuse them too.
    pub permission: Option<Permission>,
    /// The first is where the entry links; the others (sub-pages and partials) highlight it.
    pub pages: &'static [Page],
}

impl NavEntry {
    pub fn path(&self) -> &'static str {
        self.pages[0].path
    }

    /// Whether `viewer` sees this entry.
    pub fn shown_to(&self, viewer: &Viewer) -> bool {
        self.permission.is_none_or(|p| viewer.has(p))
    }
}

/// Where a request of the table landed: what its layout highlights and its refusal names.
#[derive(Clone, Copy)]
pub struct Here {
    pub entry: &'static NavEntry,
    pub page: &'static Page,
}

/// The sidebar in the order of SPEC 10.
pub const NAV: &[NavEntry] = &[
    NavEntry {
        label: "Dashboard",
        section: "",
        permission: None,
        pages: &[
            page("/", "Dashboard", || get(dashboard::dashboard)),
            page("/dashboard/activity", "Dashboard", || {
                get(dashboard::activity_partial)
            }),
            page("/dashboard/tiles", "Dashboard", || {
                get(dashboard::tiles_partial)
            }),
        ],
    },
    NavEntry {
        label: "Audit logs",
        section: "",
        permission: Some(Permission::AuditLogsView),
        pages: &[
            page("/audit-logs", "Audit logs", || get(audit::search_page)),
            page("/audit-logs/stats", "Audit logs", || get(audit::stats_page)),
            page("/audit-logs/integrity", "Audit logs", || {
                get(audit::integrity_page)
            }),
            // Verifying walks the chain and is itself on record: a POST, never a link or prefetch.
            page("/audit-logs/integrity/report", "Audit logs", || {
                post(audit::report_partial)
            }),
            page("/audit-logs/integrity/checkpoints", "Audit logs", || {
                get(audit::checkpoints_partial)
            }),
            page(
                "/audit-logs/checkpoints/{seq}/download",
                "Audit logs",
                || get(audit::checkpoint_download),
            ),
            page("/audit-logs/{id}", "Audit logs", || get(audit::detail_page)),
        ],
    },
    NavEntry {
        label: "Sessions",
        section: "Terminal",
        permission: Some(Permission::SessionRecordingsView),
        pages: &[page(recordings::SESSIONS, "Terminal sessions", || {
            get(recordings::sessions_page)
        })],
    },
    NavEntry {
        label: "Recordings",
        section: "Terminal",
        permission: Some(Permission::SessionRecordingsView),
        pages: &[
            page(recordings::TERMINAL, "Terminal recordings", || {
                get(recordings::terminal_page)
            }),
            page("/terminal/recordings/{id}", "Terminal recording", || {
                get(recordings::terminal_play)
            }),
        ],
    },
    NavEntry {
        label: "Recordings",
        section: "Desktop",
        permission: Some(Permission::SessionRecordingsView),
        pages: &[
            page(recordings::DESKTOP, "Desktop recordings", || {
                get(recordings::desktop_page)
            }),
            page("/desktop/recordings/{id}", "Desktop playback", || {
                get(recordings::desktop_play)
            }),
        ],
    },
    NavEntry {
        label: "Webhooks",
        section: "",
        permission: Some(Permission::MonitoringView),
        pages: &[
            page("/webhooks", "Webhooks", || get(webhooks::list_page)),
            page("/webhooks/table", "Webhooks", || {
                get(webhooks::table_partial)
            }),
            page("/webhooks/event-types", "Webhooks", || {
                get(webhooks::event_types_page)
            }),
            page("/webhooks/new", "New webhook", || get(webhooks::new_page)),
            page("/webhooks/{id}", "Webhooks", || get(webhooks::detail_page)),
            page("/webhooks/{id}/edit", "Edit webhook", || {
                get(webhooks::edit_page)
            }),
            page("/webhooks/{id}/deliveries", "Webhooks", || {
                get(webhooks::deliveries_page)
            }),
            page("/webhooks/{id}/deliveries/table", "Webhooks", || {
                get(webhooks::deliveries_table)
            }),
            page(
                "/webhooks/{id}/deliveries/{delivery_id}",
                "Webhooks",
                || get(webhooks::delivery_page),
            ),
        ],
    },
    NavEntry {
        label: "Notification channels",
        section: "",
        permission: Some(Permission::MonitoringView),
        pages: &[
            page("/notification-channels", channels::TITLE, || {
                get(channels::list_page)
            }),
            page("/notification-channels/table", channels::TITLE, || {
                get(channels::table_partial)
            }),
            page("/notification-channels/new", channels::TITLE, || {
                get(channels::new_page)
            }),
            page("/notification-channels/{id}", channels::TITLE, || {
                get(channels::channel_page)
            }),
        ],
    },
    NavEntry {
        label: "Alerts",
        section: "",
        permission: Some(Permission::MonitoringView),
        pages: &[
            page("/alerts", "Alerts", || get(alerts::alerts_page)),
            page("/alerts/table", "Alerts", || get(alerts::alerts_table)),
            page("/alerts/{id}", "Alerts", || get(alerts::alert_page)),
            // The rules are the page's second tab.
            page("/alert-rules", "Alert rules", || get(alerts::rules_page)),
            page("/alert-rules/table", "Alert rules", || {
                get(alerts::rules_table)
            }),
            page("/alert-rules/new", "New alert rule", || {
                get(alerts::new_rule_page)
            }),
            page("/alert-rules/{id}", "Alert rules", || {
                get(alerts::edit_rule_page)
            }),
        ],
    },
    NavEntry {
        label: "System health",
        section: "",
        permission: Some(Permission::MonitoringView),
        pages: &[
            page("/system/health", "System health", || {
                get(system::health_page)
            }),
            page("/system/health/report", "System health", || {
                get(system::health_partial)
            }),
        ],
    },
    NavEntry {
        label: "Recordings",
        section: "Settings",
        permission: Some(Permission::SessionRecordingsView),
        pages: &[page(
            recording_settings::PATH,
            recording_settings::TITLE,
            || get(recording_settings::settings_page),
        )],
    },
    NavEntry {
        label: "Users",
        section: "Admin",
        permission: Some(Permission::UsersManage),
        pages: &[
            page("/admin/users", "Users", || get(users::list_page)),
            page("/admin/users/table", "Users", || get(users::table_partial)),
            page("/admin/users/{id}", "Users", || get(users::edit_page)),
        ],
    },
    NavEntry {
        label: "Roles",
        section: "Admin",
        permission: Some(Permission::UsersManage),
        pages: &[
            page("/admin/roles", "Roles", || get(roles::list_page)),
            page("/admin/roles/table", "Roles", || get(roles::table_partial)),
            page("/admin/roles/{id}", "Roles", || get(roles::edit_page)),
        ],
    },
    NavEntry {
        label: "Single sign-on",
        section: "Admin",
        permission: Some(Permission::UsersManage),
        pages: &[
            page("/admin/sso", "Single sign-on", || get(sso_admin::list_page)),
            page("/admin/sso/{id}", "Single sign-on", || {
                get(sso_admin::edit_page)
            }),
        ],
    },
    NavEntry {
        label: "API tokens",
        section: "Admin",
        permission: Some(Permission::UsersManage),
        pages: &[
            page("/admin/api-tokens", "API tokens", || get(tokens::list_page)),
            page("/admin/api-tokens/table", "API tokens", || {
                get(tokens::table_partial)
            }),
        ],
    },
    NavEntry {
        label: "Organizations",
        section: "Admin",
        // Every user reads them; users.manage changes them.
        permission: None,
        pages: &[
            page("/admin/organizations", "Organizations", || {
                get(organizations::list_page)
            }),
            page("/admin/organizations/table", "Organizations", || {
                get(organizations::table_partial)
            }),
            page("/admin/organizations/{id}", "Organizations", || {
                get(organizations::edit_page)
            }),
        ],
    },
    NavEntry {
        label: "Hosts",
        section: "Admin",
        // Every user sees the hosts granted to them; hosts.manage sees and changes all.
        permission: None,
        pages: &[
            page("/admin/hosts", "Hosts", || get(hosts::list_page)),
            page("/admin/hosts/table", "Hosts", || get(hosts::table_partial)),
            page("/admin/hosts/{id}", "Hosts", || get(hosts::host_page)),
            page("/admin/hosts/{id}/overview", "Hosts", || {
                get(hosts::overview_partial)
            }),
            page("/admin/hosts/{id}/charts", "Host metrics", || {
                get(hosts::charts_partial)
            }),
            page("/admin/hosts/{id}/access", "Hosts", || {
                get(hosts::access_partial)
            }),
            // The web terminal (terminal.connect, checked by its handler).
            page("/hosts/{id}/terminal", "Terminal", || {
                get(terminal::terminal_page)
            }),
        ],
    },
    NavEntry {
        label: "Enrollment tokens",
        section: "Admin",
        permission: Some(Permission::HostsManage),
        pages: &[
            page(enrollment_tokens::PATH, enrollment_tokens::TITLE, || {
                get(enrollment_tokens::list_page)
            }),
            page(
                "/admin/enrollment-tokens/table",
                enrollment_tokens::TITLE,
                || get(enrollment_tokens::table_partial),
            ),
        ],
    },
];

/// Every page of the table, each told where it stands.
pub fn router() -> Router<AppState> {
    let pages = NAV
        .iter()
        .flat_map(|entry| entry.pages.iter().map(move |page| Here { entry, page }));
    pages.fold(Router::new(), |router, here| {
        let route = (here.page.route)().layer(Extension(here));
        router.route(here.page.path, route)
    })
}

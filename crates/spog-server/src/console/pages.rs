//! The console's pages in one table: each sidebar entry of SPEC 10, the permission that opens
//! it, and the routes of its part of the console. The router mounts the table and the sidebar
//! is drawn from it, so an entry cannot exist without its page; the browser test
//! `every_page_of_the_sidebar_opens_with_its_permission_alone` walks it to prove that each page
//! asks for the permission its entry names, no more and no less.

use axum::routing::{MethodRouter, get, post};
use axum::{Extension, Router};
use spog_core::Permission;

use super::session::Viewer;
use super::{
    alerts, audit, channels, dashboard, hosts, organizations, recordings, roles, system, tokens,
    users, webhooks,
};
use crate::state::AppState;

type Route = fn() -> MethodRouter<AppState>;

/// A sidebar entry and the part of the console behind it.
pub struct NavPage {
    pub path: &'static str,
    pub label: &'static str,
    /// The sidebar heading it stands under (`""`: none).
    pub section: &'static str,
    /// Hidden from viewers without it, and its page answers them with the no-access page.
    pub permission: Option<Permission>,
    /// The page at `path`.
    page: Route,
    /// The pages and partials under it: they highlight its entry.
    under: &'static [(&'static str, Route)],
}

impl NavPage {
    /// Whether `viewer` sees this entry (and may open its page).
    pub fn opens_for(&self, viewer: &Viewer) -> bool {
        self.permission.is_none_or(|p| viewer.has(p))
    }

    fn router(&'static self) -> Router<AppState> {
        let page = Router::new().route(self.path, (self.page)());
        let all = (self.under.iter()).fold(page, |router, (path, route)| router.route(path, route()));
        // Tells the pages (and their no-access answer) which entry they are under.
        all.layer(Extension(self))
    }
}

/// The sidebar in the order of SPEC 10.
pub const PAGES: &[NavPage] = &[
    NavPage {
        path: "/",
        label: "Dashboard",
        section: "",
        permission: None,
        page: || get(dashboard::dashboard),
        under: &[
            ("/dashboard/activity", || get(dashboard::activity_partial)),
            ("/dashboard/tiles", || get(dashboard::tiles_partial)),
        ],
    },
    NavPage {
        path: "/audit-logs",
        label: "Audit logs",
        section: "",
        permission: Some(Permission::AuditLogsView),
        page: || get(audit::search_page),
        under: &[
            ("/audit-logs/stats", || get(audit::stats_page)),
            ("/audit-logs/integrity", || get(audit::integrity_page)),
            // Verifying walks the chain and is itself on record: a POST, never a link or prefetch.
            ("/audit-logs/integrity/report", || {
                post(audit::report_partial)
            }),
            ("/audit-logs/integrity/checkpoints", || {
                get(audit::checkpoints_partial)
            }),
            ("/audit-logs/checkpoints/{seq}/download", || {
                get(audit::checkpoint_download)
            }),
            ("/audit-logs/{id}", || get(audit::detail_page)),
        ],
    },
    NavPage {
        path: recordings::SESSIONS,
        label: "Sessions",
        section: "Terminal",
        permission: Some(Permission::SessionRecordingsView),
        page: || get(recordings::sessions_page),
        under: &[],
    },
    NavPage {
        path: recordings::TERMINAL,
        label: "Recordings",
        section: "Terminal",
        permission: Some(Permission::SessionRecordingsView),
        page: || get(recordings::terminal_page),
        under: &[("/terminal/recordings/{id}", || {
            get(recordings::terminal_play)
        })],
    },
    NavPage {
        path: recordings::DESKTOP,
        label: "Recordings",
        section: "Desktop",
        permission: Some(Permission::SessionRecordingsView),
        page: || get(recordings::desktop_page),
        under: &[("/desktop/recordings/{id}", || get(recordings::desktop_play))],
    },
    NavPage {
        path: "/webhooks",
        label: "Webhooks",
        section: "",
        permission: Some(Permission::MonitoringView),
        page: || get(webhooks::list_page),
        under: &[
            ("/webhooks/table", || get(webhooks::table_partial)),
            ("/webhooks/event-types", || get(webhooks::event_types_page)),
            ("/webhooks/new", || get(webhooks::new_page)),
            ("/webhooks/{id}", || get(webhooks::detail_page)),
            ("/webhooks/{id}/edit", || get(webhooks::edit_page)),
            ("/webhooks/{id}/deliveries", || get(webhooks::deliveries_page)),
            ("/webhooks/{id}/deliveries/table", || {
                get(webhooks::deliveries_table)
            }),
            ("/webhooks/{id}/deliveries/{delivery_id}", || {
                get(webhooks::delivery_page)
            }),
        ],
    },
    NavPage {
        path: "/notification-channels",
        label: "Notification channels",
        section: "",
        permission: Some(Permission::MonitoringView),
        page: || get(channels::list_page),
        under: &[
            ("/notification-channels/table", || {
                get(channels::table_partial)
            }),
            ("/notification-channels/new", || get(channels::new_page)),
            ("/notification-channels/{id}", || get(channels::channel_page)),
        ],
    },
    NavPage {
        path: "/alerts",
        label: "Alerts",
        section: "",
        permission: Some(Permission::MonitoringView),
        page: || get(alerts::alerts_page),
        under: &[
            ("/alerts/table", || get(alerts::alerts_table)),
            ("/alerts/{id}", || get(alerts::alert_page)),
            // The rules are the page's second tab.
            ("/alert-rules", || get(alerts::rules_page)),
            ("/alert-rules/table", || get(alerts::rules_table)),
            ("/alert-rules/new", || get(alerts::new_rule_page)),
            ("/alert-rules/{id}", || get(alerts::edit_rule_page)),
        ],
    },
    NavPage {
        path: "/system/health",
        label: "System health",
        section: "",
        permission: Some(Permission::MonitoringView),
        page: || get(system::health_page),
        under: &[("/system/health/report", || get(system::health_partial))],
    },
    NavPage {
        path: "/admin/users",
        label: "Users",
        section: "Admin",
        permission: Some(Permission::UsersManage),
        page: || get(users::list_page),
        under: &[
            ("/admin/users/table", || get(users::table_partial)),
            ("/admin/users/{id}", || get(users::edit_page)),
        ],
    },
    NavPage {
        path: "/admin/roles",
        label: "Roles",
        section: "Admin",
        permission: Some(Permission::UsersManage),
        page: || get(roles::list_page),
        under: &[
            ("/admin/roles/table", || get(roles::table_partial)),
            ("/admin/roles/{id}", || get(roles::edit_page)),
        ],
    },
    NavPage {
        path: "/admin/api-tokens",
        label: "API tokens",
        section: "Admin",
        permission: Some(Permission::UsersManage),
        page: || get(tokens::list_page),
        under: &[("/admin/api-tokens/table", || get(tokens::table_partial))],
    },
    NavPage {
        path: "/admin/organizations",
        label: "Organizations",
        section: "Admin",
        // Every user reads them; users.manage changes them.
        permission: None,
        page: || get(organizations::list_page),
        under: &[
            ("/admin/organizations/table", || {
                get(organizations::table_partial)
            }),
            ("/admin/organizations/{id}", || {
                get(organizations::edit_page)
            }),
        ],
    },
    NavPage {
        path: "/admin/hosts",
        label: "Hosts",
        section: "Admin",
        // Every user sees the hosts granted to them; hosts.manage sees and changes all.
        permission: None,
        page: || get(hosts::list_page),
        under: &[
            ("/admin/hosts/table", || get(hosts::table_partial)),
            ("/admin/hosts/{id}", || get(hosts::host_page)),
            ("/admin/hosts/{id}/access", || get(hosts::access_partial)),
        ],
    },
];

/// Every page of the table, each knowing its entry.
pub fn router() -> Router<AppState> {
    PAGES
        .iter()
        .fold(Router::new(), |router, page| router.merge(page.router()))
}

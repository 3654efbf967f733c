//! Permissions and the built-in roles of SPEC section 2.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Permission {
    AuditLogsView,
    AuditLogsExport,
    AuditLogsWrite,
    SessionRecordingsView,
    SessionRecordingsWrite,
    MonitoringView,
    MonitoringManage,
    EventsPublish,
    NotificationsSend,
    HostsManage,
    UsersManage,
    TerminalConnect,
    SessionRecordingsManage,
    AuditStreamsManage,
}

impl Permission {
    pub const ALL: [Permission; 14] = [
        Permission::AuditLogsView,
        Permission::AuditLogsExport,
        Permission::AuditLogsWrite,
        Permission::SessionRecordingsView,
        Permission::SessionRecordingsWrite,
        Permission::MonitoringView,
        Permission::MonitoringManage,
        Permission::EventsPublish,
        Permission::NotificationsSend,
        Permission::HostsManage,
        Permission::UsersManage,
        Permission::TerminalConnect,
        Permission::SessionRecordingsManage,
        Permission::AuditStreamsManage,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            Permission::AuditLogsView => "audit_logs.view",
            Permission::AuditLogsExport => "audit_logs.export",
            Permission::AuditLogsWrite => "audit_logs.write",
            Permission::SessionRecordingsView => "session_recordings.view",
            Permission::SessionRecordingsWrite => "session_recordings.write",
            Permission::MonitoringView => "monitoring.view",
            Permission::MonitoringManage => "monitoring.manage",
            Permission::EventsPublish => "events.publish",
            Permission::NotificationsSend => "notifications.send",
            Permission::HostsManage => "hosts.manage",
            Permission::UsersManage => "users.manage",
            Permission::TerminalConnect => "terminal.connect",
            Permission::SessionRecordingsManage => "session_recordings.manage",
            Permission::AuditStreamsManage => "audit_streams.manage",
        }
    }

    pub const fn description(self) -> &'static str {
        match self {
            Permission::AuditLogsView => {
                "List, search, view audit logs; recent activity; statistics; verify integrity"
            }
            Permission::AuditLogsExport => "Export audit logs (CSV, JSON Lines)",
            Permission::AuditLogsWrite => "Record audit entries through the ingest API",
            Permission::SessionRecordingsView => {
                "List/get terminal sessions, terminal recordings, desktop recordings"
            }
            Permission::SessionRecordingsWrite => {
                "Start, stream and end terminal and desktop recordings"
            }
            Permission::MonitoringView => {
                "List webhooks, deliveries, event types, notification channels, alert rules, alerts"
            }
            Permission::MonitoringManage => {
                "Create/update/delete webhooks, channels, alert rules; test; retry; acknowledge"
            }
            Permission::EventsPublish => "Publish platform events and metrics",
            Permission::NotificationsSend => "Create in-app notifications for users or broadcast",
            Permission::HostsManage => "Create/delete hosts; grant and revoke host access",
            Permission::UsersManage => "Manage users, roles, organizations, API tokens",
            Permission::TerminalConnect => "Open a terminal on a host one has access to",
            Permission::SessionRecordingsManage => {
                "Delete recordings, set legal holds, change recording settings"
            }
            Permission::AuditStreamsManage => "Manage audit streams and audit retention",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|p| p.as_str() == text)
    }

    const fn bit(self) -> u16 {
        1 << self as u16
    }
}

impl fmt::Display for Permission {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for Permission {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Permission {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        Self::parse(&text)
            .ok_or_else(|| serde::de::Error::custom(format!("unknown permission `{text}`")))
    }
}

/// A set of permissions, checked with a bit test on every request.
#[derive(Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct PermissionSet(u16);

impl PermissionSet {
    pub const EMPTY: Self = Self(0);

    pub fn all() -> Self {
        Permission::ALL.into_iter().collect()
    }

    pub const fn contains(self, permission: Permission) -> bool {
        self.0 & permission.bit() != 0
    }

    pub fn insert(&mut self, permission: Permission) {
        self.0 |= permission.bit();
    }

    pub const fn union(self, other: Self) -> Self {
        Self(self.0 | other.0)
    }

    pub const fn intersection(self, other: Self) -> Self {
        Self(self.0 & other.0)
    }

    pub const fn is_subset_of(self, other: Self) -> bool {
        self.0 & !other.0 == 0
    }

    pub fn iter(self) -> impl Iterator<Item = Permission> {
        Permission::ALL
            .into_iter()
            .filter(move |p| self.contains(*p))
    }

    pub fn names(self) -> Vec<&'static str> {
        self.iter().map(Permission::as_str).collect()
    }

    /// Parses names; returns the first unknown name as the error.
    pub fn parse<'a>(names: impl IntoIterator<Item = &'a str>) -> Result<Self, String> {
        let mut set = Self::EMPTY;
        for name in names {
            set.insert(Permission::parse(name).ok_or_else(|| name.to_owned())?);
        }
        Ok(set)
    }
}

impl FromIterator<Permission> for PermissionSet {
    fn from_iter<I: IntoIterator<Item = Permission>>(iter: I) -> Self {
        let mut set = Self::EMPTY;
        for permission in iter {
            set.insert(permission);
        }
        set
    }
}

impl fmt::Debug for PermissionSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set()
            .entries(self.iter().map(Permission::as_str))
            .finish()
    }
}

impl Serialize for PermissionSet {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.iter())
    }
}

impl<'de> Deserialize<'de> for PermissionSet {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let names = Vec::<Permission>::deserialize(deserializer)?;
        Ok(names.into_iter().collect())
    }
}

/// The roles every account starts with; they cannot be changed or deleted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BuiltinRole {
    Admin,
    Auditor,
    Operator,
    Viewer,
}

impl BuiltinRole {
    pub const ALL: [BuiltinRole; 4] = [
        BuiltinRole::Admin,
        BuiltinRole::Auditor,
        BuiltinRole::Operator,
        BuiltinRole::Viewer,
    ];

    pub const fn name(self) -> &'static str {
        match self {
            BuiltinRole::Admin => "admin",
            BuiltinRole::Auditor => "auditor",
            BuiltinRole::Operator => "operator",
            BuiltinRole::Viewer => "viewer",
        }
    }

    pub const fn description(self) -> &'static str {
        match self {
            BuiltinRole::Admin => "Every permission",
            BuiltinRole::Auditor => "Reads and exports audit logs and session recordings",
            BuiltinRole::Operator => "Views and manages monitoring: webhooks, channels, alerts",
            BuiltinRole::Viewer => "Views monitoring",
        }
    }

    pub fn permissions(self) -> PermissionSet {
        use Permission::*;
        match self {
            BuiltinRole::Admin => PermissionSet::all(),
            BuiltinRole::Auditor => [AuditLogsView, AuditLogsExport, SessionRecordingsView]
                .into_iter()
                .collect(),
            BuiltinRole::Operator => [MonitoringView, MonitoringManage].into_iter().collect(),
            BuiltinRole::Viewer => [MonitoringView].into_iter().collect(),
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.name() == name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_permission_round_trips_through_its_name() {
        for permission in Permission::ALL {
            assert_eq!(Permission::parse(permission.as_str()), Some(permission));
        }
        assert_eq!(Permission::parse("audit_logs.delete"), None);
    }

    #[test]
    fn builtin_roles_grant_what_the_spec_lists() {
        let auditor = BuiltinRole::Auditor.permissions();
        assert_eq!(
            auditor.names(),
            [
                "audit_logs.view",
                "audit_logs.export",
                "session_recordings.view"
            ]
        );
        assert!(!auditor.contains(Permission::MonitoringView));
        assert_eq!(BuiltinRole::Admin.permissions(), PermissionSet::all());
        assert!(
            BuiltinRole::Viewer
                .permissions()
                .is_subset_of(BuiltinRole::Operator.permissions())
        );
    }

    #[test]
    fn parsing_a_set_names_the_unknown_permission() {
        assert_eq!(
            PermissionSet::parse(["monitoring.view", "nope"]),
            Err("nope".to_owned())
        );
    }
}

//! The action namespaces the service records its own changes in (SPEC 3.1): reserved to it,
//! so that an entry ingested by another component (`POST /audit-logs`) can never pass for a
//! change the service made (a forged `user.create` or `auth.login`). An action's namespace is
//! the part before its first dot. The service's own entries are made in one place, which
//! checks (in debug builds, so every test does) that their action is in this list: a new
//! action outside it fails the tests until its namespace is added here.

/// Every namespace of the service's own actions, and those the SPEC reserves for features
/// to come (an ingested entry recorded now must not collide with them later).
pub const SERVER_NAMESPACES: &[&str] = &[
    "account",
    "alert",
    "alert_rule",
    "api_token",
    "audit_log",
    "audit_stream",
    "auth",
    "auth_settings",
    "desktop_recording",
    "enrollment_token",
    "event",
    "host",
    "identity_provider",
    "maintenance_window",
    "notification",
    "notification_channel",
    "organization",
    "permission",
    "role",
    "silence",
    "terminal_recording",
    "terminal_session",
    "user",
    "webhook",
];

/// The namespace of a dotted action: `webhook` of `webhook.create`.
pub fn namespace(action: &str) -> &str {
    action.split('.').next().unwrap_or(action)
}

/// Whether `action` is in a namespace reserved to the service.
pub fn is_server_action(action: &str) -> bool {
    SERVER_NAMESPACES.contains(&namespace(action))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_services_namespaces_are_reserved_and_others_are_free() {
        for action in [
            "user.create",
            "auth.login",
            "audit_log.verify",
            "webhook.x.y",
        ] {
            assert!(is_server_action(action), "{action}");
        }
        for action in [
            "job.run",
            "vault.rotate",
            "users.create",
            "deployment.start",
        ] {
            assert!(!is_server_action(action), "{action}");
        }
        let mut sorted = SERVER_NAMESPACES.to_vec();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted, SERVER_NAMESPACES, "kept sorted and unique");
    }
}

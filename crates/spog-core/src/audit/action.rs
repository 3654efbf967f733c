//! The catalogue of the service's own audited actions (SPEC 3.1). Every change the service
//! records is one variant here, which knows its dotted name, the type of resource it is about
//! and what it means: handlers name a variant, the console's audit search offers the
//! catalogue and the OpenAPI document publishes it (`AuditAction`). An action's namespace is
//! the part of its name before the first dot; the catalogue's namespaces, with those the SPEC
//! keeps for features to come, are reserved to the service, so an entry another component
//! ingests (`POST /audit-logs`) can never pass for a change the service made (a forged
//! `user.create` or `auth.login`).

/// Declares each action once: its variant, dotted name, resource type and meaning.
macro_rules! catalogue {
    ($(
        $variant:ident => ($name:literal, $resource_type:literal, $description:literal $(,)?),
    )+) => {
        /// One kind of change the service records.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum Action {
            $($variant,)+
        }

        impl Action {
            /// The whole catalogue, in declaration order.
            pub const ALL: &[Action] = &[$(Action::$variant,)+];

            /// `(name, resource type, description)`: the catalogue's row of the action.
            const fn row(self) -> (&'static str, &'static str, &'static str) {
                match self {
                    $(Action::$variant => ($name, $resource_type, $description),)+
                }
            }
        }
    };
}

catalogue! {
    AccountCreate => (
        "account.create",
        "account",
        "An account was created with its first organization and administrator.",
    ),
    AlertAcknowledge => ("alert.acknowledge", "alert", "A user acknowledged a firing alert."),
    AlertDelete => (
        "alert.delete",
        "alert",
        "A resolved alert was deleted once past `alert_retention`.",
    ),
    AlertFire => ("alert.fire", "alert", "An alert rule fired."),
    AlertNotify => (
        "alert.notify",
        "alert",
        "A firing alert that silences held back notified once they ended.",
    ),
    AlertResolve => (
        "alert.resolve",
        "alert",
        "An alert was resolved, by a user or because its condition stopped holding.",
    ),
    AlertRuleCreate => ("alert_rule.create", "alert_rule", "An alert rule was created."),
    AlertRuleDelete => ("alert_rule.delete", "alert_rule", "An alert rule was deleted."),
    AlertRuleUpdate => ("alert_rule.update", "alert_rule", "An alert rule was changed."),
    ApiTokenCreate => (
        "api_token.create",
        "api_token",
        "An API token was created (its secret is shown once).",
    ),
    ApiTokenRevoke => ("api_token.revoke", "api_token", "An API token was revoked."),
    AuditLogCheckpoint => (
        "audit_log.checkpoint",
        "audit_log",
        "A checkpoint of the audit chain was signed on request.",
    ),
    AuditLogExport => ("audit_log.export", "audit_log", "Audit entries were exported."),
    AuditLogVerify => (
        "audit_log.verify",
        "audit_log",
        "The audit chain's integrity was verified.",
    ),
    AuditStreamBackfill => (
        "audit_stream.backfill",
        "audit_stream",
        "An audit stream was sent back to an earlier point of the chain (metadata: old and new cursor).",
    ),
    AuditStreamCreate => ("audit_stream.create", "audit_stream", "An audit stream was created."),
    AuditStreamDelete => ("audit_stream.delete", "audit_stream", "An audit stream was deleted."),
    AuditStreamPause => ("audit_stream.pause", "audit_stream", "An audit stream was paused."),
    AuditStreamResume => ("audit_stream.resume", "audit_stream", "An audit stream was resumed."),
    AuditStreamTest => (
        "audit_stream.test",
        "audit_stream",
        "A synthetic entry was sent to an audit stream's sink.",
    ),
    AuditStreamUpdate => ("audit_stream.update", "audit_stream", "An audit stream was changed."),
    AuthLogin => ("auth.login", "user", "A user logged in, or failed to."),
    AuthLogout => ("auth.logout", "user", "A user logged out, ending the session."),
    AuthSettingsUpdate => (
        "auth_settings.update",
        "auth_settings",
        "An account's sign-in policy (SSO-only, break-glass users) was changed.",
    ),
    AuthSsoLogin => (
        "auth.sso_login",
        "user",
        "A user signed in through an identity provider, or a sign-in through one failed.",
    ),
    AuthPasswordChange => (
        "auth.password_change",
        "user",
        "A user changed their own password, ending their other sessions and their tokens.",
    ),
    AuthSessionRevoke => (
        "auth.session_revoke",
        "session",
        "A user ended one or more of their own login sessions.",
    ),
    DesktopRecordingDelete => (
        "desktop_recording.delete",
        "desktop_recording",
        "A desktop recording was deleted, by hand or past its retention.",
    ),
    DesktopRecordingEnd => (
        "desktop_recording.end",
        "desktop_recording",
        "A desktop recording ended, by its source or after going silent.",
    ),
    DesktopRecordingMove => (
        "desktop_recording.move",
        "desktop_recording",
        "A desktop recording's sealed content was moved to the configured object storage, its \
         hash checked (`spog recordings copy-to-storage`).",
    ),
    DesktopRecordingSeal => (
        "desktop_recording.seal",
        "desktop_recording",
        "A desktop recording that another instance ended was sealed by the one that wrote it.",
    ),
    DesktopRecordingVerify => (
        "desktop_recording.verify",
        "desktop_recording",
        "A desktop recording's stored content was checked against the hash its end recorded.",
    ),
    DesktopRecordingStart => (
        "desktop_recording.start",
        "desktop_recording",
        "A desktop recording started.",
    ),
    DesktopRecordingLegalHold => (
        "desktop_recording.legal_hold",
        "desktop_recording",
        "A desktop recording was put on legal hold: nothing deletes it until it is released.",
    ),
    DesktopRecordingLegalHoldRelease => (
        "desktop_recording.legal_hold_release",
        "desktop_recording",
        "A desktop recording's legal hold was released.",
    ),
    EnrollmentTokenCreate => (
        "enrollment_token.create",
        "enrollment_token",
        "A one-time enrollment token for a host agent was created (shown once).",
    ),
    EnrollmentTokenRevoke => (
        "enrollment_token.revoke",
        "enrollment_token",
        "An unused enrollment token was revoked.",
    ),
    IdentityProviderCreate => (
        "identity_provider.create",
        "identity_provider",
        "An OpenID Connect identity provider was added to the account.",
    ),
    IdentityProviderDelete => (
        "identity_provider.delete",
        "identity_provider",
        "An identity provider was deleted; the identities it linked were unlinked.",
    ),
    IdentityProviderTest => (
        "identity_provider.test",
        "identity_provider",
        "An identity provider's discovery document and keys were fetched on request.",
    ),
    IdentityProviderUpdate => (
        "identity_provider.update",
        "identity_provider",
        "An identity provider was changed.",
    ),
    EventPublish => ("event.publish", "event", "A platform event was published."),
    HostAccessGrant => (
        "host.access_grant",
        "host",
        "A user was granted access to a host's sessions and recordings.",
    ),
    HostAccessRevoke => (
        "host.access_revoke",
        "host",
        "A user's access to a host's sessions and recordings was revoked.",
    ),
    HostAgentRevoke => (
        "host.agent_revoke",
        "host",
        "A host's agent credential was revoked and its connection closed.",
    ),
    HostCreate => ("host.create", "host", "A host was registered."),
    HostDelete => ("host.delete", "host", "A host was deleted."),
    HostEnroll => (
        "host.enroll",
        "host",
        "A host agent enrolled with a token, creating or claiming its host.",
    ),
    HostOffline => (
        "host.offline",
        "host",
        "A host's heartbeat stopped and it was marked offline.",
    ),
    HostOnline => ("host.online", "host", "A heartbeat or its agent's connection brought a host online."),
    HostUpdate => ("host.update", "host", "A host was changed."),
    NotificationSend => ("notification.send", "notification", "An in-app notification was sent."),
    NotificationDelete => (
        "notification.delete",
        "notification",
        "An in-app notification was deleted once past `notification_retention`.",
    ),
    NotificationChannelCreate => (
        "notification_channel.create",
        "notification_channel",
        "A notification channel was created.",
    ),
    NotificationChannelDelete => (
        "notification_channel.delete",
        "notification_channel",
        "A notification channel was deleted.",
    ),
    NotificationChannelDeliveryRetry => (
        "notification_channel.delivery_retry",
        "notification_channel_delivery",
        "A failed delivery to a notification channel was sent again.",
    ),
    NotificationChannelTest => (
        "notification_channel.test",
        "notification_channel",
        "A test notification was sent through a channel.",
    ),
    NotificationChannelUpdate => (
        "notification_channel.update",
        "notification_channel",
        "A notification channel was changed.",
    ),
    OrganizationCreate => ("organization.create", "organization", "An organization was created."),
    OrganizationDelete => ("organization.delete", "organization", "An organization was deleted."),
    OrganizationUpdate => ("organization.update", "organization", "An organization was renamed."),
    PermissionDenied => (
        "permission.denied",
        "endpoint",
        "A change was refused because the caller lacks a permission.",
    ),
    RecordingSettingsUpdate => (
        "recording_settings.update",
        "recording_settings",
        "The account's recording settings (retention) were changed.",
    ),
    RoleCreate => ("role.create", "role", "A role was created."),
    RoleDelete => ("role.delete", "role", "A role was deleted."),
    RoleUpdate => ("role.update", "role", "A role was changed."),
    TerminalRecordingDelete => (
        "terminal_recording.delete",
        "terminal_recording",
        "A terminal recording was deleted, by hand or past its retention.",
    ),
    TerminalRecordingLegalHold => (
        "terminal_recording.legal_hold",
        "terminal_recording",
        "A terminal recording was put on legal hold: nothing deletes it until it is released.",
    ),
    TerminalRecordingMove => (
        "terminal_recording.move",
        "terminal_recording",
        "A terminal recording's sealed content was moved to the configured object storage, its \
         hash checked (`spog recordings copy-to-storage`).",
    ),
    TerminalRecordingLegalHoldRelease => (
        "terminal_recording.legal_hold_release",
        "terminal_recording",
        "A terminal recording's legal hold was released.",
    ),
    TerminalSessionEnd => (
        "terminal_session.end",
        "terminal_session",
        "A terminal session ended, by its source or after going silent.",
    ),
    TerminalSessionStart => (
        "terminal_session.start",
        "terminal_session",
        "A terminal session and its recording started.",
    ),
    TerminalRecordingSeal => (
        "terminal_recording.seal",
        "terminal_session",
        "A terminal recording that another instance ended was sealed by the one that wrote it.",
    ),
    TerminalRecordingVerify => (
        "terminal_recording.verify",
        "terminal_session",
        "A terminal recording's stored content was checked against the hash its end recorded.",
    ),
    UserCreate => ("user.create", "user", "A user was created."),
    SilenceCreate => ("silence.create", "silence", "A silence of alerts was created."),
    SilenceExpire => ("silence.expire", "silence", "A silence of alerts was ended early."),
    SilenceUpdate => ("silence.update", "silence", "A silence of alerts was changed."),
    UserDelete => ("user.delete", "user", "A user was deleted."),
    UserUpdate => (
        "user.update",
        "user",
        "A user was changed (name, password, roles, identities or active state).",
    ),
    WebhookCreate => ("webhook.create", "webhook", "A webhook was created."),
    WebhookDelete => ("webhook.delete", "webhook", "A webhook was deleted."),
    WebhookDeliveryRetry => (
        "webhook.delivery_retry",
        "webhook_delivery",
        "A failed webhook delivery was sent again.",
    ),
    WebhookTest => ("webhook.test", "webhook", "A test event was sent to a webhook."),
    WebhookUpdate => ("webhook.update", "webhook", "A webhook was changed."),
}

/// Namespaces the SPEC gives the actions of features not built yet (maintenance windows): reserved now, so that an entry ingested today cannot collide with them later.
/// A feature that is built moves its actions into the catalogue and its namespace out of here.
pub const RESERVED_NAMESPACES: &[&str] = &["maintenance_window"];

impl Action {
    /// The dotted name entries carry: `host.update`.
    pub const fn as_str(self) -> &'static str {
        self.row().0
    }

    /// The type of resource the action is about: `host`.
    pub const fn resource_type(self) -> &'static str {
        self.row().1
    }

    /// What the action means, in one line.
    pub const fn description(self) -> &'static str {
        self.row().2
    }

    /// `host` of `host.update`.
    pub fn namespace(self) -> &'static str {
        namespace(self.as_str())
    }
}

impl std::fmt::Display for Action {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The namespace of a dotted action: `webhook` of `webhook.create`.
pub fn namespace(action: &str) -> &str {
    action.split('.').next().unwrap_or(action)
}

/// Whether `action` is in a namespace reserved to the service: one of the catalogue's, or
/// one the SPEC keeps for a feature to come.
pub fn is_server_action(action: &str) -> bool {
    let namespace = namespace(action);
    RESERVED_NAMESPACES.contains(&namespace)
        || Action::ALL.iter().any(|a| a.namespace() == namespace)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    #[test]
    fn every_action_has_a_unique_dotted_name_a_resource_type_and_a_description() {
        let mut names = BTreeSet::new();
        for &action in Action::ALL {
            let name = action.as_str();
            assert!(names.insert(name), "{name} is named twice");
            let parts: Vec<&str> = name.split('.').collect();
            assert_eq!(parts.len(), 2, "{name} is namespace.verb");
            for part in parts {
                assert!(
                    part.starts_with(|c: char| c.is_ascii_lowercase())
                        && part.chars().all(|c| c.is_ascii_lowercase() || c == '_'),
                    "{name} is lowercase words joined by underscores"
                );
            }
            assert!(!action.resource_type().is_empty(), "{name}");
            assert!(action.description().ends_with('.'), "{name}");
            assert_eq!(action.to_string(), name);
        }
    }

    /// Reserving a namespace refuses ingested entries that were accepted before, and freeing
    /// one lets a component forge the service's entries: either is a decision, not a side
    /// effect of adding or renaming an action.
    #[test]
    fn the_reserved_namespaces_are_exactly_these() {
        let reserved: BTreeSet<&str> = Action::ALL
            .iter()
            .map(|a| a.namespace())
            .chain(RESERVED_NAMESPACES.iter().copied())
            .collect();
        let expected = BTreeSet::from([
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
            "recording_settings",
            "role",
            "silence",
            "terminal_recording",
            "terminal_session",
            "user",
            "webhook",
        ]);
        assert_eq!(reserved, expected);
    }

    #[test]
    fn the_services_namespaces_are_reserved_and_others_are_free() {
        for &action in Action::ALL {
            assert!(is_server_action(action.as_str()), "{action}");
        }
        for action in [
            "user.create",
            "auth.login",
            "audit_log.verify",
            "webhook.x.y",
            "silence.create",
            "audit_stream.create",
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
    }

    #[test]
    fn namespaces_kept_for_features_to_come_are_not_yet_the_catalogues() {
        for namespace in RESERVED_NAMESPACES {
            assert!(
                Action::ALL.iter().all(|a| a.namespace() != *namespace),
                "{namespace} is in the catalogue: take it out of RESERVED_NAMESPACES"
            );
        }
    }
}

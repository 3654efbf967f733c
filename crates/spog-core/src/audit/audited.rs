//! What an audit entry names of the object a change is about, for each audited domain type.

use crate::alerts::{Alert, AlertRule};
use crate::channels::Channel;
use crate::model::{Account, ApiToken, Host, Organization, Role, User};
use crate::notification::Notification;
use crate::recordings::{DesktopRecording, TerminalRecording};
use crate::webhooks::Webhook;

/// An object changes are recorded about: its id, the name the entry keeps (so the entry
/// still says what it was after the object is gone) and its organization, if it has one.
pub trait Audited {
    /// The `resource_type` of its entries; an action names the same (checked in debug builds).
    const RESOURCE_TYPE: &'static str;
    fn audit_id(&self) -> String;
    fn audit_name(&self) -> String;
    fn audit_organization(&self) -> Option<String> {
        None
    }
}

impl Audited for Account {
    const RESOURCE_TYPE: &'static str = "account";
    fn audit_id(&self) -> String {
        self.id.to_string()
    }
    fn audit_name(&self) -> String {
        self.name.clone()
    }
}

impl Audited for Organization {
    const RESOURCE_TYPE: &'static str = "organization";
    fn audit_id(&self) -> String {
        self.id.to_string()
    }
    fn audit_name(&self) -> String {
        self.name.clone()
    }
    /// An organization's entries are in the organization itself.
    fn audit_organization(&self) -> Option<String> {
        Some(self.id.to_string())
    }
}

impl Audited for User {
    const RESOURCE_TYPE: &'static str = "user";
    fn audit_id(&self) -> String {
        self.id.to_string()
    }
    fn audit_name(&self) -> String {
        self.email.clone()
    }
}

impl Audited for Role {
    const RESOURCE_TYPE: &'static str = "role";
    fn audit_id(&self) -> String {
        self.id.to_string()
    }
    fn audit_name(&self) -> String {
        self.name.clone()
    }
}

impl Audited for ApiToken {
    const RESOURCE_TYPE: &'static str = "api_token";
    fn audit_id(&self) -> String {
        self.id.to_string()
    }
    fn audit_name(&self) -> String {
        self.name.clone()
    }
}

impl Audited for Host {
    const RESOURCE_TYPE: &'static str = "host";
    fn audit_id(&self) -> String {
        self.id.to_string()
    }
    fn audit_name(&self) -> String {
        self.hostname.clone()
    }
    fn audit_organization(&self) -> Option<String> {
        Some(self.organization_id.to_string())
    }
}

impl Audited for Webhook {
    const RESOURCE_TYPE: &'static str = "webhook";
    fn audit_id(&self) -> String {
        self.id.to_string()
    }
    fn audit_name(&self) -> String {
        self.name.clone()
    }
    fn audit_organization(&self) -> Option<String> {
        Some(self.organization_id.to_string())
    }
}

impl Audited for Channel {
    const RESOURCE_TYPE: &'static str = "notification_channel";
    fn audit_id(&self) -> String {
        self.id.to_string()
    }
    fn audit_name(&self) -> String {
        self.name.clone()
    }
    fn audit_organization(&self) -> Option<String> {
        Some(self.organization_id.to_string())
    }
}

impl Audited for AlertRule {
    const RESOURCE_TYPE: &'static str = "alert_rule";
    fn audit_id(&self) -> String {
        self.id.to_string()
    }
    fn audit_name(&self) -> String {
        self.name.clone()
    }
    fn audit_organization(&self) -> Option<String> {
        Some(self.organization_id.to_string())
    }
}

/// An alert is named by its rule's name, which it keeps after the rule is deleted.
impl Audited for Alert {
    const RESOURCE_TYPE: &'static str = "alert";
    fn audit_id(&self) -> String {
        self.id.to_string()
    }
    fn audit_name(&self) -> String {
        self.rule_name.clone()
    }
    fn audit_organization(&self) -> Option<String> {
        Some(self.organization_id.to_string())
    }
}

impl Audited for Notification {
    const RESOURCE_TYPE: &'static str = "notification";
    fn audit_id(&self) -> String {
        self.id.to_string()
    }
    fn audit_name(&self) -> String {
        self.title.clone()
    }
}

/// A terminal recording is on record as its session (`terminal_session.*`), which is what
/// the API starts and ends: the entry names the session's id and `user@host`.
impl Audited for TerminalRecording {
    const RESOURCE_TYPE: &'static str = "terminal_session";
    fn audit_id(&self) -> String {
        self.session_id.to_string()
    }
    fn audit_name(&self) -> String {
        format!("{}@{}", self.user_email, self.hostname)
    }
    fn audit_organization(&self) -> Option<String> {
        Some(self.organization_id.to_string())
    }
}

impl Audited for DesktopRecording {
    const RESOURCE_TYPE: &'static str = "desktop_recording";
    fn audit_id(&self) -> String {
        self.id.to_string()
    }
    fn audit_name(&self) -> String {
        format!("{}@{}", self.user_email, self.hostname)
    }
    fn audit_organization(&self) -> Option<String> {
        Some(self.organization_id.to_string())
    }
}

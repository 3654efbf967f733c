//! What an audit entry names of the object a change is about, for each audited domain type.

use crate::Id;
use crate::alerts::silences::Silence;
use crate::alerts::{Alert, AlertRule};
use crate::audit_streams::AuditStream;
use crate::channels::Channel;
use crate::model::{Account, ApiToken, EnrollmentToken, Host, Organization, Role, User};
use crate::notification::Notification;
use crate::recordings::{DesktopRecording, RecordingSettings, TerminalRecording};
use crate::webhooks::Webhook;

/// An object changes are recorded about: its id, the name the entry keeps (so the entry
/// still says what it was after the object is gone) and its organization, if it has one.
pub trait Audited {
    /// The `resource_type` of its entries; an action names the same (checked in debug builds).
    const RESOURCE_TYPE: &'static str;
    fn audit_id(&self) -> String;
    fn audit_name(&self) -> String;
    fn audit_organization(&self) -> Option<Id<Organization>>;
}

/// `Type => "resource_type", |object| name, in organization_field;` for types whose id is `id`
/// (the organization field left out for types outside organizations).
macro_rules! audited {
    (@organization $self:ident) => { None };
    (@organization $self:ident $field:ident) => { Some($self.$field) };
    ($(
        $type:ty => $resource_type:literal, |$it:ident| $name:expr $(, in $organization:ident)?;
    )+) => {
        $(impl Audited for $type {
            const RESOURCE_TYPE: &'static str = $resource_type;
            fn audit_id(&self) -> String {
                self.id.to_string()
            }
            fn audit_name(&self) -> String {
                let $it = self;
                $name
            }
            fn audit_organization(&self) -> Option<Id<Organization>> {
                audited!(@organization self $($organization)?)
            }
        })+
    };
}

audited! {
    Account => "account", |a| a.name.clone();
    // An organization's entries are in the organization itself.
    Organization => "organization", |o| o.name.clone(), in id;
    User => "user", |u| u.email.clone();
    Role => "role", |r| r.name.clone();
    ApiToken => "api_token", |t| t.name.clone();
    Host => "host", |h| h.hostname.clone(), in organization_id;
    // A token has no name; its description, if any, says what it was for.
    EnrollmentToken => "enrollment_token",
        |t| t.description.clone().unwrap_or_else(|| "enrollment token".to_owned()),
        in organization_id;
    Webhook => "webhook", |w| w.name.clone(), in organization_id;
    Channel => "notification_channel", |c| c.name.clone(), in organization_id;
    AlertRule => "alert_rule", |r| r.name.clone(), in organization_id;
    // An alert is named by its rule's name, which it keeps after the rule is deleted.
    Alert => "alert", |a| a.rule_name.clone(), in organization_id;
    Silence => "silence", |s| format!("silence {}", s.id), in organization_id;
    Notification => "notification", |n| n.title.clone();
    AuditStream => "audit_stream", |s| s.name.clone();
    DesktopRecording => "desktop_recording", |r| format!("{}@{}", r.user_email, r.hostname),
        in organization_id;
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
    fn audit_organization(&self) -> Option<Id<Organization>> {
        Some(self.organization_id)
    }
}

/// A terminal recording as what is kept of its session (`terminal_recording.*`: deletion and
/// legal hold), named by the recording's own id, which the API addresses it by.
pub struct KeptRecording<'a>(pub &'a TerminalRecording);

impl Audited for KeptRecording<'_> {
    const RESOURCE_TYPE: &'static str = "terminal_recording";
    fn audit_id(&self) -> String {
        self.0.id.to_string()
    }
    fn audit_name(&self) -> String {
        self.0.audit_name()
    }
    fn audit_organization(&self) -> Option<Id<Organization>> {
        Some(self.0.organization_id)
    }
}

/// An account's recording settings are one object per account.
impl Audited for RecordingSettings {
    const RESOURCE_TYPE: &'static str = "recording_settings";
    fn audit_id(&self) -> String {
        self.account_id.to_string()
    }
    fn audit_name(&self) -> String {
        "recording settings".to_owned()
    }
    fn audit_organization(&self) -> Option<Id<Organization>> {
        None
    }
}

/// An object is on record alike when lent.
impl<T: Audited> Audited for &T {
    const RESOURCE_TYPE: &'static str = T::RESOURCE_TYPE;
    fn audit_id(&self) -> String {
        (*self).audit_id()
    }
    fn audit_name(&self) -> String {
        (*self).audit_name()
    }
    fn audit_organization(&self) -> Option<Id<Organization>> {
        (*self).audit_organization()
    }
}

impl Audited for crate::sso::IdentityProvider {
    const RESOURCE_TYPE: &'static str = "identity_provider";
    fn audit_id(&self) -> String {
        self.id.to_string()
    }
    fn audit_name(&self) -> String {
        self.settings.name.clone()
    }
    fn audit_organization(&self) -> Option<Id<Organization>> {
        None
    }
}

/// An account's sign-in policy is one object per account.
impl Audited for crate::sso::AuthSettings {
    const RESOURCE_TYPE: &'static str = "auth_settings";
    fn audit_id(&self) -> String {
        self.account_id.to_string()
    }
    fn audit_name(&self) -> String {
        "sign-in settings".to_owned()
    }
    fn audit_organization(&self) -> Option<Id<Organization>> {
        None
    }
}

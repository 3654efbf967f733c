//! Who makes a change, and the one way the service makes the audit entry of a change of its
//! own: an [`Actor`] did an [`Action`] to an [`Audited`] object. The caller of a request, the
//! scheduler, the command line and the first start are all actors.

use serde::Serialize;

use super::{Action, ActorType, AuditEntry, Audited, Outcome, Source};
use crate::model::Account;
use crate::{Id, Timestamp};

/// Everything an entry says about who made a change and where it came from.
#[derive(Clone, Debug)]
pub struct Actor {
    pub account: Id<Account>,
    pub actor_type: ActorType,
    pub id: Option<String>,
    pub email: Option<String>,
    pub name: Option<String>,
    pub source: Source,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    pub request_id: Option<String>,
    /// The session or API token the change is made with.
    pub credential_id: Option<String>,
    pub credential_name: Option<String>,
}

impl Actor {
    /// An actor of `account` known only by its type and source.
    pub fn new(account: Id<Account>, actor_type: ActorType, source: Source) -> Self {
        Actor {
            account,
            actor_type,
            id: None,
            email: None,
            name: None,
            source,
            ip: None,
            user_agent: None,
            request_id: None,
            credential_id: None,
            credential_name: None,
        }
    }

    /// The service itself, named for the part that acts (`alert engine`, `spog cli`).
    pub fn system(account: Id<Account>, name: &str, source: Source) -> Self {
        Actor {
            name: Some(name.to_owned()),
            ..Actor::new(account, ActorType::System, source)
        }
    }

    /// The entry of `action` done to `object`: its resource type is the action's, its id,
    /// name and organization the object's.
    pub fn did(&self, action: Action, object: &impl Audited) -> AuditEntry {
        debug_assert_eq!(
            action.resource_type(),
            object_type(object),
            "{action} is about another type of resource"
        );
        let mut entry = self.did_on(action, object.audit_id(), object.audit_name());
        entry.organization_id = object.audit_organization().map(|o| o.to_string());
        entry
    }

    /// The entry of `action` changing `before` into `after`, both kept in the entry.
    pub fn changed<T: Audited + Serialize>(
        &self,
        action: Action,
        before: &impl Serialize,
        after: &T,
    ) -> AuditEntry {
        self.did(action, after).before(before).after(after)
    }

    /// The entry of `action` done to something known only by its id and name.
    pub fn did_on(&self, action: Action, id: impl ToString, name: impl Into<String>) -> AuditEntry {
        self.entry(action).resource(id, name)
    }

    /// The entry of `action`, naming no object (the audit log's own actions).
    pub fn entry(&self, action: Action) -> AuditEntry {
        self.any_entry(action.as_str(), action.resource_type())
    }

    /// The entry of an action another component names (ingest): the caller has checked it
    /// is outside the service's namespaces ([`super::is_server_action`]).
    pub fn ingested(&self, action: &str, resource_type: &str) -> AuditEntry {
        self.any_entry(action, resource_type)
    }

    fn any_entry(&self, action: &str, resource_type: &str) -> AuditEntry {
        let now = Timestamp::now();
        AuditEntry {
            id: uuid::Uuid::now_v7().to_string(),
            seq: None,
            occurred_at: now,
            account_id: self.account.to_string(),
            organization_id: None,
            actor_type: self.actor_type,
            actor_id: self.id.clone(),
            actor_email: self.email.clone(),
            actor_name: self.name.clone(),
            source: self.source,
            ip: self.ip.clone(),
            user_agent: self.user_agent.clone(),
            request_id: self.request_id.clone(),
            action: action.to_owned(),
            resource_type: resource_type.to_owned(),
            resource_id: None,
            resource_name: None,
            outcome: Outcome::Success,
            before: None,
            after: None,
            metadata: None,
            credential_id: self.credential_id.clone(),
            credential_name: self.credential_name.clone(),
            recorded_at: Some(now),
            prev_hash: None,
            hash: None,
        }
    }
}

fn object_type<T: Audited>(_: &T) -> &'static str {
    T::RESOURCE_TYPE
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Host;

    fn host() -> Host {
        Host {
            id: Id::new(),
            organization_id: Id::new(),
            hostname: "web-1".to_owned(),
            name: "Web one".to_owned(),
            online: true,
            last_heartbeat_at: None,
            created_at: Timestamp::now(),
            updated_at: Timestamp::now(),
            facts: None,
            agent_connected: false,
            agent_version: None,
            enrolled_at: None,
        }
    }

    #[test]
    fn an_entry_names_the_action_its_resource_type_and_the_object() {
        let host = host();
        let actor = Actor::system(Id::new(), "host liveness", Source::Scheduler);
        let entry = actor.did(Action::HostOffline, &host);
        assert_eq!(entry.action, "host.offline");
        assert_eq!(entry.resource_type, "host");
        assert_eq!(entry.resource_id, Some(host.id.to_string()));
        assert_eq!(entry.resource_name.as_deref(), Some("web-1"));
        assert_eq!(
            entry.organization_id,
            Some(host.organization_id.to_string())
        );
        assert_eq!(entry.account_id, actor.account.to_string());
        assert_eq!(entry.actor_type, ActorType::System);
        assert_eq!(entry.actor_name.as_deref(), Some("host liveness"));
        assert_eq!(entry.source, Source::Scheduler);
        assert_eq!(entry.outcome, Outcome::Success);
        assert!(entry.recorded_at.is_some() && entry.seq.is_none());
    }

    #[test]
    fn a_change_keeps_the_object_before_and_after_and_is_named_by_the_after() {
        let before = host();
        let after = Host {
            hostname: "web-2".to_owned(),
            ..before.clone()
        };
        let actor = Actor::system(Id::new(), "test", Source::Cli);
        let entry = actor.changed(Action::HostUpdate, &before, &after);
        assert_eq!(entry.resource_name.as_deref(), Some("web-2"));
        let snapshot = |s: &Option<crate::audit::Snapshot>| {
            serde_json::to_value(s.as_ref().unwrap()).unwrap()["hostname"].clone()
        };
        assert_eq!(snapshot(&entry.before), "web-1");
        assert_eq!(snapshot(&entry.after), "web-2");
    }

    #[test]
    #[cfg(debug_assertions)]
    #[should_panic(expected = "another type of resource")]
    fn an_action_about_another_type_of_resource_is_caught_in_debug_builds() {
        let actor = Actor::system(Id::new(), "test", Source::Scheduler);
        let _ = actor.did(Action::WebhookDelete, &host());
    }
}

use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use super::Snapshot;
use crate::time::Timestamp;

/// Who performed a change, as the credential says.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ActorType {
    User,
    System,
    Agent,
    Workflow,
}

impl ActorType {
    pub const ALL: [ActorType; 4] = [
        ActorType::User,
        ActorType::System,
        ActorType::Agent,
        ActorType::Workflow,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            ActorType::User => "user",
            ActorType::System => "system",
            ActorType::Agent => "agent",
            ActorType::Workflow => "workflow",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|a| a.as_str() == text)
    }
}

/// Where a change came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    Web,
    Api,
    Scheduler,
    Agent,
    Workflow,
    /// The `spog` command line, run by an operator on the server.
    Cli,
}

impl Source {
    pub const ALL: [Source; 6] = [
        Source::Web,
        Source::Api,
        Source::Scheduler,
        Source::Agent,
        Source::Workflow,
        Source::Cli,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            Source::Web => "web",
            Source::Api => "api",
            Source::Scheduler => "scheduler",
            Source::Agent => "agent",
            Source::Workflow => "workflow",
            Source::Cli => "cli",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == text)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Success,
    Failure,
}

impl Outcome {
    pub const fn as_str(self) -> &'static str {
        match self {
            Outcome::Success => "success",
            Outcome::Failure => "failure",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        [Outcome::Success, Outcome::Failure]
            .into_iter()
            .find(|o| o.as_str() == text)
    }
}

/// One entry of an account's audit chain, exactly as stored and exported.
///
/// `seq`, `prev_hash` and `hash` are `None` between the commit of the change and the moment
/// the chain linker appends the entry to its account's chain.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct AuditEntry {
    pub id: String,
    pub seq: Option<i64>,
    pub occurred_at: Timestamp,
    pub account_id: String,
    pub organization_id: Option<String>,
    pub actor_type: ActorType,
    pub actor_id: Option<String>,
    pub actor_email: Option<String>,
    pub actor_name: Option<String>,
    pub source: Source,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    pub request_id: Option<String>,
    /// One of the service's own (`AuditAction`), or a component's ingested one.
    pub action: String,
    pub resource_type: String,
    pub resource_id: Option<String>,
    pub resource_name: Option<String>,
    pub outcome: Outcome,
    pub before: Option<Snapshot>,
    pub after: Option<Snapshot>,
    pub metadata: Option<Snapshot>,
    /// The session or API token the change was made with: a session's id and `session`, or
    /// a token's id and name. Absent for the service's own changes (scheduler, command
    /// line) and in entries recorded before credentials were kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credential_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credential_name: Option<String>,
    /// When the service stored the entry, by its own clock (`occurred_at` may be a client's).
    /// Absent in entries recorded before it was kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recorded_at: Option<Timestamp>,
    pub prev_hash: Option<String>,
    pub hash: Option<String>,
}

/// An entry's stored fields as borrowed text: what is hashed, read where it lies (a batch
/// of rows, an entry) without an allocation per field. Enumerations and snapshots are the
/// stored text, so a value altered into something no [`AuditEntry`] can hold still hashes
/// (and fails to match) instead of failing to read.
#[derive(Clone, Copy, Debug)]
pub struct EntryFields<'a> {
    pub id: &'a str,
    pub seq: Option<i64>,
    pub occurred_at: Timestamp,
    pub account_id: &'a str,
    pub organization_id: Option<&'a str>,
    pub actor_type: &'a str,
    pub actor_id: Option<&'a str>,
    pub actor_email: Option<&'a str>,
    pub actor_name: Option<&'a str>,
    pub source: &'a str,
    pub ip: Option<&'a str>,
    pub user_agent: Option<&'a str>,
    pub request_id: Option<&'a str>,
    pub action: &'a str,
    pub resource_type: &'a str,
    pub resource_id: Option<&'a str>,
    pub resource_name: Option<&'a str>,
    pub outcome: &'a str,
    /// Canonical JSON text.
    pub before: Option<&'a str>,
    pub after: Option<&'a str>,
    pub metadata: Option<&'a str>,
    pub credential_id: Option<&'a str>,
    pub credential_name: Option<&'a str>,
    pub recorded_at: Option<Timestamp>,
    pub prev_hash: Option<&'a str>,
    pub hash: Option<&'a str>,
}

impl AuditEntry {
    pub fn fields(&self) -> EntryFields<'_> {
        EntryFields {
            id: &self.id,
            seq: self.seq,
            occurred_at: self.occurred_at,
            account_id: &self.account_id,
            organization_id: self.organization_id.as_deref(),
            actor_type: self.actor_type.as_str(),
            actor_id: self.actor_id.as_deref(),
            actor_email: self.actor_email.as_deref(),
            actor_name: self.actor_name.as_deref(),
            source: self.source.as_str(),
            ip: self.ip.as_deref(),
            user_agent: self.user_agent.as_deref(),
            request_id: self.request_id.as_deref(),
            action: &self.action,
            resource_type: &self.resource_type,
            resource_id: self.resource_id.as_deref(),
            resource_name: self.resource_name.as_deref(),
            outcome: self.outcome.as_str(),
            before: self.before.as_ref().map(Snapshot::as_str),
            after: self.after.as_ref().map(Snapshot::as_str),
            metadata: self.metadata.as_ref().map(Snapshot::as_str),
            credential_id: self.credential_id.as_deref(),
            credential_name: self.credential_name.as_deref(),
            recorded_at: self.recorded_at,
            prev_hash: self.prev_hash.as_deref(),
            hash: self.hash.as_deref(),
        }
    }

    /// Names the resource the change is about.
    pub fn resource(mut self, id: impl ToString, name: impl Into<String>) -> Self {
        self.resource_id = Some(id.to_string());
        self.resource_name = Some(name.into());
        self
    }

    pub fn in_organization(mut self, organization: impl ToString) -> Self {
        self.organization_id = Some(organization.to_string());
        self
    }

    /// The resource as it was before the change.
    pub fn before(mut self, snapshot: &impl Serialize) -> Self {
        self.before = serde_json::to_value(snapshot).ok().map(Snapshot::redacted);
        self
    }

    /// The resource as it is after the change.
    pub fn after(mut self, snapshot: &impl Serialize) -> Self {
        self.after = serde_json::to_value(snapshot).ok().map(Snapshot::redacted);
        self
    }

    pub fn metadata(mut self, metadata: Value) -> Self {
        self.metadata = Some(Snapshot::redacted(metadata));
        self
    }

    pub fn failed(mut self) -> Self {
        self.outcome = Outcome::Failure;
        self
    }
}

//! The objects of SPEC section 2 as the API shows them.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::audit::ActorType;
use crate::{Id, PermissionSet, Timestamp};

#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct Account {
    pub id: Id<Account>,
    pub name: String,
    pub created_at: Timestamp,
}

#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct Organization {
    pub id: Id<Organization>,
    pub name: String,
    pub created_at: Timestamp,
}

/// `{provider, subject}` of an external identity provider, linked to one user.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ExternalIdentity {
    pub provider: String,
    pub subject: String,
}

#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct User {
    pub id: Id<User>,
    pub email: String,
    pub display_name: String,
    pub active: bool,
    /// Role names.
    pub roles: Vec<String>,
    pub identities: Vec<ExternalIdentity>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    pub last_login_at: Option<Timestamp>,
}

#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct Role {
    pub id: Id<Role>,
    pub name: String,
    pub description: String,
    pub permissions: PermissionSet,
    /// Built-in roles cannot be changed or deleted.
    pub builtin: bool,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct ApiToken {
    pub id: Id<ApiToken>,
    pub name: String,
    /// The first characters of the token, to recognise it in lists.
    pub prefix: String,
    pub actor_type: ActorType,
    pub permissions: PermissionSet,
    /// For `user` tokens: the user the token acts as.
    pub user_id: Option<Id<User>>,
    pub created_by: Option<Id<User>>,
    pub created_at: Timestamp,
    pub expires_at: Option<Timestamp>,
    pub revoked_at: Option<Timestamp>,
    pub last_used_at: Option<Timestamp>,
}

#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct Host {
    pub id: Id<Host>,
    pub organization_id: Id<Organization>,
    pub hostname: String,
    pub name: String,
    pub online: bool,
    pub last_heartbeat_at: Option<Timestamp>,
    /// What the host's agent last reported (SPEC 12.2); null until it reports.
    #[schema(value_type = Option<Object>)]
    pub facts: Option<serde_json::Value>,
    /// The host's agent holds its socket now.
    pub agent_connected: bool,
    pub agent_version: Option<String>,
    /// When an agent last enrolled the host.
    pub enrolled_at: Option<Timestamp>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct HostAccess {
    pub host_id: Id<Host>,
    pub user_id: Id<User>,
    pub granted_at: Timestamp,
}

/// A one-time enrollment token (SPEC 12.1); the secret is shown only when it is created.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct EnrollmentToken {
    pub id: Id<EnrollmentToken>,
    pub organization_id: Id<Organization>,
    /// The existing host the token claims, if any.
    pub host_id: Option<Id<Host>>,
    pub description: Option<String>,
    pub expires_at: Timestamp,
    pub created_at: Timestamp,
    /// The id of the user (or token) that created it; null from the command line.
    pub created_by: Option<String>,
    pub used_at: Option<Timestamp>,
    pub used_by_host_id: Option<Id<Host>>,
    pub revoked_at: Option<Timestamp>,
    pub state: EnrollmentTokenState,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum EnrollmentTokenState {
    Active,
    Used,
    Expired,
    Revoked,
}

impl EnrollmentTokenState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Used => "used",
            Self::Expired => "expired",
            Self::Revoked => "revoked",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        [Self::Active, Self::Used, Self::Expired, Self::Revoked]
            .into_iter()
            .find(|s| s.as_str() == text)
    }
}

/// A host's agent as `GET /hosts/{id}/agent` shows it (SPEC 12.1).
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct HostAgent {
    pub host_id: Id<Host>,
    pub enrolled_at: Timestamp,
    /// The credential was revoked; the agent must enroll again.
    pub revoked_at: Option<Timestamp>,
    pub connected: bool,
    pub connected_at: Option<Timestamp>,
    pub last_seen_at: Option<Timestamp>,
    pub agent_version: Option<String>,
    /// The subprotocol of the connection, e.g. `spog-agent.v1`.
    pub protocol: Option<String>,
    /// The instance holding the connection.
    pub instance_id: Option<String>,
    pub remote_addr: Option<String>,
    pub terminal_enabled: bool,
}

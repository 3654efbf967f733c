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
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct HostAccess {
    pub host_id: Id<Host>,
    pub user_id: Id<User>,
    pub granted_at: Timestamp,
}

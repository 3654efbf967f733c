//! The bodies of `POST /api/v1/agent/enroll` (SPEC 12.1).

use serde::{Deserialize, Serialize};

use crate::Facts;

/// Exchanges a one-time enrollment token for the host's credential.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnrollRequest {
    /// `spog_enroll_…`.
    pub token: String,
    pub hostname: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub facts: Option<Facts>,
}

/// 201 from the hub.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EnrollResponse {
    pub host_id: String,
    pub organization_id: String,
    /// `spog_agent_…`: the host's credential, shown only here.
    pub credential: String,
    /// The host as `GET /api/v1/hosts/{id}` shows it.
    #[serde(default)]
    pub host: serde_json::Value,
}

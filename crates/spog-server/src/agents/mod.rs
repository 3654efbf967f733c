//! Host agents (SPEC 12): enrollment tokens, the exchange of one for a host's credential,
//! and the agent socket (`GET /api/v1/agent/connect`) that keeps the host online.

pub mod enroll;
pub mod liveness;
pub mod socket;
pub mod tokens;

/// Agent credentials: `spog_agent_` and 32 random bytes, stored as SHA-256.
pub const CREDENTIAL_PREFIX: &str = "spog_agent_";
/// Enrollment tokens: `spog_enroll_` and 32 random bytes, stored as SHA-256.
pub const ENROLL_PREFIX: &str = "spog_enroll_";

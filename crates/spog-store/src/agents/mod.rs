//! Host agents (SPEC 12.1): one-time enrollment tokens, and each host's agent credential and
//! connection. Credentials and tokens are stored as SHA-256 hashes only.

pub mod credentials;
pub mod enrollment_tokens;

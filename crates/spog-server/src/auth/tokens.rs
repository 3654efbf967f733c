//! API tokens: `spog_` and 32 random bytes; only their SHA-256 is stored. A fast hash is
//! right here (unlike passwords): the token has 256 bits of entropy, so nothing is guessable,
//! and verification stays cheap on every request.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngCore;
use sha2::{Digest, Sha256};

pub const PREFIX: &str = "spog_";

pub struct NewSecret {
    pub token: String,
    pub hash: String,
    /// What lists show to recognise the token.
    pub prefix: String,
}

pub fn generate() -> NewSecret {
    generate_with(PREFIX)
}

/// A secret like an API token's with another prefix (`spog_enroll_`, `spog_agent_`).
pub fn generate_with(prefix: &str) -> NewSecret {
    let mut bytes = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut bytes);
    let token = format!("{prefix}{}", URL_SAFE_NO_PAD.encode(bytes));
    NewSecret {
        hash: hash(&token),
        prefix: token[..prefix.len() + 6].to_owned(),
        token,
    }
}

pub fn hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

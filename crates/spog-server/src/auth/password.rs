//! Password hashing with argon2id, off the async threads: hashing is deliberately slow.

use argon2::Argon2;
use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};

use crate::error::ApiError;

pub async fn hash(password: String) -> Result<String, ApiError> {
    tokio::task::spawn_blocking(move || {
        let salt = SaltString::generate(&mut OsRng);
        Argon2::default()
            .hash_password(password.as_bytes(), &salt)
            .map(|h| h.to_string())
            .map_err(|e| ApiError::internal(anyhow::anyhow!("hashing a password: {e}")))
    })
    .await
    .map_err(ApiError::internal)?
}

/// Checks `password` against `stored`; with no stored hash it still spends the time of a
/// check, so response times do not reveal which emails exist.
pub async fn verify(password: String, stored: Option<String>) -> bool {
    tokio::task::spawn_blocking(move || {
        let stored = stored.unwrap_or_else(|| DUMMY_HASH.to_owned());
        let Ok(parsed) = PasswordHash::new(&stored) else {
            return false;
        };
        let ok = Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok();
        ok && stored != DUMMY_HASH
    })
    .await
    .unwrap_or(false)
}

/// An argon2id hash of a random password nobody knows, with default parameters.
const DUMMY_HASH: &str =
    "$argon2id$v=19$m=19456,t=2,p=1$c3BvZ2R1bW15c2FsdA$2Y0Yd6bW5Yq3Cw6w9VxWcS8n4y0m0m5wXcX3VdXnYlM";

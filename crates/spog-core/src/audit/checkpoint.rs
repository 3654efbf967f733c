//! Checkpoints (SPEC 3.4): an Ed25519 signature over `(account, seq, head_hash, time)`, which
//! proves later that the chain had reached `seq` with that head, so a truncated tail or a
//! chain rewritten from some point on is caught.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use serde_json::json;
use sha2::{Digest, Sha256};

use crate::time::Timestamp;

/// The bytes that are signed: the canonical JSON (RFC 8785) of the statement.
pub fn statement(account_id: &str, seq: i64, head_hash: &str, signed_at: Timestamp) -> Vec<u8> {
    let statement = json!({
        "account_id": account_id,
        "head_hash": head_hash,
        "seq": seq,
        "signed_at": signed_at.to_string(),
    });
    serde_jcs::to_vec(&statement).expect("serialising a JSON object")
}

/// A short identifier of a public key: hex of the first 8 bytes of its SHA-256.
pub fn key_id(key: &VerifyingKey) -> String {
    hex::encode(&Sha256::digest(key.as_bytes())[..8])
}

/// Base64 signature of `message`.
pub fn sign(key: &SigningKey, message: &[u8]) -> String {
    STANDARD.encode(key.sign(message).to_bytes())
}

/// Whether `signature` (base64) is `key`'s signature of `message`.
pub fn verify(key: &VerifyingKey, message: &[u8], signature: &str) -> bool {
    let Ok(bytes) = STANDARD.decode(signature) else {
        return false;
    };
    let Ok(signature) = Signature::from_slice(&bytes) else {
        return false;
    };
    key.verify(message, &signature).is_ok()
}

/// Parses a public key given as hex or base64 of its 32 bytes.
pub fn parse_public_key(text: &str) -> Option<VerifyingKey> {
    let text = text.trim();
    let bytes = hex::decode(text)
        .ok()
        .or_else(|| STANDARD.decode(text).ok())?;
    let bytes: [u8; 32] = bytes.try_into().ok()?;
    VerifyingKey::from_bytes(&bytes).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_checkpoint_verifies_only_unchanged_and_with_its_key() {
        let key = SigningKey::from_bytes(&[3u8; 32]);
        let at = Timestamp::parse("2026-11-25T10:00:00Z").unwrap();
        let message = statement("acct", 42, &"ab".repeat(32), at);
        let signature = sign(&key, &message);
        assert!(verify(&key.verifying_key(), &message, &signature));
        let moved = statement("acct", 41, &"ab".repeat(32), at);
        assert!(!verify(&key.verifying_key(), &moved, &signature));
        let other = SigningKey::from_bytes(&[4u8; 32]);
        assert!(!verify(&other.verifying_key(), &message, &signature));
        let text = hex::encode(key.verifying_key().as_bytes());
        assert_eq!(parse_public_key(&text), Some(key.verifying_key()));
        assert_eq!(key_id(&key.verifying_key()).len(), 16);
    }
}

//! The server key and what is derived from it: the JWT signing key, the key that encrypts
//! secrets at rest, the CSRF key and the Ed25519 key that signs audit checkpoints. One key
//! per purpose, so compromising one use does not hand over the others.

use std::fs;
use std::io::Write;
use std::path::Path;

use aes_gcm::aead::{Aead, KeyInit, OsRng};
use aes_gcm::{AeadCore, Aes256Gcm, Nonce};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use ed25519_dalek::SigningKey;
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::{Digest, Sha256};

pub const KEY_FILE: &str = "server.key";

#[derive(Clone)]
pub struct Keys {
    pub jwt: [u8; 32],
    pub csrf: [u8; 32],
    secrets: Aes256Gcm,
    pub checkpoint: SigningKey,
}

impl std::fmt::Debug for Keys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Keys([redacted])")
    }
}

impl Keys {
    /// Derives every key from the configured key material, or from the key file in the data
    /// directory, generating that file on first start.
    pub fn load(configured: Option<&str>, data_dir: &Path) -> std::io::Result<Self> {
        let material = match configured {
            Some(text) => text.as_bytes().to_vec(),
            None => read_or_create_key_file(&data_dir.join(KEY_FILE))?,
        };
        Ok(Self::derive(&material))
    }

    pub fn derive(material: &[u8]) -> Self {
        let master: [u8; 32] = Sha256::digest(material).into();
        let derive = |label: &str| -> [u8; 32] {
            let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&master).expect("any key length");
            mac.update(label.as_bytes());
            mac.finalize().into_bytes().into()
        };
        Self {
            jwt: derive("spog jwt v1"),
            csrf: derive("spog csrf v1"),
            secrets: Aes256Gcm::new(&derive("spog secrets at rest v1").into()),
            checkpoint: SigningKey::from_bytes(&derive("spog audit checkpoints v1")),
        }
    }

    /// Encrypts a secret for storage: base64 of nonce and AES-256-GCM ciphertext.
    pub fn seal(&self, plaintext: &str) -> String {
        let nonce = Aes256Gcm::generate_nonce(&mut OsRng);
        let ciphertext = self
            .secrets
            .encrypt(&nonce, plaintext.as_bytes())
            .expect("AES-GCM encryption of a short secret");
        let mut sealed = nonce.to_vec();
        sealed.extend_from_slice(&ciphertext);
        STANDARD.encode(sealed)
    }

    /// Decrypts what [`Keys::seal`] produced; `None` if it was sealed with another key.
    pub fn open(&self, sealed: &str) -> Option<String> {
        let bytes = STANDARD.decode(sealed).ok()?;
        if bytes.len() < 12 {
            return None;
        }
        let (nonce, ciphertext) = bytes.split_at(12);
        let plaintext = self
            .secrets
            .decrypt(Nonce::from_slice(nonce), ciphertext)
            .ok()?;
        String::from_utf8(plaintext).ok()
    }

    /// HMAC-SHA256 of `message` under the CSRF key, hex.
    pub fn csrf_token(&self, session: &str) -> String {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.csrf).expect("any key length");
        mac.update(session.as_bytes());
        hex::encode(mac.finalize().into_bytes())
    }
}

fn read_or_create_key_file(path: &Path) -> std::io::Result<Vec<u8>> {
    match fs::read(path) {
        Ok(bytes) => return Ok(bytes),
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
        Err(_) => {}
    }
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir)?;
    }
    let mut key = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut key);
    let text = hex::encode(key);
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    match options.open(path) {
        Ok(mut file) => {
            file.write_all(text.as_bytes())?;
            file.sync_all()?;
            Ok(text.into_bytes())
        }
        // Another process created it first: use theirs.
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => fs::read(path),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_secrets_open_only_with_the_same_key() {
        let keys = Keys::derive(b"one");
        let sealed = keys.seal("hunter2");
        assert!(!sealed.contains("hunter2"));
        assert_ne!(sealed, keys.seal("hunter2"), "a fresh nonce every time");
        assert_eq!(keys.open(&sealed).as_deref(), Some("hunter2"));
        assert_eq!(Keys::derive(b"two").open(&sealed), None);
    }

    #[test]
    fn the_key_file_is_created_once_and_reused() {
        let dir = std::env::temp_dir().join(format!("spog-keys-{}", uuid::Uuid::now_v7()));
        let first = Keys::load(None, &dir).unwrap();
        let second = Keys::load(None, &dir).unwrap();
        assert_eq!(first.jwt, second.jwt);
        assert_ne!(first.jwt, first.csrf);
        fs::remove_dir_all(dir).unwrap();
    }
}

//! The server key and what is derived from it: the JWT signing key, the key that encrypts
//! secrets at rest, the CSRF key and (unless `checkpoint_key` names its own) the Ed25519 key
//! that signs audit checkpoints. One key per purpose, so compromising one use does not hand
//! over the others.
//!
//! Key material is text: hex (64 or more digits) or base64 (standard or URL-safe, padded or
//! not) of at least 32 bytes. The text is hashed as given, so a key keeps deriving the same
//! keys whatever encoding it is in; the encoding only measures how much material it holds.

use std::fs;
use std::io::Write;
use std::path::Path;

use aes_gcm::aead::{Aead, KeyInit, OsRng, Payload};
use aes_gcm::{AeadCore, Aes256Gcm, Nonce};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
use ed25519_dalek::SigningKey;
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::{Digest, Sha256};

pub const KEY_FILE: &str = "server.key";
/// The least key material accepted, in bytes.
pub const MIN_KEY_BYTES: usize = 32;
/// Sealed values bound to where they are stored start with this; older ones are bare base64
/// (which never contains `:`).
const BOUND: &str = "v2:";

#[derive(Clone)]
pub struct Keys {
    pub jwt: [u8; 32],
    pub csrf: [u8; 32],
    /// Signs the short-lived tokens instances present to each other (SPEC 13.4).
    pub cluster: [u8; 32],
    secrets: Aes256Gcm,
    pub checkpoint: SigningKey,
}

impl std::fmt::Debug for Keys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Keys([redacted])")
    }
}

/// Where a sealed value is stored: its table, row and field. Sealing binds the value to it
/// (AEAD associated data), so a sealed value copied into another row or field fails to open.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Binding(String);

impl Binding {
    pub fn new(table: &str, row: &str, field: &str) -> Self {
        Self(format!("spog/{table}/{row}/{field}"))
    }
}

impl Keys {
    /// Derives every key from the configured key material, or from the key file in the data
    /// directory (generating that file on first start); the checkpoint key from
    /// `checkpoint_key` when it is given. Material too short to be a key is refused.
    pub fn load(
        configured: Option<&str>,
        checkpoint_key: Option<&str>,
        data_dir: &Path,
    ) -> anyhow::Result<Self> {
        let (material, source) = match configured {
            Some(text) => (text.as_bytes().to_vec(), "server_key".to_owned()),
            None => {
                let path = data_dir.join(KEY_FILE);
                let bytes = read_or_create_key_file(&path)?;
                (bytes, format!("the key file {}", path.display()))
            }
        };
        let text = std::str::from_utf8(&material)
            .map_err(|_| anyhow::anyhow!("{source} is not text: {}", ENCODINGS))?;
        key_material(text).map_err(|e| anyhow::anyhow!("{source} {e}"))?;
        let mut keys = Self::derive(&material);
        if let Some(checkpoint_key) = checkpoint_key {
            keys.checkpoint = checkpoint_signing_key(checkpoint_key)?;
        }
        Ok(keys)
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
            cluster: derive("spog cluster v1"),
            secrets: Aes256Gcm::new(&derive("spog secrets at rest v1").into()),
            checkpoint: SigningKey::from_bytes(&derive("spog audit checkpoints v1")),
        }
    }

    /// Encrypts a secret for storage where `binding` says: `v2:` and the base64 of nonce and
    /// AES-256-GCM ciphertext, with the binding as associated data.
    pub fn seal(&self, plaintext: &str, binding: &Binding) -> String {
        let nonce = Aes256Gcm::generate_nonce(&mut OsRng);
        let payload = Payload {
            msg: plaintext.as_bytes(),
            aad: binding.0.as_bytes(),
        };
        let ciphertext = self
            .secrets
            .encrypt(&nonce, payload)
            .expect("AES-GCM encryption of a short secret");
        let mut sealed = nonce.to_vec();
        sealed.extend_from_slice(&ciphertext);
        format!("{BOUND}{}", STANDARD.encode(sealed))
    }

    /// Decrypts what [`Keys::seal`] produced for the same `binding`; `None` if it was sealed
    /// with another key, for another place, or before values were bound to their place.
    pub fn open(&self, sealed: &str, binding: &Binding) -> Option<String> {
        let bound = sealed.strip_prefix(BOUND)?;
        self.decrypt(bound, binding.0.as_bytes())
    }

    /// Decrypts a value sealed before values were bound to their place (no associated
    /// data). Only for rows written then, which the start-up pass re-seals.
    pub fn open_unbound(&self, sealed: &str) -> Option<String> {
        if sealed.starts_with(BOUND) {
            return None;
        }
        self.decrypt(sealed, b"")
    }

    fn decrypt(&self, text: &str, aad: &[u8]) -> Option<String> {
        let bytes = STANDARD.decode(text).ok()?;
        if bytes.len() < 12 {
            return None;
        }
        let (nonce, ciphertext) = bytes.split_at(12);
        let payload = Payload {
            msg: ciphertext,
            aad,
        };
        let plaintext = self
            .secrets
            .decrypt(Nonce::from_slice(nonce), payload)
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

const ENCODINGS: &str = "use hex of 64 or more digits (`openssl rand -hex 32`) or base64 of 32 or \
     more bytes (`openssl rand -base64 32`)";

/// The bytes a key's text encodes (surrounding whitespace ignored), if they are enough.
pub fn key_material(text: &str) -> Result<Vec<u8>, String> {
    let text = text.trim();
    let hex_digits = !text.is_empty() && text.bytes().all(|b| b.is_ascii_hexdigit());
    let decoded = if hex_digits && text.len().is_multiple_of(2) {
        hex::decode(text).ok()
    } else {
        [STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD]
            .iter()
            .find_map(|engine| engine.decode(text).ok())
    };
    match decoded {
        Some(bytes) if bytes.len() >= MIN_KEY_BYTES => Ok(bytes),
        Some(bytes) => Err(format!(
            "holds {} bytes of key material; at least {MIN_KEY_BYTES} are needed: {ENCODINGS}",
            bytes.len()
        )),
        None => Err(format!("is neither hex nor base64: {ENCODINGS}")),
    }
}

/// The checkpoint signing key: an Ed25519 seed of exactly 32 bytes, given as hex or base64,
/// or `file:PATH` naming a file that holds it (so it can live apart from the database and
/// the server key).
fn checkpoint_signing_key(configured: &str) -> anyhow::Result<SigningKey> {
    let (text, source) = match configured.strip_prefix("file:") {
        Some(path) => (
            fs::read_to_string(path)
                .map_err(|e| anyhow::anyhow!("checkpoint_key: cannot read {path}: {e}"))?,
            format!("checkpoint_key (the file {path})"),
        ),
        None => (configured.to_owned(), "checkpoint_key".to_owned()),
    };
    let seed = key_material(&text).map_err(|e| anyhow::anyhow!("{source} {e}"))?;
    let seed: [u8; 32] = seed.try_into().map_err(|seed: Vec<u8>| {
        anyhow::anyhow!(
            "{source} holds {} bytes; an Ed25519 seed is exactly 32 (`openssl rand -hex 32`)",
            seed.len()
        )
    })?;
    Ok(SigningKey::from_bytes(&seed))
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

    const KEY: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn sealed_secrets_open_only_with_the_same_key() {
        let keys = Keys::derive(b"one");
        let here = Binding::new("webhooks", "w1", "secret");
        let sealed = keys.seal("hunter2", &here);
        assert!(!sealed.contains("hunter2"));
        assert_ne!(
            sealed,
            keys.seal("hunter2", &here),
            "a fresh nonce every time"
        );
        assert_eq!(keys.open(&sealed, &here).as_deref(), Some("hunter2"));
        assert_eq!(Keys::derive(b"two").open(&sealed, &here), None);
    }

    #[test]
    fn a_sealed_value_opens_only_in_the_row_and_field_it_was_sealed_for() {
        let keys = Keys::derive(b"one");
        let sealed = keys.seal("hunter2", &Binding::new("webhooks", "w1", "secret"));
        for elsewhere in [
            Binding::new("webhooks", "w2", "secret"),
            Binding::new("webhooks", "w1", "header:X-Api-Key"),
            Binding::new("notification_channels", "w1", "secret"),
        ] {
            assert_eq!(keys.open(&sealed, &elsewhere), None, "{elsewhere:?}");
        }
        assert_eq!(keys.open_unbound(&sealed), None);
    }

    #[test]
    fn values_sealed_before_binding_still_open_as_unbound_only() {
        let keys = Keys::derive(b"one");
        // How values were sealed before: bare base64 of nonce and ciphertext, no associated data.
        let nonce = Aes256Gcm::generate_nonce(&mut OsRng);
        let mut legacy = nonce.to_vec();
        legacy.extend(keys.secrets.encrypt(&nonce, b"hunter2".as_ref()).unwrap());
        let legacy = STANDARD.encode(legacy);
        assert_eq!(keys.open_unbound(&legacy).as_deref(), Some("hunter2"));
        assert_eq!(
            keys.open(&legacy, &Binding::new("webhooks", "w1", "secret")),
            None
        );
    }

    #[test]
    fn key_material_must_hold_32_bytes_in_hex_or_base64() {
        assert_eq!(key_material(KEY).unwrap().len(), 32);
        assert_eq!(key_material(&format!("{KEY}\n")).unwrap().len(), 32);
        assert_eq!(key_material(&STANDARD.encode([7u8; 32])).unwrap().len(), 32);
        assert_eq!(
            key_material(&URL_SAFE_NO_PAD.encode([0xfbu8; 48]))
                .unwrap()
                .len(),
            48
        );
        for short in ["", "secret", &KEY[..62], &STANDARD.encode([7u8; 31])] {
            assert!(key_material(short).is_err(), "{short:?}");
        }
        let refused = key_material("one key for the whole cluster").unwrap_err();
        assert!(refused.contains("openssl rand -hex 32"), "{refused}");
    }

    #[test]
    fn a_short_server_key_is_refused_at_start_with_a_clear_message() {
        let dir = std::env::temp_dir().join(format!("spog-keys-{}", uuid::Uuid::now_v7()));
        let error = Keys::load(Some("change me!"), None, &dir)
            .unwrap_err()
            .to_string();
        assert!(
            error.starts_with("server_key is neither hex nor base64"),
            "{error}"
        );
        // Short text that happens to be base64 is measured as such.
        let error = Keys::load(Some("changeme"), None, &dir)
            .unwrap_err()
            .to_string();
        assert!(error.contains("holds 6 bytes of key material"), "{error}");
        let error = Keys::load(Some(&KEY[..32]), None, &dir)
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("holds 16 bytes of key material; at least 32"),
            "{error}"
        );
        fs::create_dir_all(&dir).unwrap();
        fs::write(dir.join(KEY_FILE), "short").unwrap();
        let error = Keys::load(None, None, &dir).unwrap_err().to_string();
        assert!(error.contains("server.key"), "{error}");
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_generated_or_existing_key_derives_what_it_always_did() {
        // The text is hashed as given: keys written before the length rule keep their keys.
        let loaded = Keys::load(Some(KEY), None, Path::new("/nonexistent")).unwrap();
        assert_eq!(loaded.jwt, Keys::derive(KEY.as_bytes()).jwt);
    }

    #[test]
    fn a_separate_checkpoint_key_signs_checkpoints_and_nothing_else() {
        let dir = std::env::temp_dir().join(format!("spog-keys-{}", uuid::Uuid::now_v7()));
        fs::create_dir_all(&dir).unwrap();
        let seed = [9u8; 32];
        let derived = Keys::load(Some(KEY), None, &dir).unwrap();
        let given = Keys::load(Some(KEY), Some(&hex::encode(seed)), &dir).unwrap();
        assert_eq!(given.checkpoint.to_bytes(), seed);
        assert_ne!(given.checkpoint.to_bytes(), derived.checkpoint.to_bytes());
        assert_eq!(
            given.jwt, derived.jwt,
            "the server key still derives the rest"
        );
        let file = dir.join("checkpoint.key");
        fs::write(&file, format!("{}\n", STANDARD.encode(seed))).unwrap();
        let from_file =
            Keys::load(Some(KEY), Some(&format!("file:{}", file.display())), &dir).unwrap();
        assert_eq!(from_file.checkpoint.to_bytes(), seed);
        for bad in [
            "short",
            &hex::encode([1u8; 48]),
            "file:/nonexistent/checkpoint.key",
        ] {
            let error = Keys::load(Some(KEY), Some(bad), &dir)
                .unwrap_err()
                .to_string();
            assert!(error.starts_with("checkpoint_key"), "{bad}: {error}");
        }
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn the_key_file_is_created_once_and_reused() {
        let dir = std::env::temp_dir().join(format!("spog-keys-{}", uuid::Uuid::now_v7()));
        let first = Keys::load(None, None, &dir).unwrap();
        let second = Keys::load(None, None, &dir).unwrap();
        assert_eq!(first.jwt, second.jwt);
        assert_ne!(first.jwt, first.csrf);
        fs::remove_dir_all(dir).unwrap();
    }
}

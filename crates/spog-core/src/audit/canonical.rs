//! RFC 8785 (JCS) canonical JSON of an entry, written field by field in sorted key order so
//! that hashing a chain costs little more than reading it. A test proves the output equals a
//! general JCS serialiser's.
//!
//! Fields added to the entry after chains were first written (`credential_id`,
//! `credential_name`, `recorded_at`) are written only when they have a value: an entry
//! recorded before them has none, so its canonical form, and so its hash, is what it was.

use std::io::Write;

use sha2::{Digest, Sha256};

use super::entry::{AuditEntry, EntryFields};
use crate::time::Timestamp;

/// The canonical JSON of every field of `entry` except `hash`.
pub fn canonical_json(entry: &AuditEntry) -> Vec<u8> {
    let mut out = Vec::with_capacity(512);
    write_canonical_json(&entry.fields(), &mut out);
    out
}

/// [`canonical_json`] of borrowed fields, appended to `out`, for walks that reuse one buffer
/// for every entry.
pub fn write_canonical_json(entry: &EntryFields<'_>, out: &mut Vec<u8>) {
    write_fields(entry, out, false);
}

/// An entry as exported (a line of JSON Lines): the canonical JSON of every field, `hash`
/// too. A snapshot stored as something other than JSON (altered behind the store's back) is
/// written as a string, so the line stays JSON and verifying it reports that entry.
pub fn write_entry_json(entry: &EntryFields<'_>, out: &mut Vec<u8>) {
    write_fields(entry, out, true);
}

fn write_fields(entry: &EntryFields<'_>, out: &mut Vec<u8>, exported: bool) {
    let mut object = Object {
        out,
        exported,
        first: true,
    };
    object.out.push(b'{');
    // Keys in ascending order, as JCS requires.
    object.string("account_id", Some(entry.account_id));
    object.string("action", Some(entry.action));
    object.string("actor_email", entry.actor_email);
    object.string("actor_id", entry.actor_id);
    object.string("actor_name", entry.actor_name);
    object.string("actor_type", Some(entry.actor_type));
    object.json("after", entry.after);
    object.json("before", entry.before);
    object.optional_string("credential_id", entry.credential_id);
    object.optional_string("credential_name", entry.credential_name);
    if exported {
        object.string("hash", entry.hash);
    }
    object.string("id", Some(entry.id));
    object.string("ip", entry.ip);
    object.json("metadata", entry.metadata);
    object.timestamp("occurred_at", entry.occurred_at);
    object.string("organization_id", entry.organization_id);
    object.string("outcome", Some(entry.outcome));
    object.string("prev_hash", entry.prev_hash);
    if let Some(recorded_at) = entry.recorded_at {
        object.timestamp("recorded_at", recorded_at);
    }
    object.string("request_id", entry.request_id);
    object.string("resource_id", entry.resource_id);
    object.string("resource_name", entry.resource_name);
    object.string("resource_type", Some(entry.resource_type));
    object.integer("seq", entry.seq);
    object.string("source", Some(entry.source));
    object.string("user_agent", entry.user_agent);
    object.out.push(b'}');
}

/// `SHA-256(prev_hash_bytes || canonical_json(entry))` as lowercase hex, where
/// `prev_hash_bytes` are the 32 bytes the previous hash's hex spells.
pub fn chain_hash(prev_hash: &str, canonical: &[u8]) -> String {
    hex::encode(chain_digest(prev_hash, canonical))
}

/// [`chain_hash`] as bytes.
pub fn chain_digest(prev_hash: &str, canonical: &[u8]) -> [u8; 32] {
    let mut digest = Sha256::new();
    let mut prev = [0u8; 32];
    // A malformed stored link hashes as zeros; verification reports it as a mismatch anyway.
    if hex::decode_to_slice(prev_hash, &mut prev).is_err() {
        prev = [0u8; 32];
    }
    digest.update(prev);
    digest.update(canonical);
    digest.finalize().into()
}

struct Object<'a> {
    out: &'a mut Vec<u8>,
    /// Written for an export rather than for hashing.
    exported: bool,
    first: bool,
}

impl Object<'_> {
    fn key(&mut self, key: &str) {
        if !self.first {
            self.out.push(b',');
        }
        self.first = false;
        self.out.push(b'"');
        self.out.extend_from_slice(key.as_bytes());
        self.out.extend_from_slice(b"\":");
    }

    fn string(&mut self, key: &str, value: Option<&str>) {
        self.key(key);
        match value {
            // serde_json escapes strings exactly as JCS does (ECMAScript JSON.stringify).
            Some(text) => serde_json::to_writer(&mut *self.out, text).expect("writing to a Vec"),
            None => self.out.extend_from_slice(b"null"),
        }
    }

    /// A field that is left out, not `null`, when it has no value.
    fn optional_string(&mut self, key: &str, value: Option<&str>) {
        if value.is_some() {
            self.string(key, value);
        }
    }

    fn integer(&mut self, key: &str, value: Option<i64>) {
        self.key(key);
        match value {
            Some(n) => write!(self.out, "{n}").expect("writing to a Vec"),
            None => self.out.extend_from_slice(b"null"),
        }
    }

    /// RFC 3339 text, which never needs escaping.
    fn timestamp(&mut self, key: &str, value: Timestamp) {
        self.key(key);
        write!(self.out, "\"{value}\"").expect("writing to a Vec");
    }

    /// A snapshot is canonical text already: written verbatim (see [`write_entry_json`]).
    fn json(&mut self, key: &str, value: Option<&str>) {
        match value {
            Some(snapshot)
                if self.exported
                    && serde_json::from_str::<&serde_json::value::RawValue>(snapshot).is_err() =>
            {
                self.string(key, Some(snapshot));
            }
            Some(snapshot) => {
                self.key(key);
                self.out.extend_from_slice(snapshot.as_bytes());
            }
            None => {
                self.key(key);
                self.out.extend_from_slice(b"null");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::{ActorType, Outcome, Snapshot, Source};
    use crate::time::Timestamp;
    use serde_json::json;

    pub(crate) fn sample() -> AuditEntry {
        AuditEntry {
            id: "0193a0b0-0000-7000-8000-000000000001".into(),
            seq: Some(7),
            occurred_at: Timestamp::parse("2026-11-25T10:00:00.123456Z").unwrap(),
            account_id: "0193a0b0-0000-7000-8000-00000000000a".into(),
            organization_id: None,
            actor_type: ActorType::User,
            actor_id: Some("u1".into()),
            actor_email: Some("ädä@example.com".into()),
            actor_name: Some("Ada \"the\" Admin\n\u{1}".into()),
            source: Source::Api,
            ip: Some("127.0.0.1".into()),
            user_agent: None,
            request_id: Some("r-1".into()),
            action: "webhook.create".into(),
            resource_type: "webhook".into(),
            resource_id: Some("w1".into()),
            resource_name: Some("€ hooks".into()),
            outcome: Outcome::Success,
            before: None,
            after: Some(Snapshot::redacted(
                json!({"z": 1.5e30, "a": [true, null, 10], "m": {"b": "x", "a": "\u{2028}"}}),
            )),
            metadata: Some(Snapshot::redacted(json!({}))),
            credential_id: Some("0193a0b0-0000-7000-8000-0000000000c1".into()),
            credential_name: Some("deploy bot".into()),
            recorded_at: Some(Timestamp::parse("2026-11-25T10:00:01.000001Z").unwrap()),
            prev_hash: Some("00".repeat(32)),
            hash: Some("ignored".into()),
        }
    }

    #[test]
    fn canonical_form_equals_a_general_jcs_serialisation() {
        let entry = sample();
        let mut whole: serde_json::Value =
            serde_json::from_str(&serde_json::to_string(&entry).unwrap()).unwrap();
        whole.as_object_mut().unwrap().remove("hash");
        let expected = serde_jcs::to_vec(&whole).unwrap();
        assert_eq!(
            String::from_utf8(canonical_json(&entry)).unwrap(),
            String::from_utf8(expected).unwrap()
        );
    }

    #[test]
    fn the_hash_covers_every_field_but_itself() {
        let entry = sample();
        let prev = "00".repeat(32);
        let base = chain_hash(&prev, &canonical_json(&entry));
        let mut changed = entry.clone();
        changed.hash = Some("other".into());
        assert_eq!(chain_hash(&prev, &canonical_json(&changed)), base);
        changed.resource_name = Some("other".into());
        assert_ne!(chain_hash(&prev, &canonical_json(&changed)), base);
        assert_ne!(chain_hash(&"11".repeat(32), &canonical_json(&entry)), base);
    }

    #[test]
    fn an_exported_entry_is_its_canonical_json_with_its_hash() {
        let entry = sample();
        let mut line = Vec::new();
        write_entry_json(&entry.fields(), &mut line);
        let whole = serde_json::to_value(&entry).unwrap();
        assert_eq!(line, serde_jcs::to_vec(&whole).unwrap());
        let read: AuditEntry = serde_json::from_slice(&line).unwrap();
        assert_eq!(read, entry);
    }

    /// The canonical form of an entry as it was written before credentials and
    /// `recorded_at` were kept, fixed here byte for byte: chains written then must verify.
    #[test]
    fn an_entry_without_the_later_fields_hashes_as_it_always_did() {
        let mut entry = sample();
        entry.credential_id = None;
        entry.credential_name = None;
        entry.recorded_at = None;
        let canonical = String::from_utf8(canonical_json(&entry)).unwrap();
        assert!(!canonical.contains("credential") && !canonical.contains("recorded_at"));
        assert_eq!(
            chain_hash(&"00".repeat(32), canonical.as_bytes()),
            "54456d17b5924765c21b1670de9aed096c64b63f04516739193ca7b65788143f"
        );
        let with = sample();
        assert_ne!(canonical_json(&with), canonical.as_bytes());
        let mut line = Vec::new();
        write_entry_json(&entry.fields(), &mut line);
        let read: AuditEntry = serde_json::from_slice(&line).unwrap();
        assert_eq!(read, entry);
    }

    #[test]
    fn a_snapshot_that_is_not_json_is_exported_as_text() {
        let entry = sample();
        let mut fields = entry.fields();
        fields.metadata = Some("{\"cut");
        let mut line = Vec::new();
        write_entry_json(&fields, &mut line);
        let read: serde_json::Value = serde_json::from_slice(&line).unwrap();
        assert_eq!(read["metadata"], "{\"cut");
    }
}

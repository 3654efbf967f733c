//! A JSON snapshot in an audit entry (`before`, `after`, `metadata`), held as its canonical
//! (RFC 8785) text. Made from a value, it is redacted and canonicalised once, when recorded;
//! read back, its text is kept verbatim, so hashing an entry hashes exactly the stored bytes
//! and verification never re-parses JSON.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;
use serde_json::value::RawValue;

use crate::redact::redact;

#[derive(Clone)]
pub struct Snapshot(Box<RawValue>);

impl Snapshot {
    /// What is recorded: secrets redacted, then canonicalised. Every snapshot a change records
    /// is made here.
    pub fn redacted(mut value: Value) -> Self {
        redact(&mut value);
        Self::canonical(&value)
    }

    fn canonical(value: &Value) -> Self {
        let text = serde_jcs::to_string(value).expect("serialising a JSON value");
        Self(RawValue::from_string(text).expect("JCS output is JSON"))
    }

    /// Text read back from storage, kept byte for byte.
    pub fn stored(text: String) -> Result<Self, serde_json::Error> {
        RawValue::from_string(text).map(Self)
    }

    pub fn as_str(&self) -> &str {
        self.0.get()
    }

    pub fn to_value(&self) -> Value {
        serde_json::from_str(self.as_str()).unwrap_or(Value::Null)
    }
}

impl PartialEq for Snapshot {
    fn eq(&self, other: &Self) -> bool {
        self.as_str() == other.as_str()
    }
}

impl fmt::Debug for Snapshot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for Snapshot {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(serializer)
    }
}

/// Reading an export: the value is canonicalised (not redacted again), so a verifier gets
/// the bytes that were hashed whatever whitespace the file picked up.
impl<'de> Deserialize<'de> for Snapshot {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Value::deserialize(deserializer).map(|value| Self::canonical(&value))
    }
}

impl utoipa::PartialSchema for Snapshot {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::RefOr::T(utoipa::openapi::schema::Schema::Object(
            utoipa::openapi::schema::ObjectBuilder::new()
                .description(Some("Any JSON value; secrets appear as \"[redacted]\""))
                .build(),
        ))
    }
}
impl utoipa::ToSchema for Snapshot {}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn recorded_snapshots_are_redacted_and_canonical() {
        let snapshot = Snapshot::redacted(json!({"z": 1.0, "a": {"secret": "s", "b": [1, 2]}}));
        assert_eq!(
            snapshot.as_str(),
            r#"{"a":{"b":[1,2],"secret":"[redacted]"},"z":1}"#
        );
    }

    #[test]
    fn stored_text_is_kept_verbatim_and_exports_read_back_canonical() {
        let stored = Snapshot::stored("{ \"b\": 1, \"a\": 2 }".to_owned()).unwrap();
        assert_eq!(stored.as_str(), "{ \"b\": 1, \"a\": 2 }");
        let exported = serde_json::to_string(&stored).unwrap();
        let imported: Snapshot = serde_json::from_str(&exported).unwrap();
        assert_eq!(imported.as_str(), r#"{"a":2,"b":1}"#);
    }
}

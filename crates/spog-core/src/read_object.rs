//! Reads a request's JSON object into a serde type, naming every field at fault rather than
//! the first. The type's own description (field names, defaults, each field's reader) is the
//! only one: serde stops at the first error, so a field that fails is recorded, left out, and
//! the object read again.

use std::collections::BTreeSet;
use std::fmt;

use serde::de::{self, DeserializeOwned, DeserializeSeed, IntoDeserializer, MapAccess, Visitor};
use serde_json::{Map, Value};
use serde_path_to_error::{Segment, Track};

use crate::{FieldError, FieldErrors};

/// `object` as a `T` (a struct), or `None` with every fault in `errors`, named
/// `<prefix>.<field>` (and below: `[i]`, `.key` where the field's reader failed inside a list
/// or an object). A `null` is an absent field; a missing one without a default "is required";
/// a key `T` does not have is refused with `unknown` unless `elsewhere` reads it.
pub fn read_object<T: DeserializeOwned>(
    prefix: &str,
    object: &Map<String, Value>,
    elsewhere: impl Fn(&str) -> bool,
    unknown: &str,
    errors: &mut FieldErrors,
) -> Option<T> {
    let mut left_out: BTreeSet<&str> = object
        .iter()
        .filter(|(_, value)| value.is_null())
        .map(|(key, _)| key.as_str())
        .collect();
    let mut fields: &'static [&'static str] = &[];
    let mut failed = BTreeSet::new();
    let mut found = false;
    let mut fault = |errors: &mut FieldErrors, field: String, message: String| {
        found = true;
        errors.add(FieldError::new(field, message));
    };
    let read = loop {
        let reader = Reader {
            object,
            left_out: &left_out,
            fields: &mut fields,
        };
        match T::deserialize(reader) {
            Ok(value) => break Some(value),
            Err(Fault::At { key, path, message }) => {
                fault(errors, format!("{prefix}.{key}{path}"), message);
                let key = object.get_key_value(&key).expect("a key of the object").0;
                left_out.insert(key);
                failed.insert(key.as_str());
            }
            // Reported once all present fields are read; a failed one was named already.
            Err(Fault::Missing(field)) => {
                if !failed.contains(field) {
                    fault(
                        errors,
                        format!("{prefix}.{field}"),
                        "is required".to_owned(),
                    );
                }
                break None;
            }
            Err(Fault::Other(message)) => {
                fault(errors, prefix.to_owned(), message);
                break None;
            }
        }
    };
    for key in object.keys() {
        if !fields.contains(&key.as_str()) && !elsewhere(key) {
            fault(errors, format!("{prefix}.{key}"), unknown.to_owned());
        }
    }
    read.filter(|_| !found)
}

/// Why one reading stopped.
#[derive(Debug)]
enum Fault {
    /// A field's value failed its reader; `path` is where inside it.
    At {
        key: String,
        path: String,
        message: String,
    },
    Missing(&'static str),
    Other(String),
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Fault::At { key, message, .. } => write!(f, "{key}: {message}"),
            Fault::Missing(field) => write!(f, "{field}: is required"),
            Fault::Other(message) => f.write_str(message),
        }
    }
}

impl std::error::Error for Fault {}

impl de::Error for Fault {
    fn custom<M: fmt::Display>(message: M) -> Self {
        Fault::Other(message.to_string())
    }

    fn missing_field(field: &'static str) -> Self {
        Fault::Missing(field)
    }
}

/// The object as a struct's deserializer: it learns the struct's fields, and hands it only
/// those present, not null and not left out.
struct Reader<'de, 'r> {
    object: &'de Map<String, Value>,
    left_out: &'r BTreeSet<&'de str>,
    fields: &'r mut &'static [&'static str],
}

impl<'de> de::Deserializer<'de> for Reader<'de, '_> {
    type Error = Fault;

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Fault> {
        *self.fields = fields;
        visitor.visit_map(Entries {
            entries: self.object.iter(),
            fields,
            left_out: self.left_out,
            value: None,
        })
    }

    fn deserialize_any<V: Visitor<'de>>(self, _visitor: V) -> Result<V::Value, Fault> {
        Err(Fault::Other("is read only into a struct".to_owned()))
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
        option unit unit_struct newtype_struct seq tuple tuple_struct map enum identifier
        ignored_any
    }
}

struct Entries<'de, 'r> {
    entries: serde_json::map::Iter<'de>,
    fields: &'static [&'static str],
    left_out: &'r BTreeSet<&'de str>,
    value: Option<(&'de str, &'de Value)>,
}

impl<'de> MapAccess<'de> for Entries<'de, '_> {
    type Error = Fault;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, Fault> {
        for (key, value) in self.entries.by_ref() {
            if self.fields.contains(&key.as_str()) && !self.left_out.contains(key.as_str()) {
                self.value = Some((key, value));
                return seed.deserialize(key.as_str().into_deserializer()).map(Some);
            }
        }
        Ok(None)
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, Fault> {
        let (key, value) = self.value.take().expect("serde asks for a key first");
        let mut track = Track::new();
        seed.deserialize(serde_path_to_error::Deserializer::new(value, &mut track))
            .map_err(|error| Fault::At {
                key: key.to_owned(),
                path: below(&track.path()),
                message: error.to_string(),
            })
    }
}

/// Where inside a field's value: `[1]`, `.name`.
fn below(path: &serde_path_to_error::Path) -> String {
    path.iter()
        .map(|segment| match segment {
            Segment::Seq { index } => format!("[{index}]"),
            Segment::Map { key } => format!(".{key}"),
            Segment::Enum { variant } => format!(".{variant}"),
            Segment::Unknown => String::new(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;
    use serde_json::json;

    use super::*;

    #[derive(Debug, Deserialize, PartialEq)]
    struct Thing {
        name: String,
        #[serde(default)]
        size: u8,
        tags: Vec<u8>,
    }

    fn read(value: Value) -> Result<Thing, FieldErrors> {
        let mut errors = FieldErrors::new();
        let object = value.as_object().unwrap();
        read_object(
            "thing",
            object,
            |key| key == "note",
            "is unknown",
            &mut errors,
        )
        .ok_or(errors)
    }

    #[test]
    fn every_field_at_fault_is_named_once() {
        let errors =
            read(json!({"size": 300, "tags": [1, "x"], "extra": 1, "note": 2})).unwrap_err();
        let named: Vec<_> = errors.iter().map(|(field, _)| field).collect();
        assert_eq!(
            named,
            ["thing.extra", "thing.name", "thing.size", "thing.tags[1]"]
        );
        assert_eq!(errors.get("thing.name"), Some("is required"));
    }

    #[test]
    fn nulls_are_absent_and_defaults_apply() {
        let thing = read(json!({"name": "a", "size": null, "tags": []})).unwrap();
        assert_eq!(
            thing,
            Thing {
                name: "a".into(),
                size: 0,
                tags: vec![]
            }
        );
    }
}

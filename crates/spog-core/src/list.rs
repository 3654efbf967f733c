//! Lists and maps as requests give them, bounded while they are read: an item beyond the
//! bound fails the request (422 naming the field) before it is even kept, so no list a
//! client sends can grow a query, a lock or memory past what its field allows. The bound is
//! part of the type (`UniqueList<Id<Host>, 1000>`), so the OpenAPI document states it as
//! `maxItems` and no handler can forget it.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::hash::Hash;
use std::marker::PhantomData;
use std::ops::Deref;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::{Serialize, Serializer};
use utoipa::openapi::schema::{ArrayBuilder, ObjectBuilder, Type};
use utoipa::openapi::{RefOr, Schema};

fn too_many(max: usize) -> String {
    format!("must have at most {max} items")
}

/// At most `N` items, in the order given (duplicates kept: for entries of a batch).
#[derive(Clone, Debug, PartialEq)]
pub struct BoundedList<T, const N: usize>(Vec<T>);

/// At most `N` items, each once: a repeated item is dropped (its first place kept), since
/// naming a channel or a host twice means the same as naming it once.
#[derive(Clone, Debug, PartialEq)]
pub struct UniqueList<T, const N: usize>(Vec<T>);

/// A JSON object of at most `N` keys (which JSON keeps unique).
#[derive(Clone, Debug, PartialEq)]
pub struct BoundedMap<V, const N: usize>(BTreeMap<String, V>);

impl<T, const N: usize> BoundedList<T, N> {
    pub const MAX: usize = N;

    /// Fails with the field's message when `items` holds more than `N`.
    pub fn new(items: Vec<T>) -> Result<Self, String> {
        if items.len() > N {
            return Err(too_many(N));
        }
        Ok(Self(items))
    }

    pub fn into_inner(self) -> Vec<T> {
        self.0
    }
}

impl<T: Eq + Hash + Clone, const N: usize> UniqueList<T, N> {
    pub const MAX: usize = N;

    /// `items` without repeats; fails when more than `N` distinct items remain.
    pub fn new(items: Vec<T>) -> Result<Self, String> {
        let mut seen = HashSet::with_capacity(items.len());
        let unique: Vec<T> = items
            .into_iter()
            .filter(|item| seen.insert(item.clone()))
            .collect();
        if unique.len() > N {
            return Err(too_many(N));
        }
        Ok(Self(unique))
    }
}

impl<T, const N: usize> UniqueList<T, N> {
    pub fn into_inner(self) -> Vec<T> {
        self.0
    }
}

impl<V, const N: usize> BoundedMap<V, N> {
    pub const MAX: usize = N;

    pub fn into_inner(self) -> BTreeMap<String, V> {
        self.0
    }
}

impl<T, const N: usize> Default for BoundedList<T, N> {
    fn default() -> Self {
        Self(Vec::new())
    }
}

impl<T, const N: usize> Default for UniqueList<T, N> {
    fn default() -> Self {
        Self(Vec::new())
    }
}

impl<V, const N: usize> Default for BoundedMap<V, N> {
    fn default() -> Self {
        Self(BTreeMap::new())
    }
}

impl<T, const N: usize> Deref for BoundedList<T, N> {
    type Target = Vec<T>;
    fn deref(&self) -> &Vec<T> {
        &self.0
    }
}

impl<T, const N: usize> Deref for UniqueList<T, N> {
    type Target = Vec<T>;
    fn deref(&self) -> &Vec<T> {
        &self.0
    }
}

impl<V, const N: usize> Deref for BoundedMap<V, N> {
    type Target = BTreeMap<String, V>;
    fn deref(&self) -> &BTreeMap<String, V> {
        &self.0
    }
}

impl<T, const N: usize> IntoIterator for BoundedList<T, N> {
    type Item = T;
    type IntoIter = std::vec::IntoIter<T>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.into_iter()
    }
}

impl<T, const N: usize> IntoIterator for UniqueList<T, N> {
    type Item = T;
    type IntoIter = std::vec::IntoIter<T>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.into_iter()
    }
}

/// Reads a sequence, failing as soon as it holds more than `N` items.
struct SeqVisitor<T, const N: usize>(PhantomData<T>);

impl<'de, T: Deserialize<'de>, const N: usize> Visitor<'de> for SeqVisitor<T, N> {
    type Value = Vec<T>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "a list of at most {N} items")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<T>, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(N).min(1024));
        while let Some(item) = seq.next_element()? {
            if items.len() == N {
                return Err(de::Error::custom(too_many(N)));
            }
            items.push(item);
        }
        Ok(items)
    }
}

impl<'de, T: Deserialize<'de>, const N: usize> Deserialize<'de> for BoundedList<T, N> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer
            .deserialize_seq(SeqVisitor::<T, N>(PhantomData))
            .map(Self)
    }
}

/// Reads a sequence keeping each item once, failing as soon as it holds more than `N`
/// distinct items: memory stays bounded however many repeats a body carries.
struct UniqueVisitor<T, const N: usize>(PhantomData<T>);

impl<'de, T, const N: usize> Visitor<'de> for UniqueVisitor<T, N>
where
    T: Deserialize<'de> + Eq + Hash + Clone,
{
    type Value = Vec<T>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "a list of at most {N} distinct items")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<T>, A::Error> {
        let mut seen = HashSet::new();
        let mut items = Vec::new();
        while let Some(item) = seq.next_element::<T>()? {
            if seen.contains(&item) {
                continue;
            }
            if items.len() == N {
                return Err(de::Error::custom(too_many(N)));
            }
            seen.insert(item.clone());
            items.push(item);
        }
        Ok(items)
    }
}

impl<'de, T, const N: usize> Deserialize<'de> for UniqueList<T, N>
where
    T: Deserialize<'de> + Eq + Hash + Clone,
{
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer
            .deserialize_seq(UniqueVisitor::<T, N>(PhantomData))
            .map(Self)
    }
}

struct MapVisitor<V, const N: usize>(PhantomData<V>);

impl<'de, V: Deserialize<'de>, const N: usize> Visitor<'de> for MapVisitor<V, N> {
    type Value = BTreeMap<String, V>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "an object of at most {N} keys")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut entries = BTreeMap::new();
        while let Some((key, value)) = map.next_entry::<String, V>()? {
            entries.insert(key, value);
            if entries.len() > N {
                return Err(de::Error::custom(format!("must have at most {N} keys")));
            }
        }
        Ok(entries)
    }
}

impl<'de, V: Deserialize<'de>, const N: usize> Deserialize<'de> for BoundedMap<V, N> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer
            .deserialize_map(MapVisitor::<V, N>(PhantomData))
            .map(Self)
    }
}

impl<T: Serialize, const N: usize> Serialize for BoundedList<T, N> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(serializer)
    }
}

impl<T: Serialize, const N: usize> Serialize for UniqueList<T, N> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(serializer)
    }
}

impl<V: Serialize, const N: usize> Serialize for BoundedMap<V, N> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(serializer)
    }
}

// utoipa composes a generic type's schema from its type arguments' (the bound, a const
// argument, is not one of them): an array or object whose size the document states.
fn array(items: Vec<RefOr<Schema>>, max: usize) -> RefOr<Schema> {
    let mut array = ArrayBuilder::new().max_items(Some(max));
    if let Some(item) = items.into_iter().next() {
        array = array.items(item);
    }
    array.into()
}

impl<T, const N: usize> utoipa::__dev::ComposeSchema for BoundedList<T, N> {
    fn compose(items: Vec<RefOr<Schema>>) -> RefOr<Schema> {
        array(items, N)
    }
}
// Named with their bound, so that lists of one item type with different bounds are
// different components of the document (`UniqueList50_String`).
impl<T, const N: usize> utoipa::ToSchema for BoundedList<T, N> {
    fn name() -> Cow<'static, str> {
        Cow::Owned(format!("BoundedList{N}"))
    }
}

impl<T, const N: usize> utoipa::__dev::ComposeSchema for UniqueList<T, N> {
    fn compose(items: Vec<RefOr<Schema>>) -> RefOr<Schema> {
        array(items, N)
    }
}
impl<T, const N: usize> utoipa::ToSchema for UniqueList<T, N> {
    fn name() -> Cow<'static, str> {
        Cow::Owned(format!("UniqueList{N}"))
    }
}

impl<V, const N: usize> utoipa::__dev::ComposeSchema for BoundedMap<V, N> {
    fn compose(values: Vec<RefOr<Schema>>) -> RefOr<Schema> {
        let mut object = ObjectBuilder::new()
            .schema_type(Type::Object)
            .max_properties(Some(N));
        if let Some(value) = values.into_iter().next() {
            object = object.additional_properties(Some(value));
        }
        object.into()
    }
}
impl<V, const N: usize> utoipa::ToSchema for BoundedMap<V, N> {
    fn name() -> Cow<'static, str> {
        Cow::Owned(format!("BoundedMap{N}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Deserialize, Debug)]
    struct Body {
        ids: UniqueList<String, 3>,
        #[serde(default)]
        entries: BoundedList<u8, 2>,
        #[serde(default)]
        headers: BoundedMap<String, 1>,
    }

    fn parse(json: &str) -> Result<Body, (String, String)> {
        let mut deserializer = serde_json::Deserializer::from_str(json);
        serde_path_to_error::deserialize(&mut deserializer).map_err(|e| {
            let path = e.path().to_string();
            let message = e.into_inner().to_string();
            (path, message)
        })
    }

    #[test]
    fn repeats_are_dropped_and_the_first_place_kept() {
        let body = parse(
            r#"{"ids": ["b", "a", "b", "a", "c"], "entries": [1, 1], "headers": {"k": "v"}}"#,
        )
        .unwrap();
        assert_eq!(*body.ids, ["b", "a", "c"]);
        assert_eq!(*body.entries, [1, 1]);
        assert_eq!(body.headers["k"], "v");
    }

    #[test]
    fn a_list_beyond_its_bound_is_refused_naming_its_field() {
        let (path, message) = parse(r#"{"ids": ["a", "b", "c", "d"]}"#).unwrap_err();
        assert_eq!(path, "ids");
        assert!(
            message.starts_with("must have at most 3 items"),
            "{message}"
        );
        let (path, message) = parse(r#"{"ids": [], "entries": [1, 2, 3]}"#).unwrap_err();
        assert_eq!(path, "entries");
        assert!(
            message.starts_with("must have at most 2 items"),
            "{message}"
        );
        let (path, _) = parse(r#"{"ids": [], "headers": {"a": "1", "b": "2"}}"#).unwrap_err();
        assert_eq!(path, "headers");
    }

    #[test]
    fn the_bound_counts_distinct_items() {
        let many = vec!["\"a\""; 10_000].join(",");
        let body = parse(&format!(r#"{{"ids": [{many}, "b", "c"]}}"#)).unwrap();
        assert_eq!(*body.ids, ["a", "b", "c"]);
        assert_eq!(UniqueList::<u8, 2>::new(vec![1, 2, 1]).unwrap().len(), 2);
        assert!(UniqueList::<u8, 2>::new(vec![1, 2, 3]).is_err());
    }

    #[test]
    fn the_schema_states_the_bound() {
        use utoipa::__dev::ComposeSchema;
        let schema = UniqueList::<String, 7>::compose(vec![]);
        let json = serde_json::to_value(&schema).unwrap();
        assert_eq!(json["maxItems"], 7);
        assert_eq!(json["type"], "array");
    }
}

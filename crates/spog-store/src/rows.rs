//! Conversions between the portable column types and domain types.

use spog_core::{Id, Timestamp};

use crate::{StoreError, StoreResult};

pub fn id<T>(text: &str) -> StoreResult<Id<T>> {
    text.parse()
        .map_err(|_| StoreError::Corrupt(format!("`{text}` is not a UUID")))
}

pub fn opt_id<T>(text: Option<&str>) -> StoreResult<Option<Id<T>>> {
    text.map(id).transpose()
}

pub fn at(micros: i64) -> Timestamp {
    Timestamp::from_micros(micros)
}

pub fn opt_at(micros: Option<i64>) -> Option<Timestamp> {
    micros.map(Timestamp::from_micros)
}

pub fn flag(value: i64) -> bool {
    value != 0
}

pub fn json_text<T: serde::Serialize + ?Sized>(value: &T) -> String {
    serde_json::to_string(value).expect("serialising plain data")
}

pub fn from_json<T: serde::de::DeserializeOwned>(text: &str) -> StoreResult<T> {
    serde_json::from_str(text).map_err(|e| StoreError::Corrupt(format!("bad JSON column: {e}")))
}

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

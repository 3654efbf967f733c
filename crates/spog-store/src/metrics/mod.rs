//! Metrics as a stored series (SPEC 12.4). A series is (host, metric, labels); its samples are
//! kept raw (for short ranges and sub-minute steps) and folded into one-minute rollups as they
//! arrive (for everything else), and both are pruned by age.

mod prune;
mod query;
mod record;

use spog_core::Timestamp;
use spog_core::metrics::Labels;

use crate::StoreResult;
use crate::rows::{from_json, json_text};

pub use prune::{Pruned, prune};
pub use query::{Bucket, Query, SeriesPoints, Source, latest, query};
pub use record::record;

/// At most this many series per host: a new label set beyond it is refused.
pub const MAX_SERIES_PER_HOST: usize = 1_000;
/// At most this many series in one query's answer.
pub const MAX_SERIES_PER_QUERY: usize = 100;
/// At most this many buckets over all the series of one query's answer.
pub const MAX_POINTS_PER_QUERY: i64 = 200_000;
/// A rollup's span: one minute of UTC, in µs.
pub const MINUTE: i64 = 60_000_000;

/// One reading of a series.
#[derive(Clone, Debug, PartialEq)]
pub struct Sample {
    pub metric: String,
    pub labels: Labels,
    pub value: f64,
    pub at: Timestamp,
}

/// A series' newest sample.
#[derive(Clone, Debug, PartialEq)]
pub struct Latest {
    pub metric: String,
    pub labels: Labels,
    pub value: f64,
    pub at: Timestamp,
}

/// Labels as stored: JSON of the map sorted by key (a `BTreeMap` serialises in order), so
/// equal sets are equal text.
fn labels_text(labels: &Labels) -> String {
    json_text(labels)
}

fn parse_labels(text: &str) -> StoreResult<Labels> {
    from_json(text)
}

//! Audit streams (SPEC 3.5): an account's chain sent continuously, in `seq` order, to a SIEM or
//! an archive. The stream as the API shows it, and the parsers of its fields.

mod cef;
mod filter;
mod ocsf;
mod sink;

pub use cef::write_cef;
pub use filter::StreamFilter;
pub use ocsf::ocsf_event;
pub use sink::{
    Compression, HttpsSink, Sink, SinkSecrets, SplunkHecSink, SyslogSink, headers_of, parse_sink,
};

use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use crate::{FieldError, Id, Timestamp};

pub const MAX_NAME: usize = 200;

/// An audit stream with its delivery status.
#[derive(Clone, Debug, PartialEq, Serialize, ToSchema)]
pub struct AuditStream {
    pub id: Id<AuditStream>,
    pub name: String,
    pub sink: Sink,
    pub format: Format,
    pub filter: StreamFilter,
    pub batch: BatchLimits,
    pub include_snapshots: bool,
    pub paused: bool,
    pub status: StreamStatus,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

/// Where a stream stands (SPEC 3.5 "Status").
#[derive(Clone, Debug, PartialEq, Serialize, ToSchema)]
pub struct StreamStatus {
    pub state: StreamState,
    /// Every entry up to this seq was confirmed by the sink (or matched no filter).
    pub delivered_seq: i64,
    /// The account chain's last linked seq.
    pub head_seq: i64,
    pub lag_entries: i64,
    /// Age by recording time of the oldest entry not delivered; 0 when caught up.
    pub lag_seconds: f64,
    pub last_delivered_at: Option<Timestamp>,
    pub last_error: Option<String>,
    pub last_error_at: Option<Timestamp>,
    pub failing_since: Option<Timestamp>,
    pub consecutive_failures: i64,
    pub next_attempt_at: Option<Timestamp>,
    pub entries_sent: i64,
    pub bytes_sent: i64,
    /// The instance holding the stream's lease, if one does.
    pub instance_id: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum StreamState {
    Active,
    Paused,
    Failing,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Format {
    /// The export's JSON Lines entry, re-hashable by any receiver.
    Native,
    Ocsf,
    Cef,
}

impl Format {
    pub const fn as_str(self) -> &'static str {
        match self {
            Format::Native => "native",
            Format::Ocsf => "ocsf",
            Format::Cef => "cef",
        }
    }

    pub fn parse(field: &str, text: &str) -> Result<Self, FieldError> {
        [Format::Native, Format::Ocsf, Format::Cef]
            .into_iter()
            .find(|f| f.as_str() == text)
            .ok_or_else(|| FieldError::new(field, "must be native, ocsf or cef"))
    }
}

/// How much one batch holds and how long a partial batch waits for more.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, default)]
pub struct BatchLimits {
    /// 1..10,000.
    pub max_entries: u32,
    /// 1 KiB..16 MiB.
    pub max_bytes: u32,
    /// 0..10,000.
    pub max_wait_ms: u32,
}

impl Default for BatchLimits {
    fn default() -> Self {
        Self {
            max_entries: 1_000,
            max_bytes: 1 << 20,
            max_wait_ms: 500,
        }
    }
}

impl BatchLimits {
    pub fn check(self) -> Result<Self, crate::FieldErrors> {
        let mut errors = crate::FieldErrors::new();
        let mut within = |name: &str, value: u32, lo: u32, hi: u32| {
            if !(lo..=hi).contains(&value) {
                errors.add(FieldError::new(
                    format!("batch.{name}"),
                    format!("must be {lo} to {hi}"),
                ));
            }
        };
        within("max_entries", self.max_entries, 1, 10_000);
        within("max_bytes", self.max_bytes, 1024, 16 << 20);
        within("max_wait_ms", self.max_wait_ms, 0, 10_000);
        errors.into_result().map(|()| self)
    }
}

/// Where sending starts: `start` of a new stream, or where a backfill goes back to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Position {
    /// After the head as linked now.
    Now,
    Beginning,
    FromSeq(i64),
    /// The first entry in seq order with `occurred_at` at or after it.
    FromTime(Timestamp),
}

impl Position {
    /// `"now"`, `"beginning"`, `{"from_seq"}` or `{"from_time"}` (a backfill takes only
    /// the objects).
    pub fn parse(field: &str, value: &Value, words: bool) -> Result<Self, FieldError> {
        let says = if words {
            "must be \"now\", \"beginning\", {\"from_seq\": N} or {\"from_time\": \"…\"}"
        } else {
            "give exactly one of from_seq or from_time"
        };
        let wrong = || FieldError::new(field, says);
        match value {
            Value::String(word) if words => match word.as_str() {
                "now" => Ok(Position::Now),
                "beginning" => Ok(Position::Beginning),
                _ => Err(wrong()),
            },
            Value::Object(object) if object.len() == 1 => {
                if let Some(seq) = object.get("from_seq") {
                    let seq = seq.as_i64().filter(|s| *s >= 1).ok_or_else(|| {
                        FieldError::new(format!("{field}.from_seq"), "must be a seq, 1 or more")
                    })?;
                    Ok(Position::FromSeq(seq))
                } else if let Some(time) = object.get("from_time") {
                    let time = time.as_str().and_then(Timestamp::parse).ok_or_else(|| {
                        FieldError::new(
                            format!("{field}.from_time"),
                            "must be an RFC 3339 time like 2026-11-25T10:00:00Z",
                        )
                    })?;
                    Ok(Position::FromTime(time))
                } else {
                    Err(wrong())
                }
            }
            _ => Err(wrong()),
        }
    }
}

/// Whether a sink can carry a format (SPEC 3.5's table), and snapshots may be dropped only
/// where the entries are not verifiable anyway.
pub fn check_format(
    sink: &Sink,
    format: Format,
    include_snapshots: bool,
) -> Result<(), FieldError> {
    if !sink.formats().contains(&format) {
        let names: Vec<&str> = sink.formats().iter().map(|f| f.as_str()).collect();
        return Err(FieldError::new(
            "format",
            format!(
                "a {} sink carries {} only",
                sink.type_name(),
                names.join(" or ")
            ),
        ));
    }
    if !include_snapshots && format == Format::Native {
        return Err(FieldError::new(
            "include_snapshots",
            "must be true with the native format, whose entries stay verifiable",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn positions_parse_from_words_and_objects() {
        assert_eq!(
            Position::parse("start", &json!("now"), true),
            Ok(Position::Now)
        );
        assert_eq!(
            Position::parse("start", &json!({"from_seq": 5}), true),
            Ok(Position::FromSeq(5))
        );
        assert!(Position::parse("from", &json!("now"), false).is_err());
        assert!(Position::parse("start", &json!({"from_seq": 1, "from_time": "x"}), true).is_err());
        assert_eq!(
            Position::parse("start", &json!({"from_seq": 0}), true)
                .unwrap_err()
                .field,
            "start.from_seq"
        );
    }

    #[test]
    fn batch_limits_name_the_field_out_of_range() {
        let limits = BatchLimits {
            max_entries: 0,
            ..Default::default()
        };
        assert!(
            limits
                .check()
                .unwrap_err()
                .get("batch.max_entries")
                .is_some()
        );
    }
}

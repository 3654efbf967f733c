//! Instants as microseconds since the Unix epoch: the precision the API promises, stored as a
//! plain integer on both databases so that what is hashed is exactly what is stored.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(i64);

impl Timestamp {
    pub const fn from_micros(micros: i64) -> Self {
        Self(micros)
    }

    pub const fn micros(self) -> i64 {
        self.0
    }

    pub fn now() -> Self {
        Self::from_datetime(OffsetDateTime::now_utc())
    }

    pub fn from_datetime(at: OffsetDateTime) -> Self {
        Self((at.unix_timestamp_nanos() / 1_000) as i64)
    }

    pub fn to_datetime(self) -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp_nanos(i128::from(self.0) * 1_000)
            .unwrap_or(OffsetDateTime::UNIX_EPOCH)
    }

    pub fn unix_seconds(self) -> i64 {
        self.0.div_euclid(1_000_000)
    }

    /// Parses RFC 3339 with any offset; sub-microsecond digits are truncated.
    pub fn parse(text: &str) -> Option<Self> {
        let at = OffsetDateTime::parse(text, &Rfc3339).ok()?;
        let micros = at.unix_timestamp_nanos().div_euclid(1_000);
        i64::try_from(micros).ok().map(Self)
    }

    pub fn plus(self, duration: std::time::Duration) -> Self {
        Self(self.0.saturating_add(duration.as_micros() as i64))
    }

    pub fn minus(self, duration: std::time::Duration) -> Self {
        Self(self.0.saturating_sub(duration.as_micros() as i64))
    }

    /// The calendar day (UTC) as `YYYY-MM-DD`.
    pub fn day(self) -> String {
        let at = self.to_datetime();
        format!(
            "{:04}-{:02}-{:02}",
            at.year(),
            u8::from(at.month()),
            at.day()
        )
    }

    /// Midnight UTC of the day this instant falls on.
    pub fn start_of_day(self) -> Self {
        const DAY: i64 = 86_400_000_000;
        Self(self.0.div_euclid(DAY) * DAY)
    }
}

/// Formats as `2026-11-25T10:00:00.123456Z`: always UTC, always six fraction digits.
impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let at = self.to_datetime();
        let Ok(year) = u32::try_from(at.year()) else {
            return write!(f, "{at}");
        };
        // Digit by digit: walks along a chain format every entry's time, and `write!` with
        // seven arguments showed in their profiles.
        let mut text = *b"0000-00-00T00:00:00.000000Z";
        let fields = [
            (0..4, year),
            (5..7, u32::from(u8::from(at.month()))),
            (8..10, u32::from(at.day())),
            (11..13, u32::from(at.hour())),
            (14..16, u32::from(at.minute())),
            (17..19, u32::from(at.second())),
            (20..26, at.microsecond()),
        ];
        for (range, mut value) in fields {
            for digit in text[range].iter_mut().rev() {
                *digit = b'0' + (value % 10) as u8;
                value /= 10;
            }
        }
        f.write_str(std::str::from_utf8(&text).expect("ASCII digits"))
    }
}

impl fmt::Debug for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        Self::parse(&text).ok_or_else(|| serde::de::Error::custom("expected an RFC 3339 timestamp"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_utc_with_six_fraction_digits() {
        let at = Timestamp::parse("2026-11-25T10:00:00.123456789+01:00").unwrap();
        assert_eq!(at.to_string(), "2026-11-25T09:00:00.123456Z");
        assert_eq!(Timestamp::parse(&at.to_string()), Some(at));
        assert_eq!(at.day(), "2026-11-25");
        assert_eq!(at.start_of_day().to_string(), "2026-11-25T00:00:00.000000Z");
        assert_eq!(
            Timestamp::from_micros(-1).to_string(),
            "1969-12-31T23:59:59.999999Z"
        );
        let first = Timestamp::parse("0001-01-02T03:04:05.000006Z").unwrap();
        assert_eq!(first.to_string(), "0001-01-02T03:04:05.000006Z");
    }

    #[test]
    fn rejects_text_that_is_not_rfc3339() {
        assert_eq!(Timestamp::parse("yesterday"), None);
        assert_eq!(Timestamp::parse("2026-11-25"), None);
    }
}

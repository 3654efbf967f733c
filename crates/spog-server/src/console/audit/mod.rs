//! `/audit-logs`: the audit trail in the console (SPEC 3, 10): search with every filter,
//! an entry's detail with its before/after diff, statistics, and integrity with checkpoints.
//! Pages read like the API (the same filter parsing, the same 422 messages beside the field
//! at fault) and `audit_logs.view` guards them all.

mod charts;
mod detail;
mod diff;
mod integrity;
mod search;
mod stats;

pub use detail::detail_page;
pub use integrity::{checkpoint_download, checkpoints_partial, integrity_page, report_partial};
pub use search::search_page;
pub use stats::stats_page;

use spog_core::FieldErrors;

use super::error::PageError;
use crate::error::ApiError;

/// A query's non-empty parameters in order: an HTML form sends its empty fields too, and an
/// empty field means "no filter", not the API's "must not be empty".
fn non_empty_pairs(query: Option<&str>) -> Vec<(String, String)> {
    form_urlencoded::parse(query.unwrap_or_default().as_bytes())
        .filter(|(_, value)| !value.trim().is_empty())
        .map(|(name, value)| (name.into_owned(), value.trim().to_owned()))
        .collect()
}

fn encode(pairs: &[(String, String)]) -> String {
    form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish()
}

/// Field errors of an API-side rejection, to show beside the form's fields; anything else is
/// the page's own error.
fn field_errors(error: ApiError) -> Result<FieldErrors, PageError> {
    match error {
        ApiError::Validation(errors) => Ok(errors),
        other => Err(other.into()),
    }
}

/// `2026-11-25T10:00` (what a `datetime-local` field sends, read as UTC like every time on
/// these pages) as RFC 3339; other text is left for the API's parser to judge.
fn utc_time(text: &str) -> String {
    let local = text.len() >= 16
        && text.as_bytes().get(10) == Some(&b'T')
        && !text.ends_with('Z')
        && !text[10..].contains(['+', '-']);
    match (local, text.len()) {
        (true, 16) => format!("{text}:00Z"),
        (true, _) => format!("{text}Z"),
        (false, _) => text.to_owned(),
    }
}

/// An RFC 3339 time as a `datetime-local` field's value in UTC; unparseable text as it is.
fn datetime_field(text: &str) -> String {
    match spog_core::Timestamp::parse(text) {
        Some(at) => at.to_string()[..19].to_owned(),
        None => text.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_times_are_read_as_utc() {
        assert_eq!(utc_time("2026-11-25T10:00"), "2026-11-25T10:00:00Z");
        assert_eq!(utc_time("2026-11-25T10:00:30"), "2026-11-25T10:00:30Z");
        assert_eq!(utc_time("2026-11-25T10:00:00Z"), "2026-11-25T10:00:00Z");
        assert_eq!(
            utc_time("2026-11-25T10:00:00+02:00"),
            "2026-11-25T10:00:00+02:00"
        );
        assert_eq!(utc_time("yesterday"), "yesterday");
        assert_eq!(
            datetime_field("2026-11-25T12:00:00+02:00"),
            "2026-11-25T10:00:00"
        );
        assert_eq!(datetime_field("garbage"), "garbage");
    }

    #[test]
    fn empty_form_fields_are_no_filter() {
        let pairs = non_empty_pairs(Some("action=user.*&actor_id=&q=+&outcome=failure"));
        assert_eq!(encode(&pairs), "action=user.*&outcome=failure", "{pairs:?}");
    }
}

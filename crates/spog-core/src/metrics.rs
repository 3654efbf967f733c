//! Metric series (SPEC 12.4): a series is (host, metric, labels). Names and labels parse here,
//! once, for `POST /metrics`, the agent's socket, metric rules and metric queries.

use std::collections::BTreeMap;

use crate::FieldError;

/// At most this many labels on one sample or rule.
pub const MAX_LABELS: usize = 8;
/// The longest label value.
pub const MAX_LABEL_VALUE: usize = 200;

/// The largest magnitude of a sample's value: a week of samples a microsecond apart sums to
/// well within `f64`, so sums and means over any range stay finite on every database.
pub const MAX_VALUE: f64 = 1e200;

/// A series' labels, sorted by key so that equal sets compare and serialise alike.
pub type Labels = BTreeMap<String, String>;

/// A metric name like `cpu.percent`.
pub fn metric_name(field: &str, text: &str) -> Result<String, FieldError> {
    let ok = !text.is_empty()
        && text.len() <= 200
        && text.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_.:-".contains(c));
    if ok {
        Ok(text.to_owned())
    } else {
        Err(FieldError::new(
            field,
            "must be a metric name like cpu.usage",
        ))
    }
}

/// At most eight labels, keys `[a-z_][a-z0-9_]{0,63}`, values of at most 200 characters.
pub fn labels(field: &str, labels: Labels) -> Result<Labels, FieldError> {
    if labels.len() > MAX_LABELS {
        return Err(FieldError::new(
            field,
            format!("must hold at most {MAX_LABELS} labels"),
        ));
    }
    if let Some(key) = labels.keys().find(|k| !label_key(k)) {
        return Err(FieldError::new(
            field,
            format!("label {key:?} must match [a-z_][a-z0-9_]{{0,63}}"),
        ));
    }
    if let Some(key) = labels
        .iter()
        .find(|(_, v)| v.chars().count() > MAX_LABEL_VALUE)
        .map(|(k, _)| k)
    {
        return Err(FieldError::new(
            field,
            format!("the value of {key:?} must be at most {MAX_LABEL_VALUE} characters"),
        ));
    }
    Ok(labels)
}

fn label_key(key: &str) -> bool {
    key.len() <= 64
        && key.starts_with(|c: char| c.is_ascii_lowercase() || c == '_')
        && key
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(pairs: &[(&str, &str)]) -> Labels {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn labels_are_bounded_in_number_key_shape_and_value_length() {
        assert!(labels("l", set(&[("mount", "/"), ("_x9", "a")])).is_ok());
        let nine: Labels = (0..9).map(|i| (format!("k{i}"), "v".into())).collect();
        assert_eq!(labels("l", nine).unwrap_err().field, "l");
        assert!(labels("l", set(&[("Mount", "/")])).is_err());
        assert!(labels("l", set(&[("9a", "/")])).is_err());
        assert!(labels("l", set(&[(&"k".repeat(65), "/")])).is_err());
        assert!(labels("l", set(&[("k", &"é".repeat(200))])).is_ok());
        assert!(labels("l", set(&[("k", &"é".repeat(201))])).is_err());
    }

    #[test]
    fn metric_names_look_like_dotted_identifiers() {
        assert!(metric_name("m", "cpu.percent").is_ok());
        assert!(metric_name("m", "net.rx_bytes_per_second").is_ok());
        assert!(metric_name("m", "").is_err());
        assert!(metric_name("m", "1cpu").is_err());
        assert!(metric_name("m", "cpu percent").is_err());
    }
}

//! Types that parse, not validate: each constructor returns the value or a field error, so an
//! invalid value cannot travel further than the request that brought it.

use std::collections::BTreeMap;
use std::fmt;

use serde::Serialize;
use serde_json::Value;

/// One field at fault and why.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

impl std::error::Error for FieldError {}

/// Every field at fault in one request, so a form can show all of them at once.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FieldErrors(BTreeMap<String, String>);

impl FieldErrors {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn add(&mut self, error: FieldError) {
        self.0.entry(error.field).or_insert(error.message);
    }

    /// Keeps the parsed value, or records its error and returns `None`.
    pub fn check<T>(&mut self, result: Result<T, FieldError>) -> Option<T> {
        result.map_err(|e| self.add(e)).ok()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn into_result(self) -> Result<(), FieldErrors> {
        if self.is_empty() { Ok(()) } else { Err(self) }
    }

    /// Every value of a request that [`Self::check`] kept, or every error: a value is missing
    /// only when its error was recorded, so a handler never matches on half-parsed input.
    pub fn finish<C: Checked>(self, checked: C) -> Result<C::Values, FieldErrors> {
        match checked.values() {
            Some(values) if self.is_empty() => Ok(values),
            _ => {
                debug_assert!(!self.is_empty(), "a value was dropped without its error");
                Err(self)
            }
        }
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    pub fn get(&self, field: &str) -> Option<&str> {
        self.0.get(field).map(String::as_str)
    }
}

/// Values each checked on its own ([`FieldErrors::check`]'s `Option`s), taken together.
pub trait Checked {
    type Values;
    fn values(self) -> Option<Self::Values>;
}

impl<A> Checked for Option<A> {
    type Values = A;
    fn values(self) -> Option<A> {
        self
    }
}

macro_rules! checked_tuple {
    ($($name:ident),+) => {
        impl<$($name),+> Checked for ($(Option<$name>,)+) {
            type Values = ($($name,)+);
            #[allow(non_snake_case)]
            fn values(self) -> Option<Self::Values> {
                let ($($name,)+) = self;
                Some(($($name?,)+))
            }
        }
    };
}

checked_tuple!(A, B);
checked_tuple!(A, B, C);
checked_tuple!(A, B, C, D);
checked_tuple!(A, B, C, D, E);
checked_tuple!(A, B, C, D, E, F);

impl From<FieldError> for FieldErrors {
    fn from(error: FieldError) -> Self {
        let mut errors = Self::new();
        errors.add(error);
        errors
    }
}

/// An email address, trimmed and lower-cased so that lookups are exact.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct Email(String);

impl Email {
    pub fn parse(field: &str, text: &str) -> Result<Self, FieldError> {
        let text = text.trim().to_lowercase();
        let invalid = || FieldError::new(field, "must be an email address like name@example.com");
        if text.len() > 254 || text.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(invalid());
        }
        let (local, domain) = text.split_once('@').ok_or_else(invalid)?;
        let domain_ok = !domain.is_empty()
            && !domain.starts_with('.')
            && !domain.ends_with('.')
            && !domain.contains("..")
            && domain
                .chars()
                .all(|c| c.is_alphanumeric() || c == '.' || c == '-');
        if local.is_empty() || local.len() > 64 || local.contains('@') || !domain_ok {
            return Err(invalid());
        }
        Ok(Self(text))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

impl fmt::Display for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The one rule for every string a request brings: NUL never (PostgreSQL's `text` and `jsonb`
/// cannot hold it), and of the other C0 control characters only tab, line feed and carriage
/// return, which free text and JSON snapshots may carry. Single-line values are stricter:
/// [`name`] and [`single_line`] refuse every control character.
pub fn is_refused_char(c: char) -> bool {
    c < '\u{20}' && !matches!(c, '\t' | '\n' | '\r')
}

const REFUSED_TEXT: &str =
    "must not contain NUL or control characters (only tab and line breaks are allowed)";

/// [`is_refused_char`] over one string.
pub fn check_text(field: &str, text: &str) -> Result<(), FieldError> {
    if text.chars().any(is_refused_char) {
        return Err(FieldError::new(field, REFUSED_TEXT));
    }
    Ok(())
}

/// [`check_text`] over every string of a JSON value, keys too; the error names the path of
/// the string at fault (`metadata.note`, `entries[3].after.tags[0]`).
pub fn check_json_text(field: &str, value: &Value) -> Result<(), FieldError> {
    let join = |key: &str| {
        if field.is_empty() {
            key.to_owned()
        } else {
            format!("{field}.{key}")
        }
    };
    match value {
        Value::String(text) => check_text(if field.is_empty() { "body" } else { field }, text),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .try_for_each(|(i, item)| check_json_text(&format!("{field}[{i}]"), item)),
        Value::Object(map) => map.iter().try_for_each(|(key, item)| {
            // A key cannot be named by itself: the object holding it is at fault.
            if key.chars().any(is_refused_char) {
                return Err(FieldError::new(
                    if field.is_empty() { "body" } else { field },
                    REFUSED_TEXT,
                ));
            }
            check_json_text(&join(key), item)
        }),
        _ => Ok(()),
    }
}

/// A single-line value such as an identifier a client chose: at most `max` characters, no
/// control character at all.
pub fn single_line(field: &str, text: &str, max: usize) -> Result<String, FieldError> {
    if text.chars().count() > max {
        return Err(FieldError::new(
            field,
            format!("must be at most {max} characters"),
        ));
    }
    if text.chars().any(char::is_control) {
        return Err(FieldError::new(
            field,
            "must not contain control characters",
        ));
    }
    Ok(text.to_owned())
}

/// A human-facing name: trimmed, 1 to `max` characters, no control characters.
pub fn name(field: &str, text: &str, max: usize) -> Result<String, FieldError> {
    let text = text.trim();
    if text.is_empty() {
        return Err(FieldError::new(field, "must not be empty"));
    }
    if text.chars().count() > max {
        return Err(FieldError::new(
            field,
            format!("must be at most {max} characters"),
        ));
    }
    if text.chars().any(char::is_control) {
        return Err(FieldError::new(
            field,
            "must not contain control characters",
        ));
    }
    Ok(text.to_owned())
}

/// A name checked by [`name`]: what a store takes for a named object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Name(String);

impl Name {
    pub fn parse(field: &str, text: &str, max: usize) -> Result<Self, FieldError> {
        name(field, text, max).map(Self)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A DNS hostname (or IP address): letters, digits, `-`, `.`, at most 253 characters.
pub fn hostname(field: &str, text: &str) -> Result<String, FieldError> {
    let text = text.trim().to_lowercase();
    let label_ok = |label: &str| {
        !label.is_empty()
            && label.len() <= 63
            && !label.starts_with('-')
            && !label.ends_with('-')
            && label
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    };
    if text.is_empty() || text.len() > 253 || !text.split('.').all(label_ok) {
        return Err(FieldError::new(
            field,
            "must be a hostname like web-1.example.com",
        ));
    }
    Ok(text)
}

/// Free text such as a description: at most `max` characters, may be empty, lines allowed.
pub fn text(field: &str, text: &str, max: usize) -> Result<String, FieldError> {
    if text.chars().count() > max {
        return Err(FieldError::new(
            field,
            format!("must be at most {max} characters"),
        ));
    }
    check_text(field, text)?;
    Ok(text.trim().to_owned())
}

/// A password a person chose: long enough to resist guessing, short enough that hashing it
/// cannot be used to exhaust the server.
pub fn password(field: &str, text: &str) -> Result<String, FieldError> {
    let chars = text.chars().count();
    if chars < 12 {
        return Err(FieldError::new(field, "must be at least 12 characters"));
    }
    if chars > 256 {
        return Err(FieldError::new(field, "must be at most 256 characters"));
    }
    let mut distinct: Vec<char> = text.chars().collect();
    distinct.sort_unstable();
    distinct.dedup();
    if distinct.len() < 5 {
        return Err(FieldError::new(
            field,
            "is too weak: use at least 5 different characters",
        ));
    }
    Ok(text.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finish_gives_every_value_or_every_error() {
        let mut errors = FieldErrors::new();
        let a = errors.check(Ok::<_, FieldError>(1));
        let b = errors.check(Ok::<_, FieldError>("b"));
        assert_eq!(errors.finish((a, b)), Ok((1, "b")));

        let mut errors = FieldErrors::new();
        let a = errors.check(Err::<i32, _>(FieldError::new("a", "bad")));
        let b = errors.check(Ok::<_, FieldError>("b"));
        let c = errors.check(Err::<i32, _>(FieldError::new("c", "bad")));
        let refused = errors.finish((a, b, c)).unwrap_err();
        assert_eq!(
            refused.iter().map(|(f, _)| f).collect::<Vec<_>>(),
            ["a", "c"]
        );

        // A rule that adds an error beside a parsed value refuses the whole request.
        let mut errors = FieldErrors::new();
        let a = errors.check(Ok::<_, FieldError>(1));
        errors.add(FieldError::new("expires_at", "must be in the future"));
        assert!(errors.finish(a).is_err());
    }

    #[test]
    fn emails_are_normalised_and_checked() {
        assert_eq!(
            Email::parse("email", "  Ada@Example.COM ")
                .unwrap()
                .as_str(),
            "ada@example.com"
        );
        for bad in [
            "",
            "ada",
            "ada@",
            "@example.com",
            "a b@x.io",
            "a@x..io",
            "a@@x.io",
        ] {
            let err = Email::parse("email", bad).unwrap_err();
            assert_eq!(err.field, "email", "{bad}");
        }
    }

    #[test]
    fn weak_passwords_are_refused() {
        assert!(password("password", "").is_err());
        assert!(password("password", "short").is_err());
        assert!(password("password", "aaaaaaaaaaaaaaaa").is_err());
        assert!(password("password", "correct horse battery").is_ok());
    }

    #[test]
    fn names_are_trimmed_and_bounded() {
        assert_eq!(name("name", "  ops  ", 10).unwrap(), "ops");
        assert!(name("name", "   ", 10).is_err());
        assert!(name("name", "x".repeat(11).as_str(), 10).is_err());
        assert!(name("name", "a\u{7}b", 10).is_err());
    }

    #[test]
    fn text_refuses_nul_and_control_characters_but_keeps_lines() {
        assert!(text("message", "two\nlines\twith a tab\r\n", 100).is_ok());
        for bad in ["a\u{0}b", "bell\u{7}", "esc\u{1b}[31m"] {
            assert_eq!(text("message", bad, 100).unwrap_err().field, "message");
        }
        assert!(single_line("id", "a\tb", 10).is_err());
        assert!(single_line("id", "job-7", 10).is_ok());
    }

    #[test]
    fn every_string_of_a_json_value_is_checked_and_named_by_its_path() {
        let fine = serde_json::json!({"a": ["x\ny", {"b": "\t"}], "n": 1});
        assert!(check_json_text("metadata", &fine).is_ok());
        let nested = serde_json::json!({"a": [1, {"b": "x\u{0}"}]});
        assert_eq!(
            check_json_text("metadata", &nested).unwrap_err().field,
            "metadata.a[1].b"
        );
        let key = serde_json::json!({"ok": {"k\u{0}": 1}});
        assert_eq!(check_json_text("", &key).unwrap_err().field, "ok");
        let top = serde_json::json!("\u{0}");
        assert_eq!(check_json_text("", &top).unwrap_err().field, "body");
    }

    #[test]
    fn field_errors_collect_every_field_once() {
        let mut errors = FieldErrors::new();
        assert_eq!(errors.check(name("name", "", 5)), None);
        assert_eq!(errors.check(Ok::<_, FieldError>(3)), Some(3));
        errors.add(FieldError::new("name", "second message is dropped"));
        assert_eq!(errors.get("name"), Some("must not be empty"));
        assert!(errors.into_result().is_err());
    }
}

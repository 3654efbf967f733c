//! The `?name=value&…&cursor=` filters of a filtered list page, read one way for every list:
//! values trimmed, blank ones as absent, the last of a repeated name kept, any other name
//! refused; each list parses its own values ([`ListFilters::parse`]).

use std::collections::BTreeMap;

use spog_core::{FieldError, FieldErrors};

use super::lists::encode_query;

pub struct ListFilters {
    /// The list's filters, in the order its links spell them.
    names: &'static [&'static str],
    given: BTreeMap<&'static str, String>,
    pub cursor: Option<String>,
    pub errors: FieldErrors,
}

impl ListFilters {
    pub fn read(raw: Option<&str>, names: &'static [&'static str]) -> Self {
        let mut filters = ListFilters {
            names,
            given: BTreeMap::new(),
            cursor: None,
            errors: FieldErrors::new(),
        };
        for (name, value) in form_urlencoded::parse(raw.unwrap_or_default().as_bytes()) {
            let value = value.trim().to_owned();
            if value.is_empty() {
                continue;
            }
            match names.iter().find(|known| **known == name) {
                Some(known) => {
                    filters.given.insert(known, value);
                }
                None if name == "cursor" => filters.cursor = Some(value),
                None => filters.errors.add(FieldError::new(
                    name.as_ref(),
                    "is not a filter of this list",
                )),
            }
        }
        filters
    }

    /// `name`'s value as given; empty when it was not.
    pub fn value(&self, name: &str) -> String {
        self.given.get(name).cloned().unwrap_or_default()
    }

    /// `name`'s value parsed, its error recorded; `None` when not given or wrong.
    pub fn parse<T>(
        &mut self,
        name: &str,
        parse: impl FnOnce(&str) -> Result<T, FieldError>,
    ) -> Option<T> {
        let value = self.given.get(name)?;
        self.errors.check(parse(value))
    }

    /// The filters as given, as a query string without the cursor (for the pager's links).
    pub fn query(&self) -> String {
        let pairs: Vec<(&str, String)> = self
            .names
            .iter()
            .map(|name| (*name, self.value(name)))
            .collect();
        encode_query(&pairs)
    }
}

/// The errors about parameters a list's form has no field for (a hand-edited link).
pub fn unshown_errors(errors: &FieldErrors, shown: &[&str]) -> Vec<String> {
    errors
        .iter()
        .filter(|(field, _)| !shown.contains(field))
        .map(|(field, message)| format!("{field} {message}"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_are_read_one_way() {
        let mut filters = ListFilters::read(
            Some("state=+used+&reason=&state=firing&cursor=abc&colour=red"),
            &["state", "reason"],
        );
        assert_eq!(filters.value("state"), "firing");
        assert_eq!(filters.value("reason"), "");
        assert_eq!(filters.cursor.as_deref(), Some("abc"));
        assert_eq!(
            filters.errors.get("colour"),
            Some("is not a filter of this list")
        );
        assert_eq!(filters.query(), "state=firing");
        assert_eq!(filters.parse("reason", |_| Ok(1)), None);
        let wrong = filters.parse::<u8>("state", |_| Err(FieldError::new("state", "no")));
        assert_eq!(wrong, None);
        assert_eq!(filters.errors.get("state"), Some("no"));
    }
}

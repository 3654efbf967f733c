//! Keyset pagination (SPEC 1): `?limit=` and an opaque `?cursor=` bound to the query that
//! produced it, so a cursor replayed against another query or account is refused.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Serialize;
use serde_json::Value;
use sha2::{Digest, Sha256};
use utoipa::ToSchema;

use crate::FieldError;

pub const DEFAULT_LIMIT: u32 = 50;
pub const MAX_LIMIT: u32 = 500;

#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct Page<T> {
    pub items: Vec<T>,
    /// Pass as `cursor` to get the next page; null on the last page.
    pub next_cursor: Option<String>,
}

impl<T> Page<T> {
    /// Builds a page from up to `limit + 1` rows: the extra row only says that more exist.
    pub fn from_rows(
        mut rows: Vec<T>,
        limit: u32,
        cursor: &Cursor,
        key: impl Fn(&T) -> Vec<Value>,
    ) -> Self {
        let limit = limit as usize;
        let next_cursor = if rows.len() > limit {
            rows.truncate(limit);
            rows.last().map(|last| cursor.encode(&key(last)))
        } else {
            None
        };
        Page {
            items: rows,
            next_cursor,
        }
    }

    pub fn map<U>(self, f: impl FnMut(T) -> U) -> Page<U> {
        Page {
            items: self.items.into_iter().map(f).collect(),
            next_cursor: self.next_cursor,
        }
    }
}

/// Checks `?limit=`: default 50, 1 to 500.
pub fn limit(requested: Option<i64>, default: u32, max: u32) -> Result<u32, FieldError> {
    match requested {
        None => Ok(default),
        Some(n) if n >= 1 && n <= i64::from(max) => Ok(n as u32),
        Some(_) => Err(FieldError::new(
            "limit",
            format!("must be between 1 and {max}"),
        )),
    }
}

/// The scope a cursor belongs to: the account, the list and its filters.
pub struct Cursor {
    scope: String,
}

impl Cursor {
    /// `parts` name the account, the list and every filter value, in a fixed order.
    pub fn scope(parts: &[&str]) -> Self {
        let mut digest = Sha256::new();
        for part in parts {
            digest.update(part.as_bytes());
            digest.update([0u8]);
        }
        Self {
            scope: hex::encode(&digest.finalize()[..8]),
        }
    }

    pub fn encode(&self, key: &[Value]) -> String {
        let body = serde_json::json!({"s": self.scope, "k": key});
        URL_SAFE_NO_PAD.encode(body.to_string())
    }

    /// The sort key a cursor resumes after, if it belongs to this scope.
    pub fn decode(&self, text: Option<&str>) -> Result<Option<Vec<Value>>, FieldError> {
        let Some(text) = text else { return Ok(None) };
        let invalid = || FieldError::new("cursor", "is not a cursor of this list and filters");
        let bytes = URL_SAFE_NO_PAD.decode(text).map_err(|_| invalid())?;
        let body: Value = serde_json::from_slice(&bytes).map_err(|_| invalid())?;
        if body.get("s").and_then(Value::as_str) != Some(self.scope.as_str()) {
            return Err(invalid());
        }
        match body.get("k") {
            // A cursor is the client's text too: its key goes into a query.
            Some(Value::Array(key))
                if key
                    .iter()
                    .all(|part| crate::validate::check_json_text("cursor", part).is_ok()) =>
            {
                Ok(Some(key.clone()))
            }
            _ => Err(invalid()),
        }
    }
}

/// Reads a text component of a decoded cursor key.
pub fn key_text(key: &[Value], index: usize) -> Result<String, FieldError> {
    key.get(index)
        .and_then(Value::as_str)
        .map(str::to_owned)
        .ok_or_else(|| FieldError::new("cursor", "is malformed"))
}

/// Reads an integer component of a decoded cursor key.
pub fn key_int(key: &[Value], index: usize) -> Result<i64, FieldError> {
    key.get(index)
        .and_then(Value::as_i64)
        .ok_or_else(|| FieldError::new("cursor", "is malformed"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_cursor_only_resumes_its_own_query() {
        let users = Cursor::scope(&["account-1", "users"]);
        let text = users.encode(&[json!("2026"), json!(3)]);
        assert_eq!(
            users.decode(Some(&text)).unwrap(),
            Some(vec![json!("2026"), json!(3)])
        );
        let other_account = Cursor::scope(&["account-2", "users"]);
        assert_eq!(
            other_account.decode(Some(&text)).unwrap_err().field,
            "cursor"
        );
        assert!(users.decode(Some("garbage!")).is_err());
        assert_eq!(users.decode(None).unwrap(), None);
    }

    #[test]
    fn a_cursor_whose_key_holds_a_nul_is_refused() {
        let users = Cursor::scope(&["account-1", "users"]);
        let forged = users.encode(&[json!("2026\u{0}"), json!(3)]);
        assert_eq!(users.decode(Some(&forged)).unwrap_err().field, "cursor");
    }

    #[test]
    fn limits_are_bounded() {
        assert_eq!(limit(None, 50, 500), Ok(50));
        assert_eq!(limit(Some(500), 50, 500), Ok(500));
        assert!(limit(Some(0), 50, 500).is_err());
        assert!(limit(Some(501), 50, 500).is_err());
    }

    #[test]
    fn a_full_page_carries_a_cursor_to_the_rest() {
        let cursor = Cursor::scope(&["a", "n"]);
        let page = Page::from_rows(vec![1, 2, 3], 2, &cursor, |n| vec![json!(n)]);
        assert_eq!(page.items, [1, 2]);
        assert_eq!(
            cursor.decode(page.next_cursor.as_deref()).unwrap(),
            Some(vec![json!(2)])
        );
        let last = Page::from_rows(vec![1, 2], 2, &cursor, |n| vec![json!(n)]);
        assert_eq!(last.next_cursor, None);
    }
}

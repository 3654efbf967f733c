//! The one place secrets are removed from anything that is recorded: every audit snapshot and
//! metadata value passes through [`redact`], so no call site can forget a field.

use serde_json::Value;

pub const REDACTED: &str = "[redacted]";

/// Keys whose values are secrets wherever they appear in a snapshot.
const SECRET_KEYS: &[&str] = &[
    "secret",
    "password",
    "password_hash",
    "smtp_password",
    "token",
    "token_hash",
    "api_key",
    "private_key",
    "client_secret",
    "authorization",
    "secret_ciphertext",
];

fn is_secret_key(key: &str) -> bool {
    let key = key.to_ascii_lowercase();
    SECRET_KEYS.contains(&key.as_str()) || key.ends_with("_secret") || key.ends_with("_password")
}

/// Replaces secret values by `"[redacted]"` and strips credentials from URLs, recursively.
pub fn redact(value: &mut Value) {
    match value {
        Value::Object(map) => {
            for (key, field) in map.iter_mut() {
                if is_secret_key(key) && !matches!(field, Value::Null | Value::Bool(_)) {
                    *field = Value::String(REDACTED.to_owned());
                } else {
                    redact(field);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(redact),
        Value::String(text) => {
            if let Some(clean) = strip_url_credentials(text) {
                *text = clean;
            }
        }
        _ => {}
    }
}

/// `https://user:pass@host/x` becomes `https://[redacted]@host/x`; other text is left alone.
fn strip_url_credentials(text: &str) -> Option<String> {
    let (scheme, rest) = text.split_once("://")?;
    if scheme.is_empty()
        || !scheme
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c))
    {
        return None;
    }
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    let (_, host) = authority.rsplit_once('@')?;
    Some(format!("{scheme}://{REDACTED}@{host}{tail}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn secrets_are_redacted_at_any_depth() {
        let mut snapshot = json!({
            "name": "hook",
            "secret": "s3cr3t",
            "has_secret": true,
            "config": {"smtp_password": "pw", "smtp_host": "mail", "webhook_url": "https://u:p@hooks.example.com/x?y=1"},
            "items": [{"token": "spog_abc"}],
            "password": null
        });
        redact(&mut snapshot);
        assert_eq!(
            snapshot,
            json!({
                "name": "hook",
                "secret": "[redacted]",
                "has_secret": true,
                "config": {"smtp_password": "[redacted]", "smtp_host": "mail", "webhook_url": "https://[redacted]@hooks.example.com/x?y=1"},
                "items": [{"token": "[redacted]"}],
                "password": null
            })
        );
    }

    #[test]
    fn text_that_merely_mentions_an_at_sign_is_kept() {
        let mut value = json!(["ada@example.com", "see https://example.com/a@b"]);
        redact(&mut value);
        assert_eq!(
            value,
            json!(["ada@example.com", "see https://example.com/a@b"])
        );
    }
}

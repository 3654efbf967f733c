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
    // Audit stream sinks (SPEC 3.5).
    "secret_access_key",
    "session_token",
    "tls_client_key",
    "authorization",
    "secret_ciphertext",
    "secrets_ciphertext",
    // Incoming-webhook URLs (Slack, Teams): the whole URL is the credential.
    "webhook_url",
];

/// Keys whose value is an object of names to secret values: every value is redacted, the
/// names kept (webhook and channel headers carry API keys and bearer tokens).
const SECRET_VALUE_MAPS: &[&str] = &["headers"];

fn is_secret_key(key: &str) -> bool {
    let key = key.to_ascii_lowercase();
    SECRET_KEYS.contains(&key.as_str()) || key.ends_with("_secret") || key.ends_with("_password")
}

/// Query parameters that carry credentials in URLs (`?token=`, `?sig=`, `?api_key=`, …).
fn is_secret_parameter(name: &str) -> bool {
    let name = name.to_ascii_lowercase().replace('-', "_");
    is_secret_key(&name)
        || [
            "key",
            "sig",
            "signature",
            "code",
            "auth",
            "apikey",
            "access_token",
        ]
        .contains(&name.as_str())
        || name.ends_with("_token")
        || name.ends_with("_key")
}

/// Replaces secret values by `"[redacted]"` and strips credentials from URLs (userinfo and
/// credential-like query parameters), recursively.
pub fn redact(value: &mut Value) {
    match value {
        Value::Object(map) => {
            for (key, field) in map.iter_mut() {
                if is_secret_key(key) && !matches!(field, Value::Null | Value::Bool(_)) {
                    *field = Value::String(REDACTED.to_owned());
                } else if let (true, Value::Object(values)) = (
                    SECRET_VALUE_MAPS.contains(&key.to_ascii_lowercase().as_str()),
                    &mut *field,
                ) {
                    for value in values.values_mut().filter(|v| !v.is_null()) {
                        *value = Value::String(REDACTED.to_owned());
                    }
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

/// `https://user:pass@host/x?token=t&a=1` becomes `https://[redacted]@host/x?token=[redacted]&a=1`;
/// other text (and a URL without credentials) is left alone.
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
    let clean_authority = authority
        .rsplit_once('@')
        .map(|(_, host)| format!("{REDACTED}@{host}"));
    let clean_tail = redact_query(tail);
    if clean_authority.is_none() && clean_tail.is_none() {
        return None;
    }
    Some(format!(
        "{scheme}://{}{}",
        clean_authority.as_deref().unwrap_or(authority),
        clean_tail.as_deref().unwrap_or(tail)
    ))
}

/// A path, query and fragment with the values of credential-like query parameters
/// redacted; `None` when there are none. Text with spaces is prose, not a URL's tail.
fn redact_query(tail: &str) -> Option<String> {
    let (path, rest) = tail.split_once('?')?;
    if rest.contains(char::is_whitespace) {
        return None;
    }
    let (query, fragment) = match rest.split_once('#') {
        Some((query, fragment)) => (query, Some(fragment)),
        None => (rest, None),
    };
    let mut changed = false;
    let pairs: Vec<String> = query
        .split('&')
        .map(|pair| match pair.split_once('=') {
            Some((name, value)) if !value.is_empty() && is_secret_parameter(name) => {
                changed = true;
                format!("{name}={REDACTED}")
            }
            _ => pair.to_owned(),
        })
        .collect();
    changed.then(|| {
        let mut clean = format!("{path}?{}", pairs.join("&"));
        if let Some(fragment) = fragment {
            clean.push('#');
            clean.push_str(fragment);
        }
        clean
    })
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
            "config": {"smtp_password": "pw", "smtp_host": "mail", "url": "https://u:p@hooks.example.com/x?y=1"},
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
                "config": {"smtp_password": "[redacted]", "smtp_host": "mail", "url": "https://[redacted]@hooks.example.com/x?y=1"},
                "items": [{"token": "[redacted]"}],
                "password": null
            })
        );
    }

    #[test]
    fn header_values_incoming_webhook_urls_and_url_tokens_are_redacted() {
        let mut snapshot = json!({
            "headers": {"X-Api-Key": "k3y", "Authorization": "Bearer t0k"},
            "config": {
                "webhook_url": "https://hooks.slack.com/services/T0/B0/s3cr3t",
                "headers": {"X-Custom": "v"},
                "url": "https://hooks.example.com/in?token=t0k&team=ops#x",
                "smtp_host": "mail.example.com"
            },
            "links": ["https://example.com/cb?sig=abc&access_token=xyz&page=2"]
        });
        redact(&mut snapshot);
        assert_eq!(
            snapshot,
            json!({
                "headers": {"X-Api-Key": "[redacted]", "Authorization": "[redacted]"},
                "config": {
                    "webhook_url": "[redacted]",
                    "headers": {"X-Custom": "[redacted]"},
                    "url": "https://hooks.example.com/in?token=[redacted]&team=ops#x",
                    "smtp_host": "mail.example.com"
                },
                "links": ["https://example.com/cb?sig=[redacted]&access_token=[redacted]&page=2"]
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

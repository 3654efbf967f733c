//! Webhook subscriptions (SPEC 5.1) and their signatures (SPEC 5.2): the subscription as the
//! API shows it, the parsers of its fields, and the HMAC signatures every attempt carries.

use std::collections::{BTreeMap, BTreeSet};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use serde::Serialize;
use sha2::Sha256;
use utoipa::ToSchema;

use crate::events::EventType;
use crate::model::Organization;
use crate::{FieldError, Id, Timestamp};

/// A webhook subscription. The secret is write-only: reads only say whether one is set.
#[derive(Clone, Debug, PartialEq, Serialize, ToSchema)]
pub struct Webhook {
    pub id: Id<Webhook>,
    pub organization_id: Id<Organization>,
    pub name: String,
    pub url: String,
    pub has_secret: bool,
    /// Extra headers sent with every attempt.
    pub headers: BTreeMap<String, String>,
    pub event_types: Vec<EventType>,
    pub active: bool,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

pub const MAX_NAME: usize = 200;
pub const MAX_URL: usize = 2048;
pub const MIN_SECRET: usize = 8;
pub const MAX_SECRET: usize = 256;
pub const MAX_HEADERS: usize = 20;
pub const MAX_HEADER_NAME: usize = 128;
pub const MAX_HEADER_VALUE: usize = 2048;

/// A target URL: absolute, `https` (or `http` when the server allows insecure targets), with
/// a host, without credentials or fragment.
pub fn parse_url(field: &str, text: &str, allow_insecure: bool) -> Result<url::Url, FieldError> {
    let text = text.trim();
    if text.len() > MAX_URL {
        return Err(FieldError::new(
            field,
            format!("must be at most {MAX_URL} characters"),
        ));
    }
    let url = url::Url::parse(text).map_err(|_| {
        FieldError::new(
            field,
            "must be an absolute URL like https://example.com/hook",
        )
    })?;
    match url.scheme() {
        "https" => {}
        "http" if allow_insecure => {}
        "http" => {
            return Err(FieldError::new(
                field,
                "must use https (this server does not allow insecure targets)",
            ));
        }
        _ => return Err(FieldError::new(field, "must be an https URL")),
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(FieldError::new(field, "must name a host"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(FieldError::new(
            field,
            "must not contain credentials; send them in a header such as Authorization",
        ));
    }
    if url.fragment().is_some() {
        return Err(FieldError::new(field, "must not contain a #fragment"));
    }
    Ok(url)
}

/// A subscription secret: its UTF-8 bytes are the HMAC key.
pub fn parse_secret(field: &str, text: &str) -> Result<String, FieldError> {
    let chars = text.chars().count();
    if !(MIN_SECRET..=MAX_SECRET).contains(&chars) {
        return Err(FieldError::new(
            field,
            format!("must be {MIN_SECRET} to {MAX_SECRET} characters"),
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

/// Headers the delivery itself sets or that frame the request; a subscription cannot set them.
fn is_reserved(name: &str) -> bool {
    const RESERVED: &[&str] = &[
        "content-type",
        "content-length",
        "content-encoding",
        "transfer-encoding",
        "host",
        "connection",
        "keep-alive",
        "upgrade",
        "te",
        "trailer",
        "expect",
    ];
    RESERVED.contains(&name)
        || name.starts_with("x-webhook-")
        || name.starts_with("webhook-")
        || name.starts_with("proxy-")
}

/// Extra headers: valid names (RFC 9110 tokens), printable values, none that would override
/// `Content-Type`, an `X-Webhook-*`/`webhook-*` header or the request's framing. Names are
/// kept as given; two names differing only in case are one header and refused.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Headers(BTreeMap<String, String>);

impl Headers {
    pub fn parse(field: &str, headers: &BTreeMap<String, String>) -> Result<Self, FieldError> {
        check_header_count(headers.len()).map_err(|message| FieldError::new(field, message))?;
        let mut seen = BTreeSet::new();
        for (name, value) in headers {
            check_header(name, value, &mut seen)
                .map_err(|message| FieldError::new(format!("{field}.{name}"), message))?;
        }
        Ok(Self(headers.clone()))
    }

    /// The headers with each value sealed by `seal(name, value)`: what the store keeps.
    pub fn sealed(&self, mut seal: impl FnMut(&str, &str) -> String) -> SealedHeaders {
        SealedHeaders(
            self.0
                .iter()
                .map(|(name, value)| (name.clone(), seal(name, value)))
                .collect(),
        )
    }
}

/// Checked header names ([`Headers`]), each with its value sealed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SealedHeaders(BTreeMap<String, String>);

impl SealedHeaders {
    pub fn as_map(&self) -> &BTreeMap<String, String> {
        &self.0
    }
}

/// A subscription's target, checked by [`parse_url`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WebhookUrl(url::Url);

impl WebhookUrl {
    pub fn parse(field: &str, text: &str, allow_insecure: bool) -> Result<Self, FieldError> {
        parse_url(field, text, allow_insecure).map(Self)
    }

    pub fn url(&self) -> &url::Url {
        &self.0
    }

    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }
}

pub fn check_header_count(count: usize) -> Result<(), String> {
    if count > MAX_HEADERS {
        return Err(format!("must have at most {MAX_HEADERS} headers"));
    }
    Ok(())
}

/// One header of a set, `seen` holding the lower-cased names before it; the error is about
/// the header.
pub fn check_header(name: &str, value: &str, seen: &mut BTreeSet<String>) -> Result<(), String> {
    let token = |c: char| c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c);
    if name.is_empty() || name.len() > MAX_HEADER_NAME || !name.chars().all(token) {
        return Err("is not a valid header name".to_owned());
    }
    let lower = name.to_ascii_lowercase();
    if is_reserved(&lower) {
        return Err("is set by the delivery itself and cannot be overridden".to_owned());
    }
    if !seen.insert(lower) {
        return Err("is given twice (header names ignore case)".to_owned());
    }
    if value.len() > MAX_HEADER_VALUE {
        return Err(format!("must be at most {MAX_HEADER_VALUE} bytes"));
    }
    if value.chars().any(|c| c.is_control() && c != '\t') {
        return Err("must not contain control characters".to_owned());
    }
    Ok(())
}

fn hmac_sha256(key: &[u8], parts: &[&[u8]]) -> Vec<u8> {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key).expect("HMAC takes any key length");
    for part in parts {
        mac.update(part);
    }
    mac.finalize().into_bytes().to_vec()
}

/// `X-Webhook-Signature`: `sha256=` and the hex HMAC-SHA256 of the raw body.
pub fn signature_header(secret: &str, body: &[u8]) -> String {
    format!(
        "sha256={}",
        hex::encode(hmac_sha256(secret.as_bytes(), &[body]))
    )
}

/// Standard Webhooks `webhook-signature`: `v1,` and the base64 HMAC-SHA256 of
/// `{id}.{timestamp}.{body}`, keyed by the secret's UTF-8 bytes.
pub fn standard_signature(secret: &str, id: &str, timestamp: i64, body: &[u8]) -> String {
    let timestamp = timestamp.to_string();
    let mac = hmac_sha256(
        secret.as_bytes(),
        &[id.as_bytes(), b".", timestamp.as_bytes(), b".", body],
    );
    format!("v1,{}", STANDARD.encode(mac))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn urls_must_be_https_unless_insecure_targets_are_allowed() {
        assert!(parse_url("url", "https://hooks.example.com/x?a=1", false).is_ok());
        assert!(parse_url("url", "http://hooks.example.com/x", false).is_err());
        assert!(parse_url("url", "http://127.0.0.1:9000/x", true).is_ok());
        for bad in [
            "ftp://example.com",
            "hooks.example.com",
            "https://",
            "https://u:p@example.com/",
            "https://example.com/#x",
            "javascript:alert(1)",
        ] {
            assert_eq!(
                parse_url("url", bad, true).unwrap_err().field,
                "url",
                "{bad}"
            );
        }
    }

    #[test]
    fn reserved_and_malformed_headers_are_refused_by_name() {
        assert!(Headers::parse("headers", &headers(&[("Authorization", "Bearer x")])).is_ok());
        for name in [
            "Content-Type",
            "X-Webhook-Signature",
            "webhook-id",
            "Host",
            "bad name",
            "",
        ] {
            let error = Headers::parse("headers", &headers(&[(name, "v")])).unwrap_err();
            assert_eq!(error.field, format!("headers.{name}"));
        }
        assert!(Headers::parse("headers", &headers(&[("X-A", "line\r\nbreak")])).is_err());
        assert!(Headers::parse("headers", &headers(&[("X-A", "1"), ("x-a", "2")])).is_err());
    }

    #[test]
    fn secrets_are_bounded() {
        assert!(parse_secret("secret", "short").is_err());
        assert!(parse_secret("secret", &"s".repeat(MAX_SECRET + 1)).is_err());
        assert!(parse_secret("secret", "a good long secret").is_ok());
    }

    #[test]
    fn signatures_match_known_vectors() {
        // HMAC-SHA256("key", "The quick brown fox jumps over the lazy dog").
        assert_eq!(
            signature_header("key", b"The quick brown fox jumps over the lazy dog"),
            "sha256=f7bc83f430538424b13298e6aa6fb143ef4d59a14946175997479dbc2d1a3cd8"
        );
        let standard = standard_signature("key", "msg_1", 1_700_000_000, b"{}");
        let expected = hmac_sha256(b"key", &[b"msg_1.1700000000.{}"]);
        assert_eq!(standard, format!("v1,{}", STANDARD.encode(expected)));
    }
}

//! How each kind of channel config field is read (`#[serde(deserialize_with)]` in
//! [`super::config`]): the value's shape and rule, with the message a request is told. A
//! stored configuration is read by the same rules.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde::Deserialize;
use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::Value;

use super::MAX_RECIPIENTS;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use super::config::{SmtpTls, TeamsFormat};
use crate::validate::{self, Email};
use crate::webhooks::{check_header, check_header_count, parse_url};

const NON_EMPTY: &str = "must be a non-empty string";
const TEXT: &str = "must be a string of at most 1024 characters";
const RECIPIENTS: &str = "must be a non-empty list of email addresses";
const HEADERS: &str = "must be an object of header names to string values";

fn fault<E: de::Error>(message: impl fmt::Display) -> E {
    E::custom(message)
}

fn non_empty<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    match Value::deserialize(d)? {
        Value::String(text) if !text.trim().is_empty() => Ok(text),
        _ => Err(fault(NON_EMPTY)),
    }
}

/// A required DNS hostname or IP address.
pub(super) fn hostname<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    validate::hostname("", &non_empty(d)?).map_err(|e| fault(e.message))
}

/// A required email address.
pub(super) fn email<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    Email::parse("", &non_empty(d)?)
        .map(Email::into_string)
        .map_err(|e| fault(e.message))
}

/// A required `http(s)` URL; whether this server takes `http` for a channel's own target is
/// the parser's policy ([`super::config::parse_config`]), not the field's.
pub(super) fn url<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    parse_url("", &non_empty(d)?, true)
        .map(|url| url.to_string())
        .map_err(|e| fault(e.message))
}

pub(super) fn port<'de, D: Deserializer<'de>>(d: D) -> Result<u16, D::Error> {
    Value::deserialize(d)?
        .as_u64()
        .and_then(|port| u16::try_from(port).ok())
        .filter(|port| *port > 0)
        .ok_or_else(|| fault("must be a port number from 1 to 65535"))
}

pub(super) fn flag<'de, D: Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    Value::deserialize(d)?
        .as_bool()
        .ok_or_else(|| fault("must be true or false"))
}

/// An optional string of at most 1024 bytes.
pub(super) fn text<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    match Value::deserialize(d)? {
        Value::String(text) if text.len() <= 1024 => Ok(Some(text)),
        _ => Err(fault(TEXT)),
    }
}

/// An optional text where blank means none.
pub(super) fn blank_is_none<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(text(d)?.filter(|text| !text.trim().is_empty()))
}

pub(super) fn teams_format<'de, D: Deserializer<'de>>(d: D) -> Result<TeamsFormat, D::Error> {
    match text(d)?.as_deref() {
        Some("auto") => Ok(TeamsFormat::Auto),
        Some("message_card") => Ok(TeamsFormat::MessageCard),
        Some("adaptive_card") => Ok(TeamsFormat::AdaptiveCard),
        _ => Err(fault("must be auto, message_card or adaptive_card")),
    }
}

pub(super) fn smtp_tls<'de, D: Deserializer<'de>>(d: D) -> Result<Option<SmtpTls>, D::Error> {
    match text(d)?.as_deref() {
        Some("starttls") => Ok(Some(SmtpTls::Starttls)),
        Some("implicit") => Ok(Some(SmtpTls::Implicit)),
        Some("none") => Ok(Some(SmtpTls::None)),
        _ => Err(fault("must be starttls, implicit or none")),
    }
}

/// Certificates of a private CA, PEM: one or more `CERTIFICATE` blocks of base64 and nothing
/// else, at most 64 KiB.
pub(super) fn pem_certificates<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<Option<String>, D::Error> {
    const BEGIN: &str = "-----BEGIN CERTIFICATE-----";
    const END: &str = "-----END CERTIFICATE-----";
    const MESSAGE: &str = "must be PEM certificates (-----BEGIN CERTIFICATE----- …)";
    let Value::String(pem) = Value::deserialize(d)? else {
        return Err(fault(MESSAGE));
    };
    if pem.len() > 64 * 1024 {
        return Err(fault("must be at most 64 KiB"));
    }
    let mut rest = pem.trim();
    let mut blocks = 0;
    while !rest.is_empty() {
        let body = rest
            .strip_prefix(BEGIN)
            .and_then(|after| after.split_once(END))
            .ok_or_else(|| fault(MESSAGE))?;
        let base64: String = body.0.split_whitespace().collect();
        if base64.is_empty() || STANDARD.decode(&base64).is_err() {
            return Err(fault(MESSAGE));
        }
        blocks += 1;
        rest = body.1.trim_start();
    }
    if blocks == 0 {
        return Err(fault(MESSAGE));
    }
    Ok(Some(pem))
}

/// Refuses every shape but the one its visitor reads, with one message.
macro_rules! refuse_other_shapes {
    ($message:expr) => {
        fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
            Err(fault($message))
        }
        fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
            Err(fault($message))
        }
        fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
            Err(fault($message))
        }
        fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
            Err(fault($message))
        }
        fn visit_str<E: de::Error>(self, _: &str) -> Result<Self::Value, E> {
            Err(fault($message))
        }
        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Err(fault($message))
        }
    };
}

/// 1 to [`MAX_RECIPIENTS`] email addresses; a bad one is named by its index.
pub(super) fn recipients<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    d.deserialize_any(Recipients)
}

struct Recipients;

impl<'de> Visitor<'de> for Recipients {
    type Value = Vec<String>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(RECIPIENTS)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut items: A) -> Result<Vec<String>, A::Error> {
        match items.size_hint() {
            Some(0) => return Err(fault(RECIPIENTS)),
            Some(count) if count > MAX_RECIPIENTS => {
                return Err(fault(format!(
                    "must have at most {MAX_RECIPIENTS} addresses"
                )));
            }
            _ => {}
        }
        let mut addresses = Vec::new();
        while let Some(Recipient(address)) = items.next_element()? {
            addresses.push(address);
        }
        if addresses.is_empty() || addresses.len() > MAX_RECIPIENTS {
            return Err(fault(RECIPIENTS));
        }
        Ok(addresses)
    }

    fn visit_map<A: MapAccess<'de>>(self, _: A) -> Result<Vec<String>, A::Error> {
        Err(fault(RECIPIENTS))
    }

    refuse_other_shapes!(RECIPIENTS);
}

struct Recipient(String);

impl<'de> Deserialize<'de> for Recipient {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let Value::String(text) = Value::deserialize(d)? else {
            return Err(fault("must be an email address"));
        };
        Email::parse("", &text)
            .map(|email| Recipient(email.into_string()))
            .map_err(|e| fault(e.message))
    }
}

/// Header names to values, each checked as a webhook's are; a bad one is named.
pub(super) fn headers<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<BTreeMap<String, String>, D::Error> {
    d.deserialize_any(Headers)
}

struct Headers;

impl<'de> Visitor<'de> for Headers {
    type Value = BTreeMap<String, String>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(HEADERS)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut entries: A) -> Result<Self::Value, A::Error> {
        if let Some(count) = entries.size_hint() {
            check_header_count(count).map_err(fault)?;
        }
        let mut seen = BTreeSet::new();
        let mut headers = BTreeMap::new();
        while let Some(name) = entries.next_key::<String>()? {
            let header = Header {
                name: &name,
                seen: &mut seen,
            };
            // A value that is not a string is the whole object's fault.
            let value = entries
                .next_value_seed(header)?
                .ok_or_else(|| fault(HEADERS))?;
            headers.insert(name, value);
        }
        check_header_count(headers.len()).map_err(fault)?;
        Ok(headers)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, _: A) -> Result<Self::Value, A::Error> {
        Err(fault(HEADERS))
    }

    refuse_other_shapes!(HEADERS);
}

/// One header's value, checked with its name; `None` when it is not a string.
struct Header<'a> {
    name: &'a str,
    seen: &'a mut BTreeSet<String>,
}

impl<'de> DeserializeSeed<'de> for Header<'_> {
    type Value = Option<String>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Option<String>, D::Error> {
        let Value::String(value) = Value::deserialize(d)? else {
            return Ok(None);
        };
        check_header(self.name, &value, self.seen).map_err(fault)?;
        Ok(Some(value))
    }
}

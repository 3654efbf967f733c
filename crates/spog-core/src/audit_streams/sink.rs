//! Where a stream sends (SPEC 3.5 "Sinks"). A sink as reads show it carries no secret value:
//! secrets (and header values, which carry API keys) are kept apart in [`SinkSecrets`],
//! sealed by the server, and reads say only `has_<field>` or `[redacted]`.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::ToSchema;

use super::Format;
use crate::redact::REDACTED;
use crate::webhooks::{check_header, check_header_count, parse_secret, parse_url};
use crate::{FieldError, FieldErrors};

/// Secret values of a sink in clear, by field (`secret`, `header:<name>`).
pub type SinkSecrets = BTreeMap<String, String>;

/// A sink as stored and read.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Sink {
    Https(HttpsSink),
    SplunkHec(SplunkHecSink),
    Syslog(SyslogSink),
}

/// RFC 5424 over TCP, octet-counted (RFC 6587 3.4.1).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct SyslogSink {
    pub host: String,
    pub port: u16,
    /// `tcp`.
    pub transport: String,
    /// `local0`…: the facility's name.
    pub facility: String,
    pub app_name: String,
    pub hostname: String,
    pub max_message_bytes: u32,
}

/// Syslog facilities by name, their code the index.
pub const FACILITIES: [&str; 24] = [
    "kern",
    "user",
    "mail",
    "daemon",
    "auth",
    "syslog",
    "lpr",
    "news",
    "uucp",
    "cron",
    "authpriv",
    "ftp",
    "ntp",
    "security",
    "console",
    "solaris-cron",
    "local0",
    "local1",
    "local2",
    "local3",
    "local4",
    "local5",
    "local6",
    "local7",
];

impl SyslogSink {
    pub fn facility_code(&self) -> u8 {
        FACILITIES
            .iter()
            .position(|f| *f == self.facility)
            .unwrap_or(16) as u8
    }
}

/// `POST url` with a JSON batch, signed like webhooks when a secret is set.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct HttpsSink {
    pub url: String,
    /// Header names, each value `[redacted]`.
    pub headers: BTreeMap<String, String>,
    pub compression: Compression,
    pub has_secret: bool,
}

/// Splunk's HTTP Event Collector: `POST {url}/services/collector/event`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct SplunkHecSink {
    pub url: String,
    pub index: Option<String>,
    pub source: String,
    pub sourcetype: Option<String>,
    pub host: Option<String>,
    /// Success waits until `/services/collector/ack` reports the batch indexed.
    pub indexer_ack: bool,
    pub has_token: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Compression {
    None,
}

const HEADER: &str = "header:";

impl Sink {
    pub fn type_name(&self) -> &'static str {
        match self {
            Sink::Https(_) => "https",
            Sink::SplunkHec(_) => "splunk_hec",
            Sink::Syslog(_) => "syslog",
        }
    }

    /// The URL it sends to, for the outbound guard.
    pub fn url(&self) -> Option<&str> {
        match self {
            Sink::Https(sink) => Some(&sink.url),
            Sink::SplunkHec(sink) => Some(&sink.url),
            Sink::Syslog(_) => None,
        }
    }

    /// The formats it carries.
    pub fn formats(&self) -> &'static [Format] {
        match self {
            Sink::Https(_) => &[Format::Native, Format::Ocsf],
            Sink::SplunkHec(_) | Sink::Syslog(_) => &[Format::Native, Format::Ocsf, Format::Cef],
        }
    }
}

/// A sink's fields given by a request: the object under `sink`.
struct Given<'a> {
    object: &'a Map<String, Value>,
    errors: FieldErrors,
}

impl Given<'_> {
    fn text(&mut self, name: &str, required: bool) -> Option<String> {
        match self.object.get(name) {
            None | Some(Value::Null) if required => {
                self.errors
                    .add(FieldError::new(format!("sink.{name}"), "is required"));
                None
            }
            None | Some(Value::Null) => None,
            Some(Value::String(text)) => Some(text.clone()),
            Some(_) => {
                self.errors
                    .add(FieldError::new(format!("sink.{name}"), "must be a string"));
                None
            }
        }
    }

    fn check<T>(&mut self, result: Result<T, FieldError>) -> Option<T> {
        self.errors.check(result)
    }

    fn refuse_unknown(&mut self, known: &[&str]) {
        for name in self.object.keys() {
            // Read-only fields a client sends back as it read them are ignored.
            let read_only = name.starts_with("has_");
            if name != "type" && !read_only && !known.contains(&name.as_str()) {
                self.errors.add(FieldError::new(
                    format!("sink.{name}"),
                    "is not a field of this sink type",
                ));
            }
        }
    }
}

/// Parses the `sink` of a request. `current` is the stream's sink and secrets on an update:
/// a secret the request leaves out is kept while the type stays, and a header whose value is
/// `[redacted]` (as reads show it) keeps its value.
pub fn parse_sink(
    value: &Value,
    allow_insecure: bool,
    current: Option<(&Sink, &SinkSecrets)>,
) -> Result<(Sink, SinkSecrets), FieldErrors> {
    let Some(object) = value.as_object() else {
        return Err(FieldError::new("sink", "must be an object with a type").into());
    };
    let mut given = Given {
        object,
        errors: FieldErrors::new(),
    };
    let kind = given.text("type", true);
    let kept = |type_name: &str| {
        current
            .filter(|(sink, _)| sink.type_name() == type_name)
            .map(|(_, secrets)| secrets.clone())
            .unwrap_or_default()
    };
    let parsed = match kind.as_deref() {
        Some("https") => https(&mut given, allow_insecure, kept("https")),
        Some("splunk_hec") => splunk_hec(&mut given, allow_insecure, kept("splunk_hec")),
        Some("syslog") => syslog(&mut given),
        Some(other @ ("elasticsearch" | "s3")) => {
            given.errors.add(FieldError::new(
                "sink.type",
                format!(
                    "{other} sinks are not available in this version; use https, splunk_hec or syslog"
                ),
            ));
            None
        }
        Some(_) => {
            given.errors.add(FieldError::new(
                "sink.type",
                "must be https, splunk_hec, elasticsearch, syslog or s3",
            ));
            None
        }
        None => None,
    };
    match parsed {
        Some(sink) if given.errors.is_empty() => Ok(sink),
        _ => Err(given.errors),
    }
}

fn https(
    given: &mut Given<'_>,
    allow_insecure: bool,
    kept: SinkSecrets,
) -> Option<(Sink, SinkSecrets)> {
    given.refuse_unknown(&["url", "secret", "headers", "compression"]);
    let url = given.text("url", true);
    let url = url.and_then(|url| given.check(parse_url("sink.url", &url, allow_insecure)));
    let mut secrets = SinkSecrets::new();
    match given.object.get("secret") {
        None => {
            if let Some(secret) = kept.get("secret") {
                secrets.insert("secret".to_owned(), secret.clone());
            }
        }
        Some(Value::Null) => {}
        Some(Value::String(secret)) => {
            if let Some(secret) = given.check(parse_secret("sink.secret", secret)) {
                secrets.insert("secret".to_owned(), secret);
            }
        }
        Some(_) => given
            .errors
            .add(FieldError::new("sink.secret", "must be a string or null")),
    }
    let mut headers = BTreeMap::new();
    match given.object.get("headers") {
        None | Some(Value::Null) => {}
        Some(Value::Object(map)) => {
            if let Err(message) = check_header_count(map.len()) {
                given.errors.add(FieldError::new("sink.headers", message));
            }
            let mut seen = BTreeSet::new();
            for (name, value) in map {
                let field = format!("sink.headers.{name}");
                let value = match value.as_str() {
                    Some(REDACTED) => match kept.get(&format!("{HEADER}{name}")) {
                        Some(kept) => kept.clone(),
                        None => {
                            given
                                .errors
                                .add(FieldError::new(field, "has no current value to keep"));
                            continue;
                        }
                    },
                    Some(value) => value.to_owned(),
                    None => {
                        given.errors.add(FieldError::new(field, "must be a string"));
                        continue;
                    }
                };
                match check_header(name, &value, &mut seen) {
                    Ok(()) => {
                        headers.insert(name.clone(), REDACTED.to_owned());
                        secrets.insert(format!("{HEADER}{name}"), value);
                    }
                    Err(message) => given.errors.add(FieldError::new(field, message)),
                }
            }
        }
        Some(_) => given.errors.add(FieldError::new(
            "sink.headers",
            "must be an object of names to values",
        )),
    }
    let compression = match given.text("compression", false).as_deref() {
        None | Some("none") => Some(Compression::None),
        Some(_) => {
            given.errors.add(FieldError::new(
                "sink.compression",
                "must be none (gzip is not available in this version)",
            ));
            None
        }
    };
    let sink = HttpsSink {
        url: url?.to_string(),
        headers,
        compression: compression?,
        has_secret: secrets.contains_key("secret"),
    };
    Some((Sink::Https(sink), secrets))
}

/// A short text field: printable, at most 200 characters.
fn short(given: &mut Given<'_>, name: &str) -> Option<String> {
    let value = given.text(name, false)?;
    if value.is_empty() || value.chars().count() > 200 || value.chars().any(char::is_control) {
        given.errors.add(FieldError::new(
            format!("sink.{name}"),
            "must be 1 to 200 printable characters",
        ));
        return None;
    }
    Some(value)
}

fn flag(given: &mut Given<'_>, name: &str) -> bool {
    match given.object.get(name) {
        None | Some(Value::Null) => false,
        Some(Value::Bool(value)) => *value,
        Some(_) => {
            given.errors.add(FieldError::new(
                format!("sink.{name}"),
                "must be true or false",
            ));
            false
        }
    }
}

/// A secret field: given, kept from the current sink when left out, or required.
fn secret(given: &mut Given<'_>, name: &str, kept: &SinkSecrets, secrets: &mut SinkSecrets) {
    let field = format!("sink.{name}");
    match given.object.get(name) {
        None | Some(Value::Null) => match kept.get(name) {
            Some(value) => {
                secrets.insert(name.to_owned(), value.clone());
            }
            None => given.errors.add(FieldError::new(field, "is required")),
        },
        Some(Value::String(value))
            if !value.is_empty() && value.len() <= 1024 && !value.chars().any(char::is_control) =>
        {
            secrets.insert(name.to_owned(), value.clone());
        }
        Some(_) => given.errors.add(FieldError::new(
            field,
            "must be 1 to 1024 printable characters",
        )),
    }
}

fn splunk_hec(
    given: &mut Given<'_>,
    allow_insecure: bool,
    kept: SinkSecrets,
) -> Option<(Sink, SinkSecrets)> {
    given.refuse_unknown(&[
        "url",
        "token",
        "index",
        "source",
        "sourcetype",
        "host",
        "indexer_ack",
    ]);
    let url = given.text("url", true);
    let url = url.and_then(|url| given.check(parse_url("sink.url", &url, allow_insecure)));
    let mut secrets = SinkSecrets::new();
    secret(given, "token", &kept, &mut secrets);
    let sink = SplunkHecSink {
        url: url?.as_str().trim_end_matches('/').to_owned(),
        index: short(given, "index"),
        source: short(given, "source").unwrap_or_else(|| "spog".to_owned()),
        sourcetype: short(given, "sourcetype"),
        host: short(given, "host"),
        indexer_ack: flag(given, "indexer_ack"),
        has_token: secrets.contains_key("token"),
    };
    Some((Sink::SplunkHec(sink), secrets))
}

/// A name of RFC 5424's header (HOSTNAME, APP-NAME): printable ASCII without spaces.
fn header_name(given: &mut Given<'_>, name: &str, max: usize, default: &str) -> String {
    let Some(value) = given.text(name, false) else {
        return default.to_owned();
    };
    if value.is_empty() || value.len() > max || !value.bytes().all(|b| (33..=126).contains(&b)) {
        given.errors.add(FieldError::new(
            format!("sink.{name}"),
            format!("must be 1 to {max} printable ASCII characters without spaces"),
        ));
    }
    value
}

fn syslog(given: &mut Given<'_>) -> Option<(Sink, SinkSecrets)> {
    given.refuse_unknown(&[
        "host",
        "port",
        "transport",
        "facility",
        "app_name",
        "hostname",
        "max_message_bytes",
    ]);
    let host = given.text("host", true);
    let host = host.and_then(|host| {
        let valid = !host.is_empty()
            && host.len() <= 253
            && host
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || ".-:[]".contains(c));
        if !valid {
            given.errors.add(FieldError::new(
                "sink.host",
                "must be a host name or an IP address",
            ));
        }
        valid.then(|| host.trim_matches(['[', ']']).to_owned())
    });
    let transport = given
        .text("transport", false)
        .unwrap_or_else(|| "tcp".to_owned());
    if transport == "tls" {
        given.errors.add(FieldError::new(
            "sink.transport",
            "tls is not available in this version; use tcp",
        ));
    } else if transport != "tcp" {
        given
            .errors
            .add(FieldError::new("sink.transport", "must be tcp or tls"));
    }
    let port = match given.object.get("port") {
        None | Some(Value::Null) => 514,
        Some(value) => match value.as_u64().and_then(|p| u16::try_from(p).ok()) {
            Some(port) if port > 0 => port,
            _ => {
                given
                    .errors
                    .add(FieldError::new("sink.port", "must be a port, 1 to 65535"));
                514
            }
        },
    };
    let facility = given
        .text("facility", false)
        .unwrap_or_else(|| "local0".to_owned());
    if !FACILITIES.contains(&facility.as_str()) {
        given.errors.add(FieldError::new(
            "sink.facility",
            "must be a syslog facility such as local0 or auth",
        ));
    }
    let app_name = header_name(given, "app_name", 48, "spog");
    let hostname = header_name(given, "hostname", 255, "spog");
    let max_message_bytes = match given.object.get("max_message_bytes") {
        None | Some(Value::Null) => 65_536,
        Some(value) => match value.as_u64() {
            Some(bytes) if (1024..=1 << 20).contains(&bytes) => bytes as u32,
            _ => {
                given.errors.add(FieldError::new(
                    "sink.max_message_bytes",
                    "must be 1024 to 1048576",
                ));
                65_536
            }
        },
    };
    let sink = SyslogSink {
        host: host?,
        port,
        transport,
        facility,
        app_name,
        hostname,
        max_message_bytes,
    };
    Some((Sink::Syslog(sink), SinkSecrets::new()))
}

/// The header values in clear, by name.
pub fn headers_of(secrets: &SinkSecrets) -> BTreeMap<String, String> {
    secrets
        .iter()
        .filter_map(|(key, value)| Some((key.strip_prefix(HEADER)?.to_owned(), value.clone())))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn bad_fields_are_named_under_sink() {
        let errors = parse_sink(
            &json!({"type": "https", "url": "ftp://x", "colour": "red"}),
            false,
            None,
        )
        .unwrap_err();
        assert!(errors.get("sink.url").is_some());
        assert!(errors.get("sink.colour").is_some());
        let errors = parse_sink(&json!({"type": "carrier_pigeon"}), false, None).unwrap_err();
        assert!(errors.get("sink.type").is_some());
    }

    #[test]
    fn secrets_are_kept_apart_and_kept_on_update() {
        let (sink, secrets) = parse_sink(
            &json!({"type": "https", "url": "https://siem.example/in", "secret": "s3cret-value",
                    "headers": {"X-Api-Key": "k1"}}),
            false,
            None,
        )
        .unwrap();
        let Sink::Https(https) = &sink else {
            panic!("an https sink")
        };
        assert!(https.has_secret);
        assert_eq!(https.headers["X-Api-Key"], REDACTED);
        assert_eq!(secrets["secret"], "s3cret-value");
        let (_, again) = parse_sink(
            &json!({"type": "https", "url": "https://siem.example/in",
                    "headers": {"X-Api-Key": "[redacted]"}}),
            false,
            Some((&sink, &secrets)),
        )
        .unwrap();
        assert_eq!(again, secrets);
        assert_eq!(headers_of(&again)["X-Api-Key"], "k1");
    }
}

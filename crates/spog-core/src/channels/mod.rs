//! Notification channels (SPEC 7.1) and their formats (SPEC 7.2): the channel as the API shows
//! it, the parser of each type's configuration (secrets split off to be sealed), and the
//! payload each type sends for a notice.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use utoipa::ToSchema;

use crate::model::Organization;
use crate::notification::Severity;
use crate::validate::Email;
use crate::webhooks::{parse_headers, parse_secret, parse_url};
use crate::{FieldError, FieldErrors, Id, Timestamp};

mod write_only;
pub use write_only::{header_key, keep_unchanged};

pub const MAX_NAME: usize = 200;
pub const MAX_RECIPIENTS: usize = 50;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ChannelType {
    Smtp,
    Webhook,
    Slack,
    Teams,
}

impl ChannelType {
    pub const ALL: [ChannelType; 4] = [
        ChannelType::Smtp,
        ChannelType::Webhook,
        ChannelType::Slack,
        ChannelType::Teams,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            ChannelType::Smtp => "smtp",
            ChannelType::Webhook => "webhook",
            ChannelType::Slack => "slack",
            ChannelType::Teams => "teams",
        }
    }

    /// `email` is accepted as another name of `smtp`.
    pub fn parse(field: &str, text: &str) -> Result<Self, FieldError> {
        let text = if text == "email" { "smtp" } else { text };
        Self::ALL
            .into_iter()
            .find(|t| t.as_str() == text)
            .ok_or_else(|| FieldError::new(field, "must be one of smtp, webhook, slack, teams"))
    }

    /// The config fields that hold secrets: write-only, sealed at rest.
    pub const fn secret_fields(self) -> &'static [&'static str] {
        match self {
            ChannelType::Smtp => &["smtp_password"],
            ChannelType::Webhook => &["secret"],
            ChannelType::Slack | ChannelType::Teams => &[],
        }
    }
}

impl fmt::Display for ChannelType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A notification channel. `config` never holds a secret: for each secret field it says
/// `has_<field>: true|false` instead.
#[derive(Clone, Debug, PartialEq, Serialize, ToSchema)]
pub struct Channel {
    pub id: Id<Channel>,
    pub organization_id: Id<Organization>,
    pub name: String,
    #[serde(rename = "type")]
    pub channel_type: ChannelType,
    #[schema(value_type = Object)]
    pub config: Value,
    pub enabled: bool,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TeamsFormat {
    MessageCard,
    AdaptiveCard,
}

/// A channel's configuration, checked and typed; secrets apart.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ChannelConfig {
    Smtp {
        smtp_host: String,
        smtp_port: u16,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        smtp_username: Option<String>,
        from_address: String,
        to_addresses: Vec<String>,
        use_tls: bool,
    },
    Webhook {
        url: String,
        #[serde(default)]
        headers: BTreeMap<String, String>,
    },
    Slack {
        webhook_url: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        channel: Option<String>,
    },
    Teams {
        webhook_url: String,
        format: TeamsFormat,
    },
}

impl ChannelConfig {
    pub fn channel_type(&self) -> ChannelType {
        match self {
            ChannelConfig::Smtp { .. } => ChannelType::Smtp,
            ChannelConfig::Webhook { .. } => ChannelType::Webhook,
            ChannelConfig::Slack { .. } => ChannelType::Slack,
            ChannelConfig::Teams { .. } => ChannelType::Teams,
        }
    }

    /// The configuration as reads show it, without the `type` tag, with `has_<secret>` flags
    /// and the write-only values hidden (the URL's host shown).
    pub fn public(&self, secrets: &Secrets) -> Value {
        let mut value = serde_json::to_value(self).expect("plain data serialises");
        let map = value.as_object_mut().expect("an object");
        map.remove("type");
        self.hide_write_only(map);
        for field in self.channel_type().secret_fields() {
            map.insert(
                format!("has_{field}"),
                Value::Bool(secrets.contains_key(*field)),
            );
        }
        value
    }
}

/// Secret config fields in clear, by name (`smtp_password`, `secret`).
pub type Secrets = BTreeMap<String, String>;

/// What a request says about one secret field.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SecretChange {
    /// Absent: keep the current value (none on create).
    Keep,
    /// `null`: remove it.
    Remove,
    Set(String),
}

/// Parses a channel's `config` object for `channel_type`. Field errors are named
/// `config.<field>`; unknown fields are refused. `allow_insecure` lets the webhook `url` be
/// `http` (Slack and Teams URLs take `http` or `https` as SPEC 7.1 says).
pub fn parse_config(
    channel_type: ChannelType,
    config: &Map<String, Value>,
    allow_insecure: bool,
    errors: &mut FieldErrors,
) -> Option<(ChannelConfig, BTreeMap<String, SecretChange>)> {
    let mut fields = Fields {
        map: config,
        errors,
        used: Vec::new(),
    };
    let parsed = typed(&mut fields, channel_type, allow_insecure);
    let mut secrets = BTreeMap::new();
    for field in channel_type.secret_fields() {
        fields.used.push(field);
        let change = match config.get(*field) {
            None => SecretChange::Keep,
            Some(Value::Null) => SecretChange::Remove,
            Some(Value::String(text)) if *field == "secret" => {
                match fields.errors.check(parse_secret("config.secret", text)) {
                    Some(secret) => SecretChange::Set(secret),
                    None => SecretChange::Keep,
                }
            }
            Some(Value::String(text)) if !text.is_empty() && text.len() <= 1024 => {
                SecretChange::Set(text.clone())
            }
            Some(_) => {
                fields.errors.add(FieldError::new(
                    format!("config.{field}"),
                    "must be a string of 1 to 1024 characters, or null to remove it",
                ));
                SecretChange::Keep
            }
        };
        secrets.insert((*field).to_owned(), change);
    }
    for key in config.keys() {
        let known = fields.used.contains(&key.as_str())
            || write_only::is_read_only_description(key)
            || channel_type
                .secret_fields()
                .iter()
                .any(|f| key == &format!("has_{f}"));
        if !known {
            fields.errors.add(FieldError::new(
                format!("config.{key}"),
                format!("is not a field of {channel_type} channels"),
            ));
        }
    }
    let parsed = parsed?;
    fields.errors.is_empty().then_some((parsed, secrets))
}

/// The typed configuration; `None` when some field is at fault (recorded in `fields`).
fn typed(
    fields: &mut Fields<'_, '_>,
    channel_type: ChannelType,
    allow_insecure: bool,
) -> Option<ChannelConfig> {
    match channel_type {
        ChannelType::Smtp => {
            let smtp_host = fields.required_str("smtp_host").and_then(|h| {
                fields
                    .errors
                    .check(crate::validate::hostname("config.smtp_host", h))
            });
            let smtp_port = fields.port("smtp_port", 587);
            let smtp_username = fields.optional_str("smtp_username").map(str::to_owned);
            let from_address = fields.required_str("from_address").and_then(|a| {
                fields
                    .errors
                    .check(Email::parse("config.from_address", a))
                    .map(Email::into_string)
            });
            let to_addresses = fields.addresses("to_addresses");
            let use_tls = fields.optional_bool("use_tls").unwrap_or(true);
            Some(ChannelConfig::Smtp {
                smtp_host: smtp_host?,
                smtp_port: smtp_port?,
                smtp_username,
                from_address: from_address?,
                to_addresses: to_addresses?,
                use_tls,
            })
        }
        ChannelType::Webhook => {
            let url = fields.url("url", allow_insecure);
            let headers = fields.headers("headers");
            Some(ChannelConfig::Webhook {
                url: url?,
                headers: headers?,
            })
        }
        ChannelType::Slack => {
            let webhook_url = fields.url("webhook_url", true);
            let channel = fields.optional_str("channel").map(str::to_owned);
            Some(ChannelConfig::Slack {
                webhook_url: webhook_url?,
                channel: channel.filter(|c| !c.trim().is_empty()),
            })
        }
        ChannelType::Teams => {
            let webhook_url = fields.url("webhook_url", true);
            let format = match fields.optional_str("format") {
                None | Some("message_card") => Some(TeamsFormat::MessageCard),
                Some("adaptive_card") => Some(TeamsFormat::AdaptiveCard),
                Some(_) => {
                    fields.errors.add(FieldError::new(
                        "config.format",
                        "must be message_card or adaptive_card",
                    ));
                    None
                }
            };
            Some(ChannelConfig::Teams {
                webhook_url: webhook_url?,
                format: format?,
            })
        }
    }
}

struct Fields<'a, 'e> {
    map: &'a Map<String, Value>,
    errors: &'e mut FieldErrors,
    used: Vec<&'a str>,
}

impl<'a> Fields<'a, '_> {
    fn get(&mut self, name: &'static str) -> Option<&'a Value> {
        self.used.push(name);
        self.map.get(name).filter(|v| !v.is_null())
    }

    fn error(&mut self, name: &str, message: &str) {
        self.errors
            .add(FieldError::new(format!("config.{name}"), message));
    }

    fn required_str(&mut self, name: &'static str) -> Option<&'a str> {
        match self.get(name) {
            None => {
                self.error(name, "is required");
                None
            }
            Some(Value::String(text)) if !text.trim().is_empty() => Some(text.as_str()),
            Some(_) => {
                self.error(name, "must be a non-empty string");
                None
            }
        }
    }

    fn optional_str(&mut self, name: &'static str) -> Option<&'a str> {
        match self.get(name) {
            None => None,
            Some(Value::String(text)) if text.len() <= 1024 => Some(text.as_str()),
            Some(_) => {
                self.error(name, "must be a string of at most 1024 characters");
                None
            }
        }
    }

    fn optional_bool(&mut self, name: &'static str) -> Option<bool> {
        match self.get(name) {
            None => None,
            Some(Value::Bool(flag)) => Some(*flag),
            Some(_) => {
                self.error(name, "must be true or false");
                None
            }
        }
    }

    fn port(&mut self, name: &'static str, default: u16) -> Option<u16> {
        match self.get(name) {
            None => Some(default),
            Some(value) => match value.as_u64().and_then(|p| u16::try_from(p).ok()) {
                Some(port) if port > 0 => Some(port),
                _ => {
                    self.error(name, "must be a port number from 1 to 65535");
                    None
                }
            },
        }
    }

    fn addresses(&mut self, name: &'static str) -> Option<Vec<String>> {
        let Some(value) = self.get(name) else {
            self.error(name, "is required");
            return None;
        };
        let Some(items) = value.as_array().filter(|items| !items.is_empty()) else {
            self.error(name, "must be a non-empty list of email addresses");
            return None;
        };
        if items.len() > MAX_RECIPIENTS {
            self.error(
                name,
                &format!("must have at most {MAX_RECIPIENTS} addresses"),
            );
            return None;
        }
        let mut addresses = Vec::new();
        for (i, item) in items.iter().enumerate() {
            let field = format!("config.{name}[{i}]");
            let parsed = match item.as_str() {
                Some(text) => Email::parse(&field, text),
                None => Err(FieldError::new(&field, "must be an email address")),
            };
            addresses.push(self.errors.check(parsed)?.into_string());
        }
        Some(addresses)
    }

    fn url(&mut self, name: &'static str, allow_insecure: bool) -> Option<String> {
        let text = self.required_str(name)?;
        let field = format!("config.{name}");
        self.errors
            .check(parse_url(&field, text, allow_insecure))
            .map(|u| u.to_string())
    }

    fn headers(&mut self, name: &'static str) -> Option<BTreeMap<String, String>> {
        let Some(value) = self.get(name) else {
            return Some(BTreeMap::new());
        };
        let field = format!("config.{name}");
        let map: Option<BTreeMap<String, String>> = serde_json::from_value(value.clone()).ok();
        let Some(map) = map else {
            self.errors.add(FieldError::new(
                field,
                "must be an object of header names to string values",
            ));
            return None;
        };
        self.errors.check(parse_headers(&field, &map))
    }
}

/// What a channel is told: an alert's state, or a test.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Notice {
    pub subject: String,
    pub message: String,
    pub severity: Severity,
    pub source: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub alert_id: Option<String>,
    pub timestamp: Timestamp,
}

impl Notice {
    /// The notice for an event a channel delivery carries: an `alert.*` event's alert, or any
    /// other event by its type.
    pub fn from_event(event_type: &str, data: &Value, timestamp: Timestamp) -> Self {
        let text = |key: &str| data.get(key).and_then(Value::as_str);
        let severity = text("severity")
            .and_then(Severity::parse)
            .unwrap_or(Severity::Info);
        let Some(rule) = text("rule_name") else {
            return Self {
                subject: format!("Event {event_type}"),
                message: data.to_string(),
                severity,
                source: "spog".to_owned(),
                alert_id: None,
                timestamp,
            };
        };
        let state = text("state").unwrap_or("firing");
        let source = match text("hostname") {
            Some(host) => format!("{rule} on {host}"),
            None => format!("alert rule {rule}"),
        };
        Self {
            subject: format!("[{}] {rule}: {state}", severity.as_str().to_uppercase()),
            message: text("summary").unwrap_or(rule).to_owned(),
            severity,
            source,
            alert_id: text("alert_id").map(str::to_owned),
            timestamp,
        }
    }

    /// The notice a channel's Test sends.
    pub fn test(channel_name: &str, now: Timestamp) -> Self {
        Self {
            subject: "Test notification from spog".to_owned(),
            message: format!("This is a test of the notification channel \"{channel_name}\"."),
            severity: Severity::Info,
            source: "spog".to_owned(),
            alert_id: None,
            timestamp: now,
        }
    }

    /// Webhook channel body: `{"subject", "message", "severity", "source", "alert_id"?, "timestamp"}`.
    pub fn webhook_payload(&self) -> Value {
        serde_json::to_value(self).expect("plain data serialises")
    }

    /// Slack incoming-webhook body: one attachment in the severity's colour.
    pub fn slack_payload(&self, channel: Option<&str>) -> Value {
        let mut body = json!({
            "attachments": [{
                "color": self.severity.colour(),
                "title": self.subject,
                "text": self.message,
                "fields": [
                    {"title": "Severity", "value": self.severity.as_str(), "short": true},
                    {"title": "Source", "value": self.source, "short": true},
                ],
                "ts": self.timestamp.unix_seconds(),
            }]
        });
        if let Some(channel) = channel {
            body["channel"] = Value::String(channel.to_owned());
        }
        body
    }

    /// Teams body in the configured format.
    pub fn teams_payload(&self, format: TeamsFormat) -> Value {
        let facts = [
            ("Severity", self.severity.as_str()),
            ("Source", &self.source),
        ];
        match format {
            TeamsFormat::MessageCard => json!({
                "@type": "MessageCard",
                "@context": "https://schema.org/extensions",
                "themeColor": self.severity.colour().trim_start_matches('#'),
                "summary": self.subject,
                "title": self.subject,
                "text": self.message,
                "sections": [{
                    "facts": facts.iter().map(|(name, value)| json!({"name": name, "value": value})).collect::<Vec<_>>(),
                }],
            }),
            TeamsFormat::AdaptiveCard => json!({
                "type": "message",
                "attachments": [{
                    "contentType": "application/vnd.microsoft.card.adaptive",
                    "contentUrl": null,
                    "content": {
                        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
                        "type": "AdaptiveCard",
                        "version": "1.4",
                        "body": [
                            {"type": "TextBlock", "text": self.subject, "weight": "Bolder", "size": "Medium",
                             "wrap": true, "color": adaptive_colour(self.severity)},
                            {"type": "TextBlock", "text": self.message, "wrap": true},
                            {"type": "FactSet", "facts": facts.iter().map(|(name, value)| json!({"title": name, "value": value})).collect::<Vec<_>>()},
                        ],
                    },
                }],
            }),
        }
    }

    /// The plain-text body of an email.
    pub fn email_text(&self) -> String {
        let mut text = format!(
            "{}\n\n{}\n\nSeverity: {}\nSource: {}\n",
            self.subject,
            self.message,
            self.severity.as_str(),
            self.source
        );
        if let Some(alert) = &self.alert_id {
            text.push_str(&format!("Alert: {alert}\n"));
        }
        text.push_str(&format!("Time: {}\n", self.timestamp));
        text
    }

    /// The HTML body of an email, every value escaped.
    pub fn email_html(&self) -> String {
        let mut rows = format!(
            "<tr><th align=\"left\">Severity</th><td>{}</td></tr><tr><th align=\"left\">Source</th><td>{}</td></tr>",
            self.severity.as_str(),
            escape(&self.source)
        );
        if let Some(alert) = &self.alert_id {
            rows.push_str(&format!(
                "<tr><th align=\"left\">Alert</th><td>{}</td></tr>",
                escape(alert)
            ));
        }
        format!(
            "<!DOCTYPE html><html><body style=\"font-family:sans-serif\">\
             <h2 style=\"border-left:6px solid {colour};padding-left:8px\">{subject}</h2>\
             <p>{message}</p><table>{rows}<tr><th align=\"left\">Time</th><td>{time}</td></tr></table>\
             </body></html>",
            colour = self.severity.colour(),
            subject = escape(&self.subject),
            message = escape(&self.message),
            time = self.timestamp,
        )
    }
}

/// Adaptive Cards name colours rather than take hex values.
fn adaptive_colour(severity: Severity) -> &'static str {
    match severity {
        Severity::Critical | Severity::High => "Attention",
        Severity::Medium => "Warning",
        Severity::Low => "Good",
        Severity::Info => "Accent",
    }
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(channel_type: ChannelType, config: Value) -> Result<ChannelConfig, FieldErrors> {
        let mut errors = FieldErrors::new();
        let parsed = parse_config(
            channel_type,
            config.as_object().unwrap(),
            false,
            &mut errors,
        );
        match parsed {
            Some((config, _)) if errors.is_empty() => Ok(config),
            _ => Err(errors),
        }
    }

    #[test]
    fn smtp_configs_name_every_bad_field() {
        let errors = parse(
            ChannelType::Smtp,
            json!({"smtp_port": 70000, "from_address": "nope", "to_addresses": ["a@example.com", "bad"], "extra": 1}),
        )
        .unwrap_err();
        assert!(errors.get("config.smtp_host").is_some());
        assert!(errors.get("config.smtp_port").is_some());
        assert!(errors.get("config.from_address").is_some());
        assert!(errors.get("config.to_addresses[1]").is_some());
        assert!(errors.get("config.extra").is_some());
        let ok = parse(
            ChannelType::Smtp,
            json!({"smtp_host": "mail.example.com", "from_address": "a@example.com", "to_addresses": ["b@example.com"], "smtp_password": "pw"}),
        )
        .unwrap();
        assert!(matches!(
            ok,
            ChannelConfig::Smtp {
                smtp_port: 587,
                use_tls: true,
                ..
            }
        ));
    }

    #[test]
    fn urls_take_only_http_schemes_and_teams_only_known_formats() {
        let errors = parse(
            ChannelType::Slack,
            json!({"webhook_url": "ftp://hooks.slack.com/x"}),
        )
        .unwrap_err();
        assert!(errors.get("config.webhook_url").is_some());
        assert!(
            parse(
                ChannelType::Slack,
                json!({"webhook_url": "http://hooks.example.com/x"})
            )
            .is_ok()
        );
        let errors = parse(
            ChannelType::Webhook,
            json!({"url": "http://hooks.example.com/x"}),
        )
        .unwrap_err();
        assert!(errors.get("config.url").is_some());
        let errors = parse(
            ChannelType::Teams,
            json!({"webhook_url": "https://x.example.com/", "format": "hero_card"}),
        )
        .unwrap_err();
        assert!(errors.get("config.format").is_some());
    }

    #[test]
    fn formats_follow_spec_7_2() {
        let notice = Notice {
            subject: "S".into(),
            message: "M <b>".into(),
            severity: Severity::Critical,
            source: "src".into(),
            alert_id: Some("a1".into()),
            timestamp: Timestamp::from_micros(1_700_000_000_000_000),
        };
        let slack = notice.slack_payload(Some("#ops"));
        assert_eq!(slack["channel"], "#ops");
        assert_eq!(slack["attachments"][0]["color"], "#D32F2F");
        assert_eq!(slack["attachments"][0]["fields"][1]["title"], "Source");
        assert_eq!(slack["attachments"][0]["ts"], 1_700_000_000);
        let card = notice.teams_payload(TeamsFormat::MessageCard);
        assert_eq!(card["@type"], "MessageCard");
        assert_eq!(card["themeColor"], "D32F2F");
        let adaptive = notice.teams_payload(TeamsFormat::AdaptiveCard);
        assert_eq!(adaptive["type"], "message");
        assert_eq!(adaptive["attachments"][0]["content"]["version"], "1.4");
        assert_eq!(notice.webhook_payload()["alert_id"], "a1");
        assert!(notice.email_html().contains("M &lt;b&gt;"));
    }
}

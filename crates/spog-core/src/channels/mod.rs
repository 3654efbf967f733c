//! Notification channels (SPEC 7.1) and their formats (SPEC 7.2): the channel as the API shows
//! it, the parser of each type's configuration (secrets split off to be sealed), and the
//! payload each type sends for a notice.

use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use utoipa::ToSchema;

use crate::model::Organization;
use crate::notification::Severity;
use crate::{FieldError, Id, Timestamp};

mod config;
mod fields;
mod write_only;
pub use config::{
    ChannelConfig, SecretChange, Secrets, SlackConfig, SmtpConfig, SmtpTls, TeamsConfig,
    TeamsFormat, WebhookConfig, parse_config,
};
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

impl ChannelConfig {
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
            // `auto` is resolved when a channel is saved; a connector card is what any takes.
            TeamsFormat::MessageCard | TeamsFormat::Auto => json!({
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

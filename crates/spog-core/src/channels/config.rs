//! A channel's configuration, described once: each type's struct names its fields, their
//! defaults and how each is read ([`super::fields`]); a request's `config` and a stored one
//! are read through that description. Secrets are apart ([`SecretChange`]).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::{ChannelType, fields, write_only};
use crate::read_object::read_object;
use crate::webhooks::parse_secret;
use crate::{FieldError, FieldErrors};

/// A channel's configuration, checked and typed; secrets apart.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ChannelConfig {
    Smtp(SmtpConfig),
    Webhook(WebhookConfig),
    Slack(SlackConfig),
    Teams(TeamsConfig),
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SmtpConfig {
    #[serde(deserialize_with = "fields::hostname")]
    pub smtp_host: String,
    #[serde(default = "default_smtp_port", deserialize_with = "fields::port")]
    pub smtp_port: u16,
    #[serde(
        default,
        deserialize_with = "fields::text",
        skip_serializing_if = "Option::is_none"
    )]
    pub smtp_username: Option<String>,
    #[serde(deserialize_with = "fields::email")]
    pub from_address: String,
    #[serde(deserialize_with = "fields::recipients")]
    pub to_addresses: Vec<String>,
    #[serde(default = "yes", deserialize_with = "fields::flag")]
    pub use_tls: bool,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct WebhookConfig {
    #[serde(deserialize_with = "fields::url")]
    pub url: String,
    #[serde(default, deserialize_with = "fields::headers")]
    pub headers: BTreeMap<String, String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SlackConfig {
    #[serde(deserialize_with = "fields::url")]
    pub webhook_url: String,
    #[serde(
        default,
        deserialize_with = "fields::blank_is_none",
        skip_serializing_if = "Option::is_none"
    )]
    pub channel: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TeamsConfig {
    #[serde(deserialize_with = "fields::url")]
    pub webhook_url: String,
    #[serde(default, deserialize_with = "fields::teams_format")]
    pub format: TeamsFormat,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TeamsFormat {
    #[default]
    MessageCard,
    AdaptiveCard,
}

fn default_smtp_port() -> u16 {
    587
}

fn yes() -> bool {
    true
}

impl ChannelConfig {
    pub fn channel_type(&self) -> ChannelType {
        match self {
            ChannelConfig::Smtp(_) => ChannelType::Smtp,
            ChannelConfig::Webhook(_) => ChannelType::Webhook,
            ChannelConfig::Slack(_) => ChannelType::Slack,
            ChannelConfig::Teams(_) => ChannelType::Teams,
        }
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
    let secret_fields = channel_type.secret_fields();
    let elsewhere = |key: &str| {
        write_only::is_read_only_description(key)
            || secret_fields
                .iter()
                .any(|field| key == *field || key == format!("has_{field}"))
    };
    let unknown = format!("is not a field of {channel_type} channels");
    let parsed = match channel_type {
        ChannelType::Smtp => {
            read_object("config", config, elsewhere, &unknown, errors).map(ChannelConfig::Smtp)
        }
        ChannelType::Webhook => {
            read_object("config", config, elsewhere, &unknown, errors).map(ChannelConfig::Webhook)
        }
        ChannelType::Slack => {
            read_object("config", config, elsewhere, &unknown, errors).map(ChannelConfig::Slack)
        }
        ChannelType::Teams => {
            read_object("config", config, elsewhere, &unknown, errors).map(ChannelConfig::Teams)
        }
    };
    let parsed = parsed.filter(|parsed| insecure_allowed(parsed, allow_insecure, errors));
    let mut secrets = BTreeMap::new();
    for field in secret_fields {
        let change = match config.get(*field) {
            None => SecretChange::Keep,
            Some(Value::Null) => SecretChange::Remove,
            Some(Value::String(text)) if *field == "secret" => {
                match errors.check(parse_secret("config.secret", text)) {
                    Some(secret) => SecretChange::Set(secret),
                    None => SecretChange::Keep,
                }
            }
            Some(Value::String(text)) if !text.is_empty() && text.len() <= 1024 => {
                SecretChange::Set(text.clone())
            }
            Some(_) => {
                errors.add(FieldError::new(
                    format!("config.{field}"),
                    "must be a string of 1 to 1024 characters, or null to remove it",
                ));
                SecretChange::Keep
            }
        };
        secrets.insert((*field).to_owned(), change);
    }
    let parsed = parsed?;
    errors.is_empty().then_some((parsed, secrets))
}

/// A webhook channel's own target is `https` unless the server allows insecure targets.
fn insecure_allowed(
    config: &ChannelConfig,
    allow_insecure: bool,
    errors: &mut FieldErrors,
) -> bool {
    match config {
        ChannelConfig::Webhook(webhook) if !allow_insecure && webhook.url.starts_with("http:") => {
            errors.add(FieldError::new(
                "config.url",
                "must use https (this server does not allow insecure targets)",
            ));
            false
        }
        _ => true,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

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
            ChannelConfig::Smtp(SmtpConfig {
                smtp_port: 587,
                use_tls: true,
                ..
            })
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
    fn each_field_says_what_it_must_be() {
        let smtp = json!({"smtp_host": "mail.example.com", "smtp_port": "x", "use_tls": "yes",
            "smtp_username": 5, "from_address": "", "to_addresses": vec!["a@example.com"; 51],
            "has_smtp_password": true, "colour": null});
        let errors = parse(ChannelType::Smtp, smtp).unwrap_err();
        let said: Vec<_> = errors.iter().collect();
        assert_eq!(
            said,
            [
                ("config.colour", "is not a field of smtp channels"),
                ("config.from_address", "must be a non-empty string"),
                ("config.smtp_port", "must be a port number from 1 to 65535"),
                (
                    "config.smtp_username",
                    "must be a string of at most 1024 characters"
                ),
                ("config.to_addresses", "must have at most 50 addresses"),
                ("config.use_tls", "must be true or false"),
            ]
        );
        let webhook =
            json!({"url": "https://x.example.com/", "headers": {"Host": "h"}, "secret": "short"});
        let errors = parse(ChannelType::Webhook, webhook).unwrap_err();
        assert_eq!(
            errors.get("config.headers.Host"),
            Some("is set by the delivery itself and cannot be overridden")
        );
        assert!(errors.get("config.secret").is_some());
        let webhook = json!({"url": "https://x.example.com/", "headers": {"X-A": 1}});
        let errors = parse(ChannelType::Webhook, webhook).unwrap_err();
        assert_eq!(
            errors.get("config.headers"),
            Some("must be an object of header names to string values")
        );
        let teams = json!({"webhook_url": "https://x.example.com/", "format": 5});
        let errors = parse(ChannelType::Teams, teams).unwrap_err();
        assert_eq!(
            errors.get("config.format"),
            Some("must be a string of at most 1024 characters")
        );
        let slack = json!({"webhook_url": "https://x.example.com/", "channel": "  ", "has_webhook_url": true});
        assert_eq!(
            parse(ChannelType::Slack, slack).unwrap(),
            ChannelConfig::Slack(SlackConfig {
                webhook_url: "https://x.example.com/".to_owned(),
                channel: None,
            })
        );
    }

    #[test]
    fn a_stored_configuration_reads_back_as_written() {
        let smtp = parse(
            ChannelType::Smtp,
            json!({"smtp_host": "Mail.Example.com", "smtp_port": null, "from_address": "A@example.com",
                   "to_addresses": ["b@example.com"], "use_tls": false}),
        )
        .unwrap();
        let stored = serde_json::to_string(&smtp).unwrap();
        assert_eq!(
            serde_json::from_str::<ChannelConfig>(&stored).unwrap(),
            smtp
        );
        assert!(stored.contains("\"smtp_host\":\"mail.example.com\",\"smtp_port\":587"));
    }
}

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
    /// Whether the connection is encrypted: `tls` says how (kept for clients of before).
    #[serde(default = "yes", deserialize_with = "fields::flag")]
    pub use_tls: bool,
    /// Absent from configurations stored before it existed: `use_tls` then says.
    #[serde(
        default,
        deserialize_with = "fields::smtp_tls",
        skip_serializing_if = "Option::is_none"
    )]
    pub tls: Option<SmtpTls>,
    /// A private CA's certificates (PEM), trusted beside the system's.
    #[serde(
        default,
        deserialize_with = "fields::pem_certificates",
        skip_serializing_if = "Option::is_none"
    )]
    pub tls_ca_cert: Option<String>,
}

/// How an SMTP connection is secured (SPEC 7.4).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SmtpTls {
    /// Plain, then STARTTLS, which must succeed.
    Starttls,
    /// TLS from the first byte (SMTPS, port 465).
    Implicit,
    /// Plain (internal relays).
    None,
}

impl SmtpTls {
    fn as_str(self) -> &'static str {
        match self {
            SmtpTls::Starttls => "starttls",
            SmtpTls::Implicit => "implicit",
            SmtpTls::None => "none",
        }
    }
}

impl SmtpConfig {
    pub fn security(&self) -> SmtpTls {
        match (self.tls, self.use_tls) {
            (Some(tls), _) => tls,
            (None, true) => SmtpTls::Starttls,
            (None, false) => SmtpTls::None,
        }
    }
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
    /// Chosen from the URL when the channel is saved (never stored).
    #[default]
    Auto,
    /// Office 365 connectors.
    MessageCard,
    /// Teams Workflows (Power Automate, Logic Apps).
    AdaptiveCard,
}

impl TeamsFormat {
    /// `auto` made definite: Workflows URLs (`…/workflows/{id}/triggers/…`) take Adaptive
    /// Cards, others the connectors' MessageCard.
    pub fn resolved(self, webhook_url: &str) -> TeamsFormat {
        match self {
            TeamsFormat::Auto => {
                let path = url::Url::parse(webhook_url)
                    .map(|url| url.path().to_owned())
                    .unwrap_or_default();
                let workflows = path
                    .split_once("/workflows/")
                    .is_some_and(|(_, rest)| rest.contains("/triggers/"));
                if workflows {
                    TeamsFormat::AdaptiveCard
                } else {
                    TeamsFormat::MessageCard
                }
            }
            definite => definite,
        }
    }
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
            let config = smtp_security(config, errors);
            read_object("config", &config, elsewhere, &unknown, errors).map(ChannelConfig::Smtp)
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
    let parsed = parsed
        .filter(|parsed| insecure_allowed(parsed, allow_insecure, errors))
        .map(|mut parsed| {
            if let ChannelConfig::Teams(teams) = &mut parsed {
                teams.format = teams.format.resolved(&teams.webhook_url);
            }
            parsed
        });
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

/// An SMTP `config` with `tls` and `use_tls` both said and agreeing (either may be given;
/// neither means STARTTLS), and port 465 for implicit TLS when no port is given.
fn smtp_security(config: &Map<String, Value>, errors: &mut FieldErrors) -> Map<String, Value> {
    let mut config = config.clone();
    let use_tls = match config.get("use_tls") {
        None | Some(Value::Null) => None,
        Some(Value::Bool(use_tls)) => Some(*use_tls),
        // Named by the field's own reader.
        Some(_) => return config,
    };
    let tls = match config.get("tls").and_then(Value::as_str) {
        Some("starttls") => Some(SmtpTls::Starttls),
        Some("implicit") => Some(SmtpTls::Implicit),
        Some("none") => Some(SmtpTls::None),
        // Absent or null; anything else is named by the field's own reader.
        _ if config.get("tls").is_none_or(Value::is_null) => None,
        _ => return config,
    };
    let tls = match (tls, use_tls) {
        (Some(tls), Some(use_tls)) if (tls != SmtpTls::None) != use_tls => {
            errors.add(FieldError::new(
                "config.tls",
                format!("{} contradicts use_tls: {use_tls}", tls.as_str()),
            ));
            return config;
        }
        (Some(tls), _) => tls,
        (None, Some(false)) => SmtpTls::None,
        (None, _) => SmtpTls::Starttls,
    };
    config.insert("tls".into(), tls.as_str().into());
    config.insert("use_tls".into(), (tls != SmtpTls::None).into());
    if tls == SmtpTls::Implicit && config.get("smtp_port").is_none_or(Value::is_null) {
        config.insert("smtp_port".into(), 465.into());
    }
    config
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

    fn smtp(extra: Value) -> Result<SmtpConfig, FieldErrors> {
        let mut config = json!({"smtp_host": "mail.example.com", "from_address": "a@example.com",
            "to_addresses": ["b@example.com"]});
        config
            .as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        parse(ChannelType::Smtp, config).map(|parsed| match parsed {
            ChannelConfig::Smtp(smtp) => smtp,
            other => panic!("{other:?}"),
        })
    }

    #[test]
    fn tls_and_use_tls_say_the_same_and_implicit_tls_takes_port_465() {
        let plain = smtp(json!({})).unwrap();
        assert_eq!(
            (plain.tls, plain.use_tls, plain.smtp_port),
            (Some(SmtpTls::Starttls), true, 587)
        );
        let implicit = smtp(json!({"tls": "implicit"})).unwrap();
        assert_eq!(
            (implicit.tls, implicit.use_tls, implicit.smtp_port),
            (Some(SmtpTls::Implicit), true, 465)
        );
        let on_2465 = smtp(json!({"tls": "implicit", "smtp_port": 2465})).unwrap();
        assert_eq!(on_2465.smtp_port, 2465);
        let none = smtp(json!({"use_tls": false})).unwrap();
        assert_eq!(
            (none.tls, none.security()),
            (Some(SmtpTls::None), SmtpTls::None)
        );
        let errors = smtp(json!({"tls": "none", "use_tls": true})).unwrap_err();
        assert!(errors.get("config.tls").is_some(), "{errors:?}");
        let errors = smtp(json!({"tls": "sometimes"})).unwrap_err();
        assert!(errors.get("config.tls").is_some(), "{errors:?}");
        // Stored before `tls` existed: `use_tls` says.
        let stored: SmtpConfig = serde_json::from_value(json!({"smtp_host": "m.example.com",
            "smtp_port": 25, "from_address": "a@example.com", "to_addresses": ["b@example.com"],
            "use_tls": false}))
        .unwrap();
        assert_eq!(stored.security(), SmtpTls::None);
    }

    #[test]
    fn a_private_ca_is_pem_certificates() {
        let pem = "-----BEGIN CERTIFICATE-----\nTUlJQg==\n-----END CERTIFICATE-----\n";
        assert_eq!(
            smtp(json!({"tls_ca_cert": pem}))
                .unwrap()
                .tls_ca_cert
                .as_deref(),
            Some(pem)
        );
        for bad in [
            "",
            "not a certificate",
            "-----BEGIN CERTIFICATE-----\n%%%\n-----END CERTIFICATE-----",
            "-----BEGIN PRIVATE KEY-----\nTUlJQg==\n-----END PRIVATE KEY-----",
        ] {
            let errors = smtp(json!({"tls_ca_cert": bad})).unwrap_err();
            assert!(
                errors.get("config.tls_ca_cert").is_some(),
                "{bad}: {errors:?}"
            );
        }
    }

    #[test]
    fn teams_auto_is_resolved_from_the_url_when_saved() {
        let format = |url: &str, format: Value| match parse(
            ChannelType::Teams,
            json!({"webhook_url": url, "format": format}),
        ) {
            Ok(ChannelConfig::Teams(teams)) => teams.format,
            other => panic!("{other:?}"),
        };
        let workflows = "https://prod-01.westus.logic.azure.com/workflows/abc123/triggers/manual/paths/invoke?sig=x";
        assert_eq!(format(workflows, Value::Null), TeamsFormat::AdaptiveCard);
        assert_eq!(format(workflows, json!("auto")), TeamsFormat::AdaptiveCard);
        assert_eq!(
            format(
                "https://example.webhook.office.com/webhookb2/x",
                json!("auto")
            ),
            TeamsFormat::MessageCard
        );
        assert_eq!(
            format(workflows, json!("message_card")),
            TeamsFormat::MessageCard
        );
    }
}

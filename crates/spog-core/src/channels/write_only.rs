//! A channel's write-only values (issue 12): its target URL (for Slack and Teams the whole
//! URL is the credential, and any URL may carry a token) and every header value. They are
//! sealed at rest apart from the rest of the configuration, never shown in reads (which say
//! that a URL is set and name its host), and kept by updates that leave them out.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use super::{ChannelConfig, SlackConfig, TeamsConfig, WebhookConfig};
use crate::redact::REDACTED;

/// The key under which a header's value is kept among the write-only values.
pub fn header_key(name: &str) -> String {
    format!("header:{name}")
}

/// `scheme://host[:port]` of a URL: all a stored configuration keeps of it.
fn origin(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(url) => url.origin().ascii_serialization(),
        Err(_) => String::new(),
    }
}

fn host(url: &str) -> Option<String> {
    url::Url::parse(url).ok()?.host_str().map(str::to_owned)
}

impl ChannelConfig {
    /// The config's URL field and its value.
    fn url_field(&self) -> Option<(&'static str, &String)> {
        match self {
            ChannelConfig::Webhook(webhook) => Some(("url", &webhook.url)),
            ChannelConfig::Slack(SlackConfig { webhook_url, .. })
            | ChannelConfig::Teams(TeamsConfig { webhook_url, .. }) => {
                Some(("webhook_url", webhook_url))
            }
            ChannelConfig::Smtp(_) => None,
        }
    }

    fn url_mut(&mut self) -> Option<&mut String> {
        match self {
            ChannelConfig::Webhook(webhook) => Some(&mut webhook.url),
            ChannelConfig::Slack(SlackConfig { webhook_url, .. })
            | ChannelConfig::Teams(TeamsConfig { webhook_url, .. }) => Some(webhook_url),
            ChannelConfig::Smtp(_) => None,
        }
    }

    /// The write-only values by key: the URL field's name, and `header:<name>` per header.
    pub fn write_only(&self) -> BTreeMap<String, String> {
        let mut values = BTreeMap::new();
        if let Some((field, url)) = self.url_field() {
            values.insert(field.to_owned(), url.clone());
        }
        if let ChannelConfig::Webhook(WebhookConfig { headers, .. }) = self {
            for (name, value) in headers {
                values.insert(header_key(name), value.clone());
            }
        }
        values
    }

    /// The configuration as stored beside the sealed values: the URL reduced to its origin,
    /// header values emptied.
    pub fn without_write_only(&self) -> ChannelConfig {
        let mut stored = self.clone();
        if let Some(url) = stored.url_mut() {
            *url = origin(url);
        }
        if let ChannelConfig::Webhook(WebhookConfig { headers, .. }) = &mut stored {
            headers.values_mut().for_each(String::clear);
        }
        stored
    }

    /// The whole configuration again from its stored form and its write-only values; `None`
    /// if one is missing.
    pub fn with_write_only(mut self, values: &BTreeMap<String, String>) -> Option<ChannelConfig> {
        if let Some((field, _)) = self.url_field() {
            let url = values.get(field)?.clone();
            *self.url_mut().expect("a URL field") = url;
        }
        if let ChannelConfig::Webhook(WebhookConfig { headers, .. }) = &mut self {
            for (name, value) in headers.iter_mut() {
                *value = values.get(&header_key(name))?.clone();
            }
        }
        Some(self)
    }

    /// Hides the write-only values of a read's `config`: the URL field becomes
    /// `has_<field>` and `<field>_host`, header values `[redacted]`.
    pub(super) fn hide_write_only(&self, map: &mut Map<String, Value>) {
        if let Some((field, url)) = self.url_field() {
            map.remove(field);
            map.insert(format!("has_{field}"), Value::Bool(!url.is_empty()));
            map.insert(
                format!("{field}_host"),
                host(url).map_or(Value::Null, Value::String),
            );
        }
        if let Some(Value::Object(headers)) = map.get_mut("headers") {
            for value in headers.values_mut() {
                *value = Value::String(REDACTED.to_owned());
            }
        }
    }
}

/// Fields of a read's `config` that describe write-only values; a request may send them
/// back unchanged (they are ignored).
pub(super) fn is_read_only_description(key: &str) -> bool {
    matches!(
        key,
        "has_url" | "url_host" | "has_webhook_url" | "webhook_url_host"
    )
}

/// A request's `config` with the write-only values it leaves out taken from `current` (the
/// whole stored configuration): a URL field that is absent, every header when `headers` is
/// absent, and a header whose value is `null` or `[redacted]` (as reads show it).
pub fn keep_unchanged(config: &mut Map<String, Value>, current: &ChannelConfig) {
    if let Some((field, url)) = current.url_field()
        && !config.contains_key(field)
    {
        config.insert(field.to_owned(), Value::String(url.clone()));
    }
    let ChannelConfig::Webhook(WebhookConfig {
        headers: current_headers,
        ..
    }) = current
    else {
        return;
    };
    match config.get_mut("headers") {
        None => {
            let kept = current_headers
                .iter()
                .map(|(name, value)| (name.clone(), Value::String(value.clone())))
                .collect();
            config.insert("headers".to_owned(), Value::Object(kept));
        }
        Some(Value::Object(headers)) => {
            for (name, value) in headers.iter_mut() {
                let unchanged = value.is_null() || value.as_str() == Some(REDACTED);
                if let (true, Some(kept)) = (unchanged, current_headers.get(name)) {
                    *value = Value::String(kept.clone());
                }
            }
        }
        Some(_) => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::channels::TeamsFormat;
    use serde_json::json;

    fn webhook() -> ChannelConfig {
        ChannelConfig::Webhook(WebhookConfig {
            url: "https://hooks.example.com/in?token=abc".to_owned(),
            headers: [("X-Api-Key".to_owned(), "k3y".to_owned())].into(),
        })
    }

    #[test]
    fn write_only_values_split_off_and_join_back() {
        for config in [
            webhook(),
            ChannelConfig::Teams(TeamsConfig {
                webhook_url: "https://example.webhook.office.com/webhookb2/secret".to_owned(),
                format: TeamsFormat::MessageCard,
            }),
        ] {
            let values = config.write_only();
            let stored = config.without_write_only();
            let text = serde_json::to_string(&stored).unwrap();
            assert!(
                !text.contains("token=abc") && !text.contains("k3y"),
                "{text}"
            );
            assert!(!text.contains("webhookb2"), "{text}");
            assert_eq!(stored.clone().with_write_only(&values), Some(config));
            assert_eq!(stored.with_write_only(&BTreeMap::new()), None);
        }
    }

    #[test]
    fn reads_name_the_host_and_hide_the_values() {
        let public = webhook().public(&Default::default());
        assert_eq!(
            public,
            json!({"has_url": true, "url_host": "hooks.example.com",
                   "headers": {"X-Api-Key": "[redacted]"}, "has_secret": false})
        );
        // The stored form reads the same.
        assert_eq!(
            webhook().without_write_only().public(&Default::default()),
            public
        );
    }

    #[test]
    fn left_out_values_are_kept() {
        let mut config = json!({"headers": {"X-Api-Key": null, "X-New": "v"}})
            .as_object()
            .unwrap()
            .clone();
        keep_unchanged(&mut config, &webhook());
        assert_eq!(
            Value::Object(config),
            json!({"url": "https://hooks.example.com/in?token=abc",
                   "headers": {"X-Api-Key": "k3y", "X-New": "v"}})
        );
        let mut config = Map::new();
        keep_unchanged(&mut config, &webhook());
        assert_eq!(config["headers"], json!({"X-Api-Key": "k3y"}));
    }
}

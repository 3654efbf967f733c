//! The effective configuration as `spog config` prints it: every key, its value with secrets
//! masked, and where it came from — what an operator checks before a restart.

use figment::Source;
use serde_json::Value;

use super::Loaded;

/// Keys whose values are never printed.
const SECRET_KEYS: &[&str] = &[
    "admin_password",
    "server_key",
    "metrics_token",
    "checkpoint_key",
];

/// One key of the effective configuration.
#[derive(Debug, PartialEq)]
pub struct Setting {
    pub key: String,
    /// As a file would spell it; secrets `[set]`, credentials in URLs masked.
    pub value: String,
    /// `default`, `file PATH` or `environment SPOG_KEY`.
    pub source: String,
}

impl Loaded {
    /// Every key in file order, with its effective value and source.
    pub fn settings(&self) -> Vec<Setting> {
        let Ok(Value::Object(values)) = serde_json::to_value(&self.config) else {
            return Vec::new();
        };
        values
            .into_iter()
            .map(|(key, value)| Setting {
                value: shown(&key, &value),
                source: self.source(&key),
                key,
            })
            .collect()
    }

    fn source(&self, key: &str) -> String {
        let Some(metadata) = self.figment.find_metadata(key) else {
            return "default".to_owned();
        };
        match &metadata.source {
            Some(Source::File(path)) => format!("file {}", path.display()),
            _ if metadata.name.contains("environment") => {
                format!("environment SPOG_{}", key.to_ascii_uppercase())
            }
            _ => "default".to_owned(),
        }
    }
}

fn shown(key: &str, value: &Value) -> String {
    match value {
        Value::Null => "(none)".to_owned(),
        _ if SECRET_KEYS.contains(&key) => "[set]".to_owned(),
        Value::String(text) if key == "database_url" => without_password(text),
        Value::String(text) => text.clone(),
        other => other.to_string(),
    }
}

/// `postgres://user:secret@host/db` → `postgres://user:[masked]@host/db`.
fn without_password(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let Some((credentials, host)) = rest.rsplit_once('@') else {
        return url.to_owned();
    };
    match credentials.split_once(':') {
        Some((user, _)) => format!("{scheme}://{user}:[masked]@{host}"),
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use crate::config::Config;

    #[test]
    #[allow(clippy::result_large_err)] // figment's Jail decides its closure's error type.
    fn every_key_is_shown_with_its_source_and_secrets_masked() {
        figment::Jail::expect_with(|jail| {
            jail.create_file(
                "spog.toml",
                "record_input = false\nserver_key = \"0123456789abcdef0123456789abcdef\"\n",
            )?;
            jail.set_env("SPOG_BODY_LIMIT", "1024");
            jail.set_env("SPOG_DATABASE_URL", "postgres://spog:hunter2@db/spog");
            let loaded = Config::read(Some(Path::new("spog.toml"))).unwrap();
            let settings = loaded.settings();
            assert_eq!(settings.len(), Config::keys().len());
            let find = |key: &str| settings.iter().find(|s| s.key == key).unwrap();
            assert_eq!(find("record_input").value, "false");
            assert!(
                find("record_input").source.starts_with("file "),
                "{:?}",
                find("record_input")
            );
            assert_eq!(find("body_limit").source, "environment SPOG_BODY_LIMIT");
            assert_eq!(find("listen").source, "default");
            assert_eq!(find("server_key").value, "[set]");
            assert_eq!(find("admin_password").value, "(none)");
            assert_eq!(
                find("database_url").value,
                "postgres://spog:[masked]@db/spog"
            );
            let printed = format!("{settings:?}");
            assert!(!printed.contains("hunter2") && !printed.contains("0123456789abcdef"));
            Ok(())
        });
    }

    #[test]
    #[allow(clippy::result_large_err)] // figment's Jail decides its closure's error type.
    fn service_links_do_not_stop_the_hub_but_an_unknown_key_in_a_file_does() {
        figment::Jail::expect_with(|jail| {
            jail.set_env("SPOG_PORT", "tcp://10.0.0.1:8080");
            jail.set_env("SPOG_SERVICE_HOST", "10.0.0.1");
            jail.set_env("SPOG_FOO", "1");
            jail.set_env("SPOG_LISTN", "0.0.0.0:1");
            let mut warnings = Config::read(None).unwrap().warnings;
            warnings.sort();
            assert_eq!(warnings.len(), 2, "{warnings:?}");
            assert!(warnings[0].contains("SPOG_FOO") && !warnings[0].contains("did you mean"));
            assert!(
                warnings[1].contains("did you mean SPOG_LISTEN?"),
                "{warnings:?}"
            );
            jail.create_file("spog.toml", "listn = \"0.0.0.0:1\"\n")?;
            let error = Config::read(Some(Path::new("spog.toml"))).err().unwrap();
            assert!(error.contains("listn"), "{error}");
            Ok(())
        });
    }
}

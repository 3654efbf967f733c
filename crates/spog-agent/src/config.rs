//! The agent's configuration (SPEC 12.2): compiled-in defaults, then the TOML file, then
//! `SPOG_AGENT_*` environment variables (`__` for nesting), then validation. Unknown keys are
//! refused, in the file and in the environment alike.

use std::path::{Path, PathBuf};
use std::time::Duration;

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::{Deserialize, Serialize};

/// Where `run`, `install` and the systemd unit look when no `--config` is given. Unlike a file
/// named with `--config`, it may be absent: the defaults and the environment then apply.
pub const DEFAULT_CONFIG_PATH: &str = "/etc/spog-agent/agent.toml";

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AgentConfig {
    /// The credential (`agent.json`), the status file and the shell spool.
    pub state_dir: PathBuf,
    /// The local socket `spog-agent shell` talks to.
    pub socket_path: PathBuf,
    /// How often metrics are sampled and sent; at least 1 s.
    #[serde(with = "duration")]
    pub metrics_interval: Duration,
    /// The longest wait between two connection attempts.
    #[serde(with = "duration")]
    pub reconnect_max_backoff: Duration,
    /// Samples held while disconnected; past it the oldest are dropped (and counted).
    pub metrics_buffer: usize,
    /// An extra CA (PEM, one or more certificates) trusted beside the system's roots, for a hub
    /// whose certificate a private CA signed.
    pub ca_file: Option<PathBuf>,
    pub terminal: TerminalConfig,
    pub shell: ShellConfig,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TerminalConfig {
    /// Console terminals allowed at all.
    pub enabled: bool,
    /// The local account the shells run as; required when enabled.
    pub user: Option<String>,
    /// That user's login shell when absent.
    pub shell: Option<PathBuf>,
    pub max_sessions: u32,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ShellConfig {
    /// What `spog-agent shell` runs; the user's login shell when absent.
    pub program: Option<PathBuf>,
    pub on_unavailable: OnUnavailable,
    /// Spool for sessions not yet uploaded, in bytes (`256MiB`, `1GiB`, or a number).
    #[serde(with = "byte_size")]
    pub buffer_limit: u64,
}

/// What `spog-agent shell` does when the agent cannot record the session.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnUnavailable {
    /// Run unrecorded, after a warning.
    Open,
    /// Refuse the login.
    Closed,
}

impl Default for AgentConfig {
    fn default() -> Self {
        Self {
            state_dir: PathBuf::from("/var/lib/spog-agent"),
            socket_path: PathBuf::from("/run/spog-agent/agent.sock"),
            metrics_interval: Duration::from_secs(15),
            reconnect_max_backoff: Duration::from_secs(30),
            metrics_buffer: 10_000,
            ca_file: None,
            terminal: TerminalConfig::default(),
            shell: ShellConfig::default(),
        }
    }
}

impl Default for TerminalConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            user: None,
            shell: None,
            max_sessions: 256,
        }
    }
}

impl Default for ShellConfig {
    fn default() -> Self {
        Self {
            program: None,
            on_unavailable: OnUnavailable::Open,
            buffer_limit: 256 * 1024 * 1024,
        }
    }
}

impl AgentConfig {
    /// Defaults, then `file`, then `SPOG_AGENT_*` variables, then validation. `None` reads the
    /// default file when it exists.
    pub fn load(file: Option<&Path>) -> Result<Self, String> {
        let mut figment = Figment::from(Serialized::defaults(AgentConfig::default()));
        match file {
            Some(file) if !file.exists() => {
                return Err(format!(
                    "configuration file {} does not exist",
                    file.display()
                ));
            }
            Some(file) => figment = figment.merge(Toml::file_exact(file)),
            None if Path::new(DEFAULT_CONFIG_PATH).exists() => {
                figment = figment.merge(Toml::file_exact(DEFAULT_CONFIG_PATH));
            }
            None => {}
        }
        figment = figment.merge(Env::prefixed("SPOG_AGENT_").split("__"));
        let config: AgentConfig = figment.extract().map_err(|e| {
            e.into_iter()
                .map(|e| e.to_string())
                .collect::<Vec<_>>()
                .join("; ")
        })?;
        config.validate()?;
        Ok(config)
    }

    pub fn validate(&self) -> Result<(), String> {
        for (key, path) in [
            ("state_dir", Some(&self.state_dir)),
            ("socket_path", Some(&self.socket_path)),
            ("ca_file", self.ca_file.as_ref()),
            ("terminal.shell", self.terminal.shell.as_ref()),
            ("shell.program", self.shell.program.as_ref()),
        ] {
            if path.is_some_and(|path| !path.is_absolute()) {
                return Err(format!("{key} must be an absolute path"));
            }
        }
        if self.metrics_interval < Duration::from_secs(1)
            || self.metrics_interval > Duration::from_secs(3600)
        {
            return Err("metrics_interval must be between 1s and 1h".into());
        }
        if self.reconnect_max_backoff < Duration::from_secs(1)
            || self.reconnect_max_backoff > Duration::from_secs(3600)
        {
            return Err("reconnect_max_backoff must be between 1s and 1h".into());
        }
        if !(100..=100_000).contains(&self.metrics_buffer) {
            return Err("metrics_buffer must hold 100 to 100000 samples".into());
        }
        let user_named = self.terminal.user.as_deref().is_some_and(|u| !u.is_empty());
        if self.terminal.enabled && !user_named {
            return Err("terminal.user is required when terminal.enabled is true".into());
        }
        if !(1..=4096).contains(&self.terminal.max_sessions) {
            return Err("terminal.max_sessions must be between 1 and 4096".into());
        }
        if self.shell.buffer_limit < 1024 * 1024 {
            return Err("shell.buffer_limit must be at least 1MiB".into());
        }
        Ok(())
    }

    /// `{state_dir}/agent.json`.
    pub fn enrollment_path(&self) -> PathBuf {
        self.state_dir.join("agent.json")
    }

    /// `{state_dir}/status.json`, kept by the running agent for `spog-agent status`.
    pub fn status_path(&self) -> PathBuf {
        self.state_dir.join("status.json")
    }
}

pub use spog_protocol::parse_duration;

/// Parses `256MiB`, `1GiB`, `512KiB`, `100MB`; a bare number is bytes.
pub fn parse_byte_size(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: u64 = number
        .parse()
        .map_err(|_| format!("`{text}` is not a size like 256MiB or 1GiB"))?;
    let unit_bytes: u64 = match unit.trim() {
        "" | "B" => 1,
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        "GiB" => 1 << 30,
        "KB" | "kB" => 1_000,
        "MB" => 1_000_000,
        "GB" => 1_000_000_000,
        _ => return Err(format!("`{text}` has an unknown unit; use KiB, MiB or GiB")),
    };
    number
        .checked_mul(unit_bytes)
        .ok_or_else(|| format!("`{text}` is too large"))
}

/// Text, or a number of seconds (the environment turns `15` into a number).
#[derive(Deserialize)]
#[serde(untagged)]
enum TextOrNumber {
    Text(String),
    Number(u64),
}

mod duration {
    use super::*;
    use serde::{Deserializer, Serializer};

    pub fn serialize<S: Serializer>(value: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
        if value.subsec_millis() != 0 {
            serializer.serialize_str(&format!("{}ms", value.as_millis()))
        } else {
            serializer.serialize_str(&format!("{}s", value.as_secs()))
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
        match TextOrNumber::deserialize(deserializer)? {
            TextOrNumber::Text(text) => parse_duration(&text).map_err(serde::de::Error::custom),
            TextOrNumber::Number(seconds) => Ok(Duration::from_secs(seconds)),
        }
    }
}

mod byte_size {
    use super::*;
    use serde::{Deserializer, Serializer};

    pub fn serialize<S: Serializer>(value: &u64, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_u64(*value)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<u64, D::Error> {
        match TextOrNumber::deserialize(deserializer)? {
            TextOrNumber::Text(text) => parse_byte_size(&text).map_err(serde::de::Error::custom),
            TextOrNumber::Number(bytes) => Ok(bytes),
        }
    }
}

#[cfg(test)]
#[allow(clippy::result_large_err)] // figment's Jail decides its closure's error type.
mod tests {
    use super::*;
    use figment::Jail;

    fn load_in(jail: &Jail) -> Result<AgentConfig, String> {
        AgentConfig::load(Some(&jail.directory().join("agent.toml")))
    }

    #[test]
    fn defaults_are_those_of_the_spec() {
        let config = AgentConfig::default();
        assert_eq!(config.state_dir, Path::new("/var/lib/spog-agent"));
        assert_eq!(config.socket_path, Path::new("/run/spog-agent/agent.sock"));
        assert_eq!(config.metrics_interval, Duration::from_secs(15));
        assert_eq!(config.reconnect_max_backoff, Duration::from_secs(30));
        assert!(!config.terminal.enabled);
        assert_eq!(config.terminal.max_sessions, 256);
        assert_eq!(config.shell.on_unavailable, OnUnavailable::Open);
        assert_eq!(config.shell.buffer_limit, 256 << 20);
        assert_eq!(config.validate(), Ok(()));
    }

    #[test]
    fn the_environment_overrides_the_file_which_overrides_the_defaults() {
        Jail::expect_with(|jail| {
            jail.create_file(
                "agent.toml",
                r#"
                state_dir = "/srv/agent"
                metrics_interval = "30s"
                reconnect_max_backoff = "2m"
                [terminal]
                max_sessions = 8
                [shell]
                on_unavailable = "closed"
                buffer_limit = "64MiB"
                "#,
            )?;
            jail.set_env("SPOG_AGENT_METRICS_INTERVAL", "5s");
            jail.set_env("SPOG_AGENT_TERMINAL__ENABLED", "true");
            jail.set_env("SPOG_AGENT_TERMINAL__USER", "spog");
            let config = load_in(jail).expect("valid configuration");
            assert_eq!(config.state_dir, Path::new("/srv/agent"));
            assert_eq!(config.metrics_interval, Duration::from_secs(5));
            assert_eq!(config.reconnect_max_backoff, Duration::from_secs(120));
            assert!(config.terminal.enabled);
            assert_eq!(config.terminal.user.as_deref(), Some("spog"));
            assert_eq!(config.terminal.max_sessions, 8);
            assert_eq!(config.shell.on_unavailable, OnUnavailable::Closed);
            assert_eq!(config.shell.buffer_limit, 64 << 20);
            assert_eq!(config.socket_path, Path::new("/run/spog-agent/agent.sock"));
            Ok(())
        });
    }

    #[test]
    fn unknown_keys_are_refused_in_the_file_and_in_the_environment() {
        Jail::expect_with(|jail| {
            jail.create_file("agent.toml", "metrics_intervall = \"15s\"\n")?;
            let error = load_in(jail).unwrap_err();
            assert!(error.contains("metrics_intervall"), "{error}");

            jail.create_file("agent.toml", "[terminal]\nusr = \"root\"\n")?;
            let error = load_in(jail).unwrap_err();
            assert!(error.contains("usr"), "{error}");

            jail.create_file("agent.toml", "")?;
            jail.set_env("SPOG_AGENT_SHELL__PROGRAMME", "/bin/bash");
            let error = load_in(jail).unwrap_err();
            assert!(error.contains("programme"), "{error}");
            Ok(())
        });
    }

    #[test]
    fn an_enabled_terminal_needs_a_user() {
        Jail::expect_with(|jail| {
            jail.create_file("agent.toml", "[terminal]\nenabled = true\n")?;
            let error = load_in(jail).unwrap_err();
            assert!(error.contains("terminal.user"), "{error}");
            Ok(())
        });
    }

    #[test]
    fn bad_values_are_refused_naming_the_key() {
        Jail::expect_with(|jail| {
            for (toml, key) in [
                ("metrics_interval = \"500ms\"", "metrics_interval"),
                ("metrics_interval = \"soon\"", "soon"),
                ("reconnect_max_backoff = \"0s\"", "reconnect_max_backoff"),
                ("state_dir = \"relative/dir\"", "state_dir"),
                ("metrics_buffer = 5", "metrics_buffer"),
                ("[shell]\non_unavailable = \"maybe\"", "maybe"),
                ("[shell]\nbuffer_limit = \"12 parsecs\"", "parsecs"),
            ] {
                jail.create_file("agent.toml", toml)?;
                let error = load_in(jail).unwrap_err();
                assert!(error.contains(key), "{toml}: {error}");
            }
            Ok(())
        });
    }

    #[test]
    fn a_named_file_must_exist() {
        let error = AgentConfig::load(Some(Path::new("/nonexistent/agent.toml"))).unwrap_err();
        assert!(error.contains("does not exist"), "{error}");
    }

    #[test]
    fn durations_and_sizes_read_like_people_write_them() {
        assert_eq!(parse_duration("15s"), Ok(Duration::from_secs(15)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("90"), Ok(Duration::from_secs(90)));
        assert!(parse_duration("1 fortnight").is_err());
        assert_eq!(parse_byte_size("256MiB"), Ok(256 << 20));
        assert_eq!(parse_byte_size("1GiB"), Ok(1 << 30));
        assert_eq!(parse_byte_size("100MB"), Ok(100_000_000));
        assert_eq!(parse_byte_size("4096"), Ok(4096));
        assert!(parse_byte_size("99999999999GiB").is_err());
    }
}

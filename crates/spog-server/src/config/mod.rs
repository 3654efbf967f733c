//! Configuration (SPEC 11): compiled-in defaults, then a TOML file, then `SPOG_*`
//! environment variables (`__` for nesting), then validation. Unknown keys in a file are
//! errors; unknown variables are warnings ([`environment`]).

mod environment;
mod report;

pub use report::Setting;

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use ipnet::IpNet;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Address to listen on.
    pub listen: SocketAddr,
    /// Where the other instances of a cluster reach this one (SPEC 13.4); `http://{listen}`
    /// when `listen` is not a wildcard address.
    pub cluster_url: Option<String>,
    /// SQLite file, server key and recordings live here.
    pub data_dir: PathBuf,
    /// `sqlite://PATH` or `postgres://…`; empty means a SQLite file in the data directory.
    pub database_url: String,
    /// Database connections (PostgreSQL) or readers (SQLite).
    pub database_max_connections: u32,
    /// The first admin, used only when the database is empty.
    pub admin_email: String,
    /// Generated and printed once when empty.
    pub admin_password: Option<Secret>,
    /// Key material for JWTs, checkpoints and secrets at rest; generated into the data
    /// directory when absent.
    pub server_key: Option<Secret>,
    /// Lifetime of a login session.
    #[serde(with = "duration")]
    pub session_ttl: Duration,
    /// Mark console cookies `Secure` (and send `Strict-Transport-Security`). Unset: secure
    /// unless the server listens on loopback, and for requests that a trusted proxy says came
    /// over HTTPS.
    pub cookie_secure: Option<bool>,
    /// Delays before delivery attempts 2..n.
    #[serde(with = "duration_list")]
    pub webhook_retry_schedule: Vec<Duration>,
    #[serde(with = "duration")]
    pub webhook_attempt_timeout: Duration,
    /// How long an instance holds a delivery it is attempting; if the instance dies, another
    /// takes the delivery up once this lapses. Longer than the attempt timeout.
    #[serde(with = "duration")]
    pub delivery_lease: Duration,
    /// Delivery attempts in flight at once on one instance.
    pub delivery_concurrency: u32,
    #[serde(with = "duration")]
    pub delivery_retention: Duration,
    /// Age after which `failed` deliveries (and their attempts) are deleted.
    #[serde(with = "duration")]
    pub failed_delivery_retention: Duration,
    /// Age after which in-app notifications are deleted.
    #[serde(with = "duration")]
    pub notification_retention: Duration,
    /// Age (since resolving) after which resolved alerts are deleted.
    #[serde(with = "duration")]
    pub alert_retention: Duration,
    /// How long ended recordings are kept where an account sets no retention of its own
    /// (SPEC 8.3); None (`forever`) keeps them.
    #[serde(with = "retention")]
    pub recording_retention: Option<Duration>,
    pub allow_insecure_targets: bool,
    #[serde(with = "cidr_list")]
    pub outbound_allow_cidrs: Vec<IpNet>,
    #[serde(with = "duration")]
    pub host_offline_after: Duration,
    /// Silence after which a metric rule's watched series has no data, for rules that do not
    /// say (`no_data_seconds`); 0 turns it off for them.
    #[serde(with = "duration")]
    pub metric_no_data_after: Duration,
    /// How long metric samples are kept raw (sub-minute steps need them).
    #[serde(with = "duration")]
    pub metrics_raw_retention: Duration,
    /// How long one-minute rollups (and series) are kept; older samples are refused.
    #[serde(with = "duration")]
    pub metrics_retention: Duration,
    /// Record terminal input (`i`) events; when off they are dropped before the disk.
    pub record_input: bool,
    /// Silence after which the scheduler ends a terminal session or desktop recording whose
    /// source stopped sending (a connected stream is never silent).
    #[serde(with = "duration")]
    pub recording_idle_timeout: Duration,
    /// A web terminal without input this long ends (`idle`); zero: never.
    #[serde(with = "duration")]
    pub terminal_idle_timeout: Duration,
    pub log_format: LogFormat,
    /// Longest time a request may take before it is answered 503.
    #[serde(with = "duration")]
    pub request_timeout: Duration,
    /// Largest accepted request body, in bytes.
    pub body_limit: usize,
    /// How often the scheduler signs a checkpoint of every account's chain.
    #[serde(with = "duration")]
    pub checkpoint_interval: Duration,
    /// How long a resolved credential is reused before it is looked up again; revocations on
    /// another instance take effect within it. Zero looks every request up.
    #[serde(with = "duration")]
    pub auth_cache_ttl: Duration,
    /// How far in the past an entry ingested through `POST /audit-logs` may say it happened
    /// (`occurred_at`); older is refused, so a component cannot slip history in far behind.
    #[serde(with = "duration")]
    pub audit_ingest_max_backdate: Duration,

    // Transport, files and recordings under hostile load (issue 12).
    /// A request's headers must arrive within this; it also ends idle keep-alive connections.
    #[serde(with = "duration")]
    pub header_read_timeout: Duration,
    /// Open client connections per instance (fewer if the open-files limit allows fewer);
    /// beyond it a new connection is answered 503 and closed at once.
    pub max_connections: usize,
    /// How long a response may wait on a client that stopped reading before the connection
    /// is dropped.
    #[serde(with = "duration")]
    pub write_timeout: Duration,
    /// Bearer token that `GET /metrics` requires on the main listener; without it (and
    /// without `metrics_listen`) the metrics are not served.
    pub metrics_token: Option<Secret>,
    /// A separate address serving `GET /metrics` without a token (keep it private).
    pub metrics_listen: Option<SocketAddr>,
    /// Streamed downloads (recordings, exports) one credential may have open at once.
    pub max_downloads_per_caller: usize,

    // Audit streams (SPEC 3.5, 11.2).
    /// How long an instance holds a stream it sends; another takes it up once this lapses.
    #[serde(with = "duration")]
    pub audit_stream_lease: Duration,
    /// One batch attempt.
    #[serde(with = "duration")]
    pub audit_stream_attempt_timeout: Duration,
    /// The longest back-off between a failing stream's attempts.
    #[serde(with = "duration")]
    pub audit_stream_retry_max_delay: Duration,
    /// How long a stream fails before the account's stream managers are told.
    #[serde(with = "duration")]
    pub audit_stream_alert_after: Duration,
    /// Streams one account may have.
    pub audit_streams_max_per_account: i64,
    /// Active terminal sessions plus desktop recordings an account may have at once.
    pub max_active_recordings_per_account: i64,

    /// CIDRs of reverse proxies whose `X-Forwarded-For`/`Forwarded` (and
    /// `X-Forwarded-Proto`) give the client; anyone else is taken at its socket address.
    #[serde(with = "cidr_list")]
    pub trusted_proxies: Vec<IpNet>,
    /// Open WebSockets per credential (a login session or an API token) on one instance;
    /// beyond it an upgrade is refused with 429.
    pub websocket_max_per_credential: usize,
    /// Open WebSockets per account on one instance; beyond it an upgrade is refused with 429.
    pub websocket_max_per_account: usize,

    /// The Ed25519 seed that signs audit checkpoints (32 bytes as hex or base64, or
    /// `file:PATH` of a file holding it), so the signing key can be kept away from the
    /// database and the server key; derived from `server_key` when absent.
    pub checkpoint_key: Option<Secret>,
    /// Delivery attempts in flight at once to one target (a webhook or channel), across
    /// every instance; a slow or dead endpoint holds no more slots than this.
    pub webhook_max_in_flight: u32,
    /// Attempts that time out in a row before a target is backed off: its deliveries wait
    /// (doubling from `delivery_target_backoff`) and it gets one attempt at a time until one
    /// answers.
    pub delivery_target_timeouts: u32,
    /// The first back-off of a target that keeps timing out; doubles up to 64 times it.
    #[serde(with = "duration")]
    pub delivery_target_backoff: Duration,

    // Where recordings are kept (SPEC 8.3).
    /// `local` (files under `data_dir/recordings/`) or `s3://bucket/prefix`.
    pub recordings_storage: String,
    /// The S3 endpoint; unset for AWS itself.
    pub s3_endpoint: Option<String>,
    pub s3_region: String,
    /// Both unset: the standard AWS environment or instance credentials.
    pub s3_access_key_id: Option<String>,
    pub s3_secret_access_key: Option<Secret>,
    pub s3_allow_http: bool,
    /// Virtual-hosted-style requests (`bucket.endpoint`) instead of path-style.
    pub s3_virtual_hosted_style: bool,
    /// How often the content of an active recording so far is uploaded to object storage
    /// (what losing a machine can lose at most).
    #[serde(with = "duration")]
    pub recording_upload_interval: Duration,

    // Single sign-on (SPEC 2.1).
    /// The external base URL (`https://spog.example.com`) of redirect URIs registered at
    /// identity providers; unset: the request's own scheme and host.
    pub public_url: Option<String>,
    /// How long a sign-in started at a provider may take to come back.
    #[serde(with = "duration")]
    pub sso_state_ttl: Duration,
    /// Each request to an identity provider (discovery, keys, token, userinfo).
    #[serde(with = "duration")]
    pub oidc_http_timeout: Duration,
    /// Leeway for an ID token's `exp` and `iat` against this server's clock.
    #[serde(with = "duration")]
    pub oidc_clock_skew: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            cluster_url: None,
            data_dir: PathBuf::from("./data"),
            database_url: String::new(),
            database_max_connections: 16,
            admin_email: "admin@localhost".to_owned(),
            admin_password: None,
            server_key: None,
            session_ttl: Duration::from_secs(12 * 3600),
            cookie_secure: None,
            webhook_retry_schedule: [1, 5, 15, 60, 240]
                .into_iter()
                .map(|m| Duration::from_secs(m * 60))
                .collect(),
            webhook_attempt_timeout: Duration::from_secs(10),
            delivery_lease: Duration::from_secs(60),
            delivery_concurrency: 256,
            delivery_retention: Duration::from_secs(30 * 86_400),
            failed_delivery_retention: Duration::from_secs(90 * 86_400),
            notification_retention: Duration::from_secs(90 * 86_400),
            alert_retention: Duration::from_secs(180 * 86_400),
            recording_retention: None,
            allow_insecure_targets: false,
            outbound_allow_cidrs: Vec::new(),
            host_offline_after: Duration::from_secs(90),
            metric_no_data_after: Duration::from_secs(600),
            metrics_raw_retention: Duration::from_secs(86_400),
            metrics_retention: Duration::from_secs(7 * 86_400),
            record_input: true,
            recording_idle_timeout: Duration::from_secs(600),
            terminal_idle_timeout: Duration::ZERO,
            log_format: LogFormat::Text,
            request_timeout: Duration::from_secs(30),
            body_limit: 16 * 1024 * 1024,
            checkpoint_interval: Duration::from_secs(3600),
            auth_cache_ttl: Duration::from_secs(1),
            audit_ingest_max_backdate: Duration::from_secs(7 * 86_400),
            header_read_timeout: Duration::from_secs(10),
            max_connections: 10_000,
            write_timeout: Duration::from_secs(30),
            metrics_token: None,
            metrics_listen: None,
            max_downloads_per_caller: 8,
            audit_stream_lease: Duration::from_secs(30),
            audit_stream_attempt_timeout: Duration::from_secs(30),
            audit_stream_retry_max_delay: Duration::from_secs(300),
            audit_stream_alert_after: Duration::from_secs(300),
            audit_streams_max_per_account: 10,
            max_active_recordings_per_account: 1_000,
            trusted_proxies: Vec::new(),
            websocket_max_per_credential: 32,
            websocket_max_per_account: 1_000,
            checkpoint_key: None,
            webhook_max_in_flight: 16,
            delivery_target_timeouts: 3,
            delivery_target_backoff: Duration::from_secs(30),
            recordings_storage: "local".to_owned(),
            s3_endpoint: None,
            s3_region: "us-east-1".to_owned(),
            s3_access_key_id: None,
            s3_secret_access_key: None,
            s3_allow_http: false,
            s3_virtual_hosted_style: false,
            recording_upload_interval: Duration::from_secs(60),
            public_url: None,
            sso_state_ttl: Duration::from_secs(600),
            oidc_http_timeout: Duration::from_secs(10),
            oidc_clock_skew: Duration::from_secs(60),
        }
    }
}

/// A configuration as read, with what the operator should hear about it.
pub struct Loaded {
    pub config: Config,
    /// `SPOG_*` variables that are not keys, each with the closest key.
    pub warnings: Vec<String>,
    figment: Figment,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

impl Config {
    /// Defaults, then `file` (if any), then `SPOG_*` variables, then validation.
    pub fn load(file: Option<&Path>) -> Result<Self, String> {
        Self::read(file).map(|loaded| loaded.config)
    }

    /// Like [`Self::load`], keeping what an operator should see: the warnings about
    /// variables that are not keys, and where each value came from.
    pub fn read(file: Option<&Path>) -> Result<Loaded, String> {
        let mut figment = Figment::from(Serialized::defaults(Config::default()));
        if let Some(file) = file {
            if !file.exists() {
                return Err(format!(
                    "configuration file {} does not exist",
                    file.display()
                ));
            }
            figment = figment.merge(Toml::file(file));
        }
        let known = Self::keys();
        let variables = environment::sort(std::env::vars(), &known);
        let keys = variables.keys;
        let env = Env::prefixed("SPOG_")
            .filter(move |key| keys.iter().any(|k| key.as_str().eq_ignore_ascii_case(k)))
            .split("__");
        figment = figment.merge(env);
        let config: Config = figment.extract().map_err(|e| {
            e.into_iter()
                .map(|e| e.to_string())
                .collect::<Vec<_>>()
                .join("; ")
        })?;
        config.validate()?;
        Ok(Loaded {
            config,
            warnings: variables.warnings,
            figment,
        })
    }

    /// Every configuration key, as the file and `SPOG_*` variables spell it (lower case).
    pub fn keys() -> Vec<String> {
        match serde_json::to_value(Config::default()) {
            Ok(serde_json::Value::Object(map)) => map.into_iter().map(|(k, _)| k).collect(),
            _ => Vec::new(),
        }
    }

    /// Where peers reach this instance: `cluster_url`, else `http://{listen}` unless `listen`
    /// is a wildcard address (then only `cluster_url` can say).
    pub fn advertised_url(&self) -> Option<String> {
        if let Some(url) = &self.cluster_url {
            return Some(url.trim_end_matches('/').to_owned());
        }
        (!self.listen.ip().is_unspecified()).then(|| format!("http://{}", self.listen))
    }

    pub fn validate(&self) -> Result<(), String> {
        // Peers talk over the cluster's own network, authenticated by tokens signed with the
        // shared server key; TLS between instances is the network's (a mesh or a VPN).
        if let Some(url) = &self.cluster_url
            && !url.starts_with("http://")
        {
            return Err("cluster_url must be an http:// address".into());
        }
        if !self.database_url.is_empty()
            && spog_store::Backend::from_url(&self.database_url).is_none()
        {
            return Err("database_url must start with sqlite: or postgres:".into());
        }
        crate::recordings::storage::Location::parse(&self.recordings_storage)?;
        if self.recording_upload_interval < Duration::from_secs(1) {
            return Err("recording_upload_interval must be at least 1s".into());
        }
        if let Some(url) = &self.public_url
            && !(url.starts_with("https://") || url.starts_with("http://"))
        {
            return Err("public_url must be an http:// or https:// URL".into());
        }
        if self.sso_state_ttl < Duration::from_secs(10) || self.oidc_http_timeout.is_zero() {
            return Err("sso_state_ttl must be at least 10s and oidc_http_timeout positive".into());
        }
        if self.webhook_retry_schedule.is_empty() {
            return Err("webhook_retry_schedule needs at least one delay".into());
        }
        if self.webhook_attempt_timeout.is_zero()
            || self.session_ttl.is_zero()
            || self.host_offline_after.is_zero()
            || self.recording_idle_timeout.is_zero()
        {
            return Err(
                "webhook_attempt_timeout, session_ttl, host_offline_after and \
                 recording_idle_timeout must be positive"
                    .into(),
            );
        }
        let no_data = self.metric_no_data_after;
        if !no_data.is_zero()
            && (no_data < Duration::from_secs(5) || no_data > Duration::from_secs(7 * 86_400))
        {
            return Err("metric_no_data_after must be 0 (off) or between 5s and 7d".into());
        }
        if self.metrics_raw_retention < Duration::from_secs(60)
            || self.metrics_retention < self.metrics_raw_retention
        {
            return Err(
                "metrics_raw_retention must be at least 1m and metrics_retention at least as long"
                    .into(),
            );
        }
        if [
            self.delivery_retention,
            self.failed_delivery_retention,
            self.notification_retention,
            self.alert_retention,
        ]
        .iter()
        .chain(&self.recording_retention)
        .any(|d| *d < Duration::from_secs(1))
        {
            return Err(
                "delivery_retention, failed_delivery_retention, notification_retention, \
                 alert_retention and recording_retention must be at least 1s"
                    .into(),
            );
        }
        if self.delivery_lease <= self.webhook_attempt_timeout {
            return Err("delivery_lease must be longer than webhook_attempt_timeout".into());
        }
        // An attempt may outlast the lease: the lease's epoch keeps a holder that lost it from
        // moving the cursor, so the worst is a batch sent twice.
        if self.audit_stream_attempt_timeout.is_zero()
            || self.audit_stream_lease < Duration::from_secs(1)
        {
            return Err(
                "audit_stream_attempt_timeout must be positive and audit_stream_lease at least 1s"
                    .into(),
            );
        }
        if self.audit_stream_retry_max_delay < Duration::from_secs(1)
            || self.audit_streams_max_per_account < 0
        {
            return Err("audit_stream_retry_max_delay must be at least 1s and \
                 audit_streams_max_per_account not negative"
                .into());
        }
        if self.delivery_concurrency == 0 {
            return Err("delivery_concurrency must be at least 1".into());
        }
        if self.webhook_max_in_flight == 0 || self.delivery_target_timeouts == 0 {
            return Err(
                "webhook_max_in_flight and delivery_target_timeouts must be at least 1".into(),
            );
        }
        if self.body_limit < 1024 {
            return Err("body_limit must be at least 1024 bytes".into());
        }
        if self.database_max_connections == 0 {
            return Err("database_max_connections must be at least 1".into());
        }
        if self.header_read_timeout.is_zero() || self.write_timeout.is_zero() {
            return Err("header_read_timeout and write_timeout must be positive".into());
        }
        if self.max_connections == 0
            || self.max_downloads_per_caller == 0
            || self.max_active_recordings_per_account < 1
        {
            return Err("max_connections, max_downloads_per_caller and \
                 max_active_recordings_per_account must be at least 1"
                .into());
        }
        if self
            .metrics_token
            .as_ref()
            .is_some_and(|t| t.expose().len() < 16)
        {
            return Err("metrics_token must be at least 16 characters".into());
        }
        if self.websocket_max_per_credential == 0 || self.websocket_max_per_account == 0 {
            return Err(
                "websocket_max_per_credential and websocket_max_per_account must be at least 1"
                    .into(),
            );
        }
        spog_core::validate::Email::parse("admin_email", &self.admin_email)
            .map_err(|e| e.to_string())?;
        Ok(())
    }

    /// The database URL, defaulting to a SQLite file in the data directory.
    /// `recording_retention` as it is written: `forever` or a duration.
    pub fn recording_retention_text(&self) -> String {
        self.recording_retention
            .map_or_else(|| "forever".to_owned(), |kept| format_duration(&kept))
    }

    pub fn database_url(&self) -> String {
        if self.database_url.is_empty() {
            format!("sqlite://{}", self.data_dir.join("spog.db").display())
        } else {
            self.database_url.clone()
        }
    }
}

/// A configuration value that must never be printed.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl Serialize for Secret {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer).map(Secret)
    }
}

pub use spog_protocol::parse_duration;

/// A duration as it would be written: in its largest whole unit (`30d`, `90s`, `250ms`).
pub fn format_duration(duration: &Duration) -> String {
    if duration.subsec_millis() != 0 {
        return format!("{}ms", duration.as_millis());
    }
    let seconds = duration.as_secs();
    match [(86_400, "d"), (3_600, "h"), (60, "m")]
        .into_iter()
        .find(|(unit, _)| seconds > 0 && seconds.is_multiple_of(*unit))
    {
        Some((unit, name)) => format!("{}{name}", seconds / unit),
        None => format!("{seconds}s"),
    }
}

/// Text or a number of seconds.
#[derive(Deserialize)]
#[serde(untagged)]
enum DurationValue {
    Text(String),
    Seconds(u64),
}

impl DurationValue {
    fn parse(self) -> Result<Duration, String> {
        match self {
            DurationValue::Text(text) => parse_duration(&text),
            DurationValue::Seconds(seconds) => Ok(Duration::from_secs(seconds)),
        }
    }
}

mod duration {
    use super::*;

    pub fn serialize<S: Serializer>(value: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&format_duration(value))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
        DurationValue::deserialize(deserializer)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

/// A comma-separated string or a list.
/// A retention: `forever` (None) or a duration.
mod retention {
    use super::*;

    const FOREVER: &str = "forever";

    pub fn serialize<S: Serializer>(
        value: &Option<Duration>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        match value {
            Some(duration) => serializer.serialize_str(&format_duration(duration)),
            None => serializer.serialize_str(FOREVER),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Option<Duration>, D::Error> {
        match DurationValue::deserialize(deserializer)? {
            DurationValue::Text(text) if text.trim() == FOREVER => Ok(None),
            value => value
                .parse()
                .map(Some)
                .map_err(|e| serde::de::Error::custom(format!("{e} (or `{FOREVER}`)"))),
        }
    }
}

#[derive(Deserialize)]
#[serde(untagged)]
enum ListValue<T> {
    Text(String),
    List(Vec<T>),
}

mod duration_list {
    use super::*;

    pub fn serialize<S: Serializer>(value: &[Duration], serializer: S) -> Result<S::Ok, S::Error> {
        let text: Vec<String> = value.iter().map(format_duration).collect();
        serializer.serialize_str(&text.join(","))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Vec<Duration>, D::Error> {
        let items = match ListValue::<DurationValue>::deserialize(deserializer)? {
            ListValue::Text(text) => text
                .split(',')
                .filter(|t| !t.trim().is_empty())
                .map(parse_duration)
                .collect::<Result<Vec<_>, _>>(),
            ListValue::List(items) => items.into_iter().map(DurationValue::parse).collect(),
        };
        items.map_err(serde::de::Error::custom)
    }
}

mod cidr_list {
    use super::*;

    pub fn serialize<S: Serializer>(value: &[IpNet], serializer: S) -> Result<S::Ok, S::Error> {
        let text: Vec<String> = value.iter().map(IpNet::to_string).collect();
        serializer.serialize_str(&text.join(","))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<IpNet>, D::Error> {
        let items: Vec<String> = match ListValue::<String>::deserialize(deserializer)? {
            ListValue::Text(text) => text.split(',').map(str::to_owned).collect(),
            ListValue::List(items) => items,
        };
        items
            .iter()
            .map(|t| t.trim())
            .filter(|t| !t.is_empty())
            .map(|t| {
                t.parse::<IpNet>()
                    .or_else(|_| t.parse::<std::net::IpAddr>().map(IpNet::from))
                    .map_err(|_| {
                        serde::de::Error::custom(format!("`{t}` is not a CIDR like 10.0.0.0/8"))
                    })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_like_people_write_them() {
        assert_eq!(parse_duration("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("30d"), Ok(Duration::from_secs(30 * 86_400)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("12"), Ok(Duration::from_secs(12)));
        assert!(parse_duration("5 fortnights").is_err());
        assert!(parse_duration("m").is_err());
    }

    #[test]
    fn secrets_are_never_printed() {
        let config = Config {
            admin_password: Some(Secret::new("hunter2hunter2")),
            ..Config::default()
        };
        assert!(!format!("{config:?}").contains("hunter2"));
    }

    #[test]
    #[allow(clippy::result_large_err)] // figment's Jail decides its closure's error type.
    fn an_agents_variables_in_the_same_shell_are_not_the_hubs() {
        figment::Jail::expect_with(|jail| {
            jail.set_env("SPOG_AGENT_STATE_DIR", "/tmp/agent-state");
            jail.set_env("SPOG_AGENT_TERMINAL__ENABLED", "true");
            assert!(Config::load(None).is_ok());
            jail.set_env("SPOG_AGENTS", "1");
            let warnings = Config::read(None).unwrap().warnings;
            assert!(
                warnings.iter().any(|w| w.contains("SPOG_AGENTS")),
                "{warnings:?}"
            );
            Ok(())
        });
    }

    #[test]
    #[allow(clippy::result_large_err)] // figment's Jail decides its closure's error type.
    fn recording_settings_read_from_toml_and_environment() {
        figment::Jail::expect_with(|jail| {
            jail.create_file(
                "spog.toml",
                "record_input = false\nrecording_idle_timeout = \"5m\"\n",
            )?;
            let config = Config::load(Some(Path::new("spog.toml"))).unwrap();
            assert!(!config.record_input);
            assert_eq!(config.recording_idle_timeout, Duration::from_secs(300));
            jail.set_env("SPOG_RECORD_INPUT", "true");
            jail.set_env("SPOG_RECORDING_IDLE_TIMEOUT", "90s");
            let config = Config::load(Some(Path::new("spog.toml"))).unwrap();
            assert!(config.record_input);
            assert_eq!(config.recording_idle_timeout, Duration::from_secs(90));
            jail.set_env("SPOG_RECORDING_IDLE_TIMEOUT", "0s");
            assert!(
                Config::load(None)
                    .unwrap_err()
                    .contains("recording_idle_timeout")
            );
            Ok(())
        });
    }

    #[test]
    #[allow(clippy::result_large_err)] // figment's Jail decides its closure's error type.
    fn recording_retention_is_forever_or_a_duration() {
        figment::Jail::expect_with(|jail| {
            let config = Config::load(None).unwrap();
            assert_eq!(config.recording_retention, None);
            assert_eq!(config.recording_retention_text(), "forever");
            jail.set_env("SPOG_RECORDING_RETENTION", "90d");
            let config = Config::load(None).unwrap();
            assert_eq!(
                config.recording_retention,
                Some(Duration::from_secs(90 * 86_400))
            );
            assert_eq!(config.recording_retention_text(), "90d");
            jail.set_env("SPOG_RECORDING_RETENTION", "sometimes");
            let error = Config::load(None).unwrap_err();
            assert!(error.contains("forever"), "{error}");
            jail.set_env("SPOG_RECORDING_RETENTION", "forever");
            jail.set_env("SPOG_NOTIFICATION_RETENTION", "0s");
            let error = Config::load(None).unwrap_err();
            assert!(error.contains("notification_retention"), "{error}");
            Ok(())
        });
    }

    #[test]
    fn durations_are_written_in_their_largest_whole_unit() {
        for (seconds, text) in [(30 * 86_400, "30d"), (7200, "2h"), (300, "5m"), (90, "90s")] {
            assert_eq!(format_duration(&Duration::from_secs(seconds)), text);
            assert_eq!(parse_duration(text), Ok(Duration::from_secs(seconds)));
        }
        assert_eq!(format_duration(&Duration::from_millis(250)), "250ms");
        assert_eq!(format_duration(&Duration::ZERO), "0s");
    }

    #[test]
    fn defaults_are_valid_and_serialise_back() {
        let config = Config::default();
        config.validate().unwrap();
        let figment = Figment::from(Serialized::defaults(&config));
        let again: Config = figment.extract().unwrap();
        assert_eq!(again.webhook_retry_schedule, config.webhook_retry_schedule);
    }
}

//! Text messages: JSON objects with a `type`. Unknown types decode to `Unknown` and unknown
//! fields are ignored, so a version can grow without a new subprotocol.

use std::collections::BTreeMap;
use std::fmt;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::MAX_MESSAGE_BYTES;

/// What the agent sends.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum AgentMessage {
    /// The first message of every connection, within `HELLO_TIMEOUT`.
    Hello {
        agent_version: String,
        facts: Facts,
        capabilities: Capabilities,
    },
    /// The host's facts changed since `hello`.
    Facts {
        facts: Facts,
    },
    /// Samples as `POST /api/v1/metrics` takes them (SPEC 12.4).
    Metrics {
        samples: Vec<MetricSample>,
        /// Samples the agent dropped (oldest first) since its previous `metrics` message,
        /// because its buffer was full while it was disconnected. An addition within v1.
        #[serde(default, skip_serializing_if = "is_zero")]
        dropped_samples: u64,
    },
    OpenOk {
        channel: u32,
        pid: u32,
    },
    OpenError {
        channel: u32,
        code: OpenErrorCode,
        message: String,
    },
    Exit {
        channel: u32,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        exit_code: Option<i32>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        signal: Option<i32>,
    },
    ShellStart {
        channel: u32,
        os_user: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        client_addr: Option<String>,
        shell: String,
        cols: u16,
        rows: u16,
        /// RFC 3339 UTC with microseconds.
        started_at: String,
    },
    ShellEnd {
        channel: u32,
        ended_at: String,
        /// The agent's spool was full and dropped some of the session's bytes (SPEC 13.3: the
        /// recording is marked truncated). An addition within v1.
        #[serde(default, skip_serializing_if = "is_false")]
        truncated: bool,
    },
    /// The receiver recorded and passed on `bytes` more of the channel's bytes.
    Window {
        channel: u32,
        bytes: u64,
    },
    /// A type this build does not know; ignored.
    #[serde(other)]
    Unknown,
}

/// What the hub sends.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum HubMessage {
    /// The answer to `hello`.
    Welcome {
        host_id: String,
        instance_id: String,
        max_message_bytes: u64,
        /// RFC 3339 UTC with microseconds.
        server_time: String,
    },
    /// Open a terminal on an odd channel.
    Open {
        channel: u32,
        session_id: String,
        cols: u16,
        rows: u16,
        term: String,
    },
    Resize {
        channel: u32,
        cols: u16,
        rows: u16,
    },
    /// Hang up the channel's PTY (SIGHUP to its process group, SIGKILL after 5 s).
    Close {
        channel: u32,
        reason: String,
    },
    ShellAck {
        channel: u32,
        session_id: String,
        acked_bytes: u64,
    },
    Window {
        channel: u32,
        bytes: u64,
    },
    /// A type this build does not know; ignored.
    #[serde(other)]
    Unknown,
}

/// What the agent can do on this host.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Capabilities {
    /// The agent opens web terminals (`terminal.enabled`, and a build that has PTYs).
    pub terminal: bool,
    /// The agent relays `spog-agent shell` sessions.
    pub shell: bool,
    pub max_sessions: u32,
    /// The local account console terminals run as (`terminal.user`), so that the hub records
    /// it from the session's start. An addition within v1.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub terminal_user: Option<String>,
    /// The program they run (`terminal.shell`, else that user's login shell). Within v1.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub terminal_shell: Option<String>,
}

/// Why an `open` failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OpenErrorCode {
    TerminalDisabled,
    NoSuchUser,
    SpawnFailed,
    TooManySessions,
    /// A code of a newer agent.
    #[serde(other)]
    Other,
}

/// What the host is (SPEC 12.2). Every field has a default so that a hub reads what an older or
/// newer agent of the same version sends.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Facts {
    /// `linux`.
    pub os: String,
    /// `PRETTY_NAME` of os-release.
    pub os_name: Option<String>,
    /// `uname -r`.
    pub kernel: String,
    /// `uname -m`.
    pub arch: String,
    /// `uname -n`.
    pub hostname: String,
    /// Non-loopback addresses, without prefix length.
    pub ips: Vec<String>,
    pub cpu_count: u32,
    pub memory_bytes: u64,
    /// RFC 3339 UTC.
    pub boot_time: Option<String>,
    pub agent_version: String,
}

/// One reading, as `POST /api/v1/metrics` takes it, with the optional `labels` of SPEC 12.4.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MetricSample {
    pub metric: String,
    pub value: f64,
    /// RFC 3339 UTC with microseconds; the hub's time of arrival when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
}

/// A text message that cannot be sent or was not understood.
#[derive(Debug, PartialEq, Eq)]
pub enum MessageError {
    /// Longer than `MAX_MESSAGE_BYTES` (close 1009).
    TooLarge { len: usize },
    /// Not JSON, or a known type with wrong fields (close 1008).
    Malformed(String),
}

impl fmt::Display for MessageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MessageError::TooLarge { len } => {
                write!(f, "message of {len} bytes exceeds {MAX_MESSAGE_BYTES}")
            }
            MessageError::Malformed(why) => write!(f, "malformed message: {why}"),
        }
    }
}

impl std::error::Error for MessageError {}

/// The JSON text of a message, refused when it exceeds the message limit.
pub fn encode_message<T: Serialize>(message: &T) -> Result<String, MessageError> {
    let text =
        serde_json::to_string(message).map_err(|e| MessageError::Malformed(e.to_string()))?;
    if text.len() > MAX_MESSAGE_BYTES {
        return Err(MessageError::TooLarge { len: text.len() });
    }
    Ok(text)
}

/// A message from its JSON text; unknown types are `Unknown`, unknown fields ignored.
pub fn decode_message<T: DeserializeOwned>(text: &str) -> Result<T, MessageError> {
    if text.len() > MAX_MESSAGE_BYTES {
        return Err(MessageError::TooLarge { len: text.len() });
    }
    serde_json::from_str(text).map_err(|e| MessageError::Malformed(e.to_string()))
}

/// The samples of one `metrics` message as JSON text, to keep until it is sent: an agent holds
/// batches this way while disconnected, at a third of the memory of the typed form.
pub fn encode_samples(samples: &[MetricSample]) -> Result<Box<RawValue>, MessageError> {
    serde_json::value::to_raw_value(samples).map_err(|e| MessageError::Malformed(e.to_string()))
}

/// A `metrics` message (`AgentMessage::Metrics`) from samples kept by `encode_samples`.
pub fn encode_metrics_message(
    samples: &RawValue,
    dropped_samples: u64,
) -> Result<String, MessageError> {
    #[derive(Serialize)]
    struct Metrics<'a> {
        r#type: &'static str,
        samples: &'a RawValue,
        #[serde(skip_serializing_if = "is_zero")]
        dropped_samples: u64,
    }
    encode_message(&Metrics {
        r#type: "metrics",
        samples,
        dropped_samples,
    })
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

fn is_false(b: &bool) -> bool {
    !*b
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn hello_is_a_typed_json_object_with_the_spec_field_names() {
        let hello = AgentMessage::Hello {
            agent_version: "0.1.0".into(),
            facts: Facts {
                os: "linux".into(),
                hostname: "web-1".into(),
                ..Facts::default()
            },
            capabilities: Capabilities {
                terminal: false,
                shell: false,
                max_sessions: 0,
                ..Capabilities::default()
            },
        };
        let value: serde_json::Value =
            serde_json::from_str(&encode_message(&hello).unwrap()).unwrap();
        assert_eq!(value["type"], "hello");
        assert_eq!(value["agent_version"], "0.1.0");
        assert_eq!(value["facts"]["hostname"], "web-1");
        assert_eq!(value["capabilities"]["terminal"], false);
        assert_eq!(value["capabilities"]["max_sessions"], 0);
        assert_eq!(
            decode_message::<AgentMessage>(&value.to_string()),
            Ok(hello)
        );
    }

    #[test]
    fn metrics_carry_samples_with_labels_and_omit_what_is_empty() {
        let metrics = AgentMessage::Metrics {
            samples: vec![
                MetricSample {
                    metric: "disk.used_percent".into(),
                    value: 41.5,
                    at: Some("2026-11-25T10:00:00.123456Z".into()),
                    labels: BTreeMap::from([("mount".into(), "/".into())]),
                },
                MetricSample {
                    metric: "load1".into(),
                    value: 0.5,
                    at: None,
                    labels: BTreeMap::new(),
                },
            ],
            dropped_samples: 0,
        };
        let value: serde_json::Value =
            serde_json::from_str(&encode_message(&metrics).unwrap()).unwrap();
        assert_eq!(
            value,
            json!({"type": "metrics", "samples": [
                {"metric": "disk.used_percent", "value": 41.5,
                 "at": "2026-11-25T10:00:00.123456Z", "labels": {"mount": "/"}},
                {"metric": "load1", "value": 0.5},
            ]})
        );
    }

    #[test]
    fn samples_kept_as_text_make_the_same_metrics_message() {
        let samples = vec![MetricSample {
            metric: "net.rx_bytes_per_second".into(),
            value: 1250.0,
            at: Some("2026-11-25T10:00:00.000000Z".into()),
            labels: BTreeMap::from([("interface".into(), "eth0".into())]),
        }];
        let kept = encode_samples(&samples).unwrap();
        for dropped_samples in [0, 42] {
            let text = encode_metrics_message(&kept, dropped_samples).unwrap();
            let typed = AgentMessage::Metrics {
                samples: samples.clone(),
                dropped_samples,
            };
            assert_eq!(text, encode_message(&typed).unwrap());
            assert_eq!(decode_message::<AgentMessage>(&text), Ok(typed));
        }
    }

    #[test]
    fn unknown_types_and_fields_are_ignored_within_a_version() {
        let unknown = decode_message::<HubMessage>(r#"{"type":"reboot","now":true}"#);
        assert_eq!(unknown, Ok(HubMessage::Unknown));
        let welcome = decode_message::<HubMessage>(
            r#"{"type":"welcome","host_id":"h","instance_id":"i","max_message_bytes":1048576,
                "server_time":"2026-11-25T10:00:00.000000Z","motd":"new field"}"#,
        );
        assert_eq!(
            welcome,
            Ok(HubMessage::Welcome {
                host_id: "h".into(),
                instance_id: "i".into(),
                max_message_bytes: 1_048_576,
                server_time: "2026-11-25T10:00:00.000000Z".into(),
            })
        );
    }

    #[test]
    fn a_known_type_with_wrong_fields_is_malformed() {
        let open = decode_message::<HubMessage>(r#"{"type":"open","channel":"one"}"#);
        assert!(matches!(open, Err(MessageError::Malformed(_))), "{open:?}");
        let not_json = decode_message::<HubMessage>("hello");
        assert!(matches!(not_json, Err(MessageError::Malformed(_))));
    }

    #[test]
    fn messages_over_one_mebibyte_are_refused_both_ways() {
        let huge = format!(
            r#"{{"type":"close","channel":1,"reason":"{}"}}"#,
            "x".repeat(1 << 20)
        );
        assert!(matches!(
            decode_message::<HubMessage>(&huge),
            Err(MessageError::TooLarge { .. })
        ));
        let close = HubMessage::Close {
            channel: 1,
            reason: "x".repeat(1 << 20),
        };
        assert!(matches!(
            encode_message(&close),
            Err(MessageError::TooLarge { .. })
        ));
    }

    #[test]
    fn open_error_codes_are_snake_case() {
        let error = AgentMessage::OpenError {
            channel: 3,
            code: OpenErrorCode::TerminalDisabled,
            message: "off".into(),
        };
        let text = encode_message(&error).unwrap();
        assert!(text.contains(r#""code":"terminal_disabled""#), "{text}");
    }
}

//! Platform events (SPEC 4): the types a publisher may send and subscribers may choose, and
//! the JSON body every webhook delivery of an event carries (SPEC 5.2).

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;
use utoipa::ToSchema;

use crate::model::{Account, Organization};
use crate::{FieldError, Id, Timestamp};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum EventType {
    AlertFired,
    AlertResolved,
    AlertAcknowledged,
    JobCompleted,
    JobFailed,
    HostOnline,
    HostOffline,
    HostEnrolled,
    TerminalSessionStarted,
    TerminalSessionEnded,
    DeploymentStarted,
    DeploymentCompleted,
    DeploymentFailed,
    DeploymentCancelled,
    ComplianceScanCompleted,
    DriftDetected,
}

impl EventType {
    pub const ALL: [EventType; 16] = [
        EventType::AlertFired,
        EventType::AlertResolved,
        EventType::AlertAcknowledged,
        EventType::JobCompleted,
        EventType::JobFailed,
        EventType::HostOnline,
        EventType::HostOffline,
        EventType::HostEnrolled,
        EventType::TerminalSessionStarted,
        EventType::TerminalSessionEnded,
        EventType::DeploymentStarted,
        EventType::DeploymentCompleted,
        EventType::DeploymentFailed,
        EventType::DeploymentCancelled,
        EventType::ComplianceScanCompleted,
        EventType::DriftDetected,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            EventType::AlertFired => "alert.fired",
            EventType::AlertResolved => "alert.resolved",
            EventType::AlertAcknowledged => "alert.acknowledged",
            EventType::JobCompleted => "job.completed",
            EventType::JobFailed => "job.failed",
            EventType::HostOnline => "host.online",
            EventType::HostOffline => "host.offline",
            EventType::HostEnrolled => "host.enrolled",
            EventType::TerminalSessionStarted => "terminal_session.started",
            EventType::TerminalSessionEnded => "terminal_session.ended",
            EventType::DeploymentStarted => "deployment.started",
            EventType::DeploymentCompleted => "deployment.completed",
            EventType::DeploymentFailed => "deployment.failed",
            EventType::DeploymentCancelled => "deployment.cancelled",
            EventType::ComplianceScanCompleted => "compliance.scan_completed",
            EventType::DriftDetected => "drift.detected",
        }
    }

    pub const fn description(self) -> &'static str {
        match self {
            EventType::AlertFired => "Alert rule triggered.",
            EventType::AlertResolved => "Alert condition cleared.",
            EventType::AlertAcknowledged => "Alert acknowledged by a user.",
            EventType::JobCompleted => "Job finished successfully.",
            EventType::JobFailed => "Job execution failed.",
            EventType::HostOnline => "Host came online (agent heartbeat resumed).",
            EventType::HostOffline => "Host went offline (heartbeat missed).",
            EventType::HostEnrolled => "A host's agent enrolled (new host or claimed).",
            EventType::TerminalSessionStarted => {
                "A terminal session started (console or SSH) and is being recorded."
            }
            EventType::TerminalSessionEnded => {
                "A terminal session ended; its recording is complete."
            }
            EventType::DeploymentStarted => "Deployment initiated.",
            EventType::DeploymentCompleted => "Deployment finished successfully.",
            EventType::DeploymentFailed => "Deployment failed.",
            EventType::DeploymentCancelled => "Deployment cancelled.",
            EventType::ComplianceScanCompleted => "Compliance scan finished.",
            EventType::DriftDetected => "Configuration drift detected against baseline.",
        }
    }

    pub fn from_name(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.as_str() == text)
    }

    pub fn parse(field: &str, text: &str) -> Result<Self, FieldError> {
        Self::from_name(text).ok_or_else(|| {
            FieldError::new(
                field,
                format!("`{text}` is not an event type; see GET /webhooks/event-types"),
            )
        })
    }

    /// A non-empty list without repetitions, in the order given.
    pub fn parse_list(field: &str, names: &[String]) -> Result<Vec<Self>, FieldError> {
        if names.is_empty() {
            return Err(FieldError::new(field, "must name at least one event type"));
        }
        let mut types = Vec::with_capacity(names.len());
        for (i, name) in names.iter().enumerate() {
            let event_type = Self::parse(&format!("{field}[{i}]"), name)?;
            if !types.contains(&event_type) {
                types.push(event_type);
            }
        }
        Ok(types)
    }
}

impl fmt::Display for EventType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for EventType {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for EventType {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        Self::from_name(&text)
            .ok_or_else(|| serde::de::Error::custom(format!("unknown event type `{text}`")))
    }
}

/// An event type and what it means, as `GET /webhooks/event-types` lists it.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct EventTypeInfo {
    pub event_type: EventType,
    pub description: String,
}

impl EventTypeInfo {
    pub fn all() -> Vec<Self> {
        EventType::ALL
            .into_iter()
            .map(|event_type| EventTypeInfo {
                event_type,
                description: event_type.description().to_owned(),
            })
            .collect()
    }
}

/// A published event.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct Event {
    pub id: Id<Event>,
    pub account_id: Id<Account>,
    pub organization_id: Id<Organization>,
    pub event_type: EventType,
    pub occurred_at: Timestamp,
    pub data: Value,
}

/// Largest `data` object accepted, serialised.
pub const MAX_DATA_BYTES: usize = 256 * 1024;

/// Checks an event's `data`: a JSON object of bounded size. Returns it serialised.
pub fn parse_data(field: &str, data: &Value) -> Result<String, FieldError> {
    if !data.is_object() {
        return Err(FieldError::new(field, "must be a JSON object"));
    }
    let text = data.to_string();
    if text.len() > MAX_DATA_BYTES {
        return Err(FieldError::new(
            field,
            format!("must be at most {} KiB serialised", MAX_DATA_BYTES / 1024),
        ));
    }
    Ok(text)
}

/// An idempotency key: 1 to 255 printable characters.
pub fn parse_idempotency_key(field: &str, text: &str) -> Result<String, FieldError> {
    if text.is_empty() || text.len() > 255 {
        return Err(FieldError::new(field, "must be 1 to 255 characters"));
    }
    if text.chars().any(char::is_control) {
        return Err(FieldError::new(
            field,
            "must not contain control characters",
        ));
    }
    Ok(text.to_owned())
}

/// The body of every webhook delivery of an event (SPEC 5.2), built once when the event is
/// published so that every attempt to every subscriber sends exactly the same bytes.
/// `data` is the event's data already serialised.
pub fn webhook_body(
    id: &str,
    event_type: &str,
    timestamp: Timestamp,
    account: Id<Account>,
    organization: Id<Organization>,
    data: &str,
) -> String {
    let text = |s: &str| Value::from(s).to_string();
    format!(
        "{{\"id\":{},\"event_type\":{},\"timestamp\":{},\"account_id\":{},\"organization_id\":{},\"data\":{}}}",
        text(id),
        text(event_type),
        text(&timestamp.to_string()),
        text(&account.to_string()),
        text(&organization.to_string()),
        data
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn every_event_type_round_trips_through_its_name() {
        assert_eq!(EventType::ALL.len(), 16);
        for event_type in EventType::ALL {
            assert_eq!(EventType::from_name(event_type.as_str()), Some(event_type));
            assert!(event_type.description().ends_with('.'));
        }
        assert_eq!(
            EventType::parse("event_type", "job.exploded")
                .unwrap_err()
                .field,
            "event_type"
        );
    }

    #[test]
    fn event_type_lists_name_the_bad_entry_and_drop_repeats() {
        let names = |list: &[&str]| list.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            EventType::parse_list("event_types", &names(&["job.failed", "job.failed"])).unwrap(),
            [EventType::JobFailed]
        );
        assert_eq!(
            EventType::parse_list("event_types", &names(&["job.failed", "nope"]))
                .unwrap_err()
                .field,
            "event_types[1]"
        );
        assert!(EventType::parse_list("event_types", &[]).is_err());
    }

    #[test]
    fn the_webhook_body_has_the_fields_of_the_spec_in_order() {
        let account = Id::new();
        let organization = Id::new();
        let at = Timestamp::parse("2026-11-25T10:00:00.123456Z").unwrap();
        let body = webhook_body(
            "e-1",
            "job.completed",
            at,
            account,
            organization,
            r#"{"job":"j \"1\""}"#,
        );
        let value: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(
            value,
            json!({"id": "e-1", "event_type": "job.completed", "timestamp": "2026-11-25T10:00:00.123456Z",
                   "account_id": account, "organization_id": organization, "data": {"job": "j \"1\""}})
        );
        let keys: Vec<&String> = value.as_object().unwrap().keys().collect();
        assert_eq!(
            keys,
            [
                "id",
                "event_type",
                "timestamp",
                "account_id",
                "organization_id",
                "data"
            ]
        );
    }

    #[test]
    fn data_must_be_a_bounded_object() {
        assert!(parse_data("data", &json!({"a": 1})).is_ok());
        assert!(parse_data("data", &json!([1])).is_err());
        let big = json!({"x": "y".repeat(MAX_DATA_BYTES)});
        assert!(parse_data("data", &big).is_err());
    }
}

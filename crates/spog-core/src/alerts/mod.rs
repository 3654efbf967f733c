//! Alert rules and alerts (SPEC 7.3): what a rule watches, when it fires, and what its
//! `alert.*` events say. Pure rules; the store keeps the state.

mod draft;
pub mod silences;
pub use draft::RuleBody;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use utoipa::ToSchema;

use crate::events::EventType;
use crate::metrics::Labels;
use crate::model::{Host, Organization, User};
use crate::notification::Severity;
use crate::{Id, Timestamp};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub enum Operator {
    #[serde(rename = ">")]
    Above,
    #[serde(rename = ">=")]
    AtLeast,
    #[serde(rename = "<")]
    Below,
    #[serde(rename = "<=")]
    AtMost,
}

impl Operator {
    pub const fn as_str(self) -> &'static str {
        match self {
            Operator::Above => ">",
            Operator::AtLeast => ">=",
            Operator::Below => "<",
            Operator::AtMost => "<=",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        [
            Operator::Above,
            Operator::AtLeast,
            Operator::Below,
            Operator::AtMost,
        ]
        .into_iter()
        .find(|o| o.as_str() == text)
    }

    /// Whether `value operator threshold` holds.
    pub fn holds(self, value: f64, threshold: f64) -> bool {
        match self {
            Operator::Above => value > threshold,
            Operator::AtLeast => value >= threshold,
            Operator::Below => value < threshold,
            Operator::AtMost => value <= threshold,
        }
    }
}

/// What a rule watches.
#[derive(Clone, Debug, PartialEq, Serialize, ToSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Condition {
    /// A published event of one of `event_types` whose data has every `match` field.
    Event {
        event_types: Vec<EventType>,
        #[serde(rename = "match")]
        #[schema(value_type = Object)]
        matches: Map<String, Value>,
    },
    /// A metric series of a host crossing a threshold for `for_seconds`, or falling silent
    /// for `no_data_seconds`. Each series (host, labels) is evaluated on its own.
    Metric {
        metric: String,
        operator: Operator,
        threshold: f64,
        for_seconds: i64,
        /// Empty: every host of the organization.
        host_ids: Vec<Id<Host>>,
        /// A series must carry every one of these labels to be watched; empty: every series.
        #[schema(value_type = Object)]
        labels: Labels,
        /// Silence after which a watched series fires a `no_data` alert; 0: never.
        no_data_seconds: i64,
    },
}

impl Condition {
    /// Whether an event fires an event rule: its type is listed and every `match` field
    /// (a dotted path into the data) equals the given value.
    pub fn matches_event(&self, event_type: EventType, data: &Value) -> bool {
        let Condition::Event {
            event_types,
            matches,
        } = self
        else {
            return false;
        };
        event_types.contains(&event_type)
            && matches
                .iter()
                .all(|(path, expected)| field(data, path) == Some(expected))
    }

    pub fn watches_host(&self, host: Id<Host>) -> bool {
        match self {
            Condition::Metric { host_ids, .. } => host_ids.is_empty() || host_ids.contains(&host),
            Condition::Event { .. } => false,
        }
    }

    /// Whether a metric rule watches the series `metric` with `labels` of `host`: the host is
    /// watched and the series carries every label of the rule.
    pub fn watches_series(&self, host: Id<Host>, name: &str, series: &Labels) -> bool {
        match self {
            Condition::Metric { metric, labels, .. } => {
                metric == name && self.watches_host(host) && carries(series, labels)
            }
            Condition::Event { .. } => false,
        }
    }
}

/// Whether `series` has every label of `wanted`, with the same value.
pub fn carries(series: &Labels, wanted: &Labels) -> bool {
    wanted.iter().all(|(k, v)| series.get(k) == Some(v))
}

/// The value at a dotted path (`job.name`) of a JSON object.
fn field<'a>(data: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.').try_fold(data, |value, key| value.get(key))
}

#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct AlertRule {
    pub id: Id<AlertRule>,
    pub organization_id: Id<Organization>,
    pub name: String,
    #[serde(flatten)]
    pub condition: Condition,
    pub severity: Severity,
    pub channel_ids: Vec<String>,
    pub enabled: bool,
    /// Since when the rule is enabled (a listed host silent since then has no data).
    #[serde(skip)]
    pub enabled_since: Option<Timestamp>,
    pub cooldown_seconds: i64,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AlertState {
    Firing,
    Acknowledged,
    Resolved,
}

impl AlertState {
    pub const fn as_str(self) -> &'static str {
        match self {
            AlertState::Firing => "firing",
            AlertState::Acknowledged => "acknowledged",
            AlertState::Resolved => "resolved",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        [
            AlertState::Firing,
            AlertState::Acknowledged,
            AlertState::Resolved,
        ]
        .into_iter()
        .find(|s| s.as_str() == text)
    }

    /// The event announcing a move into this state.
    pub const fn event_type(self) -> EventType {
        match self {
            AlertState::Firing => EventType::AlertFired,
            AlertState::Acknowledged => EventType::AlertAcknowledged,
            AlertState::Resolved => EventType::AlertResolved,
        }
    }
}

/// Why an alert fired (SPEC 12.5).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AlertReason {
    /// A matching event.
    Event,
    /// A metric series crossed the rule's threshold for `for_seconds`.
    Threshold,
    /// A watched series (or a listed host) sent no sample for `no_data_seconds`.
    NoData,
}

impl AlertReason {
    pub const fn as_str(self) -> &'static str {
        match self {
            AlertReason::Event => "event",
            AlertReason::Threshold => "threshold",
            AlertReason::NoData => "no_data",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        [
            AlertReason::Event,
            AlertReason::Threshold,
            AlertReason::NoData,
        ]
        .into_iter()
        .find(|r| r.as_str() == text)
    }
}

/// Why an alert resolved (SPEC 12.5).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ResolvedReason {
    /// The threshold condition stopped holding.
    Cleared,
    /// The series fell silent (a `no_data` alert took over).
    NoData,
    /// A sample arrived for a silent series.
    DataResumed,
    /// Someone resolved it.
    Manual,
}

impl ResolvedReason {
    pub const fn as_str(self) -> &'static str {
        match self {
            ResolvedReason::Cleared => "cleared",
            ResolvedReason::NoData => "no_data",
            ResolvedReason::DataResumed => "data_resumed",
            ResolvedReason::Manual => "manual",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        [
            ResolvedReason::Cleared,
            ResolvedReason::NoData,
            ResolvedReason::DataResumed,
            ResolvedReason::Manual,
        ]
        .into_iter()
        .find(|r| r.as_str() == text)
    }
}

#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct Alert {
    pub id: Id<Alert>,
    pub organization_id: Id<Organization>,
    /// Null once the rule is deleted; `rule_name` keeps its name.
    pub rule_id: Option<Id<AlertRule>>,
    pub rule_name: String,
    pub kind: String,
    pub reason: AlertReason,
    pub severity: Severity,
    pub state: AlertState,
    pub summary: String,
    pub host_id: Option<Id<Host>>,
    pub hostname: Option<String>,
    pub metric: Option<String>,
    /// The labels of the metric series the alert is about (`{}` for event alerts).
    #[schema(value_type = Object)]
    pub labels: Labels,
    pub value: Option<f64>,
    pub threshold: Option<f64>,
    pub operator: Option<Operator>,
    pub source_event_id: Option<String>,
    pub fired_at: Timestamp,
    pub acknowledged_at: Option<Timestamp>,
    pub acknowledged_by: Option<Id<User>>,
    pub resolved_at: Option<Timestamp>,
    pub resolved_reason: Option<ResolvedReason>,
    pub updated_at: Timestamp,
    /// What kept the alert from notifying when it fired (SPEC 7.4).
    pub suppressed_by: Vec<Suppression>,
    /// When it notified channels and people; null while suppressed (or in cooldown).
    pub notified_at: Option<Timestamp>,
}

/// A silence (or, later, a maintenance window) that suppressed an alert.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Suppression {
    #[serde(rename = "type")]
    pub kind: String,
    pub id: String,
}

impl Suppression {
    pub fn silence(id: Id<silences::Silence>) -> Self {
        Self {
            kind: "silence".to_owned(),
            id: id.to_string(),
        }
    }
}

impl Alert {
    /// The data of the `alert.*` event announcing this alert's current state.
    pub fn event_data(&self, at: Timestamp) -> Value {
        json!({
            "alert_id": self.id,
            "rule_id": self.rule_id,
            "rule_name": self.rule_name,
            "severity": self.severity,
            "state": self.state,
            "summary": self.summary,
            "kind": self.kind,
            "reason": self.reason,
            "resolved_reason": self.resolved_reason,
            "metric": self.metric,
            "labels": self.labels,
            "value": self.value,
            "threshold": self.threshold,
            "operator": self.operator,
            "host_id": self.host_id,
            "hostname": self.hostname,
            "source_event_id": self.source_event_id,
            "suppressed": !self.suppressed_by.is_empty() && self.notified_at.is_none(),
            "at": at,
        })
    }
}

/// One line saying why a metric alert fired: `cpu 97.5 > 90 on web-1 for 60 s`, or
/// `disk.used{mount="/data"} 97.5 > 90 on web-1 for 60 s` for a labelled series.
pub fn metric_summary(
    metric: &str,
    labels: &Labels,
    value: f64,
    operator: Operator,
    threshold: f64,
    hostname: &str,
    for_seconds: i64,
) -> String {
    format!(
        "{}{} {value} {} {threshold} on {hostname} for {for_seconds} s",
        metric,
        label_text(labels),
        operator.as_str()
    )
}

/// One line saying why a no-data alert fired: `cpu.usage{mount="/"} sent no data from web-1
/// for 600 s`.
pub fn no_data_summary(metric: &str, labels: &Labels, hostname: &str, seconds: i64) -> String {
    format!(
        "{metric}{} sent no data from {hostname} for {seconds} s",
        label_text(labels)
    )
}

/// `{k="v",…}`, or nothing without labels.
pub fn label_text(labels: &Labels) -> String {
    if labels.is_empty() {
        return String::new();
    }
    let pairs: Vec<String> = labels.iter().map(|(k, v)| format!("{k}={v:?}")).collect();
    format!("{{{}}}", pairs.join(","))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event_rule(matches: Value) -> Condition {
        Condition::Event {
            event_types: vec![EventType::JobFailed],
            matches: matches.as_object().unwrap().clone(),
        }
    }

    #[test]
    fn event_rules_match_type_and_every_data_field() {
        let rule = event_rule(json!({"job.name": "backup", "attempt": 3}));
        let data = json!({"job": {"name": "backup"}, "attempt": 3, "other": true});
        assert!(rule.matches_event(EventType::JobFailed, &data));
        assert!(!rule.matches_event(EventType::JobCompleted, &data));
        assert!(!rule.matches_event(
            EventType::JobFailed,
            &json!({"job": {"name": "backup"}, "attempt": 2})
        ));
        assert!(!rule.matches_event(EventType::JobFailed, &json!({"attempt": 3})));
        assert!(event_rule(json!({})).matches_event(EventType::JobFailed, &json!({})));
    }

    #[test]
    fn a_series_is_watched_when_it_carries_every_label_of_the_rule() {
        let host = Id::new();
        let rule = |labels: &[(&str, &str)]| Condition::Metric {
            metric: "disk.used".into(),
            operator: Operator::Above,
            threshold: 90.0,
            for_seconds: 0,
            host_ids: Vec::new(),
            labels: labels
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            no_data_seconds: 0,
        };
        let root: Labels = [("mount".to_owned(), "/".to_owned())].into();
        assert!(rule(&[]).watches_series(host, "disk.used", &root));
        assert!(rule(&[("mount", "/")]).watches_series(host, "disk.used", &root));
        assert!(!rule(&[("mount", "/data")]).watches_series(host, "disk.used", &root));
        assert!(!rule(&[("mount", "/"), ("fs", "ext4")]).watches_series(host, "disk.used", &root));
        assert!(!rule(&[]).watches_series(host, "cpu.usage", &root));
        assert_eq!(label_text(&root), "{mount=\"/\"}");
        assert_eq!(label_text(&Labels::new()), "");
    }

    #[test]
    fn reasons_read_back_as_written() {
        for reason in [
            AlertReason::Event,
            AlertReason::Threshold,
            AlertReason::NoData,
        ] {
            assert_eq!(AlertReason::parse(reason.as_str()), Some(reason));
            assert_eq!(
                serde_json::to_value(reason).unwrap(),
                json!(reason.as_str())
            );
        }
        for reason in [
            ResolvedReason::Cleared,
            ResolvedReason::NoData,
            ResolvedReason::DataResumed,
            ResolvedReason::Manual,
        ] {
            assert_eq!(ResolvedReason::parse(reason.as_str()), Some(reason));
            assert_eq!(
                serde_json::to_value(reason).unwrap(),
                json!(reason.as_str())
            );
        }
        assert_eq!(AlertReason::parse("weather"), None);
    }

    #[test]
    fn operators_compare_as_written() {
        assert!(Operator::Above.holds(91.0, 90.0));
        assert!(!Operator::Above.holds(90.0, 90.0));
        assert!(Operator::AtLeast.holds(90.0, 90.0));
        assert!(Operator::Below.holds(1.0, 2.0));
        assert!(Operator::AtMost.holds(2.0, 2.0));
        assert_eq!(Operator::parse(">="), Some(Operator::AtLeast));
        assert_eq!(serde_json::to_value(Operator::Below).unwrap(), json!("<"));
    }
}

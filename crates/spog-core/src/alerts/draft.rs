//! An alert rule's create or patch body (SPEC 7.3, 12.5) parsed and merged into the rule:
//! which fields are required, which belong to which kind, and the bounds of each.

use std::time::Duration;

use serde::Deserialize;
use serde_json::{Map, Value};
use utoipa::ToSchema;

use super::{AlertRule, Condition, Operator};
use crate::events::EventType;
use crate::metrics::{self, Labels, metric_name};
use crate::model::{Host, Organization};
use crate::notification::Severity;
use crate::{BoundedMap, FieldError, FieldErrors, Id, Timestamp, UniqueList, validate};

/// The fields of an alert rule; which apply depends on `kind`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RuleBody {
    /// `event` or `metric`; required on create, fixed afterwards.
    pub kind: Option<String>,
    pub organization_id: Option<Id<Organization>>,
    pub name: Option<String>,
    pub severity: Option<Severity>,
    /// Notification channels of the rule's organization; repeats are dropped.
    pub channel_ids: Option<UniqueList<String, 50>>,
    pub enabled: Option<bool>,
    /// Default 300.
    pub cooldown_seconds: Option<i64>,
    /// Event rules: the event types that fire it (not `alert.*`).
    pub event_types: Option<UniqueList<String, 50>>,
    /// Event rules: data fields (dotted paths) that must equal these values (at most 50).
    #[serde(rename = "match")]
    pub matches: Option<BoundedMap<Value, 50>>,
    /// Metric rules.
    pub metric: Option<String>,
    /// `>`, `>=`, `<` or `<=`.
    pub operator: Option<String>,
    pub threshold: Option<f64>,
    pub for_seconds: Option<i64>,
    /// Empty or absent: every host of the organization; repeats are dropped.
    pub host_ids: Option<UniqueList<Id<Host>, 1000>>,
    /// Metric rules: labels a series must carry to be watched (at most 8); `{}`: every
    /// series of the metric.
    #[schema(value_type = Option<Object>)]
    pub labels: Option<Labels>,
    /// Metric rules: silence after which a watched series (or a listed host that never
    /// reported) fires a `no_data` alert: 0 (off) or 5 to 604,800; default the server's
    /// `metric_no_data_after`.
    pub no_data_seconds: Option<i64>,
}

impl RuleBody {
    /// A new rule `id` from a create body: `kind`, `organization_id`, `name` and `severity`
    /// are required; a metric rule's silence defaults to `no_data_after`.
    pub fn create(
        self,
        id: Id<AlertRule>,
        now: Timestamp,
        no_data_after: Duration,
    ) -> Result<AlertRule, FieldErrors> {
        let mut errors = FieldErrors::new();
        let condition = match self.kind.as_deref() {
            Some("event") => Some(Condition::Event {
                event_types: Vec::new(),
                matches: Map::new(),
            }),
            Some("metric") => Some(Condition::Metric {
                metric: String::new(),
                operator: Operator::Above,
                threshold: 0.0,
                for_seconds: 0,
                host_ids: Vec::new(),
                labels: Labels::new(),
                no_data_seconds: i64::try_from(no_data_after.as_secs()).unwrap_or(WEEK),
            }),
            Some(_) => {
                errors.add(FieldError::new("kind", "must be event or metric"));
                None
            }
            None => {
                errors.add(FieldError::new("kind", "is required"));
                None
            }
        };
        let organization = self.organization_id;
        if organization.is_none() {
            errors.add(FieldError::new("organization_id", "is required"));
        }
        if self.name.is_none() {
            errors.add(FieldError::new("name", "is required"));
        }
        if self.severity.is_none() {
            errors.add(FieldError::new("severity", "is required"));
        }
        let mut rule = AlertRule {
            id,
            organization_id: organization.unwrap_or_default(),
            name: String::new(),
            condition: condition.unwrap_or(Condition::Event {
                event_types: Vec::new(),
                matches: Map::new(),
            }),
            severity: Severity::Info,
            channel_ids: Vec::new(),
            enabled: true,
            enabled_since: None,
            cooldown_seconds: 300,
            created_at: now,
            updated_at: now,
        };
        apply(self, &mut rule, true, now, &mut errors);
        errors.into_result().map(|()| rule)
    }

    /// `before` changed by a patch body at `now`; its kind and organization stay.
    pub fn update(self, before: &AlertRule, now: Timestamp) -> Result<AlertRule, FieldErrors> {
        let mut errors = FieldErrors::new();
        if self.kind.is_some() {
            errors.add(FieldError::new(
                "kind",
                "cannot change; create another rule",
            ));
        }
        if self
            .organization_id
            .is_some_and(|o| o != before.organization_id)
        {
            errors.add(FieldError::new(
                "organization_id",
                "cannot change; create another rule",
            ));
        }
        let mut rule = before.clone();
        apply(self, &mut rule, false, now, &mut errors);
        rule.updated_at = now;
        errors.into_result().map(|()| rule)
    }
}

fn event_types(names: &[String]) -> Result<Vec<EventType>, FieldError> {
    let types = EventType::parse_list("event_types", names)?;
    if types.is_empty() {
        return Err(FieldError::new(
            "event_types",
            "must name at least one event type",
        ));
    }
    if types.iter().any(|t| t.as_str().starts_with("alert.")) {
        return Err(FieldError::new(
            "event_types",
            "alert events cannot fire alerts (that could loop)",
        ));
    }
    Ok(types)
}

fn ranged(field: &str, value: i64, max: i64) -> Result<i64, FieldError> {
    if (0..=max).contains(&value) {
        Ok(value)
    } else {
        Err(FieldError::new(
            field,
            format!("must be between 0 and {max}"),
        ))
    }
}

const WEEK: i64 = 7 * 86_400;
/// The shortest silence a rule may watch for (the check runs every few seconds).
const MIN_NO_DATA_SECONDS: i64 = 5;

/// 0 (off) or 5 s to a week.
fn no_data_seconds(value: i64) -> Result<i64, FieldError> {
    if value == 0 || (MIN_NO_DATA_SECONDS..=WEEK).contains(&value) {
        Ok(value)
    } else {
        Err(FieldError::new(
            "no_data_seconds",
            format!("must be 0 (off) or between {MIN_NO_DATA_SECONDS} and {WEEK}"),
        ))
    }
}

/// Applies `body` to `rule` (new or existing) at `now`, collecting every field error.
fn apply(
    body: RuleBody,
    rule: &mut AlertRule,
    creating: bool,
    now: Timestamp,
    errors: &mut FieldErrors,
) {
    if let Some(name) = &body.name {
        rule.name = errors
            .check(validate::name("name", name, 200))
            .unwrap_or_default();
    }
    if let Some(severity) = body.severity {
        rule.severity = severity;
    }
    if let Some(channels) = body.channel_ids {
        rule.channel_ids = channels.into_inner();
    }
    if let Some(enabled) = body.enabled {
        rule.enabled = enabled;
    }
    // Silence counts from when the rule was (re-)enabled.
    rule.enabled_since = match (rule.enabled, rule.enabled_since) {
        (false, _) => None,
        (true, None) => Some(now),
        (true, since) => since,
    };
    if let Some(cooldown) = body.cooldown_seconds {
        rule.cooldown_seconds = errors
            .check(ranged("cooldown_seconds", cooldown, WEEK))
            .unwrap_or(0);
    }
    let event_fields = body.event_types.is_some() || body.matches.is_some();
    let metric_fields = body.metric.is_some()
        || body.operator.is_some()
        || body.threshold.is_some()
        || body.for_seconds.is_some()
        || body.host_ids.is_some()
        || body.labels.is_some()
        || body.no_data_seconds.is_some();
    match &mut rule.condition {
        Condition::Event {
            event_types: types,
            matches,
        } => {
            if metric_fields {
                errors.add(FieldError::new(
                    "metric",
                    "is a field of metric rules, not event rules",
                ));
            }
            if let Some(names) = &body.event_types {
                *types = errors.check(event_types(names)).unwrap_or_default();
            } else if creating {
                errors.add(FieldError::new(
                    "event_types",
                    "is required for event rules",
                ));
            }
            if let Some(new) = body.matches {
                *matches = new.into_inner().into_iter().collect();
            }
        }
        Condition::Metric {
            metric,
            operator,
            threshold,
            for_seconds,
            host_ids,
            labels,
            no_data_seconds: silence,
        } => {
            if event_fields {
                errors.add(FieldError::new(
                    "event_types",
                    "is a field of event rules, not metric rules",
                ));
            }
            match (&body.metric, creating) {
                (Some(name), _) => {
                    *metric = errors
                        .check(metric_name("metric", name))
                        .unwrap_or_default()
                }
                (None, true) => {
                    errors.add(FieldError::new("metric", "is required for metric rules"))
                }
                _ => {}
            }
            match (&body.operator, creating) {
                (Some(text), _) => match Operator::parse(text) {
                    Some(parsed) => *operator = parsed,
                    None => errors.add(FieldError::new("operator", "must be >, >=, < or <=")),
                },
                (None, true) => {
                    errors.add(FieldError::new("operator", "is required for metric rules"))
                }
                _ => {}
            }
            match (body.threshold, creating) {
                (Some(value), _) if value.is_finite() => *threshold = value,
                (Some(_), _) => errors.add(FieldError::new("threshold", "must be a finite number")),
                (None, true) => {
                    errors.add(FieldError::new("threshold", "is required for metric rules"))
                }
                _ => {}
            }
            if let Some(seconds) = body.for_seconds {
                *for_seconds = errors
                    .check(ranged("for_seconds", seconds, WEEK))
                    .unwrap_or(0);
            }
            if let Some(hosts) = body.host_ids {
                *host_ids = hosts.into_inner();
            }
            if let Some(wanted) = body.labels {
                *labels = errors
                    .check(metrics::labels("labels", wanted))
                    .unwrap_or_default();
            }
            if let Some(seconds) = body.no_data_seconds {
                *silence = errors.check(no_data_seconds(seconds)).unwrap_or(0);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn body(value: Value) -> RuleBody {
        serde_json::from_value(value).unwrap()
    }

    fn at(seconds: i64) -> Timestamp {
        Timestamp::from_micros(seconds * 1_000_000)
    }

    fn metric_rule() -> AlertRule {
        let created = body(
            json!({"kind": "metric", "organization_id": Id::<Organization>::new(),
            "name": "CPU", "severity": "high", "metric": "cpu", "operator": ">", "threshold": 90.0}),
        );
        created
            .create(Id::new(), at(1), Duration::from_secs(600))
            .unwrap()
    }

    #[test]
    fn a_create_body_names_every_missing_field() {
        let errors = body(json!({}))
            .create(Id::new(), at(1), Duration::from_secs(600))
            .unwrap_err();
        for field in ["kind", "organization_id", "name", "severity", "event_types"] {
            assert!(errors.get(field).is_some(), "{field}: {errors:?}");
        }
        let errors = body(json!({"kind": "metric"}))
            .create(Id::new(), at(1), Duration::from_secs(600))
            .unwrap_err();
        for field in ["metric", "operator", "threshold"] {
            assert_eq!(errors.get(field), Some("is required for metric rules"));
        }
    }

    #[test]
    fn a_new_metric_rule_takes_the_servers_silence_and_defaults() {
        let rule = metric_rule();
        assert!(rule.enabled);
        assert_eq!(rule.enabled_since, Some(at(1)));
        assert_eq!(rule.cooldown_seconds, 300);
        assert!(matches!(
            rule.condition,
            Condition::Metric {
                no_data_seconds: 600,
                operator: Operator::Above,
                ..
            }
        ));
    }

    #[test]
    fn a_patch_changes_only_what_it_names_and_keeps_kind_and_organization() {
        let before = metric_rule();
        let after = body(json!({"threshold": 50.0, "enabled": false}))
            .update(&before, at(2))
            .unwrap();
        assert_eq!(after.name, before.name);
        assert_eq!(after.enabled_since, None);
        assert_eq!(after.updated_at, at(2));
        assert!(matches!(
            after.condition,
            Condition::Metric {
                threshold: 50.0,
                ..
            }
        ));
        let errors = body(
            json!({"kind": "event", "organization_id": Id::<Organization>::new(),
            "event_types": ["host.offline"], "no_data_seconds": 3}),
        )
        .update(&before, at(2))
        .unwrap_err();
        assert_eq!(
            errors.get("kind"),
            Some("cannot change; create another rule")
        );
        assert!(errors.get("organization_id").is_some());
        assert_eq!(
            errors.get("event_types"),
            Some("is a field of event rules, not metric rules")
        );
        assert!(errors.get("no_data_seconds").is_some());
    }
}

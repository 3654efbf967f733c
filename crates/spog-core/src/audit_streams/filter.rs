//! Which entries a stream sends (SPEC 3.5 `filter`): optional lists, OR within a list, AND
//! across lists. Checked once when a stream is written; matched in memory while sending, so
//! the sender reads the chain in plain `seq` ranges whatever the filter.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::audit::{ActorType, EntryFields, Outcome};
use crate::{FieldError, FieldErrors, Id};

/// Values per list.
pub const MAX_VALUES: usize = 100;
const MAX_NAME: usize = 100;

/// A stream's filter as given and as read back; every list absent or empty matches all.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StreamFilter {
    /// Exact actions (`webhook.create`) or prefixes (`webhook.*`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub actions: Vec<String>,
    /// Actions left out, the same way.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exclude_actions: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub resource_types: Vec<String>,
    /// `user`, `system`, `agent`, `workflow`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub actor_types: Vec<String>,
    /// `success`, `failure`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub outcomes: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub organization_ids: Vec<String>,
}

fn is_name(text: &str) -> bool {
    !text.is_empty()
        && text.len() <= MAX_NAME
        && text
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '.')
}

/// `webhook.create` or `webhook.*`.
fn is_action_pattern(text: &str) -> bool {
    is_name(text.strip_suffix(".*").unwrap_or(text))
}

fn action_matches(pattern: &str, action: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some(prefix) => action.starts_with(prefix),
        None => pattern == action,
    }
}

impl StreamFilter {
    /// The filter, or the fields at fault (`filter.outcomes[0]`).
    pub fn check(self) -> Result<Self, FieldErrors> {
        let mut errors = FieldErrors::new();
        let mut list = |name: &str, values: &[String], valid: &dyn Fn(&str) -> bool, says: &str| {
            if values.len() > MAX_VALUES {
                errors.add(FieldError::new(
                    format!("filter.{name}"),
                    format!("must have at most {MAX_VALUES} values"),
                ));
            }
            for (i, value) in values.iter().enumerate() {
                if !valid(value) {
                    errors.add(FieldError::new(format!("filter.{name}[{i}]"), says));
                }
            }
        };
        let action_says = "must be an action like webhook.create, or a prefix like webhook.*";
        list("actions", &self.actions, &is_action_pattern, action_says);
        list(
            "exclude_actions",
            &self.exclude_actions,
            &is_action_pattern,
            action_says,
        );
        list(
            "resource_types",
            &self.resource_types,
            &is_name,
            "must be a resource type like webhook",
        );
        list(
            "actor_types",
            &self.actor_types,
            &|t| ActorType::parse(t).is_some(),
            "must be user, system, agent or workflow",
        );
        list(
            "outcomes",
            &self.outcomes,
            &|o| Outcome::parse(o).is_some(),
            "must be success or failure",
        );
        list(
            "organization_ids",
            &self.organization_ids,
            &|o| o.parse::<Id<crate::model::Organization>>().is_ok(),
            "must be an organization id",
        );
        errors.into_result().map(|()| self)
    }

    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }

    pub fn matches(&self, entry: &EntryFields<'_>) -> bool {
        let any =
            |values: &[String], value: &str| values.is_empty() || values.iter().any(|v| v == value);
        (self.actions.is_empty() || self.actions.iter().any(|p| action_matches(p, entry.action)))
            && !self
                .exclude_actions
                .iter()
                .any(|p| action_matches(p, entry.action))
            && any(&self.resource_types, entry.resource_type)
            && any(&self.actor_types, entry.actor_type)
            && any(&self.outcomes, entry.outcome)
            && (self.organization_ids.is_empty()
                || entry
                    .organization_id
                    .is_some_and(|o| self.organization_ids.iter().any(|v| v == o)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_values_are_named_by_their_place() {
        let filter = StreamFilter {
            outcomes: vec!["success".into(), "maybe".into()],
            actions: vec!["webhook.*".into(), "Bad Action".into()],
            ..Default::default()
        };
        let errors = filter.check().unwrap_err();
        assert!(errors.get("filter.outcomes[1]").is_some());
        assert!(errors.get("filter.actions[1]").is_some());
        assert!(errors.get("filter.actions[0]").is_none());
    }

    #[test]
    fn prefixes_match_their_namespace_only() {
        assert!(action_matches("webhook.*", "webhook.create"));
        assert!(!action_matches("webhook.*", "webhooks.create"));
        assert!(action_matches("user.create", "user.create"));
    }
}

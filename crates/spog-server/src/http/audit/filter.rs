//! The filters of SPEC 3.3, shared by search and export, parsed into the store's filter with
//! a 422 naming any parameter at fault.

use serde::Deserialize;
use spog_core::audit::{ActorType, Outcome};
use spog_core::{FieldError, FieldErrors, Timestamp};
use spog_store::audit::{ActionFilter, AuditFilter};
use utoipa::IntoParams;

/// Names of [`FilterParams`]' fields, for rejecting unknown parameters.
pub const FILTER_NAMES: &[&str] = &[
    "actor_type",
    "actor_id",
    "actor_email",
    "action",
    "resource_type",
    "resource_id",
    "organization_id",
    "outcome",
    "from",
    "to",
    "q",
];

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct FilterParams {
    /// `user`, `system`, `agent` or `workflow`.
    pub actor_type: Option<String>,
    pub actor_id: Option<String>,
    pub actor_email: Option<String>,
    /// Exact action (`webhook.create`) or a prefix (`webhook.*`).
    pub action: Option<String>,
    pub resource_type: Option<String>,
    pub resource_id: Option<String>,
    pub organization_id: Option<String>,
    /// `success` or `failure`.
    pub outcome: Option<String>,
    /// RFC 3339; inclusive.
    pub from: Option<String>,
    /// RFC 3339; exclusive.
    pub to: Option<String>,
    /// Text in the action, resource name or actor email.
    pub q: Option<String>,
}

fn bounded(field: &str, value: Option<String>) -> Result<Option<String>, FieldError> {
    match value {
        Some(v) if v.is_empty() => Err(FieldError::new(field, "must not be empty")),
        Some(v) if v.chars().count() > 500 => {
            Err(FieldError::new(field, "must be at most 500 characters"))
        }
        Some(v) if v.chars().any(char::is_control) => Err(FieldError::new(
            field,
            "must not contain control characters",
        )),
        other => Ok(other),
    }
}

fn time(field: &str, value: Option<String>) -> Result<Option<Timestamp>, FieldError> {
    value
        .map(|text| {
            Timestamp::parse(&text).ok_or_else(|| {
                FieldError::new(field, "must be an RFC 3339 time like 2026-11-25T10:00:00Z")
            })
        })
        .transpose()
}

fn action(value: Option<String>) -> Result<Option<ActionFilter>, FieldError> {
    let Some(text) = value else { return Ok(None) };
    let (name, prefix) = match text.strip_suffix(".*") {
        Some(prefix) => (prefix, true),
        None => (text.as_str(), false),
    };
    let valid = !name.is_empty()
        && name.len() <= 100
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '.');
    if !valid {
        return Err(FieldError::new(
            "action",
            "must be an action like webhook.create, or a prefix like webhook.*",
        ));
    }
    Ok(Some(if prefix {
        ActionFilter::Prefix(format!("{name}."))
    } else {
        ActionFilter::Exact(name.to_owned())
    }))
}

impl FilterParams {
    pub fn parse(self) -> Result<AuditFilter, FieldErrors> {
        let mut errors = FieldErrors::new();
        let actor_type = self
            .actor_type
            .map(|t| {
                ActorType::parse(&t).ok_or_else(|| {
                    FieldError::new("actor_type", "must be user, system, agent or workflow")
                })
            })
            .transpose();
        let outcome = self
            .outcome
            .map(|o| {
                Outcome::parse(&o)
                    .ok_or_else(|| FieldError::new("outcome", "must be success or failure"))
            })
            .transpose();
        let filter = AuditFilter {
            actor_type: errors.check(actor_type).flatten(),
            actor_id: errors.check(bounded("actor_id", self.actor_id)).flatten(),
            actor_email: errors
                .check(bounded("actor_email", self.actor_email))
                .flatten(),
            action: errors.check(action(self.action)).flatten(),
            resource_type: errors
                .check(bounded("resource_type", self.resource_type))
                .flatten(),
            resource_id: errors
                .check(bounded("resource_id", self.resource_id))
                .flatten(),
            organization_id: errors
                .check(bounded("organization_id", self.organization_id))
                .flatten(),
            outcome: errors.check(outcome).flatten(),
            from: errors.check(time("from", self.from)).flatten(),
            to: errors.check(time("to", self.to)).flatten(),
            q: errors.check(bounded("q", self.q)).flatten(),
        };
        if let (Some(from), Some(to)) = (filter.from, filter.to)
            && from > to
        {
            errors.add(FieldError::new("to", "must not be before from"));
        }
        errors.into_result().map(|()| filter)
    }
}

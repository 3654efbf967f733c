//! Silences (SPEC 7.4): matchers over an alert's rule, severity, kind and host, for a span of
//! time, during which the alerts they match fire and are recorded but notify no one.

use regex::Regex;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::Alert;
use crate::model::{Organization, User};
use crate::{FieldError, FieldErrors, Id, Timestamp};

/// A silence may last a year at most.
pub const MAX_SPAN_MICROS: i64 = 366 * 24 * 3600 * 1_000_000;
/// Matchers per silence.
pub const MAX_MATCHERS: usize = 20;
const MAX_VALUE: usize = 1_000;
const MAX_COMMENT: usize = 2_000;
/// Compiled regexes stay small (RE2-like, linear time; bounded size).
const REGEX_SIZE_LIMIT: usize = 1 << 20;

const NAMES: &[&str] = &[
    "rule_id",
    "rule_name",
    "severity",
    "kind",
    "host_id",
    "hostname",
];
const OPS: &[&str] = &["=", "!=", "=~", "!~"];

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Matcher {
    /// `rule_id`, `rule_name`, `severity`, `kind`, `host_id` or `hostname`.
    pub name: String,
    /// `=`, `!=`, `=~` or `!~` (anchored RE2 syntax).
    pub op: String,
    pub value: String,
}

impl Matcher {
    fn check(&self, i: usize) -> Result<(), FieldError> {
        if !NAMES.contains(&self.name.as_str()) {
            return Err(FieldError::new(
                format!("matchers[{i}].name"),
                format!("must be one of {}", NAMES.join(", ")),
            ));
        }
        if !OPS.contains(&self.op.as_str()) {
            return Err(FieldError::new(
                format!("matchers[{i}].op"),
                "must be =, !=, =~ or !~",
            ));
        }
        if self.value.chars().count() > MAX_VALUE {
            return Err(FieldError::new(
                format!("matchers[{i}].value"),
                format!("must be at most {MAX_VALUE} characters"),
            ));
        }
        if self.op.contains('~') {
            self.regex().map_err(|e| {
                FieldError::new(
                    format!("matchers[{i}].value"),
                    format!("is not a valid regular expression: {e}"),
                )
            })?;
        }
        Ok(())
    }

    fn regex(&self) -> Result<Regex, regex::Error> {
        regex::RegexBuilder::new(&format!("^(?:{})$", self.value))
            .size_limit(REGEX_SIZE_LIMIT)
            .build()
    }

    /// Whether the alert's field satisfies the matcher; an absent field is the empty string.
    pub fn matches(&self, alert: &Alert) -> bool {
        let field = match self.name.as_str() {
            "rule_id" => alert.rule_id.map(|r| r.to_string()).unwrap_or_default(),
            "rule_name" => alert.rule_name.clone(),
            "severity" => alert.severity.as_str().to_owned(),
            "kind" => alert.kind.clone(),
            "host_id" => alert.host_id.map(|h| h.to_string()).unwrap_or_default(),
            "hostname" => alert.hostname.clone().unwrap_or_default(),
            _ => return false,
        };
        match self.op.as_str() {
            "=" => field == self.value,
            "!=" => field != self.value,
            "=~" => self.regex().is_ok_and(|r| r.is_match(&field)),
            "!~" => self.regex().is_ok_and(|r| !r.is_match(&field)),
            _ => false,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SilenceState {
    Pending,
    Active,
    Expired,
}

impl SilenceState {
    pub const fn as_str(self) -> &'static str {
        match self {
            SilenceState::Pending => "pending",
            SilenceState::Active => "active",
            SilenceState::Expired => "expired",
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct CreatedBy {
    pub user_id: Option<Id<User>>,
    pub email: Option<String>,
}

#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct Silence {
    pub id: Id<Silence>,
    pub organization_id: Id<Organization>,
    pub matchers: Vec<Matcher>,
    pub starts_at: Timestamp,
    pub ends_at: Timestamp,
    pub comment: String,
    pub state: SilenceState,
    pub created_by: CreatedBy,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

impl Silence {
    pub fn state_at(starts_at: Timestamp, ends_at: Timestamp, now: Timestamp) -> SilenceState {
        if now < starts_at {
            SilenceState::Pending
        } else if now < ends_at {
            SilenceState::Active
        } else {
            SilenceState::Expired
        }
    }

    /// All matchers match.
    pub fn matches(&self, alert: &Alert) -> bool {
        alert.organization_id == self.organization_id
            && self.matchers.iter().all(|m| m.matches(alert))
    }
}

/// `POST /silences` and `PATCH /silences/{id}`: on update every field is optional.
#[derive(Clone, Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SilenceBody {
    pub organization_id: Option<Id<Organization>>,
    pub matchers: Option<Vec<Matcher>>,
    pub starts_at: Option<Timestamp>,
    pub ends_at: Option<Timestamp>,
    pub comment: Option<String>,
}

impl SilenceBody {
    pub fn create(
        self,
        id: Id<Silence>,
        created_by: CreatedBy,
        now: Timestamp,
    ) -> Result<Silence, FieldErrors> {
        let mut errors = FieldErrors::new();
        if self.organization_id.is_none() {
            errors.add(FieldError::new("organization_id", "is required"));
        }
        if self.ends_at.is_none() {
            errors.add(FieldError::new("ends_at", "is required"));
        }
        let silence = Silence {
            id,
            // A missing organization is an error already; the placeholder is never returned.
            organization_id: self.organization_id.unwrap_or_default(),
            matchers: self.matchers.unwrap_or_default(),
            starts_at: self.starts_at.unwrap_or(now),
            ends_at: self.ends_at.unwrap_or(now),
            comment: self.comment.unwrap_or_default(),
            state: SilenceState::Active,
            created_by,
            created_at: now,
            updated_at: now,
        };
        check(silence, errors, now)
    }

    /// The organization stays; an expired silence cannot be changed (409 from the caller).
    pub fn update(self, before: &Silence, now: Timestamp) -> Result<Silence, FieldErrors> {
        let mut errors = FieldErrors::new();
        if self
            .organization_id
            .is_some_and(|o| o != before.organization_id)
        {
            errors.add(FieldError::new("organization_id", "cannot be changed"));
        }
        let silence = Silence {
            matchers: self.matchers.unwrap_or_else(|| before.matchers.clone()),
            starts_at: self.starts_at.unwrap_or(before.starts_at),
            ends_at: self.ends_at.unwrap_or(before.ends_at),
            comment: self.comment.unwrap_or_else(|| before.comment.clone()),
            updated_at: now,
            ..before.clone()
        };
        check(silence, errors, now)
    }
}

fn check(
    mut silence: Silence,
    mut errors: FieldErrors,
    now: Timestamp,
) -> Result<Silence, FieldErrors> {
    if silence.matchers.is_empty() {
        errors.add(FieldError::new("matchers", "needs at least one matcher"));
    } else if silence.matchers.len() > MAX_MATCHERS {
        errors.add(FieldError::new(
            "matchers",
            format!("at most {MAX_MATCHERS} matchers"),
        ));
    }
    for (i, matcher) in silence.matchers.iter().enumerate().take(MAX_MATCHERS) {
        errors.check(matcher.check(i));
    }
    if silence.ends_at <= silence.starts_at {
        errors.add(FieldError::new("ends_at", "must be after starts_at"));
    } else if silence.ends_at <= now {
        errors.add(FieldError::new("ends_at", "must be in the future"));
    } else if silence.ends_at.micros() - silence.starts_at.micros() > MAX_SPAN_MICROS {
        errors.add(FieldError::new("ends_at", "a silence lasts a year at most"));
    }
    let comment = silence.comment.trim();
    if comment.is_empty() {
        errors.add(FieldError::new("comment", "is required"));
    } else if comment.chars().count() > MAX_COMMENT {
        errors.add(FieldError::new(
            "comment",
            format!("must be at most {MAX_COMMENT} characters"),
        ));
    }
    errors.into_result()?;
    silence.state = Silence::state_at(silence.starts_at, silence.ends_at, now);
    Ok(silence)
}

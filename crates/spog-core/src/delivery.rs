//! The outbound delivery engine's rules (SPEC 5.3), shared by webhook subscriptions and
//! notification channels: the state machine, the retry schedule, and what a delivery and its
//! attempts look like. Where the delivery goes and how it is sent are not decided here.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use crate::events::{Event, EventType};
use crate::model::{Account, Organization};
use crate::{FieldError, Id, Timestamp};

/// `pending` → `delivering` → `succeeded`; or `delivering` → `retrying` → `delivering` …;
/// or `delivering` → `failed` after the last attempt.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryStatus {
    /// Waiting for its first attempt.
    Pending,
    /// An attempt is in progress on some instance, which holds a lease on it.
    Delivering,
    Succeeded,
    /// Waiting for its next attempt.
    Retrying,
    /// Every attempt failed; only a manual retry sends it again.
    Failed,
}

impl DeliveryStatus {
    pub const ALL: [DeliveryStatus; 5] = [
        DeliveryStatus::Pending,
        DeliveryStatus::Delivering,
        DeliveryStatus::Succeeded,
        DeliveryStatus::Retrying,
        DeliveryStatus::Failed,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            DeliveryStatus::Pending => "pending",
            DeliveryStatus::Delivering => "delivering",
            DeliveryStatus::Succeeded => "succeeded",
            DeliveryStatus::Retrying => "retrying",
            DeliveryStatus::Failed => "failed",
        }
    }

    pub fn from_name(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == text)
    }

    pub fn parse(field: &str, text: &str) -> Result<Self, FieldError> {
        Self::from_name(text).ok_or_else(|| {
            FieldError::new(
                field,
                "must be one of pending, delivering, succeeded, retrying, failed",
            )
        })
    }
}

impl fmt::Display for DeliveryStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a delivery is addressed to. Each kind has its own formatter and transport; the
/// queue, state machine, schedule and attempt history are the same for all.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum TargetKind {
    /// A webhook subscription (SPEC 5).
    Webhook,
    /// A notification channel (SPEC 7).
    Channel,
}

impl TargetKind {
    pub const ALL: [TargetKind; 2] = [TargetKind::Webhook, TargetKind::Channel];

    pub const fn as_str(self) -> &'static str {
        match self {
            TargetKind::Webhook => "webhook",
            TargetKind::Channel => "channel",
        }
    }

    pub fn from_name(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == text)
    }
}

/// Delays before attempts 2..n: the first attempt is immediate, and after the attempt that
/// has no delay left the delivery is `failed`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RetrySchedule {
    delays: Vec<Duration>,
}

impl RetrySchedule {
    pub fn new(delays: Vec<Duration>) -> Self {
        Self { delays }
    }

    /// SPEC 5.3: 1, 5, 15, 60 and 240 minutes; six attempts in all.
    pub fn standard() -> Self {
        Self::new(
            [1, 5, 15, 60, 240]
                .into_iter()
                .map(|m| Duration::from_secs(m * 60))
                .collect(),
        )
    }

    pub fn max_attempts(&self) -> u32 {
        self.delays.len() as u32 + 1
    }

    /// The wait after attempt `attempt` (1-based) failed, or `None` when it was the last.
    pub fn delay_after(&self, attempt: u32) -> Option<Duration> {
        let index = usize::try_from(attempt.checked_sub(1)?).ok()?;
        self.delays.get(index).copied()
    }

    /// Where a delivery goes after attempt number `attempt` ended at `now`.
    pub fn after_attempt(&self, attempt: u32, succeeded: bool, now: Timestamp) -> Transition {
        if succeeded {
            return Transition {
                status: DeliveryStatus::Succeeded,
                next_attempt_at: None,
                completed_at: Some(now),
            };
        }
        match self.delay_after(attempt) {
            Some(delay) => Transition {
                status: DeliveryStatus::Retrying,
                next_attempt_at: Some(now.plus(delay)),
                completed_at: None,
            },
            None => Transition {
                status: DeliveryStatus::Failed,
                next_attempt_at: None,
                completed_at: Some(now),
            },
        }
    }
}

/// A delivery's state after an attempt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Transition {
    pub status: DeliveryStatus,
    pub next_attempt_at: Option<Timestamp>,
    pub completed_at: Option<Timestamp>,
}

/// Responses are kept up to this many bytes; the rest is never read.
pub const RESPONSE_BODY_LIMIT: usize = 4096;

/// The first [`RESPONSE_BODY_LIMIT`] bytes of a response as text.
pub fn response_excerpt(bytes: &[u8]) -> String {
    let bytes = &bytes[..bytes.len().min(RESPONSE_BODY_LIMIT)];
    match std::str::from_utf8(bytes) {
        Ok(text) => text.to_owned(),
        // The cut may split a character: keep what decodes up to it.
        Err(error) if error.error_len().is_none() => {
            String::from_utf8_lossy(&bytes[..error.valid_up_to()]).into_owned()
        }
        Err(_) => String::from_utf8_lossy(bytes).into_owned(),
    }
}

/// One delivery of one event to one target, as the history shows it.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct Delivery {
    pub id: Id<Delivery>,
    pub account_id: Id<Account>,
    pub organization_id: Id<Organization>,
    pub target_type: TargetKind,
    /// The webhook (or channel) the delivery is addressed to.
    pub target_id: String,
    pub event_id: Id<Event>,
    pub event_type: EventType,
    pub status: DeliveryStatus,
    /// Attempts made since the delivery was created or last retried by hand.
    pub attempt_count: u32,
    pub last_status_code: Option<u16>,
    pub last_error: Option<String>,
    /// When the next attempt is due (`pending` and `retrying` only).
    pub next_attempt_at: Option<Timestamp>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    /// When it became `succeeded` or `failed`.
    pub completed_at: Option<Timestamp>,
}

/// One attempt to send a delivery.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct Attempt {
    /// 1 for the first attempt; restarts at 1 after a manual retry.
    pub attempt: u32,
    pub started_at: Timestamp,
    pub duration_ms: u64,
    pub success: bool,
    pub status_code: Option<u16>,
    pub error: Option<String>,
    /// The first 4 KiB of the response.
    pub response_body: Option<String>,
}

/// A delivery with what it sends and every attempt so far.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct DeliveryDetail {
    #[serde(flatten)]
    pub delivery: Delivery,
    /// The body every attempt sends.
    pub payload: Value,
    /// Oldest first.
    pub attempts: Vec<Attempt>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_standard_schedule_is_six_attempts_over_321_minutes() {
        let schedule = RetrySchedule::standard();
        assert_eq!(schedule.max_attempts(), 6);
        let total: Duration = (1..=5).filter_map(|a| schedule.delay_after(a)).sum();
        assert_eq!(total, Duration::from_secs(321 * 60));
        assert_eq!(schedule.delay_after(6), None);
        assert_eq!(schedule.delay_after(0), None);
    }

    #[test]
    fn failures_retry_on_schedule_until_the_last_attempt() {
        let schedule = RetrySchedule::standard();
        let now = Timestamp::from_micros(1_000_000);
        let second = schedule.after_attempt(1, false, now);
        assert_eq!(second.status, DeliveryStatus::Retrying);
        assert_eq!(
            second.next_attempt_at,
            Some(now.plus(Duration::from_secs(60)))
        );
        assert_eq!(second.completed_at, None);
        let last = schedule.after_attempt(6, false, now);
        assert_eq!(last.status, DeliveryStatus::Failed);
        assert_eq!((last.next_attempt_at, last.completed_at), (None, Some(now)));
        let done = schedule.after_attempt(3, true, now);
        assert_eq!(done.status, DeliveryStatus::Succeeded);
        assert_eq!(done.completed_at, Some(now));
    }

    #[test]
    fn a_schedule_without_delays_fails_after_one_attempt() {
        let schedule = RetrySchedule::new(Vec::new());
        assert_eq!(schedule.max_attempts(), 1);
        assert_eq!(
            schedule
                .after_attempt(1, false, Timestamp::from_micros(0))
                .status,
            DeliveryStatus::Failed
        );
    }

    #[test]
    fn response_excerpts_stop_at_4_kib_without_splitting_characters() {
        let text = "é".repeat(3000);
        let excerpt = response_excerpt(text.as_bytes());
        assert_eq!(excerpt.len(), RESPONSE_BODY_LIMIT);
        let odd = format!("a{}", "é".repeat(3000));
        assert_eq!(
            response_excerpt(odd.as_bytes()).len(),
            RESPONSE_BODY_LIMIT - 1
        );
        assert_eq!(response_excerpt(b"ok"), "ok");
    }
}

//! The outbound delivery queue (SPEC 5.3), for every target kind. A delivery row is the truth
//! about its state: instances claim due rows with a lease, send outside any transaction, and
//! record each attempt only if their claim still holds, so a delivery whose instance died is
//! taken up again once the lease lapses and nothing is lost across restarts.

mod backoff;
mod claim;
mod history;
mod queue;

pub use backoff::forget_target;
pub use claim::{ClaimPolicy, Claimed, Unrecorded, claim};
pub use history::{
    Backlog, DeliveryFilter, backlog, delete_for_target, detail, failed_count, get, list, retry,
};
pub use queue::{AttemptRecord, Recorded, cleanup, enqueue, expire_leases, record};

use spog_core::delivery::{Delivery, DeliveryStatus, TargetKind};
use spog_core::events::EventType;

use crate::rows::{at, id, opt_at};
use crate::{StoreError, StoreResult};

const COLUMNS: &str = "id, account_id, organization_id, target_kind, target_id, event_id, event_type, status, \
     attempt_count, last_status_code, last_error, next_attempt_at, created_at, updated_at, completed_at";

#[derive(sqlx::FromRow)]
struct DeliveryRow {
    id: String,
    account_id: String,
    organization_id: String,
    target_kind: String,
    target_id: String,
    event_id: String,
    event_type: String,
    status: String,
    attempt_count: i64,
    last_status_code: Option<i64>,
    last_error: Option<String>,
    next_attempt_at: Option<i64>,
    created_at: i64,
    updated_at: i64,
    completed_at: Option<i64>,
}

fn corrupt(what: &str, value: &str) -> StoreError {
    StoreError::Corrupt(format!("delivery {what} `{value}`"))
}

fn status(text: &str) -> StoreResult<DeliveryStatus> {
    DeliveryStatus::from_name(text).ok_or_else(|| corrupt("status", text))
}

fn target_kind(text: &str) -> StoreResult<TargetKind> {
    TargetKind::from_name(text).ok_or_else(|| corrupt("target kind", text))
}

fn event_type(text: &str) -> StoreResult<EventType> {
    EventType::from_name(text).ok_or_else(|| corrupt("event type", text))
}

impl TryFrom<DeliveryRow> for Delivery {
    type Error = StoreError;
    fn try_from(row: DeliveryRow) -> StoreResult<Self> {
        Ok(Delivery {
            id: id(&row.id)?,
            account_id: id(&row.account_id)?,
            organization_id: id(&row.organization_id)?,
            target_type: target_kind(&row.target_kind)?,
            target_id: row.target_id,
            event_id: id(&row.event_id)?,
            event_type: event_type(&row.event_type)?,
            status: status(&row.status)?,
            attempt_count: row.attempt_count as u32,
            last_status_code: row.last_status_code.map(|c| c as u16),
            last_error: row.last_error,
            next_attempt_at: opt_at(row.next_attempt_at),
            created_at: at(row.created_at),
            updated_at: at(row.updated_at),
            completed_at: opt_at(row.completed_at),
        })
    }
}

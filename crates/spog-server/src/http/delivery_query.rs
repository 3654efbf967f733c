//! The query of a delivery history, shared by webhooks and notification channels: one
//! delivery engine, one way to filter what it did.

use serde::Deserialize;
use spog_core::FieldErrors;
use spog_core::delivery::DeliveryStatus;
use spog_core::events::EventType;
use spog_core::page;
use spog_store::deliveries::DeliveryFilter;
use utoipa::IntoParams;

use crate::error::ApiResult;

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct DeliveryParams {
    /// `pending`, `delivering`, `succeeded`, `retrying` or `failed`.
    pub status: Option<String>,
    /// One of the event types.
    pub event_type: Option<String>,
    /// 1 to 500; default 50.
    pub limit: Option<i64>,
    pub cursor: Option<String>,
}

impl DeliveryParams {
    /// The filter and page size, or 422 naming every field at fault.
    pub fn parse(&self) -> ApiResult<(DeliveryFilter, u32)> {
        let mut errors = FieldErrors::new();
        let limit = errors.check(page::limit(
            self.limit,
            page::DEFAULT_LIMIT,
            page::MAX_LIMIT,
        ));
        let status = self
            .status
            .as_deref()
            .map(|s| DeliveryStatus::parse("status", s))
            .transpose();
        let status = errors.check(status).flatten();
        let event_type = self
            .event_type
            .as_deref()
            .map(|t| EventType::parse("event_type", t))
            .transpose();
        let event_type = errors.check(event_type).flatten();
        errors.into_result()?;
        Ok((
            DeliveryFilter { status, event_type },
            limit.unwrap_or(page::DEFAULT_LIMIT),
        ))
    }
}

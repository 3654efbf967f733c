//! A delivery history, shared by webhooks and notification channels (one delivery engine):
//! list with filters, detail with every attempt, and manual retry of a `failed` delivery.
//! Each router keeps its own handlers, which name its paths and find the owner.

use serde::Deserialize;
use serde_json::json;
use spog_core::audit::Action;
use spog_core::delivery::{Delivery, DeliveryDetail, DeliveryStatus, TargetKind};
use spog_core::events::EventType;
use spog_core::model::Organization;
use spog_core::page::{self, Page};
use spog_core::{FieldErrors, Id, Timestamp};
use spog_store::deliveries::{self, DeliveryFilter};
use spog_store::{Conn, Tx};
use utoipa::IntoParams;

use crate::auth::Auth;
use crate::error::ApiResult;
use crate::state::AppState;

/// The webhook or notification channel a history belongs to, found in the caller's account.
pub struct Owner {
    pub kind: TargetKind,
    pub id: String,
    pub name: String,
    pub organization_id: Id<Organization>,
}

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

/// The owner's deliveries, newest first.
pub async fn list(
    conn: &mut Conn,
    auth: &Auth,
    owner: &Owner,
    params: &DeliveryParams,
) -> ApiResult<Page<Delivery>> {
    let (filter, limit) = params.parse()?;
    let account = auth.principal.account;
    Ok(deliveries::list(
        conn,
        account,
        owner.kind,
        &owner.id,
        &filter,
        limit,
        params.cursor.as_deref(),
    )
    .await?)
}

/// A delivery of the owner's, with its payload and every attempt.
pub async fn detail(
    conn: &mut Conn,
    auth: &Auth,
    kind: TargetKind,
    owner_id: &str,
    delivery: Id<Delivery>,
) -> ApiResult<DeliveryDetail> {
    let account = auth.principal.account;
    Ok(deliveries::detail(conn, account, kind, owner_id, delivery).await?)
}

/// Sends a `failed` delivery again from its first attempt (409 in any other state), on
/// record in the transaction that found the owner.
pub async fn retry(
    state: &AppState,
    auth: &Auth,
    mut tx: Tx,
    owner: Owner,
    delivery: Id<Delivery>,
) -> ApiResult<Delivery> {
    let account = auth.principal.account;
    let before = deliveries::get(&mut tx, account, owner.kind, &owner.id, delivery).await?;
    let now = Timestamp::now();
    let after = deliveries::retry(&mut tx, account, owner.kind, &owner.id, delivery, now).await?;
    let (action, owner_key) = match owner.kind {
        TargetKind::Webhook => (Action::WebhookDeliveryRetry, "webhook_id"),
        TargetKind::Channel => (Action::NotificationChannelDeliveryRetry, "channel_id"),
    };
    let entry = auth
        .did_on(
            action,
            delivery,
            format!("{} to {}", after.event_type, owner.name),
        )
        .in_organization(owner.organization_id)
        .before(&before)
        .after(&after)
        .metadata(json!({ owner_key: owner.id }));
    tx.record(entry).await?;
    tx.commit().await?;
    state.bus.touch(account, "deliveries");
    Ok(after)
}

//! A webhook's delivery history (SPEC 5.3): list with filters, detail with every attempt,
//! and manual retry of a `failed` delivery.

use axum::Json;
use axum::extract::State;
use serde_json::json;
use spog_core::delivery::{Delivery, DeliveryDetail, TargetKind};
use spog_core::page::Page;
use spog_core::webhooks::Webhook;
use spog_core::{Id, Timestamp};
use spog_store::deliveries;
use spog_store::{audit, webhooks as store};

use crate::auth::Require;
use crate::auth::permissions::{MonitoringManage, MonitoringView};
use crate::error::ApiResult;
use crate::extract::{AppPath, AppQuery};
use crate::http::delivery_query::DeliveryParams;
use crate::state::AppState;

/// A webhook's deliveries, newest first.
#[utoipa::path(get, path = "/webhooks/{id}/deliveries", tag = "webhooks",
    params(("id" = String, Path), DeliveryParams),
    responses((status = 200, body = Page<Delivery>)))]
pub(super) async fn list_deliveries(
    State(state): State<AppState>,
    auth: Require<MonitoringView>,
    AppPath(id): AppPath<Id<Webhook>>,
    AppQuery(params): AppQuery<DeliveryParams>,
) -> ApiResult<Json<Page<Delivery>>> {
    let (filter, limit) = params.parse()?;
    let mut conn = state.store.conn().await?;
    store::get(&mut conn, auth.account(), id).await?;
    let page = deliveries::list(
        &mut conn,
        auth.account(),
        TargetKind::Webhook,
        &id.to_string(),
        &filter,
        limit,
        params.cursor.as_deref(),
    )
    .await?;
    Ok(Json(page))
}

/// A delivery with its payload and every attempt.
#[utoipa::path(get, path = "/webhooks/{id}/deliveries/{delivery_id}", tag = "webhooks",
    params(("id" = String, Path), ("delivery_id" = String, Path)),
    responses((status = 200, body = DeliveryDetail)))]
pub(super) async fn get_delivery(
    State(state): State<AppState>,
    auth: Require<MonitoringView>,
    AppPath((id, delivery)): AppPath<(Id<Webhook>, Id<Delivery>)>,
) -> ApiResult<Json<DeliveryDetail>> {
    let mut conn = state.store.conn().await?;
    let detail = deliveries::detail(
        &mut conn,
        auth.account(),
        TargetKind::Webhook,
        &id.to_string(),
        delivery,
    )
    .await?;
    Ok(Json(detail))
}

/// Send a `failed` delivery again from its first attempt (409 in any other state).
#[utoipa::path(post, path = "/webhooks/{id}/deliveries/{delivery_id}/retry", tag = "webhooks",
    params(("id" = String, Path), ("delivery_id" = String, Path)),
    responses((status = 200, body = Delivery)))]
pub(super) async fn retry_delivery(
    State(state): State<AppState>,
    auth: Require<MonitoringManage>,
    AppPath((id, delivery)): AppPath<(Id<Webhook>, Id<Delivery>)>,
) -> ApiResult<Json<Delivery>> {
    let mut tx = state.store.begin().await?;
    let webhook = store::get(&mut tx, auth.account(), id).await?;
    let before = deliveries::get(
        &mut tx,
        auth.account(),
        TargetKind::Webhook,
        &id.to_string(),
        delivery,
    )
    .await?;
    let after = deliveries::retry(
        &mut tx,
        auth.account(),
        TargetKind::Webhook,
        &id.to_string(),
        delivery,
        Timestamp::now(),
    )
    .await?;
    let entry = auth
        .entry("webhook.delivery_retry", "webhook_delivery")
        .resource(
            delivery,
            format!("{} to {}", after.event_type, webhook.name),
        )
        .in_organization(webhook.organization_id)
        .before(&before)
        .after(&after)
        .metadata(json!({"webhook_id": id}));
    audit::record(&mut tx, entry).await?;
    tx.commit().await?;
    state.bus.touch(auth.account(), "deliveries");
    Ok(Json(after))
}

//! A webhook's delivery history (SPEC 5.3); the work is in [`delivery_history`].

use axum::Json;
use axum::extract::State;
use spog_core::Id;
use spog_core::delivery::{Delivery, DeliveryDetail, TargetKind};
use spog_core::page::Page;
use spog_core::webhooks::Webhook;
use spog_store::webhooks as store;

use crate::auth::Require;
use crate::auth::permissions::{MonitoringManage, MonitoringView};
use crate::error::ApiResult;
use crate::extract::{AppPath, AppQuery};
use crate::http::delivery_history::{self, DeliveryParams, Owner};
use crate::state::AppState;

fn owner(webhook: Webhook) -> Owner {
    Owner {
        kind: TargetKind::Webhook,
        id: webhook.id.to_string(),
        name: webhook.name,
        organization_id: webhook.organization_id,
    }
}

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
    let mut conn = state.store.conn().await?;
    let owner = owner(store::get(&mut conn, auth.account(), id).await?);
    let page = delivery_history::list(&mut conn, &auth, &owner, &params).await?;
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
    let (kind, owner_id) = (TargetKind::Webhook, id.to_string());
    let detail = delivery_history::detail(&mut conn, &auth, kind, &owner_id, delivery).await?;
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
    let owner = owner(store::get(&mut tx, auth.account(), id).await?);
    let retried = delivery_history::retry(&state, &auth, tx, owner, delivery).await?;
    Ok(Json(retried))
}

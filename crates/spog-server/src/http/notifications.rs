//! `/notifications`: a user's own and the account's broadcast notifications, read state, and
//! sending (SPEC 6). Reads are pushed to the user's other tabs; reading is not audited.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::json;
use spog_core::audit::Action;
use spog_core::model::{ExternalIdentity, User};
use spog_core::notification::{Category, Notification, Severity};
use spog_core::page::{self, Page};
use spog_core::validate::{self, Email};
use spog_core::{FieldError, FieldErrors, Id, Timestamp};
use spog_store::identity::users;
use spog_store::{StoreError, notifications};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::permissions::NotificationsSend;
use crate::auth::{Auth, Require};
use crate::error::{ApiError, ApiResult};
use crate::extract::{AppJson, AppPath, AppQuery};
use crate::hub::bus::BusEvent;
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_notifications, send_notification))
        .routes(routes!(unread_count))
        .routes(routes!(mark_read))
        .routes(routes!(mark_all_read))
}

fn own_user(auth: &Auth) -> ApiResult<Id<User>> {
    auth.principal.user.ok_or_else(|| {
        ApiError::Forbidden("notifications belong to users; this token acts as no user".to_owned())
    })
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct NotificationParams {
    pub read: Option<bool>,
    pub category: Option<Category>,
    /// 1 to 500; default 50.
    pub limit: Option<i64>,
    pub cursor: Option<String>,
}

/// The caller's notifications and the account's broadcasts, newest first.
#[utoipa::path(get, path = "/notifications", tag = "notifications", params(NotificationParams),
    responses((status = 200, body = Page<Notification>)))]
async fn list_notifications(
    State(state): State<AppState>,
    auth: Auth,
    AppQuery(params): AppQuery<NotificationParams>,
) -> ApiResult<Json<Page<Notification>>> {
    let user = own_user(&auth)?;
    let limit = page::limit(params.limit, page::DEFAULT_LIMIT, page::MAX_LIMIT)?;
    let mut conn = state.store.conn().await?;
    let page = notifications::list(
        &mut conn,
        auth.account(),
        user,
        params.read,
        params.category,
        limit,
        params.cursor.as_deref(),
    )
    .await?;
    Ok(Json(page))
}

#[derive(Serialize, ToSchema)]
pub struct UnreadCount {
    pub count: i64,
}

/// How many of the caller's notifications are unread.
#[utoipa::path(get, path = "/notifications/unread-count", tag = "notifications",
    responses((status = 200, body = UnreadCount)))]
async fn unread_count(State(state): State<AppState>, auth: Auth) -> ApiResult<Json<UnreadCount>> {
    let user = own_user(&auth)?;
    let mut conn = state.store.conn().await?;
    Ok(Json(UnreadCount {
        count: notifications::unread_count(&mut conn, auth.account(), user).await?,
    }))
}

/// Tells the user's open tabs, on every instance, their new unread count.
async fn announce_unread(state: &AppState, auth: &Auth, user: Id<User>) -> ApiResult<i64> {
    let count =
        notifications::unread_count(&mut *state.store.conn().await?, auth.account(), user).await?;
    state
        .bus
        .publish(BusEvent::UnreadCount {
            account: auth.account(),
            user,
            count,
        })
        .await;
    Ok(count)
}

/// Mark one notification read.
#[utoipa::path(post, path = "/notifications/{id}/read", tag = "notifications", params(("id" = String, Path)),
    responses((status = 200, body = UnreadCount)))]
async fn mark_read(
    State(state): State<AppState>,
    auth: Auth,
    AppPath(id): AppPath<Id<Notification>>,
) -> ApiResult<Json<UnreadCount>> {
    let user = own_user(&auth)?;
    let mut tx = state.store.begin().await?;
    notifications::mark_read(&mut tx, auth.account(), user, id, Timestamp::now()).await?;
    tx.commit_unaudited().await?;
    Ok(Json(UnreadCount {
        count: announce_unread(&state, &auth, user).await?,
    }))
}

/// Mark everything read.
#[utoipa::path(post, path = "/notifications/read-all", tag = "notifications",
    responses((status = 200, body = UnreadCount)))]
async fn mark_all_read(State(state): State<AppState>, auth: Auth) -> ApiResult<Json<UnreadCount>> {
    let user = own_user(&auth)?;
    let mut tx = state.store.begin().await?;
    notifications::mark_all_read(&mut tx, auth.account(), user, Timestamp::now()).await?;
    tx.commit_unaudited().await?;
    Ok(Json(UnreadCount {
        count: announce_unread(&state, &auth, user).await?,
    }))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SendNotification {
    pub user_id: Option<Id<User>>,
    pub user_email: Option<String>,
    pub identity: Option<ExternalIdentity>,
    /// To every user of the account.
    #[serde(default)]
    pub broadcast: bool,
    pub category: Category,
    pub severity: Severity,
    pub title: String,
    pub message: String,
    /// A path in the console (`/alerts/…`) or an http(s) URL.
    pub link: Option<String>,
}

fn link(text: &str) -> Result<String, FieldError> {
    let relative = text.starts_with('/') && !text.starts_with("//");
    let absolute = text.starts_with("https://") || text.starts_with("http://");
    if text.len() > 2000
        || !(relative || absolute)
        || text.chars().any(|c| c.is_whitespace() || c.is_control())
    {
        return Err(FieldError::new(
            "link",
            "must be a console path like /alerts or an http(s) URL",
        ));
    }
    Ok(text.to_owned())
}

fn not_a_user(field: &str) -> impl Fn(StoreError) -> ApiError + '_ {
    move |error| match error {
        StoreError::NotFound => ApiError::field(field, "names no user of this account"),
        other => other.into(),
    }
}

/// Send a notification to one user (by id, email or linked identity) or to everyone.
#[utoipa::path(post, path = "/notifications", tag = "notifications", request_body = SendNotification,
    responses((status = 201, body = Notification)))]
async fn send_notification(
    State(state): State<AppState>,
    auth: Require<NotificationsSend>,
    AppJson(body): AppJson<SendNotification>,
) -> ApiResult<(StatusCode, Json<Notification>)> {
    let targets = [
        body.user_id.is_some(),
        body.user_email.is_some(),
        body.identity.is_some(),
        body.broadcast,
    ];
    let mut errors = FieldErrors::new();
    if targets.iter().filter(|t| **t).count() != 1 {
        errors.add(FieldError::new(
            "user_id",
            "give exactly one of user_id, user_email, identity or broadcast: true",
        ));
    }
    let title = errors.check(validate::name("title", &body.title, 200));
    let message = errors.check(validate::text("message", &body.message, 4000));
    let link = errors.check(body.link.as_deref().map(link).transpose());
    let email = errors.check(
        body.user_email
            .as_deref()
            .map(|e| Email::parse("user_email", e))
            .transpose(),
    );
    let (title, message, link, email) = errors.finish((title, message, link, email))?;
    let account = auth.account();
    let mut tx = state.store.begin().await?;
    let recipient = match (body.user_id, email, &body.identity) {
        (Some(user), _, _) => Some(
            users::get(&mut tx, account, user)
                .await
                .map_err(not_a_user("user_id"))?,
        ),
        (_, Some(email), _) => Some(
            users::by_email(&mut tx, account, &email)
                .await
                .map_err(not_a_user("user_email"))?,
        ),
        (_, _, Some(identity)) => Some(
            users::by_identity(&mut tx, account, identity)
                .await
                .map_err(not_a_user("identity"))?,
        ),
        _ => None,
    };
    let new = notifications::NewNotification {
        user: recipient.as_ref().map(|u| u.id),
        category: body.category,
        severity: body.severity,
        title,
        message,
        link,
    };
    let notification = notifications::create(&mut tx, account, new, Timestamp::now()).await?;
    let to = recipient
        .as_ref()
        .map_or("broadcast".to_owned(), |u| u.email.clone());
    tx.record(
        auth.did(Action::NotificationSend, &notification)
            .after(&notification)
            .metadata(json!({"to": to})),
    )
    .await?;
    tx.commit().await?;
    state
        .bus
        .publish(BusEvent::Notification {
            account,
            notification: notification.id,
        })
        .await;
    Ok((StatusCode::CREATED, Json(notification)))
}

//! The in-app notifications events call for: one per user of the account who watches
//! monitoring.

use serde_json::Value;
use spog_core::events::EventType;
use spog_core::model::Account;
use spog_core::notification::{Category, Severity};
use spog_core::{Id, Permission, Timestamp};
use spog_store::identity::users;
use spog_store::{StoreResult, Tx, notifications};

use super::Announcements;
use crate::hub::bus::BusEvent;

/// An in-app notification about to be sent to the people who watch monitoring.
#[derive(Clone, Debug)]
pub struct Notice {
    pub category: Category,
    pub severity: Severity,
    pub title: String,
    pub message: String,
    pub link: Option<String>,
}

/// The notice a failure event calls for (`job.failed`, `deployment.failed`).
pub(super) fn failure(event_type: EventType, data: &Value) -> Option<Notice> {
    let (category, title) = match event_type {
        EventType::JobFailed => (Category::Job, "Job failed"),
        EventType::DeploymentFailed => (Category::Deployment, "Deployment failed"),
        _ => return None,
    };
    let message = data
        .get("error")
        .or_else(|| data.get("message"))
        .and_then(Value::as_str)
        .unwrap_or("See the event for details.");
    Some(Notice {
        category,
        severity: Severity::High,
        title: format!("{title}: {}", subject(data)),
        message: message.to_owned(),
        link: None,
    })
}

/// A short name for what an event is about: its name, job, deployment or host, else its id.
pub(super) fn subject(data: &Value) -> String {
    [
        "name",
        "job_name",
        "job",
        "deployment",
        "hostname",
        "host",
        "id",
    ]
    .iter()
    .find_map(|key| data.get(key).and_then(Value::as_str))
    .unwrap_or("an event")
    .chars()
    .take(200)
    .collect()
}

/// One notification per user of the account who holds `monitoring.view`.
pub(super) async fn notify_monitors(
    tx: &mut Tx,
    account: Id<Account>,
    notice: &Notice,
    announcements: &mut Announcements,
) -> StoreResult<()> {
    notify_holders(
        tx,
        account,
        Permission::MonitoringView,
        notice,
        announcements,
    )
    .await
}

/// One notification per user of the account who holds `permission`.
pub async fn notify_holders(
    tx: &mut Tx,
    account: Id<Account>,
    permission: Permission,
    notice: &Notice,
    announcements: &mut Announcements,
) -> StoreResult<()> {
    let title: String = notice.title.chars().take(200).collect();
    let message: String = notice.message.chars().take(4000).collect();
    for user in users::ids_with_permission(tx, account, permission).await? {
        let new = notifications::NewNotification {
            user: Some(user),
            category: notice.category,
            severity: notice.severity,
            title: title.clone(),
            message: message.clone(),
            link: notice.link.clone(),
        };
        let notification = notifications::create(tx, account, new, Timestamp::now()).await?;
        announcements.push(BusEvent::Notification {
            account,
            notification: notification.id,
        });
    }
    Ok(())
}

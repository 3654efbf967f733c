//! Events fan out here, in one place (DESIGN): publishing an event, from the API or from
//! inside, creates in its transaction the webhook deliveries, the alerts of matching event
//! rules, and the in-app notifications it calls for. Alerts announce each state through an
//! `alert.*` event, in-app notifications and their rule's channels. What browsers must hear
//! is collected as [`Announcements`] and sent after the transaction commits.

pub mod metrics;

use serde_json::{Value, json};
use spog_core::alerts::{Alert, AlertRule, AlertState};
use spog_core::audit::{Action, Actor, Source};
use spog_core::delivery::TargetKind;
use spog_core::events::EventType;
use spog_core::model::Account;
use spog_core::notification::{Category, Severity};
use spog_core::{Id, Permission, Timestamp};
use spog_store::alerting::{alerts, rules};
use spog_store::events::{self, NewEvent, Published};
use spog_store::identity::users;
use spog_store::{StoreResult, Tx, deliveries, notifications};

use crate::hub::Dashboard;
use crate::hub::bus::{Bus, BusEvent};

/// Real-time messages owed once the transaction commits.
#[derive(Default)]
#[must_use = "announcements are sent after the transaction commits"]
pub struct Announcements {
    events: Vec<BusEvent>,
    /// Dashboard topics whose data changed, announced coalesced ([`Bus::touch`]).
    touched: Vec<(Id<Account>, &'static str)>,
}

impl Announcements {
    pub async fn send(self, bus: &Bus) {
        for event in self.events {
            bus.publish(event).await;
        }
        for (account, topic) in self.touched {
            bus.touch(account, topic);
        }
    }
}

/// Publishes an event with all it fans out to.
pub async fn publish_event(
    tx: &mut Tx,
    event: NewEvent,
    now: Timestamp,
    announcements: &mut Announcements,
) -> StoreResult<Published> {
    let (account, organization, event_type) = (event.account, event.organization, event.event_type);
    let data: Value = serde_json::from_str(&event.data).unwrap_or(Value::Null);
    let published = events::publish(tx, event, now).await?;
    let Published::New {
        event: id,
        deliveries,
    } = &published
    else {
        return Ok(published);
    };
    if !deliveries.is_empty() {
        announcements.touched.push((account, "deliveries"));
    }
    if matches!(event_type, EventType::HostOnline | EventType::HostOffline) {
        announcements.touched.push((account, "hosts"));
    }
    // Alerts never trigger event rules, so an alert can never set off another.
    if !matches!(
        event_type,
        EventType::AlertFired | EventType::AlertResolved | EventType::AlertAcknowledged
    ) {
        for rule in rules::enabled(tx, account, organization, "event").await? {
            if rule.condition.matches_event(event_type, &data) {
                let summary = format!("{} on {}", event_type.as_str(), summary_of(&data));
                let mut alert = alerts::firing(&rule, summary, now);
                alert.source_event_id = Some(id.to_string());
                fire(tx, account, &rule, alert, now, announcements).await?;
            }
        }
    }
    let failure = match event_type {
        EventType::JobFailed => Some((Category::Job, "Job failed")),
        EventType::DeploymentFailed => Some((Category::Deployment, "Deployment failed")),
        _ => None,
    };
    if let Some((category, title)) = failure {
        let title = format!("{title}: {}", summary_of(&data));
        let message = data
            .get("error")
            .or_else(|| data.get("message"))
            .and_then(Value::as_str)
            .unwrap_or("See the event for details.")
            .to_owned();
        notify_monitors(
            tx,
            account,
            category,
            Severity::High,
            &title,
            &message,
            None,
            announcements,
        )
        .await?;
    }
    Ok(published)
}

/// A short name for what an event is about: its name, job, deployment or host, else its id.
fn summary_of(data: &Value) -> String {
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

/// The actor of the changes the alert engine makes on its own.
pub fn alert_engine(account: Id<Account>) -> Actor {
    Actor::system(account, "alert engine", Source::Scheduler)
}

/// Stores a firing alert and, unless the rule's cooldown runs, announces it.
pub async fn fire(
    tx: &mut Tx,
    account: Id<Account>,
    rule: &AlertRule,
    alert: Alert,
    now: Timestamp,
    announcements: &mut Announcements,
) -> StoreResult<()> {
    alerts::insert(tx, account, &alert).await?;
    let notifies = rules::claim_notification(tx, rule, now).await?;
    let entry = alert_engine(account)
        .did(Action::AlertFire, &alert)
        .after(&alert)
        .metadata(json!({"rule_id": rule.id, "notified": notifies}));
    tx.record(entry).await?;
    if notifies {
        announce(tx, account, &alert, &rule.channel_ids, now, announcements).await?;
    }
    Ok(())
}

/// Moves an alert to `to` (from the states that allow it) and announces the move; false if
/// the alert was not in such a state.
pub async fn change_state(
    tx: &mut Tx,
    account: Id<Account>,
    alert: &Alert,
    to: AlertState,
    by: Option<Id<spog_core::model::User>>,
    now: Timestamp,
    announcements: &mut Announcements,
) -> StoreResult<bool> {
    let from: &[AlertState] = match to {
        AlertState::Acknowledged => &[AlertState::Firing],
        AlertState::Resolved => &[AlertState::Firing, AlertState::Acknowledged],
        AlertState::Firing => &[],
    };
    if !alerts::transition(tx, account, alert.id, from, to, by, now).await? {
        return Ok(false);
    }
    let changed = alerts::get(tx, account, alert.id).await?;
    let channels = match changed.rule_id {
        Some(rule) => rules::get(tx, account, rule)
            .await
            .map(|r| r.channel_ids)
            .unwrap_or_default(),
        None => Vec::new(),
    };
    announce(tx, account, &changed, &channels, now, announcements).await?;
    Ok(true)
}

/// The `alert.*` event of the alert's state (and so its webhooks), its channels' deliveries,
/// and in-app notifications for the people who watch monitoring.
async fn announce(
    tx: &mut Tx,
    account: Id<Account>,
    alert: &Alert,
    channels: &[String],
    now: Timestamp,
    announcements: &mut Announcements,
) -> StoreResult<()> {
    let event_type = alert.state.event_type();
    let event = NewEvent {
        account,
        organization: alert.organization_id,
        event_type,
        occurred_at: now,
        data: alert.event_data(now).to_string(),
        idempotency_key: None,
    };
    let published = Box::pin(publish_event(tx, event, now, announcements)).await?;
    if let Published::New { event, .. } = published {
        let targets = spog_store::channels::of_organization(
            tx,
            account,
            alert.organization_id,
            channels,
            true,
        )
        .await?;
        deliveries::enqueue(
            tx,
            account,
            alert.organization_id,
            event,
            event_type,
            TargetKind::Channel,
            &targets,
            now,
        )
        .await?;
    }
    let title = format!(
        "[{}] {} — {}",
        alert.severity.as_str().to_uppercase(),
        alert.rule_name,
        alert.state.as_str()
    );
    let link = format!("/alerts/{}", alert.id);
    notify_monitors(
        tx,
        account,
        Category::Alert,
        alert.severity,
        &title,
        &alert.summary,
        Some(link),
        announcements,
    )
    .await?;
    let dashboard = Dashboard {
        topic: "alerts".to_owned(),
        data: json!({"alert_id": alert.id, "state": alert.state}),
    };
    announcements
        .events
        .push(BusEvent::Dashboard { account, dashboard });
    Ok(())
}

/// One notification per user of the account who holds `monitoring.view`.
#[allow(clippy::too_many_arguments)]
async fn notify_monitors(
    tx: &mut Tx,
    account: Id<Account>,
    category: Category,
    severity: Severity,
    title: &str,
    message: &str,
    link: Option<String>,
    announcements: &mut Announcements,
) -> StoreResult<()> {
    let title: String = title.chars().take(200).collect();
    let message: String = message.chars().take(4000).collect();
    for user in users::ids_with_permission(tx, account, Permission::MonitoringView).await? {
        let new = notifications::NewNotification {
            user: Some(user),
            category,
            severity,
            title: title.clone(),
            message: message.clone(),
            link: link.clone(),
        };
        let notification = notifications::create(tx, account, new, Timestamp::now()).await?;
        announcements.events.push(BusEvent::Notification {
            account,
            notification: notification.id,
        });
    }
    Ok(())
}

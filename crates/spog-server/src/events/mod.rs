//! "An event happened": the one entry point (DESIGN, events fan out in one place). Every
//! publisher — `POST /events`, heartbeats, host liveness, the alert engine — calls
//! [`publish`], which in the publisher's transaction stores the event (once per idempotency
//! key), enqueues a delivery for each webhook subscribed to its type and each channel it
//! names, fires the event rules it matches and creates the in-app notifications it calls
//! for. What browsers must hear is collected as [`Announcements`] and sent after the
//! transaction commits. The store keeps only the rows.

mod announcements;
mod group;
mod notify;

pub use announcements::Announcements;
pub use group::{GroupPublisher, Publication, PublishError};
pub use notify::{Notice, notify_holders};

use serde_json::{Value, json};
use spog_core::delivery::{Delivery, TargetKind};
use spog_core::events::{Event, EventType};
use spog_core::model::{Account, Host, Organization};
use spog_core::{Id, Timestamp};
use spog_store::alerting::{alerts, rules};
use spog_store::events::EventRecord;
use spog_store::{StoreResult, Tx, channels, deliveries, events, webhooks};
use tracing::Span;
use tracing::field::Empty;

use crate::alerting;

/// Something that happened, about to be published.
#[derive(Clone, Debug)]
pub struct NewEvent {
    pub account: Id<Account>,
    pub organization: Id<Organization>,
    pub event_type: EventType,
    pub occurred_at: Timestamp,
    /// A JSON object.
    pub data: Value,
    /// A repeated key publishes nothing again.
    pub idempotency_key: Option<String>,
    /// Notification channels of the organization the event also goes to, besides the
    /// webhooks subscribed to its type (an alert's rule names them).
    pub channels: Vec<String>,
    /// The in-app notification its publisher words for it; else the one its type calls for.
    pub notice: Option<Notice>,
}

impl NewEvent {
    pub fn new(
        account: Id<Account>,
        organization: Id<Organization>,
        event_type: EventType,
        occurred_at: Timestamp,
        data: Value,
    ) -> Self {
        Self {
            account,
            organization,
            event_type,
            occurred_at,
            data,
            idempotency_key: None,
            channels: Vec::new(),
            notice: None,
        }
    }

    /// An event about a host (`host.online`, `host.offline`), with the host's names.
    pub fn about_host(
        account: Id<Account>,
        event_type: EventType,
        host: &Host,
        occurred_at: Timestamp,
    ) -> Self {
        let data = json!({"host_id": host.id, "hostname": host.hostname, "name": host.name});
        Self::new(account, host.organization_id, event_type, occurred_at, data)
    }

    pub fn idempotency_key(mut self, key: Option<String>) -> Self {
        self.idempotency_key = key;
        self
    }

    pub fn to_channels(mut self, channels: &[String]) -> Self {
        self.channels = channels.to_vec();
        self
    }

    pub fn notice(mut self, notice: Notice) -> Self {
        self.notice = Some(notice);
        self
    }
}

/// What publishing did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Published {
    /// A new event and the deliveries it fanned out to.
    New {
        event: Id<Event>,
        deliveries: Vec<Id<Delivery>>,
    },
    /// The idempotency key was used before: the first event, nothing published again.
    Repeated { event: Id<Event> },
}

impl Published {
    pub fn event(&self) -> Id<Event> {
        match self {
            Published::New { event, .. } | Published::Repeated { event } => *event,
        }
    }
}

/// Publishes an event with all it fans out to, in `tx`. A concurrent publisher of the same
/// idempotency key makes this fail with a conflict; retrying the whole transaction then
/// finds the first event.
#[tracing::instrument(name = "events::publish", skip_all, fields(account = %event.account,
    organization = %event.organization, event_type = %event.event_type, event = Empty))]
pub async fn publish(
    tx: &mut Tx,
    event: NewEvent,
    now: Timestamp,
    announcements: &mut Announcements,
) -> StoreResult<Published> {
    let (account, organization, event_type) = (event.account, event.organization, event.event_type);
    if let Some(key) = &event.idempotency_key
        && let Some(first) = events::by_idempotency_key(tx, account, key).await?
    {
        return Ok(Published::Repeated { event: first });
    }
    let data = event.data.to_string();
    let record = EventRecord {
        account,
        organization,
        event_type,
        occurred_at: event.occurred_at,
        data: &data,
        idempotency_key: event.idempotency_key.as_deref(),
    };
    let id = events::insert(tx, &record, now).await?;
    Span::current().record("event", tracing::field::display(id));
    let mut deliveries = enqueue(tx, &event, id, TargetKind::Webhook, now).await?;
    deliveries.extend(enqueue(tx, &event, id, TargetKind::Channel, now).await?);
    if !deliveries.is_empty() {
        announcements.touch(account, "deliveries");
    }
    if matches!(event_type, EventType::HostOnline | EventType::HostOffline) {
        announcements.touch(account, "hosts");
    }
    fire_event_rules(tx, &event, id, now, announcements).await?;
    if let Some(notice) = event
        .notice
        .or_else(|| notify::failure(event_type, &event.data))
    {
        notify::notify_monitors(tx, account, &notice, announcements).await?;
    }
    Ok(Published::New {
        event: id,
        deliveries,
    })
}

/// One delivery per webhook of the organization subscribed to the event's type, or per
/// enabled channel of it the event names.
async fn enqueue(
    tx: &mut Tx,
    event: &NewEvent,
    id: Id<Event>,
    kind: TargetKind,
    now: Timestamp,
) -> StoreResult<Vec<Id<Delivery>>> {
    let (account, organization) = (event.account, event.organization);
    let targets: Vec<String> = match kind {
        TargetKind::Webhook => webhooks::subscribed(tx, account, organization, event.event_type)
            .await?
            .iter()
            .map(ToString::to_string)
            .collect(),
        TargetKind::Channel => {
            channels::of_organization(tx, account, organization, &event.channels, true).await?
        }
    };
    deliveries::enqueue(
        tx,
        account,
        organization,
        id,
        event.event_type,
        kind,
        &targets,
        now,
    )
    .await
}

/// Fires each enabled event rule of the organization the event matches. Alerts never
/// trigger event rules, so an alert can never set off another.
async fn fire_event_rules(
    tx: &mut Tx,
    event: &NewEvent,
    id: Id<Event>,
    now: Timestamp,
    announcements: &mut Announcements,
) -> StoreResult<()> {
    let event_type = event.event_type;
    if matches!(
        event_type,
        EventType::AlertFired | EventType::AlertResolved | EventType::AlertAcknowledged
    ) {
        return Ok(());
    }
    for rule in rules::enabled(tx, event.account, event.organization, "event").await? {
        if rule.condition.matches_event(event_type, &event.data) {
            let summary = format!(
                "{} on {}",
                event_type.as_str(),
                notify::subject(&event.data)
            );
            let mut alert = alerts::firing(&rule, summary, now);
            alert.source_event_id = Some(id.to_string());
            alerting::fire(tx, event.account, &rule, alert, now, announcements).await?;
        }
    }
    Ok(())
}

//! Carries real-time events to the hubs of every instance. On PostgreSQL an event is a
//! `NOTIFY` that every instance (this one included) hears on its `LISTEN` connection; on
//! SQLite there is one instance and events go straight to its hub. Events are only wake-ups
//! for browsers: what they announce is already in the database, and a client that missed
//! one catches up when it reconnects.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use serde_json::json;
use tokio::sync::Notify;

use serde::{Deserialize, Serialize};
use spog_core::Id;
use spog_core::model::{Account, Host, HostAgent, User};
use spog_core::notification::Notification;
use spog_core::recordings::TerminalRecording;
use spog_store::{Backend, Store, signals};
use tokio_util::sync::CancellationToken;

use super::agents::AgentSockets;
use super::sockets::{self, Revocation, Sockets};
use super::{Dashboard, Hub};
use crate::auth::AuthCache;
use crate::terminal::Relays;

const CHANNEL: &str = "spog_bus";

/// The shortest gap between two coalesced dashboard messages.
const COALESCE: Duration = Duration::from_secs(1);

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum BusEvent {
    Notification {
        account: Id<Account>,
        notification: Id<Notification>,
    },
    UnreadCount {
        account: Id<Account>,
        user: Id<User>,
        count: i64,
    },
    Dashboard {
        account: Id<Account>,
        dashboard: Dashboard,
    },
    /// Credentials ended: their sockets close and every instance forgets them at once.
    Revoked {
        account: Id<Account>,
        revocation: Revocation,
    },
    /// Roles or permissions changed: open sockets take their credentials' rights again.
    RightsChanged { account: Id<Account> },
    /// A host's agent connected: its other connections, on any instance, are replaced.
    AgentConnected { host: Id<Host>, connection: String },
    /// A terminal session ended on record: its relay, on whichever instance, hangs up.
    TerminalEnded { recording: Id<TerminalRecording> },
}

/// A change to who may do what, announced with [`Bus::credentials_changed`].
#[derive(Clone, Copy, Debug)]
pub enum CredentialChange {
    Revoked(Revocation),
    RightsChanged,
}

/// How often every open socket's credential is looked up again, whatever was announced:
/// catches what a lost announcement (a listener reconnecting) or an expiry did not say.
const RECHECK_EVERY: Duration = Duration::from_secs(10);

#[derive(Clone)]
pub struct Bus {
    store: Store,
    pub hub: Arc<Hub>,
    touched: Arc<Touched>,
    /// Every open WebSocket of this instance, with its credential.
    pub sockets: Arc<Sockets>,
    auth_cache: Arc<AuthCache>,
    /// The agent sockets of this instance.
    pub agents: Arc<AgentSockets>,
    /// The web terminals relayed by this instance.
    pub relays: Arc<Relays>,
    /// Audit entries were linked, on any instance: audit streams have more to send.
    pub audit_linked: Arc<Notify>,
}

/// Dashboard topics whose data changed, by account, not yet announced.
#[derive(Default)]
struct Touched {
    marks: Mutex<HashSet<(Id<Account>, &'static str)>>,
    wake: Notify,
}

impl Bus {
    pub fn new(store: Store, sockets: Arc<Sockets>, auth_cache: Arc<AuthCache>) -> Self {
        Self {
            store,
            hub: Arc::new(Hub::default()),
            touched: Arc::default(),
            sockets,
            auth_cache,
            agents: Arc::default(),
            relays: Arc::default(),
            audit_linked: Arc::default(),
        }
    }

    /// The one way to say that credentials ended or rights changed, after the change commits:
    /// this instance forgets its cached callers at once, and every instance (this one
    /// included) closes the sockets of ended credentials and re-checks the others' rights.
    pub async fn credentials_changed(&self, account: Id<Account>, change: CredentialChange) {
        self.auth_cache.clear();
        let event = match change {
            CredentialChange::Revoked(revocation) => BusEvent::Revoked {
                account,
                revocation,
            },
            CredentialChange::RightsChanged => BusEvent::RightsChanged { account },
        };
        self.publish(event).await;
    }

    /// A host's agent credential ended (revoked, replaced or its host deleted), if it had one:
    /// its socket is closed (4401) on whichever instance holds it.
    pub async fn agent_revoked(&self, account: Id<Account>, credential: Option<Id<HostAgent>>) {
        if let Some(id) = credential {
            let revocation = Revocation::Agent { id };
            self.credentials_changed(account, CredentialChange::Revoked(revocation))
                .await;
        }
    }

    /// Re-checks every open socket's credential every [`RECHECK_EVERY`] until shutdown.
    pub fn spawn_rechecker(&self, shutdown: CancellationToken) -> tokio::task::JoinHandle<()> {
        let bus = self.clone();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = tokio::time::sleep(RECHECK_EVERY) => {}
                }
                sockets::recheck(&bus.store, &bus.sockets, None).await;
            }
        })
    }

    fn spawn_recheck(&self, account: Option<Id<Account>>) {
        let bus = self.clone();
        tokio::spawn(async move { sockets::recheck(&bus.store, &bus.sockets, account).await });
    }

    /// Says that data of a dashboard `topic` changed, for changes that come in floods
    /// (deliveries move thousands of times a second): the `dashboard` message is sent by
    /// [`Bus::spawn_coalescer`] at most once a second per account and topic. Call it after
    /// the change commits.
    pub fn touch(&self, account: Id<Account>, topic: &'static str) {
        if self.touched.marks.lock().insert((account, topic)) {
            self.touched.wake.notify_one();
        }
    }

    /// Sends the dashboard messages of [`Bus::touch`] until shutdown: at once for the first
    /// change after a quiet second, then at most once a second.
    pub fn spawn_coalescer(&self, shutdown: CancellationToken) -> tokio::task::JoinHandle<()> {
        let bus = self.clone();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = bus.touched.wake.notified() => {}
                }
                let marks = std::mem::take(&mut *bus.touched.marks.lock());
                for (account, topic) in marks {
                    let dashboard = Dashboard {
                        topic: topic.to_owned(),
                        data: json!({}),
                    };
                    bus.publish(BusEvent::Dashboard { account, dashboard })
                        .await;
                }
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = tokio::time::sleep(COALESCE) => {}
                }
            }
        })
    }

    /// Announces an event to every instance. Call it after the change it announces commits.
    pub async fn publish(&self, event: BusEvent) {
        match self.store.backend() {
            Backend::Postgres => {
                let payload = serde_json::to_string(&event).expect("serialising an event");
                if let Err(error) = signals::notify(&self.store, CHANNEL, &payload).await {
                    tracing::warn!(%error, "publishing a real-time event");
                }
            }
            Backend::Sqlite => self.deliver(event).await,
        }
    }

    /// Hands an event to this instance's hub.
    async fn deliver(&self, event: BusEvent) {
        match event {
            BusEvent::Notification {
                account,
                notification,
            } => {
                let found = async {
                    let mut conn = self.store.conn().await?;
                    spog_store::notifications::by_id(&mut conn, account, notification).await
                };
                match found.await {
                    Ok(notification) => self.hub.notification(account, Arc::new(notification)),
                    Err(error) => tracing::warn!(%error, "loading an announced notification"),
                }
            }
            BusEvent::UnreadCount {
                account,
                user,
                count,
            } => self.hub.unread_count(account, user, count),
            BusEvent::Dashboard { account, dashboard } => {
                if dashboard.topic == "audit" {
                    self.audit_linked.notify_one();
                }
                self.hub.dashboard(account, dashboard)
            }
            BusEvent::Revoked {
                account,
                revocation,
            } => {
                self.auth_cache.clear();
                self.sockets.revoke(account, &revocation);
                self.agents.revoke(account, &revocation);
            }
            BusEvent::AgentConnected { host, connection } => {
                self.agents.replaced(host, &connection);
            }
            BusEvent::TerminalEnded { recording } => self.relays.ended(recording),
            BusEvent::RightsChanged { account } => {
                self.auth_cache.clear();
                self.spawn_recheck(Some(account));
            }
        }
    }

    /// On PostgreSQL, listens for events of all instances until shutdown.
    pub fn spawn_listener(
        &self,
        shutdown: CancellationToken,
    ) -> Option<tokio::task::JoinHandle<()>> {
        if self.store.backend() != Backend::Postgres {
            return None;
        }
        let bus = self.clone();
        Some(tokio::spawn(async move {
            while !shutdown.is_cancelled() {
                if let Err(error) = bus.listen(&shutdown).await {
                    tracing::warn!(%error, "real-time listener lost its connection; reconnecting");
                    tokio::select! {
                        _ = shutdown.cancelled() => {}
                        _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                    }
                }
            }
        }))
    }

    async fn listen(&self, shutdown: &CancellationToken) -> spog_store::StoreResult<()> {
        let mut listener = signals::Listener::connect(&self.store, CHANNEL).await?;
        // Revocations announced while no listener was connected were missed.
        self.auth_cache.clear();
        self.spawn_recheck(None);
        loop {
            let payload = tokio::select! {
                _ = shutdown.cancelled() => return Ok(()),
                received = listener.recv() => received?,
            };
            match serde_json::from_str::<BusEvent>(&payload) {
                Ok(event) => self.deliver(event).await,
                Err(error) => tracing::warn!(%error, "an unreadable real-time event"),
            }
        }
    }
}

//! The real-time hub (SPEC 6.1): every open WebSocket of this instance, by account. Events
//! reach it through the [`bus`], which with PostgreSQL carries them between instances.
//! Delivery never waits for a client: each connection has a small queue, and a connection
//! whose queue is full is dropped rather than allowed to slow the others.

pub mod agents;
pub mod bus;
mod socket;
pub mod sockets;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use parking_lot::RwLock;
use serde::{Deserialize, Serialize};
use spog_core::model::{Account, User};
use spog_core::notification::Notification;
use spog_core::{Id, Permission};
use tokio::sync::mpsc;

pub use socket::{POLICY_VIOLATION, refuse, serve_socket};

use sockets::Live;

/// Messages queued per connection before it counts as too slow.
const QUEUE: usize = 64;

/// What the hub hands to one connection.
#[derive(Clone, Debug)]
pub enum Push {
    Notification(Arc<Notification>),
    UnreadCount(i64),
    Dashboard(Arc<Dashboard>),
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Dashboard {
    pub topic: String,
    pub data: serde_json::Value,
}

impl Dashboard {
    /// Who may see a topic. Everyone sees the hosts they may see (so the counts differ per
    /// viewer, and the message only says they changed).
    fn permission(&self) -> Option<Permission> {
        match self.topic.as_str() {
            "audit" => Some(Permission::AuditLogsView),
            "sessions" => Some(Permission::SessionRecordingsView),
            "hosts" => None,
            _ => Some(Permission::MonitoringView),
        }
    }
}

struct Connection {
    id: u64,
    /// The socket's credential: its user, and its permissions as they are now.
    live: Arc<Live>,
    queue: mpsc::Sender<Push>,
}

#[derive(Default)]
pub struct Hub {
    accounts: RwLock<HashMap<Id<Account>, Vec<Connection>>>,
    next_id: AtomicU64,
    /// The server is stopping: no connection stays or joins.
    closing: AtomicBool,
}

/// A registered connection; unregisters itself when dropped.
pub struct Registration {
    hub: Arc<Hub>,
    account: Id<Account>,
    id: u64,
    pub pushes: mpsc::Receiver<Push>,
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.hub.remove(self.account, self.id);
    }
}

impl Hub {
    pub fn register(self: &Arc<Self>, live: Arc<Live>) -> Registration {
        let account = live.account;
        let (queue, pushes) = mpsc::channel(QUEUE);
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let mut accounts = self.accounts.write();
        // While closing, the queue is dropped at once and the connection ends as it starts.
        if !self.is_closing() {
            accounts
                .entry(account)
                .or_default()
                .push(Connection { id, live, queue });
        }
        drop(accounts);
        Registration {
            hub: self.clone(),
            account,
            id,
            pushes,
        }
    }

    fn remove(&self, account: Id<Account>, id: u64) {
        let mut accounts = self.accounts.write();
        if let Some(connections) = accounts.get_mut(&account) {
            connections.retain(|c| c.id != id);
            if connections.is_empty() {
                accounts.remove(&account);
            }
        }
    }

    /// Ends every connection (each socket closes with "going away", so browsers reconnect,
    /// to another instance or to this one restarted) and refuses new ones: the server stops.
    /// Upgraded sockets are not part of the HTTP server's graceful shutdown.
    pub fn close_all(&self) {
        let mut accounts = self.accounts.write();
        self.closing.store(true, Ordering::SeqCst);
        accounts.clear();
    }

    pub fn is_closing(&self) -> bool {
        self.closing.load(Ordering::SeqCst)
    }

    pub fn connections(&self) -> usize {
        self.accounts.read().values().map(Vec::len).sum()
    }

    /// Queues `push` for the account's connections that `wants` it; drops any that are full.
    fn push(&self, account: Id<Account>, wants: impl Fn(&Connection) -> bool, push: Push) {
        let mut slow = Vec::new();
        if let Some(connections) = self.accounts.read().get(&account) {
            for connection in connections.iter().filter(|c| wants(c)) {
                if connection.queue.try_send(push.clone()).is_err() {
                    slow.push(connection.id);
                }
            }
        }
        for id in slow {
            tracing::info!(
                connection = id,
                "dropping a WebSocket that does not keep up"
            );
            self.remove(account, id);
        }
    }

    pub fn notification(&self, account: Id<Account>, notification: Arc<Notification>) {
        let target = notification.user_id;
        self.push(
            account,
            |c| target.is_none() || c.live.user.is_some() && c.live.user == target,
            Push::Notification(notification),
        );
    }

    pub fn unread_count(&self, account: Id<Account>, user: Id<User>, count: i64) {
        self.push(
            account,
            |c| c.live.user == Some(user),
            Push::UnreadCount(count),
        );
    }

    pub fn dashboard(&self, account: Id<Account>, dashboard: Dashboard) {
        let permission = dashboard.permission();
        self.push(
            account,
            |c| permission.is_none_or(|p| c.live.permissions().contains(p)),
            Push::Dashboard(Arc::new(dashboard)),
        );
    }
}

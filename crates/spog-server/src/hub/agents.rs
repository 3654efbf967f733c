//! The agent sockets this instance holds (SPEC 12.3), one per host. A socket is told to close
//! when its credential ends (4401), when another connection of the same host replaces it on
//! this or any instance (4409), or when the server stops (1001).

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::Mutex;
use spog_core::Id;
use spog_core::model::{Account, Host, HostAgent};
use spog_protocol::close;
use tokio_util::sync::CancellationToken;

use super::sockets::{CREDENTIAL_ENDED, Revocation};
use crate::terminal::AgentLink;

/// Why an agent socket must close: the close code and reason.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CloseWith {
    pub code: u16,
    pub reason: &'static str,
}

pub const REVOKED: CloseWith = CloseWith {
    code: close::CREDENTIAL_REFUSED,
    reason: CREDENTIAL_ENDED,
};
pub const REPLACED: CloseWith = CloseWith {
    code: close::REPLACED,
    reason: "another connection of this host replaced this one",
};
pub const SHUTTING_DOWN: CloseWith = CloseWith {
    code: close::GOING_AWAY,
    reason: "the server is shutting down",
};

/// Shared between the registry and the socket's task.
pub struct Ending {
    token: CancellationToken,
    why: Mutex<CloseWith>,
}

impl Ending {
    fn new() -> Self {
        Self {
            token: CancellationToken::new(),
            why: Mutex::new(SHUTTING_DOWN),
        }
    }

    /// Tells the socket to close; the first reason given wins.
    pub fn end(&self, why: CloseWith) {
        let mut current = self.why.lock();
        if !self.token.is_cancelled() {
            *current = why;
            self.token.cancel();
        }
    }

    /// Waits until the socket must close; returns why.
    pub async fn ended(&self) -> CloseWith {
        self.token.cancelled().await;
        *self.why.lock()
    }
}

struct Held {
    account: Id<Account>,
    credential: Id<HostAgent>,
    connection: String,
    ending: Arc<Ending>,
    link: Arc<AgentLink>,
}

#[derive(Default)]
pub struct AgentSockets {
    open: Mutex<HashMap<Id<Host>, Held>>,
    closing: std::sync::atomic::AtomicBool,
}

/// A registered agent socket; leaves the registry when dropped.
pub struct AgentLease {
    sockets: Arc<AgentSockets>,
    host: Id<Host>,
    connection: String,
    pub ending: Arc<Ending>,
}

impl Drop for AgentLease {
    fn drop(&mut self) {
        let mut open = self.sockets.open.lock();
        if open
            .get(&self.host)
            .is_some_and(|held| held.connection == self.connection)
        {
            open.remove(&self.host);
        }
    }
}

impl AgentSockets {
    /// Registers the host's new connection; a connection of the host this instance held
    /// before is replaced (4409).
    pub fn register(
        self: &Arc<Self>,
        account: Id<Account>,
        host: Id<Host>,
        credential: Id<HostAgent>,
        connection: &str,
        link: Arc<AgentLink>,
    ) -> AgentLease {
        let ending = Arc::new(Ending::new());
        if self.closing.load(std::sync::atomic::Ordering::SeqCst) {
            ending.end(SHUTTING_DOWN);
        }
        let held = Held {
            account,
            credential,
            connection: connection.to_owned(),
            ending: ending.clone(),
            link,
        };
        if let Some(before) = self.open.lock().insert(host, held) {
            before.ending.end(REPLACED);
        }
        AgentLease {
            sockets: self.clone(),
            host,
            connection: connection.to_owned(),
            ending,
        }
    }

    /// Another instance (or this one) took the host's connection: any other connection of
    /// the host here closes (4409).
    pub fn replaced(&self, host: Id<Host>, connection: &str) {
        if let Some(held) = self.open.lock().get(&host)
            && held.connection != connection
        {
            held.ending.end(REPLACED);
        }
    }

    /// Closes the sockets of an agent credential that ended (4401); returns how many.
    pub fn revoke(&self, account: Id<Account>, revocation: &Revocation) -> usize {
        let Revocation::Agent { id } = revocation else {
            return 0;
        };
        let open = self.open.lock();
        let mut ended = 0;
        for held in open.values() {
            if held.account == account && held.credential == *id {
                held.ending.end(REVOKED);
                ended += 1;
            }
        }
        ended
    }

    /// The server stops: every agent socket closes (1001) and none is admitted any more.
    pub fn close_all(&self) {
        self.closing
            .store(true, std::sync::atomic::Ordering::SeqCst);
        for held in self.open.lock().values() {
            held.ending.end(SHUTTING_DOWN);
        }
    }

    /// The terminal link of the host's agent if this instance holds its connection.
    pub fn link(&self, account: Id<Account>, host: Id<Host>) -> Option<Arc<AgentLink>> {
        let open = self.open.lock();
        let held = open.get(&host)?;
        (held.account == account).then(|| held.link.clone())
    }

    pub fn count(&self) -> usize {
        self.open.lock().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn link(host: Id<Host>) -> Arc<AgentLink> {
        AgentLink::new(host, &Default::default()).0
    }

    #[tokio::test]
    async fn a_second_connection_of_a_host_replaces_the_first() {
        let sockets = Arc::new(AgentSockets::default());
        let (account, host, credential) = (Id::new(), Id::new(), Id::new());
        let first = sockets.register(account, host, credential, "one", link(host));
        let second = sockets.register(account, host, credential, "two", link(host));
        assert_eq!(first.ending.ended().await, REPLACED);
        drop(first);
        assert_eq!(sockets.count(), 1, "the first leaving keeps the second");
        sockets.replaced(host, "three");
        assert_eq!(second.ending.ended().await, REPLACED);
    }

    #[tokio::test]
    async fn revoking_an_agent_credential_closes_its_socket_only() {
        let sockets = Arc::new(AgentSockets::default());
        let account = Id::new();
        let (credential, other) = (Id::new(), Id::new());
        let (one, two) = (Id::new(), Id::new());
        let revoked = sockets.register(account, one, credential, "a", link(one));
        let kept = sockets.register(account, two, other, "b", link(two));
        let ended = sockets.revoke(account, &Revocation::Agent { id: credential });
        assert_eq!(ended, 1);
        assert_eq!(revoked.ending.ended().await, REVOKED);
        assert!(!kept.ending.token.is_cancelled());
    }
}

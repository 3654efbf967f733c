//! Every open WebSocket of this instance (notifications, recording streams, playback) with
//! the credential it was opened with. A socket is admitted only within the caps per
//! credential and per account (429 otherwise), holds a [`SocketLease`] while open, and is
//! told to close (1008) when its credential ends or loses the permission the socket needs:
//! at once when an instance announces it on the bus, and at the latest at the next
//! [`recheck`], which looks every open socket's credential up again.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use parking_lot::{Mutex, RwLock};
use serde::{Deserialize, Serialize};
use spog_core::model::{Account, ApiToken, HostAgent, User};
use spog_core::{Id, Permission, PermissionSet, Timestamp};
use spog_store::Store;
use spog_store::identity::sessions::Session;
use tokio_util::sync::CancellationToken;

use crate::auth::{Credential, Principal, principal_again};
use crate::error::ApiError;

/// Why a socket is closed when its credential ends.
pub const CREDENTIAL_ENDED: &str = "the credential has ended";
/// Why a socket is closed when its user loses the permission it needs.
pub const PERMISSION_LOST: &str = "the permission this connection needs was taken away";
/// How long a refused upgrade is told to wait.
const COME_BACK: Duration = Duration::from_secs(5);

/// A credential, by id: what a socket was opened with.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CredentialId {
    Session(Id<Session>),
    ApiToken(Id<ApiToken>),
    Agent(Id<HostAgent>),
}

impl From<&Credential> for CredentialId {
    fn from(credential: &Credential) -> Self {
        match credential {
            Credential::Session { id, .. } => CredentialId::Session(*id),
            Credential::ApiToken(id) => CredentialId::ApiToken(*id),
            Credential::Agent { id, .. } => CredentialId::Agent(*id),
        }
    }
}

/// Credentials that ended, as announced to every instance.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "ended", rename_all = "snake_case")]
pub enum Revocation {
    Session {
        id: Id<Session>,
    },
    ApiToken {
        id: Id<ApiToken>,
    },
    /// Every credential acting as the user: sessions and `user` tokens, but the session
    /// `kept` (the one a user changed their own password with).
    User {
        id: Id<User>,
        #[serde(default)]
        kept: Option<Id<Session>>,
    },
    /// A host's agent credential (revoked, replaced by a new enrollment, or its host deleted).
    Agent {
        id: Id<HostAgent>,
    },
}

/// One open socket, as the registry and the socket's own task share it.
pub struct Live {
    pub account: Id<Account>,
    pub user: Option<Id<User>>,
    pub credential: CredentialId,
    /// The permission the socket needs to stay open, if any.
    pub needs: Option<Permission>,
    permissions: RwLock<PermissionSet>,
    ended: CancellationToken,
    reason: Mutex<&'static str>,
}

impl Live {
    /// The credential's permissions now (they follow role changes).
    pub fn permissions(&self) -> PermissionSet {
        *self.permissions.read()
    }

    fn end(&self, reason: &'static str) {
        let mut current = self.reason.lock();
        if !self.ended.is_cancelled() {
            *current = reason;
            self.ended.cancel();
        }
    }

    fn matches(&self, account: Id<Account>, revocation: &Revocation) -> bool {
        self.account == account
            && match revocation {
                Revocation::Session { id } => self.credential == CredentialId::Session(*id),
                Revocation::ApiToken { id } => self.credential == CredentialId::ApiToken(*id),
                Revocation::User { id, kept } => {
                    self.user == Some(*id)
                        && kept.is_none_or(|kept| self.credential != CredentialId::Session(kept))
                }
                Revocation::Agent { id } => self.credential == CredentialId::Agent(*id),
            }
    }

    /// Takes a fresh look at the credential: new permissions, or the end of the socket.
    fn refresh(&self, permissions: PermissionSet) {
        *self.permissions.write() = permissions;
        if self.needs.is_some_and(|p| !permissions.contains(p)) {
            self.end(PERMISSION_LOST);
        }
    }
}

/// An admitted socket's place in the registry; gives it back when dropped.
pub struct SocketLease {
    live: Arc<Live>,
    sockets: Arc<Sockets>,
    id: u64,
}

impl SocketLease {
    pub fn live(&self) -> &Arc<Live> {
        &self.live
    }

    /// Waits until the socket must close; returns why.
    pub async fn ended(&self) -> &'static str {
        self.live.ended.cancelled().await;
        *self.live.reason.lock()
    }
}

impl Drop for SocketLease {
    fn drop(&mut self) {
        self.sockets.remove(self.id);
    }
}

#[derive(Default)]
struct Open {
    sockets: HashMap<u64, Arc<Live>>,
    by_credential: HashMap<CredentialId, usize>,
    by_account: HashMap<Id<Account>, usize>,
}

pub struct Sockets {
    per_credential: usize,
    per_account: usize,
    open: Mutex<Open>,
    next_id: AtomicU64,
}

fn decrement<K: std::hash::Hash + Eq>(counts: &mut HashMap<K, usize>, key: &K) {
    if let Some(count) = counts.get_mut(key) {
        *count -= 1;
        if *count == 0 {
            counts.remove(key);
        }
    }
}

impl Sockets {
    pub fn new(per_credential: usize, per_account: usize) -> Self {
        Self {
            per_credential,
            per_account,
            open: Mutex::default(),
            next_id: AtomicU64::new(0),
        }
    }

    /// Admits a socket of `principal` that needs `needs` to stay open, or refuses it (429)
    /// when its credential or its account already has as many open as allowed.
    pub fn admit(
        self: &Arc<Self>,
        principal: &Principal,
        needs: Option<Permission>,
    ) -> Result<SocketLease, ApiError> {
        let credential = CredentialId::from(&principal.credential);
        let mut open = self.open.lock();
        let of_credential = open.by_credential.get(&credential).copied().unwrap_or(0);
        let of_account = open
            .by_account
            .get(&principal.account)
            .copied()
            .unwrap_or(0);
        if of_credential >= self.per_credential || of_account >= self.per_account {
            return Err(ApiError::RateLimited(COME_BACK));
        }
        let live = Arc::new(Live {
            account: principal.account,
            user: principal.user,
            credential,
            needs,
            permissions: RwLock::new(principal.permissions),
            ended: CancellationToken::new(),
            reason: Mutex::new(CREDENTIAL_ENDED),
        });
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        open.sockets.insert(id, live.clone());
        *open.by_credential.entry(credential).or_default() += 1;
        *open.by_account.entry(principal.account).or_default() += 1;
        Ok(SocketLease {
            live,
            sockets: self.clone(),
            id,
        })
    }

    fn remove(&self, id: u64) {
        let mut open = self.open.lock();
        if let Some(live) = open.sockets.remove(&id) {
            decrement(&mut open.by_credential, &live.credential);
            decrement(&mut open.by_account, &live.account);
        }
    }

    /// Closes the sockets of credentials that ended; returns how many.
    pub fn revoke(&self, account: Id<Account>, revocation: &Revocation) -> usize {
        let open = self.open.lock();
        let mut ended = 0;
        for live in open.sockets.values() {
            if live.matches(account, revocation) {
                live.end(CREDENTIAL_ENDED);
                ended += 1;
            }
        }
        ended
    }

    pub fn count(&self) -> usize {
        self.open.lock().sockets.len()
    }

    /// The open sockets, of one account or all, grouped by credential.
    fn by_credential(
        &self,
        account: Option<Id<Account>>,
    ) -> HashMap<(Id<Account>, CredentialId), Vec<Arc<Live>>> {
        let open = self.open.lock();
        let mut grouped: HashMap<_, Vec<_>> = HashMap::new();
        for live in open.sockets.values() {
            if account.is_none_or(|a| a == live.account) {
                grouped
                    .entry((live.account, live.credential))
                    .or_default()
                    .push(live.clone());
            }
        }
        grouped
    }
}

/// Looks up the credential of every open socket (of `account`, or all) again: a socket
/// whose credential ended is closed, the others take its permissions as they are now (and
/// close if they lost the one they need). One lookup per credential; a lookup that fails
/// for another reason (the database is away) leaves its sockets as they are.
pub async fn recheck(store: &Store, sockets: &Sockets, account: Option<Id<Account>>) {
    let now = Timestamp::now();
    for ((account, credential), lives) in sockets.by_credential(account) {
        match principal_again(store, account, credential, now).await {
            Ok(principal) => {
                for live in lives {
                    live.refresh(principal.permissions);
                }
            }
            Err(ApiError::Unauthenticated(_)) => {
                for live in lives {
                    live.end(CREDENTIAL_ENDED);
                }
            }
            Err(error) => tracing::warn!(%error, "looking up an open socket's credential"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use spog_core::audit::ActorType;

    fn principal(account: Id<Account>, user: Id<User>, session: Id<Session>) -> Principal {
        Principal {
            account,
            actor_type: ActorType::User,
            actor_id: user.to_string(),
            user: Some(user),
            email: None,
            name: "ann".into(),
            permissions: PermissionSet::EMPTY,
            credential: Credential::Session {
                id: session,
                cookie: false,
            },
            credential_name: "session".into(),
        }
    }

    #[test]
    fn sockets_beyond_the_caps_are_refused_and_freed_slots_are_reused() {
        let sockets = Arc::new(Sockets::new(2, 3));
        let account = Id::new();
        let (ann, bob) = (Id::new(), Id::new());
        let ann_session = principal(account, ann, Id::new());
        let first = sockets.admit(&ann_session, None).unwrap();
        let _second = sockets.admit(&ann_session, None).unwrap();
        assert!(matches!(
            sockets.admit(&ann_session, None),
            Err(ApiError::RateLimited(_))
        ));
        let bob_session = principal(account, bob, Id::new());
        let _third = sockets.admit(&bob_session, None).unwrap();
        assert!(
            sockets.admit(&bob_session, None).is_err(),
            "the account is full"
        );
        drop(first);
        let _again = sockets.admit(&ann_session, None).unwrap();
        assert_eq!(sockets.count(), 3);
    }

    #[tokio::test]
    async fn revoking_a_user_ends_every_socket_acting_as_them_and_only_those() {
        let sockets = Arc::new(Sockets::new(10, 10));
        let account = Id::new();
        let (ann, bob) = (Id::new(), Id::new());
        let ann_socket = sockets
            .admit(&principal(account, ann, Id::new()), None)
            .unwrap();
        let bob_socket = sockets
            .admit(&principal(account, bob, Id::new()), None)
            .unwrap();
        let elsewhere = sockets
            .admit(&principal(Id::new(), ann, Id::new()), None)
            .unwrap();
        assert_eq!(
            sockets.revoke(
                account,
                &Revocation::User {
                    id: ann,
                    kept: None
                }
            ),
            1
        );
        assert_eq!(ann_socket.ended().await, CREDENTIAL_ENDED);
        assert!(!bob_socket.live().ended.is_cancelled());
        assert!(!elsewhere.live().ended.is_cancelled());
    }

    #[tokio::test]
    async fn a_socket_that_loses_the_permission_it_needs_ends() {
        let sockets = Arc::new(Sockets::new(10, 10));
        let mut holder = principal(Id::new(), Id::new(), Id::new());
        holder.permissions = PermissionSet::from_iter([Permission::SessionRecordingsView]);
        let watching = sockets
            .admit(&holder, Some(Permission::SessionRecordingsView))
            .unwrap();
        let bell = sockets.admit(&holder, None).unwrap();
        for live in [watching.live(), bell.live()] {
            live.refresh(PermissionSet::EMPTY);
        }
        assert_eq!(watching.ended().await, PERMISSION_LOST);
        assert!(!bell.live().ended.is_cancelled());
        assert_eq!(bell.live().permissions(), PermissionSet::EMPTY);
    }
}

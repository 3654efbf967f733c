//! Group commit for `POST /events` (issue 19). Publishers hand their events to a few writer
//! tasks; a writer takes every publication waiting and publishes them all in one transaction,
//! each with its fan-out and audit entry, so concurrent publishers pay for one commit (and, on
//! SQLite, hold its one writer connection once) instead of one each. Each publication stays
//! all or nothing: when a group fails, its publications are published again one transaction
//! each, so one bad publication fails alone.

use std::sync::Arc;

use spog_core::Id;
use spog_core::audit::AuditEntry;
use spog_core::delivery::Delivery;
use spog_core::events::Event;
use spog_store::identity::organizations;
use spog_store::{Backend, Store, StoreError, Tx};
use tokio::sync::{Mutex, mpsc, oneshot};

use super::{Announcements, NewEvent, Published, publish};
use crate::hub::bus::Bus;

/// Publications per transaction at most.
const GROUP: usize = 256;
/// Publications that may wait for a writer before publishers wait too.
const QUEUE: usize = 1_024;

/// Writes the entry recording a new event, given its id and deliveries.
pub type EntryOf = Box<dyn Fn(Id<Event>, &[Id<Delivery>]) -> AuditEntry + Send + Sync>;

/// An event to publish, with the audit entry that records its publication.
pub struct Publication {
    pub event: NewEvent,
    pub entry: EntryOf,
}

/// Why a publication was refused.
#[derive(Debug)]
pub enum PublishError {
    /// The event names no organization of its account.
    NoOrganization,
    Store(StoreError),
}

impl From<StoreError> for PublishError {
    fn from(error: StoreError) -> Self {
        PublishError::Store(error)
    }
}

struct Request {
    publication: Publication,
    done: oneshot::Sender<Result<Published, PublishError>>,
}

#[derive(Clone)]
pub struct GroupPublisher {
    requests: mpsc::Sender<Request>,
}

impl GroupPublisher {
    /// Starts the writers: one on SQLite (it has one writer connection), a few on PostgreSQL.
    /// They stop when every handle is dropped.
    pub fn start(store: &Store, bus: &Bus) -> Self {
        let (requests, queue) = mpsc::channel(QUEUE);
        let queue = Arc::new(Mutex::new(queue));
        let writers = match store.backend() {
            Backend::Sqlite => 1,
            Backend::Postgres => 4,
        };
        for _ in 0..writers {
            tokio::spawn(write(store.clone(), bus.clone(), queue.clone()));
        }
        Self { requests }
    }

    /// Publishes `publication` and records it, possibly in one transaction with others;
    /// returns once it is committed and announced.
    pub async fn publish(&self, publication: Publication) -> Result<Published, PublishError> {
        let (done, result) = oneshot::channel();
        self.requests
            .send(Request { publication, done })
            .await
            .map_err(|_| closed())?;
        result.await.map_err(|_| closed())?
    }
}

fn closed() -> PublishError {
    PublishError::Store(StoreError::Io(std::io::Error::other(
        "the event publisher has stopped",
    )))
}

async fn write(store: Store, bus: Bus, queue: Arc<Mutex<mpsc::Receiver<Request>>>) {
    loop {
        let group = {
            let mut queue = queue.lock().await;
            let Some(first) = queue.recv().await else {
                return;
            };
            let mut group = vec![first];
            while group.len() < GROUP {
                let Ok(next) = queue.try_recv() else { break };
                group.push(next);
            }
            group
        };
        if group.len() > 1 {
            let publications: Vec<&Publication> = group.iter().map(|r| &r.publication).collect();
            if let Ok((published, announcements)) = together(&store, &publications).await {
                announcements.send(&bus).await;
                for (request, published) in group.into_iter().zip(published) {
                    let _ = request.done.send(Ok(published));
                }
                continue;
            }
        }
        // A publication alone, or each of a group that failed: one transaction each.
        for request in group {
            let result = together(&store, &[&request.publication]).await;
            let result = match result {
                Ok((mut published, announcements)) => {
                    announcements.send(&bus).await;
                    Ok(published.remove(0))
                }
                Err(error) => Err(error),
            };
            let _ = request.done.send(result);
        }
    }
}

/// Publishes every one of `publications` in one transaction, or none.
async fn together(
    store: &Store,
    publications: &[&Publication],
) -> Result<(Vec<Published>, Announcements), PublishError> {
    let mut tx = store.begin().await?;
    let mut announcements = Announcements::default();
    let mut published = Vec::with_capacity(publications.len());
    let mut changed = false;
    for publication in publications {
        let result = one(&mut tx, publication, &mut announcements).await?;
        changed |= matches!(result, Published::New { .. });
        published.push(result);
    }
    if changed {
        tx.commit().await?;
    } else {
        // Only repeated idempotency keys: nothing changed, nothing to record.
        tx.commit_unaudited().await?;
    }
    Ok((published, announcements))
}

async fn one(
    tx: &mut Tx,
    publication: &Publication,
    announcements: &mut Announcements,
) -> Result<Published, PublishError> {
    let event = &publication.event;
    match organizations::get(tx, event.account, event.organization).await {
        Err(StoreError::NotFound) => return Err(PublishError::NoOrganization),
        other => other?,
    };
    let now = spog_core::Timestamp::now();
    let published = publish(tx, event.clone(), now, announcements).await?;
    if let Published::New { event, deliveries } = &published {
        tx.record((publication.entry)(*event, deliveries)).await?;
    }
    Ok(published)
}

//! Group commit for ingested entries. Requests hand their entries to a few writer tasks; a
//! writer takes every request waiting and records them all in one transaction. On SQLite,
//! whose single writer connection is held from BEGIN to COMMIT across several round trips,
//! one transaction per request left that connection idle between them; grouped, the
//! round trips are paid once per group. Each request stays all or nothing: when a group
//! fails, its requests are retried one transaction each, so one bad request fails alone.

use std::sync::Arc;

use spog_core::audit::AuditEntry;
use tokio::sync::{Mutex, mpsc, oneshot};

use crate::{Backend, Store, StoreError, StoreResult};

/// Entries per transaction at most; a request's entries are never split.
const GROUP_ENTRIES: usize = 5_000;
/// Requests that may wait for a writer before senders wait too.
const QUEUE: usize = 1_024;

struct Request {
    entries: Vec<AuditEntry>,
    done: oneshot::Sender<StoreResult<()>>,
}

#[derive(Clone)]
pub struct GroupCommit {
    requests: mpsc::Sender<Request>,
}

impl GroupCommit {
    /// Starts the writers: one on SQLite (it has one writer connection), a few on PostgreSQL.
    /// They stop when every handle is dropped.
    pub fn start(store: &Store) -> Self {
        let (requests, queue) = mpsc::channel(QUEUE);
        let queue = Arc::new(Mutex::new(queue));
        let writers = match store.backend() {
            Backend::Sqlite => 1,
            Backend::Postgres => 4,
        };
        for _ in 0..writers {
            tokio::spawn(write(store.clone(), queue.clone()));
        }
        Self { requests }
    }

    /// Records `entries` in one transaction, possibly with other requests' entries; returns
    /// once they are committed.
    #[tracing::instrument(name = "audit::group_record", skip_all, fields(entries = entries.len()))]
    pub async fn record(&self, entries: Vec<AuditEntry>) -> StoreResult<()> {
        let (done, result) = oneshot::channel();
        self.requests
            .send(Request { entries, done })
            .await
            .map_err(|_| closed())?;
        result.await.map_err(|_| closed())?
    }
}

fn closed() -> StoreError {
    StoreError::Database(sqlx::Error::PoolClosed)
}

async fn write(store: Store, queue: Arc<Mutex<mpsc::Receiver<Request>>>) {
    loop {
        let group = {
            let mut queue = queue.lock().await;
            let Some(first) = queue.recv().await else {
                return;
            };
            let mut size = first.entries.len();
            let mut group = vec![first];
            while size < GROUP_ENTRIES {
                let Ok(next) = queue.try_recv() else { break };
                size += next.entries.len();
                group.push(next);
            }
            group
        };
        if group.len() > 1 {
            let entries = group
                .iter()
                .flat_map(|r| r.entries.iter().cloned())
                .collect();
            if record(&store, entries).await.is_ok() {
                for request in group {
                    let _ = request.done.send(Ok(()));
                }
                continue;
            }
        }
        // A request alone, or each request of a group that failed: one transaction each.
        for request in group {
            let result = record(&store, request.entries).await;
            let _ = request.done.send(result);
        }
    }
}

async fn record(store: &Store, entries: Vec<AuditEntry>) -> StoreResult<()> {
    let mut tx = store.begin().await?;
    super::record_all(&mut tx, entries).await?;
    tx.commit().await
}

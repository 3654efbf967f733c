use std::ops::{Deref, DerefMut};

use spog_core::audit::AuditEntry;
use sqlx::{Any, AnyConnection, Transaction};

use crate::{Store, StoreError, StoreResult};

/// The one transaction of a mutation. The change and its audit entry are written through it
/// and commit together; [`Tx::commit`] refuses to commit a change that recorded no entry.
pub struct Tx {
    tx: Transaction<'static, Any>,
    store: Store,
    audit_entries: usize,
    deliveries_enqueued: bool,
}

impl Tx {
    pub(crate) fn new(tx: Transaction<'static, Any>, store: Store) -> Self {
        Self {
            tx,
            store,
            audit_entries: 0,
            deliveries_enqueued: false,
        }
    }

    pub(crate) fn note_audit_entries(&mut self, count: usize) {
        self.audit_entries += count;
    }

    pub(crate) fn note_deliveries_enqueued(&mut self) {
        self.deliveries_enqueued = true;
    }

    /// Records the change's audit entry in this transaction.
    pub async fn record(&mut self, entry: AuditEntry) -> StoreResult<()> {
        crate::audit::record(self, entry).await
    }

    /// Records several entries in this transaction.
    pub async fn record_all(&mut self, entries: Vec<AuditEntry>) -> StoreResult<()> {
        crate::audit::record_all(self, entries).await
    }

    /// Commits the change together with its audit entries, then wakes the chain linker (and
    /// the delivery engine, when the change created deliveries); while the linker is behind,
    /// returns only after its next round.
    #[tracing::instrument(name = "tx::commit", skip_all, fields(audit_entries = self.audit_entries))]
    pub async fn commit(self) -> StoreResult<()> {
        if self.audit_entries == 0 {
            return Err(StoreError::Unaudited);
        }
        let store = self.store.clone();
        let deliveries = self.deliveries_enqueued;
        self.tx.commit().await?;
        store.audit_appended().notify_one();
        if deliveries {
            store.deliveries_enqueued().notify_one();
        }
        store.keep_pace_with_linker().await;
        Ok(())
    }

    /// Commits state that is not a mutation of record (e.g. a user's read marks, the chain
    /// linker's own bookkeeping), or that is one only sometimes (a heartbeat that brings a
    /// host online).
    #[tracing::instrument(name = "tx::commit_unaudited", skip_all)]
    pub async fn commit_unaudited(self) -> StoreResult<()> {
        let store = self.store.clone();
        let deliveries = self.deliveries_enqueued;
        let audited = self.audit_entries > 0;
        self.tx.commit().await?;
        if audited {
            store.audit_appended().notify_one();
        }
        if deliveries {
            store.deliveries_enqueued().notify_one();
        }
        Ok(())
    }

    pub fn store(&self) -> &Store {
        &self.store
    }
}

impl Deref for Tx {
    type Target = AnyConnection;
    fn deref(&self) -> &AnyConnection {
        &self.tx
    }
}

impl DerefMut for Tx {
    fn deref_mut(&mut self) -> &mut AnyConnection {
        &mut self.tx
    }
}

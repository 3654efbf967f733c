//! Operations on whole audit chains: verifying an account's chain as stored, and signing
//! checkpoints of chain heads. Used by the API, the checkpoint worker and tests.

use futures::StreamExt;
use serde::Serialize;
use spog_core::Id;
use spog_core::Timestamp;
use spog_core::audit::{ChainVerifier, VerifyReport, checkpoint};
use spog_core::model::Account;
use spog_store::audit::checkpoints::{self, Checkpoint};
use spog_store::audit::{self, AuditFilter};
use spog_store::{Store, StoreResult};
use utoipa::ToSchema;

use crate::blocking::Blocking;
use crate::keys::Keys;

/// Entries per read: verification goes as fast as it can hash, and larger batches cost
/// fewer queries per entry.
const BATCH: i64 = 5_000;
/// Batches hashed at once.
const HASHERS: usize = 2;

#[derive(Serialize, ToSchema)]
pub struct IntegrityReport {
    #[serde(flatten)]
    #[schema(inline)]
    pub report: VerifyReport,
    pub checked_at: Timestamp,
    /// The signed checkpoint the chain was also compared with, if any.
    pub checkpoint_seq: Option<i64>,
}

/// Walks the account's whole chain in `seq` order and compares its end with the stored head and the latest checkpoint.
pub async fn verify(
    store: &Store,
    blocking: &Blocking,
    account: Id<Account>,
) -> StoreResult<IntegrityReport> {
    audit::link_pending(store, Timestamp::now()).await?;
    let mut conn = store.conn().await?;
    let head = audit::head(&mut conn, account).await?;
    let latest = checkpoints::latest(&mut conn, account).await?;
    drop(conn);
    let mut verifier = ChainVerifier::new();
    if let Some((seq, hash)) = &head {
        verifier.anchor(*seq, hash);
    }
    if let Some(checkpoint) = &latest {
        verifier.anchor(checkpoint.seq, &checkpoint.head_hash);
    }
    // Each batch is hashed apart, off the async workers and on every core, while the walk
    // reads the next; the parts are joined in order.
    let template = verifier.segment();
    let mut segments = audit::walk(store, account, AuditFilter::default(), BATCH)
        .await?
        .map(|batch| {
            let mut segment = template.segment();
            blocking.run(move || {
                batch?
                    .fields()
                    .for_each(|entry| segment.push_fields(&entry));
                Ok::<_, spog_store::StoreError>(segment)
            })
        })
        .buffered(HASHERS);
    while let Some(segment) = segments.next().await {
        verifier.append(segment?);
    }
    Ok(IntegrityReport {
        report: verifier.finish(),
        checked_at: Timestamp::now(),
        checkpoint_seq: latest.map(|c| c.seq),
    })
}

#[derive(Serialize, ToSchema)]
pub struct PublicKey {
    pub algorithm: String,
    pub key_id: String,
    /// The 32-byte Ed25519 public key, hex.
    pub public_key: String,
}

pub fn public_key(keys: &Keys) -> PublicKey {
    let key = keys.checkpoint.verifying_key();
    PublicKey {
        algorithm: "ed25519".to_owned(),
        key_id: checkpoint::key_id(&key),
        public_key: hex::encode(key.as_bytes()),
    }
}

/// Signs and stores a checkpoint of the account's current head; `None` for an empty chain.
/// The head already checkpointed is returned as it was.
pub async fn sign_checkpoint(
    store: &Store,
    keys: &Keys,
    account: Id<Account>,
) -> StoreResult<Option<Checkpoint>> {
    audit::link_pending(store, Timestamp::now()).await?;
    let mut conn = store.conn().await?;
    let Some((seq, hash)) = audit::head(&mut conn, account).await? else {
        return Ok(None);
    };
    if seq == 0 {
        return Ok(None);
    }
    drop(conn);
    let signed = signed(keys, &account.to_string(), seq, &hash);
    let mut tx = store.begin().await?;
    checkpoints::insert(&mut tx, &signed).await?;
    tx.commit_unaudited().await?;
    let mut conn = store.conn().await?;
    checkpoints::by_seq(&mut conn, account, seq).await
}

fn signed(keys: &Keys, account: &str, seq: i64, head_hash: &str) -> Checkpoint {
    let signed_at = Timestamp::now();
    let message = checkpoint::statement(account, seq, head_hash, signed_at);
    Checkpoint {
        id: uuid::Uuid::now_v7().to_string(),
        account_id: account.to_owned(),
        seq,
        head_hash: head_hash.to_owned(),
        signed_at,
        key_id: checkpoint::key_id(&keys.checkpoint.verifying_key()),
        signature: checkpoint::sign(&keys.checkpoint, &message),
    }
}

/// Signs a checkpoint for every account whose head moved since its last one.
pub async fn checkpoint_all(store: &Store, keys: &Keys) -> StoreResult<usize> {
    audit::link_pending(store, Timestamp::now()).await?;
    let heads = {
        let mut conn = store.conn().await?;
        checkpoints::heads_without_checkpoint(&mut conn).await?
    };
    let mut signed_count = 0;
    for (account, seq, hash) in heads {
        let mut tx = store.begin().await?;
        if checkpoints::insert(&mut tx, &signed(keys, &account, seq, &hash)).await? {
            signed_count += 1;
        }
        tx.commit_unaudited().await?;
    }
    Ok(signed_count)
}

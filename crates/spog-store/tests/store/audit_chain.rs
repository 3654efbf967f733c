use futures::StreamExt;
use std::sync::Arc;

use spog_core::audit::{ChainVerifier, GENESIS_HASH};
use spog_core::model::Account;
use spog_core::{Id, Timestamp};
use spog_store::audit;
use spog_store::identity::accounts;
use spog_store::testing::databases;
use spog_store::{Store, StoreError};

use crate::entry;

async fn new_account(store: &Store, name: &str) -> spog_core::model::Account {
    let mut tx = store.begin().await.unwrap();
    let (account, _) = accounts::create(&mut tx, name, Timestamp::now())
        .await
        .unwrap();
    tx.commit_unaudited().await.unwrap();
    account
}

async fn chain_of(store: &Store, account: &str) -> Vec<spog_core::audit::AuditEntry> {
    let ids: Vec<String> =
        sqlx::query_scalar("SELECT id FROM audit_logs WHERE account_id = $1 ORDER BY seq")
            .bind(account)
            .fetch_all(&mut *store.conn().await.unwrap())
            .await
            .unwrap();
    let mut entries = Vec::new();
    for id in ids {
        let mut conn = store.conn().await.unwrap();
        entries.push(
            audit::get(&mut conn, account.parse().unwrap(), &id)
                .await
                .unwrap(),
        );
    }
    entries
}

#[tokio::test]
async fn a_mutation_cannot_commit_without_its_audit_entry() {
    for db in databases().await {
        let store = db.store().await;
        let tx = store.begin().await.unwrap();
        assert!(matches!(tx.commit().await, Err(StoreError::Unaudited)));
    }
}

#[tokio::test]
async fn a_queued_entry_deleted_behind_the_stores_back_is_dropped_and_the_rest_linked() {
    for db in databases().await {
        let store = db.store().await;
        let acme = new_account(&store, "acme").await;
        let mut ids = Vec::new();
        for n in 0..3 {
            let mut tx = store.begin().await.unwrap();
            let recorded = entry(acme.id, "host.create", &format!("h{n}"));
            ids.push(recorded.id.clone());
            audit::record(&mut tx, recorded).await.unwrap();
            tx.commit().await.unwrap();
        }
        sqlx::query("DELETE FROM audit_entries WHERE id = $1")
            .bind(&ids[1])
            .execute(&mut *store.conn().await.unwrap())
            .await
            .unwrap();
        let linked = audit::link_pending(&store, Timestamp::now()).await.unwrap();
        assert_eq!(linked.entries, 2, "{:?}", db.backend);
        let queued: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM audit_unlinked")
            .fetch_one(&mut *store.conn().await.unwrap())
            .await
            .unwrap();
        assert_eq!(queued, 0, "{:?}", db.backend);
        let chain = chain_of(&store, &acme.id.to_string()).await;
        assert_eq!(
            chain.iter().map(|e| e.id.as_str()).collect::<Vec<_>>(),
            [ids[0].as_str(), ids[2].as_str()]
        );
        let mut verifier = ChainVerifier::new();
        chain.iter().for_each(|e| verifier.push(e));
        assert!(verifier.finish().valid, "{:?}", db.backend);
    }
}

#[tokio::test]
async fn recorded_entries_are_linked_into_one_chain_per_account() {
    for db in databases().await {
        let store = db.store().await;
        let acme = new_account(&store, "acme").await;
        let globex = new_account(&store, "globex").await;
        for n in 0..3 {
            for account in [&acme, &globex] {
                let mut tx = store.begin().await.unwrap();
                audit::record(&mut tx, entry(account.id, "host.create", &format!("h{n}")))
                    .await
                    .unwrap();
                tx.commit().await.unwrap();
            }
        }
        let linked = audit::link_pending(&store, Timestamp::now()).await.unwrap();
        assert_eq!(linked.entries, 6);
        assert_eq!(linked.heads.values().collect::<Vec<_>>(), [&3, &3]);
        for account in [&acme, &globex] {
            let chain = chain_of(&store, &account.id.to_string()).await;
            assert_eq!(
                chain.iter().map(|e| e.seq.unwrap()).collect::<Vec<_>>(),
                [1, 2, 3]
            );
            assert_eq!(chain[0].prev_hash.as_deref(), Some(GENESIS_HASH));
            let mut verifier = ChainVerifier::new();
            chain.iter().for_each(|e| verifier.push(e));
            assert!(verifier.finish().valid, "{:?}", db.backend);
        }
    }
}

#[tokio::test]
async fn the_schema_refuses_a_link_that_does_not_follow_the_one_before_it() {
    for db in databases().await {
        let store = db.store().await;
        let acme = new_account(&store, "acme").await;
        let mut tx = store.begin().await.unwrap();
        let entries: Vec<_> = (0..3)
            .map(|n| entry(acme.id, "host.create", &format!("h{n}")))
            .collect();
        audit::record_all(&mut tx, entries).await.unwrap();
        tx.commit().await.unwrap();
        audit::link_pending(&store, Timestamp::now()).await.unwrap();
        let chain = chain_of(&store, &acme.id.to_string()).await;
        let hash = |seq: usize| chain[seq - 1].hash.clone().unwrap();
        let link = |account: Id<Account>, seq: i64, prev_hash: String| {
            let store = store.clone();
            async move {
                let mut tx = store.begin().await.unwrap();
                sqlx::query(
                    "INSERT INTO audit_links (account_id, seq, entry_id, prev_hash, hash) \
                     VALUES ($1, $2, $3, $4, $5)",
                )
                .bind(account.to_string())
                .bind(seq)
                .bind(uuid::Uuid::now_v7().to_string())
                .bind(prev_hash)
                .bind("f".repeat(64))
                .execute(&mut *tx)
                .await
                .map(|_| ())
            }
        };
        let backend = db.backend;
        let refused = [
            (3, hash(2), "a second link at a position"),
            (4, hash(2), "a fork"),
            (5, hash(3), "a gap"),
        ];
        for (seq, prev_hash, what) in refused {
            let result = link(acme.id, seq, prev_hash).await;
            assert!(result.is_err(), "{what}, {backend:?}");
        }
        assert!(link(acme.id, 4, hash(3)).await.is_ok(), "{backend:?}");

        let globex = new_account(&store, "globex").await;
        let after_a_hash = link(globex.id, 1, hash(3)).await;
        assert!(
            after_a_hash.is_err(),
            "a first link after a hash, {backend:?}"
        );
        let first = link(globex.id, 1, GENESIS_HASH.to_owned()).await;
        assert!(first.is_ok(), "{backend:?}");
    }
}

#[tokio::test]
async fn secrets_never_reach_the_audit_table() {
    for db in databases().await {
        let store = db.store().await;
        let account = new_account(&store, "acme").await;
        let mut recorded = entry(account.id, "webhook.create", "w1");
        recorded = recorded.after(&serde_json::json!({"name": "hook", "secret": "hunter2hunter2"}));
        let id = recorded.id.clone();
        let mut tx = store.begin().await.unwrap();
        audit::record(&mut tx, recorded).await.unwrap();
        tx.commit().await.unwrap();
        let stored = audit::get(&mut store.conn().await.unwrap(), account.id, &id)
            .await
            .unwrap();
        let stored_text: String =
            sqlx::query_scalar("SELECT after_state FROM audit_logs WHERE id = $1")
                .bind(&id)
                .fetch_one(&mut *store.conn().await.unwrap())
                .await
                .unwrap();
        assert_eq!(stored_text, r#"{"name":"hook","secret":"[redacted]"}"#);
        assert_eq!(stored.after.unwrap().as_str(), stored_text);
    }
}

#[tokio::test]
async fn sixty_four_concurrent_writers_and_linkers_make_one_linear_chain() {
    for db in databases().await {
        let store = db.store().await;
        let account = new_account(&store, "acme").await;
        let store = Arc::new(store);
        let mut tasks = Vec::new();
        for writer in 0..64 {
            let store = store.clone();
            let account = account.id;
            tasks.push(tokio::spawn(async move {
                for n in 0..10 {
                    let mut tx = store.begin().await.unwrap();
                    audit::record(
                        &mut tx,
                        entry(account, "host.update", &format!("w{writer}-{n}")),
                    )
                    .await
                    .unwrap();
                    tx.commit().await.unwrap();
                    if n % 3 == 0 {
                        audit::link_pending(&store, Timestamp::now()).await.unwrap();
                    }
                }
            }));
        }
        for task in tasks {
            task.await.unwrap();
        }
        audit::link_pending(&store, Timestamp::now()).await.unwrap();
        let chain = chain_of(&store, &account.id.to_string()).await;
        assert_eq!(chain.len(), 640);
        let mut verifier = ChainVerifier::new();
        chain.iter().for_each(|e| verifier.push(e));
        let report = verifier.finish();
        assert!(
            report.valid,
            "{:?}: {:?}",
            db.backend,
            report.broken_links.first()
        );
        assert_eq!(report.head_seq, 640);
    }
}

/// Ingest's group commit: many requests share transactions, yet each is all or nothing, and a
/// request that fails in the database fails alone.
#[tokio::test]
async fn grouped_ingest_requests_stay_all_or_nothing_each() {
    for db in databases().await {
        let store = db.store().await;
        let account = new_account(&store, "acme").await;
        let taken = entry(account.id, "host.update", "taken");
        let mut tx = store.begin().await.unwrap();
        audit::record(&mut tx, taken.clone()).await.unwrap();
        tx.commit().await.unwrap();

        let ingest = audit::GroupCommit::start(&store);
        let mut requests = Vec::new();
        for request in 0..40 {
            let mut entries: Vec<_> = (0..25)
                .map(|n| entry(account.id, "job.run", &format!("r{request}-{n}")))
                .collect();
            if request == 17 {
                // Reuses the id of a stored entry: the database refuses the whole request.
                entries[10].id = taken.id.clone();
            }
            let ingest = ingest.clone();
            requests.push(tokio::spawn(async move { ingest.record(entries).await }));
        }
        for (request, result) in requests.into_iter().enumerate() {
            let result = result.await.unwrap();
            assert_eq!(
                result.is_ok(),
                request != 17,
                "request {request}: {result:?}"
            );
        }
        audit::link_pending(&store, Timestamp::now()).await.unwrap();
        let chain = chain_of(&store, &account.id.to_string()).await;
        assert_eq!(chain.len(), 1 + 39 * 25, "{:?}", db.backend);
        assert!(!chain.iter().any(|e| {
            e.resource_id
                .as_deref()
                .is_some_and(|r| r.starts_with("r17-"))
        }));
        let mut verifier = ChainVerifier::new();
        chain.iter().for_each(|e| verifier.push(e));
        assert!(verifier.finish().valid);
    }
}

#[tokio::test]
async fn a_walk_reads_a_chain_of_many_batches_in_order_and_only_what_matches() {
    for db in databases().await {
        let store = db.store().await;
        let acme = new_account(&store, "acme").await;
        let globex = new_account(&store, "globex").await;
        // Several batches of the walk, interleaved with another account's entries.
        let mut tx = store.begin().await.unwrap();
        let mut entries = Vec::new();
        for n in 0..2_345 {
            let action = if n % 7 == 0 {
                "host.delete"
            } else {
                "host.create"
            };
            entries.push(entry(acme.id, action, &format!("h{n}")));
            if n % 100 == 0 {
                entries.push(entry(globex.id, "host.delete", &format!("g{n}")));
            }
        }
        audit::record_all(&mut tx, entries).await.unwrap();
        tx.commit().await.unwrap();
        audit::link_pending(&store, Timestamp::now()).await.unwrap();
        // An entry whose id is older than every other's, linked with newer ones: the id range
        // of its batch spans the whole trail, so reading that range is cut short.
        let mut late = entry(acme.id, "host.create", "late");
        late.id = "00000000-0000-7000-8000-000000000000".into();
        let mut entries = vec![late];
        entries.extend((0..100).map(|n| entry(acme.id, "host.create", &format!("n{n}"))));
        let mut tx = store.begin().await.unwrap();
        audit::record_all(&mut tx, entries).await.unwrap();
        tx.commit().await.unwrap();
        audit::link_pending(&store, Timestamp::now()).await.unwrap();

        let walked = |filter: audit::AuditFilter| {
            let store = store.clone();
            async move {
                let batches = audit::walk(&store, acme.id, filter, 500).await.unwrap();
                let batches: Vec<_> = batches.collect().await;
                let mut seqs = Vec::new();
                let mut verifier = ChainVerifier::new();
                for batch in batches {
                    let batch = batch.unwrap();
                    assert!(!batch.is_empty(), "batches hold entries");
                    for e in batch.fields() {
                        assert_eq!(e.account_id, acme.id.to_string());
                        seqs.push((e.seq.unwrap(), e.action.to_owned()));
                        verifier.push_fields(&e);
                    }
                }
                (seqs, verifier.finish())
            }
        };
        let (all, report) = walked(audit::AuditFilter::default()).await;
        assert!(report.valid, "{:?}", report.broken_links);
        assert_eq!(
            all.iter().map(|(seq, _)| *seq).collect::<Vec<_>>(),
            (1..=2_446).collect::<Vec<i64>>(),
            "{:?}",
            db.backend
        );
        let (deletes, _) = walked(audit::AuditFilter {
            action: Some(audit::ActionFilter::Exact("host.delete".into())),
            ..Default::default()
        })
        .await;
        assert_eq!(deletes.len(), 2_345_usize.div_ceil(7));
        assert!(deletes.iter().all(|(_, action)| action == "host.delete"));
        assert!(deletes.windows(2).all(|w| w[0].0 < w[1].0));

        // A link moved far beyond the end is read where it now stands, not sought for.
        sqlx::query(
            "UPDATE audit_links SET seq = 1000000000000000 WHERE account_id = $1 AND seq = 2446",
        )
        .bind(acme.id.to_string())
        .execute(&mut *store.conn().await.unwrap())
        .await
        .unwrap();
        let (moved, report) = walked(audit::AuditFilter::default()).await;
        assert_eq!(moved.len(), 2_446);
        assert_eq!(moved.last().unwrap().0, 1_000_000_000_000_000);
        assert!(!report.valid);
    }
}

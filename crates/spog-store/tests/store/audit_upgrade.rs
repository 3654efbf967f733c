//! A chain written before entries named their credential and `recorded_at` (migration 0014)
//! still verifies after the upgrade, and goes on with entries that have them.

use futures::StreamExt;
use serde_json::Value;
use spog_core::audit::{AuditEntry, ChainVerifier, VerifyReport};
use spog_core::model::Account;
use spog_core::{Id, Timestamp};
use spog_store::testing::databases;
use spog_store::{Store, audit};

use crate::entry;

/// Three entries as the release before 0014 exported them (and so stored and hashed them).
const BEFORE: &str =
    include_str!("../../../spog/tests/cli/fixtures/export-before-credentials.jsonl");

/// Writes the old export's entries, links and head as the old release left them in its
/// database: the new columns NULL, the hashes its linker computed.
async fn restore_old_chain(store: &Store) -> Id<Account> {
    let mut tx = store.begin().await.unwrap();
    let mut account = String::new();
    for line in BEFORE.lines() {
        let e: Value = serde_json::from_str(line).unwrap();
        let text = |key: &str| e[key].as_str().map(str::to_owned);
        let json = |key: &str| (!e[key].is_null()).then(|| e[key].to_string());
        let at = Timestamp::parse(e["occurred_at"].as_str().unwrap()).unwrap();
        sqlx::query(
            "INSERT INTO audit_entries (id, account_id, occurred_at, organization_id, actor_type, \
             actor_id, actor_email, actor_name, source, ip, user_agent, request_id, action, \
             resource_type, resource_id, resource_name, outcome, before_state, after_state, metadata) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20)",
        )
        .bind(text("id"))
        .bind(text("account_id"))
        .bind(at.micros())
        .bind(text("organization_id"))
        .bind(text("actor_type"))
        .bind(text("actor_id"))
        .bind(text("actor_email"))
        .bind(text("actor_name"))
        .bind(text("source"))
        .bind(text("ip"))
        .bind(text("user_agent"))
        .bind(text("request_id"))
        .bind(text("action"))
        .bind(text("resource_type"))
        .bind(text("resource_id"))
        .bind(text("resource_name"))
        .bind(text("outcome"))
        .bind(json("before"))
        .bind(json("after"))
        .bind(json("metadata"))
        .execute(&mut *tx)
        .await
        .unwrap();
        sqlx::query(
            "INSERT INTO audit_links (account_id, seq, entry_id, prev_hash, hash) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(text("account_id"))
        .bind(e["seq"].as_i64().unwrap())
        .bind(text("id"))
        .bind(text("prev_hash"))
        .bind(text("hash"))
        .execute(&mut *tx)
        .await
        .unwrap();
        sqlx::query(
            "INSERT INTO audit_heads (account_id, seq, hash, updated_at) VALUES ($1, $2, $3, 0) \
             ON CONFLICT (account_id) DO UPDATE SET seq = $2, hash = $3",
        )
        .bind(text("account_id"))
        .bind(e["seq"].as_i64().unwrap())
        .bind(text("hash"))
        .execute(&mut *tx)
        .await
        .unwrap();
        account = text("account_id").unwrap();
    }
    tx.commit_unaudited().await.unwrap();
    account.parse().unwrap()
}

/// Walks the account's chain as `GET /audit-logs/integrity` does.
async fn verify(store: &Store, account: Id<Account>) -> (VerifyReport, Vec<AuditEntry>) {
    let mut verifier = ChainVerifier::new();
    let mut seen = Vec::new();
    let mut batches = audit::walk(store, account, audit::AuditFilter::default(), 2)
        .await
        .unwrap();
    while let Some(batch) = batches.next().await {
        for fields in batch.unwrap().fields() {
            verifier.push_fields(&fields);
            let mut conn = store.conn().await.unwrap();
            seen.push(audit::get(&mut conn, account, fields.id).await.unwrap());
        }
    }
    (verifier.finish(), seen)
}

#[tokio::test]
async fn a_chain_written_before_credentials_were_kept_verifies_and_grows_after_the_upgrade() {
    for db in databases().await {
        let store = db.store().await;
        let account = restore_old_chain(&store).await;
        let (report, old) = verify(&store, account).await;
        assert!(report.valid, "{report:?}");
        assert_eq!(report.entries_checked, 3);
        assert!(
            old.iter()
                .all(|e| e.credential_id.is_none() && e.recorded_at.is_none())
        );

        // After the upgrade, entries name their credential and when they were stored.
        let mut tx = store.begin().await.unwrap();
        let mut new = entry(account, "host.create", "h1");
        new.credential_id = Some(uuid::Uuid::now_v7().to_string());
        new.credential_name = Some("deploy bot".to_owned());
        audit::record_all(
            &mut tx,
            vec![new.clone(), entry(account, "host.offline", "h1")],
        )
        .await
        .unwrap();
        tx.commit().await.unwrap();
        audit::link_pending(&store, Timestamp::now()).await.unwrap();
        let (report, entries) = verify(&store, account).await;
        assert!(report.valid, "{report:?}");
        assert_eq!(report.head_seq, 5);
        let stored = &entries[3];
        assert_eq!(stored.credential_name.as_deref(), Some("deploy bot"));
        assert_eq!(stored.credential_id, new.credential_id);
        assert_eq!(stored.recorded_at, new.recorded_at);

        // The new fields are hashed: changing one behind the store's back is caught.
        let mut conn = store.conn().await.unwrap();
        sqlx::query("UPDATE audit_entries SET credential_name = 'someone else' WHERE id = $1")
            .bind(&stored.id)
            .execute(&mut *conn)
            .await
            .unwrap();
        sqlx::query("UPDATE audit_entries SET recorded_at = 1 WHERE id = $1")
            .bind(&old[0].id)
            .execute(&mut *conn)
            .await
            .unwrap();
        drop(conn);
        let (report, _) = verify(&store, account).await;
        let broken: Vec<i64> = report.broken_links.iter().map(|l| l.seq).collect();
        assert_eq!(broken, [1, 4], "{report:?}");
    }
}

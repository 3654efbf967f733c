use std::time::Duration;

use spog_core::model::{EnrollmentTokenState, HostAgent};
use spog_core::{Id, Timestamp};
use spog_store::StoreError;
use spog_store::agents::credentials::{self, Connection};
use spog_store::agents::enrollment_tokens::{self, NewEnrollmentToken};
use spog_store::identity::{accounts, hosts};
use spog_store::testing::databases;

#[tokio::test]
async fn an_enrollment_token_is_consumed_once_and_never_when_expired_or_revoked() {
    for db in databases().await {
        let store = db.store().await;
        let now = Timestamp::now();
        let mut tx = store.begin().await.unwrap();
        let (account, organization) = accounts::create(&mut tx, "acme", now).await.unwrap();
        let token = |hash: &str, expires_at| NewEnrollmentToken {
            organization: organization.id,
            host: None,
            description: None,
            token_hash: hash.to_owned(),
            created_by: None,
            expires_at,
        };
        let later = now.plus(Duration::from_secs(3600));
        let live = enrollment_tokens::create(&mut tx, account.id, token("live", later), now)
            .await
            .unwrap();
        enrollment_tokens::create(
            &mut tx,
            account.id,
            token("old", now.plus(Duration::from_secs(1))),
            now,
        )
        .await
        .unwrap();
        let revoked = enrollment_tokens::create(&mut tx, account.id, token("revoked", later), now)
            .await
            .unwrap();
        enrollment_tokens::revoke(&mut tx, account.id, revoked.id, now)
            .await
            .unwrap();
        let taken = enrollment_tokens::consume(&mut tx, "live", now)
            .await
            .unwrap();
        assert_eq!(
            taken.map(|c| (c.account, c.token.id)),
            Some((account.id, live.id))
        );
        assert!(
            enrollment_tokens::consume(&mut tx, "live", now)
                .await
                .unwrap()
                .is_none()
        );
        assert!(
            enrollment_tokens::consume(&mut tx, "revoked", now)
                .await
                .unwrap()
                .is_none()
        );
        let after_expiry = now.plus(Duration::from_secs(2));
        assert!(
            enrollment_tokens::consume(&mut tx, "old", after_expiry)
                .await
                .unwrap()
                .is_none()
        );
        let used = enrollment_tokens::revoke(&mut tx, account.id, live.id, now).await;
        assert!(
            matches!(used, Err(StoreError::Conflict(_))),
            "{:?}",
            db.backend
        );
        let expired = enrollment_tokens::list(
            &mut tx,
            account.id,
            Some(EnrollmentTokenState::Expired),
            50,
            None,
            after_expiry,
        )
        .await
        .unwrap();
        assert_eq!(expired.items.len(), 1, "{:?}", db.backend);
        tx.commit_unaudited().await.unwrap();
    }
}

#[tokio::test]
async fn an_agent_connection_counts_until_replaced_revoked_or_stale() {
    for db in databases().await {
        let store = db.store().await;
        let now = Timestamp::now();
        let mut tx = store.begin().await.unwrap();
        let (account, organization) = accounts::create(&mut tx, "acme", now).await.unwrap();
        let host = hosts::create(&mut tx, account.id, organization.id, "web-1", "web-1", now)
            .await
            .unwrap();
        let credential: Id<HostAgent> = Id::new();
        let replaced =
            credentials::enroll(&mut tx, account.id, host.id, credential, "hash", None, now)
                .await
                .unwrap();
        assert_eq!(replaced, None);
        assert!(
            credentials::unclaimed_host(&mut tx, account.id, organization.id, "web-1")
                .await
                .unwrap()
                .is_none(),
            "the host has an agent"
        );
        let facts = serde_json::json!({"os": "linux", "agent_version": "0.1.0"});
        let connection = |id| Connection {
            connection_id: id,
            protocol: "spog-agent.v1",
            instance_id: "i-1",
            remote_addr: Some("127.0.0.1"),
            terminal_enabled: false,
            agent_version: "0.1.0",
            facts: &facts,
        };
        credentials::connected(&mut tx, host.id, credential, &connection("a"), now)
            .await
            .unwrap();
        credentials::connected(&mut tx, host.id, credential, &connection("b"), now)
            .await
            .unwrap();
        assert!(
            !credentials::seen(&mut tx, host.id, "a", now).await.unwrap(),
            "replaced"
        );
        assert!(credentials::seen(&mut tx, host.id, "b", now).await.unwrap());
        credentials::disconnected(&mut tx, host.id, "a", now)
            .await
            .unwrap();
        let shown = hosts::get(&mut tx, account.id, host.id).await.unwrap();
        assert!(
            shown.agent_connected,
            "the old connection's end changes nothing"
        );
        assert_eq!(shown.facts.unwrap()["os"], "linux");

        let later = now.plus(Duration::from_secs(120));
        let forgotten =
            credentials::forget_stale(&mut tx, now.plus(Duration::from_secs(60)), later)
                .await
                .unwrap();
        assert_eq!(forgotten, 1, "{:?}", db.backend);
        assert!(
            !hosts::get(&mut tx, account.id, host.id)
                .await
                .unwrap()
                .agent_connected
        );

        let found = credentials::by_hash(&mut tx, "hash").await.unwrap();
        assert_eq!((found.host, found.credential), (host.id, credential));
        let other = hosts::create(&mut tx, account.id, organization.id, "web-2", "web-2", now)
            .await
            .unwrap();
        let both = [host.id, other.id];
        let none = credentials::revoked_among(&mut tx, account.id, &both)
            .await
            .unwrap();
        assert!(none.is_empty(), "a live credential is not revoked");
        let revoked = credentials::revoke(&mut tx, account.id, host.id, now)
            .await
            .unwrap();
        assert_eq!(revoked, Some(credential));
        let listed = credentials::revoked_among(&mut tx, account.id, &both)
            .await
            .unwrap();
        assert_eq!(listed, [host.id].into(), "only the revoked host");
        let (globex, _) = accounts::create(&mut tx, "globex", now).await.unwrap();
        assert!(
            credentials::revoked_among(&mut tx, globex.id, &both)
                .await
                .unwrap()
                .is_empty(),
            "another account sees none"
        );
        assert!(
            credentials::revoked_among(&mut tx, account.id, &[])
                .await
                .unwrap()
                .is_empty()
        );
        assert!(matches!(
            credentials::by_hash(&mut tx, "hash").await,
            Err(StoreError::NotFound)
        ));
        assert_eq!(
            credentials::revoke(&mut tx, account.id, host.id, now)
                .await
                .unwrap(),
            None
        );
        let refused =
            credentials::connected(&mut tx, host.id, credential, &connection("c"), now).await;
        assert!(matches!(refused, Err(StoreError::NotFound)));
        tx.commit_unaudited().await.unwrap();
    }
}

//! A user's own sessions: listed newest first with where they were opened, ended one by one
//! or all but one, never another user's.

use spog_core::Timestamp;
use spog_core::validate::Email;
use spog_store::StoreError;
use spog_store::identity::sessions::{self, Origin};
use spog_store::identity::{accounts, users};
use spog_store::testing::databases;

#[tokio::test]
async fn users_see_and_end_their_own_sessions_only() {
    for db in databases().await {
        let store = db.store().await;
        let now = Timestamp::now();
        let later = now.plus(std::time::Duration::from_secs(3600));
        let mut tx = store.begin().await.unwrap();
        let (account, _) = accounts::create(&mut tx, "acme", now).await.unwrap();
        let mut people = Vec::new();
        for address in ["ann@example.com", "bob@example.com"] {
            let new = users::NewUser {
                email: Email::parse("email", address).unwrap(),
                display_name: address.into(),
                password_hash: None,
                roles: Vec::new(),
                identities: Vec::new(),
            };
            people.push(
                users::create(&mut tx, account.id, new, now)
                    .await
                    .unwrap()
                    .id,
            );
        }
        let (ann, bob) = (people[0], people[1]);
        let origin = Origin {
            ip: Some("192.0.2.7".into()),
            user_agent: Some("curl/8".into()),
            provider_id: None,
        };
        let mut ann_sessions = Vec::new();
        for step in 0..3 {
            let id = spog_core::Id::new();
            let opened = now.plus(std::time::Duration::from_secs(step));
            sessions::create(&mut tx, account.id, ann, id, (opened, later), &origin)
                .await
                .unwrap();
            ann_sessions.push(id);
        }
        let bob_session = spog_core::Id::new();
        sessions::create(&mut tx, account.id, bob, bob_session, (now, later), &origin)
            .await
            .unwrap();
        tx.commit_unaudited().await.unwrap();

        let mut conn = store.conn().await.unwrap();
        let live = sessions::live_of(&mut conn, account.id, ann, now)
            .await
            .unwrap();
        let ids: Vec<_> = live.iter().map(|s| s.id).collect();
        let newest_first: Vec<_> = ann_sessions.iter().rev().copied().collect();
        assert_eq!(ids, newest_first, "{:?}", db.backend);
        assert_eq!(live[0].origin.ip.as_deref(), Some("192.0.2.7"));
        assert_eq!(live[0].origin.user_agent.as_deref(), Some("curl/8"));

        let bobs = sessions::revoke_own(&mut conn, account.id, ann, bob_session, now).await;
        assert!(
            matches!(bobs, Err(StoreError::NotFound)),
            "{:?}",
            db.backend
        );
        sessions::revoke_own(&mut conn, account.id, ann, ann_sessions[0], now)
            .await
            .unwrap();
        let again = sessions::revoke_own(&mut conn, account.id, ann, ann_sessions[0], now).await;
        assert!(matches!(again, Err(StoreError::NotFound)));

        let kept = Some(ann_sessions[2]);
        let ended = sessions::revoke_all(&mut conn, account.id, ann, kept, now)
            .await
            .unwrap();
        assert_eq!(ended, 1);
        let live = sessions::live_of(&mut conn, account.id, ann, now)
            .await
            .unwrap();
        assert_eq!(live.len(), 1);
        assert_eq!(live[0].id, ann_sessions[2]);
        let bobs = sessions::live_of(&mut conn, account.id, bob, now)
            .await
            .unwrap();
        assert_eq!(bobs.len(), 1, "another user's sessions stay");
        let none_kept = sessions::revoke_all(&mut conn, account.id, ann, None, now)
            .await
            .unwrap();
        assert_eq!(none_kept, 1);
    }
}

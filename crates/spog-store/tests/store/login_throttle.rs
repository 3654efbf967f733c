use std::time::Duration;

use spog_core::Timestamp;
use spog_core::validate::Email;
use spog_store::StoreError;
use spog_store::identity::login_throttle::{self, Counter};
use spog_store::identity::{accounts, users};
use spog_store::testing::databases;

fn keys(names: &[&str]) -> Vec<String> {
    names.iter().map(|k| (*k).to_owned()).collect()
}

#[tokio::test]
async fn counters_are_created_locked_saved_and_swept_once_expired() {
    for db in databases().await {
        let store = db.store().await;
        let now = Timestamp::now();
        let mut tx = store.begin().await.unwrap();
        let counters = login_throttle::lock(&mut tx, &keys(&["s:a", "p:a|x", "e:x"]))
            .await
            .unwrap();
        let names: Vec<&str> = counters.iter().map(|c| c.key.as_str()).collect();
        assert_eq!(names, ["e:x", "p:a|x", "s:a"], "{:?}", db.backend);
        assert!(counters.iter().all(|c| c.failures == 0));
        let kept = Counter {
            failures: 3,
            last_failure_at: now,
            blocked_until: now.plus(Duration::from_secs(2)),
            familiar_until: Timestamp::from_micros(0),
            expires_at: now.plus(Duration::from_secs(900)),
            ..counters[1].clone()
        };
        login_throttle::save(&mut tx, &kept).await.unwrap();
        tx.commit_unaudited().await.unwrap();

        let mut tx = store.begin().await.unwrap();
        let again = login_throttle::lock(&mut tx, &keys(&["p:a|x"]))
            .await
            .unwrap();
        assert_eq!(again, vec![kept.clone()]);
        // The two counters never saved are empty and expired; the saved one lasts its window.
        assert_eq!(login_throttle::sweep(&mut tx, now).await.unwrap(), 2);
        let later = now.plus(Duration::from_secs(901));
        assert_eq!(login_throttle::sweep(&mut tx, later).await.unwrap(), 1);
        assert_eq!(login_throttle::count(&mut tx).await.unwrap(), 0);
        tx.commit_unaudited().await.unwrap();
    }
}

#[tokio::test]
async fn an_email_is_unique_within_an_account_only_and_login_finds_it_in_each() {
    for db in databases().await {
        let store = db.store().await;
        let now = Timestamp::now();
        let email = Email::parse("email", "shared@example.com").unwrap();
        let new = || users::NewUser {
            email: email.clone(),
            display_name: "shared".into(),
            password_hash: None,
            roles: Vec::new(),
            identities: Vec::new(),
        };
        let mut tx = store.begin().await.unwrap();
        let (acme, _) = accounts::create(&mut tx, "acme", now).await.unwrap();
        let (globex, _) = accounts::create(&mut tx, "globex", now).await.unwrap();
        users::create(&mut tx, acme.id, new(), now).await.unwrap();
        users::create(&mut tx, globex.id, new(), now).await.unwrap();
        tx.commit_unaudited().await.unwrap();
        let mut tx = store.begin().await.unwrap();
        let twice = users::create(&mut tx, acme.id, new(), now).await;
        assert!(
            matches!(twice, Err(StoreError::Conflict(_))),
            "{:?}",
            db.backend
        );
        drop(tx);
        let mut conn = store.conn().await.unwrap();
        let candidates = users::login_candidates(&mut conn, &email).await.unwrap();
        let mut accounts: Vec<_> = candidates.iter().map(|c| c.account).collect();
        accounts.sort();
        let mut expected = vec![acme.id, globex.id];
        expected.sort();
        assert_eq!(accounts, expected);
    }
}

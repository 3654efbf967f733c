use spog_core::model::ExternalIdentity;
use spog_core::validate::Email;
use spog_core::validate::Name;
use spog_core::{Permission, Timestamp};
use spog_store::StoreError;
use spog_store::identity::{accounts, hosts, organizations, roles, users};
use spog_store::testing::databases;

fn email(text: &str) -> Email {
    Email::parse("email", text).unwrap()
}

#[tokio::test]
async fn a_new_account_has_builtin_roles_and_a_default_organization() {
    for db in databases().await {
        let store = db.store().await;
        let mut tx = store.begin().await.unwrap();
        let (account, organization) = accounts::create(&mut tx, "acme", Timestamp::now())
            .await
            .unwrap();
        tx.commit_unaudited().await.unwrap();
        let mut conn = store.conn().await.unwrap();
        let names: Vec<String> = roles::list(&mut conn, account.id)
            .await
            .unwrap()
            .into_iter()
            .map(|r| r.name)
            .collect();
        assert_eq!(
            names,
            ["admin", "auditor", "operator", "viewer"],
            "{:?}",
            db.backend
        );
        assert_eq!(organization.name, "default");
        assert_eq!(
            organizations::list(&mut conn, account.id)
                .await
                .unwrap()
                .len(),
            1
        );
    }
}

#[tokio::test]
async fn users_get_their_roles_permissions_and_identities() {
    for db in databases().await {
        let store = db.store().await;
        let now = Timestamp::now();
        let mut tx = store.begin().await.unwrap();
        let (account, _) = accounts::create(&mut tx, "acme", now).await.unwrap();
        let auditor = roles::resolve(&mut tx, account.id, &["auditor".into()], "roles")
            .await
            .unwrap();
        let identity = ExternalIdentity {
            provider: "okta".into(),
            subject: "00u1".into(),
        };
        let user = users::create(
            &mut tx,
            account.id,
            users::NewUser {
                email: email("ada@example.com"),
                display_name: "Ada".into(),
                password_hash: None,
                roles: auditor,
                identities: vec![identity.clone()],
            },
            now,
        )
        .await
        .unwrap();
        tx.commit_unaudited().await.unwrap();
        let mut conn = store.conn().await.unwrap();
        assert_eq!(user.roles, ["auditor"]);
        let permissions = roles::permissions_of(&mut conn, user.id).await.unwrap();
        assert!(permissions.contains(Permission::AuditLogsExport));
        assert!(!permissions.contains(Permission::UsersManage));
        let found = users::by_identity(&mut conn, account.id, &identity)
            .await
            .unwrap();
        assert_eq!(found.id, user.id);
        let unknown = roles::resolve(&mut conn, account.id, &["root".into()], "roles").await;
        assert!(matches!(unknown, Err(StoreError::Invalid(e)) if e.field == "roles"));
    }
}

#[tokio::test]
async fn another_accounts_objects_are_not_found() {
    for db in databases().await {
        let store = db.store().await;
        let now = Timestamp::now();
        let mut tx = store.begin().await.unwrap();
        let (acme, acme_org) = accounts::create(&mut tx, "acme", now).await.unwrap();
        let (globex, _) = accounts::create(&mut tx, "globex", now).await.unwrap();
        let host = hosts::create(&mut tx, acme.id, acme_org.id, "web-1", "web 1", now)
            .await
            .unwrap();
        tx.commit_unaudited().await.unwrap();
        let mut conn = store.conn().await.unwrap();
        assert!(hosts::get(&mut conn, acme.id, host.id).await.is_ok());
        assert!(matches!(
            hosts::get(&mut conn, globex.id, host.id).await,
            Err(StoreError::NotFound)
        ));
        assert!(matches!(
            organizations::get(&mut conn, globex.id, acme_org.id).await,
            Err(StoreError::NotFound)
        ));
        assert!(matches!(
            hosts::delete(&mut conn, globex.id, host.id).await,
            Err(StoreError::NotFound)
        ));
    }
}

#[tokio::test]
async fn duplicate_names_are_conflicts() {
    for db in databases().await {
        let store = db.store().await;
        let now = Timestamp::now();
        let mut tx = store.begin().await.unwrap();
        let (account, _) = accounts::create(&mut tx, "acme", now).await.unwrap();
        let ops = Name::parse("name", "ops", 200).unwrap();
        organizations::create(&mut tx, account.id, &ops, now)
            .await
            .unwrap();
        let again = organizations::create(&mut tx, account.id, &ops, now).await;
        assert!(
            matches!(again, Err(StoreError::Conflict(_))),
            "{:?}",
            db.backend
        );
    }
}

#[tokio::test]
async fn user_pages_resume_after_the_cursor_and_refuse_foreign_cursors() {
    for db in databases().await {
        let store = db.store().await;
        let now = Timestamp::now();
        let mut tx = store.begin().await.unwrap();
        let (account, _) = accounts::create(&mut tx, "acme", now).await.unwrap();
        let (other, _) = accounts::create(&mut tx, "other", now).await.unwrap();
        for n in 0..5 {
            let new = users::NewUser {
                email: email(&format!("u{n}@example.com")),
                display_name: format!("U{n}"),
                password_hash: None,
                roles: vec![],
                identities: vec![],
            };
            users::create(&mut tx, account.id, new, now).await.unwrap();
        }
        tx.commit_unaudited().await.unwrap();
        let mut conn = store.conn().await.unwrap();
        let first = users::list(&mut conn, account.id, 3, None).await.unwrap();
        assert_eq!(first.items.len(), 3);
        let cursor = first.next_cursor.unwrap();
        let rest = users::list(&mut conn, account.id, 3, Some(&cursor))
            .await
            .unwrap();
        let emails: Vec<_> = rest.items.iter().map(|u| u.email.as_str()).collect();
        assert_eq!(emails, ["u3@example.com", "u4@example.com"]);
        assert_eq!(rest.next_cursor, None);
        let foreign = users::list(&mut conn, other.id, 3, Some(&cursor)).await;
        assert!(matches!(foreign, Err(StoreError::Invalid(e)) if e.field == "cursor"));
    }
}

//! Single sign-on's state: providers of an account, sign-ins under way taken exactly once,
//! identities unlinked with their provider, and the account's sign-in policy.

use spog_core::model::ExternalIdentity;
use spog_core::sso::{AuthSettings, Discovery, ProviderSettings, TokenAuthMethod};
use spog_core::validate::Email;
use spog_core::{Id, Timestamp};
use spog_store::StoreError;
use spog_store::identity::providers::{self, StoredProvider};
use spog_store::identity::sso_logins::{self, PendingLogin};
use spog_store::identity::{accounts, auth_settings, users};
use spog_store::testing::databases;

fn settings(name: &str) -> ProviderSettings {
    ProviderSettings {
        name: name.into(),
        issuer: "https://id.example.com".into(),
        client_id: "spog".into(),
        token_auth_method: TokenAuthMethod::ClientSecretBasic,
        scopes: vec!["openid".into()],
        email_claim: "email".into(),
        name_claim: "name".into(),
        groups_claim: None,
        role_mappings: vec![],
        default_roles: vec![],
        allowed_domains: vec![],
        jit_provisioning: false,
        link_by_email: false,
        enabled: true,
        show_on_login: true,
        rp_logout: false,
    }
}

#[tokio::test]
async fn sign_ins_are_taken_once_and_providers_take_their_identities_with_them() {
    for db in databases().await {
        let store = db.store().await;
        let now = Timestamp::now();
        let mut tx = store.begin().await.unwrap();
        let (account, _) = accounts::create(&mut tx, "acme", now).await.unwrap();
        let (other, _) = accounts::create(&mut tx, "other", now).await.unwrap();
        let provider = StoredProvider {
            id: Id::new(),
            account: account.id,
            settings: settings("Corp"),
            client_secret_ciphertext: Some("sealed".into()),
            discovery: Discovery {
                authorization_endpoint: "https://id.example.com/a".into(),
                token_endpoint: "https://id.example.com/t".into(),
                jwks_uri: "https://id.example.com/k".into(),
                userinfo_endpoint: None,
                end_session_endpoint: None,
                fetched_at: now,
            },
            created_at: now,
            updated_at: now,
        };
        providers::create(&mut tx, &provider).await.unwrap();
        assert_eq!(providers::count(&mut tx, account.id).await.unwrap(), (1, 1));
        assert!(matches!(
            providers::get(&mut tx, other.id, provider.id).await,
            Err(StoreError::NotFound)
        ));
        let found = providers::for_sign_in(&mut tx, provider.id).await.unwrap();
        assert_eq!(found.settings, provider.settings);
        assert_eq!(found.account, account.id);

        let pending = |state: &str, expires_at| PendingLogin {
            state_hash: state.into(),
            account: account.id,
            provider: provider.id,
            browser_hash: "browser".into(),
            nonce: "nonce".into(),
            code_verifier: "verifier".into(),
            next: "/".into(),
            created_at: now,
            expires_at,
        };
        let later = now.plus(std::time::Duration::from_secs(600));
        sso_logins::insert(&mut tx, &pending("fresh", later))
            .await
            .unwrap();
        sso_logins::insert(&mut tx, &pending("stale", now))
            .await
            .unwrap();
        let taken = sso_logins::take(&mut tx, "fresh").await.unwrap().unwrap();
        assert_eq!(taken.nonce, "nonce");
        assert!(sso_logins::take(&mut tx, "fresh").await.unwrap().is_none());
        let after = now.plus(std::time::Duration::from_secs(1));
        assert_eq!(sso_logins::delete_expired(&mut tx, after).await.unwrap(), 1);
        assert!(sso_logins::take(&mut tx, "stale").await.unwrap().is_none());

        let identity = ExternalIdentity {
            provider: provider.id.to_string(),
            subject: "ann".into(),
        };
        let new = users::NewUser {
            email: Email::parse("email", "ann@example.com").unwrap(),
            display_name: "Ann".into(),
            password_hash: None,
            roles: Vec::new(),
            identities: vec![identity.clone()],
        };
        let ann = users::create(&mut tx, account.id, new, now).await.unwrap();
        assert_eq!(
            providers::delete(&mut tx, account.id, provider.id)
                .await
                .unwrap(),
            1
        );
        assert!(matches!(
            users::by_identity(&mut tx, account.id, &identity).await,
            Err(StoreError::NotFound)
        ));
        assert!(users::get(&mut tx, account.id, ann.id).await.is_ok());

        assert!(
            !auth_settings::get(&mut tx, account.id)
                .await
                .unwrap()
                .sso_only
        );
        let policy = AuthSettings {
            account_id: account.id,
            sso_only: true,
            break_glass_user_ids: vec![ann.id],
        };
        auth_settings::put(&mut tx, &policy, now).await.unwrap();
        auth_settings::put(&mut tx, &policy, now).await.unwrap();
        assert_eq!(
            auth_settings::get(&mut tx, account.id).await.unwrap(),
            policy
        );
        assert!(
            !auth_settings::get(&mut tx, other.id)
                .await
                .unwrap()
                .sso_only
        );
    }
}

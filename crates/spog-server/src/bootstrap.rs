//! First start on an empty database: the default account, its organization and an admin.
//! Several instances may start at once on one PostgreSQL; one wins, the others find the
//! account already there.

use rand::Rng;
use rand::distributions::Alphanumeric;
use serde_json::json;
use spog_core::audit::{Action, Actor, Source};
use spog_core::validate::Email;
use spog_core::{BuiltinRole, Timestamp};
use spog_store::identity::{accounts, roles, users};
use spog_store::{Store, StoreError};

use crate::auth::password;
use crate::config::Config;

pub const DEFAULT_ACCOUNT: &str = "default";

/// The admin created on first start, to print once.
#[derive(Clone, Debug)]
pub struct FirstAdmin {
    pub email: String,
    /// Present when generated (not configured): it is shown only this once.
    pub generated_password: Option<String>,
}

pub async fn first_start(store: &Store, config: &Config) -> anyhow::Result<Option<FirstAdmin>> {
    if accounts::count(&mut *store.conn().await?).await? > 0 {
        return Ok(None);
    }
    let (password, generated) = match &config.admin_password {
        Some(secret) => (secret.expose().to_owned(), false),
        None => (generate_password(), true),
    };
    let email = Email::parse("admin_email", &config.admin_email)?;
    match create_account(store, DEFAULT_ACCOUNT, &email, &password, Source::Scheduler).await {
        Ok(_) => Ok(Some(FirstAdmin {
            email: email.into_string(),
            generated_password: generated.then_some(password),
        })),
        // Another instance initialised the database first.
        Err(CreateAccountError::Store(StoreError::Conflict(_))) => Ok(None),
        Err(other) => Err(other.into()),
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CreateAccountError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{0}")]
    Invalid(String),
}

/// A new account with its default organization and an admin; every step on record.
pub async fn create_account(
    store: &Store,
    name: &str,
    admin_email: &Email,
    admin_password: &str,
    source: Source,
) -> Result<spog_core::model::Account, CreateAccountError> {
    spog_core::validate::password("admin_password", admin_password)
        .map_err(|e| CreateAccountError::Invalid(e.to_string()))?;
    let hash = password::Hashing::default()
        .hash(admin_password.to_owned())
        .await
        .map_err(|e| CreateAccountError::Invalid(e.to_string()))?;
    let now = Timestamp::now();
    let mut tx = store.begin().await?;
    let (account, organization) = accounts::create(&mut tx, name, now).await?;
    let admin_role = roles::resolve(
        &mut tx,
        account.id,
        &[BuiltinRole::Admin.name().to_owned()],
        "role",
    )
    .await?;
    let new = users::NewUser {
        email: admin_email.clone(),
        display_name: "Administrator".to_owned(),
        password_hash: Some(hash),
        roles: admin_role,
        identities: Vec::new(),
    };
    let admin = users::create(&mut tx, account.id, new, now).await?;
    let spog = Actor::system(account.id, "spog", source);
    let entries = vec![
        spog.did(Action::AccountCreate, &account).after(&account),
        spog.did(Action::OrganizationCreate, &organization)
            .after(&organization),
        spog.did(Action::UserCreate, &admin)
            .after(&admin)
            .metadata(json!({"reason": "first admin of the account"})),
    ];
    tx.record_all(entries).await?;
    tx.commit().await?;
    Ok(account)
}

fn generate_password() -> String {
    rand::thread_rng()
        .sample_iter(&Alphanumeric)
        .take(20)
        .map(char::from)
        .collect()
}

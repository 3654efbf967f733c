//! What the command line does to an account, on record like any other change: the actor is
//! `system` and the source `cli`.

use spog_core::audit::{Action, Actor, ActorType, Source};
use spog_core::model::{Account, User};
use spog_core::validate::{self, Email};
use spog_core::{PermissionSet, Timestamp};
use spog_store::Store;
use spog_store::identity::{accounts, roles, tokens as token_store, users};

use crate::auth::{password, tokens};

/// The command line, the actor of what it changes in `account`.
fn cli(account: &Account) -> Actor {
    Actor::system(account.id, "spog cli", Source::Cli)
}

pub async fn create_user(
    store: &Store,
    account: &str,
    email: &str,
    password_text: &str,
    role: &str,
) -> anyhow::Result<User> {
    let email = Email::parse("email", email)?;
    validate::password("password", password_text)?;
    let hash = password::Hashing::default()
        .hash(password_text.to_owned())
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut tx = store.begin().await?;
    let account = accounts::by_name(&mut tx, account)
        .await
        .map_err(|_| anyhow::anyhow!("no account named `{account}`"))?;
    let roles = roles::resolve(&mut tx, account.id, &[role.to_owned()], "role").await?;
    let display_name = email
        .as_str()
        .split('@')
        .next()
        .unwrap_or_default()
        .to_owned();
    let new = users::NewUser {
        email,
        display_name,
        password_hash: Some(hash),
        roles,
        identities: Vec::new(),
    };
    let user = users::create(&mut tx, account.id, new, Timestamp::now()).await?;
    tx.record(cli(&account).did(Action::UserCreate, &user).after(&user))
        .await?;
    tx.commit().await?;
    Ok(user)
}

/// Creates a token and returns its secret, which is shown only this once.
pub async fn create_token(
    store: &Store,
    account: &str,
    name: &str,
    actor_type: &str,
    permissions: &[String],
) -> anyhow::Result<String> {
    let name = validate::name("name", name, 200)?;
    let actor_type = ActorType::parse(actor_type)
        .filter(|a| *a != ActorType::User)
        .ok_or_else(|| anyhow::anyhow!("--actor-type must be system, agent or workflow (user tokens are made through the API, as their user)"))?;
    let permissions = PermissionSet::parse(permissions.iter().map(String::as_str))
        .map_err(|name| anyhow::anyhow!("unknown permission `{name}`"))?;
    let mut tx = store.begin().await?;
    let account = accounts::by_name(&mut tx, account)
        .await
        .map_err(|_| anyhow::anyhow!("no account named `{account}`"))?;
    let secret = tokens::generate();
    let new = token_store::NewToken {
        name,
        token_hash: secret.hash,
        prefix: secret.prefix,
        actor_type,
        permissions,
        user_id: None,
        created_by: None,
        expires_at: None,
    };
    let token = token_store::create(&mut tx, account.id, new, Timestamp::now()).await?;
    tx.record(
        cli(&account)
            .did(Action::ApiTokenCreate, &token)
            .after(&token),
    )
    .await?;
    tx.commit().await?;
    Ok(secret.token)
}

/// Creates an enrollment token (SPEC 12.1) that expires after `expires`; returns its secret,
/// which is shown only this once.
pub async fn create_enrollment_token(
    store: &Store,
    account: &str,
    organization: Option<&str>,
    expires: std::time::Duration,
    host: Option<&str>,
) -> anyhow::Result<String> {
    let organization = organization
        .map(|o| {
            o.parse()
                .map_err(|_| anyhow::anyhow!("--organization is not an id"))
        })
        .transpose()?;
    let host = host
        .map(|h| {
            h.parse()
                .map_err(|_| anyhow::anyhow!("--host is not an id"))
        })
        .transpose()?;
    let now = Timestamp::now();
    let mut tx = store.begin().await?;
    let account = accounts::by_name(&mut tx, account)
        .await
        .map_err(|_| anyhow::anyhow!("no account named `{account}`"))?;
    let request = crate::agents::tokens::TokenRequest {
        organization,
        description: Some("created with spog admin enrollment-token create".to_owned()),
        expires_at: Some(now.plus(expires)),
        host,
    };
    let (token, secret) = crate::agents::tokens::create(&mut tx, account.id, request, None, now)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    tx.record(
        cli(&account)
            .did(Action::EnrollmentTokenCreate, &token)
            .after(&token),
    )
    .await?;
    tx.commit().await?;
    Ok(secret)
}

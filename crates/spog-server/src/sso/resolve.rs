//! What a verified identity signs into (SPEC 2.1): the user it is linked to, else the
//! account's user with its verified email (with `link_by_email`), else a new user (with
//! `jit_provisioning`); the user's roles re-synced from the groups claim; a session opened
//! as a password login opens one. Every outcome is on the account's record.

use serde_json::{Value, json};
use spog_core::audit::{Action, Actor, ActorType, Source};
use spog_core::model::{ExternalIdentity, User};
use spog_core::validate::Email;
use spog_core::{Id, Timestamp};
use spog_store::identity::providers::StoredProvider;
use spog_store::identity::sessions::{self, Session};
use spog_store::identity::{auth_settings, roles, users};
use spog_store::{StoreError, Tx};

use super::signin::{Failure, Verified};
use crate::auth::{RequestInfo, jwt};
use crate::error::ApiError;
use crate::state::AppState;

/// A session opened through a provider.
pub struct SignedIn {
    pub token: String,
    pub expires_at: Timestamp,
    pub next: String,
    pub user: User,
}

/// What the ID token (and userinfo) say about the person.
struct Person {
    email: Option<String>,
    email_verified: bool,
    name: Option<String>,
    groups: Option<Vec<String>>,
}

fn person(provider: &StoredProvider, verified: &Verified) -> Person {
    let settings = &provider.settings;
    let text = |claim: &str| {
        verified
            .claims
            .get(claim)
            .and_then(Value::as_str)
            .map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty())
    };
    let groups =
        settings
            .groups_claim
            .as_ref()
            .map(|claim| match verified.claims.get(claim.as_str()) {
                Some(Value::String(group)) => vec![group.clone()],
                Some(Value::Array(groups)) => groups
                    .iter()
                    .filter_map(Value::as_str)
                    .take(1000)
                    .map(str::to_owned)
                    .collect(),
                _ => Vec::new(),
            });
    Person {
        email: text(&settings.email_claim).map(|e| e.to_ascii_lowercase()),
        email_verified: matches!(
            verified.claims.get("email_verified"),
            Some(Value::Bool(true))
        ) || verified
            .claims
            .get("email_verified")
            .and_then(Value::as_str)
            == Some("true"),
        name: text(&settings.name_claim),
        groups,
    }
}

/// Resolves the identity, syncs roles and opens the session, in one transaction.
pub async fn sign_in(
    state: &AppState,
    request: &RequestInfo,
    provider: &StoredProvider,
    verified: Verified,
) -> Result<SignedIn, Failure> {
    let person = person(provider, &verified);
    let failure = |reason: &'static str, message: &str| Failure {
        subject: Some(verified.subject.clone()),
        email: person.email.clone(),
        ..Failure::new(reason, message)
    };
    let internal = |e: StoreError| Failure::new("internal", e.to_string());
    if !provider.settings.allowed_domains.is_empty()
        && !person
            .email
            .as_deref()
            .is_some_and(|email| provider.settings.allows_email(email))
    {
        return Err(failure(
            "email_not_allowed",
            "Your email address is not in a domain this sign-in accepts.",
        ));
    }
    let account = provider.account;
    let identity = ExternalIdentity {
        provider: provider.id.to_string(),
        subject: verified.subject.clone(),
    };
    let mut tx = state.store.begin().await.map_err(internal)?;
    let actor_of = |user: &User| Actor {
        id: Some(user.id.to_string()),
        email: Some(user.email.clone()),
        name: Some(user.display_name.clone()),
        ..request.actor(account, ActorType::User, Source::Web)
    };
    let (user, linked) = match users::by_identity(&mut tx, account, &identity).await {
        Ok(user) => (user, "existing"),
        Err(StoreError::NotFound) => {
            let email = person
                .email
                .as_deref()
                .and_then(|e| Email::parse("email", e).ok());
            let settings = &provider.settings;
            let Some(email) = email.filter(|_| settings.link_by_email || settings.jit_provisioning)
            else {
                return Err(failure(
                    "no_user",
                    "No user of this account is linked to your identity.",
                ));
            };
            if !person.email_verified {
                return Err(failure(
                    "email_unverified",
                    "The identity provider has not verified your email address.",
                ));
            }
            let holders = users::login_candidates(&mut tx, &email)
                .await
                .map_err(internal)?;
            let own = holders.iter().find(|c| c.account == account);
            match own {
                Some(holder) if settings.link_by_email => {
                    let user = users::get(&mut tx, account, holder.user)
                        .await
                        .map_err(internal)?;
                    let mut identities = user.identities.clone();
                    identities.push(identity.clone());
                    let changes = users::UserChanges {
                        identities: Some(identities),
                        ..Default::default()
                    };
                    let after = users::update(&mut tx, account, user.id, changes, Timestamp::now())
                        .await
                        .map_err(internal)?;
                    (after, "email")
                }
                Some(_) => {
                    return Err(failure(
                        "no_user",
                        "A user with your email exists but is not linked to your identity.",
                    ));
                }
                None if !holders.is_empty() => {
                    return Err(failure(
                        "email_conflict",
                        "Your email address belongs to a user elsewhere.",
                    ));
                }
                None if settings.jit_provisioning => {
                    let roles = mapped_roles(&mut tx, provider, person.groups.as_deref())
                        .await
                        .map_err(internal)?;
                    let display_name = person
                        .name
                        .clone()
                        .map(|n| n.chars().take(200).collect())
                        .unwrap_or_else(|| {
                            email
                                .as_str()
                                .split('@')
                                .next()
                                .unwrap_or_default()
                                .to_owned()
                        });
                    let new = users::NewUser {
                        email,
                        display_name,
                        password_hash: None,
                        roles,
                        identities: vec![identity.clone()],
                    };
                    let user = users::create(&mut tx, account, new, Timestamp::now())
                        .await
                        .map_err(internal)?;
                    let entry = actor_of(&user).did(Action::UserCreate, &user).after(&user);
                    tx.record(entry.metadata(json!({"provider_id": provider.id.to_string()})))
                        .await
                        .map_err(internal)?;
                    (user, "created")
                }
                None => {
                    return Err(failure(
                        "no_user",
                        "No user of this account is linked to your identity.",
                    ));
                }
            }
        }
        Err(other) => return Err(internal(other)),
    };
    if !user.active {
        return Err(failure("user_inactive", "Your user is deactivated."));
    }
    let policy = auth_settings::get(&mut tx, account)
        .await
        .map_err(internal)?;
    let break_glass = policy.break_glass_user_ids.contains(&user.id);
    let user = if linked != "created" && !break_glass && person.groups.is_some() {
        sync_roles(
            &mut tx,
            provider,
            &user,
            person.groups.as_deref(),
            &actor_of(&user),
        )
        .await
        .map_err(internal)?
    } else {
        user
    };
    let now = Timestamp::now();
    let session: Id<Session> = Id::new();
    let expires_at = now.plus(state.config.session_ttl);
    let origin = sessions::Origin {
        ip: request.ip.clone(),
        user_agent: request.user_agent.clone(),
        provider_id: Some(provider.id.to_string()),
    };
    sessions::create(
        &mut tx,
        account,
        user.id,
        session,
        (now, expires_at),
        &origin,
    )
    .await
    .map_err(internal)?;
    users::record_login(&mut tx, user.id, now)
        .await
        .map_err(internal)?;
    let entry = actor_of(&user)
        .did(Action::AuthSsoLogin, &user)
        .metadata(json!({
            "provider_id": provider.id.to_string(),
            "subject": verified.subject,
            "session_id": session.to_string(),
            "linked": linked,
        }));
    tx.record(entry).await.map_err(internal)?;
    tx.commit().await.map_err(internal)?;
    let claims = jwt::Claims {
        sub: user.id.to_string(),
        sid: session.to_string(),
        acc: account.to_string(),
        iat: now.unix_seconds(),
        exp: expires_at.unix_seconds(),
    };
    Ok(SignedIn {
        token: jwt::issue(&state.keys.jwt, &claims),
        expires_at,
        next: verified.next,
        user,
    })
}

/// The roles the provider grants for `groups` (its default roles without a groups claim);
/// names of roles deleted since are passed over.
async fn mapped_roles(
    tx: &mut Tx,
    provider: &StoredProvider,
    groups: Option<&[String]>,
) -> Result<Vec<spog_core::model::Role>, StoreError> {
    let names = provider.settings.role_names(groups);
    let all = roles::list(tx, provider.account).await?;
    Ok(all
        .into_iter()
        .filter(|r| names.contains(&r.name))
        .collect())
}

/// Replaces the user's roles by those the groups map to; a change is audited `user.update`.
async fn sync_roles(
    tx: &mut Tx,
    provider: &StoredProvider,
    user: &User,
    groups: Option<&[String]>,
    actor: &Actor,
) -> Result<User, StoreError> {
    let roles = mapped_roles(tx, provider, groups).await?;
    let mut wanted: Vec<&str> = roles.iter().map(|r| r.name.as_str()).collect();
    let mut held: Vec<&str> = user.roles.iter().map(String::as_str).collect();
    wanted.sort_unstable();
    held.sort_unstable();
    if wanted == held {
        return Ok(user.clone());
    }
    let changes = users::UserChanges {
        roles: Some(roles),
        ..Default::default()
    };
    let after = users::update(tx, provider.account, user.id, changes, Timestamp::now()).await?;
    let entry = actor
        .changed(Action::UserUpdate, user, &after)
        .metadata(json!({
            "provider_id": provider.id.to_string(),
            "reason": "roles synced from the identity provider's groups",
        }));
    tx.record(entry).await?;
    Ok(after)
}

/// Puts a failed sign-in on the provider's account's record.
pub async fn record_failure(
    state: &AppState,
    request: &RequestInfo,
    provider: &StoredProvider,
    failure: &Failure,
) -> Result<(), ApiError> {
    let mut actor = request.actor(provider.account, ActorType::User, Source::Web);
    actor.email = failure.email.clone();
    let mut metadata = json!({
        "provider_id": provider.id.to_string(),
        "reason": failure.reason,
    });
    if let Some(subject) = &failure.subject {
        metadata["subject"] = json!(subject);
    }
    if let Some(email) = &failure.email {
        metadata["email"] = json!(email);
    }
    let mut tx = state.store.begin().await?;
    tx.record(
        actor
            .entry(Action::AuthSsoLogin)
            .failed()
            .metadata(metadata),
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

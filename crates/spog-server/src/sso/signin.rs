//! The browser's round trip through the provider: [`start`] sends it to the authorization
//! endpoint with a fresh `state`, `nonce` and PKCE challenge, remembered in the database and
//! bound to the browser by a cookie; [`verify_callback`] takes the sign-in back exactly once,
//! exchanges the code and verifies the ID token. What the identity then resolves to is
//! [`super::resolve`]'s.

use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{Map, Value};
use spog_core::sso::{IdentityProvider, TokenAuthMethod};
use spog_core::{Id, Timestamp};
use spog_store::StoreError;
use spog_store::identity::providers::{self, StoredProvider};
use spog_store::identity::sso_logins::{self, PendingLogin};

use super::client::OidcHttpError;
use super::id_token::{Expected, Rejected};
use super::{pkce_challenge, random_token, redirect_uri, sha256_hex};
use crate::error::ApiError;
use crate::secrets;
use crate::state::AppState;

/// Most sign-ins under way at one provider (each waits `sso_state_ttl` at most).
const MAX_PENDING: i64 = 10_000;

/// The cookie binding sign-ins under way to this browser.
pub const BROWSER_COOKIE: &str = "spog_sso";

/// A sign-in that failed, with the reason the audit trail and the page give.
#[derive(Debug)]
pub struct Failure {
    pub reason: &'static str,
    pub message: String,
    pub subject: Option<String>,
    pub email: Option<String>,
}

impl Failure {
    pub fn new(reason: &'static str, message: impl Into<String>) -> Self {
        Self {
            reason,
            message: message.into(),
            subject: None,
            email: None,
        }
    }

    pub fn status(&self) -> StatusCode {
        match self.reason {
            "state_mismatch" | "state_expired" => StatusCode::BAD_REQUEST,
            "invalid_token" | "nonce_mismatch" | "idp_error" => StatusCode::UNAUTHORIZED,
            "idp_unreachable" => StatusCode::BAD_GATEWAY,
            _ => StatusCode::FORBIDDEN,
        }
    }
}

/// Why a sign-in cannot even be judged.
#[derive(Debug)]
pub enum SignInError {
    /// Unknown or disabled provider: 404, on no account's record.
    NotFound,
    Internal(ApiError),
}

impl From<StoreError> for SignInError {
    fn from(error: StoreError) -> Self {
        SignInError::Internal(error.into())
    }
}

/// The enabled provider `id`.
pub async fn enabled_provider(
    state: &AppState,
    id: Id<IdentityProvider>,
) -> Result<StoredProvider, SignInError> {
    let mut conn = state.store.conn().await.map_err(SignInError::from)?;
    match providers::for_sign_in(&mut conn, id).await {
        Ok(provider) if provider.settings.enabled => Ok(provider),
        Ok(_) | Err(StoreError::NotFound) => Err(SignInError::NotFound),
        Err(other) => Err(other.into()),
    }
}

/// Where to send the browser, and the browser binding its cookie keeps.
pub struct Started {
    pub location: String,
    pub browser: String,
}

/// Remembers a new sign-in at `provider` for the browser holding `browser` (a new binding
/// when it has none) and returns where to send it.
pub async fn start(
    state: &AppState,
    provider: &StoredProvider,
    base: &str,
    next: String,
    browser: Option<&str>,
) -> Result<Started, SignInError> {
    let browser = browser
        .filter(|b| {
            b.len() == 43
                && b.bytes()
                    .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_')
        })
        .map(str::to_owned)
        .unwrap_or_else(random_token);
    let (state_value, nonce, verifier) = (random_token(), random_token(), random_token());
    let now = Timestamp::now();
    let login = PendingLogin {
        state_hash: sha256_hex(&state_value),
        account: provider.account,
        provider: provider.id,
        browser_hash: sha256_hex(&browser),
        nonce: nonce.clone(),
        code_verifier: verifier.clone(),
        next,
        created_at: now,
        expires_at: now.plus(state.config.sso_state_ttl),
    };
    let mut conn = state.store.conn().await?;
    // Sign-ins nobody came back from go on the way; the index keeps this cheap.
    sso_logins::delete_expired(&mut conn, now).await?;
    // Anyone may start a sign-in: a flood fills a bounded table and waits out the TTL.
    if sso_logins::pending(&mut conn, provider.id).await? >= MAX_PENDING {
        return Err(SignInError::Internal(ApiError::Unavailable(
            "too many sign-ins are under way; try again in a few minutes".to_owned(),
        )));
    }
    sso_logins::insert(&mut conn, &login).await?;
    let settings = &provider.settings;
    let mut location = reqwest::Url::parse(&provider.discovery.authorization_endpoint)
        .map_err(|e| SignInError::Internal(ApiError::Internal(e.into())))?;
    location
        .query_pairs_mut()
        .append_pair("response_type", "code")
        .append_pair("client_id", &settings.client_id)
        .append_pair("redirect_uri", &redirect_uri(base, provider.id))
        .append_pair("scope", &settings.scopes.join(" "))
        .append_pair("state", &state_value)
        .append_pair("nonce", &nonce)
        .append_pair("code_challenge", &pkce_challenge(&verifier))
        .append_pair("code_challenge_method", "S256");
    Ok(Started {
        location: location.into(),
        browser,
    })
}

/// What the provider sends the browser back with.
#[derive(Debug, Default, Deserialize)]
pub struct Callback {
    pub code: Option<String>,
    pub state: Option<String>,
    pub error: Option<String>,
    pub error_description: Option<String>,
}

/// A verified sign-in: the subject and the claims of the ID token (completed from userinfo).
pub struct Verified {
    pub subject: String,
    pub claims: Map<String, Value>,
    pub next: String,
}

/// Takes the sign-in back (once), exchanges the code and verifies the ID token.
pub async fn verify_callback(
    state: &AppState,
    provider: &StoredProvider,
    base: &str,
    callback: &Callback,
    browser: Option<&str>,
) -> Result<Verified, Failure> {
    let login = take_login(state, provider, callback, browser).await?;
    if let Some(error) = &callback.error {
        let description = callback.error_description.as_deref().unwrap_or_default();
        return Err(Failure::new(
            "idp_error",
            format!(
                "The identity provider refused the sign-in: {}{}",
                clip(error),
                if description.is_empty() {
                    String::new()
                } else {
                    format!(" ({})", clip(description))
                }
            ),
        ));
    }
    let Some(code) = callback
        .code
        .as_deref()
        .filter(|c| !c.is_empty() && c.len() <= 4096)
    else {
        return Err(Failure::new(
            "idp_error",
            "The identity provider sent no code.",
        ));
    };
    let tokens = exchange(state, provider, base, code, &login.code_verifier).await?;
    let id_token = tokens
        .get("id_token")
        .and_then(Value::as_str)
        .ok_or_else(|| Failure::new("invalid_token", "The identity provider sent no ID token."))?;
    let expected = Expected {
        provider: provider.id,
        jwks_uri: &provider.discovery.jwks_uri,
        issuer: &provider.settings.issuer,
        client_id: &provider.settings.client_id,
        skew: state.config.oidc_clock_skew,
    };
    let mut claims = state
        .sso
        .keys
        .verify(&state.sso.client, id_token, &expected)
        .await
        .map_err(|rejected| match rejected {
            Rejected::Invalid(why) => Failure::new("invalid_token", why),
            Rejected::Unreachable(why) => Failure::new("idp_unreachable", why),
        })?;
    let subject = claims
        .get("sub")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    if claims.get("nonce").and_then(Value::as_str) != Some(login.nonce.as_str()) {
        return Err(Failure {
            subject: Some(subject),
            ..Failure::new(
                "nonce_mismatch",
                "The ID token is not this sign-in's (nonce).",
            )
        });
    }
    complete_from_userinfo(state, provider, &tokens, &subject, &mut claims).await?;
    Ok(Verified {
        subject,
        claims,
        next: login.next,
    })
}

/// The sign-in `state` names, taken out whatever becomes of it: used once.
async fn take_login(
    state: &AppState,
    provider: &StoredProvider,
    callback: &Callback,
    browser: Option<&str>,
) -> Result<PendingLogin, Failure> {
    let mismatch = || {
        Failure::new(
            "state_mismatch",
            "This sign-in is not the one this browser started; please sign in again.",
        )
    };
    let value = callback
        .state
        .as_deref()
        .filter(|s| !s.is_empty() && s.len() <= 512)
        .ok_or_else(mismatch)?;
    let mut conn = state
        .store
        .conn()
        .await
        .map_err(|e| Failure::new("internal", e.to_string()))?;
    let login = sso_logins::take(&mut conn, &sha256_hex(value))
        .await
        .map_err(|e| Failure::new("internal", e.to_string()))?
        .ok_or_else(mismatch)?;
    let same_browser = browser.is_some_and(|b| {
        crate::auth::constant_time_eq(sha256_hex(b).as_bytes(), login.browser_hash.as_bytes())
    });
    if login.provider != provider.id || login.account != provider.account || !same_browser {
        return Err(mismatch());
    }
    if login.expires_at <= Timestamp::now() {
        return Err(Failure::new(
            "state_expired",
            "This sign-in took too long; please sign in again.",
        ));
    }
    Ok(login)
}

/// The token endpoint's answer to the code, with the client's authentication.
async fn exchange(
    state: &AppState,
    provider: &StoredProvider,
    base: &str,
    code: &str,
    verifier: &str,
) -> Result<Map<String, Value>, Failure> {
    let settings = &provider.settings;
    let secret = match &provider.client_secret_ciphertext {
        Some(sealed) => Some(
            secrets::open_provider_secret(&state.keys, provider.id, sealed).ok_or_else(|| {
                Failure::new(
                    "idp_error",
                    "The client secret cannot be opened with this server's key; set it again.",
                )
            })?,
        ),
        None => None,
    };
    let redirect = redirect_uri(base, provider.id);
    let mut form: Vec<(&str, &str)> = vec![
        ("grant_type", "authorization_code"),
        ("code", code),
        ("redirect_uri", &redirect),
        ("code_verifier", verifier),
    ];
    let mut basic = None;
    match settings.token_auth_method {
        TokenAuthMethod::ClientSecretBasic => {
            basic = Some((
                settings.client_id.as_str(),
                secret.as_deref().unwrap_or_default(),
            ));
        }
        TokenAuthMethod::ClientSecretPost => {
            form.push(("client_id", &settings.client_id));
            form.push(("client_secret", secret.as_deref().unwrap_or_default()));
        }
        TokenAuthMethod::None => form.push(("client_id", &settings.client_id)),
    }
    state
        .sso
        .client
        .post_form(&provider.discovery.token_endpoint, &form, basic)
        .await
        .map_err(|e| match e {
            OidcHttpError::Refused { .. } => Failure::new(
                "idp_error",
                format!("The identity provider refused the code ({e}); it may have expired, please sign in again."),
            ),
            other => Failure::new("idp_unreachable", format!("The token endpoint: {other}")),
        })
}

/// Claims the provider left out of the ID token, from its userinfo endpoint (same `sub`).
async fn complete_from_userinfo(
    state: &AppState,
    provider: &StoredProvider,
    tokens: &Map<String, Value>,
    subject: &str,
    claims: &mut Map<String, Value>,
) -> Result<(), Failure> {
    let settings = &provider.settings;
    let wanted = [
        Some(&settings.email_claim),
        Some(&settings.name_claim),
        settings.groups_claim.as_ref(),
    ];
    let missing = wanted
        .iter()
        .flatten()
        .any(|claim| !claims.contains_key(claim.as_str()));
    let (Some(endpoint), Some(access)) = (
        provider.discovery.userinfo_endpoint.as_deref(),
        tokens.get("access_token").and_then(Value::as_str),
    ) else {
        return Ok(());
    };
    if !missing {
        return Ok(());
    }
    let info = state
        .sso
        .client
        .get_json(endpoint, Some(access))
        .await
        .map_err(|e| match e {
            OidcHttpError::Unreachable(why) => {
                Failure::new("idp_unreachable", format!("The userinfo endpoint: {why}"))
            }
            other => Failure::new("invalid_token", format!("The userinfo endpoint: {other}")),
        })?;
    if info.get("sub").and_then(Value::as_str) != Some(subject) {
        return Err(Failure::new(
            "invalid_token",
            "The userinfo answer is about another subject.",
        ));
    }
    for (key, value) in info {
        claims.entry(key).or_insert(value);
    }
    Ok(())
}

fn clip(text: &str) -> String {
    text.chars().filter(|c| !c.is_control()).take(200).collect()
}

/// Where the console sends a browser whose session came from `provider` once it logged out:
/// the provider's `end_session_endpoint` (RP-initiated logout, with `client_id` and back to
/// `/login`) when the provider has `rp_logout`, else nowhere.
pub async fn logout_url(
    state: &AppState,
    account: Id<spog_core::model::Account>,
    provider: &str,
    base: &str,
) -> Result<Option<String>, ApiError> {
    let Ok(provider) = provider.parse::<Id<IdentityProvider>>() else {
        return Ok(None);
    };
    let mut conn = state.store.conn().await?;
    let provider = match providers::get(&mut conn, account, provider).await {
        Ok(provider) => provider,
        Err(StoreError::NotFound) => return Ok(None),
        Err(other) => return Err(other.into()),
    };
    let endpoint = provider
        .discovery
        .end_session_endpoint
        .as_deref()
        .filter(|_| provider.settings.rp_logout && provider.settings.enabled);
    let Some(Ok(mut url)) = endpoint.map(reqwest::Url::parse) else {
        return Ok(None);
    };
    url.query_pairs_mut()
        .append_pair("client_id", &provider.settings.client_id)
        .append_pair("post_logout_redirect_uri", &format!("{base}/login"));
    Ok(Some(url.into()))
}

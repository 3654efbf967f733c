//! Single sign-on with OpenID Connect (SPEC 2.1): the authorization code flow with PKCE,
//! `state` and `nonce` ([`signin`]), ID tokens verified against the provider's keys
//! ([`id_token`]), the identity resolved to a user of the provider's account and the
//! session opened ([`resolve`]). Every request to a provider goes through the outbound guard
//! ([`client`]).

pub mod client;
pub mod discovery;
pub mod id_token;
pub mod resolve;
pub mod signin;

use axum::http::HeaderMap;
use axum::http::header::HOST;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngCore;
use sha2::{Digest, Sha256};
use spog_core::Id;
use spog_core::sso::IdentityProvider;
use spog_store::identity::providers::StoredProvider;

use crate::auth::ClientOrigin;
use crate::config::Config;
use client::OidcClient;
use id_token::KeyCache;

/// What single sign-on keeps per instance: the guarded client and the providers' keys.
pub struct Sso {
    pub client: OidcClient,
    pub keys: KeyCache,
}

impl Sso {
    pub fn new(config: &Config) -> anyhow::Result<Self> {
        Ok(Self {
            client: OidcClient::new(config)?,
            keys: KeyCache::default(),
        })
    }
}

/// The external base URL: `public_url`, else the request's scheme and `Host`.
pub fn public_base(config: &Config, headers: &HeaderMap, origin: Option<&ClientOrigin>) -> String {
    if let Some(url) = &config.public_url {
        return url.trim_end_matches('/').to_owned();
    }
    let host = headers
        .get(HOST)
        .and_then(|h| h.to_str().ok())
        .filter(|h| !h.is_empty() && h.len() <= 255 && !h.contains(['/', '\\', '@', ' ']))
        .map(str::to_owned)
        .unwrap_or_else(|| config.listen.to_string());
    let scheme = if origin.is_some_and(|o| o.https) {
        "https"
    } else {
        "http"
    };
    format!("{scheme}://{host}")
}

/// Where the provider sends the browser back: registered at the provider.
pub fn redirect_uri(base: &str, provider: Id<IdentityProvider>) -> String {
    format!("{base}/login/sso/{provider}/callback")
}

/// The provider as the API shows it.
pub fn shown(stored: StoredProvider, base: &str) -> IdentityProvider {
    IdentityProvider {
        id: stored.id,
        account_id: stored.account,
        redirect_uri: redirect_uri(base, stored.id),
        has_client_secret: stored.client_secret_ciphertext.is_some(),
        settings: stored.settings,
        discovery: stored.discovery,
        created_at: stored.created_at,
        updated_at: stored.updated_at,
    }
}

/// 256 random bits, base64url: state, nonce, PKCE verifier and the browser's binding.
pub fn random_token() -> String {
    let mut bytes = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

pub fn sha256_hex(text: &str) -> String {
    hex::encode(Sha256::digest(text.as_bytes()))
}

/// The PKCE S256 challenge of `verifier`.
pub fn pkce_challenge(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

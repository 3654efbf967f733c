//! Verifying an ID token (OpenID Connect Core 3.1.3.7) with `jsonwebtoken` against the
//! provider's JWKS: an asymmetric signature by one of its keys (never `none` or `HS*`),
//! `iss`, `aud`, `azp`, `exp` and `iat` (± `oidc_clock_skew`). The keys are cached per
//! provider; a token signed with a key the cache does not know refetches the JWKS, at most
//! once a minute per provider, so a key rotation at the provider needs no restart.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use jsonwebtoken::jwk::{AlgorithmParameters, JwkSet};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use parking_lot::Mutex;
use serde_json::{Map, Value};
use spog_core::Id;
use spog_core::sso::IdentityProvider;

use super::client::{OidcClient, OidcHttpError};

/// Shortest time between two fetches of one provider's keys for an unknown `kid`.
const REFETCH_AFTER: Duration = Duration::from_secs(60);
/// Most providers whose keys are cached; past it the cache starts over.
const MAX_CACHED: usize = 1000;
/// Signature algorithms accepted: asymmetric only.
const ALGORITHMS: &[Algorithm] = &[
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
    Algorithm::ES256,
    Algorithm::ES384,
    Algorithm::EdDSA,
];

/// Why a token was not accepted.
#[derive(Debug)]
pub enum Rejected {
    /// `invalid_token`, with what was wrong.
    Invalid(String),
    /// The JWKS could not be fetched: `idp_unreachable`.
    Unreachable(String),
}

struct Cached {
    jwks_uri: String,
    keys: JwkSet,
    /// When an unknown `kid` last made this instance fetch the keys again.
    refetched: Option<Instant>,
}

/// The providers' keys, per provider, on this instance.
#[derive(Default)]
pub struct KeyCache {
    cached: Mutex<HashMap<Id<IdentityProvider>, Cached>>,
}

enum Lookup {
    Found(DecodingKey),
    /// Not cached yet.
    Fetch,
    /// An unknown key, and no refetch for a minute.
    Refetch,
    /// An unknown key, refetched less than a minute ago.
    Unknown,
}

/// What the token must say.
pub struct Expected<'a> {
    pub provider: Id<IdentityProvider>,
    pub jwks_uri: &'a str,
    pub issuer: &'a str,
    pub client_id: &'a str,
    pub skew: Duration,
}

impl KeyCache {
    /// Fetches the provider's keys now (a provider's Test), replacing what was cached;
    /// returns how many keys it publishes.
    pub async fn refresh(
        &self,
        client: &OidcClient,
        provider: Id<IdentityProvider>,
        jwks_uri: &str,
    ) -> Result<usize, String> {
        let keys = fetch_keys(client, jwks_uri).await?;
        let count = keys.keys.len();
        self.store(provider, jwks_uri, keys, None);
        Ok(count)
    }

    fn store(
        &self,
        provider: Id<IdentityProvider>,
        jwks_uri: &str,
        keys: JwkSet,
        refetched: Option<Instant>,
    ) {
        let mut cached = self.cached.lock();
        if cached.len() >= MAX_CACHED && !cached.contains_key(&provider) {
            cached.clear();
        }
        cached.insert(
            provider,
            Cached {
                jwks_uri: jwks_uri.to_owned(),
                keys,
                refetched,
            },
        );
    }

    /// The key for `kid` from the cache, or `None` with when to fetch the keys: now for a
    /// provider not cached yet, again only if the last refetch was a minute ago or more.
    fn lookup(&self, expected: &Expected<'_>, kid: Option<&str>) -> Lookup {
        let cached = self.cached.lock();
        match cached.get(&expected.provider) {
            Some(entry) if entry.jwks_uri == expected.jwks_uri => match find(&entry.keys, kid) {
                Some(key) => Lookup::Found(key),
                None if entry
                    .refetched
                    .is_none_or(|at| at.elapsed() >= REFETCH_AFTER) =>
                {
                    Lookup::Refetch
                }
                None => Lookup::Unknown,
            },
            _ => Lookup::Fetch,
        }
    }

    /// The token's claims once it passes every check.
    pub async fn verify(
        &self,
        client: &OidcClient,
        token: &str,
        expected: &Expected<'_>,
    ) -> Result<Map<String, Value>, Rejected> {
        let header = jsonwebtoken::decode_header(token)
            .map_err(|e| Rejected::Invalid(format!("unreadable ID token: {e}")))?;
        if !ALGORITHMS.contains(&header.alg) {
            return Err(Rejected::Invalid(format!(
                "the ID token's algorithm {:?} is not accepted",
                header.alg
            )));
        }
        let kid = header.kid.as_deref();
        let refetched = match self.lookup(expected, kid) {
            Lookup::Found(key) => Some(key),
            Lookup::Unknown => None,
            fetch @ (Lookup::Fetch | Lookup::Refetch) => {
                let keys = fetch_keys(client, expected.jwks_uri)
                    .await
                    .map_err(Rejected::Unreachable)?;
                let key = find(&keys, kid);
                let at = matches!(fetch, Lookup::Refetch).then(Instant::now);
                self.store(expected.provider, expected.jwks_uri, keys, at);
                key
            }
        };
        let key = refetched.ok_or_else(|| {
            Rejected::Invalid(
                "the ID token is signed with a key the provider does not publish".to_owned(),
            )
        })?;
        let mut validation = Validation::new(header.alg);
        validation.algorithms = vec![header.alg];
        validation.set_issuer(&[expected.issuer]);
        validation.set_audience(&[expected.client_id]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub", "iat"]);
        validation.leeway = expected.skew.as_secs();
        validation.validate_nbf = true;
        let claims = jsonwebtoken::decode::<Map<String, Value>>(token, &key, &validation)
            .map_err(|e| Rejected::Invalid(format!("the ID token is not valid: {e}")))?
            .claims;
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        let iat = claims.get("iat").and_then(Value::as_i64);
        if iat.is_none_or(|iat| iat > now + expected.skew.as_secs() as i64) {
            return Err(Rejected::Invalid(
                "the ID token was issued in the future".to_owned(),
            ));
        }
        let several_audiences = claims
            .get("aud")
            .and_then(Value::as_array)
            .is_some_and(|a| a.len() > 1);
        match claims.get("azp").and_then(Value::as_str) {
            Some(azp) if azp != expected.client_id => {
                return Err(Rejected::Invalid(
                    "the ID token was issued to another client (azp)".to_owned(),
                ));
            }
            None if several_audiences => {
                return Err(Rejected::Invalid(
                    "the ID token has several audiences and no azp".to_owned(),
                ));
            }
            _ => {}
        }
        if !claims.get("sub").is_some_and(Value::is_string) {
            return Err(Rejected::Invalid("the ID token has no subject".to_owned()));
        }
        Ok(claims)
    }
}

/// The key named `kid` (or the only signing key, for a token without `kid`); symmetric keys
/// are never used.
fn find(keys: &JwkSet, kid: Option<&str>) -> Option<DecodingKey> {
    let usable: Vec<_> = keys
        .keys
        .iter()
        .filter(|k| !matches!(k.algorithm, AlgorithmParameters::OctetKey(_)))
        .collect();
    let jwk = match kid {
        Some(kid) => usable
            .into_iter()
            .find(|k| k.common.key_id.as_deref() == Some(kid))?,
        None if usable.len() == 1 => usable[0],
        None => return None,
    };
    DecodingKey::from_jwk(jwk).ok()
}

async fn fetch_keys(client: &OidcClient, jwks_uri: &str) -> Result<JwkSet, String> {
    let document = client.get_json(jwks_uri, None).await.map_err(|e| match e {
        OidcHttpError::NotJson => "the JWKS is not JSON".to_owned(),
        other => format!("the JWKS could not be fetched: {other}"),
    })?;
    // Keys of types this library does not know are left out, not fatal.
    let keys = document
        .get("keys")
        .and_then(Value::as_array)
        .ok_or_else(|| "the JWKS has no keys".to_owned())?
        .iter()
        .filter_map(|k| serde_json::from_value(k.clone()).ok())
        .collect();
    Ok(JwkSet { keys })
}

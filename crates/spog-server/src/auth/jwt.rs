//! Session JWTs: HS256 under a key derived from the server key, naming a session row so that
//! logout ends the session before the token expires.

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use spog_core::Timestamp;

#[derive(Debug, Serialize, Deserialize)]
pub struct Claims {
    /// The user id.
    pub sub: String,
    /// The session id.
    pub sid: String,
    /// The account id.
    pub acc: String,
    pub iat: i64,
    pub exp: i64,
}

pub fn issue(key: &[u8; 32], claims: &Claims) -> String {
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        claims,
        &EncodingKey::from_secret(key),
    )
    .expect("HS256 signing cannot fail")
}

/// The claims of a token this server signed that has not expired.
pub fn verify(key: &[u8; 32], token: &str, now: Timestamp) -> Option<Claims> {
    let mut validation = Validation::new(Algorithm::HS256);
    validation.validate_exp = false;
    validation.required_spec_claims.clear();
    let claims = jsonwebtoken::decode::<Claims>(token, &DecodingKey::from_secret(key), &validation)
        .ok()?
        .claims;
    (claims.exp > now.unix_seconds()).then_some(claims)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(exp: i64) -> Claims {
        Claims {
            sub: "u".into(),
            sid: "s".into(),
            acc: "a".into(),
            iat: 0,
            exp,
        }
    }

    #[test]
    fn tokens_verify_only_with_their_key_and_before_expiry() {
        let now = Timestamp::now();
        let key = [7u8; 32];
        let token = issue(&key, &claims(now.unix_seconds() + 60));
        assert_eq!(verify(&key, &token, now).unwrap().sid, "s");
        assert!(verify(&[8u8; 32], &token, now).is_none());
        let expired = issue(&key, &claims(now.unix_seconds() - 1));
        assert!(verify(&key, &expired, now).is_none());
        let forged = format!("{}x", &token[..token.len() - 1]);
        assert!(verify(&key, &forged, now).is_none());
    }
}

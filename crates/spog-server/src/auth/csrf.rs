//! Cookie sessions are open to cross-site request forgery; every unsafe request that relies
//! on the cookie must echo a token only the console's own pages know.

use axum::http::{HeaderMap, Method};

use crate::error::ApiError;
use crate::keys::Keys;

pub const SESSION_COOKIE: &str = "spog_session";
pub const CSRF_HEADER: &str = "x-csrf-token";

pub fn check(
    keys: &Keys,
    session: &str,
    method: &Method,
    headers: &HeaderMap,
) -> Result<(), ApiError> {
    if matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS) {
        return Ok(());
    }
    let sent = headers
        .get(CSRF_HEADER)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if constant_time_eq(sent.as_bytes(), keys.csrf_token(session).as_bytes()) {
        Ok(())
    } else {
        Err(ApiError::Forbidden(format!(
            "a request authenticated by the session cookie must carry the {CSRF_HEADER} header"
        )))
    }
}

pub(crate) fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

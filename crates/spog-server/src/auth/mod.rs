//! Authentication (session JWTs, API tokens, session cookies with CSRF protection) and the
//! extractors that put a handler's required permission in its signature.

mod cache;
pub mod client;
mod csrf;
mod extract;
pub mod jwt;
pub mod password;
mod principal;
pub mod throttle;
pub mod tokens;

pub use cache::AuthCache;
pub use client::{ClientOrigin, secure_cookies};
pub(crate) use csrf::constant_time_eq;
pub use csrf::{CSRF_HEADER, SESSION_COOKIE, check as check_csrf};
pub use extract::{Auth, Require, RequiredPermission, permissions};
pub use principal::{
    Credential, Principal, RequestInfo, agent_refused, authenticate, authenticate_any,
    authenticate_token, presented_token, principal_again, principal_of_agent,
};

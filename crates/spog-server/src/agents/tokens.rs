//! Creating enrollment tokens, the same way from the API and from the command line.

use std::time::Duration;

use spog_core::model::{Account, EnrollmentToken, Host, Organization};
use spog_core::{FieldError, FieldErrors, Id, Timestamp, validate};
use spog_store::agents::enrollment_tokens::{self, NewEnrollmentToken};
use spog_store::identity::{hosts, organizations};
use spog_store::{Conn, StoreError};

use super::ENROLL_PREFIX;
use crate::auth::tokens::generate_with;
use crate::error::{ApiError, ApiResult};

/// How long a token lives when no expiry is given.
pub const DEFAULT_LIFETIME: Duration = Duration::from_secs(3600);
/// The furthest ahead a token may expire.
pub const MAX_LIFETIME: Duration = Duration::from_secs(7 * 24 * 3600);

/// What a new token is for.
#[derive(Default)]
pub struct TokenRequest {
    pub organization: Option<Id<Organization>>,
    pub description: Option<String>,
    pub expires_at: Option<Timestamp>,
    pub host: Option<Id<Host>>,
}

/// Creates a token in the caller's transaction; returns it and its secret, shown once.
pub async fn create(
    conn: &mut Conn,
    account: Id<Account>,
    request: TokenRequest,
    created_by: Option<String>,
    now: Timestamp,
) -> ApiResult<(EnrollmentToken, String)> {
    let mut errors = FieldErrors::new();
    let expires_at = request.expires_at.unwrap_or(now.plus(DEFAULT_LIFETIME));
    if expires_at <= now {
        errors.add(FieldError::new("expires_at", "must be in the future"));
    } else if expires_at > now.plus(MAX_LIFETIME) {
        errors.add(FieldError::new(
            "expires_at",
            "must be at most 7 days ahead",
        ));
    }
    let description = request
        .description
        .as_deref()
        .map(|d| validate::text("description", d, 1000))
        .transpose();
    let description = errors
        .check(description)
        .flatten()
        .filter(|d| !d.is_empty());
    errors.into_result()?;
    let host = match request.host {
        Some(host) => Some(hosts::get(conn, account, host).await.map_err(|e| match e {
            StoreError::NotFound => ApiError::field("host_id", "is not a host of this account"),
            other => other.into(),
        })?),
        None => None,
    };
    let organization = match (request.organization, &host) {
        (Some(organization), host) => {
            organizations::get(conn, account, organization)
                .await
                .map_err(|e| match e {
                    StoreError::NotFound => {
                        ApiError::field("organization_id", "is not an organization of this account")
                    }
                    other => other.into(),
                })?;
            if host
                .as_ref()
                .is_some_and(|h| h.organization_id != organization)
            {
                return Err(ApiError::field(
                    "host_id",
                    "is a host of another organization",
                ));
            }
            organization
        }
        (None, Some(host)) => host.organization_id,
        (None, None) => organizations::list(conn, account)
            .await?
            .first()
            .map(|o| o.id)
            .ok_or_else(|| ApiError::field("organization_id", "the account has none"))?,
    };
    let secret = generate_with(ENROLL_PREFIX);
    let new = NewEnrollmentToken {
        organization,
        host: host.map(|h| h.id),
        description,
        token_hash: secret.hash,
        created_by,
        expires_at,
    };
    let token = enrollment_tokens::create(conn, account, new, now).await?;
    Ok((token, secret.token))
}

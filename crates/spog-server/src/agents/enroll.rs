//! `POST /api/v1/agent/enroll` (SPEC 12.1): a one-time enrollment token for the host's agent
//! credential. No other authentication; at most [`ATTEMPTS_PER_MINUTE`] attempts a minute per
//! client address on each instance.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::http::request::Parts;
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use serde_json::json;
use spog_core::audit::Action;
use spog_core::events::EventType;
use spog_core::model::{Host, HostAgent, Organization};
use spog_core::{FieldErrors, Id, Timestamp, validate};
use spog_store::StoreError;
use spog_store::agents::credentials::{self, AgentCredential};
use spog_store::agents::enrollment_tokens;
use spog_store::identity::hosts;
use utoipa::ToSchema;

use super::CREDENTIAL_PREFIX;
use crate::auth::tokens::{generate_with, hash};
use crate::auth::{Auth, RequestInfo, principal_of_agent};
use crate::error::{ApiError, ApiResult};
use crate::events::{self, Announcements, NewEvent};
use crate::extract::AppJson;
use crate::state::AppState;

pub const ATTEMPTS_PER_MINUTE: u32 = 10;
const WINDOW: Duration = Duration::from_secs(60);
/// Beyond this many addresses the limiter forgets the windows that ended.
const MAX_ADDRESSES: usize = 100_000;

/// Attempts per client address in the current minute.
#[derive(Default)]
pub struct EnrollLimiter {
    windows: Mutex<HashMap<IpAddr, (Instant, u32)>>,
}

impl EnrollLimiter {
    /// Counts an attempt; `Err(wait)` past the limit.
    pub fn attempt(&self, ip: IpAddr) -> Result<(), Duration> {
        let now = Instant::now();
        let mut windows = self.windows.lock();
        if windows.len() >= MAX_ADDRESSES {
            windows.retain(|_, (start, _)| now.duration_since(*start) < WINDOW);
        }
        let (start, count) = windows.entry(ip).or_insert((now, 0));
        if now.duration_since(*start) >= WINDOW {
            *start = now;
            *count = 0;
        }
        *count += 1;
        if *count > ATTEMPTS_PER_MINUTE {
            return Err(WINDOW.saturating_sub(now.duration_since(*start)));
        }
        Ok(())
    }
}

#[derive(Deserialize, ToSchema)]
pub struct EnrollBody {
    /// `spog_enroll_…`.
    pub token: String,
    pub hostname: String,
    pub name: Option<String>,
    /// What the agent reports about the host (SPEC 12.2).
    #[schema(value_type = Option<Object>)]
    pub facts: Option<serde_json::Value>,
}

#[derive(Serialize, ToSchema)]
pub struct Enrolled {
    pub host_id: Id<Host>,
    pub organization_id: Id<Organization>,
    /// `spog_agent_…`: the host's credential, shown only here.
    pub credential: String,
    pub host: Host,
}

fn invalid_token() -> ApiError {
    ApiError::Coded {
        status: StatusCode::UNAUTHORIZED,
        code: "invalid_enrollment_token",
        message: "the enrollment token is unknown, used, expired or revoked".to_owned(),
        details: None,
    }
}

/// Enroll a host's agent with a one-time enrollment token.
#[utoipa::path(post, path = "/agent/enroll", tag = "agents", request_body = EnrollBody,
    responses((status = 201, body = Enrolled), (status = 401), (status = 429)))]
pub async fn enroll(
    State(state): State<AppState>,
    parts: Parts,
    AppJson(body): AppJson<EnrollBody>,
) -> ApiResult<(StatusCode, Json<Enrolled>)> {
    let request = RequestInfo::from_parts(&parts);
    if let Some(origin) = request.origin {
        state
            .agent_enroll_limiter
            .attempt(origin.ip)
            .map_err(ApiError::RateLimited)?;
    }
    let mut errors = FieldErrors::new();
    let hostname = errors.check(validate::hostname("hostname", &body.hostname));
    let name = body
        .name
        .as_deref()
        .map(|n| validate::name("name", n, 200))
        .transpose();
    let name = errors.check(name);
    if body.facts.as_ref().is_some_and(|f| !f.is_object()) {
        errors.add(spog_core::FieldError::new("facts", "must be an object"));
    }
    let (hostname, name) = errors.finish((hostname, name))?;
    let now = Timestamp::now();
    let mut announcements = Announcements::default();
    let mut tx = state.store.begin().await?;
    let Some(consumed) = enrollment_tokens::consume(&mut tx, &hash(body.token.trim()), now).await?
    else {
        return Err(invalid_token());
    };
    let account = consumed.account;
    let token = consumed.token;
    let (host, claimed) = match token.host_id {
        // A token for a host that was deleted since is no use: the transaction is dropped
        // and the token stays as it was.
        Some(host) => match hosts::get(&mut tx, account, host).await {
            Ok(host) => (host, true),
            Err(StoreError::NotFound) => return Err(invalid_token()),
            Err(other) => return Err(other.into()),
        },
        None => {
            match credentials::unclaimed_host(&mut tx, account, token.organization_id, &hostname)
                .await?
            {
                Some(host) => (host, true),
                None => {
                    let name = name.clone().unwrap_or_else(|| hostname.clone());
                    let host = hosts::create(
                        &mut tx,
                        account,
                        token.organization_id,
                        &hostname,
                        &name,
                        now,
                    )
                    .await
                    .map_err(|e| match e {
                        StoreError::Conflict(_) => ApiError::Conflict(format!(
                            "host `{hostname}` of the organization already has an agent; \
                             revoke it first, or enroll with a token for that host"
                        )),
                        other => other.into(),
                    })?;
                    (host, false)
                }
            }
        }
    };
    let secret = generate_with(CREDENTIAL_PREFIX);
    let credential: Id<HostAgent> = Id::new();
    let replaced = credentials::enroll(
        &mut tx,
        account,
        host.id,
        credential,
        &secret.hash,
        body.facts.as_ref(),
        now,
    )
    .await?;
    enrollment_tokens::used_by(&mut tx, token.id, host.id).await?;
    let host = hosts::get(&mut tx, account, host.id).await?;
    let agent = Auth {
        principal: principal_of_agent(AgentCredential {
            account,
            organization: host.organization_id,
            host: host.id,
            hostname: host.hostname.clone(),
            credential,
        }),
        request,
    };
    let agent_version = body
        .facts
        .as_ref()
        .and_then(|f| f["agent_version"].as_str())
        .map(str::to_owned);
    let entry = agent
        .did(Action::HostEnroll, &host)
        .after(&host)
        .metadata(json!({"enrollment_token_id": token.id, "claimed": claimed,
            "agent_version": agent_version}));
    tx.record(entry).await?;
    let data = json!({"host_id": host.id, "hostname": host.hostname, "claimed": claimed});
    let event = NewEvent::new(
        account,
        host.organization_id,
        EventType::HostEnrolled,
        now,
        data,
    );
    events::publish(&mut tx, event, now, &mut announcements).await?;
    tx.commit().await?;
    announcements.send(&state.bus).await;
    state.bus.agent_revoked(account, replaced).await;
    state.bus.touch(account, "hosts");
    Ok((
        StatusCode::CREATED,
        Json(Enrolled {
            host_id: host.id,
            organization_id: host.organization_id,
            credential: secret.token,
            host,
        }),
    ))
}

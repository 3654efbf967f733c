//! `GET /login/sso/{id}` and `GET /login/sso/{id}/callback`: the browser's side of single
//! sign-on (SPEC 2.1). A failure is the login page with a plain message and the failure's
//! status, on the provider's account's record; an unknown or disabled provider is a 404.

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect};
use axum_extra::extract::CookieJar;
use axum_extra::extract::cookie::{Cookie, SameSite};
use serde::Deserialize;
use spog_core::Id;
use spog_core::sso::IdentityProvider;

use super::error::{PageError, PageResult};
use super::login::{Notice, login_form, secure};
use super::session::{safe_next, session_cookie};
use crate::auth::RequestInfo;
use crate::http::auth::RequestInfoExtract;
use crate::sso::signin::{self, BROWSER_COOKIE, Callback, Failure, SignInError};
use crate::sso::{public_base, resolve};
use crate::state::AppState;

#[derive(Deserialize)]
pub struct StartQuery {
    next: Option<String>,
}

/// The provider named in a path, or the 404 page for an id that is not one.
fn provider_id(text: &str) -> Result<Id<IdentityProvider>, PageError> {
    text.parse().map_err(|_| PageError::NotFound)
}

fn browser_cookie(secure: bool, value: String) -> Cookie<'static> {
    // Lax: the provider's redirect back is a top-level GET from another site.
    Cookie::build((BROWSER_COOKIE, value))
        .http_only(true)
        .same_site(SameSite::Lax)
        .secure(secure)
        .path("/login/sso")
        .build()
}

pub async fn start(
    State(state): State<AppState>,
    RequestInfoExtract(request): RequestInfoExtract,
    headers: HeaderMap,
    jar: CookieJar,
    Path(id): Path<String>,
    Query(query): Query<StartQuery>,
) -> PageResult {
    let id = provider_id(&id)?;
    let provider = match signin::enabled_provider(&state, id).await {
        Ok(provider) => provider,
        Err(error) => return Err(page_error(error)),
    };
    let base = public_base(&state.config, &headers, request.origin.as_ref());
    let next = safe_next(query.next.as_deref());
    let browser = jar.get(BROWSER_COOKIE).map(|c| c.value().to_owned());
    let started = signin::start(&state, &provider, &base, next, browser.as_deref())
        .await
        .map_err(page_error)?;
    let jar = jar.add(browser_cookie(secure(&state, &request), started.browser));
    Ok((jar, Redirect::to(&started.location)).into_response())
}

pub async fn callback(
    State(state): State<AppState>,
    RequestInfoExtract(request): RequestInfoExtract,
    headers: HeaderMap,
    jar: CookieJar,
    Path(id): Path<String>,
    Query(query): Query<Callback>,
) -> PageResult {
    let id = provider_id(&id)?;
    let provider = signin::enabled_provider(&state, id)
        .await
        .map_err(page_error)?;
    let base = public_base(&state.config, &headers, request.origin.as_ref());
    let browser = jar.get(BROWSER_COOKIE).map(|c| c.value().to_owned());
    let outcome =
        match signin::verify_callback(&state, &provider, &base, &query, browser.as_deref()).await {
            Ok(verified) => resolve::sign_in(&state, &request, &provider, verified).await,
            Err(failure) => Err(failure),
        };
    match outcome {
        Ok(signed_in) => {
            let jar = jar.add(session_cookie(
                secure(&state, &request),
                signed_in.token,
                signed_in.expires_at,
            ));
            Ok((jar, Redirect::to(&safe_next(Some(&signed_in.next)))).into_response())
        }
        Err(failure) if failure.reason == "internal" => Err(PageError::Internal(anyhow::anyhow!(
            "single sign-on: {}",
            failure.message
        ))),
        Err(failure) => failed(&state, &request, jar, &provider, failure).await,
    }
}

/// Records the failure and shows the login page with its message.
async fn failed(
    state: &AppState,
    request: &RequestInfo,
    jar: CookieJar,
    provider: &spog_store::identity::providers::StoredProvider,
    failure: Failure,
) -> PageResult {
    tracing::info!(provider = %provider.id, reason = failure.reason, detail = %failure.message, "single sign-on refused");
    resolve::record_failure(state, request, provider, &failure).await?;
    let status: StatusCode = failure.status();
    let message = format!(
        "Signing in with {} failed: {} ({})",
        provider.settings.name,
        plain(&failure),
        failure.reason
    );
    login_form(
        state,
        request,
        jar,
        status,
        "/".to_owned(),
        String::new(),
        Notice::Sso(message),
    )
    .await
}

/// The sentence a person reads; the details (which may name endpoints) stay in the log.
fn plain(failure: &Failure) -> String {
    match failure.reason {
        "invalid_token" => "the identity provider's answer could not be verified.".to_owned(),
        "idp_unreachable" => "the identity provider could not be reached.".to_owned(),
        _ => {
            let mut message = failure.message.clone();
            if let Some(first) = message.get(..1) {
                message.replace_range(..1, &first.to_lowercase());
            }
            message
        }
    }
}

fn page_error(error: SignInError) -> PageError {
    match error {
        SignInError::NotFound => PageError::NotFound,
        SignInError::Internal(error) => error.into(),
    }
}

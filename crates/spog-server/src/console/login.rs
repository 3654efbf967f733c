//! `GET/POST /login` and `POST /logout`: the console's cookie session. Login goes through
//! the same `log_in` as the API (same checks, same audit entries), with source `web`.

use askama::Template;
use axum::Form;
use axum::extract::{Query, State};
use axum::http::header::RETRY_AFTER;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Redirect};
use axum_extra::extract::CookieJar;
use axum_extra::extract::cookie::Cookie;
use serde::Deserialize;
use spog_core::audit::Source;
use spog_store::identity::{providers, sessions};

use super::assets;
use super::error::{PageError, PageResult};
use super::session::{
    LOGIN_NONCE_COOKIE, cleared_session_cookie, login_nonce_cookie, login_token, new_login_nonce,
    safe_next, session_cookie,
};
use crate::auth::{Auth, Credential, RequestInfo, authenticate, constant_time_eq, secure_cookies};
use crate::error::{ApiError, retry_after};
use crate::http::auth::{RequestInfoExtract, log_in, log_out};
use crate::state::AppState;

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage {
    assets: String,
    csrf: String,
    next: String,
    next_encoded: String,
    email: String,
    error: Option<String>,
    sso_error: Option<String>,
    providers: Vec<LoginProvider>,
}

/// A "Sign in with {name}" button.
struct LoginProvider {
    id: String,
    name: String,
}

/// A message above the form, about the password form or about a single sign-on.
pub enum Notice {
    None,
    Password(String),
    Sso(String),
}

#[derive(Deserialize)]
pub struct LoginQuery {
    next: Option<String>,
}

#[derive(Deserialize)]
pub struct LoginForm {
    #[serde(default)]
    email: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    next: String,
}

#[derive(Deserialize)]
pub struct LogoutForm {
    #[serde(default)]
    csrf: String,
}

/// The nonce of the login form already open in this browser, or a new one.
fn nonce_of(jar: &CookieJar) -> String {
    jar.get(LOGIN_NONCE_COOKIE)
        .map(|c| c.value().to_owned())
        .filter(|n| n.len() == 64 && n.bytes().all(|b| b.is_ascii_hexdigit()))
        .unwrap_or_else(new_login_nonce)
}

/// The login form with `status`, setting its nonce cookie.
pub async fn login_form(
    state: &AppState,
    request: &RequestInfo,
    jar: CookieJar,
    status: StatusCode,
    next: String,
    email: String,
    notice: Notice,
) -> PageResult {
    let nonce = nonce_of(&jar);
    let providers = {
        let mut conn = state.store.conn().await?;
        providers::on_login_page(&mut conn).await?
    };
    let (error, sso_error) = match notice {
        Notice::None => (None, None),
        Notice::Password(message) => (Some(message), None),
        Notice::Sso(message) => (None, Some(message)),
    };
    let page = LoginPage {
        assets: assets::base(),
        csrf: login_token(&state.keys, &nonce),
        next_encoded: form_urlencoded::byte_serialize(next.as_bytes()).collect(),
        next,
        email,
        error,
        sso_error,
        providers: providers
            .into_iter()
            .map(|(id, name)| LoginProvider { id, name })
            .collect(),
    };
    let jar = jar.add(login_nonce_cookie(secure(state, request), nonce));
    Ok((status, jar, Html(page.render()?)).into_response())
}

pub fn secure(state: &AppState, request: &RequestInfo) -> bool {
    secure_cookies(&state.config, request.origin.as_ref())
}

async fn signed_in(state: &AppState, headers: &HeaderMap) -> bool {
    authenticate(state, headers)
        .await
        .is_ok_and(|p| matches!(p.credential, Credential::Session { cookie: true, .. }))
}

pub async fn login_page(
    State(state): State<AppState>,
    RequestInfoExtract(request): RequestInfoExtract,
    headers: HeaderMap,
    jar: CookieJar,
    Query(query): Query<LoginQuery>,
) -> PageResult {
    let next = safe_next(query.next.as_deref());
    if signed_in(&state, &headers).await {
        return Ok(Redirect::to(&next).into_response());
    }
    login_form(
        &state,
        &request,
        jar,
        StatusCode::OK,
        next,
        String::new(),
        Notice::None,
    )
    .await
}

pub async fn log_in_form(
    State(state): State<AppState>,
    RequestInfoExtract(request): RequestInfoExtract,
    jar: CookieJar,
    Form(form): Form<LoginForm>,
) -> PageResult {
    let next = safe_next(Some(&form.next));
    let expected = jar
        .get(LOGIN_NONCE_COOKIE)
        .map(|nonce| login_token(&state.keys, nonce.value()));
    let genuine = expected.is_some_and(|t| constant_time_eq(t.as_bytes(), form.csrf.as_bytes()));
    if !genuine {
        // Not this browser's form (login CSRF), or its cookie is gone: a fresh form.
        let message = "This login form has expired. Please log in again.".to_owned();
        let jar = jar.remove(Cookie::build(LOGIN_NONCE_COOKIE).path("/login"));
        return login_form(
            &state,
            &request,
            jar,
            StatusCode::FORBIDDEN,
            next,
            form.email,
            Notice::Password(message),
        )
        .await;
    }
    let result = log_in(&state, &request, &form.email, &form.password, Source::Web).await;
    let (status, message) = match result {
        Ok(logged_in) => {
            let jar = jar
                .add(session_cookie(
                    secure(&state, &request),
                    logged_in.token,
                    logged_in.expires_at,
                ))
                .remove(Cookie::build(LOGIN_NONCE_COOKIE).path("/login"));
            return Ok((jar, Redirect::to(&next)).into_response());
        }
        Err(ApiError::Validation(errors)) => (
            StatusCode::UNPROCESSABLE_ENTITY,
            match errors.get("password") {
                Some(problem) if errors.get("email").is_none() => format!("The password {problem}"),
                _ => "Enter your email address, like name@example.com.".to_owned(),
            },
        ),
        Err(ApiError::Unauthenticated(message)) => (StatusCode::UNAUTHORIZED, message),
        Err(ApiError::Coded {
            code: "sso_required",
            message,
            ..
        }) => (StatusCode::FORBIDDEN, message),
        Err(ApiError::Unavailable(message)) => (StatusCode::SERVICE_UNAVAILABLE, message),
        Err(ApiError::RateLimited(wait)) => {
            let message = format!(
                "Too many attempts; try again in {} seconds.",
                wait.as_secs().max(1)
            );
            let mut page = login_form(
                &state,
                &request,
                jar,
                StatusCode::TOO_MANY_REQUESTS,
                next,
                form.email,
                Notice::Password(message),
            )
            .await?;
            page.headers_mut().insert(RETRY_AFTER, retry_after(wait));
            return Ok(page);
        }
        Err(other) => return Err(other.into()),
    };
    let message = capitalised(&message);
    login_form(
        &state,
        &request,
        jar,
        status,
        next,
        form.email,
        Notice::Password(message),
    )
    .await
}

fn capitalised(text: &str) -> String {
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect::<String>() + ".",
        None => String::new(),
    }
}

/// Ends the session (with the page's CSRF token, so no other site can log anyone out) and
/// clears the cookie.
pub async fn log_out_form(
    State(state): State<AppState>,
    RequestInfoExtract(request): RequestInfoExtract,
    headers: HeaderMap,
    jar: CookieJar,
    Form(form): Form<LogoutForm>,
) -> PageResult {
    let jar = jar.add(cleared_session_cookie(secure(&state, &request)));
    let principal = match authenticate(&state, &headers).await {
        Ok(principal) => principal,
        Err(ApiError::Unauthenticated(_)) => {
            return Ok((jar, Redirect::to("/login")).into_response());
        }
        Err(other) => return Err(other.into()),
    };
    let Credential::Session { id, cookie: true } = principal.credential else {
        return Ok((jar, Redirect::to("/login")).into_response());
    };
    let expected = state.keys.csrf_token(&id.to_string());
    if !constant_time_eq(expected.as_bytes(), form.csrf.as_bytes()) {
        return Err(PageError::Forbidden(
            "This page is out of date; reload it and log out again.".to_owned(),
        ));
    }
    let account = principal.account;
    let provider = {
        let mut conn = state.store.conn().await?;
        sessions::provider_of(&mut conn, account, id).await?
    };
    let base = crate::sso::public_base(&state.config, &headers, request.origin.as_ref());
    log_out(&state, &Auth { principal, request }).await?;
    let to = match provider {
        Some(provider) => crate::sso::signin::logout_url(&state, account, &provider, &base)
            .await?
            .unwrap_or_else(|| "/login".to_owned()),
        None => "/login".to_owned(),
    };
    Ok((jar, Redirect::to(&to)).into_response())
}

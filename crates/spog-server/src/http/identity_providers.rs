//! `/identity-providers`: an account's OpenID Connect providers (SPEC 2.1). The client
//! secret is write-only (`has_client_secret`) and sealed; the issuer's discovery document is
//! fetched through the outbound guard when a provider is created, when its issuer changes
//! and when it is tested, never inside a transaction.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::json;
use spog_core::audit::Action;
use spog_core::sso::{
    self, IdentityProvider, MAX_PROVIDERS, ProviderSettings, RoleMapping, TokenAuthMethod,
};
use spog_core::{FieldError, FieldErrors, Id, Timestamp};
use spog_store::identity::providers::{self, StoredProvider};
use spog_store::identity::{auth_settings, roles};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::Require;
use crate::auth::permissions::UsersManage;
use crate::error::{ApiError, ApiResult};
use crate::extract::{AppJson, AppPath};
use crate::secrets;
use crate::sso::{discovery, public_base, shown};
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_providers, create_provider))
        .routes(routes!(get_provider, update_provider, delete_provider))
        .routes(routes!(test_provider))
}

/// A provider's fields; on PATCH an omitted field is kept.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProviderInput {
    pub name: Option<String>,
    pub issuer: Option<String>,
    pub client_id: Option<String>,
    /// Write-only; sealed at rest.
    pub client_secret: Option<String>,
    pub token_auth_method: Option<TokenAuthMethod>,
    pub scopes: Option<Vec<String>>,
    pub email_claim: Option<String>,
    pub name_claim: Option<String>,
    /// Null leaves roles alone at sign-in.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub groups_claim: Option<Option<String>>,
    pub role_mappings: Option<Vec<RoleMapping>>,
    pub default_roles: Option<Vec<String>>,
    pub allowed_domains: Option<Vec<String>>,
    pub jit_provisioning: Option<bool>,
    pub link_by_email: Option<bool>,
    pub enabled: Option<bool>,
    pub show_on_login: Option<bool>,
    pub rp_logout: Option<bool>,
}

/// A field that is present (even as null) is `Some`.
fn present<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    deserializer: D,
) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(deserializer).map(Some)
}

impl ProviderInput {
    /// `base` with the input's fields over it.
    fn apply(self, mut base: ProviderSettings) -> (ProviderSettings, Option<String>) {
        macro_rules! over {
            ($($field:ident),+) => {$(
                if let Some(value) = self.$field {
                    base.$field = value;
                }
            )+};
        }
        over!(
            name,
            issuer,
            client_id,
            token_auth_method,
            scopes,
            email_claim,
            name_claim,
            groups_claim,
            role_mappings,
            default_roles,
            allowed_domains,
            jit_provisioning,
            link_by_email,
            enabled,
            show_on_login,
            rp_logout
        );
        (base, self.client_secret)
    }
}

/// What a new provider starts from (SPEC 2.1's defaults).
fn defaults() -> ProviderSettings {
    ProviderSettings {
        name: String::new(),
        issuer: String::new(),
        client_id: String::new(),
        token_auth_method: TokenAuthMethod::ClientSecretBasic,
        scopes: ["openid", "email", "profile"].map(str::to_owned).to_vec(),
        email_claim: "email".to_owned(),
        name_claim: "name".to_owned(),
        groups_claim: None,
        role_mappings: Vec::new(),
        default_roles: Vec::new(),
        allowed_domains: Vec::new(),
        jit_provisioning: false,
        link_by_email: false,
        enabled: true,
        show_on_login: true,
        rp_logout: false,
    }
}

/// Checks the settings, the roles they name and the secret against the method.
async fn checked(
    state: &AppState,
    account: Id<spog_core::model::Account>,
    mut settings: ProviderSettings,
    has_secret: bool,
) -> ApiResult<ProviderSettings> {
    let mut errors = FieldErrors::new();
    sso::check_settings(&mut settings, &mut errors);
    if settings.token_auth_method != TokenAuthMethod::None && !has_secret {
        errors.add(FieldError::new(
            "client_secret",
            "is required unless token_auth_method is `none`",
        ));
    }
    if settings.issuer.starts_with("http://") && !state.config.allow_insecure_targets {
        errors.add(FieldError::new("issuer", "must be an https:// URL"));
    }
    let known: Vec<String> = {
        let mut conn = state.store.conn().await?;
        roles::list(&mut conn, account)
            .await?
            .into_iter()
            .map(|r| r.name)
            .collect()
    };
    let unknown = |names: &[String]| names.iter().find(|n| !known.contains(n)).cloned();
    if let Some(name) = unknown(&settings.default_roles) {
        errors.add(FieldError::new(
            "default_roles",
            format!("unknown role `{name}`"),
        ));
    }
    for (i, rule) in settings.role_mappings.iter().enumerate() {
        if let Some(name) = unknown(&rule.roles) {
            errors.add(FieldError::new(
                format!("role_mappings[{i}].roles"),
                format!("unknown role `{name}`"),
            ));
        }
    }
    errors.into_result()?;
    Ok(settings)
}

async fn discover(state: &AppState, issuer: &str) -> ApiResult<sso::Discovery> {
    discovery::discover(&state.sso.client, issuer)
        .await
        .map_err(|why| FieldError::new("issuer", why).into())
}

/// An account that signs in only through its providers keeps at least one enabled.
async fn keeps_sso_usable(
    tx: &mut spog_store::Tx,
    account: Id<spog_core::model::Account>,
    losing: bool,
) -> ApiResult<()> {
    if !losing || !auth_settings::get(tx, account).await?.sso_only {
        return Ok(());
    }
    let (_, enabled) = providers::count(tx, account).await?;
    if enabled <= 1 {
        return Err(FieldError::new(
            "enabled",
            "the account signs in only through single sign-on and this is its last enabled provider",
        )
        .into());
    }
    Ok(())
}

/// The account's identity providers.
#[utoipa::path(get, path = "/identity-providers", tag = "users",
    responses((status = 200, body = ProviderList)))]
async fn list_providers(
    State(state): State<AppState>,
    auth: Require<UsersManage>,
    headers: HeaderMap,
) -> ApiResult<Json<ProviderList>> {
    let base = public_base(&state.config, &headers, auth.request.origin.as_ref());
    let mut conn = state.store.conn().await?;
    let items = providers::list(&mut conn, auth.account())
        .await?
        .into_iter()
        .map(|p| shown(p, &base))
        .collect();
    Ok(Json(ProviderList {
        items,
        next_cursor: None,
    }))
}

/// The account's providers (at most 20, so on one page).
#[derive(Serialize, ToSchema)]
pub struct ProviderList {
    pub items: Vec<IdentityProvider>,
    pub next_cursor: Option<String>,
}

/// Add an OpenID Connect provider (its discovery document is fetched first).
#[utoipa::path(post, path = "/identity-providers", tag = "users", request_body = ProviderInput,
    responses((status = 201, body = IdentityProvider)))]
async fn create_provider(
    State(state): State<AppState>,
    auth: Require<UsersManage>,
    headers: HeaderMap,
    AppJson(body): AppJson<ProviderInput>,
) -> ApiResult<(StatusCode, Json<IdentityProvider>)> {
    let mut missing = FieldErrors::new();
    for (field, value) in [
        ("name", &body.name),
        ("issuer", &body.issuer),
        ("client_id", &body.client_id),
    ] {
        if value.is_none() {
            missing.add(FieldError::new(field, "is required"));
        }
    }
    missing.into_result()?;
    let (settings, secret) = body.apply(defaults());
    let secret = secret.filter(|s| !s.is_empty());
    if secret.as_ref().is_some_and(|s| s.len() > 4096) {
        return Err(FieldError::new("client_secret", "must be at most 4096 characters").into());
    }
    let settings = checked(&state, auth.account(), settings, secret.is_some()).await?;
    {
        let mut conn = state.store.conn().await?;
        if providers::count(&mut conn, auth.account()).await?.0 >= MAX_PROVIDERS as i64 {
            return Err(ApiError::LimitReached(format!(
                "an account has at most {MAX_PROVIDERS} identity providers"
            )));
        }
    }
    let discovery = discover(&state, &settings.issuer).await?;
    let id: Id<IdentityProvider> = Id::new();
    let now = Timestamp::now();
    let secret = match settings.token_auth_method {
        TokenAuthMethod::None => None,
        _ => secret.map(|s| secrets::seal_provider_secret(&state.keys, id, &s)),
    };
    let stored = StoredProvider {
        id,
        account: auth.account(),
        settings,
        client_secret_ciphertext: secret,
        discovery,
        created_at: now,
        updated_at: now,
    };
    let mut tx = state.store.begin().await?;
    providers::create(&mut tx, &stored).await?;
    let base = public_base(&state.config, &headers, auth.request.origin.as_ref());
    let provider = shown(stored, &base);
    tx.record(
        auth.did(Action::IdentityProviderCreate, &provider)
            .after(&provider),
    )
    .await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, Json(provider)))
}

/// Get an identity provider.
#[utoipa::path(get, path = "/identity-providers/{id}", tag = "users",
    params(("id" = String, Path)), responses((status = 200, body = IdentityProvider)))]
async fn get_provider(
    State(state): State<AppState>,
    auth: Require<UsersManage>,
    headers: HeaderMap,
    AppPath(id): AppPath<Id<IdentityProvider>>,
) -> ApiResult<Json<IdentityProvider>> {
    let mut conn = state.store.conn().await?;
    let stored = providers::get(&mut conn, auth.account(), id).await?;
    let base = public_base(&state.config, &headers, auth.request.origin.as_ref());
    Ok(Json(shown(stored, &base)))
}

/// Change an identity provider; omitted fields are kept, a new issuer is discovered again.
#[utoipa::path(patch, path = "/identity-providers/{id}", tag = "users",
    params(("id" = String, Path)), request_body = ProviderInput,
    responses((status = 200, body = IdentityProvider)))]
async fn update_provider(
    State(state): State<AppState>,
    auth: Require<UsersManage>,
    headers: HeaderMap,
    AppPath(id): AppPath<Id<IdentityProvider>>,
    AppJson(body): AppJson<ProviderInput>,
) -> ApiResult<Json<IdentityProvider>> {
    let before = {
        let mut conn = state.store.conn().await?;
        providers::get(&mut conn, auth.account(), id).await?
    };
    let (settings, secret) = body.apply(before.settings.clone());
    let secret = secret.filter(|s| !s.is_empty());
    if secret.as_ref().is_some_and(|s| s.len() > 4096) {
        return Err(FieldError::new("client_secret", "must be at most 4096 characters").into());
    }
    let has_secret = secret.is_some() || before.client_secret_ciphertext.is_some();
    let settings = checked(&state, auth.account(), settings, has_secret).await?;
    let discovery = if settings.issuer != before.settings.issuer {
        discover(&state, &settings.issuer).await?
    } else {
        before.discovery.clone()
    };
    let sealed = match (settings.token_auth_method, secret) {
        (TokenAuthMethod::None, _) => None,
        (_, Some(secret)) => Some(secrets::seal_provider_secret(&state.keys, id, &secret)),
        (_, None) => before.client_secret_ciphertext.clone(),
    };
    let after = StoredProvider {
        settings,
        client_secret_ciphertext: sealed,
        discovery,
        updated_at: Timestamp::now(),
        ..before.clone()
    };
    let base = public_base(&state.config, &headers, auth.request.origin.as_ref());
    let mut tx = state.store.begin().await?;
    let disabling = before.settings.enabled && !after.settings.enabled;
    keeps_sso_usable(&mut tx, auth.account(), disabling).await?;
    providers::update(&mut tx, &after).await?;
    let (before, after) = (shown(before, &base), shown(after, &base));
    tx.record(auth.changed(Action::IdentityProviderUpdate, &before, &after))
        .await?;
    tx.commit().await?;
    Ok(Json(after))
}

/// Delete an identity provider; the identities it linked are unlinked, their users stay.
#[utoipa::path(delete, path = "/identity-providers/{id}", tag = "users",
    params(("id" = String, Path)), responses((status = 204)))]
async fn delete_provider(
    State(state): State<AppState>,
    auth: Require<UsersManage>,
    headers: HeaderMap,
    AppPath(id): AppPath<Id<IdentityProvider>>,
) -> ApiResult<StatusCode> {
    let base = public_base(&state.config, &headers, auth.request.origin.as_ref());
    let mut tx = state.store.begin().await?;
    let before = providers::get(&mut tx, auth.account(), id).await?;
    keeps_sso_usable(&mut tx, auth.account(), before.settings.enabled).await?;
    let unlinked = providers::delete(&mut tx, auth.account(), id).await?;
    let before = shown(before, &base);
    tx.record(
        auth.did(Action::IdentityProviderDelete, &before)
            .before(&before)
            .metadata(json!({"identities_unlinked": unlinked})),
    )
    .await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

/// What a provider's test found.
#[derive(Serialize, ToSchema)]
pub struct TestResult {
    pub ok: bool,
    pub error: Option<String>,
    /// Keys its JWKS publishes.
    pub keys: Option<usize>,
}

/// Fetch the provider's discovery document and keys now.
#[utoipa::path(post, path = "/identity-providers/{id}/test", tag = "users",
    params(("id" = String, Path)), responses((status = 200, body = TestResult)))]
async fn test_provider(
    State(state): State<AppState>,
    auth: Require<UsersManage>,
    headers: HeaderMap,
    AppPath(id): AppPath<Id<IdentityProvider>>,
) -> ApiResult<Json<TestResult>> {
    let stored = {
        let mut conn = state.store.conn().await?;
        providers::get(&mut conn, auth.account(), id).await?
    };
    let fetched = match discovery::discover(&state.sso.client, &stored.settings.issuer).await {
        Ok(found) => match state
            .sso
            .keys
            .refresh(&state.sso.client, id, &found.jwks_uri)
            .await
        {
            Ok(keys) => Ok((found, keys)),
            Err(why) => Err(why),
        },
        Err(why) => Err(why),
    };
    let result = match &fetched {
        Ok((_, keys)) => TestResult {
            ok: true,
            error: None,
            keys: Some(*keys),
        },
        Err(why) => TestResult {
            ok: false,
            error: Some(why.clone()),
            keys: None,
        },
    };
    let base = public_base(&state.config, &headers, auth.request.origin.as_ref());
    let mut tx = state.store.begin().await?;
    let mut entry = auth
        .did(Action::IdentityProviderTest, &shown(stored.clone(), &base))
        .metadata(json!({"ok": result.ok, "error": result.error, "keys": result.keys}));
    if let Ok((found, _)) = fetched {
        // The endpoints as fetched now are the ones sign-ins use.
        let after = StoredProvider {
            discovery: found,
            ..stored.clone()
        };
        providers::update(&mut tx, &after).await?;
        entry = entry.before(&stored.discovery).after(&after.discovery);
    }
    if !result.ok {
        entry = entry.failed();
    }
    tx.record(entry).await?;
    tx.commit().await?;
    Ok(Json(result))
}

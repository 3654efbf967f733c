//! Single sign-on with OpenID Connect (SPEC 2.1): an account's identity providers, their
//! settings and the account's sign-in policy. The checks here need no I/O; fetching a
//! provider's discovery document and verifying its tokens is the server's.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::model::{Account, User};
use crate::validate::{self, FieldError, FieldErrors};
use crate::{Id, Timestamp};

/// Most identity providers one account may have (each is a button on the login page).
pub const MAX_PROVIDERS: usize = 20;
/// Most role mapping rules of one provider.
pub const MAX_ROLE_MAPPINGS: usize = 100;
/// Most entries of a provider's short lists (scopes, roles, domains).
pub const MAX_LIST: usize = 50;
/// Most break-glass users of an account.
pub const MAX_BREAK_GLASS: usize = 20;

/// How the client authenticates at the token endpoint.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum TokenAuthMethod {
    #[default]
    ClientSecretBasic,
    ClientSecretPost,
    None,
}

/// Roles granted to members of `group`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RoleMapping {
    pub group: String,
    pub roles: Vec<String>,
}

/// What an administrator sets on a provider (everything but the secret).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ProviderSettings {
    pub name: String,
    pub issuer: String,
    pub client_id: String,
    pub token_auth_method: TokenAuthMethod,
    pub scopes: Vec<String>,
    pub email_claim: String,
    pub name_claim: String,
    pub groups_claim: Option<String>,
    pub role_mappings: Vec<RoleMapping>,
    pub default_roles: Vec<String>,
    pub allowed_domains: Vec<String>,
    pub jit_provisioning: bool,
    pub link_by_email: bool,
    pub enabled: bool,
    pub show_on_login: bool,
    pub rp_logout: bool,
}

/// The endpoints a provider's discovery document names.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Discovery {
    pub authorization_endpoint: String,
    pub token_endpoint: String,
    pub jwks_uri: String,
    pub userinfo_endpoint: Option<String>,
    pub end_session_endpoint: Option<String>,
    pub fetched_at: Timestamp,
}

/// An OpenID Connect provider of an account, as the API shows it.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct IdentityProvider {
    /// The `provider` of the identities it links.
    pub id: Id<IdentityProvider>,
    #[serde(skip)]
    pub account_id: Id<Account>,
    #[serde(flatten)]
    pub settings: ProviderSettings,
    /// `{public_url}/login/sso/{id}/callback`, to register at the provider.
    pub redirect_uri: String,
    pub has_client_secret: bool,
    pub discovery: Discovery,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

impl ProviderSettings {
    /// Whether `email`'s domain is accepted (any, when no domain is listed).
    pub fn allows_email(&self, email: &str) -> bool {
        let domain = email.rsplit_once('@').map(|(_, d)| d.to_ascii_lowercase());
        self.allowed_domains.is_empty() || domain.is_some_and(|d| self.allowed_domains.contains(&d))
    }

    /// The role names members of `groups` get: the default roles and those of every rule
    /// whose group is among them (only the default roles without a groups claim).
    pub fn role_names(&self, groups: Option<&[String]>) -> Vec<String> {
        let mut names = self.default_roles.clone();
        for rule in &self.role_mappings {
            if groups.is_some_and(|g| g.contains(&rule.group)) {
                names.extend(rule.roles.iter().cloned());
            }
        }
        names.sort();
        names.dedup();
        names
    }
}

/// An account's sign-in policy (SPEC 2.1 SSO-only accounts).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, ToSchema)]
pub struct AuthSettings {
    #[serde(skip)]
    pub account_id: Id<Account>,
    /// Password login is refused to everyone but the break-glass users.
    pub sso_only: bool,
    pub break_glass_user_ids: Vec<Id<User>>,
}

impl AuthSettings {
    /// Whether `user` may sign in with a password.
    pub fn allows_password(&self, user: Id<User>) -> bool {
        !self.sso_only || self.break_glass_user_ids.contains(&user)
    }
}

/// Checks the settings that need no lookup; the roles' existence and the issuer's discovery
/// are checked by the caller. Names the field at fault (`scopes`, `allowed_domains[1]`…).
pub fn check_settings(settings: &mut ProviderSettings, errors: &mut FieldErrors) {
    if let Some(name) = errors.check(validate::name("name", &settings.name, 100)) {
        settings.name = name;
    }
    errors.check(check_issuer(&settings.issuer));
    if settings.client_id.trim().is_empty() || settings.client_id.len() > 500 {
        errors.add(FieldError::new("client_id", "must be 1 to 500 characters"));
    }
    if !settings.scopes.iter().any(|s| s == "openid") {
        errors.add(FieldError::new("scopes", "must contain `openid`"));
    }
    check_list(errors, "scopes", &settings.scopes, is_scope_token);
    for (field, claim) in [
        ("email_claim", Some(&settings.email_claim)),
        ("name_claim", Some(&settings.name_claim)),
        ("groups_claim", settings.groups_claim.as_ref()),
    ] {
        if let Some(claim) = claim
            && (claim.is_empty() || claim.len() > 100)
        {
            errors.add(FieldError::new(field, "must be 1 to 100 characters"));
        }
    }
    if settings.role_mappings.len() > MAX_ROLE_MAPPINGS {
        errors.add(FieldError::new(
            "role_mappings",
            format!("at most {MAX_ROLE_MAPPINGS} rules"),
        ));
    }
    for (i, rule) in settings.role_mappings.iter().enumerate() {
        if rule.group.is_empty() || rule.group.len() > 200 {
            errors.add(FieldError::new(
                format!("role_mappings[{i}].group"),
                "must be 1 to 200 characters",
            ));
        }
        if rule.roles.len() > MAX_LIST {
            errors.add(FieldError::new(
                format!("role_mappings[{i}].roles"),
                format!("at most {MAX_LIST} roles"),
            ));
        }
    }
    if settings.default_roles.len() > MAX_LIST {
        errors.add(FieldError::new(
            "default_roles",
            format!("at most {MAX_LIST} roles"),
        ));
    }
    for domain in &mut settings.allowed_domains {
        *domain = domain.trim().to_ascii_lowercase();
    }
    check_list(
        errors,
        "allowed_domains",
        &settings.allowed_domains,
        is_domain,
    );
}

/// An issuer is an absolute http(s) URL without query or fragment. Whether plain HTTP is
/// allowed is the server's configuration (`allow_insecure_targets`).
pub fn check_issuer(issuer: &str) -> Result<url::Url, FieldError> {
    let bad = |why: &str| FieldError::new("issuer", why);
    if issuer.len() > 2048 {
        return Err(bad("must be at most 2048 characters"));
    }
    let url = url::Url::parse(issuer).map_err(|_| bad("must be an absolute URL"))?;
    if !matches!(url.scheme(), "https" | "http") || url.host().is_none() {
        return Err(bad("must be an https:// URL"));
    }
    if url.query().is_some() || url.fragment().is_some() || !url.username().is_empty() {
        return Err(bad("must have no query, fragment or credentials"));
    }
    Ok(url)
}

fn check_list(errors: &mut FieldErrors, field: &str, items: &[String], valid: fn(&str) -> bool) {
    if items.len() > MAX_LIST {
        errors.add(FieldError::new(
            field,
            format!("at most {MAX_LIST} entries"),
        ));
        return;
    }
    for (i, item) in items.iter().enumerate() {
        if !valid(item) {
            errors.add(FieldError::new(
                format!("{field}[{i}]"),
                format!("`{item}` is not valid"),
            ));
        } else if items[..i].contains(item) {
            errors.add(FieldError::new(format!("{field}[{i}]"), "is listed twice"));
        }
    }
}

/// RFC 6749's scope-token: printable ASCII but space, `"` and `\`.
fn is_scope_token(scope: &str) -> bool {
    !scope.is_empty()
        && scope.len() <= 100
        && scope
            .bytes()
            .all(|b| (0x21..=0x7e).contains(&b) && b != b'"' && b != b'\\')
}

fn is_domain(domain: &str) -> bool {
    !domain.is_empty()
        && domain.len() <= 253
        && domain.contains('.')
        && domain.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> ProviderSettings {
        ProviderSettings {
            name: "Corp".into(),
            issuer: "https://id.example.com".into(),
            client_id: "spog".into(),
            token_auth_method: TokenAuthMethod::ClientSecretBasic,
            scopes: vec!["openid".into(), "email".into()],
            email_claim: "email".into(),
            name_claim: "name".into(),
            groups_claim: Some("groups".into()),
            role_mappings: vec![],
            default_roles: vec![],
            allowed_domains: vec!["Example.COM".into()],
            jit_provisioning: true,
            link_by_email: false,
            enabled: true,
            show_on_login: true,
            rp_logout: false,
        }
    }

    #[test]
    fn settings_name_the_field_at_fault() {
        let mut bad = settings();
        bad.scopes = vec!["email".into()];
        bad.allowed_domains = vec!["example.com".into(), "not a domain".into()];
        bad.issuer = "ftp://x".into();
        let mut errors = FieldErrors::new();
        check_settings(&mut bad, &mut errors);
        assert!(errors.get("scopes").is_some());
        assert!(errors.get("allowed_domains[1]").is_some());
        assert!(errors.get("issuer").is_some());
        let mut good = settings();
        let mut errors = FieldErrors::new();
        check_settings(&mut good, &mut errors);
        assert!(errors.is_empty());
        assert_eq!(good.allowed_domains, vec!["example.com".to_owned()]);
    }
}

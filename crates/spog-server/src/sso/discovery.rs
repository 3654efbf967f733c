//! A provider's discovery document (OpenID Connect Discovery 1.0), fetched when a provider
//! is created, when its issuer changes and when it is tested.

use serde_json::Value;
use spog_core::Timestamp;
use spog_core::sso::Discovery;

use super::client::{OidcClient, OidcHttpError};

/// The issuer's endpoints, or why they cannot be used (the 422's `issuer` message).
pub async fn discover(client: &OidcClient, issuer: &str) -> Result<Discovery, String> {
    client.check_url(issuer)?;
    let url = format!(
        "{}/.well-known/openid-configuration",
        issuer.trim_end_matches('/')
    );
    let document = client.get_json(&url, None).await.map_err(|e| match e {
        OidcHttpError::NotJson => "the discovery document is not JSON".to_owned(),
        other => format!("the discovery document could not be fetched: {other}"),
    })?;
    let text = |key: &str| document.get(key).and_then(Value::as_str).map(str::to_owned);
    if text("issuer").as_deref() != Some(issuer) {
        return Err(format!(
            "the discovery document names another issuer ({})",
            text("issuer").unwrap_or_else(|| "none".to_owned())
        ));
    }
    let required = |key: &str| -> Result<String, String> {
        let value = text(key).ok_or_else(|| format!("the discovery document has no {key}"))?;
        client
            .check_url(&value)
            .map_err(|why| format!("{key}: {why}"))?;
        Ok(value)
    };
    let optional = |key: &str| text(key).filter(|v| client.check_url(v).is_ok());
    Ok(Discovery {
        authorization_endpoint: required("authorization_endpoint")?,
        token_endpoint: required("token_endpoint")?,
        jwks_uri: required("jwks_uri")?,
        userinfo_endpoint: optional("userinfo_endpoint"),
        end_session_endpoint: optional("end_session_endpoint"),
        fetched_at: Timestamp::now(),
    })
}

//! Requests to identity providers: discovery, keys, token and userinfo, through the same
//! outbound guard as webhooks and channels (SPEC 5.4), never redirected, each bounded by
//! `oidc_http_timeout` and by the size of what it reads.

use std::sync::Arc;
use std::time::Duration;

use reqwest::header::{ACCEPT, CONTENT_TYPE};
use serde_json::Value;

use crate::config::Config;
use crate::delivery::guard::Guard;

/// The most of any provider answer read (a JWKS of many keys is a few KiB).
const MAX_RESPONSE: usize = 256 * 1024;

/// Why a request to a provider came to nothing.
#[derive(Debug, thiserror::Error)]
pub enum OidcHttpError {
    /// Refused by the guard, not connected, timed out or a 5xx: `idp_unreachable`.
    #[error("{0}")]
    Unreachable(String),
    /// A 4xx, with the provider's `error` code when it gave one.
    #[error("HTTP {status}{}", error.as_deref().map(|e| format!(": {e}")).unwrap_or_default())]
    Refused { status: u16, error: Option<String> },
    /// An answer that is not a JSON object.
    #[error("the answer is not a JSON object")]
    NotJson,
}

#[derive(Clone)]
pub struct OidcClient {
    client: reqwest::Client,
    guard: Arc<Guard>,
    allow_http: bool,
}

impl OidcClient {
    pub fn new(config: &Config) -> anyhow::Result<Self> {
        let guard = Arc::new(Guard::new(config.outbound_allow_cidrs.clone()));
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            // A proxy would resolve and connect in our place, past the guard.
            .no_proxy()
            .dns_resolver(guard.resolver())
            .timeout(config.oidc_http_timeout)
            .connect_timeout(config.oidc_http_timeout.min(Duration::from_secs(10)))
            .user_agent(concat!("spog-sso/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Self {
            client,
            guard,
            allow_http: config.allow_insecure_targets,
        })
    }

    /// The URL when spog may call it: HTTPS (HTTP only with `allow_insecure_targets`), and
    /// a literal address the guard allows (names are checked when resolved).
    pub fn check_url(&self, text: &str) -> Result<reqwest::Url, String> {
        let url = reqwest::Url::parse(text).map_err(|_| format!("`{text}` is not a URL"))?;
        match url.scheme() {
            "https" => {}
            "http" if self.allow_http => {}
            _ => return Err(format!("`{text}` is not an https:// URL")),
        }
        self.guard.check_url(&url).map_err(|e| e.to_string())?;
        Ok(url)
    }

    pub async fn get_json(
        &self,
        url: &str,
        bearer: Option<&str>,
    ) -> Result<serde_json::Map<String, Value>, OidcHttpError> {
        let url = self.check_url(url).map_err(OidcHttpError::Unreachable)?;
        let mut request = self.client.get(url).header(ACCEPT, "application/json");
        if let Some(token) = bearer {
            request = request.bearer_auth(token);
        }
        self.json(request).await
    }

    /// POSTs a form (the token endpoint), with HTTP Basic client authentication if given.
    pub async fn post_form(
        &self,
        url: &str,
        form: &[(&str, &str)],
        basic: Option<(&str, &str)>,
    ) -> Result<serde_json::Map<String, Value>, OidcHttpError> {
        let url = self.check_url(url).map_err(OidcHttpError::Unreachable)?;
        let body: String = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(form)
            .finish();
        let mut request = self
            .client
            .post(url)
            .header(ACCEPT, "application/json")
            .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(body);
        if let Some((user, password)) = basic {
            // RFC 6749 2.3.1: both parts form-encoded before Basic.
            let encode =
                |s: &str| form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
            request = request.basic_auth(encode(user), Some(encode(password)));
        }
        self.json(request).await
    }

    async fn json(
        &self,
        request: reqwest::RequestBuilder,
    ) -> Result<serde_json::Map<String, Value>, OidcHttpError> {
        let unreachable = |e: reqwest::Error| {
            let mut text = e.to_string();
            let mut source = std::error::Error::source(&e);
            while let Some(cause) = source {
                text = format!("{text}: {cause}");
                source = cause.source();
            }
            OidcHttpError::Unreachable(text)
        };
        let mut response = request.send().await.map_err(unreachable)?;
        let status = response.status();
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(unreachable)? {
            if body.len() + chunk.len() > MAX_RESPONSE {
                return Err(OidcHttpError::Unreachable(format!(
                    "the answer is larger than {} KiB",
                    MAX_RESPONSE / 1024
                )));
            }
            body.extend_from_slice(&chunk);
        }
        let parsed = serde_json::from_slice::<Value>(&body).ok();
        if status.is_server_error() || status.is_redirection() || status.is_informational() {
            return Err(OidcHttpError::Unreachable(format!("HTTP {status}")));
        }
        if status.is_client_error() {
            let error = parsed
                .as_ref()
                .and_then(|v| v.get("error"))
                .and_then(Value::as_str)
                .map(|e| e.chars().take(100).collect());
            return Err(OidcHttpError::Refused {
                status: status.as_u16(),
                error,
            });
        }
        match parsed {
            Some(Value::Object(map)) => Ok(map),
            _ => Err(OidcHttpError::NotJson),
        }
    }
}

//! The HTTP transport: one guarded client per server (keep-alive connections reused per host,
//! HTTP/2 where TLS negotiates it), redirects never followed, at most 4 KiB of any response
//! read before the connection is let go.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue, LOCATION, RETRY_AFTER};
use spog_core::delivery::{RESPONSE_BODY_LIMIT, response_excerpt};

use super::guard::{Guard, Refused};

/// A request ready to send.
#[derive(Clone, Debug)]
pub struct HttpRequest {
    pub url: String,
    pub headers: Vec<(String, String)>,
    pub body: Bytes,
    /// A 2xx is success only with this body (Slack answers `ok`).
    pub expect_body: Option<&'static str>,
}

/// What one attempt came to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Report {
    pub success: bool,
    pub status_code: Option<u16>,
    pub error: Option<String>,
    pub response_body: Option<String>,
    pub duration: Duration,
    /// No answer came within the attempt's timeout: the attempt held its slot throughout.
    pub timed_out: bool,
    /// How long the target asked to be left alone (`Retry-After` in seconds), if it did.
    pub retry_after: Option<Duration>,
}

impl Report {
    pub fn failed(error: impl Into<String>, duration: Duration) -> Self {
        Self {
            success: false,
            status_code: None,
            error: Some(error.into()),
            response_body: None,
            duration,
            timed_out: false,
            retry_after: None,
        }
    }

    /// No answer within `timeout`.
    pub fn timed_out(timeout: Duration, duration: Duration) -> Self {
        Self {
            timed_out: true,
            ..Self::failed(format!("timed out after {}", humanize(timeout)), duration)
        }
    }
}

#[derive(Clone)]
pub struct HttpTransport {
    client: reqwest::Client,
    guard: Arc<Guard>,
}

impl HttpTransport {
    pub fn new(guard: Arc<Guard>) -> anyhow::Result<Self> {
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            // A proxy would resolve and connect in our place, past the guard.
            .no_proxy()
            .dns_resolver(guard.resolver())
            .connect_timeout(Duration::from_secs(10))
            .pool_idle_timeout(Duration::from_secs(60))
            .tcp_nodelay(true)
            .user_agent(concat!("spog-webhooks/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Self { client, guard })
    }

    pub fn guard(&self) -> &Guard {
        &self.guard
    }

    /// POSTs `request`; the whole exchange is bounded by `timeout`. Only a 2xx is success.
    pub async fn post(&self, request: &HttpRequest, timeout: Duration) -> Report {
        let started = Instant::now();
        let deadline = tokio::time::Instant::now() + timeout;
        let response = match tokio::time::timeout_at(deadline, self.send(request, timeout)).await {
            Err(_) => return Report::timed_out(timeout, started.elapsed()),
            Ok(Err(SendError::TimedOut)) => {
                return Report::timed_out(timeout, started.elapsed());
            }
            Ok(Err(SendError::Failed(error))) => return Report::failed(error, started.elapsed()),
            Ok(Ok(response)) => response,
        };
        let status = response.status();
        let retry_after = response
            .headers()
            .get(RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        let location = response
            .headers()
            .get(LOCATION)
            .and_then(|v| v.to_str().ok())
            .map(|v| v.chars().take(512).collect::<String>());
        let body = read_excerpt(response, deadline).await;
        let unexpected = request
            .expect_body
            .filter(|expected| status.is_success() && body.trim_ascii() != expected.as_bytes());
        let error = if let Some(expected) = unexpected {
            Some(format!(
                "HTTP {status} without the expected body `{expected}`"
            ))
        } else if status.is_success() {
            None
        } else if status.is_redirection() {
            Some(match location {
                Some(to) => format!("HTTP {status}: redirect to {to} not followed"),
                None => format!("HTTP {status}: redirects are not followed"),
            })
        } else {
            Some(format!("HTTP {status}"))
        };
        Report {
            success: status.is_success() && unexpected.is_none(),
            status_code: Some(status.as_u16()),
            error,
            response_body: Some(response_excerpt(&body)),
            duration: started.elapsed(),
            timed_out: false,
            retry_after,
        }
    }

    async fn send(
        &self,
        request: &HttpRequest,
        timeout: Duration,
    ) -> Result<reqwest::Response, SendError> {
        let failed = SendError::Failed;
        let url =
            reqwest::Url::parse(&request.url).map_err(|e| failed(format!("invalid URL: {e}")))?;
        self.guard
            .check_url(&url)
            .map_err(|e| failed(e.to_string()))?;
        let mut headers = HeaderMap::with_capacity(request.headers.len());
        for (name, value) in &request.headers {
            let name = HeaderName::try_from(name.as_str())
                .map_err(|_| failed(format!("invalid header name `{name}`")))?;
            let value = HeaderValue::try_from(value.as_str())
                .map_err(|_| failed(format!("invalid value for header `{name}`")))?;
            headers.insert(name, value);
        }
        self.client
            .post(url)
            .headers(headers)
            .body(request.body.clone())
            .timeout(timeout)
            .send()
            .await
            .map_err(|error| match describe(&error) {
                Some(message) => SendError::Failed(message),
                None => SendError::TimedOut,
            })
    }
}

/// Why a request got no response.
enum SendError {
    TimedOut,
    Failed(String),
}

/// Reads at most [`RESPONSE_BODY_LIMIT`] bytes, until the deadline; dropping the response
/// afterwards closes a connection whose body was not read to its end.
async fn read_excerpt(mut response: reqwest::Response, deadline: tokio::time::Instant) -> Vec<u8> {
    let mut body = Vec::new();
    while body.len() < RESPONSE_BODY_LIMIT {
        match tokio::time::timeout_at(deadline, response.chunk()).await {
            Ok(Ok(Some(chunk))) => {
                let room = RESPONSE_BODY_LIMIT - body.len();
                body.extend_from_slice(&chunk[..chunk.len().min(room)]);
            }
            // The end, a broken body or the deadline: the status already tells the outcome.
            _ => break,
        }
    }
    body
}

fn humanize(duration: Duration) -> String {
    if duration.subsec_millis() == 0 {
        format!("{}s", duration.as_secs())
    } else {
        format!("{}ms", duration.as_millis())
    }
}

/// A transport error as one line: the guard's refusal as it is, others with their causes;
/// `None` for a timeout.
fn describe(error: &reqwest::Error) -> Option<String> {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(error);
    let mut causes = Vec::new();
    while let Some(cause) = source {
        if let Some(refused) = cause.downcast_ref::<Refused>() {
            return Some(refused.to_string());
        }
        let text = cause.to_string();
        if !causes.iter().any(|c: &String| c.contains(&text)) {
            causes.push(text);
        }
        source = cause.source();
    }
    if error.is_timeout() {
        return None;
    }
    let detail = causes
        .get(1..)
        .map(|rest| rest.join(": "))
        .unwrap_or_default();
    let kind = if error.is_connect() {
        "connection failed"
    } else {
        "request failed"
    };
    Some(if detail.is_empty() {
        kind.to_owned()
    } else {
        format!("{kind}: {detail}")
    })
}

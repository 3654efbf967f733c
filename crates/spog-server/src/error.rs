//! The API's one error type (SPEC 1): `{"error": {"code", "message", "details"?}}`. Client
//! errors say what to fix; server errors are logged with their cause and say nothing more.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::{Map, Value};
use spog_core::{FieldError, FieldErrors};
use spog_store::StoreError;
use utoipa::ToSchema;

pub type ApiResult<T> = Result<T, ApiError>;

#[derive(Debug)]
pub enum ApiError {
    BadRequest(String),
    Unauthenticated(String),
    Forbidden(String),
    NotFound,
    Conflict(String),
    PayloadTooLarge,
    Validation(FieldErrors),
    /// 429, with how long to wait before trying again (`Retry-After`).
    RateLimited(std::time::Duration),
    /// A cap on what one caller or account may hold at once (429, with what to do).
    LimitReached(String),
    Unavailable(String),
    /// An answer with a code of its own (`invalid_enrollment_token`, `unsupported_protocol`).
    Coded {
        status: StatusCode,
        code: &'static str,
        message: String,
        details: Option<Map<String, Value>>,
    },
    Internal(anyhow::Error),
}

/// The body of every error response.
#[derive(Serialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Serialize, ToSchema)]
pub struct ErrorDetail {
    /// Stable machine-readable code, e.g. `validation_failed`.
    pub code: String,
    pub message: String,
    /// For `validation_failed`: `{"fields": {"<field>": "<what is wrong>"}}`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub details: Option<Map<String, Value>>,
}

impl ApiError {
    pub fn status_code(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Unauthenticated(_) => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound => StatusCode::NOT_FOUND,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::Validation(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::RateLimited(_) => StatusCode::TOO_MANY_REQUESTS,
            ApiError::LimitReached(_) => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Coded { status, .. } => *status,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn code(&self) -> &'static str {
        match self {
            ApiError::BadRequest(_) => "bad_request",
            ApiError::Unauthenticated(_) => "unauthenticated",
            ApiError::Forbidden(_) => "forbidden",
            ApiError::NotFound => "not_found",
            ApiError::Conflict(_) => "conflict",
            ApiError::PayloadTooLarge => "payload_too_large",
            ApiError::Validation(_) => "validation_failed",
            ApiError::RateLimited(_) => "rate_limited",
            ApiError::LimitReached(_) => "limit_reached",
            ApiError::Unavailable(_) => "unavailable",
            ApiError::Coded { code, .. } => code,
            ApiError::Internal(_) => "internal",
        }
    }

    pub fn field(field: &str, message: impl Into<String>) -> Self {
        ApiError::Validation(FieldError::new(field, message).into())
    }

    pub fn internal(error: impl Into<anyhow::Error>) -> Self {
        ApiError::Internal(error.into())
    }

    pub fn body(&self) -> ErrorBody {
        let message = match self {
            ApiError::BadRequest(m)
            | ApiError::Unauthenticated(m)
            | ApiError::Forbidden(m)
            | ApiError::Conflict(m)
            | ApiError::LimitReached(m)
            | ApiError::Unavailable(m)
            | ApiError::Coded { message: m, .. } => m.clone(),
            ApiError::NotFound => "not found".to_owned(),
            ApiError::PayloadTooLarge => "the request body is too large".to_owned(),
            ApiError::Validation(errors) => {
                let fields: Vec<String> = errors.iter().map(|(f, m)| format!("{f} {m}")).collect();
                format!("validation failed: {}", fields.join("; "))
            }
            ApiError::RateLimited(_) => "too many requests; slow down".to_owned(),
            ApiError::Internal(_) => "internal error".to_owned(),
        };
        let details = match self {
            ApiError::Validation(errors) => {
                let fields: Map<String, Value> = errors
                    .iter()
                    .map(|(f, m)| (f.to_owned(), Value::from(m)))
                    .collect();
                Some(Map::from_iter([(
                    "fields".to_owned(),
                    Value::Object(fields),
                )]))
            }
            ApiError::Coded { details, .. } => details.clone(),
            _ => None,
        };
        ErrorBody {
            error: ErrorDetail {
                code: self.code().to_owned(),
                message,
                details,
            },
        }
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ApiError::Internal(e) => write!(f, "internal: {e:#}"),
            other => f.write_str(&other.body().error.message),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if let ApiError::Internal(cause) = &self {
            tracing::error!(error = format!("{cause:#}"), "request failed");
        }
        let mut response = (self.status_code(), axum::Json(self.body())).into_response();
        if let ApiError::RateLimited(wait) = &self {
            response
                .headers_mut()
                .insert(axum::http::header::RETRY_AFTER, retry_after(*wait));
        }
        response
    }
}

/// Whole seconds to wait, at least one (`Retry-After` has no fractions).
pub fn retry_after(wait: std::time::Duration) -> axum::http::HeaderValue {
    let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    axum::http::HeaderValue::from(seconds.max(1))
}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::NotFound => ApiError::NotFound,
            StoreError::Conflict(message) => ApiError::Conflict(message),
            StoreError::Invalid(field) => ApiError::Validation(field.into()),
            StoreError::Io(error) if error.kind() == std::io::ErrorKind::StorageFull => {
                ApiError::Unavailable(crate::recordings::STORAGE_FULL.to_owned())
            }
            other if other.is_transient() => {
                tracing::warn!(error = %other, "database busy");
                ApiError::Unavailable("the database is busy; retry shortly".to_owned())
            }
            other => ApiError::Internal(other.into()),
        }
    }
}

impl From<FieldError> for ApiError {
    fn from(error: FieldError) -> Self {
        ApiError::Validation(error.into())
    }
}

impl From<FieldErrors> for ApiError {
    fn from(errors: FieldErrors) -> Self {
        ApiError::Validation(errors)
    }
}

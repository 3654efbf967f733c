//! Extractors whose rejections use the API's error format, naming the field at fault.

use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::header::CONTENT_TYPE;
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use crate::error::ApiError;

/// A JSON body. Malformed JSON is 400; a body of the wrong shape is 422 naming the field.
pub struct AppJson<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for AppJson<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        let is_json = request
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<mime::Mime>().ok())
            .is_some_and(|m| m.subtype() == mime::JSON || m.suffix() == Some(mime::JSON));
        if !is_json {
            return Err(ApiError::BadRequest(
                "expected a JSON body with Content-Type: application/json".to_owned(),
            ));
        }
        let bytes = bytes::Bytes::from_request(request, state)
            .await
            .map_err(|rejection| match rejection.status() {
                axum::http::StatusCode::PAYLOAD_TOO_LARGE => ApiError::PayloadTooLarge,
                _ => ApiError::BadRequest(rejection.body_text()),
            })?;
        parse_json(&bytes).map(AppJson)
    }
}

/// Parses JSON: syntax errors are 400, shape errors 422 with the path of the field.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    match serde_path_to_error::deserialize(&mut deserializer) {
        Ok(value) => {
            deserializer
                .end()
                .map_err(|e| ApiError::BadRequest(format!("malformed JSON: {e}")))?;
            Ok(value)
        }
        Err(error) => {
            let path = error.path().to_string();
            let inner = error.into_inner();
            if inner.is_syntax() || inner.is_eof() {
                return Err(ApiError::BadRequest(format!("malformed JSON: {inner}")));
            }
            Err(shape_error(&path, &inner.to_string()))
        }
    }
}

/// Turns a serde shape error into a field error; an unknown field names itself.
fn shape_error(path: &str, message: &str) -> ApiError {
    let message = message.split(" at line ").next().unwrap_or(message);
    let unknown = message
        .strip_prefix("unknown field `")
        .and_then(|rest| rest.split('`').next());
    let missing = message
        .strip_prefix("missing field `")
        .and_then(|rest| rest.split('`').next());
    let join = |name: &str| {
        if path.is_empty() || path == "." {
            name.to_owned()
        } else {
            format!("{path}.{name}")
        }
    };
    match (unknown, missing) {
        // The path of an unknown field already ends with its name.
        (Some(name), _) if path.is_empty() || path == "." => {
            ApiError::field(name, "is not a known field")
        }
        (Some(_), _) => ApiError::field(path, "is not a known field"),
        (_, Some(name)) => ApiError::field(&join(name), "is required"),
        _ => {
            let field = if path.is_empty() || path == "." {
                "body"
            } else {
                path
            };
            ApiError::field(field, message)
        }
    }
}

/// Query parameters; unknown names and bad values are 422 naming the parameter.
pub struct AppQuery<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for AppQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        let query = parts.uri.query().unwrap_or_default();
        let deserializer = serde_urlencoded::Deserializer::new(form_urlencoded_parse(query));
        serde_path_to_error::deserialize(deserializer)
            .map(AppQuery)
            .map_err(|error| {
                let path = error.path().to_string();
                shape_error(&path, &error.into_inner().to_string())
            })
    }
}

fn form_urlencoded_parse(query: &str) -> form_urlencoded::Parse<'_> {
    form_urlencoded::parse(query.as_bytes())
}

/// Parses a query string into `T` (which may ignore names it does not know), after checking
/// that every parameter is one of `allowed`: for endpoints whose parameters come from several
/// documented groups.
pub fn parse_query<T: DeserializeOwned>(
    query: Option<&str>,
    allowed: &[&[&str]],
) -> Result<T, ApiError> {
    let query = query.unwrap_or_default();
    for (name, _) in form_urlencoded_parse(query) {
        if !allowed.iter().any(|group| group.contains(&name.as_ref())) {
            return Err(ApiError::field(
                &name,
                "is not a parameter of this endpoint",
            ));
        }
    }
    let deserializer = serde_urlencoded::Deserializer::new(form_urlencoded_parse(query));
    serde_path_to_error::deserialize(deserializer).map_err(|error| {
        let path = error.path().to_string();
        shape_error(&path, &error.into_inner().to_string())
    })
}

/// A path parameter; one that does not parse names nothing that exists, so it is 404.
pub struct AppPath<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for AppPath<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Path(value)| AppPath(value))
            .map_err(|_| ApiError::NotFound)
    }
}

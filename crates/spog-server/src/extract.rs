//! Extractors whose rejections use the API's error format, naming the field at fault.

use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::header::CONTENT_TYPE;
use axum::http::request::Parts;
use serde::de::DeserializeOwned;
use spog_core::validate;

use crate::error::ApiError;

/// A JSON body. Malformed JSON is 400; a body of the wrong shape is 422 naming the field, and
/// so is a string anywhere in it (nested JSON and keys too) that breaks the text rule
/// ([`validate::is_refused_char`]: no NUL, no control character but tab and line breaks).
pub struct AppJson<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for AppJson<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        let bytes = json_body(request, state).await?;
        check_body_text(&bytes)?;
        parse_json(&bytes).map(AppJson)
    }
}

/// A JSON body that is data rather than text (a terminal's output, escape sequences and
/// all), exempt from the text rule: it goes to a recording file, never to a database column.
pub struct DataJson<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for DataJson<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        let bytes = json_body(request, state).await?;
        parse_json(&bytes).map(DataJson)
    }
}

/// The text rule over a JSON body. A control character can only arrive escaped (`\u0000`,
/// `\b`, `\f`: JSON forbids raw ones), so a body without such an escape is passed at the cost
/// of one scan, and only one with them is read as a whole to name the string at fault.
fn check_body_text(bytes: &[u8]) -> Result<(), ApiError> {
    if !escapes_a_control_character(bytes) {
        return Ok(());
    }
    // Malformed JSON is left for the parse to report (400).
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(bytes) else {
        return Ok(());
    };
    Ok(validate::check_json_text("", &value)?)
}

fn escapes_a_control_character(bytes: &[u8]) -> bool {
    let mut i = 0;
    while i + 1 < bytes.len() {
        if bytes[i] != b'\\' {
            i += 1;
            continue;
        }
        match bytes[i + 1] {
            b'b' | b'f' => return true,
            // `\u0000` to `\u001F`.
            b'u' if bytes.get(i + 2..i + 5).is_some_and(|hex| {
                hex[0] == b'0' && hex[1] == b'0' && (hex[2] == b'0' || hex[2] == b'1')
            }) =>
            {
                return true;
            }
            _ => {}
        }
        // Skips the escaped character, so `\\u0000` (a backslash, then text) is no escape.
        i += 2;
    }
    false
}

/// The body of a request that says it is JSON.
async fn json_body<S: Send + Sync>(request: Request, state: &S) -> Result<bytes::Bytes, ApiError> {
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
    Ok(bytes)
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
        check_query_text(query)?;
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

/// The text rule over query parameters, names and values as decoded (`%00` is a NUL).
pub(crate) fn check_query_text(query: &str) -> Result<(), ApiError> {
    for (name, value) in form_urlencoded_parse(query) {
        validate::check_text("query", &name)?;
        validate::check_text(&name, &value)?;
    }
    Ok(())
}

/// Parses a query string into `T` (which may ignore names it does not know), after checking
/// that every parameter is one of `allowed`: for endpoints whose parameters come from several
/// documented groups.
pub fn parse_query<T: DeserializeOwned>(
    query: Option<&str>,
    allowed: &[&[&str]],
) -> Result<T, ApiError> {
    let query = query.unwrap_or_default();
    check_query_text(query)?;
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

/// Tells a field given as `null` (`Some(None)`) from an absent one (`None`), for updates
/// where `null` means "clear": `#[serde(default, deserialize_with = "crate::extract::present")]`.
pub fn present<'de, D: serde::Deserializer<'de>, T: serde::Deserialize<'de>>(
    deserializer: D,
) -> Result<Option<Option<T>>, D::Error> {
    <Option<T> as serde::Deserialize>::deserialize(deserializer).map(Some)
}

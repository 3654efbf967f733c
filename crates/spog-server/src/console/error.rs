//! What a page shows when it cannot show itself: a standalone HTML page with the status, a
//! helpful sentence, and no internals (server errors are logged with their cause instead).

use askama::Template;
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use spog_store::StoreError;

use crate::error::ApiError;

#[derive(Debug)]
pub enum PageError {
    NotFound,
    BadRequest(String),
    /// A form whose CSRF token does not match.
    Forbidden(String),
    Unavailable(String),
    Internal(anyhow::Error),
}

pub type PageResult = Result<Response, PageError>;

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage<'a> {
    title: &'a str,
    message: &'a str,
}

impl From<ApiError> for PageError {
    fn from(error: ApiError) -> Self {
        match error {
            ApiError::NotFound => PageError::NotFound,
            ApiError::Unavailable(message) => PageError::Unavailable(message),
            ApiError::Internal(cause) => PageError::Internal(cause),
            // A bad cursor or filter in a page's link.
            other => PageError::BadRequest(other.to_string()),
        }
    }
}

impl From<StoreError> for PageError {
    fn from(error: StoreError) -> Self {
        ApiError::from(error).into()
    }
}

impl From<askama::Error> for PageError {
    fn from(error: askama::Error) -> Self {
        PageError::Internal(anyhow::anyhow!("rendering a template: {error}"))
    }
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        let (status, title, message) = match &self {
            PageError::NotFound => (
                StatusCode::NOT_FOUND,
                "Not found",
                "There is nothing here: it may have been deleted, or the link is wrong.".to_owned(),
            ),
            PageError::BadRequest(message) => (
                StatusCode::BAD_REQUEST,
                "This link does not work",
                message.clone(),
            ),
            PageError::Forbidden(message) => (StatusCode::FORBIDDEN, "Refused", message.clone()),
            PageError::Unavailable(message) => (
                StatusCode::SERVICE_UNAVAILABLE,
                "Temporarily unavailable",
                message.clone(),
            ),
            PageError::Internal(cause) => {
                tracing::error!(error = format!("{cause:#}"), "rendering a console page");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "Something went wrong",
                    "The server could not show this page. The error has been logged.".to_owned(),
                )
            }
        };
        let page = ErrorPage {
            title,
            message: &message,
        };
        match page.render() {
            Ok(html) => (status, Html(html)).into_response(),
            Err(_) => (status, title.to_owned()).into_response(),
        }
    }
}

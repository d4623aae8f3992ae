//! How failures reach a person. Page handlers return `PageError`; the HTTP status is decided
//! here, once, from the error's kind. Causes are kept for the log, never shown to the client.

use std::fmt;

use actix_web::{HttpResponse, ResponseError, http::StatusCode, http::header};
use askama::Template;

use crate::auth::csrf::CsrfError;
use crate::auth::password::PasswordError;
use crate::auth::random::RandomError;
use crate::store::{ErrorClass, StoreError};

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage<'a> {
    title: &'a str,
    message: &'a str,
    nav: Option<crate::routes::Nav>,
}

/// An HTML error page; if even the template fails, plain text says the same.
pub fn page_response(status: StatusCode, title: &str, message: &str) -> HttpResponse {
    let body = ErrorPage {
        title,
        message,
        nav: None,
    }
    .render()
    .unwrap_or_else(|_| format!("{title}\n\n{message}\n"));
    HttpResponse::build(status)
        .insert_header((header::CONTENT_TYPE, "text/html; charset=utf-8"))
        .body(body)
}

pub fn service_unavailable_page() -> HttpResponse {
    let mut response = page_response(
        StatusCode::SERVICE_UNAVAILABLE,
        "Temporarily unavailable",
        "The session store is not answering right now. You have not been logged out: \
         please try again in a moment.",
    );
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, header::HeaderValue::from_static("5"));
    response
}

fn internal_error_page() -> HttpResponse {
    page_response(
        StatusCode::INTERNAL_SERVER_ERROR,
        "Something went wrong",
        "The server could not complete this request.",
    )
}

/// The status a failed store call answers with: 503 only when the store cannot be reached
/// (it passes by itself); anything else is a bug or a misconfiguration, 500.
pub fn store_error_status(class: ErrorClass) -> StatusCode {
    match class {
        ErrorClass::Unreachable => StatusCode::SERVICE_UNAVAILABLE,
        ErrorClass::Bug => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// Logs a failed store call once, with its whole cause chain (`cause`), and answers it as a page or as
/// JSON (`{"error": "store unavailable"}` with `Retry-After`, or `{"error": "internal"}`).
pub fn store_error_response(cause: &str, class: ErrorClass, api: bool) -> HttpResponse {
    match class {
        ErrorClass::Unreachable => {
            tracing::error!(error = cause, "store unreachable");
            if api {
                HttpResponse::ServiceUnavailable()
                    .insert_header((header::RETRY_AFTER, "5"))
                    .json(serde_json::json!({
                        "error": "store unavailable",
                        "message": "the session store is not answering; try again shortly",
                    }))
            } else {
                service_unavailable_page()
            }
        }
        ErrorClass::Bug => {
            tracing::error!(error = cause, "store refused a request: a bug");
            if api {
                HttpResponse::InternalServerError().json(serde_json::json!({
                    "error": "internal",
                    "message": "internal error",
                }))
            } else {
                internal_error_page()
            }
        }
    }
}

/// "outer: cause: root cause", for one log line that explains itself.
pub fn cause_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[derive(thiserror::Error)]
pub enum PageError {
    #[error(transparent)]
    Auth(#[from] crate::auth::AuthError),
    #[error(transparent)]
    User(crate::users::UserError),
    #[error("CSRF check failed")]
    Csrf(#[source] CsrfError),
    #[error("a store call failed")]
    Store(#[from] StoreError),
    #[error("bad request: {0}")]
    BadRequest(String),
    #[error("password hashing failed")]
    Password(#[from] PasswordError),
    #[error("could not render a template")]
    Template(#[from] askama::Error),
    #[error("no randomness")]
    Random(#[from] RandomError),
    #[error("the session state could not be written: {0}")]
    SessionState(String),
    #[error("could not sign in")]
    SignIn(#[source] crate::auth::authenticator::SignInError),
}

impl From<crate::auth::authenticator::SignInError> for PageError {
    fn from(err: crate::auth::authenticator::SignInError) -> Self {
        match err {
            crate::auth::authenticator::SignInError::Store(e) => PageError::Store(e),
            other => PageError::SignIn(other),
        }
    }
}

impl From<crate::users::UserError> for PageError {
    fn from(err: crate::users::UserError) -> Self {
        use crate::users::UserError;
        match err {
            UserError::Store(e) => PageError::Store(e),
            UserError::Password(e) => PageError::Password(e),
            UserError::Random(e) => PageError::Random(e),
            other => PageError::User(other),
        }
    }
}

impl From<CsrfError> for PageError {
    fn from(err: CsrfError) -> Self {
        match err {
            CsrfError::Random(e) => PageError::Random(e),
            other => PageError::Csrf(other),
        }
    }
}

// Debug walks the whole cause chain, so the log line of a failed request explains itself.
impl fmt::Debug for PageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{self}")?;
        let mut source = std::error::Error::source(self);
        while let Some(cause) = source {
            write!(f, "\n  caused by: {cause}")?;
            source = cause.source();
        }
        Ok(())
    }
}

impl ResponseError for PageError {
    fn status_code(&self) -> StatusCode {
        match self {
            PageError::Auth(e) => e.status_code(),
            PageError::User(e) => user_error_status(e),
            PageError::Csrf(_) => StatusCode::FORBIDDEN,
            PageError::Store(e) => store_error_status(e.class()),
            PageError::BadRequest(_) => StatusCode::BAD_REQUEST,
            PageError::Password(_)
            | PageError::Template(_)
            | PageError::Random(_)
            | PageError::SessionState(_)
            | PageError::SignIn(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        match self {
            PageError::Auth(e) => e.error_response(),
            PageError::User(e) => page_response(
                user_error_status(e),
                "Not done",
                &format!("{e}. Go back and try again."),
            ),
            PageError::Csrf(_) => page_response(
                StatusCode::FORBIDDEN,
                "Form expired",
                "This form was not issued to your session, or it came from another site. \
                 Go back, reload the page and try again.",
            ),
            PageError::Store(e) => store_error_response(&cause_chain(e), e.class(), false),
            PageError::BadRequest(message) => {
                page_response(StatusCode::BAD_REQUEST, "Bad request", message)
            }
            other => {
                tracing::error!(error = ?other, "request failed");
                internal_error_page()
            }
        }
    }
}

pub fn user_error_status(err: &crate::users::UserError) -> StatusCode {
    use crate::users::UserError;
    match err {
        UserError::NotFound(_) => StatusCode::NOT_FOUND,
        UserError::Exists(_) | UserError::LastAdmin => StatusCode::CONFLICT,
        UserError::WrongPassword => StatusCode::FORBIDDEN,
        UserError::BadName | UserError::BadRole | UserError::WeakPassword(_) => {
            StatusCode::BAD_REQUEST
        }
        UserError::Store(e) => store_error_status(e.class()),
        UserError::Password(_) | UserError::Random(_) => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

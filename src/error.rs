//! How failures reach a person. Page handlers return `PageError`; the HTTP status is decided
//! here, once, from the error's kind. Causes are kept for the log, never shown to the client.

use std::fmt;

use actix_web::{HttpResponse, ResponseError, http::StatusCode};

use crate::auth::csrf::CsrfError;
use crate::auth::password::PasswordError;
use crate::auth::random::RandomError;
use crate::store::StoreError;
pub use crate::web::response::page_response;
use crate::web::response::{internal_error_page, store_error_status, store_failure_response};

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
            PageError::User(_) | PageError::Csrf(_) | PageError::BadRequest(_) => {
                tracing::info!(error = ?self, "request refused");
            }
            _ => {}
        }
        match self {
            PageError::Auth(e) => e.error_response(),
            PageError::User(e) => page_response(
                user_error_status(e),
                "Not done",
                &format!("{e} Go back and try again."),
            ),
            PageError::Csrf(_) => page_response(
                StatusCode::FORBIDDEN,
                "Form expired",
                "This form was not issued to your session, or it came from another site. \
                 Go back, reload the page and try again.",
            ),
            PageError::Store(e) => store_failure_response(e, false),
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
        UserError::BadName
        | UserError::BadRole
        | UserError::UnknownRole { .. }
        | UserError::WeakPassword(_) => StatusCode::BAD_REQUEST,
        UserError::Store(e) => store_error_status(e.class()),
        UserError::Password(_) | UserError::Random(_) => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

//! Responses that any layer may need to build: the error page, the answers to a failed store
//! call, and what the page header shows a signed-in person (`Nav`).

use actix_web::{HttpResponse, http::StatusCode, http::header};
use askama::Template;

use crate::store::{ErrorClass, StoreError};

/// What the header shows a signed-in person on every page.
pub struct Nav {
    pub username: String,
    pub is_admin: bool,
    pub csrf: String,
}

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage<'a> {
    title: &'a str,
    message: &'a str,
    nav: Option<Nav>,
}

/// The JSON API's one error shape: `{"error": code, "message": text}`. Codes are the
/// README's list; the message is a sentence for a person.
pub fn json_error(status: StatusCode, code: &str, message: &str) -> HttpResponse {
    HttpResponse::build(status).json(serde_json::json!({"error": code, "message": message}))
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

pub fn internal_error_page() -> HttpResponse {
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
                let mut response = json_error(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "store unavailable",
                    "The session store is not answering; try again shortly.",
                );
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, header::HeaderValue::from_static("5"));
                response
            } else {
                service_unavailable_page()
            }
        }
        ErrorClass::Bug => {
            tracing::error!(error = cause, "store refused a request: a bug");
            if api {
                json_error(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    "The server could not complete this request.",
                )
            } else {
                internal_error_page()
            }
        }
    }
}

/// The answer to a failed store call, as a page or as JSON: its class decides 503 or 500.
pub fn store_failure_response(err: &StoreError, api: bool) -> HttpResponse {
    store_error_response(&cause_chain(err), err.class(), api)
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

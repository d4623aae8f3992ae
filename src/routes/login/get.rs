use actix_session::Session;
use actix_web::{HttpResponse, http::StatusCode, web};
use serde::Deserialize;

use super::LoginPage;
use crate::auth::identity::LoginReason;
use crate::auth::{MaybeIdentity, csrf};
use crate::error::PageError;
use crate::routes::{safe_next, see_other};

#[derive(Deserialize)]
pub struct LoginQuery {
    next: Option<String>,
    why: Option<String>,
}

/// Shows the form. An anonymous visitor gets a pre-login session here, so the form's CSRF
/// token is tied to something; logging in replaces that session with a new ID.
#[tracing::instrument(name = "login form", skip_all)]
pub async fn get(
    identity: MaybeIdentity,
    session: Session,
    query: Option<web::Query<LoginQuery>>,
) -> Result<HttpResponse, PageError> {
    let query = query.map(web::Query::into_inner);
    let why = query
        .as_ref()
        .and_then(|q| q.why.as_deref())
        .and_then(LoginReason::from_param);
    let next = query.and_then(|q| q.next);
    let next = next.as_deref().map(|n| safe_next(Some(n)));
    if identity.0.is_some() {
        return Ok(see_other(next.as_deref().unwrap_or("/")));
    }
    let token = csrf::token(&session)?;
    LoginPage {
        csrf: &token,
        next: next.as_deref().filter(|n| *n != "/"),
        username: "",
        message: None,
        notice: why.map(LoginReason::message),
        nav: None,
    }
    .respond(StatusCode::OK)
}

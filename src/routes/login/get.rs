use actix_session::Session;
use actix_web::{HttpResponse, http::StatusCode, web};
use serde::Deserialize;

use super::LoginPage;
use crate::auth::identity::LoginReason;
use crate::auth::{MaybeIdentity, csrf};
use crate::error::PageError;
use crate::routes::{return_url, safe_next, see_other};
use crate::state::AppState;

#[derive(Deserialize)]
pub struct LoginQuery {
    next: Option<String>,
    why: Option<String>,
    /// Where a forward-auth proxy was taking the person (an app's page).
    rd: Option<String>,
}

/// Shows the form. An anonymous visitor gets a pre-login session here, so the form's CSRF
/// token is tied to something; logging in replaces that session with a new ID.
#[tracing::instrument(name = "login form", skip_all)]
pub async fn get(
    identity: MaybeIdentity,
    session: Session,
    query: Option<web::Query<LoginQuery>>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, PageError> {
    let query = query.map(web::Query::into_inner);
    let why = query
        .as_ref()
        .and_then(|q| q.why.as_deref())
        .and_then(LoginReason::from_param);
    let rd = query
        .as_ref()
        .and_then(|q| q.rd.as_deref())
        .and_then(|rd| return_url(rd, &state.settings));
    let next = query.and_then(|q| q.next);
    let next = next.as_deref().map(|n| safe_next(Some(n)));
    if identity.0.is_some() {
        let destination = rd.as_ref().map(url::Url::as_str);
        return Ok(see_other(destination.or(next.as_deref()).unwrap_or("/")));
    }
    let token = csrf::token(&session)?;
    LoginPage {
        csrf: &token,
        next: next.as_deref().filter(|n| *n != "/"),
        rd: rd.as_ref().map(url::Url::as_str),
        site: rd.as_ref().and_then(url::Url::host_str),
        remember_me: super::offers_remember_me(&state.settings),
        username: "",
        message: None,
        notice: why.map(LoginReason::message),
        nav: None,
    }
    .respond(StatusCode::OK)
}

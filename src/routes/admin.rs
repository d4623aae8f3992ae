use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;

use crate::auth::{AuthError, Identity, csrf};
use crate::error::PageError;
use crate::startup::AppState;

#[derive(Template)]
#[template(path = "admin.html")]
struct AdminPage<'a> {
    username: &'a str,
    user_count: u64,
    store_kind: &'a str,
    mode: &'a str,
    csrf: &'a str,
}

#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error(transparent)]
    Auth(#[from] AuthError),
    #[error(transparent)]
    Page(#[from] PageError),
}

impl actix_web::ResponseError for AdminError {
    fn status_code(&self) -> actix_web::http::StatusCode {
        match self {
            AdminError::Auth(e) => e.status_code(),
            AdminError::Page(e) => e.status_code(),
        }
    }

    fn error_response(&self) -> HttpResponse {
        match self {
            AdminError::Auth(e) => e.error_response(),
            AdminError::Page(e) => e.error_response(),
        }
    }
}

#[tracing::instrument(name = "admin", skip_all, fields(username = %identity.username))]
pub async fn get(
    req: HttpRequest,
    identity: Identity,
    state: web::Data<AppState>,
) -> Result<HttpResponse, AdminError> {
    identity.require_role("admin", &req)?;
    let user_count = state.store.user_count().await.map_err(PageError::from)?;
    let token = csrf::token(identity.session()).map_err(PageError::from)?;
    let body = AdminPage {
        username: &identity.username,
        user_count,
        store_kind: state.store.kind(),
        mode: state.settings.auth.mode.as_str(),
        csrf: &token,
    }
    .render()
    .map_err(PageError::from)?;
    Ok(HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .body(body))
}

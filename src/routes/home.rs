use actix_web::HttpResponse;
use askama::Template;

use crate::auth::{Identity, csrf};
use crate::error::PageError;
use crate::routes::Nav;

pub struct SignedIn {
    pub username: String,
    pub roles: Vec<String>,
    pub is_admin: bool,
    pub csrf: String,
}

#[derive(Template)]
#[template(path = "index.html")]
struct HomePage {
    user: Option<SignedIn>,
    nav: Option<Nav>,
}

#[tracing::instrument(name = "home", skip_all)]
pub async fn get(identity: Option<Identity>) -> Result<HttpResponse, PageError> {
    let nav = identity.as_ref().map(Nav::for_identity).transpose()?;
    let user = match identity {
        Some(identity) => Some(SignedIn {
            csrf: csrf::token(identity.session())?,
            is_admin: identity.has_role("admin"),
            username: identity.username,
            roles: identity.roles,
        }),
        None => None,
    };
    Ok(HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .body(HomePage { user, nav }.render()?))
}

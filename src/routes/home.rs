use actix_web::HttpResponse;
use askama::Template;

use crate::auth::MaybeIdentity;
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
pub async fn get(identity: MaybeIdentity) -> Result<HttpResponse, PageError> {
    let nav = identity.0.as_ref().map(Nav::for_identity).transpose()?;
    let user = match identity.0 {
        Some(identity) => Some(SignedIn {
            csrf: identity.csrf_token()?,
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

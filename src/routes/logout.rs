use actix_session::Session;
use actix_web::{HttpResponse, web};
use serde::Deserialize;

use crate::auth::csrf;
use crate::error::PageError;
use crate::routes::see_other;

#[derive(Deserialize)]
pub struct LogoutForm {
    csrf: Option<String>,
}

/// Deletes the session in the store (and its entry in the user's index) and clears the cookie;
/// the old cookie is worthless from the next request on, on every instance.
#[tracing::instrument(name = "logout", skip_all)]
pub async fn post(
    form: web::Form<LogoutForm>,
    session: Session,
) -> Result<HttpResponse, PageError> {
    csrf::verify(&session, form.csrf.as_deref())?;
    session.purge();
    Ok(see_other("/login"))
}

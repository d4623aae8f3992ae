use actix_session::Session;
use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;

use crate::audit::Action;
use crate::auth::{Identity, csrf};
use crate::error::PageError;
use crate::routes::{client_ip, see_other};
use crate::startup::AppState;

#[derive(Deserialize)]
pub struct LogoutForm {
    csrf: Option<String>,
}

/// Deletes the session in the store (and its entry in the user's index) and clears the cookie;
/// the old cookie is worthless from the next request on, on every instance.
#[tracing::instrument(name = "logout", skip_all)]
pub async fn post(
    req: HttpRequest,
    form: web::Form<LogoutForm>,
    session: Session,
    identity: Option<Identity>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, PageError> {
    csrf::verify(&session, form.csrf.as_deref())?;
    session.purge();
    if let Some(identity) = identity {
        let ip = client_ip(&req, &state.settings);
        let user = identity.username.as_str();
        let detail = format!("session {}", identity.handle);
        state
            .audit(Action::Logout, user, user, &detail, &ip)
            .await?;
    }
    Ok(see_other("/login"))
}

use actix_session::Session;
use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;

use crate::audit::Action;
use crate::auth::authenticator::Authenticator;
use crate::auth::identity::{LoginReason, login_location};
use crate::auth::{MaybeIdentity, csrf};
use crate::error::PageError;
use crate::routes::{client_ip, see_other};
use crate::state::AppState;

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
    identity: MaybeIdentity,
    state: web::Data<AppState>,
    auth: web::Data<Authenticator>,
) -> Result<HttpResponse, PageError> {
    let location = match identity.0 {
        Some(identity) => {
            identity.verify_csrf(form.csrf.as_deref())?;
            auth.sign_out(&req, &identity, &state).await?;
            let ip = client_ip(&req, &state.settings);
            let user = identity.username.as_str();
            let detail = format!("session {}", identity.handle);
            state
                .audit(Action::Logout, user, user, &detail, &ip)
                .await?;
            login_location("/", Some(LoginReason::SignedOut))
        }
        // Nobody signed in: only a pre-login session (if any) to drop.
        None => {
            csrf::verify(&session, form.csrf.as_deref())?;
            session.purge();
            login_location("/", None)
        }
    };
    Ok(see_other(&location))
}

use actix_web::{HttpRequest, HttpResponse, http::StatusCode, web};
use serde::Deserialize;

use super::reauth::verify_current_password;
use super::{ip, operator, sessions};
use crate::audit::Action;
use crate::auth::Identity;
use crate::auth::authenticator::Authenticator;
use crate::error::{PageError, user_error_status};
use crate::routes::FieldError;
use crate::routes::flash::{self, Flash};
use crate::state::AppState;
use crate::users::UserError;

#[derive(Deserialize)]
pub struct PasswordForm {
    current: String,
    new: String,
    confirm: String,
    csrf: Option<String>,
}

/// `POST /account/password`: the current password is required (and is the step-up); the new
/// one is strength-checked. Every session of the user ends, and this browser continues on a
/// brand-new session ID. A refused form comes back with the reason next to its field.
#[tracing::instrument(name = "change password", skip_all, fields(username = %identity.username))]
pub async fn post(
    req: HttpRequest,
    identity: Identity,
    form: web::Form<PasswordForm>,
    state: web::Data<AppState>,
    auth: web::Data<Authenticator>,
) -> Result<HttpResponse, PageError> {
    identity.verify_csrf(form.csrf.as_deref())?;
    let form = form.into_inner();
    let refuse = async |status, field, message: String| {
        let error = FieldError { field, message };
        sessions::page(&identity, &state, None, Some(error), status).await
    };
    if form.new != form.confirm {
        return refuse(
            StatusCode::BAD_REQUEST,
            "confirm",
            "The two new passwords differ.".into(),
        )
        .await;
    }
    if !verify_current_password(&identity, &form.current, &state).await? {
        let err = UserError::WrongPassword;
        return refuse(user_error_status(&err), "current", err.to_string()).await;
    }
    let ip = ip(&req, &state);
    match operator(&state, &identity, &ip)
        .set_password(&identity.username, &form.new, Action::PasswordChanged)
        .await
    {
        Ok(_) => {}
        Err(err @ UserError::WeakPassword(_)) => {
            return refuse(user_error_status(&err), "new", err.to_string()).await;
        }
        Err(err) => return Err(err.into()),
    }
    // All sessions, this one included, are gone from the store: this browser continues on a
    // brand-new session (or refresh family), exactly as after a login.
    let roles = state
        .store
        .user(&identity.username)
        .await?
        .map(|u| u.roles)
        .unwrap_or_default();
    let device = crate::device::label(
        req.headers()
            .get(actix_web::http::header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default(),
    );
    auth.sign_in(&req, &state, &identity.username, &roles, &ip, &device)
        .await?;
    let notice =
        Flash::notice("Your password has been changed, and every other session has ended.");
    flash::redirect(&state, &identity, "/account/sessions", notice).await
}

use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;

use super::reauth::verify_current_password;
use super::{ip, operator};
use crate::audit::Action;
use crate::auth::Identity;
use crate::error::{PageError, page_response};
use crate::routes::see_other;
use crate::state::AppState;

#[derive(Deserialize)]
pub struct PasswordForm {
    current: String,
    new: String,
    confirm: String,
    csrf: Option<String>,
}

/// `POST /account/password`: the current password is required (and is the step-up); the new
/// one is strength-checked. Every session of the user ends, and this browser continues on a
/// brand-new session ID.
#[tracing::instrument(name = "change password", skip_all, fields(username = %identity.username))]
pub async fn post(
    req: HttpRequest,
    identity: Identity,
    form: web::Form<PasswordForm>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, PageError> {
    identity.verify_csrf(form.csrf.as_deref())?;
    let form = form.into_inner();
    let refuse = |status, message: &str| {
        Ok(page_response(
            status,
            "Password not changed",
            &format!("{message} Go back and try again."),
        ))
    };
    if form.new != form.confirm {
        return refuse(
            actix_web::http::StatusCode::BAD_REQUEST,
            "The two new passwords differ.",
        );
    }
    if !verify_current_password(&identity, &form.current, &state).await? {
        return refuse(
            actix_web::http::StatusCode::FORBIDDEN,
            "The current password is not right.",
        );
    }
    let ip = ip(&req, &state);
    operator(&state, &identity, &ip)
        .set_password(&identity.username, &form.new, Action::PasswordChanged)
        .await?;
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
    state
        .auth
        .sign_in(&req, &state, &identity.username, &roles, &ip, &device)
        .await?;
    Ok(see_other("/account/sessions"))
}

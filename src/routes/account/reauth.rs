use actix_web::{HttpRequest, HttpResponse, http::StatusCode, web};
use askama::Template;
use serde::Deserialize;

use super::{ip, operator};
use crate::audit::Action;
use crate::auth::Identity;
use crate::auth::authenticator::Authenticator;
use crate::auth::password::{self, MAX_PASSWORD_LEN};
use crate::auth::throttle::{LoginThrottle, Verdict};
use crate::error::PageError;
use crate::routes::{Nav, html, safe_next, see_other};
use crate::state::AppState;

#[derive(Template)]
#[template(path = "reauth.html")]
struct ReauthPage<'a> {
    nav: Option<Nav>,
    csrf: String,
    next: &'a str,
    window_minutes: u64,
    message: Option<&'a str>,
}

#[derive(Deserialize)]
pub struct NextQuery {
    next: Option<String>,
}

#[derive(Deserialize)]
pub struct ReauthForm {
    password: String,
    csrf: Option<String>,
    next: Option<String>,
}

fn render(
    identity: &Identity,
    state: &AppState,
    next: &str,
    message: Option<&str>,
    status: StatusCode,
) -> Result<HttpResponse, PageError> {
    let nav = Nav::for_identity(identity)?;
    html(
        status,
        &ReauthPage {
            csrf: nav.csrf.clone(),
            nav: Some(nav),
            next,
            window_minutes: state.settings.auth.step_up_window_secs / 60,
            message,
        },
    )
}

/// `GET /account/reauth?next=/path`: asks for the password again before a sensitive action.
pub async fn get(
    identity: Identity,
    query: Option<web::Query<NextQuery>>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, PageError> {
    let next = safe_next(query.and_then(|q| q.into_inner().next).as_deref());
    render(&identity, &state, &next, None, StatusCode::OK)
}

/// `POST /account/reauth`: a correct password refreshes this session's authentication time.
/// Wrong guesses count against the same throttle as logins.
#[tracing::instrument(name = "step-up", skip_all, fields(username = %identity.username))]
pub async fn post(
    req: HttpRequest,
    identity: Identity,
    form: web::Form<ReauthForm>,
    state: web::Data<AppState>,
    auth: web::Data<Authenticator>,
) -> Result<HttpResponse, PageError> {
    identity.verify_csrf(form.csrf.as_deref())?;
    let form = form.into_inner();
    let next = safe_next(form.next.as_deref());
    let ip = ip(&req, &state);
    let throttle = LoginThrottle::new(
        &state.store,
        &state.settings.throttle,
        &identity.username,
        &ip,
    );
    if let Verdict::Throttled { .. } = throttle.check().await? {
        let message = "Too many wrong passwords. Try again later.";
        return render(
            &identity,
            &state,
            &next,
            Some(message),
            StatusCode::TOO_MANY_REQUESTS,
        );
    }
    if !verify_current_password(&identity, &form.password, &state).await? {
        throttle.record_failure().await?;
        let message = "That password is not right.";
        return render(
            &identity,
            &state,
            &next,
            Some(message),
            StatusCode::UNAUTHORIZED,
        );
    }
    auth.mark_authenticated(&req, &identity, &state).await?;
    operator(&state, &identity, &ip)
        .audit(Action::StepUp, &identity.username, "")
        .await?;
    Ok(see_other(&next))
}

/// Whether `password` is the signed-in user's current one.
pub async fn verify_current_password(
    identity: &Identity,
    password: &str,
    state: &AppState,
) -> Result<bool, PageError> {
    let Some(user) = state.store.user(&identity.username).await? else {
        return Ok(false);
    };
    if password.len() > MAX_PASSWORD_LEN {
        return Ok(false);
    }
    Ok(password::verify_password(user.phc, password.to_owned(), &state.metrics).await?)
}

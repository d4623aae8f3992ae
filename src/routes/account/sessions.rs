use actix_web::{HttpRequest, HttpResponse, http::StatusCode, web};
use askama::Template;
use serde::Deserialize;

use super::{ip, operator, require_step_up};
use crate::auth::Identity;
use crate::auth::authenticator::Authenticator;
use crate::auth::identity::{LoginReason, login_location};
use crate::error::PageError;
use crate::routes::confirm::{self, Question};
use crate::routes::flash::{self, Flash};
use crate::routes::{FieldError, Nav, When, encode_query_value, html, see_other};
use crate::state::AppState;

pub struct SessionRow {
    pub handle: String,
    pub device: String,
    pub ip: String,
    pub created: When,
    pub last_seen: When,
    pub current: bool,
}

#[derive(Template)]
#[template(path = "account_sessions.html")]
struct SessionsPage {
    nav: Option<Nav>,
    csrf: String,
    sessions: Vec<SessionRow>,
    notice: Option<String>,
    /// Why the password form was refused, next to the field it is about.
    error: Option<FieldError>,
    seen_note: String,
}

impl SessionsPage {
    fn error_on(&self, field: &str) -> Option<&str> {
        self.error.as_ref().and_then(|e| e.on(field))
    }
}

#[derive(Deserialize)]
pub struct CsrfForm {
    csrf: Option<String>,
    /// `yes` when sent from the confirmation page.
    confirm: Option<String>,
}

/// The page, with the last action's outcome or a refused password form.
pub async fn page(
    identity: &Identity,
    state: &AppState,
    notice: Option<String>,
    error: Option<FieldError>,
    status: StatusCode,
) -> Result<HttpResponse, PageError> {
    let sessions = state
        .store
        .sessions_of(&identity.username)
        .await?
        .into_iter()
        .map(|s| SessionRow {
            current: s.handle == identity.handle,
            handle: s.handle,
            device: s.device,
            ip: s.ip,
            created: When::new(s.created, state.clock.now()),
            last_seen: When::new(s.last_seen, state.clock.now()),
        })
        .collect();
    let nav = Nav::for_identity(identity)?;
    html(
        status,
        &SessionsPage {
            csrf: nav.csrf.clone(),
            nav: Some(nav),
            sessions,
            notice,
            error,
            seen_note: crate::routes::seen_note(&state.settings),
        },
    )
}

#[derive(Deserialize)]
pub struct SessionsQuery {
    /// Back from confirming the password: the action that asked for it (`revoke-others`, or
    /// `revoke` with `handle`), offered again on its confirmation page.
    resume: Option<String>,
    handle: Option<String>,
}

const SESSIONS_PATH: &str = "/account/sessions";

fn revoke_others_question() -> Question<'static> {
    Question {
        title: "Sign out everywhere else?",
        question: "Sign out of every other session? Each other browser and device signed in as you is signed out at its next request; this one stays signed in.".to_owned(),
        button: "Sign out all other sessions".to_owned(),
        action: "/account/sessions/revoke-others",
        cancel: SESSIONS_PATH,
        back: None,
    }
}

/// `GET /account/sessions`: every live session of the signed-in user, this one marked. With
/// `resume=`, the action a step-up interrupted, to confirm once more.
#[tracing::instrument(name = "your sessions", skip_all, fields(username = %identity.username))]
pub async fn get(
    req: HttpRequest,
    identity: Identity,
    query: web::Query<SessionsQuery>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, PageError> {
    match (query.resume.as_deref(), query.handle.as_deref()) {
        (Some("revoke-others"), _) => return confirm::ask(&identity, revoke_others_question()),
        (Some("revoke"), Some(handle)) => {
            // Only a session of this user is offered: the handle comes from the address.
            let session = state
                .store
                .sessions_of(&identity.username)
                .await?
                .into_iter()
                .find(|s| s.handle == handle && s.handle != identity.handle);
            if let Some(session) = session {
                let action = format!("/account/sessions/{}/revoke", session.handle);
                return confirm::ask(
                    &identity,
                    Question {
                        title: "End that session?",
                        question: format!(
                            "End the session on {} from {}? It is signed out at its next request.",
                            session.device, session.ip
                        ),
                        button: "End that session".to_owned(),
                        action: &action,
                        cancel: SESSIONS_PATH,
                        back: None,
                    },
                );
            }
        }
        _ => {}
    }
    let notice = flash::take_notice(&req, &state, &identity).await?;
    let mut response = page(&identity, &state, notice, None, StatusCode::OK).await?;
    flash::clear(&req, &mut response);
    Ok(response)
}

/// `POST /account/sessions/{handle}/revoke`: ends one of the user's own sessions. Ending this
/// one is a logout; ending another needs a recent password (step-up).
#[tracing::instrument(name = "revoke own session", skip_all, fields(username = %identity.username))]
pub async fn revoke(
    req: HttpRequest,
    identity: Identity,
    handle: web::Path<String>,
    form: web::Form<CsrfForm>,
    state: web::Data<AppState>,
    auth: web::Data<Authenticator>,
) -> Result<HttpResponse, PageError> {
    identity.verify_csrf(form.csrf.as_deref())?;
    let handle = handle.into_inner();
    let ip = ip(&req, &state);
    if handle == identity.handle {
        auth.sign_out(&req, &identity, &state).await?;
        let detail = format!("session {handle}");
        operator(&state, &identity, &ip)
            .audit(crate::audit::Action::Logout, &identity.username, &detail)
            .await?;
        return Ok(see_other(&login_location(
            "/",
            Some(LoginReason::SignedOut),
        )));
    }
    let back = format!(
        "{SESSIONS_PATH}?resume=revoke&handle={}",
        encode_query_value(&handle)
    );
    if let Some(step_up) = require_step_up(&identity, &state, &back) {
        return Ok(step_up);
    }
    let revoked = operator(&state, &identity, &ip)
        .revoke_session(&identity.username, &handle)
        .await?;
    let notice = if revoked {
        "That session has ended."
    } else {
        "That session had already ended."
    };
    flash::redirect(
        &state,
        &identity,
        "/account/sessions",
        Flash::notice(notice),
    )
    .await
}

/// `POST /account/sessions/revoke-others`: "sign out all other sessions" (step-up required).
#[tracing::instrument(name = "revoke other sessions", skip_all, fields(username = %identity.username))]
pub async fn revoke_others(
    req: HttpRequest,
    identity: Identity,
    form: web::Form<CsrfForm>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, PageError> {
    identity.verify_csrf(form.csrf.as_deref())?;
    if !confirm::confirmed(form.confirm.as_deref()) {
        return confirm::ask(&identity, revoke_others_question());
    }
    let back = format!("{SESSIONS_PATH}?resume=revoke-others");
    if let Some(step_up) = require_step_up(&identity, &state, &back) {
        return Ok(step_up);
    }
    let ip = ip(&req, &state);
    let ended = operator(&state, &identity, &ip)
        .revoke_all(&identity.username, Some(&identity.handle))
        .await?;
    let notice = match ended {
        0 => "There were no other sessions.".to_owned(),
        1 => "Signed out of 1 other session.".to_owned(),
        n => format!("Signed out of {n} other sessions."),
    };
    flash::redirect(
        &state,
        &identity,
        "/account/sessions",
        Flash::notice(notice),
    )
    .await
}

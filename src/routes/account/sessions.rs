use actix_web::{HttpRequest, HttpResponse, http::StatusCode, web};
use askama::Template;
use serde::Deserialize;

use super::{ip, operator, require_step_up};
use crate::auth::Identity;
use crate::error::PageError;
use crate::routes::{Nav, format_time, html, see_other};
use crate::state::AppState;

pub struct SessionRow {
    pub handle: String,
    pub device: String,
    pub ip: String,
    pub created: String,
    pub last_seen: String,
    pub current: bool,
}

#[derive(Template)]
#[template(path = "account_sessions.html")]
struct SessionsPage {
    nav: Option<Nav>,
    csrf: String,
    sessions: Vec<SessionRow>,
    notice: Option<String>,
    error: Option<String>,
}

#[derive(Deserialize)]
pub struct CsrfForm {
    csrf: Option<String>,
}

async fn page(
    identity: &Identity,
    state: &AppState,
    notice: Option<String>,
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
            created: format_time(s.created),
            last_seen: format_time(s.last_seen),
        })
        .collect();
    let nav = Nav::for_identity(identity)?;
    html(
        StatusCode::OK,
        &SessionsPage {
            csrf: nav.csrf.clone(),
            nav: Some(nav),
            sessions,
            notice,
            error: None,
        },
    )
}

/// `GET /account/sessions`: every live session of the signed-in user, this one marked.
#[tracing::instrument(name = "your sessions", skip_all, fields(username = %identity.username))]
pub async fn get(
    identity: Identity,
    state: web::Data<AppState>,
) -> Result<HttpResponse, PageError> {
    page(&identity, &state, None).await
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
) -> Result<HttpResponse, PageError> {
    identity.verify_csrf(form.csrf.as_deref())?;
    let handle = handle.into_inner();
    let ip = ip(&req, &state);
    if handle == identity.handle {
        state.auth.sign_out(&req, &identity, &state).await?;
        let detail = format!("session {handle}");
        operator(&state, &identity, &ip)
            .audit(crate::audit::Action::Logout, &identity.username, &detail)
            .await?;
        return Ok(see_other("/login"));
    }
    if let Some(step_up) = require_step_up(&identity, &state, "/account/sessions") {
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
    page(&identity, &state, Some(notice.to_owned())).await
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
    if let Some(step_up) = require_step_up(&identity, &state, "/account/sessions") {
        return Ok(step_up);
    }
    let ip = ip(&req, &state);
    let ended = operator(&state, &identity, &ip)
        .revoke_all(&identity.username, Some(&identity.handle))
        .await?;
    page(
        &identity,
        &state,
        Some(format!("Signed out of {ended} other session(s).")),
    )
    .await
}

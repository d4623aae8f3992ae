use actix_web::{HttpRequest, HttpResponse, http::StatusCode, web};
use askama::Template;
use serde::Deserialize;

use super::users::{PAGE_SIZE, SessionRow};
use super::{require_admin, revoke_note};
use crate::auth::Identity;
use crate::error::PageError;
use crate::routes::flash;
use crate::routes::paging::stream_cursor;
use crate::routes::{Nav, html};
use crate::state::AppState;
use crate::users::optional_name;

#[derive(Template)]
#[template(path = "admin_sessions.html")]
struct SessionsPage {
    nav: Option<Nav>,
    csrf: String,
    sessions: Vec<SessionRow>,
    filter: String,
    next: Option<String>,
    notice: Option<String>,
    revoke_note: String,
    seen_note: String,
}

#[derive(Deserialize)]
pub struct SessionsQuery {
    user: Option<String>,
    after: Option<String>,
}

/// `GET /admin/sessions?user=name&after=cursor`: everyone's live sessions, newest first.
#[tracing::instrument(name = "admin sessions", skip_all, fields(username = %identity.username))]
pub async fn list(
    req: HttpRequest,
    identity: Identity,
    query: web::Query<SessionsQuery>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, PageError> {
    require_admin(&identity, &req)?;
    let filter = optional_name(query.user.as_deref())?;
    let after = stream_cursor("after", query.after.as_deref())?;
    let (sessions, next) = match &filter {
        Some(user) => (state.store.sessions_of(user).await?, None),
        None => {
            let page = state.store.recent_sessions(after, PAGE_SIZE).await?;
            (page.items, page.next)
        }
    };
    let notice = flash::take_notice(&req, &state, &identity).await?;
    let nav = Nav::for_identity(&identity)?;
    let mut response = html(
        StatusCode::OK,
        &SessionsPage {
            csrf: nav.csrf.clone(),
            nav: Some(nav),
            sessions: sessions
                .into_iter()
                .map(|s| SessionRow::new(s, state.clock.now(), &identity))
                .collect(),
            filter: filter.unwrap_or_default(),
            next,
            notice,
            revoke_note: revoke_note(&state),
            seen_note: crate::routes::seen_note(&state.settings),
        },
    )?;
    flash::clear(&req, &mut response);
    Ok(response)
}

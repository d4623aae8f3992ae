use actix_web::{HttpRequest, HttpResponse, http::StatusCode, web};
use askama::Template;
use serde::Deserialize;

use super::users::{PAGE_SIZE, SessionRow};
use super::{UserFilter, require_admin, revoke_note};
use crate::auth::Identity;
use crate::error::PageError;
use crate::routes::flash;
use crate::routes::paging::stream_cursor;
use crate::routes::{Nav, html};
use crate::state::AppState;

#[derive(Template)]
#[template(path = "admin_sessions.html")]
struct SessionsPage {
    nav: Option<Nav>,
    csrf: String,
    sessions: Vec<SessionRow>,
    filter: UserFilter,
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

/// `GET /admin/sessions?user=text&after=cursor`: everyone's live sessions, newest first, or
/// those of the user the filter names.
#[tracing::instrument(name = "admin sessions", skip_all, fields(username = %identity.username))]
pub async fn list(
    req: HttpRequest,
    identity: Identity,
    query: web::Query<SessionsQuery>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, PageError> {
    require_admin(&identity, &req)?;
    let filter = UserFilter::resolve(&state, query.user.as_deref()).await?;
    let after = stream_cursor("after", query.after.as_deref())?;
    let (sessions, next) = match &filter.chosen {
        Some(user) => (state.store.sessions_of(user).await?, None),
        None if filter.ambiguous() || filter.no_match() => (Vec::new(), None),
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
            filter,
            next,
            notice,
            revoke_note: revoke_note(&state),
            seen_note: crate::routes::seen_note(&state.settings),
        },
    )?;
    flash::clear(&req, &mut response);
    Ok(response)
}

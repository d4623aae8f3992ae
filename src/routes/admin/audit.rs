use actix_web::{HttpRequest, HttpResponse, http::StatusCode, web};
use askama::Template;
use serde::Deserialize;

use super::{AuditRow, require_admin};
use crate::auth::Identity;
use crate::error::PageError;
use crate::routes::paging::stream_cursor;
use crate::routes::{Nav, html};
use crate::state::AppState;
use crate::users::optional_name;

const PAGE_SIZE: usize = 50;

#[derive(Template)]
#[template(path = "admin_audit.html")]
struct AuditPage {
    nav: Option<Nav>,
    audit: Vec<AuditRow>,
    filter: String,
    next: Option<String>,
}

#[derive(Deserialize)]
pub struct AuditQuery {
    user: Option<String>,
    before: Option<String>,
}

/// `GET /admin/audit?user=name&before=cursor`: newest first.
#[tracing::instrument(name = "admin audit", skip_all, fields(username = %identity.username))]
pub async fn list(
    req: HttpRequest,
    identity: Identity,
    query: web::Query<AuditQuery>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, PageError> {
    require_admin(&identity, &req)?;
    let filter = optional_name(query.user.as_deref())?;
    let before = stream_cursor("before", query.before.as_deref())?;
    let page = state
        .store
        .audit(filter.as_deref(), before, PAGE_SIZE)
        .await?;
    html(
        StatusCode::OK,
        &AuditPage {
            nav: Some(Nav::for_identity(&identity)?),
            audit: page.items.into_iter().map(AuditRow::from).collect(),
            filter: filter.unwrap_or_default(),
            next: page.next,
        },
    )
}

use actix_web::{HttpRequest, HttpResponse, http::StatusCode, web};
use askama::Template;
use serde::Deserialize;

use super::{AuditRow, UserFilter, require_admin};
use crate::audit::Action;
use crate::auth::Identity;
use crate::error::PageError;
use crate::routes::paging::{BadParameter, stream_cursor};
use crate::routes::{Nav, encode_query_value, html};
use crate::state::AppState;
use crate::store::{AuditEntry, AuditFilter, Page};

const PAGE_SIZE: usize = 50;

#[derive(Template)]
#[template(path = "admin_audit.html")]
struct AuditPage {
    nav: Option<Nav>,
    audit: Vec<AuditRow>,
    filter: UserFilter,
    /// The action code filtered by, if any.
    action: Option<&'static str>,
    actions: Vec<&'static str>,
    next: Option<String>,
}

impl AuditPage {
    /// The filters as query parameters, percent-encoded (for the next-page link).
    fn filter_params(&self) -> String {
        format!(
            "user={}&action={}",
            encode_query_value(self.filter.chosen.as_deref().unwrap_or(&self.filter.text)),
            self.action.unwrap_or_default()
        )
    }
}

#[derive(Deserialize)]
pub struct AuditQuery {
    user: Option<String>,
    action: Option<String>,
    before: Option<String>,
}

/// An action filter: one of the audit action codes, or none.
pub fn action_filter(raw: Option<&str>) -> Result<Option<&'static str>, BadParameter> {
    match raw.filter(|r| !r.is_empty()) {
        None => Ok(None),
        Some(code) => Action::from_code(code)
            .map(|a| Some(a.as_str()))
            .ok_or(BadParameter {
                name: "action",
                reason: "expected one of the audit action codes",
            }),
    }
}

/// `GET /admin/audit?user=text&action=code&before=cursor`: newest first.
#[tracing::instrument(name = "admin audit", skip_all, fields(username = %identity.username))]
pub async fn list(
    req: HttpRequest,
    identity: Identity,
    query: web::Query<AuditQuery>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, PageError> {
    require_admin(&identity, &req)?;
    let filter = UserFilter::resolve(&state, query.user.as_deref()).await?;
    let action = action_filter(query.action.as_deref())?;
    let before = stream_cursor("before", query.before.as_deref())?;
    // A name no user has now may still be in the log (a deleted user): it is looked up.
    let page = if filter.ambiguous() || (filter.chosen.is_none() && filter.no_match()) {
        Page::<AuditEntry> {
            items: Vec::new(),
            next: None,
        }
    } else {
        let wanted = AuditFilter {
            user: filter.chosen.as_deref(),
            action,
        };
        state.store.audit(wanted, before, PAGE_SIZE).await?
    };
    html(
        StatusCode::OK,
        &AuditPage {
            nav: Some(Nav::for_identity(&identity)?),
            audit: page.items.into_iter().map(AuditRow::from).collect(),
            filter,
            action,
            actions: Action::ALL.iter().map(|a| a.as_str()).collect(),
            next: page.next,
        },
    )
}

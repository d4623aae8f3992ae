//! `/admin/...`: the dashboard. Every handler's first line checks the `admin` role.

pub mod audit;
mod chart;
pub mod sessions;
pub mod users;

use actix_web::{HttpRequest, HttpResponse, http::StatusCode, web};
use askama::Template;

use crate::auth::{AuthError, Identity};
use crate::error::PageError;
use crate::routes::{Nav, format_time, html};
use crate::state::AppState;
use crate::store::{AuditEntry, Stat};
use chart::Chart;

pub fn require_admin(identity: &Identity, req: &HttpRequest) -> Result<(), AuthError> {
    identity.require_role("admin", req)
}

pub struct AuditRow {
    pub when: String,
    pub action: String,
    pub actor: String,
    pub target: String,
    pub detail: String,
    pub ip: String,
}

impl From<AuditEntry> for AuditRow {
    fn from(entry: AuditEntry) -> Self {
        AuditRow {
            when: format_time(entry.at),
            action: entry.action,
            actor: entry.actor,
            target: entry.target,
            detail: entry.detail,
            ip: entry.ip,
        }
    }
}

#[derive(Template)]
#[template(path = "admin.html")]
struct OverviewPage<'a> {
    nav: Option<Nav>,
    username: &'a str,
    store_kind: &'a str,
    mode: &'a str,
    active_sessions: u64,
    user_count: u64,
    logins_hour: u64,
    failed_hour: u64,
    revocations_hour: u64,
    chart: Chart,
    audit: Vec<AuditRow>,
}

const CHART_HOURS: usize = 3;

/// `GET /admin`: the overview.
#[tracing::instrument(name = "admin overview", skip_all, fields(username = %identity.username))]
pub async fn get(
    req: HttpRequest,
    identity: Identity,
    state: web::Data<AppState>,
) -> Result<HttpResponse, PageError> {
    require_admin(&identity, &req)?;
    let store = &state.store;
    let minutes = CHART_HOURS * 60;
    let logins = store.stats(Stat::Login, minutes).await?;
    let failed = store.stats(Stat::LoginFailed, minutes).await?;
    let revocations = store.stats(Stat::Revocation, 60).await?;
    let last_hour = |series: &[u64]| series[series.len().saturating_sub(60)..].iter().sum();
    let page = OverviewPage {
        nav: Some(Nav::for_identity(&identity)?),
        username: &identity.username,
        store_kind: store.kind(),
        mode: state.settings.auth.mode.as_str(),
        active_sessions: store.active_sessions().await?,
        user_count: store.user_count().await?,
        logins_hour: last_hour(&logins),
        failed_hour: last_hour(&failed),
        revocations_hour: revocations.iter().sum(),
        chart: Chart::new(&logins, &failed, CHART_HOURS, state.clock.now()),
        audit: store
            .audit(None, None, 10)
            .await?
            .items
            .into_iter()
            .map(AuditRow::from)
            .collect(),
    };
    html(StatusCode::OK, &page)
}

/// Shown next to every revoke button. Empty where revocation is immediate.
pub fn revoke_note(state: &AppState) -> String {
    state.auth.revoke_note()
}

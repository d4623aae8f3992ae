use actix_web::{HttpRequest, HttpResponse, http::StatusCode, web};
use askama::Template;
use serde::Deserialize;

use super::{AuditRow, require_admin, revoke_note};
use crate::auth::Identity;
use crate::error::PageError;
use crate::routes::account::{ip, operator, require_step_up};
use crate::routes::paging::{name_cursor, search_text};
use crate::routes::{Nav, encode_query_value, format_time, html, parse_roles, see_other};
use crate::state::AppState;
use crate::store::{UserSummary, is_admin};
use crate::users::normalize_name;

pub const PAGE_SIZE: usize = 25;

#[derive(Template)]
#[template(path = "admin_users.html")]
struct UsersPage {
    nav: Option<Nav>,
    csrf: String,
    users: Vec<UserSummary>,
    query: String,
    next: Option<String>,
    notice: Option<String>,
    error: Option<String>,
}

#[derive(Deserialize)]
pub struct UsersQuery {
    q: Option<String>,
    after: Option<String>,
}

/// `GET /admin/users?q=prefix&after=cursor`
#[tracing::instrument(name = "admin users", skip_all, fields(username = %identity.username))]
pub async fn list(
    req: HttpRequest,
    identity: Identity,
    query: web::Query<UsersQuery>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, PageError> {
    require_admin(&identity, &req)?;
    let prefix = search_text("q", query.q.as_deref())?;
    let after = name_cursor("after", query.after.as_deref())?;
    let page = state
        .store
        .list_users(&prefix, after.as_deref(), PAGE_SIZE)
        .await?;
    let nav = Nav::for_identity(&identity)?;
    html(
        StatusCode::OK,
        &UsersPage {
            csrf: nav.csrf.clone(),
            nav: Some(nav),
            users: page.items,
            query: prefix,
            next: page.next,
            notice: None,
            error: None,
        },
    )
}

#[derive(Deserialize)]
pub struct CreateForm {
    name: String,
    password: String,
    roles: Option<String>,
    csrf: Option<String>,
}

/// `POST /admin/users`: creates a user; creating an admin needs a recent password.
#[tracing::instrument(name = "admin create user", skip_all, fields(username = %identity.username))]
pub async fn create(
    req: HttpRequest,
    identity: Identity,
    form: web::Form<CreateForm>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, PageError> {
    require_admin(&identity, &req)?;
    identity.verify_csrf(form.csrf.as_deref())?;
    let form = form.into_inner();
    let roles = parse_roles(form.roles.as_deref().unwrap_or_default());
    if is_admin(&roles)
        && let Some(step_up) = require_step_up(&identity, &state, "/admin/users")
    {
        return Ok(step_up);
    }
    let ip = ip(&req, &state);
    let user = operator(&state, &identity, &ip)
        .create_user(&form.name, &form.password, &roles)
        .await?;
    Ok(see_other(&format!("/admin/users/{}", user.name)))
}

#[derive(Template)]
#[template(path = "admin_user.html")]
struct UserPage {
    nav: Option<Nav>,
    csrf: String,
    user: UserSummary,
    sessions: Vec<SessionRow>,
    audit: Vec<AuditRow>,
    notice: Option<String>,
    error: Option<String>,
    revoke_note: String,
}

pub struct SessionRow {
    pub handle: String,
    pub user: String,
    pub device: String,
    pub ip: String,
    pub created: String,
    pub last_seen: String,
}

impl From<crate::store::SessionInfo> for SessionRow {
    fn from(s: crate::store::SessionInfo) -> Self {
        SessionRow {
            handle: s.handle,
            user: s.user,
            device: s.device,
            ip: s.ip,
            created: format_time(s.created),
            last_seen: format_time(s.last_seen),
        }
    }
}

async fn user_page(
    identity: &Identity,
    state: &AppState,
    name: &str,
    notice: Option<String>,
) -> Result<HttpResponse, PageError> {
    let name = normalize_name(name).map_err(PageError::from)?;
    let Some(record) = state.store.user(&name).await? else {
        return Err(crate::users::UserError::NotFound(name).into());
    };
    let sessions: Vec<SessionRow> = state
        .store
        .sessions_of(&name)
        .await?
        .into_iter()
        .map(SessionRow::from)
        .collect();
    let user = UserSummary {
        live_sessions: sessions.len() as u64,
        name: record.name,
        roles: record.roles,
        disabled: record.disabled,
        created: record.created,
    };
    let audit = state
        .store
        .audit(Some(&name), None, 20)
        .await?
        .items
        .into_iter()
        .map(AuditRow::from)
        .collect();
    let nav = Nav::for_identity(identity)?;
    html(
        StatusCode::OK,
        &UserPage {
            csrf: nav.csrf.clone(),
            nav: Some(nav),
            user,
            sessions,
            audit,
            notice,
            error: None,
            revoke_note: revoke_note(state),
        },
    )
}

/// `GET /admin/users/{name}`
#[tracing::instrument(name = "admin user", skip_all, fields(username = %identity.username))]
pub async fn show(
    req: HttpRequest,
    identity: Identity,
    name: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, PageError> {
    require_admin(&identity, &req)?;
    user_page(&identity, &state, &name, None).await
}

#[derive(Deserialize)]
pub struct CsrfForm {
    csrf: Option<String>,
    back: Option<String>,
}

#[derive(Deserialize)]
pub struct RolesForm {
    roles: Option<String>,
    csrf: Option<String>,
}

fn user_path(name: &str) -> String {
    format!("/admin/users/{}", encode_query_value(name))
}

/// `POST /admin/users/{name}/roles`: granting `admin` needs a recent password; taking it from
/// the last enabled admin is refused.
#[tracing::instrument(name = "admin set roles", skip_all, fields(username = %identity.username))]
pub async fn set_roles(
    req: HttpRequest,
    identity: Identity,
    name: web::Path<String>,
    form: web::Form<RolesForm>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, PageError> {
    require_admin(&identity, &req)?;
    identity.verify_csrf(form.csrf.as_deref())?;
    let name = name.into_inner();
    let roles = parse_roles(form.roles.as_deref().unwrap_or_default());
    let grants_admin = is_admin(&roles)
        && !state
            .store
            .user(&name)
            .await?
            .is_some_and(|u| is_admin(&u.roles));
    if grants_admin && let Some(step_up) = require_step_up(&identity, &state, &user_path(&name)) {
        return Ok(step_up);
    }
    let ip = ip(&req, &state);
    operator(&state, &identity, &ip)
        .set_roles(&name, &roles, true)
        .await?;
    user_page(&identity, &state, &name, Some("Roles saved.".into())).await
}

/// `POST /admin/users/{name}/disable` and `/enable`.
#[tracing::instrument(name = "admin disable", skip_all, fields(username = %identity.username))]
pub async fn set_disabled(
    req: HttpRequest,
    identity: Identity,
    path: web::Path<(String, String)>,
    form: web::Form<CsrfForm>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, PageError> {
    require_admin(&identity, &req)?;
    identity.verify_csrf(form.csrf.as_deref())?;
    let (name, action) = path.into_inner();
    let disabled = match action.as_str() {
        "disable" => true,
        "enable" => false,
        _ => return Ok(crate::routes::not_found().await),
    };
    let ip = ip(&req, &state);
    let ended = operator(&state, &identity, &ip)
        .set_disabled(&name, disabled, true)
        .await?;
    let notice = if disabled {
        format!("Disabled; ended {ended} session(s).")
    } else {
        "Enabled.".to_owned()
    };
    user_page(&identity, &state, &name, Some(notice)).await
}

#[derive(Template)]
#[template(path = "password_shown.html")]
struct PasswordShown<'a> {
    nav: Option<Nav>,
    name: &'a str,
    password: &'a str,
}

/// `POST /admin/users/{name}/password-reset`: a random password, shown once; every session of
/// the user ends.
#[tracing::instrument(name = "admin reset password", skip_all, fields(username = %identity.username))]
pub async fn reset_password(
    req: HttpRequest,
    identity: Identity,
    name: web::Path<String>,
    form: web::Form<CsrfForm>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, PageError> {
    require_admin(&identity, &req)?;
    identity.verify_csrf(form.csrf.as_deref())?;
    let name = normalize_name(&name).map_err(PageError::from)?;
    let ip = ip(&req, &state);
    let password = operator(&state, &identity, &ip)
        .reset_password(&name)
        .await?;
    html(
        StatusCode::OK,
        &PasswordShown {
            nav: Some(Nav::for_identity(&identity)?),
            name: &name,
            password: &password,
        },
    )
}

/// `POST /admin/users/{name}/sessions/revoke-all`
#[tracing::instrument(name = "admin revoke all", skip_all, fields(username = %identity.username))]
pub async fn revoke_all(
    req: HttpRequest,
    identity: Identity,
    name: web::Path<String>,
    form: web::Form<CsrfForm>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, PageError> {
    require_admin(&identity, &req)?;
    identity.verify_csrf(form.csrf.as_deref())?;
    let name = normalize_name(&name).map_err(PageError::from)?;
    let ip = ip(&req, &state);
    let ended = operator(&state, &identity, &ip)
        .revoke_all(&name, None)
        .await?;
    user_page(
        &identity,
        &state,
        &name,
        Some(format!("Ended {ended} session(s).")),
    )
    .await
}

/// `POST /admin/users/{name}/sessions/{handle}/revoke`
#[tracing::instrument(name = "admin revoke session", skip_all, fields(username = %identity.username))]
pub async fn revoke_session(
    req: HttpRequest,
    identity: Identity,
    path: web::Path<(String, String)>,
    form: web::Form<CsrfForm>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, PageError> {
    require_admin(&identity, &req)?;
    identity.verify_csrf(form.csrf.as_deref())?;
    let (name, handle) = path.into_inner();
    let name = normalize_name(&name).map_err(PageError::from)?;
    let ip = ip(&req, &state);
    let revoked = operator(&state, &identity, &ip)
        .revoke_session(&name, &handle)
        .await?;
    if form.back.as_deref() == Some("sessions") {
        return Ok(see_other("/admin/sessions"));
    }
    let notice = if revoked {
        "Session revoked."
    } else {
        "That session had already ended."
    };
    user_page(&identity, &state, &name, Some(notice.to_owned())).await
}

//! `/api/admin/...`: the dashboard's actions as JSON, under the same rules: role `admin`,
//! CSRF protection for cookie-authenticated changes (`X-CSRF-Token`), step-up for granting
//! `admin`, the last-admin guard.

use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;

use super::{ApiError, require_api_csrf};
use crate::auth::Identity;
use crate::routes::account::{ip, operator};
use crate::routes::admin::audit::action_filter;
use crate::routes::admin::users::{failed_logins, throttled};
use crate::routes::paging::{self, search_text, stream_cursor, user_cursor, user_order};
use crate::state::AppState;
use crate::store::{AuditFilter, UserSummary, is_admin};
use crate::users::{normalize_name, optional_name};

fn admin(identity: &Identity, req: &HttpRequest) -> Result<(), ApiError> {
    Ok(identity.require_role("admin", req)?)
}

#[derive(Deserialize)]
pub struct UsersQuery {
    q: Option<String>,
    sort: Option<String>,
    after: Option<String>,
    limit: Option<String>,
}

/// `GET /api/admin/users?q=&sort=&after=&limit=`
pub async fn list_users(
    req: HttpRequest,
    identity: Identity,
    query: web::Query<UsersQuery>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    admin(&identity, &req)?;
    let text = search_text("q", query.q.as_deref())?;
    let order = user_order(query.sort.as_deref())?;
    let after = user_cursor("after", &text, order, query.after.as_deref())?;
    let limit = paging::limit(query.limit.as_deref())?;
    let page = state
        .store
        .list_users(&text, order, after.as_deref(), limit)
        .await?;
    let failed = failed_logins(&state, &page.items).await?;
    let items: Vec<ApiUser> = page
        .items
        .into_iter()
        .zip(failed)
        .map(|(user, failed_logins)| ApiUser {
            user,
            failed_logins,
            throttled: throttled(&state, failed_logins),
        })
        .collect();
    Ok(HttpResponse::Ok().json(serde_json::json!({"items": items, "next": page.next})))
}

/// A user as the API lists them: the record's summary and the throttle status.
#[derive(serde::Serialize)]
struct ApiUser {
    #[serde(flatten)]
    user: UserSummary,
    failed_logins: u64,
    throttled: bool,
}

/// `POST /api/admin/users/{name}/unlock`: clears the account's failed-login counter.
pub async fn unlock(
    req: HttpRequest,
    identity: Identity,
    name: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    admin(&identity, &req)?;
    require_api_csrf(&req, &identity)?;
    let ip = ip(&req, &state);
    operator(&state, &identity, &ip).unlock(&name).await?;
    Ok(HttpResponse::NoContent().finish())
}

#[derive(Deserialize)]
pub struct NewUser {
    name: String,
    password: String,
    #[serde(default)]
    roles: Vec<String>,
}

/// `POST /api/admin/users` `{"name","password","roles"}`
pub async fn create_user(
    req: HttpRequest,
    identity: Identity,
    body: web::Json<NewUser>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    admin(&identity, &req)?;
    require_api_csrf(&req, &identity)?;
    if is_admin(&body.roles) {
        super::require_api_step_up(&identity, &state)?;
    }
    let ip = ip(&req, &state);
    let user = operator(&state, &identity, &ip)
        .create_user(&body.name, &body.password, &body.roles)
        .await?;
    Ok(HttpResponse::Created().json(serde_json::json!({"name": user.name, "roles": user.roles})))
}

/// `GET /api/admin/users/{name}/sessions`
pub async fn user_sessions(
    req: HttpRequest,
    identity: Identity,
    name: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    admin(&identity, &req)?;
    let name = normalize_name(&name)?;
    if state.store.user(&name).await?.is_none() {
        return Err(crate::users::UserError::NotFound(name).into());
    }
    Ok(HttpResponse::Ok().json(state.store.sessions_of(&name).await?))
}

/// `DELETE /api/admin/users/{name}/sessions`: revoke all.
pub async fn revoke_all(
    req: HttpRequest,
    identity: Identity,
    name: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    admin(&identity, &req)?;
    require_api_csrf(&req, &identity)?;
    let name = normalize_name(&name)?;
    let ip = ip(&req, &state);
    let revoked = operator(&state, &identity, &ip)
        .revoke_all(&name, None)
        .await?;
    Ok(HttpResponse::Ok().json(serde_json::json!({"revoked": revoked})))
}

/// `DELETE /api/admin/users/{name}/sessions/{handle}`: 204, or 404 when the user has no such
/// live session.
pub async fn revoke_session(
    req: HttpRequest,
    identity: Identity,
    path: web::Path<(String, String)>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    admin(&identity, &req)?;
    require_api_csrf(&req, &identity)?;
    let (name, handle) = path.into_inner();
    let name = normalize_name(&name)?;
    let ip = ip(&req, &state);
    if operator(&state, &identity, &ip)
        .revoke_session(&name, &handle)
        .await?
    {
        Ok(HttpResponse::NoContent().finish())
    } else {
        Err(ApiError::NotFound("That user has no such live session."))
    }
}

#[derive(Deserialize)]
pub struct Roles {
    roles: Vec<String>,
}

/// `PUT /api/admin/users/{name}/roles` `{"roles":[...]}`
pub async fn set_roles(
    req: HttpRequest,
    identity: Identity,
    name: web::Path<String>,
    body: web::Json<Roles>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    admin(&identity, &req)?;
    require_api_csrf(&req, &identity)?;
    let name = normalize_name(&name)?;
    let had_admin = state
        .store
        .user(&name)
        .await?
        .is_some_and(|u| is_admin(&u.roles));
    if is_admin(&body.roles) && !had_admin {
        super::require_api_step_up(&identity, &state)?;
    }
    let ip = ip(&req, &state);
    operator(&state, &identity, &ip)
        .set_roles(&name, &body.roles, true)
        .await?;
    Ok(HttpResponse::NoContent().finish())
}

#[derive(Deserialize)]
pub struct Disabled {
    disabled: bool,
}

/// `PUT /api/admin/users/{name}/disabled` `{"disabled":true}`
pub async fn set_disabled(
    req: HttpRequest,
    identity: Identity,
    name: web::Path<String>,
    body: web::Json<Disabled>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    admin(&identity, &req)?;
    require_api_csrf(&req, &identity)?;
    let ip = ip(&req, &state);
    let ended = operator(&state, &identity, &ip)
        .set_disabled(&name, body.disabled, true)
        .await?;
    Ok(HttpResponse::Ok().json(serde_json::json!({"ended_sessions": ended})))
}

/// `DELETE /api/admin/users/{name}`: ends every session and removes the user; the audit
/// trail stays; 409 for the last enabled admin.
pub async fn delete_user(
    req: HttpRequest,
    identity: Identity,
    name: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    admin(&identity, &req)?;
    require_api_csrf(&req, &identity)?;
    let ip = ip(&req, &state);
    let ended = operator(&state, &identity, &ip)
        .delete_user(&name, true)
        .await?;
    Ok(HttpResponse::Ok().json(serde_json::json!({"ended_sessions": ended})))
}

#[derive(Deserialize)]
pub struct SessionsQuery {
    user: Option<String>,
    after: Option<String>,
    limit: Option<String>,
}

/// `GET /api/admin/sessions?user=&after=&limit=`: newest first.
pub async fn list_sessions(
    req: HttpRequest,
    identity: Identity,
    query: web::Query<SessionsQuery>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    admin(&identity, &req)?;
    let after = stream_cursor("after", query.after.as_deref())?;
    let limit = paging::limit(query.limit.as_deref())?;
    match optional_name(query.user.as_deref())? {
        Some(user) => {
            let sessions = state.store.sessions_of(&user).await?;
            Ok(HttpResponse::Ok().json(crate::store::Page {
                items: sessions,
                next: None,
            }))
        }
        None => {
            let page = state.store.recent_sessions(after, limit).await?;
            Ok(HttpResponse::Ok().json(page))
        }
    }
}

#[derive(Deserialize)]
pub struct AuditQuery {
    user: Option<String>,
    action: Option<String>,
    before: Option<String>,
    limit: Option<String>,
}

/// `GET /api/admin/audit?user=&action=&before=&limit=`: newest first.
pub async fn audit(
    req: HttpRequest,
    identity: Identity,
    query: web::Query<AuditQuery>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    admin(&identity, &req)?;
    let user = optional_name(query.user.as_deref())?;
    let action = action_filter(query.action.as_deref())?;
    let before = stream_cursor("before", query.before.as_deref())?;
    let filter = AuditFilter {
        user: user.as_deref(),
        action,
    };
    let page = state
        .store
        .audit(filter, before, paging::limit(query.limit.as_deref())?)
        .await?;
    Ok(HttpResponse::Ok().json(page))
}

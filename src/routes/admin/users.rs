use std::collections::HashMap;

use actix_web::{HttpRequest, HttpResponse, http::StatusCode, web};
use askama::Template;
use serde::Deserialize;

use super::{AuditRow, require_admin, revoke_note};
use crate::auth::Identity;
use crate::auth::throttle;
use crate::error::{PageError, user_error_status};
use crate::routes::account::{ip, operator, step_up_location, stepped_up};
use crate::routes::confirm::{self, Question};
use crate::routes::flash::{self, Flash};
use crate::routes::paging::{search_text, user_cursor, user_order};
use crate::routes::{
    FieldError, Nav, RoleChoice, When, encode_query_value, html, role_choices, roles_sent,
    sessions_count,
};
use crate::state::AppState;
use crate::store::{AuditFilter, UserOrder, UserSummary, is_admin};
use crate::users::{UserError, normalize_name};

pub const PAGE_SIZE: usize = 25;

#[derive(Template)]
#[template(path = "admin_users.html")]
struct UsersPage {
    nav: Option<Nav>,
    csrf: String,
    users: Vec<UserRow>,
    /// Every user, whatever the search.
    total: u64,
    query: String,
    order: UserOrder,
    next: Option<String>,
    notice: Option<String>,
    /// The create form as it was sent, when it was refused (never the password).
    create: CreateView,
    role_choices: Vec<RoleChoice>,
}

impl UsersPage {
    fn error_on(&self, field: &str) -> Option<&str> {
        self.create.error.as_ref().and_then(|e| e.on(field))
    }

    // Percent-encoded: only letters, digits and `%XX` reach the page.
    fn query_param(&self) -> String {
        encode_query_value(&self.query)
    }

    fn sort_param(&self) -> &'static str {
        self.order.param()
    }

    /// `aria-sort` of a column header: which order the rows are in.
    fn sorted_by(&self, order: &str) -> &'static str {
        if self.query.is_empty() && self.order.param() == order {
            if order == "name" {
                "ascending"
            } else {
                "descending"
            }
        } else {
            "none"
        }
    }

    fn next_param(&self) -> Option<String> {
        self.next.as_deref().map(encode_query_value)
    }
}

/// One user as the lists show them.
pub struct UserRow {
    pub name: String,
    pub roles: Vec<String>,
    pub disabled: bool,
    pub created: When,
    pub last_login: Option<When>,
    pub live_sessions: u64,
    /// Failed sign-ins in the current throttle window.
    pub failed_logins: u64,
    /// Sign-ins are refused until the window closes or an admin unlocks the account.
    pub throttled: bool,
}

impl UserRow {
    pub fn status(&self) -> &'static str {
        match (self.disabled, self.throttled) {
            (true, _) => "disabled",
            (false, true) => "throttled",
            (false, false) => "active",
        }
    }
}

/// Each user's failed sign-ins in the current throttle window (one store round trip).
pub async fn failed_logins(
    state: &AppState,
    users: &[UserSummary],
) -> Result<Vec<u64>, crate::store::StoreError> {
    let names: Vec<&str> = users.iter().map(|u| u.name.as_str()).collect();
    throttle::account_failures(&state.store, &names).await
}

/// Whether that many failed sign-ins keep the account from signing in now.
pub fn throttled(state: &AppState, failed_logins: u64) -> bool {
    throttle::over_limit(
        failed_logins,
        state.settings.throttle.max_failures_per_account,
    )
}

/// The rows of `users`, with each account's throttle status.
async fn user_rows(
    state: &AppState,
    users: Vec<UserSummary>,
) -> Result<Vec<UserRow>, crate::store::StoreError> {
    let failed = failed_logins(state, &users).await?;
    Ok(users
        .into_iter()
        .zip(failed)
        .map(|(user, failed)| UserRow::new(state, user, failed))
        .collect())
}

impl UserRow {
    fn new(state: &AppState, user: UserSummary, failed_logins: u64) -> UserRow {
        let now = state.clock.now();
        UserRow {
            created: When::new(user.created, now),
            last_login: (user.last_login > 0).then(|| When::new(user.last_login, now)),
            failed_logins,
            throttled: throttled(state, failed_logins),
            name: user.name,
            roles: user.roles,
            disabled: user.disabled,
            live_sessions: user.live_sessions,
        }
    }
}

#[derive(Default)]
struct CreateView {
    name: String,
    roles: Vec<String>,
    error: Option<FieldError>,
}

#[derive(Deserialize)]
pub struct UsersQuery {
    q: Option<String>,
    sort: Option<String>,
    after: Option<String>,
}

/// `GET /admin/users?q=text&after=cursor`: users whose name contains `q` (everyone when
/// empty), a page at a time.
#[tracing::instrument(name = "admin users", skip_all, fields(username = %identity.username))]
pub async fn list(
    req: HttpRequest,
    identity: Identity,
    query: web::Query<UsersQuery>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, PageError> {
    require_admin(&identity, &req)?;
    let text = search_text("q", query.q.as_deref())?;
    let order = user_order(query.sort.as_deref())?;
    let after = user_cursor("after", &text, order, query.after.as_deref())?;
    let (notice, create) = match flash::take(&req, &state, &identity).await? {
        Some(Flash::Notice { text }) => (Some(text), CreateView::default()),
        // Back from a step-up: the form as it was sent (kept server-side), but the password.
        Some(Flash::ResumeCreate { name, roles }) => (
            Some(
                "Your form is as you left it: type the new user's password again and press Create."
                    .to_owned(),
            ),
            CreateView {
                name,
                roles,
                error: None,
            },
        ),
        _ => (None, CreateView::default()),
    };
    let mut response = users_page(
        &identity,
        &state,
        (&text, order),
        after.as_deref(),
        notice,
        create,
        StatusCode::OK,
    )
    .await?;
    flash::clear(&req, &mut response);
    Ok(response)
}

async fn users_page(
    identity: &Identity,
    state: &AppState,
    (text, order): (&str, UserOrder),
    after: Option<&str>,
    notice: Option<String>,
    create: CreateView,
    status: StatusCode,
) -> Result<HttpResponse, PageError> {
    let page = state
        .store
        .list_users(text, order, after, PAGE_SIZE)
        .await?;
    let users = user_rows(state, page.items).await?;
    let total = state.store.user_count().await?;
    let nav = Nav::for_identity(identity)?;
    html(
        status,
        &UsersPage {
            csrf: nav.csrf.clone(),
            nav: Some(nav),
            users,
            total,
            query: text.to_owned(),
            order,
            next: page.next,
            notice,
            role_choices: role_choices(&state.settings, &[], &create.roles),
            create,
        },
    )
}

#[derive(Deserialize)]
pub struct CreateForm {
    name: String,
    password: String,
    roles: Option<String>,
    csrf: Option<String>,
    /// The ticked `role:{name}` checkboxes.
    #[serde(flatten)]
    checkboxes: HashMap<String, String>,
}

/// `POST /admin/users`: creates a user; creating an admin needs a recent password. A refused
/// form comes back filled in (but the password), with the reason next to its field.
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
    let roles = roles_sent(form.roles.as_deref(), &form.checkboxes);
    if is_admin(&roles) && !stepped_up(&identity, &state) {
        // The form waits server-side for the page after the step-up, never in the address.
        let resume = Flash::ResumeCreate {
            name: form.name.chars().take(64).collect(),
            roles,
        };
        let location = step_up_location("/admin/users#create");
        return flash::redirect(&state, &identity, &location, resume).await;
    }
    let ip = ip(&req, &state);
    let refused = match operator(&state, &identity, &ip)
        .create_user(&form.name, &form.password, &roles)
        .await
    {
        Ok(user) => {
            let notice = Flash::notice(format!("Created {}.", user.name));
            return flash::redirect(&state, &identity, &user_path(&user.name), notice).await;
        }
        Err(err) => err,
    };
    let field = match &refused {
        UserError::BadName | UserError::Exists(_) => "name",
        UserError::WeakPassword(_) => "password",
        UserError::BadRole | UserError::UnknownRole { .. } => "roles",
        _ => return Err(refused.into()),
    };
    users_page(
        &identity,
        &state,
        ("", UserOrder::Name),
        None,
        None,
        CreateView {
            name: form.name,
            roles,
            error: Some(FieldError {
                field,
                message: refused.to_string(),
            }),
        },
        user_error_status(&refused),
    )
    .await
}

#[derive(Template)]
#[template(path = "admin_user.html")]
struct UserPage {
    nav: Option<Nav>,
    csrf: String,
    user: UserRow,
    sessions: Vec<SessionRow>,
    audit: Vec<AuditRow>,
    notice: Option<String>,
    /// A password just generated for this user: shown on this one page load.
    new_password: Option<String>,
    role_choices: Vec<RoleChoice>,
    error: Option<FieldError>,
    revoke_note: String,
    seen_note: String,
}

impl UserPage {
    fn error_on(&self, field: &str) -> Option<&str> {
        self.error.as_ref().and_then(|e| e.on(field))
    }
}

pub struct SessionRow {
    pub handle: String,
    pub user: String,
    pub device: String,
    pub ip: String,
    pub created: When,
    pub last_seen: When,
    /// The session this page was loaded with.
    pub current: bool,
}

impl SessionRow {
    pub fn new(s: crate::store::SessionInfo, now: i64, identity: &Identity) -> SessionRow {
        SessionRow {
            current: s.handle == identity.handle,
            handle: s.handle,
            user: s.user,
            device: s.device,
            ip: s.ip,
            created: When::new(s.created, now),
            last_seen: When::new(s.last_seen, now),
        }
    }
}

/// What a user page shows beyond the user: the outcome of the last action, or a refused form.
#[derive(Default)]
struct UserView {
    flash: Option<Flash>,
    /// The roles form as sent (refused, or back from a step-up), instead of the user's roles.
    roles_sent: Option<Vec<String>>,
    error: Option<FieldError>,
}

async fn user_page(
    identity: &Identity,
    state: &AppState,
    name: &str,
    view: UserView,
    status: StatusCode,
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
        .map(|s| SessionRow::new(s, state.clock.now(), identity))
        .collect();
    let user = UserSummary {
        live_sessions: sessions.len() as u64,
        name: record.name,
        roles: record.roles,
        disabled: record.disabled,
        created: record.created,
        last_login: record.last_login,
    };
    let audit = state
        .store
        .audit(AuditFilter::user(&name), None, 20)
        .await?
        .items
        .into_iter()
        .map(AuditRow::from)
        .collect();
    let checked = view.roles_sent.as_deref().unwrap_or(&user.roles);
    let role_choices = role_choices(&state.settings, &user.roles, checked);
    let failed = failed_logins(state, std::slice::from_ref(&user)).await?;
    let user = UserRow::new(state, user, failed.first().copied().unwrap_or(0));
    let (notice, new_password) = match view.flash {
        Some(Flash::Notice { text }) => (Some(text), None),
        Some(Flash::NewPassword {
            user: for_user,
            password,
        }) if for_user == user.name => (None, Some(password)),
        _ => (None, None),
    };
    let nav = Nav::for_identity(identity)?;
    html(
        status,
        &UserPage {
            csrf: nav.csrf.clone(),
            nav: Some(nav),
            user,
            sessions,
            audit,
            notice,
            new_password,
            role_choices,
            error: view.error,
            revoke_note: revoke_note(state),
            seen_note: crate::routes::seen_note(&state.settings),
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
    let mut flash = flash::take(&req, &state, &identity).await?;
    // Back from a step-up: the roles form as it was sent (kept server-side), not yet saved.
    let mut roles_sent = None;
    if let Some(Flash::ResumeRoles { user, roles }) = &flash
        && normalize_name(&name).is_ok_and(|n| &n == user)
    {
        roles_sent = Some(roles.clone());
        flash = Some(Flash::notice(
            "Your form is as you left it: press Save roles to finish.",
        ));
    }
    let view = UserView {
        flash,
        roles_sent,
        ..UserView::default()
    };
    let mut response = user_page(&identity, &state, &name, view, StatusCode::OK).await?;
    // The security headers' `no-store` keeps a generated password shown here out of caches.
    flash::clear(&req, &mut response);
    Ok(response)
}

/// A refused action on the user page: the page again, the reason next to its form.
async fn refused_on_user_page(
    identity: &Identity,
    state: &AppState,
    name: &str,
    err: UserError,
    field: &'static str,
    roles_sent: Option<Vec<String>>,
) -> Result<HttpResponse, PageError> {
    let status = user_error_status(&err);
    if matches!(err, UserError::NotFound(_)) {
        return Err(err.into());
    }
    let view = UserView {
        flash: None,
        roles_sent,
        error: Some(FieldError {
            field,
            message: err.to_string(),
        }),
    };
    user_page(identity, state, name, view, status).await
}

#[derive(Deserialize)]
pub struct CsrfForm {
    csrf: Option<String>,
    back: Option<String>,
    /// `yes` when sent from the confirmation page.
    confirm: Option<String>,
}

#[derive(Deserialize)]
pub struct RolesForm {
    roles: Option<String>,
    csrf: Option<String>,
    /// The ticked `role:{name}` checkboxes.
    #[serde(flatten)]
    checkboxes: HashMap<String, String>,
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
    let roles = roles_sent(form.roles.as_deref(), &form.checkboxes);
    let grants_admin = is_admin(&roles)
        && !state
            .store
            .user(&name)
            .await?
            .is_some_and(|u| is_admin(&u.roles));
    if grants_admin && !stepped_up(&identity, &state) {
        let resume = Flash::ResumeRoles {
            user: normalize_name(&name)?,
            roles,
        };
        let location = step_up_location(&format!("{}#roles-form", user_path(&name)));
        return flash::redirect(&state, &identity, &location, resume).await;
    }
    let ip = ip(&req, &state);
    match operator(&state, &identity, &ip)
        .set_roles(&name, &roles, true)
        .await
    {
        Ok(()) => {
            let notice = Flash::notice(format!("Roles of {name} saved."));
            flash::redirect(&state, &identity, &user_path(&name), notice).await
        }
        Err(err @ (UserError::BadRole | UserError::UnknownRole { .. } | UserError::LastAdmin)) => {
            refused_on_user_page(&identity, &state, &name, err, "roles", Some(roles)).await
        }
        Err(err) => Err(err.into()),
    }
}

/// `POST /admin/users/{name}/unlock`: a throttled account may sign in again at once. Back to
/// the list (`back=list`) or the user page.
#[tracing::instrument(name = "admin unlock", skip_all, fields(username = %identity.username))]
pub async fn unlock(
    req: HttpRequest,
    identity: Identity,
    name: web::Path<String>,
    form: web::Form<CsrfForm>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, PageError> {
    require_admin(&identity, &req)?;
    identity.verify_csrf(form.csrf.as_deref())?;
    let ip = ip(&req, &state);
    operator(&state, &identity, &ip).unlock(&name).await?;
    let notice = Flash::notice(format!("Unlocked {name}: they can sign in again now."));
    let back = if form.back.as_deref() == Some("list") {
        "/admin/users".to_owned()
    } else {
        user_path(&name)
    };
    flash::redirect(&state, &identity, &back, notice).await
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
    if disabled && !confirm::confirmed(form.confirm.as_deref()) {
        let question = format!(
            "Disable {name}? Every session of {name} ends now, and {name} cannot sign in until an admin enables the account again."
        );
        return ask_on_user_page(
            &req,
            &identity,
            &name,
            "Disable this account?",
            question,
            format!("Disable {name}"),
        );
    }
    let ip = ip(&req, &state);
    let ended = match operator(&state, &identity, &ip)
        .set_disabled(&name, disabled, true)
        .await
    {
        Ok(ended) => ended,
        Err(err @ UserError::LastAdmin) => {
            return refused_on_user_page(&identity, &state, &name, err, "account", None).await;
        }
        Err(err) => return Err(err.into()),
    };
    let notice = if disabled {
        format!("Disabled {name}; {} ended.", sessions_count(ended))
    } else {
        format!("Enabled {name}.")
    };
    flash::redirect(&state, &identity, &user_path(&name), Flash::notice(notice)).await
}

/// The confirmation page for an action of the user page: the same form again, Cancel back
/// to the user.
fn ask_on_user_page(
    req: &HttpRequest,
    identity: &Identity,
    name: &str,
    title: &str,
    question: String,
    button: String,
) -> Result<HttpResponse, PageError> {
    confirm::ask(
        identity,
        Question {
            title,
            question,
            button,
            action: req.path(),
            cancel: &user_path(name),
            back: None,
        },
    )
}

/// `POST /admin/users/{name}/password-reset`: a random password, shown once on the user page
/// the browser is sent to; every session of the user ends.
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
    if !confirm::confirmed(form.confirm.as_deref()) {
        let question = format!(
            "Reset the password of {name}? Every session of {name} ends now, and the new password is shown to you once, to pass on over a channel you trust."
        );
        return ask_on_user_page(
            &req,
            &identity,
            &name,
            "Reset this password?",
            question,
            format!("Reset the password of {name}"),
        );
    }
    let ip = ip(&req, &state);
    let password = operator(&state, &identity, &ip)
        .reset_password(&name)
        .await?;
    let shown = Flash::NewPassword {
        user: name.clone(),
        password,
    };
    flash::redirect(&state, &identity, &user_path(&name), shown).await
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
    if !confirm::confirmed(form.confirm.as_deref()) {
        let question = format!(
            "End every session of {name}? Each browser and device signed in as {name} is signed out at its next request."
        );
        return ask_on_user_page(
            &req,
            &identity,
            &name,
            "End every session?",
            question,
            format!("End every session of {name}"),
        );
    }
    let ip = ip(&req, &state);
    let ended = operator(&state, &identity, &ip)
        .revoke_all(&name, None)
        .await?;
    let notice = Flash::notice(format!("Ended {} of {name}.", sessions_count(ended)));
    flash::redirect(&state, &identity, &user_path(&name), notice).await
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
    // An admin ending a session of their own account may be cutting the branch they sit on.
    if name == identity.username && !confirm::confirmed(form.confirm.as_deref()) {
        let here = req.path().to_owned();
        let cancel = if form.back.as_deref() == Some("sessions") {
            "/admin/sessions".to_owned()
        } else {
            user_path(&name)
        };
        let question = if handle == identity.handle {
            "This is the session you are using now: ending it signs you out here.".to_owned()
        } else {
            "This is one of your own sessions, on another browser or device: it is signed out at its next request.".to_owned()
        };
        return confirm::ask(
            &identity,
            Question {
                title: "End your own session?",
                question,
                button: "End this session".to_owned(),
                action: &here,
                cancel: &cancel,
                back: form.back.as_deref(),
            },
        );
    }
    let ip = ip(&req, &state);
    let revoked = operator(&state, &identity, &ip)
        .revoke_session(&name, &handle)
        .await?;
    let notice = Flash::notice(if revoked {
        format!("Ended a session of {name}.")
    } else {
        "That session had already ended.".to_owned()
    });
    let back = if form.back.as_deref() == Some("sessions") {
        "/admin/sessions".to_owned()
    } else {
        user_path(&name)
    };
    flash::redirect(&state, &identity, &back, notice).await
}

/// `POST /admin/users/{name}/delete`: ends every session of the user and removes the record
/// (the audit trail stays); asks first, and never removes the last enabled admin.
#[tracing::instrument(name = "admin delete user", skip_all, fields(username = %identity.username))]
pub async fn delete(
    req: HttpRequest,
    identity: Identity,
    name: web::Path<String>,
    form: web::Form<CsrfForm>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, PageError> {
    require_admin(&identity, &req)?;
    identity.verify_csrf(form.csrf.as_deref())?;
    let name = normalize_name(&name).map_err(PageError::from)?;
    if !confirm::confirmed(form.confirm.as_deref()) {
        let question = format!(
            "Delete {name}? Every session of {name} ends now and the account is gone; its audit trail stays. This cannot be undone."
        );
        return ask_on_user_page(
            &req,
            &identity,
            &name,
            "Delete this user?",
            question,
            format!("Delete {name}"),
        );
    }
    let ip = ip(&req, &state);
    match operator(&state, &identity, &ip)
        .delete_user(&name, true)
        .await
    {
        Ok(ended) => {
            let notice = format!("Deleted {name}; {} ended.", sessions_count(ended));
            flash::redirect(&state, &identity, "/admin/users", Flash::notice(notice)).await
        }
        Err(err @ UserError::LastAdmin) => {
            refused_on_user_page(&identity, &state, &name, err, "account", None).await
        }
        Err(err) => Err(err.into()),
    }
}

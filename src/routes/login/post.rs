use actix_session::Session;
use actix_web::{HttpRequest, HttpResponse, http::StatusCode, http::header, web};
use serde::Deserialize;

use super::LoginPage;
use crate::audit::Action;
use crate::auth::authenticator::Authenticator;
use crate::auth::csrf;
use crate::auth::password::{self, MAX_PASSWORD_LEN};
use crate::auth::throttle::{LoginThrottle, Verdict};
use crate::device;
use crate::error::PageError;
use crate::routes::{client_ip, return_url, safe_next, see_other};
use crate::state::AppState;
use crate::store::REMEMBER_FIELD;
use crate::users::normalize_name;

#[derive(Deserialize)]
pub struct LoginForm {
    username: String,
    password: String,
    csrf: Option<String>,
    next: Option<String>,
    rd: Option<String>,
    /// The "remember me" checkbox: "on" when ticked.
    remember: Option<String>,
}

/// One message for every failure, so the page never tells whether the account exists.
const INVALID_CREDENTIALS: &str = "Invalid user name or password.";
const ACCOUNT_DISABLED: &str = "This account is disabled. Ask an administrator to enable it.";

#[tracing::instrument(name = "login", skip_all, fields(username = tracing::field::Empty))]
pub async fn post(
    req: HttpRequest,
    form: web::Form<LoginForm>,
    session: Session,
    state: web::Data<AppState>,
    auth: web::Data<Authenticator>,
) -> Result<HttpResponse, PageError> {
    csrf::verify(&session, form.csrf.as_deref())?;
    let form = form.into_inner();
    let next = safe_next(form.next.as_deref());
    let rd = form
        .rd
        .as_deref()
        .and_then(|rd| return_url(rd, &state.settings));
    let typed_name: String = form
        .username
        .trim()
        .to_ascii_lowercase()
        .chars()
        .take(64)
        .collect();
    let username = normalize_name(&form.username).ok();
    tracing::Span::current().record("username", typed_name.as_str());

    let ip = client_ip(&req, &state.settings);
    let throttle = LoginThrottle::new(&state.store, &state.settings.throttle, &typed_name, &ip);
    let retry_page = |message: &str, status| -> Result<HttpResponse, PageError> {
        let token = csrf::token(&session)?;
        LoginPage {
            csrf: &token,
            next: Some(next.as_str()).filter(|n| *n != "/"),
            rd: rd.as_ref().map(url::Url::as_str),
            site: rd.as_ref().and_then(url::Url::host_str),
            remember_me: super::offers_remember_me(&state.settings),
            username: &typed_name,
            message: Some(message),
            notice: None,
            nav: None,
        }
        .respond(status)
    };

    if let Verdict::Throttled { retry_after_secs } = throttle.check().await? {
        tracing::warn!(ip, "login throttled");
        state
            .audit(Action::LoginThrottled, "", &typed_name, "", &ip)
            .await?;
        let minutes = (retry_after_secs + 59) / 60;
        let mut response = retry_page(
            &format!(
                "Too many failed logins. Try again in {minutes} minute{}.",
                if minutes == 1 { "" } else { "s" }
            ),
            StatusCode::TOO_MANY_REQUESTS,
        )?;
        response.headers_mut().insert(
            header::RETRY_AFTER,
            header::HeaderValue::from(retry_after_secs),
        );
        return Ok(response);
    }

    let user = match &username {
        Some(name) => state.store.user(name).await?,
        None => None,
    };
    // An unknown user still costs one argon2 verification, against a dummy hash, so response
    // time does not reveal which accounts exist. A disabled account is checked the same way.
    let (phc, usable) = match &user {
        Some(user) => (user.phc.clone(), !user.disabled),
        None => (state.dummy_phc.to_string(), false),
    };
    let candidate = if form.password.len() <= MAX_PASSWORD_LEN {
        form.password
    } else {
        String::new()
    };
    let password_ok = password::verify_password(phc, candidate, &state.metrics).await?;

    // Only someone who knows the password learns that the account is disabled: anyone else
    // gets the one message for every failure.
    if let Some(user) = user.as_ref().filter(|_| password_ok && !usable) {
        state
            .audit(Action::LoginFailed, "", &user.name, "account disabled", &ip)
            .await?;
        tracing::info!(ip, "login refused: account disabled");
        return retry_page(ACCOUNT_DISABLED, StatusCode::FORBIDDEN);
    }
    let Some(user) = user.filter(|_| password_ok && usable) else {
        throttle.record_failure().await?;
        state
            .audit(Action::LoginFailed, "", &typed_name, "", &ip)
            .await?;
        tracing::info!(ip, "login failed");
        return retry_page(INVALID_CREDENTIALS, StatusCode::UNAUTHORIZED);
    };

    // A new session ID (or token family) at the moment of authentication: whatever ID the
    // browser held before, possibly planted by an attacker, is deleted and stays anonymous.
    let device = device::label(
        req.headers()
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default(),
    );
    let system = crate::users::Operator {
        store: &state.store,
        clock: &state.clock,
        metrics: &state.metrics,
        name: "system",
        ip: &ip,
        known_roles: &state.settings.auth.roles,
    };
    system
        .make_room_for_session(&user.name, state.settings.session.max_per_user)
        .await?;
    auth.sign_in(&req, &state, &user.name, &user.roles, &ip, &device)
        .await?;
    if form.remember.as_deref() == Some("on") && super::offers_remember_me(&state.settings) {
        // The cookie becomes persistent (see `session_layer::persist_remembered`).
        session
            .insert(REMEMBER_FIELD, true)
            .map_err(|e| PageError::SessionState(e.to_string()))?;
    }
    state
        .audit(Action::LoginSucceeded, &user.name, &user.name, "", &ip)
        .await?;
    // The session exists and the login is audited: a failure to note "last sign-in" (a
    // dashboard column) must not turn a signed-in person's answer into an error page.
    if let Err(err) = state.store.note_login(&user.name, state.clock.now()).await {
        tracing::warn!(error = %err, "could not record the sign-in time");
    }
    tracing::info!(ip, "login succeeded");
    // Back to the app a forward-auth proxy sent them from, if it is one of ours.
    Ok(see_other(
        rd.as_ref().map_or(next.as_str(), url::Url::as_str),
    ))
}

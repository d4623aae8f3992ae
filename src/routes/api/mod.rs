//! JSON endpoints: same identity, JSON answers (401/403 bodies instead of redirects).

pub mod admin;
pub mod me;

use actix_web::{HttpRequest, HttpResponse, ResponseError, http::Method, http::StatusCode, web};
use serde::Deserialize;

use crate::auth::authenticator::Authenticator;
use crate::auth::authenticator::SignInError;
use crate::auth::password::{self, MAX_PASSWORD_LEN};
use crate::auth::{AuthError, Identity};
use crate::error::user_error_status;
use crate::state::AppState;
use crate::store::StoreError;
use crate::users::UserError;
use crate::web::response::json_error;

/// Errors of the JSON API: a status and `{"error": code, "message": text}`.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error(transparent)]
    Auth(#[from] AuthError),
    #[error("The X-CSRF-Token header is missing or wrong: get one from GET /api/csrf.")]
    Csrf,
    #[error("Type the password again first: POST /api/reauth.")]
    StepUp,
    #[error("{0}")]
    NotFound(&'static str),
    #[error(transparent)]
    User(UserError),
    #[error("a store call failed")]
    Store(#[from] StoreError),
    /// A malformed parameter: the message names it.
    #[error("{0}")]
    Invalid(String),
    #[error("The server could not complete this request.")]
    Internal(String),
}

impl From<UserError> for ApiError {
    fn from(err: UserError) -> Self {
        match err {
            UserError::Store(e) => ApiError::Store(e),
            UserError::Password(e) => ApiError::Internal(e.to_string()),
            UserError::Random(e) => ApiError::Internal(e.to_string()),
            other => ApiError::User(other),
        }
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            ApiError::Auth(e) => e.status_code(),
            ApiError::Csrf | ApiError::StepUp => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::User(e) => user_error_status(e),
            ApiError::Store(e) => crate::web::response::store_error_status(e.class()),
            ApiError::Invalid(_) => StatusCode::BAD_REQUEST,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        match self {
            ApiError::Auth(e) => return e.error_response(),
            ApiError::Store(e) => return crate::web::response::store_failure_response(e, true),
            ApiError::Internal(_) => {}
            refused => tracing::info!(error = %refused, "API call refused"),
        }
        let code = match self {
            ApiError::Csrf => "csrf",
            ApiError::StepUp => "step_up_required",
            ApiError::NotFound(_) | ApiError::User(UserError::NotFound(_)) => "not_found",
            ApiError::User(UserError::LastAdmin) => "last_admin",
            ApiError::User(UserError::Exists(_)) => "exists",
            ApiError::User(UserError::WeakPassword(_)) => "weak_password",
            ApiError::User(UserError::WrongPassword) => "wrong_password",
            ApiError::User(UserError::UnknownRole { .. }) => "unknown_role",
            ApiError::User(_) | ApiError::Invalid(_) => "invalid",
            ApiError::Store(_) => "internal",
            ApiError::Internal(e) => {
                tracing::error!(error = %e, "internal error");
                "internal"
            }
            ApiError::Auth(_) => "unauthenticated",
        };
        json_error(self.status_code(), code, &self.to_string())
    }
}

/// A cookie-authenticated change must carry the session's CSRF token in `X-CSRF-Token`
/// (from `GET /api/csrf`); the cross-site guard has already refused other sites' requests.
pub fn require_api_csrf(req: &HttpRequest, identity: &Identity) -> Result<(), ApiError> {
    if matches!(*req.method(), Method::GET | Method::HEAD) {
        return Ok(());
    }
    let token = req
        .headers()
        .get("x-csrf-token")
        .and_then(|v| v.to_str().ok());
    identity.verify_csrf(token).map_err(|_| ApiError::Csrf)
}

pub fn require_api_step_up(identity: &Identity, state: &AppState) -> Result<(), ApiError> {
    let window = state.settings.auth.step_up_window_secs as i64;
    if identity.recently_authenticated(state.clock.now(), window) {
        Ok(())
    } else {
        Err(ApiError::StepUp)
    }
}

/// `GET /api/csrf`: the token cookie-authenticated API calls send back in `X-CSRF-Token`.
pub async fn csrf_token(identity: Identity) -> Result<HttpResponse, ApiError> {
    let token = identity
        .csrf_token()
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    Ok(HttpResponse::Ok().json(serde_json::json!({"csrf": token})))
}

#[derive(Deserialize)]
pub struct Reauth {
    password: String,
}

/// `POST /api/reauth` `{"password"}`: step-up for API clients; 204 or 401.
pub async fn reauth(
    req: HttpRequest,
    identity: Identity,
    body: web::Json<Reauth>,
    state: web::Data<AppState>,
    auth: web::Data<Authenticator>,
) -> Result<HttpResponse, ApiError> {
    require_api_csrf(&req, &identity)?;
    let user = state
        .store
        .user(&identity.username)
        .await?
        .ok_or(ApiError::NotFound("There is no such user."))?;
    let candidate = if body.password.len() <= MAX_PASSWORD_LEN {
        body.password.clone()
    } else {
        String::new()
    };
    let ok = password::verify_password(user.phc, candidate, &state.metrics)
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    if !ok {
        return Ok(json_error(
            StatusCode::UNAUTHORIZED,
            "wrong_password",
            "That password is not right.",
        ));
    }
    auth.mark_authenticated(&req, &identity, &state)
        .await
        .map_err(|e| match e {
            SignInError::Store(e) => ApiError::Store(e),
            other => ApiError::Internal(other.to_string()),
        })?;
    Ok(HttpResponse::NoContent().finish())
}

//! The one seam where a request becomes an identity. Handlers ask for `Identity` (or
//! `Option<Identity>`) and never look at cookies, tokens or the store themselves.

use std::future::{Ready, ready};

use actix_session::{Session, SessionExt};
use actix_web::{
    FromRequest, HttpRequest, HttpResponse, ResponseError, dev::Payload, http::StatusCode,
    http::header,
};

use crate::store::{AUTH_AT_FIELD, HANDLE_FIELD, ROLES_FIELD, UID_FIELD};

/// The logged-in user of this request, with the roles the user has *now*: they are read from
/// the user record in the same round trip that loads the session, so a role change or a
/// disabled account takes effect on the next request.
#[derive(Clone)]
pub struct Identity {
    pub username: String,
    pub roles: Vec<String>,
    /// The current session's public handle.
    pub handle: String,
    /// When the password was last typed in this session (login or step-up), Unix seconds.
    pub authenticated_at: i64,
    session: Session,
}

impl Identity {
    pub fn has_role(&self, role: &str) -> bool {
        self.roles.iter().any(|r| r == role)
    }

    pub fn require_role(&self, role: &str, req: &HttpRequest) -> Result<(), AuthError> {
        if self.has_role(role) {
            Ok(())
        } else {
            Err(AuthError::Forbidden {
                api: wants_json(req),
            })
        }
    }

    pub fn session(&self) -> &Session {
        &self.session
    }

    /// Whether the password was typed within `window_secs`: sensitive actions ask for it again
    /// otherwise (step-up), so a borrowed unlocked laptop cannot end the owner's other sessions.
    pub fn recently_authenticated(&self, now: i64, window_secs: i64) -> bool {
        now - self.authenticated_at <= window_secs
    }

    fn from_session(session: Session) -> Option<Identity> {
        let (username, roles, handle, authenticated_at) = {
            let entries = session.entries();
            let username: String = serde_json::from_str(entries.get(UID_FIELD)?).ok()?;
            let roles = entries
                .get(ROLES_FIELD)
                .map(|joined| {
                    joined
                        .split(',')
                        .filter(|r| !r.is_empty())
                        .map(str::to_owned)
                        .collect()
                })
                .unwrap_or_default();
            let handle = entries.get(HANDLE_FIELD).cloned().unwrap_or_default();
            let authenticated_at = entries
                .get(AUTH_AT_FIELD)
                .and_then(|raw| raw.parse().ok())
                .unwrap_or(0);
            (username, roles, handle, authenticated_at)
        };
        Some(Identity {
            username,
            roles,
            handle,
            authenticated_at,
            session,
        })
    }
}

/// API routes answer in JSON; pages answer with redirects and HTML.
pub fn wants_json(req: &HttpRequest) -> bool {
    req.path().starts_with("/api/")
}

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("not logged in")]
    Anonymous { api: bool, next: String },
    #[error("missing role")]
    Forbidden { api: bool },
}

impl ResponseError for AuthError {
    fn status_code(&self) -> StatusCode {
        match self {
            AuthError::Anonymous { api: true, .. } => StatusCode::UNAUTHORIZED,
            AuthError::Anonymous { api: false, .. } => StatusCode::SEE_OTHER,
            AuthError::Forbidden { .. } => StatusCode::FORBIDDEN,
        }
    }

    fn error_response(&self) -> HttpResponse {
        match self {
            AuthError::Anonymous { api: true, .. } => {
                HttpResponse::Unauthorized().json(serde_json::json!({"error": "unauthenticated"}))
            }
            AuthError::Anonymous { api: false, next } => {
                let location = if next == "/" {
                    "/login".to_owned()
                } else {
                    format!("/login?next={}", crate::routes::encode_query_value(next))
                };
                HttpResponse::SeeOther()
                    .insert_header((header::LOCATION, location))
                    .finish()
            }
            AuthError::Forbidden { api: true } => {
                HttpResponse::Forbidden().json(serde_json::json!({"error": "forbidden"}))
            }
            AuthError::Forbidden { api: false } => crate::error::page_response(
                StatusCode::FORBIDDEN,
                "Forbidden",
                "Your account does not have the role this page needs.",
            ),
        }
    }
}

impl FromRequest for Identity {
    type Error = AuthError;
    type Future = Ready<Result<Identity, AuthError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(
            Identity::from_session(req.get_session()).ok_or_else(|| AuthError::Anonymous {
                api: wants_json(req),
                next: match req.uri().path_and_query() {
                    Some(pq) => pq.as_str().to_owned(),
                    None => "/".to_owned(),
                },
            }),
        )
    }
}

//! The one seam where a request becomes an identity. Handlers ask for `Identity` (or
//! `MaybeIdentity`) and never look at cookies, tokens or the store themselves.

use actix_session::Session;
use actix_web::{
    FromRequest, HttpRequest, HttpResponse, ResponseError, dev::Payload, http::StatusCode,
    http::header, web,
};
use futures_util::future::LocalBoxFuture;

use super::csrf::{self, CsrfError};
use crate::state::AppState;
use crate::store::{AUTH_AT_FIELD, Ending, HANDLE_FIELD, ROLES_FIELD, StoreError, UID_FIELD};
pub use crate::web::request::wants_json;

/// What proved who the request is from.
#[derive(Clone)]
pub enum Credential {
    /// Session mode: the session actix-session loaded (CSRF token and state live there).
    Session(Session),
    /// JWT mode: a verified access token from the cookie (or one just minted by a refresh).
    Token,
    /// JWT mode: a verified access token from an `Authorization: Bearer` header. Browsers never
    /// attach it on their own, so it needs no CSRF token.
    Bearer,
}

/// The signed-in user of this request, with the roles the user has *now* (session mode: read
/// from the user record in the same round trip that loads the session; JWT mode: as of the
/// token's minting, which is what the benchmark's revocation figures are about).
#[derive(Clone)]
pub struct Identity {
    pub username: String,
    pub roles: Vec<String>,
    /// The current session's (or refresh family's) public handle.
    pub handle: String,
    /// When the password was last typed in this session (login or step-up), Unix seconds.
    pub authenticated_at: i64,
    pub credential: Credential,
    /// JWT mode's per-family CSRF token; session mode keeps its token in the session.
    pub csrf: String,
    /// JWT mode: when the presented access token expires (0 in session mode).
    pub token_expires: i64,
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

    /// Whether the password was typed within `window_secs`: sensitive actions ask for it again
    /// otherwise (step-up), so a borrowed unlocked laptop cannot end the owner's other sessions.
    pub fn recently_authenticated(&self, now: i64, window_secs: i64) -> bool {
        now - self.authenticated_at <= window_secs
    }

    /// The token forms of this session carry.
    pub fn csrf_token(&self) -> Result<String, CsrfError> {
        match &self.credential {
            Credential::Session(session) => csrf::token(session),
            Credential::Token | Credential::Bearer => Ok(self.csrf.clone()),
        }
    }

    pub fn verify_csrf(&self, submitted: Option<&str>) -> Result<(), CsrfError> {
        match &self.credential {
            Credential::Session(session) => csrf::verify(session, submitted),
            Credential::Token => csrf::compare(&self.csrf, submitted),
            Credential::Bearer => Ok(()),
        }
    }

    pub(crate) fn from_session(session: Session) -> Option<Identity> {
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
            credential: Credential::Session(session),
            csrf: String::new(),
            token_expires: 0,
        })
    }
}

/// Why a browser is on the login page, said there in one sentence. Carried in the address
/// (`why=`), so it can only ever pick one of these fixed sentences.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoginReason {
    /// The session was revoked (by its owner elsewhere, an admin, a password change...).
    Ended,
    /// The cookie named a session that ran out (idle or absolute timeout).
    Expired,
    SignedOut,
}

impl LoginReason {
    pub fn param(self) -> &'static str {
        match self {
            LoginReason::Ended => "ended",
            LoginReason::Expired => "expired",
            LoginReason::SignedOut => "signed-out",
        }
    }

    pub fn from_param(raw: &str) -> Option<LoginReason> {
        [
            LoginReason::Ended,
            LoginReason::Expired,
            LoginReason::SignedOut,
        ]
        .into_iter()
        .find(|reason| reason.param() == raw)
    }

    pub fn message(self) -> &'static str {
        match self {
            LoginReason::Ended => "Your session was ended. Sign in again to continue.",
            LoginReason::Expired => "Your session expired. Sign in again to continue.",
            LoginReason::SignedOut => "You signed out.",
        }
    }

    /// Why the session this request's cookie named is gone: the store keeps a note for
    /// revoked and signed-out sessions; no note means it expired. `None` when the request
    /// named no session, or the note could not be read (the page then just asks to sign in).
    async fn of_request(state: &AppState) -> Option<LoginReason> {
        let hash = super::session_layer::missing_session()?;
        match state.store.session_ending(&hash).await {
            Ok(Some(Ending::Ended)) => Some(LoginReason::Ended),
            Ok(Some(Ending::SignedOut)) => Some(LoginReason::SignedOut),
            Ok(None) => Some(LoginReason::Expired),
            Err(err) => {
                tracing::warn!(error = %err, "could not read why a session ended");
                None
            }
        }
    }
}

/// Where an anonymous browser is sent: the login page, with where it was going (`next`) and
/// why it is there (`why`), when there is something to say.
pub fn login_location(next: &str, why: Option<LoginReason>) -> String {
    let mut query = Vec::new();
    if next != "/" {
        query.push(format!(
            "next={}",
            crate::web::request::encode_query_value(next)
        ));
    }
    if let Some(why) = why {
        query.push(format!("why={}", why.param()));
    }
    if query.is_empty() {
        "/login".to_owned()
    } else {
        format!("/login?{}", query.join("&"))
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("not logged in")]
    Anonymous {
        api: bool,
        next: String,
        why: Option<LoginReason>,
    },
    #[error("missing role")]
    Forbidden { api: bool },
    #[error("a store call failed")]
    Store { api: bool, source: StoreError },
}

impl ResponseError for AuthError {
    fn status_code(&self) -> StatusCode {
        match self {
            AuthError::Anonymous { api: true, .. } => StatusCode::UNAUTHORIZED,
            AuthError::Anonymous { api: false, .. } => StatusCode::SEE_OTHER,
            AuthError::Forbidden { .. } => StatusCode::FORBIDDEN,
            AuthError::Store { source, .. } => {
                crate::web::response::store_error_status(source.class())
            }
        }
    }

    // Levels follow who must act: being sent to sign in is the normal flow (DEBUG), a role
    // refusal is worth a line (INFO); only the store's failures are errors, logged where they
    // are answered.
    fn error_response(&self) -> HttpResponse {
        match self {
            AuthError::Anonymous { .. } => tracing::debug!("not signed in"),
            AuthError::Forbidden { .. } => tracing::info!("refused: the role is missing"),
            AuthError::Store { .. } => {}
        }
        match self {
            AuthError::Anonymous { api: true, .. } => crate::web::response::json_error(
                StatusCode::UNAUTHORIZED,
                "unauthenticated",
                "Sign in first: no live session or token came with this request.",
            ),
            AuthError::Anonymous {
                api: false,
                next,
                why,
            } => HttpResponse::SeeOther()
                .insert_header((header::LOCATION, login_location(next, *why)))
                .finish(),
            AuthError::Forbidden { api: true } => crate::web::response::json_error(
                StatusCode::FORBIDDEN,
                "forbidden",
                "Your account does not have the role this call needs.",
            ),
            AuthError::Forbidden { api: false } => crate::web::response::page_response(
                StatusCode::FORBIDDEN,
                "Forbidden",
                "Your account does not have the role this page needs.",
            ),
            AuthError::Store { api, source } => {
                crate::web::response::store_failure_response(source, *api)
            }
        }
    }
}

async fn identify(req: HttpRequest) -> Result<Option<Identity>, AuthError> {
    let (Some(state), Some(auth)) = (
        req.app_data::<web::Data<AppState>>(),
        req.app_data::<web::Data<super::authenticator::Authenticator>>(),
    ) else {
        return Ok(None);
    };
    auth.identify(&req, state)
        .await
        .map_err(|source| AuthError::Store {
            api: wants_json(&req),
            source,
        })
}

impl FromRequest for Identity {
    type Error = AuthError;
    type Future = LocalBoxFuture<'static, Result<Identity, AuthError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let req = req.clone();
        Box::pin(async move {
            let next = match req.uri().path_and_query() {
                Some(pq) => pq.as_str().to_owned(),
                None => "/".to_owned(),
            };
            if let Some(identity) = identify(req.clone()).await? {
                return Ok(identity);
            }
            let api = wants_json(&req);
            let why = match req.app_data::<web::Data<AppState>>() {
                Some(state) if !api => LoginReason::of_request(state).await,
                _ => None,
            };
            Err(AuthError::Anonymous { api, next, why })
        })
    }
}

/// The identity if someone is signed in. Unlike `Option<Identity>`, a store outage is still
/// a 503 here, not silently "nobody".
pub struct MaybeIdentity(pub Option<Identity>);

impl FromRequest for MaybeIdentity {
    type Error = AuthError;
    type Future = LocalBoxFuture<'static, Result<MaybeIdentity, AuthError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let req = req.clone();
        Box::pin(async move { identify(req).await.map(MaybeIdentity) })
    }
}

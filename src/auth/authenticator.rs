//! The seam between the two modes. Handlers call `sign_in`, `sign_out`, `mark_authenticated`
//! and take an `Identity`; only this file knows whether that means an opaque session or a
//! pair of tokens.

use actix_session::SessionExt;
use actix_web::cookie::{Cookie, SameSite};
use actix_web::{HttpRequest, http::header};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};

use super::identity::{Credential, Identity};
use super::jwt::{JwtAuthority, family_csrf};
use super::random::{RandomError, random_bytes, random_token};
use super::session_layer::note_missing;
use super::session_store::{SESSION_ID_LEN, new_session_id, session_id_hash};

/// A refresh token's secret: 256 random bits in base64url.
const SECRET_LEN: usize = 43;
use crate::audit::Action;
use crate::config::{SameSitePolicy, SessionSettings};
use crate::state::AppState;
use crate::store::{
    AUTH_AT_FIELD, DEVICE_FIELD, IP_FIELD, REFRESH_FIELD, RefreshOutcome, Store, StoreError,
    UID_FIELD,
};
use crate::web::middleware::push_cookie;

#[derive(Debug, thiserror::Error)]
pub enum SignInError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Random(#[from] RandomError),
    #[error("the session state could not be written: {0}")]
    SessionState(String),
    #[error("could not sign the access token")]
    Token(#[from] jsonwebtoken::errors::Error),
}

pub enum Authenticator {
    Session,
    Jwt(Box<JwtMode>),
}

/// Marks a request that must not rotate JWT mode's refresh token (forward auth's questions).
#[derive(Clone, Copy)]
pub struct NoRefresh;

pub struct JwtMode {
    pub authority: JwtAuthority,
    /// Keys the per-family CSRF tokens; the shared cookie key, so every instance agrees.
    csrf_secret: Vec<u8>,
    same_site: SameSite,
    /// `session.cookie_domain`: the token cookies are then shared with the apps under it.
    cookie_domain: Option<String>,
}

impl JwtMode {
    pub fn new(
        authority: JwtAuthority,
        csrf_secret: Vec<u8>,
        session: &SessionSettings,
    ) -> JwtMode {
        JwtMode {
            authority,
            csrf_secret,
            same_site: match session.same_site {
                SameSitePolicy::Lax => SameSite::Lax,
                SameSitePolicy::Strict => SameSite::Strict,
            },
            cookie_domain: session.cookie_domain(),
        }
    }

    /// A new refresh family for `user` in the store and its first access token: what a login
    /// issues once the password is checked (the benchmark issues its credentials here too).
    #[allow(clippy::too_many_arguments)]
    pub async fn issue(
        &self,
        store: &Store,
        user: &str,
        roles: &[String],
        ip: &str,
        device: &str,
        now: i64,
        not_after: i64,
    ) -> Result<IssuedTokens, SignInError> {
        let tag = store.user_tag(user).await?;
        let family_id = new_session_id(&tag)?;
        let handle = session_id_hash(&family_id);
        let secret = random_token()?;
        let fields = vec![
            (UID_FIELD.to_owned(), json(user)),
            (IP_FIELD.to_owned(), json(ip)),
            (DEVICE_FIELD.to_owned(), json(device)),
            (AUTH_AT_FIELD.to_owned(), now.to_string()),
            (REFRESH_FIELD.to_owned(), token_hash(&secret)),
        ];
        store.create_session(&handle, Some(user), fields).await?;
        let claims = self.authority.claims(
            user,
            roles.to_vec(),
            &handle,
            now,
            now,
            new_jti()?,
            not_after,
        );
        Ok(IssuedTokens {
            access_token: self.authority.mint(&claims)?,
            refresh_value: format!("{family_id}.{secret}"),
            handle,
        })
    }
}

/// What a login hands the browser in JWT mode: the access token and the refresh cookie's
/// value (`family.secret`).
pub struct IssuedTokens {
    pub access_token: String,
    pub refresh_value: String,
    /// The refresh family's handle (its stored hash), as the dashboards name it.
    pub handle: String,
}

/// What Redis keeps of a refresh token: SHA-256, base64url.
fn token_hash(secret: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(secret.as_bytes()))
}

fn new_jti() -> Result<String, RandomError> {
    Ok(URL_SAFE_NO_PAD.encode(random_bytes::<16>()?))
}

fn json(value: impl serde::Serialize) -> String {
    serde_json::to_string(&value).unwrap_or_default()
}

/// Whether `part` has the shape of what we issue: `len` base64url characters.
fn well_formed(part: &str, len: usize) -> bool {
    part.len() == len
        && part
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

impl Authenticator {
    pub fn jwt(&self) -> Option<&JwtMode> {
        match self {
            Authenticator::Session => None,
            Authenticator::Jwt(mode) => Some(mode),
        }
    }

    /// Starts an authenticated session for `user`: at login, and again after a password change
    /// (which ended all the old ones). Always a new ID or family: never the pre-login one.
    pub async fn sign_in(
        &self,
        req: &HttpRequest,
        state: &AppState,
        user: &str,
        roles: &[String],
        ip: &str,
        device: &str,
    ) -> Result<(), SignInError> {
        let session = req.get_session();
        let now = state.clock.now();
        match self {
            Authenticator::Session => {
                session.renew();
                session.clear();
                let put = |key: &str, value: String| {
                    session
                        .insert(key, value)
                        .map_err(|e| SignInError::SessionState(e.to_string()))
                };
                put(UID_FIELD, user.to_owned())?;
                put(IP_FIELD, ip.to_owned())?;
                put(DEVICE_FIELD, device.to_owned())?;
                session
                    .insert(AUTH_AT_FIELD, now)
                    .map_err(|e| SignInError::SessionState(e.to_string()))?;
                super::csrf::rotate(&session)
                    .map_err(|e| SignInError::SessionState(e.to_string()))?;
                Ok(())
            }
            Authenticator::Jwt(mode) => {
                // The pre-login session only carried the login form's CSRF token.
                session.purge();
                let deadline = now + state.settings.session.absolute_timeout_secs as i64;
                let issued = mode
                    .issue(&state.store, user, roles, ip, device, now, deadline)
                    .await?;
                push_cookie(req, mode.access_cookie(issued.access_token));
                push_cookie(req, mode.refresh_cookie(issued.refresh_value));
                Ok(())
            }
        }
    }

    /// Ends the current session or refresh family and clears the cookies. In JWT mode the
    /// access token already issued keeps working until it expires, unless the deny-list is on.
    pub async fn sign_out(
        &self,
        req: &HttpRequest,
        identity: &Identity,
        state: &AppState,
    ) -> Result<(), StoreError> {
        match (self, &identity.credential) {
            (Authenticator::Jwt(mode), _) => {
                state.store.delete_session(&identity.handle).await?;
                mode.clear_cookies(req);
            }
            (Authenticator::Session, Credential::Session(session)) => session.purge(),
            (Authenticator::Session, Credential::Token | Credential::Bearer) => {}
        }
        Ok(())
    }

    /// Records that the password was just typed again (step-up).
    pub async fn mark_authenticated(
        &self,
        req: &HttpRequest,
        identity: &Identity,
        state: &AppState,
    ) -> Result<(), SignInError> {
        let now = state.clock.now();
        match (self, &identity.credential) {
            (Authenticator::Jwt(mode), _) => {
                // The family remembers it for future refreshes; a new access token carries it now.
                // The token it replaces stays valid until it expires, like any token of the
                // family: revoking the family refuses all of them at once (deny-list).
                let jti = new_jti()?;
                state
                    .store
                    .set_session_field(&identity.handle, AUTH_AT_FIELD, &now.to_string())
                    .await?;
                let claims = mode.authority.claims(
                    &identity.username,
                    identity.roles.clone(),
                    &identity.handle,
                    now,
                    now,
                    jti,
                    // Only auth_time changes: the new token expires with the one it replaces.
                    identity.token_expires,
                );
                push_cookie(req, mode.access_cookie(mode.authority.mint(&claims)?));
                Ok(())
            }
            (Authenticator::Session, Credential::Session(session)) => session
                .insert(AUTH_AT_FIELD, now)
                .map_err(|e| SignInError::SessionState(e.to_string())),
            (Authenticator::Session, Credential::Token | Credential::Bearer) => Ok(()),
        }
    }

    /// The signed-in user of this request, if any. JWT mode verifies the access token (bearer
    /// header or cookie) and, for a browser whose token has expired or been revoked, rotates
    /// the refresh token on the same request.
    pub async fn identify(
        &self,
        req: &HttpRequest,
        state: &AppState,
    ) -> Result<Option<Identity>, StoreError> {
        match self {
            Authenticator::Session => Ok(Identity::from_session(req.get_session())),
            Authenticator::Jwt(mode) => mode.identify(req, state).await,
        }
    }
}

impl JwtMode {
    fn cookie(&self, name: &str, value: String) -> Cookie<'static> {
        let mut cookie = Cookie::build(name.to_owned(), value)
            .http_only(true)
            .secure(true)
            .same_site(self.same_site)
            .path("/")
            .finish();
        if let Some(domain) = &self.cookie_domain {
            cookie.set_domain(domain.clone());
        }
        cookie
    }

    fn access_cookie(&self, token: String) -> Cookie<'static> {
        self.cookie(&self.authority.settings().access_cookie_name, token)
    }

    fn refresh_cookie(&self, value: String) -> Cookie<'static> {
        self.cookie(&self.authority.settings().refresh_cookie_name, value)
    }

    fn clear_cookies(&self, req: &HttpRequest) {
        for name in [
            &self.authority.settings().access_cookie_name,
            &self.authority.settings().refresh_cookie_name,
        ] {
            let mut cookie = self.cookie(name, String::new());
            cookie.make_removal();
            push_cookie(req, cookie);
        }
    }

    fn identity(&self, claims: super::jwt::AccessClaims, credential: Credential) -> Identity {
        Identity {
            csrf: family_csrf(&self.csrf_secret, &claims.sid),
            username: claims.sub,
            roles: claims.roles,
            handle: claims.sid,
            authenticated_at: claims.auth_time,
            token_expires: claims.exp,
            credential,
        }
    }

    async fn identify(
        &self,
        req: &HttpRequest,
        state: &AppState,
    ) -> Result<Option<Identity>, StoreError> {
        let settings = self.authority.settings();
        let now = state.clock.now();
        let bearer = req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::to_owned);
        let token = bearer.clone().or_else(|| {
            req.cookie(&settings.access_cookie_name)
                .map(|c| c.value().to_owned())
        });
        if let Some(token) = token {
            match self.authority.verify(&token, now) {
                Ok(claims) => {
                    let revoked = settings.denylist
                        && state
                            .store
                            .is_revoked(&claims.sid, &claims.sub, claims.iat)
                            .await?;
                    if !revoked {
                        let credential = if bearer.is_some() {
                            Credential::Bearer
                        } else {
                            Credential::Token
                        };
                        return Ok(Some(self.identity(claims, credential)));
                    }
                    tracing::info!("access token on the deny-list");
                }
                Err(reason) => tracing::debug!(%reason, "access token refused"),
            }
        }
        // API clients present bearer tokens and refresh on their own. Forward auth must not
        // refresh either: the proxy drops the rotated cookies, so the browser's next request
        // would present the old refresh token and set off reuse detection. Its login redirect
        // refreshes on sessiond's own host instead, and comes straight back.
        if bearer.is_some()
            || actix_web::HttpMessage::extensions(req)
                .get::<NoRefresh>()
                .is_some()
        {
            return Ok(None);
        }
        let Some(refresh) = req.cookie(&settings.refresh_cookie_name) else {
            return Ok(None);
        };
        let Some((family_id, secret)) = refresh
            .value()
            .split_once('.')
            .filter(|(f, s)| well_formed(f, SESSION_ID_LEN) && well_formed(s, SECRET_LEN))
        else {
            self.clear_cookies(req);
            return Ok(None);
        };
        let family = session_id_hash(family_id);
        let (Ok(new_secret), Ok(jti)) = (random_token(), new_jti()) else {
            return Ok(None);
        };
        let outcome = state
            .store
            .rotate_refresh(&family, &token_hash(secret), &token_hash(&new_secret))
            .await?;
        match outcome {
            RefreshOutcome::Rotated {
                user,
                roles,
                auth_at,
                created,
            } => {
                let deadline = created + state.settings.session.absolute_timeout_secs as i64;
                let claims = self
                    .authority
                    .claims(&user, roles, &family, auth_at, now, jti, deadline);
                let Ok(token) = self.authority.mint(&claims) else {
                    return Ok(None);
                };
                push_cookie(req, self.access_cookie(token));
                push_cookie(
                    req,
                    self.refresh_cookie(format!("{family_id}.{new_secret}")),
                );
                Ok(Some(self.identity(claims, Credential::Token)))
            }
            // The other request of the race got the new pair; this one is refused.
            RefreshOutcome::Raced => Ok(None),
            RefreshOutcome::Reused { user } => {
                tracing::warn!(user, "refresh token reused: family revoked");
                note_missing(family.clone());
                let ip = crate::web::request::client_ip(req, &state.settings);
                let detail = format!("refresh token reuse; family {family} revoked");
                state
                    .audit(Action::RefreshReuse, "", &user, &detail, &ip)
                    .await?;
                self.clear_cookies(req);
                Ok(None)
            }
            RefreshOutcome::Gone => {
                note_missing(family);
                self.clear_cookies(req);
                Ok(None)
            }
        }
    }
}

//! Which requests read the session: only routes that need the identity or the session state
//! are wrapped in actix-session's middleware. Static files, health checks, metrics, JWKS and
//! 404s never load a session, whatever cookies come with them: a page view costs one store
//! round trip (not one more for its stylesheet), and `/healthz` answers 200 during a store
//! outage even when a browser sends its cookie.

use std::cell::Cell;
use std::sync::Arc;

use actix_session::config::{BrowserSession, CookieContentSecurity};
use actix_session::storage::{LoadError, SaveError, UpdateError};
use actix_session::{SessionExt, SessionMiddleware};
use actix_web::body::MessageBody;
use actix_web::cookie::{Cookie, Key, SameSite, time};
use actix_web::dev::{ServiceFactory, ServiceRequest, ServiceResponse};
use actix_web::error::InternalError;
use actix_web::http::header::{HeaderValue, SET_COOKIE};
use actix_web::middleware::{Next, from_fn};
use actix_web::{Error, HttpMessage, Resource, web};

use super::session_store::SessionBackend;
use crate::config::{SameSitePolicy, SessionSettings};
use crate::state::AppState;
use crate::store::{ErrorClass, REMEMBER_FIELD, Store, StoreError};
use crate::web::middleware::{apply_pending_cookies, with_security_headers};
use crate::web::request::wants_json;
use crate::web::response::{cause_chain, store_error_response};

tokio::task_local! {
    /// What the session backend saw go wrong during this request, if anything: actix-session
    /// turns every backend error into an opaque 500 from inside its middleware, so the class
    /// (and the cause, for the log) travels beside it.
    static FAILURE: Cell<Option<(ErrorClass, String)>>;
    /// The stored hash of a session the request's cookie named but the store no longer holds:
    /// on the way to the login page, the store is asked why it ended.
    static MISSING: Cell<Option<String>>;
}

/// Called where a presented, well-formed session (or refresh family) is not in the store.
pub(super) fn note_missing(sid_hash: String) {
    let _ = MISSING.try_with(|cell| cell.set(Some(sid_hash)));
}

/// The session this request named that the store no longer holds, if any.
pub(super) fn missing_session() -> Option<String> {
    MISSING
        .try_with(|cell| {
            let hash = cell.take();
            cell.set(hash.clone());
            hash
        })
        .ok()
        .flatten()
}

/// Called by the session backend where a store call fails.
pub(super) fn note_failure(err: StoreError) -> anyhow::Error {
    let noted = (err.class(), cause_chain(&err));
    // Outside a wrapped route (the CLI, a unit test) there is nothing to tell.
    let _ = FAILURE.try_with(|cell| cell.set(Some(noted)));
    err.into()
}

/// The session middleware and what must sit around it, built once per worker.
#[derive(Clone)]
pub struct SessionLayer {
    middleware: SessionMiddleware<SessionBackend>,
}

impl SessionLayer {
    pub fn new(store: Arc<Store>, settings: &SessionSettings, cookie_key: Key) -> SessionLayer {
        let same_site = match settings.same_site {
            SameSitePolicy::Lax => SameSite::Lax,
            SameSitePolicy::Strict => SameSite::Strict,
        };
        let middleware = SessionMiddleware::builder(SessionBackend::new(store), cookie_key)
            .cookie_name(settings.effective_cookie_name())
            .cookie_secure(true)
            .cookie_http_only(true)
            .cookie_same_site(same_site)
            .cookie_path("/".to_owned())
            // Set only for forward auth across subdomains (`session.cookie_domain`).
            .cookie_domain(settings.cookie_domain())
            .cookie_content_security(CookieContentSecurity::Signed)
            // A browser-session cookie: the server alone decides when a session ends.
            .session_lifecycle(
                BrowserSession::default()
                    .state_ttl(time::Duration::seconds(settings.idle_timeout_secs as i64)),
            )
            .build();
        SessionLayer { middleware }
    }

    /// `resource` with the session loaded before its handler runs (and saved after), the
    /// cookies JWT mode decided on added to its response, and store failures answered as 503
    /// (unreachable) or 500 (anything else).
    pub fn wrap(
        self,
        resource: Resource,
    ) -> Resource<
        impl ServiceFactory<
            ServiceRequest,
            Config = (),
            Response = ServiceResponse<impl MessageBody>,
            Error = Error,
            InitError = (),
        >,
    > {
        resource
            .wrap(from_fn(apply_pending_cookies))
            .wrap(from_fn(note_remembered))
            .wrap(self.middleware)
            .wrap(from_fn(persist_remembered))
            .wrap(from_fn(answer_store_failures))
    }
}

/// The request's session asked to be remembered ("remember me" at login).
#[derive(Clone, Copy)]
struct Remembered;

/// Inside actix-session's middleware, where the session state is still readable after the
/// handler: notes whether this session is a remembered one.
async fn note_remembered(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, Error> {
    let response = next.call(req).await?;
    let remembered = response
        .request()
        .get_session()
        .get::<bool>(REMEMBER_FIELD)
        .ok()
        .flatten()
        .unwrap_or(false);
    if remembered {
        response.request().extensions_mut().insert(Remembered);
    }
    Ok(response)
}

/// Outside actix-session's middleware (which makes browser-session cookies): gives the session
/// cookie it set a `Max-Age` when the session is remembered, every time it is set, so the
/// browser keeps it across restarts. The server still ends the session at its idle and
/// absolute timeouts; this only decides whether closing the browser forgets it.
async fn persist_remembered(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, Error> {
    let mut response = next.call(req).await?;
    if response
        .request()
        .extensions()
        .get::<Remembered>()
        .is_none()
    {
        return Ok(response);
    }
    let Some(state) = response
        .request()
        .app_data::<web::Data<AppState>>()
        .cloned()
    else {
        return Ok(response);
    };
    let session = &state.settings.session;
    let max_age = session.remember_me_secs.min(session.absolute_timeout_secs);
    let name = session.effective_cookie_name();
    let headers = response.headers_mut();
    let set: Vec<HeaderValue> = headers.get_all(SET_COOKIE).cloned().collect();
    headers.remove(SET_COOKIE);
    for value in set {
        let persisted = value
            .to_str()
            .ok()
            .and_then(|raw| Cookie::parse(raw.to_owned()).ok())
            .filter(|c| c.name() == name && !c.value().is_empty() && max_age > 0)
            .and_then(|mut c| {
                c.set_max_age(time::Duration::seconds(max_age as i64));
                HeaderValue::from_str(&c.to_string()).ok()
            });
        headers.append(SET_COOKIE, persisted.unwrap_or(value));
    }
    Ok(response)
}

/// Placed around actix-session's middleware: turns exactly the errors of our session backend
/// into the 503 page (the person is not logged out, only asked to retry) or, when Redis
/// refused a command we built, into a 500.
async fn answer_store_failures(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, Error> {
    let api = wants_json(req.request());
    let (result, failure) = FAILURE
        .scope(Cell::new(None), async move {
            let result = MISSING.scope(Cell::new(None), next.call(req)).await;
            (result, FAILURE.with(Cell::take))
        })
        .await;
    match result {
        Err(err) if is_session_store_error(&err) => {
            let (class, cause) = failure.unwrap_or_else(|| (ErrorClass::Bug, err.to_string()));
            let response = store_error_response(&cause, class, api);
            // The request was handed to the inner service, so the answer travels as an error
            // whose response is the 503 (or 500).
            Err(InternalError::from_response(err, with_security_headers(response)).into())
        }
        other => other,
    }
}

fn is_session_store_error(err: &Error) -> bool {
    err.as_error::<InternalError<LoadError>>().is_some()
        || err.as_error::<InternalError<SaveError>>().is_some()
        || err.as_error::<InternalError<UpdateError>>().is_some()
        || err.as_error::<InternalError<anyhow::Error>>().is_some()
}

//! Builds the application once, for `main` and for the tests alike: a test server is the real
//! server on port 0.

use std::net::TcpListener;
use std::sync::{Arc, Weak};
use std::time::Duration;

use actix_web::cookie::Key;
use actix_web::dev::{Server, ServerHandle};
use actix_web::error::{InternalError, JsonPayloadError, QueryPayloadError, UrlencodedError};
use actix_web::middleware::from_fn;
use actix_web::{App, HttpRequest, HttpServer, ResponseError, web};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use tracing_actix_web::TracingLogger;

use crate::auth::access::AccessRules;
use crate::auth::authenticator::{Authenticator, JwtMode};
use crate::auth::jwt::{JwtAuthority, KeyOrigin};
use crate::auth::password::hash_password_blocking;
use crate::auth::random::{RandomError, random_bytes, random_token};
use crate::auth::session_layer::SessionLayer;
use crate::clock::Clock;
use crate::config::{AuthMode, Settings};
use crate::error::page_response;
use crate::metrics::Metrics;
use crate::routes;
use crate::state::AppState;
use crate::store::{Store, StoreError};
use crate::users::{self, UserError};
use crate::web::middleware::{reject_cross_site, security_headers};
use crate::web::response::json_error;

#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("could not bootstrap the admin user")]
    Bootstrap(#[from] UserError),
    #[error("session.cookie_key must be base64 of at least 64 bytes")]
    CookieKey,
    #[error("JWT mode cannot start")]
    Jwt(#[from] crate::auth::jwt::JwtSetupError),
    #[error(transparent)]
    Random(#[from] RandomError),
    #[error("could not compute the dummy password hash")]
    Password(#[from] crate::auth::password::PasswordError),
    #[error("[authz] cannot be right: {0}")]
    Authz(String),
    #[error("could not listen on {addr}")]
    Bind {
        addr: String,
        #[source]
        source: std::io::Error,
    },
}

pub struct Application {
    port: u16,
    server: Server,
    store: Arc<Store>,
    metrics: Arc<Metrics>,
}

impl Application {
    pub async fn build(settings: Settings) -> Result<Application, StartupError> {
        Application::build_with_clock(settings, Clock::system()).await
    }

    pub async fn build_with_clock(
        settings: Settings,
        clock: Clock,
    ) -> Result<Application, StartupError> {
        let access = AccessRules::compile(&settings.authz.default_policy, &settings.authz.rules)
            .map_err(StartupError::Authz)?;
        if !settings.authz.rules.is_empty() && settings.server.public_url.is_empty() {
            return Err(StartupError::Authz(
                "rules are set but server.public_url is not: the way to the login page from an \
                 app's host must be an absolute URL"
                    .into(),
            ));
        }
        let settings = settings.with_domain_cookie_names();
        let metrics = Arc::new(Metrics::default());
        let store = Arc::new(Store::open(&settings, clock.clone(), metrics.clone())?);
        match store.as_ref() {
            Store::Memory(_) => tracing::warn!(
                "store: memory (embedded). Nothing persists: sessions and users vanish when \
                 the process stops, and other instances cannot see them. Set store.url to a \
                 redis:// URL for anything but a trial."
            ),
            Store::Redis(_) => {
                tracing::info!(
                    url = %redact_url(&settings.store.url),
                    topology = store.topology(),
                    near_cache = settings.near_cache_on(),
                    "store: redis"
                );
                if settings.store.near_cache
                    && settings.auth.mode == AuthMode::Session
                    && !settings.near_cache_on()
                {
                    if settings.store_is_distributed() {
                        tracing::warn!(
                            "store.near_cache is on but store.url names a cluster or a \
                             Sentinel-managed master: the near-cache watches one Redis's \
                             tracking socket, so it is off and every request loads from Redis"
                        );
                    } else {
                        tracing::warn!(
                            "store.near_cache is on but store.url is rediss://: the near-cache \
                             needs plain redis:// (a hit peeks at the tracking socket, which TLS \
                             hides), so every request loads from Redis"
                        );
                    }
                }
            }
        }
        wait_for_store(&store).await;

        let cookie_key = cookie_key(&settings, &store).await?;
        let auth = match settings.auth.mode {
            AuthMode::Session => Authenticator::Session,
            AuthMode::Jwt => {
                let (authority, origin) = JwtAuthority::from_settings(&settings.jwt)?;
                let algorithm = format!("{:?}", settings.jwt.algorithm);
                match origin {
                    KeyOrigin::Generated => tracing::warn!(
                        %algorithm,
                        "JWT mode with a key generated at start-up: tokens will not survive a \
                         restart, and other instances cannot verify them. Configure \
                         jwt.private_key_file (or jwt.hs256_secret)."
                    ),
                    _ => tracing::info!(%algorithm, "JWT mode"),
                }
                Authenticator::Jwt(Box::new(JwtMode::new(
                    authority,
                    cookie_key.master().to_vec(),
                    &settings.session,
                )))
            }
        };
        // Before anything reads a user: a standalone Redis written by the version before the
        // tagged key schema gets its user records moved, once (`sessiond migrate` does the same
        // on demand). Sessions issued before the upgrade name no tag and are refused cleanly.
        match store.migrate_once().await? {
            Some(done) if done.moved > 0 || !done.collisions.is_empty() => tracing::warn!(
                moved = done.moved,
                indexed = done.indexed,
                collisions = ?done.collisions,
                "moved user records to the tagged key schema; sessions from before the upgrade \
                 are refused and their users sign in again"
            ),
            _ => {}
        }
        if let Some(password) = users::bootstrap_admin(&store, &clock, &metrics).await? {
            // Printed once, at the only moment it exists in clear; it is not stored anywhere.
            tracing::warn!(
                user = "admin",
                password = %password,
                "created the first user; log in and keep this password safe, it is not shown again"
            );
        }
        let dummy_password = random_token()?;
        let dummy_phc: Arc<str> =
            tokio::task::spawn_blocking(move || hash_password_blocking(&dummy_password))
                .await
                .map_err(crate::auth::password::PasswordError::from)??
                .into();

        match store.durability_warnings().await {
            Ok(warnings) => {
                for warning in warnings {
                    tracing::warn!("{warning}");
                }
            }
            Err(e) => tracing::warn!(error = %e, "could not check how the store keeps data"),
        }
        // Users created by a version without the name index enter it once, in the background:
        // until then a search may miss them, nothing else depends on it.
        let indexing = store.clone();
        actix_web::rt::spawn(async move {
            match indexing.index_user_names().await {
                Ok(0) => {}
                Ok(users) => tracing::info!(users, "entered existing users in the name index"),
                Err(e) => tracing::error!(
                    error = %e,
                    "could not build the name index; user search may miss older users until the next start"
                ),
            }
        });
        if settings.store.activity_flush_ms > 0 {
            actix_web::rt::spawn(flush_activity(
                Arc::downgrade(&store),
                Duration::from_millis(settings.store.activity_flush_ms),
            ));
        }
        if settings.server.active_sessions_refresh_secs > 0 {
            let every = Duration::from_secs(settings.server.active_sessions_refresh_secs);
            actix_web::rt::spawn(refresh_active_sessions(
                Arc::downgrade(&store),
                metrics.clone(),
                every,
            ));
        }

        let listener =
            TcpListener::bind(&settings.server.bind).map_err(|source| StartupError::Bind {
                addr: settings.server.bind.clone(),
                source,
            })?;
        let port = listener
            .local_addr()
            .map_err(|source| StartupError::Bind {
                addr: settings.server.bind.clone(),
                source,
            })?
            .port();
        let settings = Arc::new(settings);
        let state = web::Data::new(AppState {
            store: store.clone(),
            settings: settings.clone(),
            clock,
            dummy_phc,
            metrics: metrics.clone(),
        });
        let data = AppData {
            auth: web::Data::new(auth),
            access: web::Data::new(access),
        };
        let server =
            run(listener, state, data, cookie_key).map_err(|source| StartupError::Bind {
                addr: settings.server.bind.clone(),
                source,
            })?;
        tracing::info!(port, mode = settings.auth.mode.as_str(), "listening");
        Ok(Application {
            port,
            server,
            store,
            metrics,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn store(&self) -> Arc<Store> {
        self.store.clone()
    }

    pub fn metrics(&self) -> Arc<Metrics> {
        self.metrics.clone()
    }

    pub fn handle(&self) -> ServerHandle {
        self.server.handle()
    }

    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        self.server.await
    }
}

/// App data besides the state: how requests are authenticated, and forward auth's rules.
#[derive(Clone)]
struct AppData {
    auth: web::Data<Authenticator>,
    access: web::Data<AccessRules>,
}

fn run(
    listener: TcpListener,
    state: web::Data<AppState>,
    data: AppData,
    cookie_key: Key,
) -> std::io::Result<Server> {
    let settings = state.settings.clone();
    let body_limit = settings.server.max_body_bytes;
    let workers = match settings.server.workers {
        0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
        n => n,
    };
    let shutdown_timeout_secs = settings.server.shutdown_timeout_secs;
    let request_header_timeout_ms = settings.server.request_header_timeout_ms;
    let keep_alive_secs = settings.server.keep_alive_secs;
    let server = HttpServer::new(move || {
        let sessions = SessionLayer::new(
            state.store.clone(),
            &state.settings.session,
            cookie_key.clone(),
        );
        App::new()
            .wrap(from_fn(reject_cross_site))
            .wrap(security_headers())
            .wrap(from_fn(crate::web::middleware::record_request_duration))
            .wrap(TracingLogger::default())
            .app_data(state.clone())
            .app_data(data.auth.clone())
            .app_data(data.access.clone())
            .app_data(web::PayloadConfig::new(body_limit))
            .app_data(
                web::FormConfig::default()
                    .limit(body_limit)
                    .error_handler(form_error),
            )
            .app_data(web::QueryConfig::default().error_handler(query_error))
            .app_data(
                web::JsonConfig::default()
                    .limit(body_limit)
                    .error_handler(json_body_error),
            )
            .configure(|cfg| routes::configure(cfg, &sessions))
            .default_service(web::to(routes::no_route))
    })
    .workers(workers)
    .shutdown_timeout(shutdown_timeout_secs)
    .client_request_timeout(Duration::from_millis(request_header_timeout_ms))
    .keep_alive(Duration::from_secs(keep_alive_secs))
    .listen(listener)?
    .run();
    Ok(server)
}

/// Bad forms get a page saying what was wrong with the request: 413 when too large, 400 else.
fn form_error(err: UrlencodedError, _req: &HttpRequest) -> actix_web::Error {
    let status = err.status_code();
    let message = if status.as_u16() == 413 {
        "The form was larger than this server accepts."
    } else {
        "The form could not be read. Reload the page and try again."
    };
    let response = page_response(status, "Bad request", message);
    InternalError::from_response(err, response).into()
}

/// A query string that does not fit the route's parameters (a text where a number belongs, a
/// repeated parameter): 400, in JSON on the API.
fn query_error(err: QueryPayloadError, req: &HttpRequest) -> actix_web::Error {
    let response = if crate::web::request::wants_json(req) {
        json_error(
            actix_web::http::StatusCode::BAD_REQUEST,
            "invalid",
            &format!("Malformed query string: {err}."),
        )
    } else {
        page_response(
            actix_web::http::StatusCode::BAD_REQUEST,
            "Bad request",
            "The address has malformed parameters. Use the page's own links and forms.",
        )
    };
    InternalError::from_response(err, response).into()
}

/// A body that is not the JSON a call takes: 400 `invalid` naming what is wrong (413
/// `too_large` over the body limit), in the API's one error shape.
fn json_body_error(err: JsonPayloadError, _req: &HttpRequest) -> actix_web::Error {
    let status = err.status_code();
    let response = if status == actix_web::http::StatusCode::PAYLOAD_TOO_LARGE {
        json_error(
            status,
            "too_large",
            "The body is larger than this server accepts.",
        )
    } else {
        json_error(status, "invalid", &format!("Malformed JSON body: {err}."))
    };
    InternalError::from_response(err, response).into()
}

/// Keeps the active-session gauge current off the request path, so a `/metrics` scrape costs
/// no store call; ends once the application (its store) is gone.
async fn refresh_active_sessions(store: Weak<Store>, metrics: Arc<Metrics>, every: Duration) {
    let mut ticks = tokio::time::interval(every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        let Some(store) = store.upgrade() else { return };
        match store.active_sessions().await {
            Ok(active) => {
                metrics.active_sessions.set(active as i64);
            }
            Err(e) => tracing::debug!(error = %e, "could not count active sessions"),
        }
    }
}

/// Writes the sessions seen to the activity estimate, batched (`Store::flush_activity`).
async fn flush_activity(store: Weak<Store>, every: Duration) {
    let mut ticks = tokio::time::interval(every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        let Some(store) = store.upgrade() else { return };
        store.flush_activity().await;
    }
}

/// Redis may still be starting (or down) when we are: wait for it instead of crashing, so a
/// deployment's start order does not matter.
async fn wait_for_store(store: &Store) {
    let mut attempt = 0u32;
    while let Err(e) = store.ping().await {
        attempt += 1;
        tracing::warn!(error = %e, attempt, "store not answering yet; retrying");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

async fn cookie_key(settings: &Settings, store: &Store) -> Result<Key, StartupError> {
    let encoded = if settings.session.cookie_key.is_empty() {
        // Every instance sharing the store must sign cookies with the same key; the first one
        // to start generates it, the others read it.
        let candidate = STANDARD.encode(random_bytes::<64>()?);
        store.shared_secret("cookie_key", &candidate).await?
    } else {
        settings.session.cookie_key.clone()
    };
    let bytes = STANDARD
        .decode(encoded.trim())
        .map_err(|_| StartupError::CookieKey)?;
    Key::try_from(bytes.as_slice()).map_err(|_| StartupError::CookieKey)
}

/// The URL without its password, for the log.
fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            format!("{}://[redacted]@{}", &url[..scheme_end], &url[at + 1..])
        }
        _ => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::redact_url;

    #[test]
    fn redis_passwords_stay_out_of_the_log() {
        assert_eq!(
            redact_url("redis://user:secret@db:6379/0"),
            "redis://[redacted]@db:6379/0"
        );
        assert_eq!(redact_url("redis://db:6379/0"), "redis://db:6379/0");
    }
}

//! `spawn_app()` builds the real application on port 0 against the chosen store, and
//! `Browser` is an HTTP client that keeps the session cookie the way a browser would, while
//! letting a test read, replace or replay it.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use actix_web::cookie::Cookie;
use reqwest::header::{HeaderMap, SET_COOKIE};
use sessiond::clock::Clock;
use sessiond::config::{AuthMode, Settings};
use sessiond::metrics::Metrics;
use sessiond::startup::Application;
use sessiond::store::Store;
use sessiond::users::Operator;

use super::redis_cluster::RedisCluster;
use super::redis_server::RedisServer;

pub const COOKIE: &str = "__Host-sid";

/// Runs each named `async fn(Backend)` five times: session mode on memory, on Redis and on a
/// three-master Redis Cluster, and JWT mode (on Redis) without and with the deny-list.
macro_rules! all_modes {
    ($($name:ident),* $(,)?) => {
        mod memory {
            $(#[actix_web::test] async fn $name() { super::$name(super::Backend::Memory).await })*
        }
        mod redis {
            $(#[actix_web::test] async fn $name() { super::$name(super::Backend::Redis).await })*
        }
        mod cluster {
            $(#[actix_web::test] async fn $name() { super::$name(super::Backend::Cluster).await })*
        }
        mod jwt {
            $(#[actix_web::test] async fn $name() { super::$name(super::Backend::Jwt).await })*
        }
        mod jwt_denylist {
            $(#[actix_web::test] async fn $name() { super::$name(super::Backend::JwtDenylist).await })*
        }
    };
}
pub(crate) use all_modes;
pub const PASSWORD: &str = "correct horse battery staple";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    /// Session mode, embedded store.
    Memory,
    /// Session mode, Redis.
    Redis,
    /// Session mode, a Redis Cluster of three masters.
    Cluster,
    /// JWT mode (EdDSA) on Redis, no deny-list: revocation reaches refresh, not access tokens.
    Jwt,
    /// JWT mode with the deny-list: revocation is immediate again.
    JwtDenylist,
}

impl Backend {
    pub fn is_jwt(self) -> bool {
        matches!(self, Backend::Jwt | Backend::JwtDenylist)
    }

    pub fn mode(self) -> &'static str {
        if self.is_jwt() { "jwt" } else { "session" }
    }
}

pub struct TestApp {
    pub backend: Backend,
    pub address: String,
    pub store: Arc<Store>,
    pub clock: Clock,
    pub settings: Settings,
    pub metrics: Arc<Metrics>,
    pub redis: Option<Arc<RedisServer>>,
    pub cluster: Option<Arc<RedisCluster>>,
}

static PREFIX: AtomicU64 = AtomicU64::new(0);

pub fn test_settings() -> Settings {
    let mut settings = Settings::default();
    settings.server.bind = "127.0.0.1:0".into();
    settings.server.workers = 1;
    // No background store calls, so tests can count each request's calls exactly.
    settings.server.active_sessions_refresh_secs = 0;
    settings.store.activity_flush_ms = 0;
    settings.store.key_prefix = format!("t{}:", PREFIX.fetch_add(1, Ordering::Relaxed));
    settings
}

pub async fn spawn_app(backend: Backend) -> TestApp {
    spawn_app_with(backend, |_| {}).await
}

pub async fn spawn_app_with(backend: Backend, tweak: impl FnOnce(&mut Settings)) -> TestApp {
    if backend == Backend::Cluster {
        return spawn_app_on_cluster(Arc::new(RedisCluster::start(0)), tweak).await;
    }
    let redis = match backend {
        Backend::Memory => None,
        _ => Some(Arc::new(RedisServer::start())),
    };
    spawn_app_on(redis, |settings| {
        if backend.is_jwt() {
            settings.auth.mode = AuthMode::Jwt;
            settings.jwt.denylist = backend == Backend::JwtDenylist;
        }
        tweak(settings)
    })
    .await
}

/// An app in session mode on an existing Redis Cluster (two calls: two instances).
pub async fn spawn_app_on_cluster(
    cluster: Arc<RedisCluster>,
    tweak: impl FnOnce(&mut Settings),
) -> TestApp {
    let url = cluster.url();
    let mut app = spawn_app_on(None, |settings| {
        settings.store.url = url;
        tweak(settings)
    })
    .await;
    app.backend = Backend::Cluster;
    app.cluster = Some(cluster);
    app
}

/// An app on an existing Redis (or on memory with `None`): two calls with the same server give
/// two instances of one deployment.
pub async fn spawn_app_on(
    redis: Option<Arc<RedisServer>>,
    tweak: impl FnOnce(&mut Settings),
) -> TestApp {
    sessiond::telemetry::init_for_tests();
    let mut settings = test_settings();
    if let Some(redis) = &redis {
        settings.store.url = redis.url();
    }
    tweak(&mut settings);
    let clock = Clock::system();
    let app = Application::build_with_clock(settings.clone(), clock.clone())
        .await
        .expect("the app builds");
    let backend = match (&redis, settings.auth.mode, settings.jwt.denylist) {
        (None, _, _) => Backend::Memory,
        (Some(_), AuthMode::Session, _) => Backend::Redis,
        (Some(_), AuthMode::Jwt, false) => Backend::Jwt,
        (Some(_), AuthMode::Jwt, true) => Backend::JwtDenylist,
    };
    let test_app = TestApp {
        backend,
        address: format!("http://127.0.0.1:{}", app.port()),
        store: app.store(),
        metrics: app.metrics(),
        clock,
        settings,
        redis,
        cluster: None,
    };
    actix_web::rt::spawn(app.run_until_stopped());
    test_app
}

impl TestApp {
    /// Moves the clock past the access-token lifetime (and leeway): every JWT issued so far
    /// has expired; sessions and refresh families are untouched (idle timeout 30 min).
    pub fn expire_access_tokens(&self) {
        let jwt = &self.settings.jwt;
        self.clock
            .advance((jwt.access_ttl_secs + jwt.leeway_secs + 1) as i64);
    }

    /// After a revocation: session mode and JWT + deny-list refuse the very next request.
    /// Plain JWT cannot: the access token already issued keeps working until it expires (JWT's
    /// nature, stated on the dashboard), and only then is the revoked family refused.
    pub async fn assert_revoked(&self, browsers: &[&Browser]) {
        self.assert_status_after_change(browsers, "/api/me", 401)
            .await;
    }

    /// After a role change: the same difference, on a page that needs the role.
    pub async fn assert_status_after_change(
        &self,
        browsers: &[&Browser],
        path: &str,
        expected: u16,
    ) {
        if self.backend == Backend::Jwt {
            let before: Vec<u16> = futures_statuses(browsers, path).await;
            assert!(
                before.iter().all(|s| *s != expected),
                "plain JWT: the issued access token still carries the old state, got {before:?}"
            );
            self.expire_access_tokens();
        }
        for (i, status) in futures_statuses(browsers, path)
            .await
            .into_iter()
            .enumerate()
        {
            assert_eq!(
                status, expected,
                "browser #{i} on {path} ({:?})",
                self.backend
            );
        }
    }

    pub fn browser(&self) -> Browser {
        Browser::new(&self.address)
    }

    /// Changes made "by an operator" outside HTTP, as the CLI would.
    pub fn operator(&self) -> Operator<'_> {
        Operator {
            store: &self.store,
            clock: &self.clock,
            metrics: &self.metrics,
            name: "test",
            ip: "127.0.0.1",
            known_roles: &self.settings.auth.roles,
        }
    }

    pub async fn create_user(&self, name: &str, roles: &[&str]) {
        let roles: Vec<String> = roles.iter().map(|r| r.to_string()).collect();
        self.operator()
            .create_user(name, PASSWORD, &roles)
            .await
            .expect("test user created");
    }

    pub async fn set_roles(&self, name: &str, roles: &[&str]) {
        let roles: Vec<String> = roles.iter().map(|r| r.to_string()).collect();
        self.operator()
            .set_roles(name, &roles, false)
            .await
            .unwrap();
    }

    pub async fn set_disabled(&self, name: &str, disabled: bool) -> u64 {
        self.operator()
            .set_disabled(name, disabled, false)
            .await
            .unwrap()
    }

    /// A browser logged in as `name` (created first with `roles`).
    pub async fn logged_in(&self, name: &str, roles: &[&str]) -> Browser {
        self.create_user(name, roles).await;
        let browser = self.browser();
        let response = browser.login(name, PASSWORD).await;
        assert_eq!(
            response.status, 303,
            "login of {name} failed: {}",
            response.body
        );
        browser
    }
}

async fn futures_statuses(browsers: &[&Browser], path: &str) -> Vec<u16> {
    let mut statuses = Vec::with_capacity(browsers.len());
    for browser in browsers {
        let response = browser.get(path).await;
        // A page that needs a login redirects instead of answering 401.
        statuses.push(if response.status == 303 && path != "/api/me" {
            401
        } else {
            response.status
        });
    }
    statuses
}

pub struct Response {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: String,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    pub fn set_cookies(&self) -> Vec<Cookie<'static>> {
        self.headers
            .get_all(SET_COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .filter_map(|v| Cookie::parse(v.to_owned()).ok())
            .collect()
    }

    pub fn session_cookie(&self) -> Option<Cookie<'static>> {
        self.set_cookies().into_iter().find(|c| c.name() == COOKIE)
    }

    pub fn csrf(&self) -> String {
        form_value(&self.body, "csrf").expect("page has a CSRF field")
    }
}

/// The value of a hidden input in a page.
pub fn form_value(body: &str, name: &str) -> Option<String> {
    let marker = format!("name=\"{name}\" value=\"");
    let start = body.find(&marker)? + marker.len();
    let end = body[start..].find('"')? + start;
    Some(body[start..end].to_owned())
}

/// Cookie name -> value, as a browser would keep them for this site.
pub type Jar = std::collections::BTreeMap<String, String>;

pub struct Browser {
    client: reqwest::Client,
    base: String,
    jar: Mutex<Jar>,
}

impl Browser {
    pub fn new(base: &str) -> Browser {
        Browser {
            client: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            base: base.to_owned(),
            jar: Mutex::new(Jar::new()),
        }
    }

    /// The raw session cookie value the server issued (signature included).
    pub fn cookie(&self) -> Option<String> {
        self.jar.lock().unwrap().get(COOKIE).cloned()
    }

    pub fn set_cookie(&self, value: Option<String>) {
        let mut jar = self.jar.lock().unwrap();
        match value {
            Some(value) => jar.insert(COOKIE.to_owned(), value),
            None => jar.remove(COOKIE),
        };
    }

    /// Every cookie this browser holds: what a thief of this browser's cookies would replay.
    pub fn jar(&self) -> Jar {
        self.jar.lock().unwrap().clone()
    }

    pub fn set_jar(&self, jar: Jar) {
        *self.jar.lock().unwrap() = jar;
    }

    pub fn set_named_cookie(&self, name: &str, value: &str) {
        self.jar
            .lock()
            .unwrap()
            .insert(name.to_owned(), value.to_owned());
    }

    pub async fn get(&self, path: &str) -> Response {
        self.send(self.client.get(format!("{}{path}", self.base)))
            .await
    }

    pub async fn post_form(&self, path: &str, form: &[(&str, &str)]) -> Response {
        self.send(self.client.post(format!("{}{path}", self.base)).form(form))
            .await
    }

    /// Posts a form that must answer 303 (POST-redirect-GET) and loads the page it sends the
    /// browser to, as a browser does.
    pub async fn post_form_and_follow(&self, path: &str, form: &[(&str, &str)]) -> Response {
        let posted = self.post_form(path, form).await;
        assert_eq!(posted.status, 303, "{path}: {}", posted.body);
        let location = posted.header("location").expect("a Location").to_owned();
        self.get(&location).await
    }

    pub async fn send(&self, mut request: reqwest::RequestBuilder) -> Response {
        let jar = self.jar();
        if !jar.is_empty() {
            let header: Vec<String> = jar.iter().map(|(k, v)| format!("{k}={v}")).collect();
            request = request.header("cookie", header.join("; "));
        }
        let response = request.send().await.expect("request reaches the app");
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let body = response.text().await.unwrap_or_default();
        let response = Response {
            status,
            headers,
            body,
        };
        let mut jar = self.jar.lock().unwrap();
        for cookie in response.set_cookies() {
            let removed =
                cookie.max_age().is_some_and(|age| age.is_zero()) || cookie.value().is_empty();
            if removed {
                jar.remove(cookie.name());
            } else {
                jar.insert(cookie.name().to_owned(), cookie.value().to_owned());
            }
        }
        drop(jar);
        response
    }

    pub fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.client.request(method, format!("{}{path}", self.base))
    }

    pub async fn login(&self, name: &str, password: &str) -> Response {
        self.login_next(name, password, None).await
    }

    pub async fn login_next(&self, name: &str, password: &str, next: Option<&str>) -> Response {
        let csrf = self.get("/login").await.csrf();
        let mut form = vec![("username", name), ("password", password), ("csrf", &csrf)];
        if let Some(next) = next {
            form.push(("next", next));
        }
        self.post_form("/login", &form).await
    }

    /// The CSRF token of the signed-in home page.
    pub async fn csrf(&self) -> String {
        self.get("/").await.csrf()
    }

    pub async fn logout(&self) -> Response {
        let csrf = self.csrf().await;
        self.post_form("/logout", &[("csrf", &csrf)]).await
    }

    pub async fn me_status(&self) -> u16 {
        self.get("/api/me").await.status
    }

    /// A JSON API call carrying the session's CSRF token, as a script would send it.
    pub async fn api(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> Response {
        let token: serde_json::Value =
            serde_json::from_str(&self.get("/api/csrf").await.body).unwrap_or_default();
        let mut request = self.request(method, path);
        if let Some(token) = token["csrf"].as_str() {
            request = request.header("x-csrf-token", token);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        self.send(request).await
    }
}

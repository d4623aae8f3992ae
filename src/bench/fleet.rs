//! Two instances of the app per mode, sharing one Redis (and one cookie key and JWT key, as a
//! real deployment behind a load balancer would), and the credentials the load spreads over.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use actix_web::cookie::{Cookie, CookieJar, Key};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use futures_util::StreamExt;

use super::probe::Client;
use super::{BenchError, Kind, PASSWORD};
use crate::auth::authenticator::JwtMode;
use crate::auth::jwt::{JwtAuthority, generate_private_key_pem};
use crate::auth::random::random_bytes;
use crate::auth::session_store::{new_session_id, session_id_hash, store_new_session};
use crate::clock::Clock;
use crate::config::{AuthMode, JwtAlgorithm, PolicySetting, RuleSetting, Settings};
use crate::startup::Application;
use crate::store::{CSRF_FIELD, Store, UID_FIELD, UserRecord};

/// Key material every instance of a mode shares: the session cookie key, the HS256 secret and
/// one private key file per asymmetric algorithm.
pub struct SharedKeys {
    cookie_key: String,
    hs256_secret: String,
    key_files: HashMap<&'static str, PathBuf>,
    dir: PathBuf,
}

impl SharedKeys {
    pub fn new() -> Result<SharedKeys, BenchError> {
        let setup = |e: &dyn std::fmt::Display| BenchError::Setup(e.to_string());
        let dir = std::env::temp_dir().join(format!("sessiond-bench-keys-{}", std::process::id()));
        std::fs::create_dir_all(&dir)?;
        let mut key_files = HashMap::new();
        for (name, alg) in [
            ("eddsa", JwtAlgorithm::EdDSA),
            ("es256", JwtAlgorithm::ES256),
            ("rs256", JwtAlgorithm::RS256),
        ] {
            let path = dir.join(format!("{name}.pem"));
            std::fs::write(&path, generate_private_key_pem(alg).map_err(|e| setup(&e))?)?;
            key_files.insert(name, path);
        }
        Ok(SharedKeys {
            cookie_key: STANDARD.encode(random_bytes::<64>().map_err(|e| setup(&e))?),
            hs256_secret: STANDARD.encode(random_bytes::<32>().map_err(|e| setup(&e))?),
            key_files,
            dir,
        })
    }

    fn key_file(&self, alg: JwtAlgorithm) -> String {
        let name = match alg {
            JwtAlgorithm::EdDSA => "eddsa",
            JwtAlgorithm::ES256 => "es256",
            JwtAlgorithm::RS256 => "rs256",
            JwtAlgorithm::HS256 => return String::new(),
        };
        self.key_files[name].to_string_lossy().into_owned()
    }

    fn cookie_key(&self) -> Result<Key, BenchError> {
        let bytes = STANDARD
            .decode(&self.cookie_key)
            .map_err(|e| BenchError::Setup(e.to_string()))?;
        Ok(Key::from(&bytes))
    }
}

impl Drop for SharedKeys {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The settings of one instance of `kind`.
pub fn settings_for(
    kind: Kind,
    redis_url: &str,
    prefix: &str,
    keys: &SharedKeys,
    workers: usize,
) -> Settings {
    let mut s = Settings::default();
    s.server.bind = "127.0.0.1:0".into();
    s.server.workers = workers;
    s.store.key_prefix = prefix.to_owned();
    // No background store calls: the Redis cost counts the requests' calls alone.
    s.server.active_sessions_refresh_secs = 0;
    s.store.url = if kind.uses_redis() {
        redis_url.to_owned()
    } else {
        "memory://".into()
    };
    s.session.cookie_key = keys.cookie_key.clone();
    // The login storm must measure argon2, not the throttle.
    s.throttle.max_failures_per_account = u64::MAX / 2;
    s.throttle.max_failures_per_ip = u64::MAX / 2;
    s.store.near_cache = kind == Kind::SessionNearCache;
    if kind == Kind::ForwardAuth {
        // The rules a deployment would have: the app's admin area for admins, the rest for
        // anyone signed in (the role demotion trial probes the admin area).
        s.server.public_url = "https://auth.bench.test".into();
        s.authz.rules = vec![
            RuleSetting {
                domain: vec![super::FORWARD_AUTH_HOST.into()],
                resources: vec!["^/admin/".into()],
                methods: Vec::new(),
                policy: PolicySetting::Roles(vec!["admin".into()]),
            },
            RuleSetting {
                domain: vec![super::FORWARD_AUTH_HOST.into()],
                resources: Vec::new(),
                methods: Vec::new(),
                policy: PolicySetting::Named("authenticated".into()),
            },
        ];
    }
    if let Kind::Jwt {
        algorithm,
        denylist,
    } = kind
    {
        s.auth.mode = AuthMode::Jwt;
        s.jwt.algorithm = algorithm;
        s.jwt.denylist = denylist;
        s.jwt.hs256_secret = keys.hs256_secret.clone();
        s.jwt.private_key_file = keys.key_file(algorithm);
    }
    s
}

pub struct RunningApp {
    pub base: String,
    pub store: Arc<Store>,
    handle: actix_web::dev::ServerHandle,
}

impl RunningApp {
    pub async fn start(settings: Settings) -> Result<RunningApp, BenchError> {
        let app = Application::build_with_clock(settings, Clock::system()).await?;
        let running = RunningApp {
            base: format!("http://127.0.0.1:{}", app.port()),
            store: app.store(),
            handle: app.handle(),
        };
        actix_web::rt::spawn(app.run_until_stopped());
        Ok(running)
    }

    pub fn host(&self) -> &str {
        self.base.trim_start_matches("http://")
    }

    pub async fn stop(self) {
        self.handle.stop(true).await;
    }
}

pub async fn add_user(
    store: &Store,
    name: &str,
    roles: &[&str],
    phc: &str,
) -> Result<(), BenchError> {
    let user = UserRecord {
        name: name.to_owned(),
        phc: phc.to_owned(),
        roles: roles.iter().map(|r| r.to_string()).collect(),
        disabled: false,
        created: 0,
        last_login: 0,
    };
    store.create_user(&user).await?;
    Ok(())
}

/// Creates users concurrently: the store's own write path, pipelined on its connection.
pub async fn add_users(store: &Store, names: &[String], phc: &str) -> Result<(), BenchError> {
    let results: Vec<Result<(), BenchError>> = futures_util::stream::iter(names)
        .map(|name| add_user(store, name, &[], phc))
        .buffer_unordered(256)
        .collect()
        .await;
    results.into_iter().collect()
}

/// Issues real credentials without argon2: what a login issues once the password is checked.
/// Sessions are clones of one real login's stored state (owner and CSRF token replaced, a new
/// 256-bit ID each) stored through the session backend's own `store_new_session`, and their
/// cookie is signed with the instances' cookie key as actix-session signs it. JWT credentials
/// come from `JwtMode::issue`, the login's own code: a new refresh family in the store and an
/// access token signed with the instances' key. The app verifies both the normal way.
/// A credential as a browser holds it: the `Cookie` header value it sends, and the handle the
/// dashboards know its session (or refresh family) by.
pub struct Credential {
    pub cookie: String,
    pub handle: String,
}

pub struct Issuer {
    cookie_name: String,
    key: Key,
    template: HashMap<String, String>,
    jwt: Option<(JwtMode, Settings)>,
}

impl Issuer {
    /// Logs `user` in once on `app` (a real login, argon2 included) to learn what a session
    /// holds.
    pub async fn new(
        app: &RunningApp,
        settings: &Settings,
        keys: &SharedKeys,
        user: &str,
    ) -> Result<Issuer, BenchError> {
        let jwt = match settings.auth.mode {
            AuthMode::Session => None,
            AuthMode::Jwt => {
                let (authority, _) = JwtAuthority::from_settings(&settings.jwt)
                    .map_err(|e| BenchError::Setup(e.to_string()))?;
                let key = keys.cookie_key()?;
                Some((
                    JwtMode::new(authority, key.master().to_vec(), &settings.session),
                    settings.clone(),
                ))
            }
        };
        let mut template = HashMap::new();
        if jwt.is_none() {
            let client = Client::new(&app.base)?;
            client.login(user, PASSWORD).await?;
            let hash = app
                .store
                .user_session_hashes(user)
                .await?
                .into_iter()
                .next()
                .ok_or_else(|| BenchError::Setup("the template login left no session".into()))?;
            template = app
                .store
                .load_session(&hash)
                .await?
                .ok_or_else(|| BenchError::Setup("the template session is gone".into()))?
                .into_iter()
                .filter(|(k, _)| !k.starts_with('_'))
                .collect();
        }
        Ok(Issuer {
            cookie_name: settings.session.effective_cookie_name(),
            key: keys.cookie_key()?,
            template,
            jwt,
        })
    }

    /// A new credential for `user` (who exists, with `roles`).
    pub async fn issue(
        &self,
        store: &Store,
        user: &str,
        roles: &[String],
    ) -> Result<Credential, BenchError> {
        let setup = |e: &dyn std::fmt::Display| BenchError::Setup(e.to_string());
        match &self.jwt {
            Some((mode, settings)) => {
                let now = Clock::system().now();
                let deadline = now + settings.session.absolute_timeout_secs as i64;
                let tokens = mode
                    .issue(store, user, roles, "127.0.0.1", "bench", now, deadline)
                    .await
                    .map_err(|e| setup(&e))?;
                Ok(Credential {
                    cookie: format!(
                        "{}={}; {}={}",
                        settings.jwt.access_cookie_name,
                        tokens.access_token,
                        settings.jwt.refresh_cookie_name,
                        tokens.refresh_value
                    ),
                    handle: tokens.handle,
                })
            }
            None => {
                let tag = store.user_tag(user).await?;
                let id = new_session_id(&tag).map_err(|e| setup(&e))?;
                let mut state = self.template.clone();
                state.insert(UID_FIELD.into(), json(user));
                let csrf = URL_SAFE_NO_PAD.encode(random_bytes::<16>().map_err(|e| setup(&e))?);
                state.insert(CSRF_FIELD.into(), json(&csrf));
                store_new_session(store, &id, state).await?;
                Ok(Credential {
                    cookie: self.session_cookie(&id),
                    handle: session_id_hash(&id),
                })
            }
        }
    }

    /// What the thief replays of a browser's cookies. In JWT mode the access token alone:
    /// replaying the refresh cookie too would, once the access token expires, set off
    /// refresh-token reuse detection (which ends the family for victim and thief alike, a
    /// defence the test suite covers) and blur the access token's own window.
    pub fn stolen(&self, cookie_header: &str) -> String {
        match &self.jwt {
            None => cookie_header.to_owned(),
            Some((_, settings)) => cookie_header
                .split("; ")
                .filter(|pair| {
                    pair.split_once('=')
                        .is_some_and(|(name, _)| name == settings.jwt.access_cookie_name)
                })
                .collect::<Vec<_>>()
                .join("; "),
        }
    }

    /// `name=value` as actix-session's middleware writes it: signed, then percent-encoded.
    fn session_cookie(&self, id: &str) -> String {
        let mut jar = CookieJar::new();
        jar.signed_mut(&self.key)
            .add(Cookie::new(self.cookie_name.clone(), id.to_owned()));
        jar.get(&self.cookie_name)
            .map(|c| c.encoded().stripped().to_string())
            .unwrap_or_default()
    }
}

fn json(value: impl serde::Serialize) -> String {
    serde_json::to_string(&value).unwrap_or_default()
}

/// The owners of `n` load credentials: two sessions each (a laptop and a phone).
pub fn owners(n: usize) -> Vec<String> {
    (0..n.div_ceil(2)).map(|u| format!("m{u}")).collect()
}

/// Issues `n` credentials for `users` (who exist), two each. Returns the cookie lines.
pub async fn issue_many(
    issuer: &Issuer,
    store: &Store,
    n: usize,
    users: &[String],
) -> Result<Vec<String>, BenchError> {
    let results: Vec<Result<String, BenchError>> = futures_util::stream::iter(0..n)
        .map(|i| async move { Ok(issuer.issue(store, &users[i / 2], &[]).await?.cookie) })
        .buffer_unordered(256)
        .collect()
        .await;
    results.into_iter().collect()
}

pub fn write_lines(path: &Path, lines: &[String]) -> Result<(), BenchError> {
    std::fs::write(path, lines.join("\n") + "\n")?;
    Ok(())
}

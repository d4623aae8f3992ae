//! Typed settings: `config.toml` first, then `SESSIOND__<SECTION>__<KEY>` environment variables.

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
    time::Duration,
};

use figment::{
    Figment,
    providers::{Env, Format, Serialized, Toml},
};
use serde::{Deserialize, Serialize};

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("could not read the configuration")]
    Load(#[from] Box<figment::Error>),
    #[error("invalid setting {key}: {reason}")]
    Invalid { key: &'static str, reason: String },
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Settings {
    pub server: ServerSettings,
    pub store: StoreSettings,
    pub auth: AuthSettings,
    pub session: SessionSettings,
    pub jwt: JwtSettings,
    pub throttle: ThrottleSettings,
    pub authz: AuthzSettings,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ServerSettings {
    pub bind: String,
    pub workers: usize,
    pub max_body_bytes: usize,
    pub trust_forwarded_for: bool,
    /// How often the `sessiond_active_sessions` gauge is read from the store (one command);
    /// 0 never reads it. A `/metrics` scrape itself costs no store call.
    pub active_sessions_refresh_secs: u64,
    /// On SIGTERM (or SIGINT), requests in flight get this long to finish before the workers
    /// are stopped; no new connection is accepted meanwhile.
    pub shutdown_timeout_secs: u64,
    /// A client must send a request's headers within this time of connecting (or of its
    /// previous request), or the connection is closed with 408: slow-header clients cannot
    /// hold workers' connections open.
    pub request_header_timeout_ms: u64,
    /// An idle keep-alive connection is closed after this long.
    pub keep_alive_secs: u64,
    /// Where browsers reach sessiond's own pages (`https://auth.example.com`); forward auth's
    /// redirects to the login page are absolute URLs built on it. Empty: not set.
    pub public_url: String,
    /// Peers (CIDR) whose `X-Forwarded-*` headers are believed: forward auth answers anyone
    /// else 400, and `X-Forwarded-For` from anyone else is ignored.
    pub trusted_proxies: Vec<String>,
}

/// Forward auth (`/api/authz/*`): who may reach which app behind the proxy. Compiled and
/// checked by `auth::access` at start-up.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AuthzSettings {
    /// What a request no rule matches gets.
    pub default_policy: PolicySetting,
    /// Ordered; the first rule that matches decides.
    pub rules: Vec<RuleSetting>,
}

/// A policy as written: a word, or a list of roles (any of them grants access).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum PolicySetting {
    Named(String),
    Roles(Vec<String>),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuleSetting {
    /// Exact host names, or one leading wildcard label (`*.example.com`).
    pub domain: Vec<String>,
    /// Regexes on the path and query; none = every resource.
    #[serde(default)]
    pub resources: Vec<String>,
    /// HTTP methods; none = every method.
    #[serde(default)]
    pub methods: Vec<String>,
    pub policy: PolicySetting,
}

fn default_activity_flush_ms() -> u64 {
    1000
}

/// `store.near_cache`'s default, decided by the benchmark (README, "Near-cache").
pub const NEAR_CACHE_DEFAULT: bool = true;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StoreSettings {
    pub url: String,
    pub key_prefix: String,
    pub timeout_ms: u64,
    /// Session mode on Redis: serve the hot path from an in-process cache that Redis keeps
    /// honest through client-side caching (RESP3 `CLIENT TRACKING`). See `store::redis::near_cache`.
    pub near_cache: bool,
    /// How many sessions the near-cache holds at most (least recently used go first).
    pub near_cache_entries: usize,
    /// Session creations, logouts and revocations wait (`WAIT`) until this many replicas hold
    /// them before they are acknowledged, so a failover cannot lose them; 0 = do not wait.
    #[serde(default)]
    pub min_replicas_acked: u32,
    /// Sessions seen are added to the active-session estimate in one batch this often (a
    /// touch then costs no second round trip); 0 = only when this instance counts them.
    #[serde(default = "default_activity_flush_ms")]
    pub activity_flush_ms: u64,
    /// `rediss://` (every topology): the CA certificate (PEM) the server's certificate must be
    /// signed by, instead of the system's trust store.
    #[serde(default)]
    pub tls_ca_file: Option<PathBuf>,
    /// `rediss://`: a client certificate and its key (PEM) for servers that ask for one
    /// (Redis's `tls-auth-clients yes`, its default). Both or neither.
    #[serde(default)]
    pub tls_cert_file: Option<PathBuf>,
    #[serde(default)]
    pub tls_key_file: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AuthMode {
    Session,
    Jwt,
}

impl AuthMode {
    pub fn as_str(self) -> &'static str {
        match self {
            AuthMode::Session => "session",
            AuthMode::Jwt => "jwt",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum JwtAlgorithm {
    EdDSA,
    ES256,
    RS256,
    HS256,
}

/// JWT mode (`auth.mode = "jwt"`).
#[derive(Clone, Serialize, Deserialize)]
pub struct JwtSettings {
    pub algorithm: JwtAlgorithm,
    /// PKCS#8 PEM private key (PKCS#1 also accepted for RS256). Empty: a key pair is generated
    /// at start-up, and tokens do not survive a restart.
    pub private_key_file: String,
    /// HS256 only: base64 of at least 32 random bytes. Empty: generated at start-up.
    pub hs256_secret: String,
    /// Key rotation: public keys (PEM) of earlier signing keys. Published in the JWKS and
    /// accepted for verification until removed from this list; only the current key signs.
    pub previous_public_key_files: Vec<String>,
    pub issuer: String,
    pub audience: String,
    pub access_ttl_secs: u64,
    /// Clock skew tolerated on exp/nbf; at most 5 seconds.
    pub leeway_secs: u64,
    /// Tokens longer than this are refused before any decoding.
    pub max_token_bytes: usize,
    /// A refresh token presented again within this many seconds of its rotation (two tabs
    /// racing) is refused without revoking its family; later reuse revokes the family.
    pub refresh_reuse_grace_secs: u64,
    /// Check revoked token IDs and per-user "not before" times in Redis on every request.
    pub denylist: bool,
    pub access_cookie_name: String,
    pub refresh_cookie_name: String,
}

impl std::fmt::Debug for JwtSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtSettings")
            .field("algorithm", &self.algorithm)
            .field("private_key_file", &self.private_key_file)
            .field("hs256_secret", &"[redacted]")
            .field("previous_public_key_files", &self.previous_public_key_files)
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .field("access_ttl_secs", &self.access_ttl_secs)
            .field("denylist", &self.denylist)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AuthSettings {
    pub mode: AuthMode,
    /// Sensitive actions (ending other sessions, changing a password, granting admin) need the
    /// password typed within this many seconds.
    pub step_up_window_secs: u64,
    /// Roles an admin can give; `admin` is built in and need not be listed.
    pub roles: Vec<String>,
}

impl AuthSettings {
    /// Every role that can be given: `admin`, then the configured ones.
    pub fn known_roles(&self) -> Vec<String> {
        with_admin(&self.roles)
    }
}

/// `admin`, then `configured` without it: every role that can be given.
pub fn with_admin(configured: &[String]) -> Vec<String> {
    let mut known = vec!["admin".to_owned()];
    for role in configured {
        if !known.contains(role) {
            known.push(role.clone());
        }
    }
    known
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SameSitePolicy {
    Lax,
    Strict,
}

#[derive(Clone, Serialize, Deserialize)]
pub struct SessionSettings {
    pub idle_timeout_secs: u64,
    pub absolute_timeout_secs: u64,
    pub touch_interval_secs: u64,
    pub cookie_name: String,
    pub same_site: SameSitePolicy,
    pub cookie_key: String,
    /// Share the session with other hosts under this domain (forward auth across
    /// subdomains): the cookie becomes `__Secure-`-prefixed with `Domain=`. Empty: a host-only
    /// `__Host-` cookie, as without forward auth.
    pub cookie_domain: String,
    /// Live sessions a user may hold; a sign-in beyond it ends their oldest. 0 = no limit.
    pub max_per_user: usize,
    /// "Remember me" at login: the session cookie then persists (Max-Age) this long, capped
    /// at the absolute timeout (a cookie outliving its session would be pointless); 0 hides
    /// the checkbox. Session mode.
    pub remember_me_secs: u64,
}

/// A cookie shared across a domain cannot be `__Host-` (browsers refuse `__Host-` with
/// `Domain=`): it becomes `__Secure-`, which still insists on Secure.
fn domain_cookie_name(name: &str) -> String {
    match name.strip_prefix("__Host-") {
        Some(rest) => format!("__Secure-{rest}"),
        None => name.to_owned(),
    }
}

impl SessionSettings {
    /// The session cookie's name: `cookie_name`, `__Secure-` instead of `__Host-` when the
    /// cookie is shared across `cookie_domain`.
    pub fn effective_cookie_name(&self) -> String {
        match self.cookie_domain() {
            Some(_) => domain_cookie_name(&self.cookie_name),
            None => self.cookie_name.clone(),
        }
    }

    /// `cookie_domain` as the cookie carries it: lower case, no leading dot; `None` if unset.
    pub fn cookie_domain(&self) -> Option<String> {
        let domain = self.cookie_domain.trim().trim_start_matches('.');
        (!domain.is_empty()).then(|| domain.to_ascii_lowercase())
    }
}

// Hand-written so the cookie key never reaches a log line.
impl std::fmt::Debug for SessionSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionSettings")
            .field("idle_timeout_secs", &self.idle_timeout_secs)
            .field("absolute_timeout_secs", &self.absolute_timeout_secs)
            .field("touch_interval_secs", &self.touch_interval_secs)
            .field("cookie_name", &self.cookie_name)
            .field("same_site", &self.same_site)
            .field("cookie_key", &"[redacted]")
            .field("cookie_domain", &self.cookie_domain)
            .field("max_per_user", &self.max_per_user)
            .field("remember_me_secs", &self.remember_me_secs)
            .finish()
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ThrottleSettings {
    pub max_failures_per_account: u64,
    pub max_failures_per_ip: u64,
    pub window_secs: u64,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            server: ServerSettings {
                bind: "127.0.0.1:8080".into(),
                workers: 0,
                max_body_bytes: 4096,
                trust_forwarded_for: false,
                active_sessions_refresh_secs: 15,
                shutdown_timeout_secs: 30,
                request_header_timeout_ms: 5000,
                keep_alive_secs: 5,
                public_url: String::new(),
                trusted_proxies: vec!["127.0.0.1/32".into(), "::1/128".into()],
            },
            store: StoreSettings {
                url: "memory://".into(),
                key_prefix: "sd:".into(),
                timeout_ms: 2000,
                near_cache: NEAR_CACHE_DEFAULT,
                near_cache_entries: 100_000,
                min_replicas_acked: 0,
                activity_flush_ms: default_activity_flush_ms(),
                tls_ca_file: None,
                tls_cert_file: None,
                tls_key_file: None,
            },
            auth: AuthSettings {
                mode: AuthMode::Session,
                step_up_window_secs: 600,
                roles: vec!["editor".into(), "viewer".into()],
            },
            session: SessionSettings {
                idle_timeout_secs: 1800,
                absolute_timeout_secs: 12 * 3600,
                touch_interval_secs: 60,
                cookie_name: "__Host-sid".into(),
                same_site: SameSitePolicy::Lax,
                cookie_key: String::new(),
                cookie_domain: String::new(),
                max_per_user: 0,
                remember_me_secs: 12 * 3600,
            },
            jwt: JwtSettings {
                algorithm: JwtAlgorithm::EdDSA,
                private_key_file: String::new(),
                hs256_secret: String::new(),
                previous_public_key_files: Vec::new(),
                issuer: "sessiond".into(),
                audience: "sessiond".into(),
                access_ttl_secs: 300,
                leeway_secs: 2,
                max_token_bytes: 4096,
                refresh_reuse_grace_secs: 2,
                denylist: false,
                access_cookie_name: "__Host-access".into(),
                refresh_cookie_name: "__Host-refresh".into(),
            },
            throttle: ThrottleSettings {
                max_failures_per_account: 5,
                max_failures_per_ip: 50,
                window_secs: 900,
            },
            authz: AuthzSettings {
                default_policy: PolicySetting::Named("deny".into()),
                rules: Vec::new(),
            },
        }
    }
}

impl Settings {
    /// With `session.cookie_domain` set, JWT mode's cookies are shared across it too, so
    /// their `__Host-` names become `__Secure-` (the session cookie's name is computed where
    /// it is used, `SessionSettings::effective_cookie_name`).
    pub fn with_domain_cookie_names(mut self) -> Settings {
        if self.session.cookie_domain().is_some() {
            self.jwt.access_cookie_name = domain_cookie_name(&self.jwt.access_cookie_name);
            self.jwt.refresh_cookie_name = domain_cookie_name(&self.jwt.refresh_cookie_name);
        }
        self
    }

    /// Built-in defaults, then the file (if it exists), then the environment.
    pub fn load(file: &Path) -> Result<Settings, ConfigError> {
        let settings: Settings = Figment::from(Serialized::defaults(Settings::default()))
            .merge(Toml::file(file))
            .merge(Env::prefixed("SESSIOND__").split("__"))
            .extract()
            .map_err(Box::new)?;
        settings.validate()?;
        Ok(settings)
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |key, reason: &str| ConfigError::Invalid {
            key,
            reason: reason.to_owned(),
        };
        self.server
            .bind
            .parse::<SocketAddr>()
            .map_err(|e| invalid("server.bind", &e.to_string()))?;
        if self.session.idle_timeout_secs == 0 || self.session.absolute_timeout_secs == 0 {
            return Err(invalid("session", "timeouts must be positive"));
        }
        if self.session.idle_timeout_secs > self.session.absolute_timeout_secs {
            return Err(invalid(
                "session.idle_timeout_secs",
                "must not exceed session.absolute_timeout_secs",
            ));
        }
        if self.session.cookie_name.starts_with("__Host-") && self.session.cookie_name.len() == 7
            || self.session.cookie_name.is_empty()
        {
            return Err(invalid("session.cookie_name", "must be a cookie name"));
        }
        if self.server.request_header_timeout_ms == 0 {
            return Err(invalid(
                "server.request_header_timeout_ms",
                "must be positive: 0 would let a slow client hold a connection forever",
            ));
        }
        if self.store.activity_flush_ms > 60_000 {
            return Err(invalid(
                "store.activity_flush_ms",
                "must be at most 60000: the estimate counts sessions by minute",
            ));
        }
        if self.store.tls_cert_file.is_some() != self.store.tls_key_file.is_some() {
            return Err(invalid(
                "store.tls_cert_file",
                "a client certificate needs its key (store.tls_key_file), and a key its certificate",
            ));
        }
        let tls_files = self.store.tls_ca_file.is_some() || self.store.tls_cert_file.is_some();
        if tls_files && !self.store.url.starts_with("rediss") {
            return Err(invalid(
                "store.tls_ca_file",
                "TLS files need a TLS store URL (rediss://, rediss+cluster://, rediss+sentinel://)",
            ));
        }
        if self.server.max_body_bytes < 512 {
            return Err(invalid("server.max_body_bytes", "must be at least 512"));
        }
        if self.jwt.leeway_secs > 5 {
            return Err(invalid("jwt.leeway_secs", "must be at most 5"));
        }
        if self.jwt.access_ttl_secs == 0 {
            return Err(invalid("jwt.access_ttl_secs", "must be positive"));
        }
        if self.jwt.max_token_bytes < 256 {
            return Err(invalid("jwt.max_token_bytes", "must be at least 256"));
        }
        if !self
            .auth
            .roles
            .iter()
            .all(|r| crate::store::names::is_role_name(r))
        {
            return Err(invalid(
                "auth.roles",
                "each role is 1-32 characters of a-z, 0-9, '_' and '-', starting with a letter",
            ));
        }
        if let Some(domain) = self.session.cookie_domain() {
            let host_name = domain.split('.').count() >= 2
                && domain.parse::<std::net::IpAddr>().is_err()
                && domain.split('.').all(|label| {
                    !label.is_empty()
                        && label.len() <= 63
                        && label
                            .bytes()
                            .all(|b| b.is_ascii_alphanumeric() || b == b'-')
                });
            if !host_name {
                return Err(invalid(
                    "session.cookie_domain",
                    "must be a domain name such as example.com",
                ));
            }
            // A cookie for a public suffix would go to every site under it.
            if psl::domain_str(&domain).is_none() {
                return Err(invalid(
                    "session.cookie_domain",
                    &format!(
                        "{domain} is a public suffix: a cookie for it would be sent to every site under it"
                    ),
                ));
            }
        }
        if !self.server.public_url.is_empty() {
            let url = url::Url::parse(&self.server.public_url)
                .map_err(|e| invalid("server.public_url", &e.to_string()))?;
            if !matches!(url.scheme(), "http" | "https")
                || url.host_str().is_none()
                || url.path() != "/"
                || url.query().is_some()
                || !url.username().is_empty()
            {
                return Err(invalid(
                    "server.public_url",
                    "must be an http(s) origin such as https://auth.example.com",
                ));
            }
        }
        for proxy in &self.server.trusted_proxies {
            proxy.parse::<ipnet::IpNet>().map_err(|_| {
                invalid(
                    "server.trusted_proxies",
                    &format!("{proxy:?} is not a CIDR block such as 10.0.0.0/8"),
                )
            })?;
        }
        if self.throttle.window_secs == 0 {
            return Err(invalid("throttle.window_secs", "must be positive"));
        }
        if self.store.near_cache && self.store.near_cache_entries == 0 {
            return Err(invalid(
                "store.near_cache_entries",
                "must be positive while store.near_cache is on",
            ));
        }
        Ok(())
    }

    /// Whether the near-cache runs: it serves session mode's hot path on Redis; the memory
    /// store needs none, and JWT mode's hot path reads no session. Plain `redis://` only: a hit
    /// peeks at the tracking socket for unread bytes, which TLS would hide (start-up says so).
    pub fn near_cache_on(&self) -> bool {
        self.store.near_cache
            && self.auth.mode == AuthMode::Session
            && self.store.url.starts_with("redis://")
    }

    /// Whether `store.url` names a cluster or a Sentinel-managed master, where the near-cache
    /// does not run (it watches one Redis's tracking socket).
    pub fn store_is_distributed(&self) -> bool {
        self.store.url.contains("+cluster://") || self.store.url.contains("+sentinel://")
    }

    pub fn store_timeout(&self) -> Duration {
        Duration::from_millis(self.store.timeout_ms.max(1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_config_file_matches_the_defaults() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config.toml");
        let from_file: Settings = Figment::from(Toml::file_exact(path)).extract().unwrap();
        let defaults = Settings::default();
        assert_eq!(
            serde_json::to_value(&from_file).unwrap(),
            serde_json::to_value(&defaults).unwrap()
        );
    }

    #[test]
    fn a_cookie_domain_must_be_a_registrable_domain_and_renames_a_host_cookie() {
        let with_domain = |domain: &str| {
            let mut settings = Settings::default();
            settings.session.cookie_domain = domain.into();
            settings
        };
        for public in ["com", "co.uk", "github.io", ".com", "localhost"] {
            let err = with_domain(public).validate().unwrap_err().to_string();
            assert!(err.contains("session.cookie_domain"), "{public}: {err}");
        }
        for bad in ["127.0.0.1", "exa mple.com", "example..com", "*.example.com"] {
            assert!(with_domain(bad).validate().is_err(), "{bad}");
        }
        let ok = with_domain(".Example.COM");
        ok.validate().unwrap();
        assert_eq!(ok.session.cookie_domain().as_deref(), Some("example.com"));
        assert_eq!(ok.session.effective_cookie_name(), "__Secure-sid");
        assert!(with_domain("user.github.io").validate().is_ok());
        assert_eq!(
            Settings::default().session.effective_cookie_name(),
            "__Host-sid"
        );
    }

    #[test]
    fn public_url_and_trusted_proxies_are_checked() {
        let mut settings = Settings::default();
        settings.server.public_url = "https://auth.example.com/login".into();
        assert!(
            settings
                .validate()
                .unwrap_err()
                .to_string()
                .contains("server.public_url")
        );
        settings.server.public_url = "https://auth.example.com".into();
        settings.validate().unwrap();
        settings.server.trusted_proxies = vec!["10.0.0.0/8".into(), "proxy".into()];
        let err = settings.validate().unwrap_err().to_string();
        assert!(
            err.contains("server.trusted_proxies") && err.contains("proxy"),
            "{err}"
        );
    }

    #[test]
    fn invalid_settings_are_refused_with_the_key_named() {
        let mut settings = Settings::default();
        settings.session.idle_timeout_secs = settings.session.absolute_timeout_secs + 1;
        let err = settings.validate().unwrap_err().to_string();
        assert!(err.contains("session.idle_timeout_secs"), "{err}");
        let mut settings = Settings::default();
        settings.server.bind = "not an address".into();
        assert!(
            settings
                .validate()
                .unwrap_err()
                .to_string()
                .contains("server.bind")
        );
    }

    #[test]
    fn redis_tls_files_need_a_tls_url_and_come_in_pairs() {
        let with = |url: &str, ca: bool, cert: bool, key: bool| {
            let mut settings = Settings::default();
            settings.store.url = url.into();
            settings.store.tls_ca_file = ca.then(|| "ca.crt".into());
            settings.store.tls_cert_file = cert.then(|| "client.crt".into());
            settings.store.tls_key_file = key.then(|| "client.key".into());
            settings.validate().map_err(|e| e.to_string())
        };
        assert!(with("rediss+cluster://h:1", true, true, true).is_ok());
        assert!(with("rediss+sentinel://h:1/m", true, false, false).is_ok());
        assert!(with("rediss://h:1", false, true, true).is_ok());
        let half = with("rediss://h:1", true, true, false).unwrap_err();
        assert!(half.contains("store.tls_cert_file"), "{half}");
        let plain = with("redis+cluster://h:1", true, false, false).unwrap_err();
        assert!(plain.contains("store.tls_ca_file"), "{plain}");
    }
}

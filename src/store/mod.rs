//! Where sessions, users and throttle counters live: Redis in production, or an embedded
//! in-process map for trying the app with nothing installed. Both implement the same rules
//! (expiry, the per-user index, roles read with the session); the behaviour suite runs
//! against each.

mod error;
pub mod keys;
mod memory;
pub mod names;
mod redis;

use std::collections::HashMap;

pub use error::{ErrorClass, StoreCause, StoreError};
pub use memory::MemoryStore;
pub use redis::RedisStore;

use crate::clock::Clock;
use crate::config::Settings;

/// Session-state keys that the store manages itself; actix-session's state never writes them.
/// Names are short on purpose: they are stored once per session (see `keys.rs`).
pub const CREATED_FIELD: &str = "_c";
pub const SEEN_FIELD: &str = "_s";
/// Computed on every load from the user record: the user's current roles, comma-separated.
pub const ROLES_FIELD: &str = "_roles";
/// Computed on every load: the session's own handle (its stored hash), so a page can mark
/// "this session" in a list.
pub const HANDLE_FIELD: &str = "_h";
/// The session's owner, as a JSON string (actix-session encodes every value as JSON).
pub const UID_FIELD: &str = "uid";

/// The owner named by a session's fields (`UID_FIELD`, a JSON string), if any.
pub fn session_owner(fields: &HashMap<String, String>) -> Option<String> {
    fields
        .get(UID_FIELD)
        .and_then(|raw| serde_json::from_str::<String>(raw).ok())
}
/// When the user last typed their password in this session (login or step-up), Unix seconds.
pub const AUTH_AT_FIELD: &str = "at";
pub const IP_FIELD: &str = "ip";
/// Browser and OS, read from the user agent at login ("Chrome 156 on Linux").
pub const DEVICE_FIELD: &str = "dev";
pub const CSRF_FIELD: &str = "csrf";
/// "Remember me" was ticked at login: the cookie is persistent (`session.remember_me_secs`).
pub const REMEMBER_FIELD: &str = "rem";

/// How long the session rules give a session; passed to every load and save.
#[derive(Debug, Clone, Copy)]
pub struct SessionPolicy {
    pub idle_secs: i64,
    pub absolute_secs: i64,
    pub touch_secs: i64,
    /// JWT mode: how long revocation markers (deny-list entries, per-user "not before") live,
    /// the access-token lifetime plus leeway; 0 in session mode, where none are written.
    pub marker_secs: i64,
    /// JWT mode: a refresh token reused within this many seconds of its rotation is a race
    /// between two tabs, refused without revoking the family.
    pub refresh_grace_secs: i64,
}

impl SessionPolicy {
    pub fn from_settings(settings: &Settings) -> SessionPolicy {
        let jwt = settings.auth.mode == crate::config::AuthMode::Jwt;
        SessionPolicy {
            idle_secs: settings.session.idle_timeout_secs as i64,
            absolute_secs: settings.session.absolute_timeout_secs as i64,
            touch_secs: settings.session.touch_interval_secs as i64,
            marker_secs: if jwt {
                (settings.jwt.access_ttl_secs + settings.jwt.leeway_secs) as i64
            } else {
                0
            },
            refresh_grace_secs: settings.jwt.refresh_reuse_grace_secs as i64,
        }
    }

    /// The moment a session dies if it is not used again.
    pub fn expires_at(&self, created: i64, seen: i64) -> i64 {
        (seen + self.idle_secs).min(created + self.absolute_secs)
    }
}

/// A live session as the dashboards show it. `handle` is the stored hash of the ID: it names
/// the session without being usable as a cookie.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SessionInfo {
    pub handle: String,
    pub user: String,
    pub created: i64,
    pub last_seen: i64,
    pub ip: String,
    pub device: String,
}

/// The orders the user list is kept in (each one index, see `names.rs`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum UserOrder {
    #[default]
    Name,
    /// Newest first.
    Newest,
    /// Most recent sign-in first; users who never signed in last.
    RecentLogin,
}

impl UserOrder {
    pub const ALL: [UserOrder; 3] = [UserOrder::Name, UserOrder::Newest, UserOrder::RecentLogin];

    pub fn param(self) -> &'static str {
        match self {
            UserOrder::Name => "name",
            UserOrder::Newest => "newest",
            UserOrder::RecentLogin => "last-login",
        }
    }

    pub fn from_param(raw: &str) -> Option<UserOrder> {
        UserOrder::ALL.into_iter().find(|o| o.param() == raw)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct UserSummary {
    pub name: String,
    pub roles: Vec<String>,
    pub disabled: bool,
    pub created: i64,
    /// When the user last signed in (Unix seconds); 0 = never.
    pub last_login: i64,
    pub live_sessions: u64,
}

/// One page of a listing and the cursor of the next page, if there is one.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next: Option<String>,
}

/// One audit log entry. Never holds a secret or a session ID (handles only).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct AuditEntry {
    pub id: String,
    pub at: i64,
    pub action: String,
    pub actor: String,
    pub target: String,
    pub detail: String,
    pub ip: String,
}

/// Which audit entries to list: those naming `user` (as actor or target), those of `action`
/// (its code), both, or all.
#[derive(Debug, Clone, Copy, Default)]
pub struct AuditFilter<'a> {
    pub user: Option<&'a str>,
    pub action: Option<&'a str>,
}

impl<'a> AuditFilter<'a> {
    pub fn user(user: &'a str) -> AuditFilter<'a> {
        AuditFilter {
            user: Some(user),
            action: None,
        }
    }
}

/// What presenting a refresh token did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RefreshOutcome {
    /// The token was current: it is now replaced, and these are the owner's current roles.
    Rotated {
        user: String,
        roles: Vec<String>,
        auth_at: i64,
        /// When the family was created: its absolute deadline caps the new access token.
        created: i64,
    },
    /// The previous token, within the grace window: refused, family kept.
    Raced,
    /// An older token: the whole family has been revoked.
    Reused { user: String },
    /// No such live family (expired, revoked, user gone or disabled).
    Gone,
}

/// The user record's field holding when they last signed in.
pub const LAST_LOGIN_FIELD: &str = "last_login";

/// Fields of a JWT refresh family beyond those of a session.
pub const REFRESH_FIELD: &str = "rt";

/// The result of a change the last-admin guard may refuse.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GuardedChange {
    Done,
    NoSuchUser,
    /// Refused: it would leave no enabled admin.
    LastAdmin,
}

/// Why a session that once existed is gone, as far as the store remembers: the login page
/// tells the person ("Your session was ended", "You signed out"). A session gone without a
/// trace simply expired (or never was). Kept only as long as the session would have lived, so
/// an entry can never outlast what it explains.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    /// Revoked: by its owner from another session, an admin, revoke-all, a password change,
    /// disabling or deleting the user, or a reused refresh token.
    Ended,
    /// The owner signed out (a copy of the cookie came back).
    SignedOut,
}

impl Ending {
    /// The one-letter value kept in `{p}gone:{sid_hash}`.
    pub fn code(self) -> &'static str {
        match self {
            Ending::Ended => "e",
            Ending::SignedOut => "o",
        }
    }

    pub fn from_code(code: &str) -> Option<Ending> {
        match code {
            "e" => Some(Ending::Ended),
            "o" => Some(Ending::SignedOut),
            _ => None,
        }
    }
}

/// What `sessiond migrate` did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Migration {
    /// User records moved to their tagged keys.
    pub moved: u64,
    /// Users entered in the user list and the admin set again.
    pub indexed: u64,
    /// Names whose tag is held by another name's record: left at their old key.
    pub collisions: Vec<String>,
}

/// Per-minute counters kept for the dashboard's chart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stat {
    Login,
    LoginFailed,
    Revocation,
}

impl Stat {
    pub fn name(self) -> &'static str {
        match self {
            Stat::Login => "login",
            Stat::LoginFailed => "login_failed",
            Stat::Revocation => "revocation",
        }
    }
}

/// How long per-minute stats are kept.
pub const STATS_RETENTION_SECS: i64 = 48 * 3600;
/// The global audit stream keeps about this many entries; each user's, about `USER_AUDIT_CAP`.
pub const AUDIT_CAP: usize = 10_000;
pub const USER_AUDIT_CAP: usize = 500;
/// Each action's own stream keeps about this many entries (what the action filter can reach).
pub const ACTION_AUDIT_CAP: usize = 1_000;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserRecord {
    pub name: String,
    pub phc: String,
    pub roles: Vec<String>,
    pub disabled: bool,
    pub created: i64,
    /// When the user last signed in (Unix seconds); 0 = never.
    pub last_login: i64,
}

/// Failures recorded in a throttle window, and how long until the window closes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Counter {
    pub count: u64,
    pub resets_in_secs: i64,
}

// Built once at start-up and shared behind an `Arc`: the variants' sizes never matter.
#[allow(clippy::large_enum_variant)]
pub enum Store {
    Memory(MemoryStore),
    Redis(RedisStore),
}

/// Dispatches one call to whichever backend is configured.
macro_rules! dispatch {
    ($self:ident . $method:ident ( $($arg:expr),* )) => {
        match $self {
            Store::Memory(s) => s.$method($($arg),*).await,
            Store::Redis(s) => s.$method($($arg),*).await,
        }
    };
}

/// `store.tls_*_file`, read: `None` when none is set (the system's trust store, no client
/// certificate).
fn tls_certificates(
    store: &crate::config::StoreSettings,
) -> Result<Option<::redis::TlsCertificates>, StoreError> {
    // Read, and checked for what each must hold: a file of the wrong kind (DER, a key where a
    // certificate goes) would otherwise only fail each connection, as an outage.
    let read = |path: &std::path::PathBuf, holds: &str| {
        let pem = std::fs::read(path).map_err(|err| StoreError::TlsFile(path.clone(), err))?;
        if !String::from_utf8_lossy(&pem).contains(holds) {
            let wrong = std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("no PEM block containing {holds:?}"),
            );
            return Err(StoreError::TlsFile(path.clone(), wrong));
        }
        Ok(pem)
    };
    const CERTIFICATE: &str = "-----BEGIN CERTIFICATE-----";
    let root_cert = store
        .tls_ca_file
        .as_ref()
        .map(|ca| read(ca, CERTIFICATE))
        .transpose()?;
    let client_tls = match (&store.tls_cert_file, &store.tls_key_file) {
        (Some(cert), Some(key)) => Some(::redis::ClientTlsConfig {
            client_cert: read(cert, CERTIFICATE)?,
            client_key: read(key, "PRIVATE KEY-----")?,
        }),
        _ => None,
    };
    Ok(
        (root_cert.is_some() || client_tls.is_some()).then_some(::redis::TlsCertificates {
            client_tls,
            root_cert,
        }),
    )
}

impl Store {
    /// Opens the store named by `store.url`; Redis is connected lazily, so this succeeds
    /// even while Redis is down (requests then get 503 until it is back).
    pub fn open(
        settings: &Settings,
        clock: Clock,
        metrics: std::sync::Arc<crate::metrics::Metrics>,
    ) -> Result<Store, StoreError> {
        let url = settings.store.url.as_str();
        let policy = SessionPolicy::from_settings(settings);
        if url == "memory://" || url == "memory" {
            Ok(Store::Memory(MemoryStore::new(clock, policy)))
        } else if url.starts_with("redis") {
            Ok(Store::Redis(RedisStore::open(
                url,
                &settings.store.key_prefix,
                settings.store_timeout(),
                clock,
                policy,
                metrics,
                redis::Coherence {
                    near_cache_entries: settings
                        .near_cache_on()
                        .then_some(settings.store.near_cache_entries),
                    fence_writes: settings.auth.mode == crate::config::AuthMode::Session,
                },
                settings.store.min_replicas_acked,
                tls_certificates(&settings.store)?,
            )?))
        } else {
            Err(StoreError::BadUrl(url.to_owned()))
        }
    }

    pub fn kind(&self) -> &'static str {
        match self {
            Store::Memory(_) => "memory",
            Store::Redis(_) => "redis",
        }
    }

    pub fn is_memory(&self) -> bool {
        matches!(self, Store::Memory(_))
    }

    /// `memory`, or the Redis topology: `standalone`, `cluster`, `sentinel`.
    pub fn topology(&self) -> &'static str {
        match self {
            Store::Memory(_) => "memory",
            Store::Redis(s) => s.topology(),
        }
    }

    /// The user's tag (`keys.rs`): every session and refresh-family ID issued to them starts
    /// with it, so their keys share one hash slot.
    pub async fn user_tag(&self, user: &str) -> Result<String, StoreError> {
        dispatch!(self.user_tag(user))
    }

    /// Moves user records from the key schema before Redis Cluster support (`{p}u:{name}`) to
    /// the tagged one, and enters every user in the user list again. Standalone Redis only;
    /// idempotent. Returns (records moved, users indexed, names refused for a tag collision).
    pub async fn migrate(&self) -> Result<Migration, StoreError> {
        match self {
            Store::Memory(_) => Ok(Migration::default()),
            Store::Redis(s) => s.migrate().await,
        }
    }

    /// `migrate` if this store has never been migrated (see `keys::Keys::users_tagged`).
    pub async fn migrate_once(&self) -> Result<Option<Migration>, StoreError> {
        match self {
            Store::Memory(_) => Ok(None),
            Store::Redis(s) => s.migrate_once().await,
        }
    }

    pub async fn ping(&self) -> Result<(), StoreError> {
        dispatch!(self.ping())
    }

    /// What could lose acknowledged writes, as sentences for an operator: Redis allowed to
    /// evict keys, or keeping nothing on disk (and the memory store, always). One round trip,
    /// which also proves the store answers: the readiness check.
    pub async fn durability_warnings(&self) -> Result<Vec<String>, StoreError> {
        dispatch!(self.durability_warnings())
    }

    /// Loads a live session and the owner's current roles; `None` when it is unknown, expired,
    /// or its user is gone or disabled (an expired or orphaned session is deleted on the way).
    /// Also slides the idle expiry forward, writing "last seen" at most once per touch interval.
    pub async fn load_session(
        &self,
        sid_hash: &str,
    ) -> Result<Option<HashMap<String, String>>, StoreError> {
        dispatch!(self.load_session(sid_hash))
    }

    /// Stores a new session. `fields` are actix-session's JSON-encoded state values.
    pub async fn create_session(
        &self,
        sid_hash: &str,
        uid: Option<&str>,
        fields: Vec<(String, String)>,
    ) -> Result<(), StoreError> {
        dispatch!(self.create_session(sid_hash, uid, fields))
    }

    /// Replaces a live session's state. A session deleted meanwhile (logout elsewhere, revoked)
    /// is left deleted: an update never brings one back.
    pub async fn update_session(
        &self,
        sid_hash: &str,
        fields: Vec<(String, String)>,
    ) -> Result<(), StoreError> {
        dispatch!(self.update_session(sid_hash, fields))
    }

    pub async fn delete_session(&self, sid_hash: &str) -> Result<(), StoreError> {
        dispatch!(self.delete_session(sid_hash))
    }

    /// Why the session `sid_hash` is gone, if the store remembers (see `Ending`). Read only
    /// on the way to the login page, never on the hot path.
    pub async fn session_ending(&self, sid_hash: &str) -> Result<Option<Ending>, StoreError> {
        dispatch!(self.session_ending(sid_hash))
    }

    /// JWT mode: rotates a refresh family's token atomically. Exactly one of two concurrent
    /// presentations of the same token wins; an older token revokes the family.
    pub async fn rotate_refresh(
        &self,
        family: &str,
        presented_hash: &str,
        new_hash: &str,
    ) -> Result<RefreshOutcome, StoreError> {
        dispatch!(self.rotate_refresh(family, presented_hash, new_hash))
    }

    /// Sets one field of a live session; false when it is gone.
    pub async fn set_session_field(
        &self,
        sid_hash: &str,
        field: &str,
        value: &str,
    ) -> Result<bool, StoreError> {
        dispatch!(self.set_session_field(sid_hash, field, value))
    }

    /// JWT deny-list: whether an access token of refresh family `family` (its handle, the
    /// token's `sid`), of `user`, issued at `issued_at`, was revoked: its family was ended, or
    /// the user's tokens up to that second were.
    pub async fn is_revoked(
        &self,
        family: &str,
        user: &str,
        issued_at: i64,
    ) -> Result<bool, StoreError> {
        dispatch!(self.is_revoked(family, user, issued_at))
    }

    /// Deletes every session of `user` except `keep` (a handle); returns how many were live.
    pub async fn revoke_all_for_user(
        &self,
        user: &str,
        keep: Option<&str>,
    ) -> Result<u64, StoreError> {
        dispatch!(self.revoke_all_for_user(user, keep))
    }

    /// Deletes one session of `user` by handle; false when the user has no such live session,
    /// so nobody can end a session that is not theirs by guessing a handle.
    pub async fn revoke_session(&self, user: &str, handle: &str) -> Result<bool, StoreError> {
        dispatch!(self.revoke_session(user, handle))
    }

    /// Hashes of the user's live sessions (expired index entries are pruned first).
    pub async fn user_session_hashes(&self, user: &str) -> Result<Vec<String>, StoreError> {
        dispatch!(self.user_session_hashes(user))
    }

    /// The user's live sessions, most recently active first.
    pub async fn sessions_of(&self, user: &str) -> Result<Vec<SessionInfo>, StoreError> {
        let hashes = self.user_session_hashes(user).await?;
        let mut sessions: Vec<SessionInfo> = self
            .session_infos(&hashes)
            .await?
            .into_iter()
            .flatten()
            .collect();
        sessions.sort_by_key(|s| std::cmp::Reverse(s.last_seen));
        Ok(sessions)
    }

    /// Details of the given sessions; `None` for one that is gone.
    pub async fn session_infos(
        &self,
        hashes: &[String],
    ) -> Result<Vec<Option<SessionInfo>>, StoreError> {
        dispatch!(self.session_infos(hashes))
    }

    /// Live sessions of everyone, newest first, a page at a time.
    pub async fn recent_sessions(
        &self,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Page<SessionInfo>, StoreError> {
        dispatch!(self.recent_sessions(after, limit))
    }

    /// Authenticated sessions seen within the idle timeout. Redis estimates it (HyperLogLog,
    /// ~1% error, constant memory); the memory store counts exactly.
    pub async fn active_sessions(&self) -> Result<u64, StoreError> {
        dispatch!(self.active_sessions())
    }

    /// Writes the activity this instance noted since the last call (Redis: batched, so a
    /// touch costs no round trip of its own; run once a second, `store.activity_flush_ms`).
    pub async fn flush_activity(&self) {
        match self {
            Store::Memory(_) => {}
            Store::Redis(store) => store.flush_activity().await,
        }
    }

    /// Every user in `order` (`text` empty; the cursor `after` is a name, or an order-index
    /// member), or the users whose name contains `text`, ordered by the name from the match
    /// on (the cursor is a name-index member, see `names.rs`). Never a scan of all users on
    /// Redis.
    pub async fn list_users(
        &self,
        text: &str,
        order: UserOrder,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Page<UserSummary>, StoreError> {
        dispatch!(self.list_users(text, order, after, limit))
    }

    /// Records a successful sign-in on the user record (`last_login`).
    pub async fn note_login(&self, name: &str, at: i64) -> Result<(), StoreError> {
        dispatch!(self.note_login(name, at))
    }

    /// Enters users created before the name index existed into it; run once at start-up.
    pub async fn index_user_names(&self) -> Result<u64, StoreError> {
        match self {
            Store::Memory(_) => Ok(0),
            Store::Redis(s) => s.index_user_names().await,
        }
    }

    /// Clears throttle counters (`acct:{user}`, `ip:{address}`): an admin unlocking an account.
    pub async fn reset_counters(&self, keys: &[String]) -> Result<(), StoreError> {
        dispatch!(self.reset_counters(keys))
    }

    pub async fn set_password(&self, name: &str, phc: &str) -> Result<bool, StoreError> {
        dispatch!(self.set_password(name, phc))
    }

    /// Appends to the audit log (global and per user) and adds to the per-minute stat, if any.
    pub async fn record(
        &self,
        entry: &AuditEntry,
        stat: Option<(Stat, u64)>,
    ) -> Result<(), StoreError> {
        dispatch!(self.record(entry, stat))
    }

    /// Audit entries newest first, before the cursor: all, or those naming one user and/or of
    /// one action.
    pub async fn audit(
        &self,
        filter: AuditFilter<'_>,
        before: Option<&str>,
        limit: usize,
    ) -> Result<Page<AuditEntry>, StoreError> {
        dispatch!(self.audit(filter, before, limit))
    }

    /// The stat per minute over the last `minutes` minutes, oldest first.
    pub async fn stats(&self, stat: Stat, minutes: usize) -> Result<Vec<u64>, StoreError> {
        dispatch!(self.stats(stat, minutes))
    }

    pub async fn user(&self, name: &str) -> Result<Option<UserRecord>, StoreError> {
        dispatch!(self.user(name))
    }

    /// Creates the user unless the name is taken; returns whether it was created.
    pub async fn create_user(&self, user: &UserRecord) -> Result<bool, StoreError> {
        dispatch!(self.create_user(user))
    }

    /// With `protect_last_admin`, refuses (atomically) to take `admin` from the last enabled admin.
    pub async fn set_roles(
        &self,
        name: &str,
        roles: &[String],
        protect_last_admin: bool,
    ) -> Result<GuardedChange, StoreError> {
        dispatch!(self.set_roles(name, roles, protect_last_admin))
    }

    /// With `protect_last_admin`, refuses (atomically) to disable the last enabled admin.
    pub async fn set_disabled(
        &self,
        name: &str,
        disabled: bool,
        protect_last_admin: bool,
    ) -> Result<GuardedChange, StoreError> {
        dispatch!(self.set_disabled(name, disabled, protect_last_admin))
    }

    /// Removes a user's record (and their place in the user list and the admin set); with
    /// `protect_last_admin`, refuses to remove the last enabled admin. Sessions are ended
    /// separately; the audit trail stays.
    pub async fn delete_user(
        &self,
        name: &str,
        protect_last_admin: bool,
    ) -> Result<GuardedChange, StoreError> {
        dispatch!(self.delete_user(name, protect_last_admin))
    }

    pub async fn user_count(&self) -> Result<u64, StoreError> {
        dispatch!(self.user_count())
    }

    /// Current value of each throttle counter.
    pub async fn counters(&self, keys: &[String]) -> Result<Vec<Counter>, StoreError> {
        dispatch!(self.counters(keys))
    }

    /// Adds one to each counter; a counter's window starts with its first failure.
    pub async fn bump_counters(&self, keys: &[String], window_secs: i64) -> Result<(), StoreError> {
        dispatch!(self.bump_counters(keys, window_secs))
    }

    /// Keeps a one-time message for `ttl_secs`.
    pub async fn put_flash(
        &self,
        token_hash: &str,
        value: &str,
        ttl_secs: u64,
    ) -> Result<(), StoreError> {
        dispatch!(self.put_flash(token_hash, value, ttl_secs))
    }

    /// The one-time message stored under `token_hash`, deleted as it is read: a second read
    /// (a reload, a replayed cookie) finds nothing.
    pub async fn take_flash(&self, token_hash: &str) -> Result<Option<String>, StoreError> {
        dispatch!(self.take_flash(token_hash))
    }

    /// Returns the secret stored under `name`, storing `candidate` first if there is none, so
    /// every instance sharing the store agrees on one value.
    pub async fn shared_secret(&self, name: &str, candidate: &str) -> Result<String, StoreError> {
        dispatch!(self.shared_secret(name, candidate))
    }
}

pub fn is_admin(roles: &[String]) -> bool {
    roles.iter().any(|r| r == "admin")
}

/// The minute a Unix time falls in; stats are bucketed by it.
pub fn minute_of(unix_secs: i64) -> i64 {
    unix_secs.div_euclid(60)
}

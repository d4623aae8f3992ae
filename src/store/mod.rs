//! Where sessions, users and throttle counters live: Redis in production, or an embedded
//! in-process map for trying the app with nothing installed. Both implement the same rules
//! (expiry, the per-user index, roles read with the session); the behaviour suite runs
//! against each.

pub mod keys;
mod memory;
mod redis;

use std::collections::HashMap;

pub use memory::MemoryStore;
pub use redis::RedisStore;

use crate::clock::Clock;
use crate::config::Settings;

/// Session-state keys that the store manages itself; actix-session's state never writes them.
pub const CREATED_FIELD: &str = "_created";
pub const SEEN_FIELD: &str = "_seen";
/// Computed on every load from the user record: the user's current roles, comma-separated.
pub const ROLES_FIELD: &str = "_roles";
/// The session's owner, as a JSON string (actix-session encodes every value as JSON).
pub const UID_FIELD: &str = "uid";

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("redis command failed")]
    Redis(#[from] ::redis::RedisError),
    #[error("no redis connection could be had")]
    Pool(#[from] deadpool_redis::PoolError),
    #[error("redis did not answer within {0} ms")]
    Timeout(u64),
    #[error("the store holds data this version cannot read: {0}")]
    Corrupt(String),
    #[error("the memory store lives inside the server process; point store.url at Redis")]
    MemoryOutsideServer,
    #[error("invalid store url {0:?}: expected memory://, redis:// or rediss://")]
    BadUrl(String),
}

/// How long the session rules give a session; passed to every load and save.
#[derive(Debug, Clone, Copy)]
pub struct SessionPolicy {
    pub idle_secs: i64,
    pub absolute_secs: i64,
    pub touch_secs: i64,
}

impl SessionPolicy {
    pub fn from_settings(settings: &Settings) -> SessionPolicy {
        SessionPolicy {
            idle_secs: settings.session.idle_timeout_secs as i64,
            absolute_secs: settings.session.absolute_timeout_secs as i64,
            touch_secs: settings.session.touch_interval_secs as i64,
        }
    }

    /// The moment a session dies if it is not used again.
    pub fn expires_at(&self, created: i64, seen: i64) -> i64 {
        (seen + self.idle_secs).min(created + self.absolute_secs)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserRecord {
    pub name: String,
    pub phc: String,
    pub roles: Vec<String>,
    pub disabled: bool,
    pub created: i64,
}

/// Failures recorded in a throttle window, and how long until the window closes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Counter {
    pub count: u64,
    pub resets_in_secs: i64,
}

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

impl Store {
    /// Opens the store named by `store.url`; Redis is connected lazily, so this succeeds
    /// even while Redis is down (requests then get 503 until it is back).
    pub fn open(settings: &Settings, clock: Clock) -> Result<Store, StoreError> {
        let url = settings.store.url.as_str();
        let policy = SessionPolicy::from_settings(settings);
        if url == "memory://" || url == "memory" {
            Ok(Store::Memory(MemoryStore::new(clock, policy)))
        } else if url.starts_with("redis://") || url.starts_with("rediss://") {
            Ok(Store::Redis(RedisStore::open(
                url,
                &settings.store.key_prefix,
                settings.store_timeout(),
                clock,
                policy,
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

    pub async fn ping(&self) -> Result<(), StoreError> {
        dispatch!(self.ping())
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

    /// Deletes every session of `user`; returns how many were live.
    pub async fn revoke_all_for_user(&self, user: &str) -> Result<u64, StoreError> {
        dispatch!(self.revoke_all_for_user(user))
    }

    /// Hashes of the user's live sessions (expired index entries are pruned first).
    pub async fn user_session_hashes(&self, user: &str) -> Result<Vec<String>, StoreError> {
        dispatch!(self.user_session_hashes(user))
    }

    pub async fn user(&self, name: &str) -> Result<Option<UserRecord>, StoreError> {
        dispatch!(self.user(name))
    }

    /// Creates the user unless the name is taken; returns whether it was created.
    pub async fn create_user(&self, user: &UserRecord) -> Result<bool, StoreError> {
        dispatch!(self.create_user(user))
    }

    /// Returns false when there is no such user.
    pub async fn set_roles(&self, name: &str, roles: &[String]) -> Result<bool, StoreError> {
        dispatch!(self.set_roles(name, roles))
    }

    /// Returns false when there is no such user.
    pub async fn set_disabled(&self, name: &str, disabled: bool) -> Result<bool, StoreError> {
        dispatch!(self.set_disabled(name, disabled))
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

    /// Returns the secret stored under `name`, storing `candidate` first if there is none, so
    /// every instance sharing the store agrees on one value.
    pub async fn shared_secret(&self, name: &str, candidate: &str) -> Result<String, StoreError> {
        dispatch!(self.shared_secret(name, candidate))
    }

    pub fn keys(&self) -> Option<&keys::Keys> {
        match self {
            Store::Memory(_) => None,
            Store::Redis(s) => Some(s.keys()),
        }
    }
}

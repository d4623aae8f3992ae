//! The Redis store. Every multi-step change is one Lua script or one MULTI pipeline, so
//! concurrent instances never see half an update; the hot path (loading a session) is a
//! single `EVALSHA` on a multiplexed connection kept per worker thread.
//!
//! This file holds the connections and the one `run` every command goes through (timeouts,
//! error classes, reconnection); the operations live by concern in `sessions`, `users`,
//! `audit`, `throttle` and `flash`.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use deadpool_redis::{Config as PoolConfig, Pool, Runtime};
use futures_util::StreamExt;
use redis::aio::MultiplexedConnection;
use redis::{AsyncCommands, RedisResult, Script};

use super::keys::Keys;
use super::names;
use super::{
    ACTION_AUDIT_CAP, AUDIT_CAP, AuditEntry, AuditFilter, CREATED_FIELD, Counter, DEVICE_FIELD,
    Ending, GuardedChange, IP_FIELD, LAST_LOGIN_FIELD, Page, RefreshOutcome, SEEN_FIELD,
    STATS_RETENTION_SECS, SessionInfo, SessionPolicy, Stat, StoreError, UID_FIELD, USER_AUDIT_CAP,
    UserOrder, UserRecord, UserSummary,
};
use crate::clock::Clock;
use crate::metrics::Metrics;

/// The Lua scripts, one file per operation in `src/store/lua/` (named `<operation>-<key count>`,
/// each opening with its KEYS, ARGV and reply). Scripts that declare every key they touch carry
/// a `#!lua` shebang (Redis 7 script flags: refused whole, not halfway, when Redis is out of
/// memory). Standalone Redis does not check declared keys, shebang or not (checked on 7.0.15):
/// only Redis Cluster does, so the scripts without a shebang, which derive keys from what they
/// read, are what the cluster key schema must change.
struct Scripts {
    load: Script,
    rotate_refresh: Script,
    set_session_field: Script,
    create: Script,
    update: Script,
    delete: Script,
    revoke_all: Script,
    revoke_one: Script,
    create_user: Script,
    set_roles: Script,
    set_disabled: Script,
    delete_user: Script,
    set_user_field: Script,
    note_login: Script,
    index_user: Script,
}

/// How instances keep each other's near-caches honest.
pub struct Coherence {
    /// Run a near-cache of at most this many sessions in this process.
    pub near_cache_entries: Option<usize>,
    /// Fence every change to a session or user record (`RedisStore::fence`).
    pub fence_writes: bool,
}

pub struct RedisStore {
    pool: Pool,
    /// Multiplexed connections taken out of the pool and kept, one per worker thread (each
    /// connection's I/O then runs on the thread that uses it, instead of one worker carrying
    /// everyone's Redis traffic). A pool checkout per request would cost a recycle round trip
    /// (UNWATCH + PING) of its own; after an I/O error the thread's connection is dropped and
    /// its next call takes a fresh one from the pool.
    shared: Vec<RwLock<Option<MultiplexedConnection>>>,
    keys: Keys,
    timeout: Duration,
    clock: Clock,
    policy: SessionPolicy,
    scripts: Scripts,
    metrics: Arc<Metrics>,
    /// Session mode's hot path served from memory, when `store.near_cache` is on.
    near: Option<near_cache::NearCache>,
    /// Session mode: changes to sessions and users are fenced (`fence`).
    fence_writes: bool,
}

mod audit;
mod flash;
mod near_cache;
mod sessions;
mod throttle;
mod users;

impl RedisStore {
    pub fn open(
        url: &str,
        prefix: &str,
        timeout: Duration,
        clock: Clock,
        policy: SessionPolicy,
        metrics: Arc<Metrics>,
        coherence: Coherence,
    ) -> Result<RedisStore, StoreError> {
        let Coherence {
            near_cache_entries,
            fence_writes,
        } = coherence;
        let pool = PoolConfig::from_url(url)
            .create_pool(Some(Runtime::Tokio1))
            .map_err(|_| StoreError::BadUrl(url.to_owned()))?;
        let keys = Keys::new(prefix);
        let near = match near_cache_entries {
            Some(capacity) => {
                let client = near_cache::tracking_client(url)
                    .map_err(|_| StoreError::BadUrl(url.to_owned()))?;
                Some(
                    near_cache::NearCache::start(
                        client,
                        capacity,
                        keys.session_prefix(),
                        keys.user_prefix(),
                        timeout,
                        metrics.clone(),
                    )
                    .map_err(StoreError::NearCache)?,
                )
            }
            None => None,
        };
        Ok(RedisStore {
            near,
            fence_writes,
            pool,
            shared: (0..std::thread::available_parallelism()
                .map_or(1, |n| n.get())
                .clamp(1, 16))
                .map(|_| RwLock::new(None))
                .collect(),
            keys,
            timeout,
            clock,
            policy,
            metrics,
            scripts: Scripts {
                load: Script::new(include_str!("../lua/load_session-1.lua")),
                rotate_refresh: Script::new(include_str!("../lua/rotate_refresh-1.lua")),
                set_session_field: Script::new(include_str!("../lua/set_session_field-1.lua")),
                create: Script::new(include_str!("../lua/create_session-4.lua")),
                update: Script::new(include_str!("../lua/update_session-1.lua")),
                delete: Script::new(include_str!("../lua/delete_session-2.lua")),
                revoke_all: Script::new(include_str!("../lua/revoke_all-2.lua")),
                revoke_one: Script::new(include_str!("../lua/revoke_one-3.lua")),
                create_user: Script::new(include_str!("../lua/create_user-6.lua")),
                set_roles: Script::new(include_str!("../lua/set_roles-3.lua")),
                set_disabled: Script::new(include_str!("../lua/set_disabled-3.lua")),
                delete_user: Script::new(include_str!("../lua/delete_user-7.lua")),
                set_user_field: Script::new(include_str!("../lua/set_user_field-1.lua")),
                note_login: Script::new(include_str!("../lua/note_login-2.lua")),
                index_user: Script::new(include_str!("../lua/index_user-4.lua")),
            },
        })
    }

    fn timeout_ms(&self) -> u64 {
        self.timeout.as_millis() as u64
    }

    /// This thread's connection slot.
    fn slot(&self) -> &RwLock<Option<MultiplexedConnection>> {
        thread_local! {
            static THREAD_SLOT: usize = {
                static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
                NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
            };
        }
        let index = THREAD_SLOT.with(|slot| *slot) % self.shared.len();
        &self.shared[index]
    }

    async fn connection(&self) -> Result<MultiplexedConnection, StoreError> {
        let cached = self
            .slot()
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone();
        if let Some(conn) = cached {
            return Ok(conn);
        }
        let pooled = tokio::time::timeout(self.timeout, self.pool.get())
            .await
            .map_err(|_| StoreError::timeout(self.timeout_ms()))??;
        let conn = deadpool_redis::Connection::take(pooled);
        *self
            .slot()
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(conn.clone());
        Ok(conn)
    }

    fn forget_connection(&self) {
        *self
            .slot()
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = None;
    }

    /// Runs one exchange with Redis under the configured timeout. Failures are classified
    /// (`StoreError::from`) and counted by class, and the thread's connection is replaced when
    /// the failure means the connection itself is gone.
    async fn run<T, F, Fut>(&self, exchange: F) -> Result<T, StoreError>
    where
        F: FnOnce(MultiplexedConnection) -> Fut,
        Fut: Future<Output = RedisResult<T>>,
    {
        let conn = match self.connection().await {
            Ok(conn) => conn,
            Err(err) => return Err(self.count_error(err)),
        };
        let (result, connection_lost) = self.exchange_on(conn, exchange).await;
        if connection_lost {
            self.forget_connection();
        }
        result
    }

    /// One exchange on a given connection (the thread's, or the near-cache's tracking one),
    /// timed, classified and counted.
    async fn exchange<T, F, Fut>(
        &self,
        conn: MultiplexedConnection,
        exchange: F,
    ) -> Result<T, StoreError>
    where
        F: FnOnce(MultiplexedConnection) -> Fut,
        Fut: Future<Output = RedisResult<T>>,
    {
        self.exchange_on(conn, exchange).await.0
    }

    /// The exchange's result, and whether the failure means the connection itself is gone.
    async fn exchange_on<T, F, Fut>(
        &self,
        conn: MultiplexedConnection,
        exchange: F,
    ) -> (Result<T, StoreError>, bool)
    where
        F: FnOnce(MultiplexedConnection) -> Fut,
        Fut: Future<Output = RedisResult<T>>,
    {
        let started = std::time::Instant::now();
        let outcome = tokio::time::timeout(self.timeout, exchange(conn)).await;
        self.metrics
            .store_round_trip
            .observe(started.elapsed().as_secs_f64());
        match outcome {
            Ok(Ok(value)) => (Ok(value), false),
            Ok(Err(err)) => {
                let lost = err.is_io_error()
                    || err.is_connection_dropped()
                    || err.is_connection_refusal()
                    || err.is_unrecoverable_error()
                    || err.is_timeout();
                (Err(self.count_error(err.into())), lost)
            }
            Err(_) => (
                Err(self.count_error(StoreError::timeout(self.timeout_ms()))),
                true,
            ),
        }
    }

    fn count_error(&self, err: StoreError) -> StoreError {
        self.metrics
            .store_errors
            .get_or_create(&crate::metrics::ClassLabels {
                class: err.class().as_str(),
            })
            .inc();
        err
    }

    /// After a write that changes a session or a user record (in session mode): one more
    /// round trip. Redis writes a change's invalidations to every near-cache's tracking socket
    /// in the same event-loop iteration as its answer, but in an order of its own, and the
    /// answer may go first; this PING is answered in a later iteration, after all of them have
    /// been written. So by the time anyone is told the change is done, the push is in every
    /// other instance's socket, where their hits see it (`near_cache::Watch`). Done whether or
    /// not this process runs a near-cache (the CLI, an instance turned on later in a rolling
    /// change): it protects the others. Its failure changes nothing: the write was
    /// acknowledged, and a Redis that is gone takes every near-cache down with it.
    async fn fence(&self, written: bool) {
        if written && self.fence_writes {
            let _ = self.ping().await;
        }
    }

    /// After this instance changed a session: its near-cache entry goes at once.
    fn evict_session(&self, sid_hash: &str) {
        if let Some(near) = &self.near {
            near.evict_session(sid_hash);
        }
    }

    /// After this instance changed a user record or ended all their sessions.
    fn evict_user(&self, user: &str) {
        if let Some(near) = &self.near {
            near.evict_user(user);
        }
    }

    pub async fn ping(&self) -> Result<(), StoreError> {
        self.run(
            |mut conn| async move { redis::cmd("PING").query_async::<String>(&mut conn).await },
        )
        .await
        .map(|_| ())
    }

    pub async fn durability_warnings(&self) -> Result<Vec<String>, StoreError> {
        let (persistence, memory): (String, String) = self
            .run(|mut conn| async move {
                redis::pipe()
                    .cmd("INFO")
                    .arg("persistence")
                    .cmd("INFO")
                    .arg("memory")
                    .query_async(&mut conn)
                    .await
            })
            .await?;
        let field = |info: &str, name: &str| -> Option<String> {
            info.lines()
                .find_map(|line| line.strip_prefix(name)?.strip_prefix(':'))
                .map(|value| value.trim().to_owned())
        };
        let mut warnings = Vec::new();
        if let Some(policy) = field(&memory, "maxmemory_policy")
            && policy != "noeviction"
        {
            warnings.push(format!(
                "Redis may evict keys (maxmemory-policy {policy}): a session, a user record or a \
                 revocation could silently vanish. Set maxmemory-policy noeviction (deploy/redis.conf)."
            ));
        }
        if field(&persistence, "aof_enabled").as_deref() == Some("0") {
            // RDB snapshots are configured by `save`; a managed Redis may refuse CONFIG, and
            // then nothing is said rather than something wrong.
            let save: Option<Vec<String>> = self
                .run(|mut conn| async move {
                    redis::cmd("CONFIG")
                        .arg("GET")
                        .arg("save")
                        .query_async(&mut conn)
                        .await
                })
                .await
                .ok();
            if save.is_some_and(|pair| pair.get(1).is_none_or(|rules| rules.trim().is_empty())) {
                warnings.push(
                    "Redis keeps nothing on disk (no AOF, no RDB snapshots): a Redis restart signs \
                     everyone out and loses every user. Turn on appendonly (deploy/redis.conf)."
                        .to_owned(),
                );
            }
        }
        Ok(warnings)
    }
}

/// Nothing comes before it, and Redis refuses an exclusive range that starts there.
const FIRST_STREAM_ID: &str = "0-0";

fn flag(on: bool) -> &'static str {
    if on { "1" } else { "0" }
}

fn guarded(outcome: i64) -> GuardedChange {
    match outcome {
        1 => GuardedChange::Done,
        -1 => GuardedChange::LastAdmin,
        _ => GuardedChange::NoSuchUser,
    }
}

/// The load script's reply: the session's fields and values, flat, or nothing. Over RESP3 (the
/// near-cache's connection) a Lua `false` arrives as a boolean instead of a null.
struct LoadReply(Option<Vec<String>>);

impl redis::FromRedisValue for LoadReply {
    fn from_redis_value(value: redis::Value) -> Result<Self, redis::ParsingError> {
        match value {
            redis::Value::Nil | redis::Value::Boolean(false) => Ok(LoadReply(None)),
            other => Ok(LoadReply(Some(Vec::<String>::from_redis_value(other)?))),
        }
    }
}

impl LoadReply {
    fn into_fields(self) -> Option<HashMap<String, String>> {
        self.0.map(|flat| {
            flat.chunks_exact(2)
                .map(|pair| (pair[0].clone(), pair[1].clone()))
                .collect()
        })
    }
}

fn split_roles(joined: &str) -> Vec<String> {
    joined
        .split(',')
        .filter(|r| !r.is_empty())
        .map(str::to_owned)
        .collect()
}

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

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use deadpool_redis::{Config as PoolConfig, Pool, Runtime};
use futures_util::StreamExt;
use redis::{AsyncCommands, RedisResult, Script};

use super::keys::{Keys, UserTags};
use super::names;
use super::{
    ACTION_AUDIT_CAP, AUDIT_CAP, AuditEntry, AuditFilter, CREATED_FIELD, Counter, DEVICE_FIELD,
    Ending, GuardedChange, IP_FIELD, LAST_LOGIN_FIELD, Page, RefreshOutcome, SEEN_FIELD,
    STATS_RETENTION_SECS, SessionInfo, SessionPolicy, Stat, StoreCause, StoreError, UID_FIELD,
    USER_AUDIT_CAP, UserOrder, UserRecord, UserSummary,
};
use crate::clock::Clock;
use crate::metrics::Metrics;

/// The Lua scripts, one file per operation in `src/store/lua/` (named `<operation>-<key count>`,
/// each opening with its KEYS, ARGV and reply). Every script declares every key it touches,
/// all in one hash slot (`keys.rs`), and opens with a `#!lua` shebang (Redis 7 script flags:
/// refused whole, not halfway, when Redis is out of memory). Only Redis Cluster checks the
/// declared keys, so the cluster suite is what proves them.
struct Scripts {
    load: Script,
    /// The load script flagged `no-writes`: a master refusing writes (`NOREPLICAS`: no replica
    /// connected, with `min-replicas-to-write` set) still runs it, so sessions are read while
    /// writes wait for a replica.
    load_readonly: Script,
    rotate_refresh: Script,
    set_session_field: Script,
    create: Script,
    update: Script,
    delete: Script,
    revoke_all: Script,
    revoke_one: Script,
    create_user: Script,
    admin_release: Script,
    set_roles: Script,
    set_disabled: Script,
    delete_user: Script,
    set_user_field: Script,
    note_login: Script,
    migrate_user: Script,
    bump_counter: Script,
}

const LOAD: &str = include_str!("../lua/load_session-3.lua");

impl Scripts {
    fn new() -> Scripts {
        Scripts {
            load: Script::new(LOAD),
            load_readonly: Script::new(&LOAD.replacen("#!lua\n", "#!lua flags=no-writes\n", 1)),
            rotate_refresh: Script::new(include_str!("../lua/rotate_refresh-5.lua")),
            set_session_field: Script::new(include_str!("../lua/set_session_field-1.lua")),
            create: Script::new(include_str!("../lua/create_session-2.lua")),
            update: Script::new(include_str!("../lua/update_session-1.lua")),
            delete: Script::new(include_str!("../lua/delete_session-4.lua")),
            revoke_all: Script::new(include_str!("../lua/revoke_all-N.lua")),
            revoke_one: Script::new(include_str!("../lua/revoke_one-4.lua")),
            create_user: Script::new(include_str!("../lua/create_user-1.lua")),
            admin_release: Script::new(include_str!("../lua/admin_release-1.lua")),
            set_roles: Script::new(include_str!("../lua/set_roles-2.lua")),
            set_disabled: Script::new(include_str!("../lua/set_disabled-2.lua")),
            delete_user: Script::new(include_str!("../lua/delete_user-2.lua")),
            set_user_field: Script::new(include_str!("../lua/set_user_field-1.lua")),
            note_login: Script::new(include_str!("../lua/note_login-1.lua")),
            migrate_user: Script::new(include_str!("../lua/migrate_user-2.lua")),
            bump_counter: Script::new(include_str!("../lua/bump_counter-1.lua")),
        }
    }
}

/// How instances keep each other's near-caches honest.
pub struct Coherence {
    /// Run a near-cache of at most this many sessions in this process.
    pub near_cache_entries: Option<usize>,
    /// Fence every change to a session or user record (`RedisStore::fence`).
    pub fence_writes: bool,
}

/// Where connections come from.
enum Source {
    /// One Redis: connections are taken out of deadpool's pool and kept.
    Standalone(Pool),
    /// Redis Cluster: one `ClusterConnection` per worker thread (it holds a multiplexed
    /// connection per node and follows the slot map, `MOVED` and `ASK` by itself).
    Cluster(Box<redis::cluster::ClusterClient>),
    /// The master Sentinel names, followed across failovers.
    Sentinel(Arc<sentinel::SentinelWatch>),
}

pub struct RedisStore {
    source: Source,
    /// Multiplexed connections kept, one per worker thread (each connection's I/O then runs on
    /// the thread that uses it, instead of one worker carrying everyone's Redis traffic), with
    /// the Sentinel generation they were made in. A pool checkout per request would cost a
    /// recycle round trip (UNWATCH + PING) of its own; after an I/O error the thread's
    /// connection is dropped and its next call makes a fresh one.
    shared: Vec<RwLock<Option<(u64, Conn)>>>,
    keys: Keys,
    /// Users' tags (`keys.rs`), from the shared `user_tag_key`, read on first use.
    tags: tokio::sync::OnceCell<UserTags>,
    timeout: Duration,
    clock: Clock,
    policy: SessionPolicy,
    scripts: Scripts,
    metrics: Arc<Metrics>,
    /// Session mode's hot path served from memory, when `store.near_cache` is on.
    near: Option<near_cache::NearCache>,
    /// Session mode: changes to sessions and users are fenced (`fence`).
    fence_writes: bool,
    /// `store.min_replicas_acked`: creations and revocations wait for this many replicas.
    min_replicas_acked: u32,
    /// Sessions seen and not yet written to the activity estimate, by minute
    /// (`sessions::note_active`).
    activity: std::sync::Mutex<std::collections::BTreeMap<i64, Vec<String>>>,
}

mod audit;
mod flash;
mod near_cache;
mod sentinel;
mod sessions;
mod throttle;
pub mod topology;
mod users;

use topology::{Conn, Topology};

/// The name of the shared secret users' tags are computed with.
const USER_TAG_KEY: &str = "user_tag_key";

impl RedisStore {
    #[allow(clippy::too_many_arguments)]
    pub fn open(
        url: &str,
        prefix: &str,
        timeout: Duration,
        clock: Clock,
        policy: SessionPolicy,
        metrics: Arc<Metrics>,
        coherence: Coherence,
        min_replicas_acked: u32,
        tls: Option<redis::TlsCertificates>,
    ) -> Result<RedisStore, StoreError> {
        let Coherence {
            near_cache_entries,
            fence_writes,
        } = coherence;
        let bad_url = || StoreError::BadUrl(url.to_owned());
        let topology = Topology::parse(url).ok_or_else(bad_url)?;
        let source = match &topology {
            Topology::Standalone(url) => Source::Standalone(match &tls {
                None => PoolConfig::from_url(url)
                    .create_pool(Some(Runtime::Tokio1))
                    .map_err(|_| bad_url())?,
                // deadpool's own config keeps no certificates: the manager gets the client's
                // connection info, which does.
                Some(certs) => {
                    let client = redis::Client::build_with_tls(url.as_str(), certs.clone())
                        .map_err(|_| bad_url())?;
                    let manager =
                        deadpool_redis::Manager::new(client.get_connection_info().clone())
                            .map_err(|_| bad_url())?;
                    deadpool_redis::Pool::builder(manager)
                        .runtime(Runtime::Tokio1)
                        .build()
                        .map_err(|_| bad_url())?
                }
            }),
            Topology::Cluster(nodes) => {
                // Retries (a slot migrating: TRYAGAIN; a failover: CLUSTERDOWN, a node gone)
                // wait 10 ms and up, doubling, at most 250 ms: redis-rs's default starts at
                // 1.28 s, so a request meeting a migration would spend its whole
                // `store.timeout_ms` waiting. The timeout still bounds all retries together.
                let mut builder = redis::cluster::ClusterClient::builder(nodes.clone())
                    .connection_timeout(timeout)
                    .response_timeout(timeout)
                    .min_retry_wait(10)
                    .max_retry_wait(250)
                    .retry_wait_formula(10, 2);
                if let Some(certs) = &tls {
                    // Every node, the ones discovered included, gets these.
                    builder = builder.certs(certs.clone());
                }
                Source::Cluster(Box::new(builder.build().map_err(|_| bad_url())?))
            }
            Topology::Sentinel(target) => Source::Sentinel(sentinel::SentinelWatch::new(
                target.clone(),
                timeout,
                tls.clone(),
            )),
        };
        let keys = Keys::new(prefix);
        // The near-cache watches one Redis's tracking socket: standalone only.
        let near = match (near_cache_entries, &topology) {
            (Some(capacity), Topology::Standalone(url)) => {
                let client = near_cache::tracking_client(url).map_err(|_| bad_url())?;
                Some(
                    near_cache::NearCache::start(
                        client,
                        capacity,
                        keys.clone(),
                        timeout,
                        metrics.clone(),
                    )
                    .map_err(StoreError::NearCache)?,
                )
            }
            _ => None,
        };
        Ok(RedisStore {
            near,
            fence_writes: fence_writes && matches!(topology, Topology::Standalone(_)),
            source,
            shared: (0..std::thread::available_parallelism()
                .map_or(1, |n| n.get())
                .clamp(1, 16))
                .map(|_| RwLock::new(None))
                .collect(),
            keys,
            tags: tokio::sync::OnceCell::new(),
            timeout,
            clock,
            policy,
            metrics,
            scripts: Scripts::new(),
            min_replicas_acked,
            activity: Default::default(),
        })
    }

    /// The topology `store.url` names: `standalone`, `cluster` or `sentinel`.
    pub fn topology(&self) -> &'static str {
        match self.source {
            Source::Standalone(_) => "standalone",
            Source::Cluster(_) => "cluster",
            Source::Sentinel(_) => "sentinel",
        }
    }

    /// Users' tags, read from (or, by the first instance, written to) the store once.
    async fn tags(&self) -> Result<&UserTags, StoreError> {
        self.tags
            .get_or_try_init(|| async {
                let candidate = URL_SAFE_NO_PAD.encode(rand::random::<[u8; 32]>());
                let secret = self.shared_secret(USER_TAG_KEY, &candidate).await?;
                Ok(UserTags::new(secret.as_bytes()))
            })
            .await
    }

    pub async fn user_tag(&self, user: &str) -> Result<String, StoreError> {
        Ok(self.tags().await?.tag(user))
    }

    fn timeout_ms(&self) -> u64 {
        self.timeout.as_millis() as u64
    }

    /// This thread's connection slot.
    fn slot(&self) -> &RwLock<Option<(u64, Conn)>> {
        thread_local! {
            static THREAD_SLOT: usize = {
                static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
                NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
            };
        }
        let index = THREAD_SLOT.with(|slot| *slot) % self.shared.len();
        &self.shared[index]
    }

    /// The generation a kept connection must have to be used (Sentinel: bumped when the master
    /// moves; 0 otherwise).
    fn generation(&self) -> u64 {
        match &self.source {
            Source::Sentinel(watch) => watch.generation(),
            _ => 0,
        }
    }

    /// Whether a master that refuses writes (`NOREPLICAS`) may still be read from. One Redis:
    /// it is the only master there is. A cluster: a master cut off from the majority stops
    /// answering at all (`CLUSTERDOWN`). Sentinel: only while a majority of the sentinels
    /// names it (`SentinelWatch::confirmed_recently`).
    fn may_read_without_replicas(&self) -> bool {
        match &self.source {
            Source::Sentinel(watch) => watch.confirmed_recently(),
            _ => true,
        }
    }

    async fn connection(&self) -> Result<Conn, StoreError> {
        let generation = self.generation();
        let cached = self
            .slot()
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone();
        if let Some((made_in, conn)) = cached
            && made_in == generation
        {
            return Ok(conn);
        }
        let made = tokio::time::timeout(self.timeout, self.new_connection())
            .await
            .map_err(|_| StoreError::timeout(self.timeout_ms()))??;
        *self
            .slot()
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(made.clone());
        Ok(made.1)
    }

    async fn new_connection(&self) -> Result<(u64, Conn), StoreError> {
        match &self.source {
            Source::Standalone(pool) => {
                let pooled = pool.get().await?;
                Ok((0, Conn::Single(deadpool_redis::Connection::take(pooled))))
            }
            Source::Cluster(client) => Ok((0, Conn::Cluster(client.get_async_connection().await?))),
            Source::Sentinel(watch) => {
                let (generation, conn) = watch.connect().await?;
                Ok((generation, Conn::Single(conn)))
            }
        }
    }

    fn forget_connection(&self) {
        *self
            .slot()
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = None;
        if let Source::Sentinel(watch) = &self.source {
            // The master may have moved: find it again before the next command.
            watch.forget_master();
        }
    }

    /// Runs one exchange with Redis under the configured timeout. Failures are classified
    /// (`StoreError::from`) and counted by class, and the thread's connection is replaced when
    /// the failure means the connection itself is gone.
    async fn run<T, F, Fut>(&self, exchange: F) -> Result<T, StoreError>
    where
        F: FnOnce(Conn) -> Fut,
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
    async fn exchange<T, F, Fut>(&self, conn: Conn, exchange: F) -> Result<T, StoreError>
    where
        F: FnOnce(Conn) -> Fut,
        Fut: Future<Output = RedisResult<T>>,
    {
        self.exchange_on(conn, exchange).await.0
    }

    /// The exchange's result, and whether the failure means the connection itself is gone.
    async fn exchange_on<T, F, Fut>(&self, conn: Conn, exchange: F) -> (Result<T, StoreError>, bool)
    where
        F: FnOnce(Conn) -> Fut,
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
                    || err.is_timeout()
                    // A replica answering: the master moved (Sentinel), find it again.
                    || err.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::ReadOnly);
                (Err(self.count_error(err.into())), lost)
            }
            Err(_) => (
                Err(self.count_error(StoreError::timeout(self.timeout_ms()))),
                true,
            ),
        }
    }

    /// Commands for several keys that may live in different slots, as groups that each stay in
    /// one slot: one pipeline on a single Redis (one round trip); on a cluster the groups all at
    /// once, each group's commands one after another. Not one pipeline per group: when a slot
    /// is being migrated, redis-rs sends `ASKING` before a redirected pipeline's first command
    /// only, the next is refused (`MOVED`) and the whole pipeline is sent again, so its first
    /// commands would run twice (an `INCRBY` counted twice). Replies come back flat, in order.
    async fn run_groups(
        &self,
        groups: Vec<Vec<redis::Cmd>>,
    ) -> Result<Vec<redis::Value>, StoreError> {
        if groups.is_empty() {
            return Ok(Vec::new());
        }
        self.run(|conn| async move {
            match conn {
                Conn::Single(mut conn) => {
                    let mut pipe = redis::pipe();
                    for cmd in groups.into_iter().flatten() {
                        pipe.add_command(cmd);
                    }
                    pipe.query_async(&mut conn).await
                }
                Conn::Cluster(conn) => {
                    let replies = futures_util::future::join_all(groups.into_iter().map(|group| {
                        let mut conn = conn.clone();
                        async move {
                            let mut replies = Vec::with_capacity(group.len());
                            for cmd in group {
                                replies.push(cmd.query_async::<redis::Value>(&mut conn).await?);
                            }
                            Ok::<_, redis::RedisError>(replies)
                        }
                    }))
                    .await;
                    let mut flat = Vec::new();
                    for reply in replies {
                        flat.extend(reply?);
                    }
                    Ok(flat)
                }
            }
        })
        .await
    }

    /// Views written after a per-user change (the user list, the admin set, the "all sessions"
    /// stream, activity): best-effort, so their failure is logged and counted, never reported
    /// as the change's; what they serve is said in `keys.rs`.
    async fn follow_up(&self, what: &str, groups: Vec<Vec<redis::Cmd>>) {
        if let Err(err) = self.run_groups(groups).await {
            tracing::warn!(error = %err, view = what, "a view was not updated after a change");
        }
    }

    /// A script whose write must survive a failover (a session's creation, a logout, a
    /// revocation), and with `store.min_replicas_acked = N` (and `wait`), a `WAIT N` on the
    /// same connection in the same exchange: WAIT counts the writes of the connection it is
    /// sent on, so on any other (a thread's connection replaced in between) it would answer
    /// at once and acknowledge a write no replica holds. Returns the script's reply, and
    /// separately whether enough replicas hold it (503 if not: the write happened but may not
    /// survive a failover, so it is not acknowledged).
    async fn run_acked(
        &self,
        invocation: redis::ScriptInvocation<'_>,
        wait: bool,
    ) -> (Result<i64, StoreError>, Result<(), StoreError>) {
        let wanted = if wait {
            i64::from(self.min_replicas_acked)
        } else {
            0
        };
        // Within the exchange's own timeout, so WAIT's answer arrives before we give up on it.
        let wait_ms = (self.timeout_ms() / 2).max(1);
        let exchanged = self
            .run(|mut conn| async move {
                let reply = invocation.invoke_async::<i64>(&mut conn).await?;
                if wanted == 0 {
                    return Ok((reply, 0));
                }
                let acked: i64 = redis::cmd("WAIT")
                    .arg(wanted)
                    .arg(wait_ms)
                    .query_async(&mut conn)
                    .await?;
                Ok((reply, acked))
            })
            .await;
        match exchanged {
            Ok((reply, acked)) if acked < wanted => (
                Ok(reply),
                Err(
                    self.count_error(StoreError::Unreachable(StoreCause::NotReplicated {
                        acked,
                        wanted,
                    })),
                ),
            ),
            Ok((reply, _)) => (Ok(reply), Ok(())),
            Err(err) => (Err(err), Ok(())),
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

//! The Redis store. Every multi-step change is one Lua script or one MULTI pipeline, so
//! concurrent instances never see half an update; the hot path (loading a session) is a
//! single `EVALSHA` on a multiplexed connection kept per worker thread.

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
}

impl RedisStore {
    pub fn open(
        url: &str,
        prefix: &str,
        timeout: Duration,
        clock: Clock,
        policy: SessionPolicy,
        metrics: Arc<Metrics>,
    ) -> Result<RedisStore, StoreError> {
        let pool = PoolConfig::from_url(url)
            .create_pool(Some(Runtime::Tokio1))
            .map_err(|_| StoreError::BadUrl(url.to_owned()))?;
        Ok(RedisStore {
            pool,
            shared: (0..std::thread::available_parallelism()
                .map_or(1, |n| n.get())
                .clamp(1, 16))
                .map(|_| RwLock::new(None))
                .collect(),
            keys: Keys::new(prefix),
            timeout,
            clock,
            policy,
            metrics,
            scripts: Scripts {
                load: Script::new(include_str!("lua/load_session-1.lua")),
                rotate_refresh: Script::new(include_str!("lua/rotate_refresh-1.lua")),
                set_session_field: Script::new(include_str!("lua/set_session_field-1.lua")),
                create: Script::new(include_str!("lua/create_session-4.lua")),
                update: Script::new(include_str!("lua/update_session-1.lua")),
                delete: Script::new(include_str!("lua/delete_session-2.lua")),
                revoke_all: Script::new(include_str!("lua/revoke_all-2.lua")),
                revoke_one: Script::new(include_str!("lua/revoke_one-3.lua")),
                create_user: Script::new(include_str!("lua/create_user-6.lua")),
                set_roles: Script::new(include_str!("lua/set_roles-3.lua")),
                set_disabled: Script::new(include_str!("lua/set_disabled-3.lua")),
                delete_user: Script::new(include_str!("lua/delete_user-7.lua")),
                set_user_field: Script::new(include_str!("lua/set_user_field-1.lua")),
                note_login: Script::new(include_str!("lua/note_login-2.lua")),
                index_user: Script::new(include_str!("lua/index_user-4.lua")),
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
        let result = async {
            let conn = self.connection().await?;
            let started = std::time::Instant::now();
            let outcome = tokio::time::timeout(self.timeout, exchange(conn)).await;
            self.metrics
                .store_round_trip
                .observe(started.elapsed().as_secs_f64());
            match outcome {
                Ok(Ok(value)) => Ok(value),
                Ok(Err(err)) => {
                    if err.is_io_error()
                        || err.is_connection_dropped()
                        || err.is_connection_refusal()
                        || err.is_unrecoverable_error()
                        || err.is_timeout()
                    {
                        self.forget_connection();
                    }
                    Err(err.into())
                }
                Err(_) => {
                    self.forget_connection();
                    Err(StoreError::timeout(self.timeout_ms()))
                }
            }
        }
        .await;
        result.inspect_err(|err| {
            self.metrics
                .store_errors
                .get_or_create(&crate::metrics::ClassLabels {
                    class: err.class().as_str(),
                })
                .inc();
        })
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

    pub async fn load_session(
        &self,
        sid_hash: &str,
    ) -> Result<Option<HashMap<String, String>>, StoreError> {
        let mut invocation = self.scripts.load.key(self.keys.session(sid_hash));
        invocation
            .arg(self.clock.now())
            .arg(self.policy.idle_secs)
            .arg(self.policy.absolute_secs)
            .arg(self.policy.touch_secs)
            .arg(self.keys.user_prefix())
            .arg(self.keys.user_sessions_prefix())
            .arg(sid_hash)
            .arg(self.keys.active_prefix())
            .arg(self.active_ttl());
        let flat: Option<Vec<String>> = self
            .run(|mut conn| async move { invocation.invoke_async(&mut conn).await })
            .await?;
        Ok(flat.map(|flat| {
            flat.chunks_exact(2)
                .map(|pair| (pair[0].clone(), pair[1].clone()))
                .collect()
        }))
    }

    /// Activity buckets must outlive the idle window they are counted over.
    fn active_ttl(&self) -> i64 {
        self.policy.idle_secs + 120
    }

    pub async fn create_session(
        &self,
        sid_hash: &str,
        uid: Option<&str>,
        fields: Vec<(String, String)>,
    ) -> Result<(), StoreError> {
        let now = self.clock.now();
        let mut invocation = self.scripts.create.key(self.keys.session(sid_hash));
        invocation
            .key(self.keys.user_sessions(uid.unwrap_or_default()))
            .key(self.keys.sessions_stream())
            .key(self.keys.active(super::minute_of(now)))
            .arg(now)
            .arg(self.policy.expires_at(now, now))
            .arg(self.policy.absolute_secs)
            .arg(sid_hash)
            .arg(uid.unwrap_or_default())
            .arg(self.active_ttl());
        for (field, value) in &fields {
            invocation.arg(field).arg(value);
        }
        invocation
            .arg(super::CREATED_FIELD)
            .arg(now)
            .arg(super::SEEN_FIELD)
            .arg(now);
        self.run(|mut conn| async move { invocation.invoke_async::<i64>(&mut conn).await })
            .await
            .map(|_| ())
    }

    pub async fn update_session(
        &self,
        sid_hash: &str,
        fields: Vec<(String, String)>,
    ) -> Result<(), StoreError> {
        let mut invocation = self.scripts.update.key(self.keys.session(sid_hash));
        for (field, value) in &fields {
            invocation.arg(field).arg(value);
        }
        self.run(|mut conn| async move { invocation.invoke_async::<i64>(&mut conn).await })
            .await
            .map(|_| ())
    }

    pub async fn delete_session(&self, sid_hash: &str) -> Result<(), StoreError> {
        let mut invocation = self.scripts.delete.key(self.keys.session(sid_hash));
        invocation
            .key(self.keys.gone(sid_hash))
            .arg(self.keys.user_sessions_prefix())
            .arg(sid_hash)
            .arg(self.keys.deny_prefix())
            .arg(self.policy.marker_secs);
        self.run(|mut conn| async move { invocation.invoke_async::<i64>(&mut conn).await })
            .await
            .map(|_| ())
    }

    pub async fn session_ending(&self, sid_hash: &str) -> Result<Option<Ending>, StoreError> {
        let key = self.keys.gone(sid_hash);
        let code: Option<String> = self
            .run(|mut conn| async move { conn.get(key).await })
            .await?;
        Ok(code.as_deref().and_then(Ending::from_code))
    }

    pub async fn rotate_refresh(
        &self,
        family: &str,
        presented_hash: &str,
        new_hash: &str,
    ) -> Result<RefreshOutcome, StoreError> {
        let mut invocation = self.scripts.rotate_refresh.key(self.keys.session(family));
        invocation
            .arg(self.clock.now())
            .arg(self.policy.idle_secs)
            .arg(self.policy.absolute_secs)
            .arg(self.keys.user_prefix())
            .arg(self.keys.user_sessions_prefix())
            .arg(family)
            .arg(presented_hash)
            .arg(new_hash)
            .arg(self.policy.refresh_grace_secs)
            .arg(self.keys.active_prefix())
            .arg(self.active_ttl())
            .arg(self.keys.deny_prefix())
            .arg(self.policy.marker_secs)
            .arg(self.keys.gone_prefix());
        let reply: Vec<String> = self
            .run(|mut conn| async move { invocation.invoke_async(&mut conn).await })
            .await?;
        Ok(match reply.first().map(String::as_str) {
            Some("rotated") if reply.len() == 5 => RefreshOutcome::Rotated {
                user: reply[1].clone(),
                roles: split_roles(&reply[2]),
                auth_at: reply[3].parse().unwrap_or(0),
                created: reply[4].parse().unwrap_or(0),
            },
            Some("raced") => RefreshOutcome::Raced,
            Some("reused") if reply.len() == 2 => RefreshOutcome::Reused {
                user: reply[1].clone(),
            },
            _ => RefreshOutcome::Gone,
        })
    }

    pub async fn set_session_field(
        &self,
        sid_hash: &str,
        field: &str,
        value: &str,
    ) -> Result<bool, StoreError> {
        let mut invocation = self
            .scripts
            .set_session_field
            .key(self.keys.session(sid_hash));
        invocation.arg(field).arg(value);
        let set: i64 = self
            .run(|mut conn| async move { invocation.invoke_async(&mut conn).await })
            .await?;
        Ok(set == 1)
    }

    /// One round trip: `MGET deny:{family} nbf:{user}`.
    pub async fn is_revoked(
        &self,
        family: &str,
        user: &str,
        issued_at: i64,
    ) -> Result<bool, StoreError> {
        let keys = [
            format!("{}{family}", self.keys.deny_prefix()),
            format!("{}{user}", self.keys.not_before_prefix()),
        ];
        let (denied, not_before): (Option<String>, Option<i64>) =
            self.run(|mut conn| async move {
                redis::cmd("MGET").arg(&keys).query_async(&mut conn).await
            })
            .await?;
        Ok(denied.is_some() || not_before.is_some_and(|nbf| issued_at <= nbf))
    }

    pub async fn revoke_all_for_user(
        &self,
        user: &str,
        keep: Option<&str>,
    ) -> Result<u64, StoreError> {
        let mut invocation = self.scripts.revoke_all.key(self.keys.user_sessions(user));
        invocation
            .key(format!("{}{user}", self.keys.not_before_prefix()))
            .arg(self.keys.session_prefix())
            .arg(keep.unwrap_or_default())
            .arg(self.clock.now())
            .arg(self.policy.marker_secs)
            .arg(self.keys.deny_prefix())
            .arg(self.keys.gone_prefix());
        self.run(|mut conn| async move { invocation.invoke_async::<u64>(&mut conn).await })
            .await
    }

    pub async fn revoke_session(&self, user: &str, handle: &str) -> Result<bool, StoreError> {
        let mut invocation = self.scripts.revoke_one.key(self.keys.user_sessions(user));
        invocation
            .key(self.keys.session(handle))
            .key(self.keys.gone(handle))
            .arg(handle)
            .arg(self.keys.deny_prefix())
            .arg(self.policy.marker_secs)
            .arg(self.clock.now());
        let deleted: i64 = self
            .run(|mut conn| async move { invocation.invoke_async(&mut conn).await })
            .await?;
        Ok(deleted == 1)
    }

    pub async fn user_session_hashes(&self, user: &str) -> Result<Vec<String>, StoreError> {
        let index = self.keys.user_sessions(user);
        let now = self.clock.now();
        let mut pipe = redis::pipe();
        pipe.zrembyscore(&index, "-inf", now).ignore();
        pipe.zrevrange(&index, 0, -1);
        let (hashes,): (Vec<String>,) = self
            .run(|mut conn| async move { pipe.query_async(&mut conn).await })
            .await?;
        Ok(hashes)
    }

    pub async fn user(&self, name: &str) -> Result<Option<UserRecord>, StoreError> {
        let key = self.keys.user(name);
        let fields: HashMap<String, String> = self
            .run(|mut conn| async move { conn.hgetall(key).await })
            .await?;
        if fields.is_empty() {
            return Ok(None);
        }
        let field = |f: &str| {
            fields
                .get(f)
                .cloned()
                .ok_or_else(|| StoreError::Corrupt(format!("user {name:?} has no {f}")))
        };
        Ok(Some(UserRecord {
            name: name.to_owned(),
            phc: field("phc")?,
            roles: split_roles(&field("roles")?),
            disabled: field("disabled")? == "1",
            created: field("created")?.parse().unwrap_or(0),
            last_login: fields
                .get(LAST_LOGIN_FIELD)
                .and_then(|v| v.parse().ok())
                .unwrap_or(0),
        }))
    }

    pub async fn create_user(&self, user: &UserRecord) -> Result<bool, StoreError> {
        let mut invocation = self.scripts.create_user.key(self.keys.user(&user.name));
        invocation
            .key(self.keys.users())
            .key(self.keys.admins())
            .key(self.keys.user_suffixes())
            .key(self.keys.users_newest())
            .key(self.keys.users_by_login())
            .arg(&user.name)
            .arg(&user.phc)
            .arg(user.roles.join(","))
            .arg(if user.disabled { "1" } else { "0" })
            .arg(user.created)
            .arg(if super::is_admin(&user.roles) {
                "1"
            } else {
                "0"
            })
            .arg(names::members(&user.name));
        let created: i64 = self
            .run(|mut conn| async move { invocation.invoke_async(&mut conn).await })
            .await?;
        Ok(created == 1)
    }

    async fn set_user_field(
        &self,
        name: &str,
        field: &str,
        value: &str,
    ) -> Result<bool, StoreError> {
        let mut invocation = self.scripts.set_user_field.key(self.keys.user(name));
        invocation.arg(field).arg(value);
        let updated: i64 = self
            .run(|mut conn| async move { invocation.invoke_async(&mut conn).await })
            .await?;
        Ok(updated == 1)
    }

    pub async fn set_roles(
        &self,
        name: &str,
        roles: &[String],
        protect_last_admin: bool,
    ) -> Result<GuardedChange, StoreError> {
        let mut invocation = self.scripts.set_roles.key(self.keys.user(name));
        invocation
            .key(self.keys.admins())
            .key(format!("{}{name}", self.keys.not_before_prefix()))
            .arg(name)
            .arg(roles.join(","))
            .arg(flag(super::is_admin(roles)))
            .arg(flag(protect_last_admin))
            .arg(self.clock.now())
            .arg(self.policy.marker_secs);
        let outcome: i64 = self
            .run(|mut conn| async move { invocation.invoke_async(&mut conn).await })
            .await?;
        Ok(guarded(outcome))
    }

    pub async fn set_disabled(
        &self,
        name: &str,
        disabled: bool,
        protect_last_admin: bool,
    ) -> Result<GuardedChange, StoreError> {
        let mut invocation = self.scripts.set_disabled.key(self.keys.user(name));
        invocation
            .key(self.keys.admins())
            .key(format!("{}{name}", self.keys.not_before_prefix()))
            .arg(name)
            .arg(flag(disabled))
            .arg(flag(protect_last_admin))
            .arg(self.clock.now())
            .arg(self.policy.marker_secs);
        let outcome: i64 = self
            .run(|mut conn| async move { invocation.invoke_async(&mut conn).await })
            .await?;
        Ok(guarded(outcome))
    }

    pub async fn set_password(&self, name: &str, phc: &str) -> Result<bool, StoreError> {
        self.set_user_field(name, "phc", phc).await
    }

    pub async fn note_login(&self, name: &str, at: i64) -> Result<(), StoreError> {
        let mut invocation = self.scripts.note_login.key(self.keys.user(name));
        invocation.key(self.keys.users_by_login()).arg(name).arg(at);
        self.run(|mut conn| async move { invocation.invoke_async::<i64>(&mut conn).await })
            .await
            .map(|_| ())
    }

    /// Enters every existing user in the name-substring and order indexes, once per store:
    /// what an upgrade from a version without them needs. Each user is one atomic script, so
    /// a sign-in, a deletion or a re-creation racing the backfill leaves the indexes exactly
    /// as the scripts that keep them would; the whole is idempotent, so a crash half-way only
    /// means the next start does it again.
    pub async fn index_user_names(&self) -> Result<u64, StoreError> {
        let done_key = self.keys.user_indexes_built();
        let done_check = done_key.clone();
        let done: bool = self
            .run(|mut conn| async move { conn.exists(done_check).await })
            .await?;
        if done {
            return Ok(0);
        }
        let mut after: Option<String> = None;
        let mut indexed = 0;
        loop {
            let page = self
                .lex_page(self.keys.users(), after.as_deref(), 500)
                .await?;
            if page.is_empty() {
                break;
            }
            // One atomic script per user, 16 in flight on the multiplexed connection.
            let results: Vec<Result<i64, StoreError>> = futures_util::stream::iter(&page)
                .map(|name| {
                    let mut invocation = self.scripts.index_user.key(self.keys.user(name));
                    invocation
                        .key(self.keys.user_suffixes())
                        .key(self.keys.users_newest())
                        .key(self.keys.users_by_login())
                        .arg(name)
                        .arg(names::members(name));
                    self.run(move |mut conn| async move {
                        invocation.invoke_async::<i64>(&mut conn).await
                    })
                })
                .buffer_unordered(16)
                .collect()
                .await;
            for result in results {
                result?;
            }
            indexed += page.len() as u64;
            after = page.last().cloned();
        }
        self.run(|mut conn| async move { conn.set::<_, _, ()>(done_key, 1).await })
            .await?;
        Ok(indexed)
    }

    /// Up to `limit` members of a score-0 index after the member `after`, in byte order.
    async fn lex_page(
        &self,
        key: String,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<String>, StoreError> {
        let min = match after {
            Some(after) => format!("({after}"),
            None => "-".to_owned(),
        };
        self.run(|mut conn| async move {
            redis::cmd("ZRANGEBYLEX")
                .arg(key)
                .arg(min)
                .arg("+")
                .arg("LIMIT")
                .arg(0)
                .arg(limit)
                .query_async(&mut conn)
                .await
        })
        .await
    }

    /// Names containing `text`, in index order, after the member `after`: up to `limit + 1`
    /// (member, name) pairs, each name once.
    async fn names_containing(
        &self,
        text: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<(String, String)>, StoreError> {
        let max: Vec<u8> = [b"[".as_slice(), text.as_bytes(), &[0xff]].concat();
        let mut min: Vec<u8> = match after {
            Some(after) if after > text => [b"(".as_slice(), after.as_bytes()].concat(),
            _ => [b"[".as_slice(), text.as_bytes()].concat(),
        };
        let batch = (limit + 1) * 2;
        let mut found = Vec::new();
        loop {
            let key = self.keys.user_suffixes();
            let (from, to) = (min.clone(), max.clone());
            let members: Vec<String> = self
                .run(|mut conn| async move {
                    redis::cmd("ZRANGEBYLEX")
                        .arg(key)
                        .arg(from)
                        .arg(to)
                        .arg("LIMIT")
                        .arg(0)
                        .arg(batch)
                        .query_async(&mut conn)
                        .await
                })
                .await?;
            for member in &members {
                if let Some(name) = names::first_match(member, text) {
                    found.push((member.clone(), name.to_owned()));
                    if found.len() > limit {
                        return Ok(found);
                    }
                }
            }
            match members.last() {
                Some(last) if members.len() == batch => {
                    min = [b"(".as_slice(), last.as_bytes()].concat();
                }
                _ => return Ok(found),
            }
        }
    }

    pub async fn delete_user(
        &self,
        name: &str,
        protect_last_admin: bool,
    ) -> Result<GuardedChange, StoreError> {
        let mut invocation = self.scripts.delete_user.key(self.keys.user(name));
        invocation
            .key(self.keys.admins())
            .key(self.keys.users())
            .key(format!("{}{name}", self.keys.not_before_prefix()))
            .key(self.keys.user_suffixes())
            .key(self.keys.users_newest())
            .key(self.keys.users_by_login())
            .arg(name)
            .arg(flag(protect_last_admin))
            .arg(self.clock.now())
            .arg(self.policy.marker_secs)
            .arg(names::members(name));
        let outcome: i64 = self
            .run(|mut conn| async move { invocation.invoke_async(&mut conn).await })
            .await?;
        Ok(guarded(outcome))
    }

    pub async fn session_infos(
        &self,
        hashes: &[String],
    ) -> Result<Vec<Option<SessionInfo>>, StoreError> {
        if hashes.is_empty() {
            return Ok(Vec::new());
        }
        let mut pipe = redis::pipe();
        for hash in hashes {
            pipe.cmd("HMGET").arg(self.keys.session(hash)).arg(&[
                UID_FIELD,
                CREATED_FIELD,
                SEEN_FIELD,
                IP_FIELD,
                DEVICE_FIELD,
            ]);
        }
        let rows: Vec<Vec<Option<String>>> = self
            .run(|mut conn| async move { pipe.query_async(&mut conn).await })
            .await?;
        let now = self.clock.now();
        Ok(hashes
            .iter()
            .zip(rows)
            .map(|(hash, row)| {
                let json = |i: usize| {
                    row.get(i)
                        .cloned()
                        .flatten()
                        .and_then(|raw| serde_json::from_str::<String>(&raw).ok())
                };
                let number = |i: usize| row.get(i).cloned().flatten()?.parse::<i64>().ok();
                let (created, last_seen) = (number(1)?, number(2)?);
                (now < self.policy.expires_at(created, last_seen)).then_some(())?;
                Some(SessionInfo {
                    handle: hash.clone(),
                    user: json(0)?,
                    created,
                    last_seen,
                    ip: json(3).unwrap_or_default(),
                    device: json(4).unwrap_or_default(),
                })
            })
            .collect())
    }

    pub async fn recent_sessions(
        &self,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Page<SessionInfo>, StoreError> {
        // Dead sessions stay in the stream until it is trimmed; skip them, but bound the work
        // per page so a listing stays cheap however many have ended.
        let batch = (limit * 2).max(16);
        let max_scanned = limit * 20 + 64;
        let mut items = Vec::with_capacity(limit);
        let mut cursor = after.map(str::to_owned);
        let mut scanned = 0;
        if after == Some(FIRST_STREAM_ID) {
            return Ok(Page { items, next: None });
        }
        loop {
            let start = match &cursor {
                Some(id) => format!("({id}"),
                None => "+".to_owned(),
            };
            let key = self.keys.sessions_stream();
            let entries: Vec<(String, HashMap<String, String>)> = self
                .run(|mut conn| async move {
                    redis::cmd("XREVRANGE")
                        .arg(key)
                        .arg(start)
                        .arg("-")
                        .arg("COUNT")
                        .arg(batch)
                        .query_async(&mut conn)
                        .await
                })
                .await?;
            let exhausted = entries.len() < batch;
            let hashes: Vec<String> = entries
                .iter()
                .map(|(_, fields)| fields.get("h").cloned().unwrap_or_default())
                .collect();
            let infos = self.session_infos(&hashes).await?;
            for ((id, _), info) in entries.iter().zip(infos) {
                scanned += 1;
                cursor = Some(id.clone());
                if let Some(info) = info {
                    items.push(info);
                    if items.len() == limit {
                        return Ok(Page {
                            items,
                            next: cursor,
                        });
                    }
                }
            }
            if exhausted {
                return Ok(Page { items, next: None });
            }
            if scanned >= max_scanned {
                return Ok(Page {
                    items,
                    next: cursor,
                });
            }
        }
    }

    pub async fn active_sessions(&self) -> Result<u64, StoreError> {
        let current = super::minute_of(self.clock.now());
        let window = (self.policy.idle_secs + 59) / 60;
        let keys: Vec<String> = (0..=window)
            .map(|ago| self.keys.active(current - ago))
            .collect();
        self.run(
            |mut conn| async move { redis::cmd("PFCOUNT").arg(keys).query_async(&mut conn).await },
        )
        .await
    }

    pub async fn list_users(
        &self,
        text: &str,
        order: UserOrder,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Page<UserSummary>, StoreError> {
        // (cursor, name): in the order's index when listing everyone, in the name index's
        // order when searching.
        let index = match order {
            UserOrder::Name => self.keys.users(),
            UserOrder::Newest => self.keys.users_newest(),
            UserOrder::RecentLogin => self.keys.users_by_login(),
        };
        let mut rows: Vec<(String, String)> = if text.is_empty() {
            self.lex_page(index, after, limit + 1)
                .await?
                .into_iter()
                .map(|member| (member.clone(), names::name_of(&member).to_owned()))
                .collect()
        } else {
            self.names_containing(text, after, limit).await?
        };
        let more = rows.len() > limit;
        rows.truncate(limit);
        if rows.is_empty() {
            // No match, or past the last page: an empty pipeline is an error to Redis.
            return Ok(Page {
                items: Vec::new(),
                next: None,
            });
        }
        let next = if more {
            rows.last().map(|(cursor, _)| cursor.clone())
        } else {
            None
        };
        let names: Vec<String> = rows.into_iter().map(|(_, name)| name).collect();
        let now = self.clock.now();
        let mut pipe = redis::pipe();
        for name in &names {
            pipe.cmd("HMGET").arg(self.keys.user(name)).arg(&[
                "roles",
                "disabled",
                "created",
                LAST_LOGIN_FIELD,
            ]);
            pipe.zcount(self.keys.user_sessions(name), now + 1, "+inf");
        }
        let rows: Vec<redis::Value> = self
            .run(|mut conn| async move { pipe.query_async(&mut conn).await })
            .await?;
        let mut items = Vec::with_capacity(names.len());
        for (name, pair) in names.iter().zip(rows.chunks_exact(2)) {
            let fields: Vec<Option<String>> =
                redis::from_redis_value_ref(&pair[0]).map_err(redis::RedisError::from)?;
            let live_sessions: u64 =
                redis::from_redis_value_ref(&pair[1]).map_err(redis::RedisError::from)?;
            if fields.get(2).cloned().flatten().is_none() {
                // Deleted between the index read and this one.
                continue;
            }
            let field = |i: usize| fields.get(i).cloned().flatten().unwrap_or_default();
            items.push(UserSummary {
                name: name.clone(),
                roles: split_roles(&field(0)),
                disabled: field(1) == "1",
                created: field(2).parse().unwrap_or(0),
                last_login: field(3).parse().unwrap_or(0),
                live_sessions,
            });
        }
        Ok(Page { items, next })
    }

    pub async fn user_count(&self) -> Result<u64, StoreError> {
        let key = self.keys.users();
        self.run(|mut conn| async move { conn.zcard(key).await })
            .await
    }

    pub async fn counters(&self, counters: &[String]) -> Result<Vec<Counter>, StoreError> {
        let mut pipe = redis::pipe();
        for counter in counters {
            let key = self.keys.throttle(counter);
            pipe.get(&key).ttl(&key);
        }
        let values: Vec<(Option<u64>, i64)> = self
            .run(|mut conn| async move {
                let flat: Vec<redis::Value> = pipe.query_async(&mut conn).await?;
                let mut values = Vec::with_capacity(flat.len() / 2);
                for pair in flat.chunks_exact(2) {
                    let count: Option<u64> = redis::from_redis_value_ref(&pair[0])?;
                    let ttl: i64 = redis::from_redis_value_ref(&pair[1])?;
                    values.push((count, ttl));
                }
                Ok(values)
            })
            .await?;
        Ok(values
            .into_iter()
            .map(|(count, ttl)| Counter {
                count: count.unwrap_or(0),
                resets_in_secs: ttl.max(0),
            })
            .collect())
    }

    pub async fn reset_counters(&self, counters: &[String]) -> Result<(), StoreError> {
        let keys: Vec<String> = counters.iter().map(|c| self.keys.throttle(c)).collect();
        self.run(|mut conn| async move { conn.del::<_, ()>(keys).await })
            .await
    }

    pub async fn bump_counters(
        &self,
        counters: &[String],
        window_secs: i64,
    ) -> Result<(), StoreError> {
        let mut pipe = redis::pipe();
        pipe.atomic();
        for counter in counters {
            let key = self.keys.throttle(counter);
            pipe.incr(&key, 1).ignore();
            // NX: the window starts at the first failure and is not pushed back by later ones.
            pipe.cmd("EXPIRE")
                .arg(&key)
                .arg(window_secs)
                .arg("NX")
                .ignore();
        }
        self.run(|mut conn| async move { pipe.query_async::<()>(&mut conn).await })
            .await
    }

    pub async fn record(
        &self,
        entry: &AuditEntry,
        stat: Option<(Stat, u64)>,
    ) -> Result<(), StoreError> {
        let fields = [
            ("at", entry.at.to_string()),
            ("action", entry.action.clone()),
            ("actor", entry.actor.clone()),
            ("target", entry.target.clone()),
            ("detail", entry.detail.clone()),
            ("ip", entry.ip.clone()),
        ];
        let mut pipe = redis::pipe();
        let mut append = |key: String, cap: usize| {
            pipe.cmd("XADD")
                .arg(key)
                .arg("MAXLEN")
                .arg("~")
                .arg(cap)
                .arg("*")
                .arg(&fields)
                .ignore();
        };
        append(self.keys.audit(None), AUDIT_CAP);
        append(self.keys.audit_action(&entry.action), ACTION_AUDIT_CAP);
        if !entry.actor.is_empty() {
            append(self.keys.audit(Some(&entry.actor)), USER_AUDIT_CAP);
        }
        if !entry.target.is_empty() && entry.target != entry.actor {
            append(self.keys.audit(Some(&entry.target)), USER_AUDIT_CAP);
        }
        if let Some((stat, amount)) = stat {
            let key = self
                .keys
                .stat(stat.name(), super::minute_of(self.clock.now()));
            pipe.incr(&key, amount).ignore();
            pipe.expire(&key, STATS_RETENTION_SECS).ignore();
        }
        self.run(|mut conn| async move { pipe.query_async::<()>(&mut conn).await })
            .await
    }

    pub async fn audit(
        &self,
        filter: AuditFilter<'_>,
        before: Option<&str>,
        limit: usize,
    ) -> Result<Page<AuditEntry>, StoreError> {
        if before == Some(FIRST_STREAM_ID) {
            return Ok(Page {
                items: Vec::new(),
                next: None,
            });
        }
        // Each filter alone has a stream of its own; both together read the user's (capped at
        // ~500 entries) and keep the action's entries, a bounded read.
        let (key, keep_action) = match (filter.user, filter.action) {
            (Some(user), action) => (self.keys.audit(Some(user)), action),
            (None, Some(action)) => (self.keys.audit_action(action), None),
            (None, None) => (self.keys.audit(None), None),
        };
        let batch = if keep_action.is_some() {
            100
        } else {
            limit + 1
        };
        let mut start = match before {
            Some(id) => format!("({id}"),
            None => "+".to_owned(),
        };
        let mut items = Vec::new();
        loop {
            let (key, from) = (key.clone(), start.clone());
            let entries: Vec<(String, HashMap<String, String>)> = self
                .run(|mut conn| async move {
                    redis::cmd("XREVRANGE")
                        .arg(key)
                        .arg(from)
                        .arg("-")
                        .arg("COUNT")
                        .arg(batch)
                        .query_async(&mut conn)
                        .await
                })
                .await?;
            let exhausted = entries.len() < batch;
            if let Some((last, _)) = entries.last() {
                start = format!("({last}");
            }
            items.extend(
                entries
                    .into_iter()
                    .map(audit_entry)
                    .filter(|e| keep_action.is_none_or(|a| e.action == a)),
            );
            if exhausted || items.len() > limit {
                break;
            }
        }
        let more = items.len() > limit;
        items.truncate(limit);
        let next = if more {
            items.last().map(|e| e.id.clone())
        } else {
            None
        };
        Ok(Page { items, next })
    }

    pub async fn stats(&self, stat: Stat, minutes: usize) -> Result<Vec<u64>, StoreError> {
        let current = super::minute_of(self.clock.now());
        let keys: Vec<String> = (0..minutes as i64)
            .rev()
            .map(|ago| self.keys.stat(stat.name(), current - ago))
            .collect();
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let values: Vec<Option<u64>> = self
            .run(
                |mut conn| async move { redis::cmd("MGET").arg(keys).query_async(&mut conn).await },
            )
            .await?;
        Ok(values.into_iter().map(Option::unwrap_or_default).collect())
    }

    pub async fn put_flash(
        &self,
        token_hash: &str,
        value: &str,
        ttl_secs: u64,
    ) -> Result<(), StoreError> {
        let key = self.keys.flash(token_hash);
        let value = value.to_owned();
        self.run(|mut conn| async move {
            redis::cmd("SET")
                .arg(&key)
                .arg(&value)
                .arg("EX")
                .arg(ttl_secs.max(1))
                .query_async::<()>(&mut conn)
                .await
        })
        .await
    }

    pub async fn take_flash(&self, token_hash: &str) -> Result<Option<String>, StoreError> {
        let key = self.keys.flash(token_hash);
        self.run(|mut conn| async move {
            redis::cmd("GETDEL")
                .arg(&key)
                .query_async::<Option<String>>(&mut conn)
                .await
        })
        .await
    }

    pub async fn shared_secret(&self, name: &str, candidate: &str) -> Result<String, StoreError> {
        let key = self.keys.secret(name);
        let mut pipe = redis::pipe();
        pipe.atomic();
        pipe.cmd("SET").arg(&key).arg(candidate).arg("NX").ignore();
        pipe.get(&key);
        let (value,): (String,) = self
            .run(|mut conn| async move { pipe.query_async(&mut conn).await })
            .await?;
        Ok(value)
    }
}

/// Nothing comes before it, and Redis refuses an exclusive range that starts there.
const FIRST_STREAM_ID: &str = "0-0";

fn audit_entry((id, mut fields): (String, HashMap<String, String>)) -> AuditEntry {
    let mut take = |f: &str| fields.remove(f).unwrap_or_default();
    AuditEntry {
        at: take("at").parse().unwrap_or(0),
        action: take("action"),
        actor: take("actor"),
        target: take("target"),
        detail: take("detail"),
        ip: take("ip"),
        id,
    }
}

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

fn split_roles(joined: &str) -> Vec<String> {
    joined
        .split(',')
        .filter(|r| !r.is_empty())
        .map(str::to_owned)
        .collect()
}

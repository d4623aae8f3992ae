//! The Redis store. Every multi-step change is one Lua script or one MULTI pipeline, so
//! concurrent instances never see half an update; the hot path (loading a session) is a
//! single `EVALSHA` on a shared multiplexed connection.

use std::collections::HashMap;
use std::future::Future;
use std::sync::RwLock;
use std::time::Duration;

use deadpool_redis::{Config as PoolConfig, Pool, Runtime};
use redis::aio::MultiplexedConnection;
use redis::{AsyncCommands, RedisResult, Script};

use super::keys::Keys;
use super::{Counter, SessionPolicy, StoreError, UserRecord};
use crate::clock::Clock;

/// Loads a session, enforces idle and absolute expiry, joins the owner's roles and disabled
/// flag, and slides the expiry, all in the one round trip an authenticated request may cost.
/// User and index keys are derived inside the script, which is fine on a standalone Redis
/// (the documented deployment) but would need hash tags on a cluster.
const LOAD_SESSION: &str = r#"
local raw = redis.call('HGETALL', KEYS[1])
if #raw == 0 then return false end
local s = {}
for i = 1, #raw, 2 do s[raw[i]] = raw[i + 1] end
local now = tonumber(ARGV[1])
local idle = tonumber(ARGV[2])
local absolute = tonumber(ARGV[3])
local created = tonumber(s['_created']) or 0
local seen = tonumber(s['_seen']) or 0
local uid = nil
if s['uid'] then uid = cjson.decode(s['uid']) end
local function drop()
  redis.call('DEL', KEYS[1])
  if uid then redis.call('ZREM', ARGV[6] .. uid, ARGV[7]) end
  return false
end
if now >= math.min(seen + idle, created + absolute) then return drop() end
local roles = ''
if uid then
  local user = redis.call('HMGET', ARGV[5] .. uid, 'roles', 'disabled')
  if not user[1] or user[2] == '1' then return drop() end
  roles = user[1]
end
if now - seen >= tonumber(ARGV[4]) then
  local expires = math.min(now + idle, created + absolute)
  redis.call('HSET', KEYS[1], '_seen', ARGV[1])
  redis.call('EXPIREAT', KEYS[1], expires)
  if uid then redis.call('ZADD', ARGV[6] .. uid, expires, ARGV[7]) end
  for i = 1, #raw, 2 do
    if raw[i] == '_seen' then raw[i + 1] = ARGV[1] end
  end
end
raw[#raw + 1] = '_roles'
raw[#raw + 1] = roles
return raw
"#;

/// Replaces the application fields of a live session. A missing session stays missing, so a
/// request racing a logout cannot resurrect it; `uid` and store-managed `_` fields are fixed.
const UPDATE_SESSION: &str = r#"
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
local keep = {}
local args = {}
for i = 1, #ARGV, 2 do
  local f = ARGV[i]
  if string.sub(f, 1, 1) ~= '_' and f ~= 'uid' then
    keep[f] = true
    args[#args + 1] = f
    args[#args + 1] = ARGV[i + 1]
  end
end
for _, f in ipairs(redis.call('HKEYS', KEYS[1])) do
  if not keep[f] and string.sub(f, 1, 1) ~= '_' and f ~= 'uid' then
    redis.call('HDEL', KEYS[1], f)
  end
end
if #args > 0 then redis.call('HSET', KEYS[1], unpack(args)) end
return 1
"#;

/// Deletes a session and its entry in the owner's index.
const DELETE_SESSION: &str = r#"
local uid = redis.call('HGET', KEYS[1], 'uid')
redis.call('DEL', KEYS[1])
if uid then redis.call('ZREM', ARGV[1] .. cjson.decode(uid), ARGV[2]) end
return 1
"#;

/// Deletes every session in a user's index, then the index; returns how many were live.
const REVOKE_ALL: &str = r#"
local live = 0
for _, h in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
  live = live + redis.call('DEL', ARGV[1] .. h)
end
redis.call('DEL', KEYS[1])
return live
"#;

const CREATE_USER: &str = r#"
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], 'phc', ARGV[2], 'roles', ARGV[3], 'disabled', ARGV[4], 'created', ARGV[5])
redis.call('ZADD', KEYS[2], 0, ARGV[1])
return 1
"#;

/// Sets one field of an existing user; never creates a half user.
const SET_USER_FIELD: &str = r#"
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
return 1
"#;

struct Scripts {
    load: Script,
    update: Script,
    delete: Script,
    revoke_all: Script,
    create_user: Script,
    set_user_field: Script,
}

pub struct RedisStore {
    pool: Pool,
    /// A multiplexed connection taken out of the pool and shared by every request. A pool
    /// checkout per request would cost a recycle round trip (UNWATCH + PING) of its own; after
    /// an I/O error the cached connection is dropped and the next call takes a fresh one.
    shared: RwLock<Option<MultiplexedConnection>>,
    keys: Keys,
    timeout: Duration,
    clock: Clock,
    policy: SessionPolicy,
    scripts: Scripts,
}

impl RedisStore {
    pub fn open(
        url: &str,
        prefix: &str,
        timeout: Duration,
        clock: Clock,
        policy: SessionPolicy,
    ) -> Result<RedisStore, StoreError> {
        let pool = PoolConfig::from_url(url)
            .create_pool(Some(Runtime::Tokio1))
            .map_err(|_| StoreError::BadUrl(url.to_owned()))?;
        Ok(RedisStore {
            pool,
            shared: RwLock::new(None),
            keys: Keys::new(prefix),
            timeout,
            clock,
            policy,
            scripts: Scripts {
                load: Script::new(LOAD_SESSION),
                update: Script::new(UPDATE_SESSION),
                delete: Script::new(DELETE_SESSION),
                revoke_all: Script::new(REVOKE_ALL),
                create_user: Script::new(CREATE_USER),
                set_user_field: Script::new(SET_USER_FIELD),
            },
        })
    }

    pub fn keys(&self) -> &Keys {
        &self.keys
    }

    fn timeout_ms(&self) -> u64 {
        self.timeout.as_millis() as u64
    }

    async fn connection(&self) -> Result<MultiplexedConnection, StoreError> {
        let cached = self
            .shared
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone();
        if let Some(conn) = cached {
            return Ok(conn);
        }
        let pooled = tokio::time::timeout(self.timeout, self.pool.get())
            .await
            .map_err(|_| StoreError::Timeout(self.timeout_ms()))??;
        let conn = deadpool_redis::Connection::take(pooled);
        *self
            .shared
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(conn.clone());
        Ok(conn)
    }

    fn forget_connection(&self) {
        *self
            .shared
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = None;
    }

    /// Runs one exchange with Redis under the configured timeout.
    async fn run<T, F, Fut>(&self, exchange: F) -> Result<T, StoreError>
    where
        F: FnOnce(MultiplexedConnection) -> Fut,
        Fut: Future<Output = RedisResult<T>>,
    {
        let conn = self.connection().await?;
        match tokio::time::timeout(self.timeout, exchange(conn)).await {
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
                Err(StoreError::Timeout(self.timeout_ms()))
            }
        }
    }

    pub async fn ping(&self) -> Result<(), StoreError> {
        self.run(
            |mut conn| async move { redis::cmd("PING").query_async::<String>(&mut conn).await },
        )
        .await
        .map(|_| ())
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
            .arg(sid_hash);
        let flat: Option<Vec<String>> = self
            .run(|mut conn| async move { invocation.invoke_async(&mut conn).await })
            .await?;
        Ok(flat.map(|flat| {
            flat.chunks_exact(2)
                .map(|pair| (pair[0].clone(), pair[1].clone()))
                .collect()
        }))
    }

    pub async fn create_session(
        &self,
        sid_hash: &str,
        uid: Option<&str>,
        fields: Vec<(String, String)>,
    ) -> Result<(), StoreError> {
        let now = self.clock.now();
        let expires = self.policy.expires_at(now, now);
        let key = self.keys.session(sid_hash);
        let mut pipe = redis::pipe();
        pipe.atomic();
        let mut all = fields;
        all.push((super::CREATED_FIELD.into(), now.to_string()));
        all.push((super::SEEN_FIELD.into(), now.to_string()));
        pipe.hset_multiple(&key, &all).ignore();
        pipe.cmd("EXPIREAT").arg(&key).arg(expires).ignore();
        if let Some(uid) = uid {
            let index = self.keys.user_sessions(uid);
            pipe.zrembyscore(&index, "-inf", now).ignore();
            pipe.zadd(&index, sid_hash, expires).ignore();
            pipe.expire(&index, self.policy.absolute_secs).ignore();
        }
        self.run(|mut conn| async move { pipe.query_async::<()>(&mut conn).await })
            .await
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
            .arg(self.keys.user_sessions_prefix())
            .arg(sid_hash);
        self.run(|mut conn| async move { invocation.invoke_async::<i64>(&mut conn).await })
            .await
            .map(|_| ())
    }

    pub async fn revoke_all_for_user(&self, user: &str) -> Result<u64, StoreError> {
        let mut invocation = self.scripts.revoke_all.key(self.keys.user_sessions(user));
        invocation.arg(self.keys.session_prefix());
        self.run(|mut conn| async move { invocation.invoke_async::<u64>(&mut conn).await })
            .await
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
        }))
    }

    pub async fn create_user(&self, user: &UserRecord) -> Result<bool, StoreError> {
        let mut invocation = self.scripts.create_user.key(self.keys.user(&user.name));
        invocation
            .key(self.keys.users())
            .arg(&user.name)
            .arg(&user.phc)
            .arg(user.roles.join(","))
            .arg(if user.disabled { "1" } else { "0" })
            .arg(user.created);
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

    pub async fn set_roles(&self, name: &str, roles: &[String]) -> Result<bool, StoreError> {
        self.set_user_field(name, "roles", &roles.join(",")).await
    }

    pub async fn set_disabled(&self, name: &str, disabled: bool) -> Result<bool, StoreError> {
        self.set_user_field(name, "disabled", if disabled { "1" } else { "0" })
            .await
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

fn split_roles(joined: &str) -> Vec<String> {
    joined
        .split(',')
        .filter(|r| !r.is_empty())
        .map(str::to_owned)
        .collect()
}

//! Sessions (and JWT refresh families, stored alike): the hot-path load, creation, updates,
//! revocation, and the listings of live sessions.

use redis::aio::MultiplexedConnection;

use super::near_cache::Lookup;
use super::*;
use crate::store::ROLES_FIELD;
use crate::store::keys::handle_tag;

/// Set by the load script when it slid the session's expiry (then the session is counted as
/// active); never stored, never returned to callers.
const TOUCHED_FIELD: &str = "_t";

/// Pending activity handles that make `note_active` write at once instead of waiting for the
/// next flush: bounds the memory a burst of touches holds.
const ACTIVITY_BATCH: usize = 10_000;

impl RedisStore {
    pub async fn load_session(
        &self,
        sid_hash: &str,
    ) -> Result<Option<HashMap<String, String>>, StoreError> {
        let Some(tag) = handle_tag(sid_hash) else {
            // Not a handle this store issued: no such session, and nothing to ask.
            return Ok(None);
        };
        let now = self.clock.now();
        let tracked = match &self.near {
            Some(near) => match near.lookup(sid_hash, now, &self.policy) {
                Lookup::Hit(fields) => return Ok(Some(fields)),
                Lookup::Expired => return Ok(None),
                Lookup::Miss { conn, token } => Some((near, conn, token)),
                Lookup::Unavailable => None,
            },
            None => None,
        };
        let invocation = self.load_invocation(&self.scripts.load, sid_hash, tag, now, false);
        let mut touched = false;
        let loaded = match tracked {
            // Read on the tracking connection, so Redis tells this process when it changes.
            Some((near, conn, token)) => {
                let mut loaded = self
                    .load_tracked(near, sid_hash, tag, token, conn, invocation)
                    .await;
                if let Ok(Some(fields)) = &mut loaded
                    && fields.remove(TOUCHED_FIELD).is_some()
                {
                    touched = true;
                }
                near.fill(
                    sid_hash,
                    token,
                    loaded.as_ref().ok().and_then(Option::as_ref),
                    &self.policy,
                );
                loaded
            }
            None => self
                .run(
                    |mut conn| async move { invocation.invoke_async::<LoadReply>(&mut conn).await },
                )
                .await
                .map(LoadReply::into_fields),
        };
        let mut loaded = match loaded {
            // The master takes no writes until a replica is back: read the session without
            // sliding its expiry (nor deleting it if it expired: it is refused either way);
            // behind Sentinel, only while a majority of the sentinels name this master.
            Err(err) if err.is_no_replicas() && self.may_read_without_replicas() => {
                let invocation =
                    self.load_invocation(&self.scripts.load_readonly, sid_hash, tag, now, true);
                self.run(
                    |mut conn| async move { invocation.invoke_async::<LoadReply>(&mut conn).await },
                )
                .await
                .map(LoadReply::into_fields)?
            }
            loaded => loaded?,
        };
        if let Some(fields) = &mut loaded
            && fields.remove(TOUCHED_FIELD).is_some()
        {
            touched = true;
        }
        if touched {
            self.note_active(sid_hash).await;
        }
        Ok(loaded)
    }

    fn load_invocation<'a>(
        &self,
        script: &'a redis::Script,
        sid_hash: &str,
        tag: &str,
        now: i64,
        readonly: bool,
    ) -> redis::ScriptInvocation<'a> {
        let mut invocation = script.key(self.keys.session(sid_hash));
        invocation
            .key(self.keys.user(tag))
            .key(self.keys.user_sessions(tag))
            .arg(now)
            .arg(self.policy.idle_secs)
            .arg(self.policy.absolute_secs)
            .arg(self.policy.touch_secs)
            .arg(sid_hash)
            .arg(if readonly { "1" } else { "0" });
        invocation
    }

    /// The activity estimate, after a load slid a session's expiry (or a session began): the
    /// handle joins this minute's pending batch, which `flush_activity` writes (a second later,
    /// or when the batch is full): the minute's key has a slot of its own, so writing it at
    /// once would cost a request a second round trip.
    async fn note_active(&self, sid_hash: &str) {
        let minute = crate::store::minute_of(self.clock.now());
        let full = {
            let mut pending = self.activity.lock().unwrap_or_else(|p| p.into_inner());
            pending.entry(minute).or_default().push(sid_hash.to_owned());
            pending.values().map(Vec::len).sum::<usize>() >= ACTIVITY_BATCH
        };
        if full {
            self.flush_activity().await;
        }
    }

    /// Writes the pending activity: per minute, one `PFADD` of every handle seen and the key's
    /// `EXPIRE`. Best-effort like every view: a failed flush is logged and its handles dropped
    /// (the estimate then misses them).
    pub async fn flush_activity(&self) {
        let pending = std::mem::take(&mut *self.activity.lock().unwrap_or_else(|p| p.into_inner()));
        if pending.is_empty() {
            return;
        }
        let groups = pending
            .into_iter()
            .map(|(minute, handles)| {
                let key = self.keys.active(minute);
                let mut add = redis::cmd("PFADD");
                add.arg(&key).arg(handles);
                let mut expire = redis::cmd("EXPIRE");
                expire.arg(&key).arg(self.active_ttl());
                vec![add, expire]
            })
            .collect();
        self.follow_up("activity", groups).await;
    }

    /// The near-cache's miss: the load script, then the owner's record read on its own, once
    /// the owner is noted on the pending entry (`NearCache::owner_known`), so a change to the
    /// record from then on cancels the fill. Its answer is newer than the script's, and kept.
    async fn load_tracked(
        &self,
        near: &super::near_cache::NearCache,
        sid_hash: &str,
        tag: &str,
        token: u64,
        conn: MultiplexedConnection,
        invocation: redis::ScriptInvocation<'_>,
    ) -> Result<Option<HashMap<String, String>>, StoreError> {
        let loaded = self
            .exchange(Conn::Single(conn.clone()), |mut conn| async move {
                invocation.invoke_async::<LoadReply>(&mut conn).await
            })
            .await
            .map(LoadReply::into_fields)?;
        let Some(mut fields) = loaded else {
            return Ok(None);
        };
        let Some(uid) = crate::store::session_owner(&fields) else {
            return Ok(Some(fields));
        };
        if !near.owner_known(sid_hash, token, tag) {
            // Invalidated already: serve what was read (as the normal path would), uncached.
            return Ok(Some(fields));
        }
        let key = self.keys.user(tag);
        let (name, roles, disabled): (Option<String>, Option<String>, Option<String>) = self
            .exchange(Conn::Single(conn), |mut conn| async move {
                redis::cmd("HMGET")
                    .arg(key)
                    .arg("name")
                    .arg("roles")
                    .arg("disabled")
                    .query_async(&mut conn)
                    .await
            })
            .await?;
        match roles {
            Some(roles) if disabled.as_deref() != Some("1") && name.as_deref() == Some(&uid) => {
                fields.insert(ROLES_FIELD.to_owned(), roles);
                Ok(Some(fields))
            }
            // Deleted or disabled since the script ran: refused like the script would.
            _ => Ok(None),
        }
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
        let Some(tag) = handle_tag(sid_hash) else {
            return Err(StoreError::Corrupt(format!(
                "a session handle without a tag: {sid_hash:?}"
            )));
        };
        if let Some(uid) = uid
            && self.user_tag(uid).await? != tag
        {
            // Its keys would not be in its owner's slot: issued by mistake, never stored.
            return Err(StoreError::Corrupt(format!(
                "session {sid_hash:?} does not carry {uid:?}'s tag"
            )));
        }
        let now = self.clock.now();
        let mut invocation = self.scripts.create.key(self.keys.session(sid_hash));
        invocation
            .key(self.keys.user_sessions(tag))
            .arg(now)
            .arg(self.policy.expires_at(now, now))
            .arg(self.policy.absolute_secs)
            .arg(sid_hash)
            .arg(uid.unwrap_or_default());
        for (field, value) in &fields {
            invocation.arg(field).arg(value);
        }
        invocation
            .arg(super::CREATED_FIELD)
            .arg(now)
            .arg(super::SEEN_FIELD)
            .arg(now);
        let (written, replicated) = self.run_acked(invocation, uid.is_some()).await;
        written?;
        replicated?;
        if uid.is_some() {
            // The "all sessions" stream (trimmed by server time to the absolute timeout) and
            // this minute's activity: views in slots of their own, written after the session.
            let mut add = redis::cmd("XADD");
            add.arg(self.keys.sessions_stream())
                .arg("MINID")
                .arg("~")
                .arg((now - self.policy.absolute_secs) * 1000)
                .arg("*")
                .arg("h")
                .arg(sid_hash);
            self.follow_up("sessions stream", vec![vec![add]]).await;
            self.note_active(sid_hash).await;
        }
        Ok(())
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
        let result = self
            .run(|mut conn| async move { invocation.invoke_async::<i64>(&mut conn).await })
            .await
            .map(|_| ());
        self.fence(result.is_ok()).await;
        self.evict_session(sid_hash);
        result
    }

    pub async fn delete_session(&self, sid_hash: &str) -> Result<(), StoreError> {
        let Some(tag) = handle_tag(sid_hash) else {
            return Ok(());
        };
        let mut invocation = self.scripts.delete.key(self.keys.session(sid_hash));
        invocation
            .key(self.keys.gone(sid_hash))
            .key(self.keys.user_sessions(tag))
            .key(self.keys.deny(sid_hash))
            .arg(sid_hash)
            .arg(self.policy.marker_secs);
        let (result, replicated) = self.run_acked(invocation, true).await;
        self.fence(result.is_ok()).await;
        self.evict_session(sid_hash);
        result?;
        replicated
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
        let Some(tag) = handle_tag(family) else {
            return Ok(RefreshOutcome::Gone);
        };
        let mut invocation = self.scripts.rotate_refresh.key(self.keys.session(family));
        invocation
            .key(self.keys.user(tag))
            .key(self.keys.user_sessions(tag))
            .key(self.keys.deny(family))
            .key(self.keys.gone(family))
            .arg(self.clock.now())
            .arg(self.policy.idle_secs)
            .arg(self.policy.absolute_secs)
            .arg(family)
            .arg(presented_hash)
            .arg(new_hash)
            .arg(self.policy.refresh_grace_secs)
            .arg(self.policy.marker_secs);
        let reply: Vec<String> = self
            .run(|mut conn| async move { invocation.invoke_async(&mut conn).await })
            .await?;
        if reply.first().map(String::as_str) == Some("rotated") {
            self.note_active(family).await;
        }
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
        let set: Result<i64, StoreError> = self
            .run(|mut conn| async move { invocation.invoke_async(&mut conn).await })
            .await;
        self.fence(set.is_ok()).await;
        self.evict_session(sid_hash);
        let set = set?;
        Ok(set == 1)
    }

    /// One round trip: `MGET deny:{family} nbf:{user}`.
    pub async fn is_revoked(
        &self,
        family: &str,
        user: &str,
        issued_at: i64,
    ) -> Result<bool, StoreError> {
        let tag = self.user_tag(user).await?;
        if handle_tag(family) != Some(tag.as_str()) {
            // A signed token whose family is not its user's: never issued by us as such.
            return Ok(true);
        }
        let keys = [self.keys.deny(family), self.keys.not_before(&tag)];
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
        let tag = self.user_tag(user).await?;
        let index = self.keys.user_sessions(&tag);
        // The script must declare every key it touches: read the index, then run it with each
        // session's keys. A session added in between makes it change nothing and say so; then
        // again, with the index as it is now. Logins are rare next to this loop's two round
        // trips, so it ends; the bound only keeps a pathological one from spinning.
        let mut result = Err(StoreError::Corrupt(format!(
            "{user:?}'s session index kept changing during revoke-all"
        )));
        let mut replicated = Ok(());
        for _ in 0..16 {
            let key = index.clone();
            let handles: Vec<String> = self
                .run(|mut conn| async move { conn.zrange(key, 0, -1).await })
                .await?;
            let mut invocation = self.scripts.revoke_all.key(&index);
            invocation.key(self.keys.not_before(&tag));
            for handle in &handles {
                invocation
                    .key(self.keys.session(handle))
                    .key(self.keys.gone(handle))
                    .key(self.keys.deny(handle));
            }
            invocation
                .arg(keep.unwrap_or_default())
                .arg(self.clock.now())
                .arg(self.policy.marker_secs);
            for handle in &handles {
                invocation.arg(handle);
            }
            let (outcome, acked) = self.run_acked(invocation, true).await;
            match outcome {
                Ok(-1) => continue,
                Ok(live) => {
                    result = Ok(live.max(0) as u64);
                    replicated = acked;
                    break;
                }
                Err(err) => {
                    result = Err(err);
                    break;
                }
            }
        }
        self.fence(result.is_ok()).await;
        self.evict_user(&tag);
        let live = result?;
        replicated?;
        Ok(live)
    }

    pub async fn revoke_session(&self, user: &str, handle: &str) -> Result<bool, StoreError> {
        let tag = self.user_tag(user).await?;
        if handle_tag(handle) != Some(tag.as_str()) {
            // Not this user's: a handle alone proves nothing, and it names another slot.
            return Ok(false);
        }
        let mut invocation = self.scripts.revoke_one.key(self.keys.user_sessions(&tag));
        invocation
            .key(self.keys.session(handle))
            .key(self.keys.gone(handle))
            .key(self.keys.deny(handle))
            .arg(handle)
            .arg(self.policy.marker_secs)
            .arg(self.clock.now());
        let (deleted, replicated) = self.run_acked(invocation, true).await;
        self.fence(deleted.is_ok()).await;
        self.evict_session(handle);
        let deleted = deleted?;
        replicated?;
        Ok(deleted == 1)
    }

    pub async fn user_session_hashes(&self, user: &str) -> Result<Vec<String>, StoreError> {
        let index = self.keys.user_sessions(&self.user_tag(user).await?);
        let now = self.clock.now();
        let mut pipe = redis::pipe();
        pipe.zrembyscore(&index, "-inf", now).ignore();
        pipe.zrevrange(&index, 0, -1);
        let (hashes,): (Vec<String>,) = self
            .run(|mut conn| async move { pipe.query_async(&mut conn).await })
            .await?;
        Ok(hashes)
    }

    pub async fn session_infos(
        &self,
        hashes: &[String],
    ) -> Result<Vec<Option<SessionInfo>>, StoreError> {
        if hashes.is_empty() {
            return Ok(Vec::new());
        }
        let groups = hashes
            .iter()
            .map(|hash| {
                let mut get = redis::cmd("HMGET");
                get.arg(self.keys.session(hash)).arg(&[
                    UID_FIELD,
                    CREATED_FIELD,
                    SEEN_FIELD,
                    IP_FIELD,
                    DEVICE_FIELD,
                ]);
                vec![get]
            })
            .collect();
        let rows: Vec<Vec<Option<String>>> = self
            .run_groups(groups)
            .await?
            .into_iter()
            .map(redis::from_redis_value)
            .collect::<Result<_, _>>()
            .map_err(|e| StoreError::Corrupt(e.to_string()))?;
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
        // This instance's own pending activity counts.
        self.flush_activity().await;
        let current = crate::store::minute_of(self.clock.now());
        let window = (self.policy.idle_secs + 59) / 60;
        let keys: Vec<String> = (0..=window)
            .map(|ago| self.keys.active(current - ago))
            .collect();
        self.run(
            |mut conn| async move { redis::cmd("PFCOUNT").arg(keys).query_async(&mut conn).await },
        )
        .await
    }
}

//! User records and the user indexes: by name, by any part of a name, newest first, by
//! latest sign-in.

use super::*;

impl RedisStore {
    pub async fn user(&self, name: &str) -> Result<Option<UserRecord>, StoreError> {
        let key = self.keys.user(&self.user_tag(name).await?);
        let fields: HashMap<String, String> = self
            .run(|mut conn| async move { conn.hgetall(key).await })
            .await?;
        if fields.get("name").map(String::as_str) != Some(name) {
            // No record, or another name's with the same tag (keys.rs).
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
        let tag = self.user_tag(&user.name).await?;
        let mut invocation = self.scripts.create_user.key(self.keys.user(&tag));
        invocation
            .arg(&user.name)
            .arg(&user.phc)
            .arg(user.roles.join(","))
            .arg(flag(user.disabled))
            .arg(user.created);
        let created: Result<i64, StoreError> = self
            .run(|mut conn| async move { invocation.invoke_async(&mut conn).await })
            .await;
        self.evict_user(&tag);
        if created? != 1 {
            return Ok(false);
        }
        // The user list and the admin set, after the record (other slots). If this fails the
        // user exists and can sign in, but is missing from the list until `sessiond migrate`
        // enters them again; the guard only counts fewer admins (stricter).
        let mut groups = index_commands(&self.keys, &user.name, user.created, user.last_login);
        if crate::store::is_admin(&user.roles) && !user.disabled {
            let mut add = redis::cmd("SADD");
            add.arg(self.keys.admins()).arg(&user.name);
            groups.push(vec![add]);
        }
        self.follow_up("user list", groups).await;
        Ok(true)
    }

    async fn set_user_field(
        &self,
        name: &str,
        field: &str,
        value: &str,
    ) -> Result<bool, StoreError> {
        let tag = self.user_tag(name).await?;
        let mut invocation = self.scripts.set_user_field.key(self.keys.user(&tag));
        invocation.arg(name).arg(field).arg(value);
        let updated: Result<i64, StoreError> = self
            .run(|mut conn| async move { invocation.invoke_async(&mut conn).await })
            .await;
        self.fence(updated.is_ok()).await;
        self.evict_user(&tag);
        let updated = updated?;
        Ok(updated == 1)
    }

    /// The last-admin guard before a change that may take `name` out of the enabled admins:
    /// atomic on the admin set, so two admins demoting each other at once cannot both pass.
    async fn release_admin(&self, name: &str, guard: bool) -> Result<bool, StoreError> {
        let mut invocation = self.scripts.admin_release.key(self.keys.admins());
        invocation.arg(name).arg(flag(guard));
        let outcome: i64 = self
            .run(|mut conn| async move { invocation.invoke_async(&mut conn).await })
            .await?;
        Ok(outcome == 1)
    }

    /// After a role or disabled change: the admin set says what the record now says.
    async fn sync_admin(&self, name: &str, enabled_admin: bool) -> Result<(), StoreError> {
        let key = self.keys.admins();
        let name = name.to_owned();
        self.run(|mut conn| async move {
            if enabled_admin {
                conn.sadd::<_, _, ()>(key, name).await
            } else {
                conn.srem::<_, _, ()>(key, name).await
            }
        })
        .await
    }

    /// The admin set says what `name`'s record says *now*, not what this change wrote: two
    /// changes of one user racing (a promotion and a demotion) write their records in one
    /// order and could write the set in the other, leaving a demoted user counted as an admin
    /// (a looser guard). So the record is read, the set written, the record read again, until
    /// the two reads agree: whichever change syncs last writes the last record's state.
    async fn sync_admin_with_record(&self, name: &str) -> Result<(), StoreError> {
        let enabled_admin = |user: Option<UserRecord>| {
            user.is_some_and(|u| crate::store::is_admin(&u.roles) && !u.disabled)
        };
        let mut state = enabled_admin(self.user(name).await?);
        for _ in 0..8 {
            self.sync_admin(name, state).await?;
            let now = enabled_admin(self.user(name).await?);
            if now == state {
                return Ok(());
            }
            state = now;
        }
        Ok(())
    }

    /// A change to a user record under the last-admin guard. The record lives in the user's
    /// slot and the admin set in its own, so the guard comes first (a reservation: the name
    /// leaves the set unless it is the last), then the record, then the set is written from
    /// what the record now says (`sync_admin_with_record`). A failure half-way leaves the set with fewer admins than the
    /// records: the guard is then stricter, never looser, until the user's next change.
    async fn guarded_change(
        &self,
        name: &str,
        may_remove_admin: bool,
        protect_last_admin: bool,
        invocation: redis::ScriptInvocation<'_>,
        tag: &str,
    ) -> Result<GuardedChange, StoreError> {
        if may_remove_admin && !self.release_admin(name, protect_last_admin).await? {
            return Ok(GuardedChange::LastAdmin);
        }
        let outcome: Result<i64, StoreError> = self
            .run(|mut conn| async move { invocation.invoke_async(&mut conn).await })
            .await;
        self.fence(outcome.is_ok()).await;
        self.evict_user(tag);
        match outcome? {
            0 => Ok(GuardedChange::NoSuchUser),
            _ => {
                self.sync_admin_with_record(name).await?;
                Ok(GuardedChange::Done)
            }
        }
    }

    pub async fn set_roles(
        &self,
        name: &str,
        roles: &[String],
        protect_last_admin: bool,
    ) -> Result<GuardedChange, StoreError> {
        let tag = self.user_tag(name).await?;
        let mut invocation = self.scripts.set_roles.key(self.keys.user(&tag));
        invocation
            .key(self.keys.not_before(&tag))
            .arg(name)
            .arg(roles.join(","))
            .arg(self.clock.now())
            .arg(self.policy.marker_secs);
        let demotes = !crate::store::is_admin(roles);
        self.guarded_change(name, demotes, protect_last_admin, invocation, &tag)
            .await
    }

    pub async fn set_disabled(
        &self,
        name: &str,
        disabled: bool,
        protect_last_admin: bool,
    ) -> Result<GuardedChange, StoreError> {
        let tag = self.user_tag(name).await?;
        let mut invocation = self.scripts.set_disabled.key(self.keys.user(&tag));
        invocation
            .key(self.keys.not_before(&tag))
            .arg(name)
            .arg(flag(disabled))
            .arg(self.clock.now())
            .arg(self.policy.marker_secs);
        self.guarded_change(name, disabled, protect_last_admin, invocation, &tag)
            .await
    }

    pub async fn set_password(&self, name: &str, phc: &str) -> Result<bool, StoreError> {
        self.set_user_field(name, "phc", phc).await
    }

    pub async fn note_login(&self, name: &str, at: i64) -> Result<(), StoreError> {
        let tag = self.user_tag(name).await?;
        let mut invocation = self.scripts.note_login.key(self.keys.user(&tag));
        invocation.arg(name).arg(at);
        let before = self
            .run(|mut conn| async move { invocation.invoke_async::<i64>(&mut conn).await })
            .await;
        self.evict_user(&tag);
        let before = before?;
        if before >= 0 {
            // The "recently signed in" index, after the record (another slot).
            let key = self.keys.users_by_login();
            let mut remove = redis::cmd("ZREM");
            remove.arg(&key).arg(names::recent_member(before, name));
            let mut add = redis::cmd("ZADD");
            add.arg(&key).arg(0).arg(names::recent_member(at, name));
            self.follow_up("recent sign-ins", vec![vec![remove, add]])
                .await;
        }
        Ok(())
    }

    /// `sessiond migrate`: user records from the key schema before Redis Cluster support move
    /// to their tagged keys (one atomic script per user, on the standalone Redis the old
    /// version ran on), then every user is entered in the user list and the admin set again
    /// from their record. Idempotent: run it again after a crash. Sessions from before are not
    /// moved: their cookies carry no tag, so they are refused as unknown (their users sign in
    /// again) and their keys expire on their own.
    pub async fn migrate(&self) -> Result<crate::store::Migration, StoreError> {
        if !matches!(self.source, Source::Standalone(_)) {
            return Err(StoreError::Unsupported(
                "sessiond migrate runs on the standalone Redis the previous version used",
            ));
        }
        let mut report = crate::store::Migration::default();
        let prefix = self.keys.legacy_user_prefix();
        let pattern = format!("{}*", glob_escape(&prefix));
        let mut cursor = 0u64;
        loop {
            let pattern = pattern.clone();
            let (next, keys): (u64, Vec<String>) = self
                .run(|mut conn| async move {
                    redis::cmd("SCAN")
                        .arg(cursor)
                        .arg("MATCH")
                        .arg(pattern)
                        .arg("COUNT")
                        .arg(500)
                        .query_async(&mut conn)
                        .await
                })
                .await?;
            for key in keys {
                let Some(name) = key.strip_prefix(&prefix) else {
                    continue;
                };
                if !names::is_user_name(name) {
                    continue;
                }
                let tag = self.user_tag(name).await?;
                let mut invocation = self.scripts.migrate_user.key(&key);
                invocation.key(self.keys.user(&tag)).arg(name);
                let outcome: i64 = self
                    .run(|mut conn| async move { invocation.invoke_async(&mut conn).await })
                    .await?;
                match outcome {
                    1 => report.moved += 1,
                    -1 => report.collisions.push(name.to_owned()),
                    _ => {}
                }
            }
            cursor = next;
            if cursor == 0 {
                break;
            }
        }
        let mut after: Option<String> = None;
        loop {
            let page = self.next_user_page(&mut after).await?;
            if page.is_empty() {
                break;
            }
            for name in &page {
                if let Some(user) = self.index_user(name).await? {
                    self.sync_admin(name, crate::store::is_admin(&user.roles) && !user.disabled)
                        .await?;
                    report.indexed += 1;
                }
            }
        }
        let done_key = self.keys.users_tagged();
        self.run(|mut conn| async move { conn.set::<_, _, ()>(done_key, 1).await })
            .await?;
        self.fence(true).await;
        if let Some(near) = &self.near {
            near.clear();
        }
        Ok(report)
    }

    /// `migrate`, unless it has run on this store already; nothing on a cluster or behind
    /// Sentinel, which the previous key schema never ran on. What every start does first, so
    /// an upgraded deployment's users can sign in before anyone runs `sessiond migrate`.
    pub async fn migrate_once(&self) -> Result<Option<crate::store::Migration>, StoreError> {
        if !matches!(self.source, Source::Standalone(_)) {
            return Ok(None);
        }
        let done_key = self.keys.users_tagged();
        let done: bool = self
            .run(|mut conn| async move { conn.exists(done_key).await })
            .await?;
        if done {
            return Ok(None);
        }
        self.migrate().await.map(Some)
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
            let page = self.next_user_page(&mut after).await?;
            if page.is_empty() {
                break;
            }
            // Each user's record is read, then their entries written (idempotent: a user deleted
            // meanwhile is skipped, one entered twice is entered once); 16 in flight.
            let results: Vec<Result<Option<UserRecord>, StoreError>> =
                futures_util::stream::iter(&page)
                    .map(|name| self.index_user(name))
                    .buffer_unordered(16)
                    .collect()
                    .await;
            for result in results {
                result?;
            }
            indexed += page.len() as u64;
        }
        self.run(|mut conn| async move { conn.set::<_, _, ()>(done_key, 1).await })
            .await?;
        Ok(indexed)
    }

    /// Enters one existing user in the name-substring and order indexes, from their record;
    /// the record it read, `None` when there is no such user.
    async fn index_user(&self, name: &str) -> Result<Option<UserRecord>, StoreError> {
        let Some(user) = self.user(name).await? else {
            return Ok(None);
        };
        self.run_groups(index_commands(
            &self.keys,
            name,
            user.created,
            user.last_login,
        ))
        .await?;
        Ok(Some(user))
    }

    /// The next page of every user name, in name order, after `after` (which moves on).
    async fn next_user_page(&self, after: &mut Option<String>) -> Result<Vec<String>, StoreError> {
        let page = self
            .lex_page(self.keys.users(), after.as_deref(), 500)
            .await?;
        if let Some(last) = page.last() {
            *after = Some(last.clone());
        }
        Ok(page)
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
        let tag = self.user_tag(name).await?;
        if !self.release_admin(name, protect_last_admin).await? {
            return Ok(GuardedChange::LastAdmin);
        }
        let mut invocation = self.scripts.delete_user.key(self.keys.user(&tag));
        invocation
            .key(self.keys.not_before(&tag))
            .arg(name)
            .arg(self.clock.now())
            .arg(self.policy.marker_secs);
        let outcome: Result<Option<(i64, i64)>, StoreError> = self
            .run(|mut conn| async move { invocation.invoke_async(&mut conn).await })
            .await;
        self.fence(outcome.is_ok()).await;
        self.evict_user(&tag);
        let Some((created, last_login)) = outcome? else {
            return Ok(GuardedChange::NoSuchUser);
        };
        // Out of the user list, after the record (other slots): a failure leaves a name listed
        // whose record is gone, which the list skips.
        let mut groups = Vec::new();
        for (key, member) in [
            (self.keys.users(), name.to_owned()),
            (
                self.keys.users_newest(),
                names::recent_member(created, name),
            ),
            (
                self.keys.users_by_login(),
                names::recent_member(last_login, name),
            ),
        ] {
            let mut remove = redis::cmd("ZREM");
            remove.arg(key).arg(member);
            groups.push(vec![remove]);
        }
        let mut remove = redis::cmd("ZREM");
        remove
            .arg(self.keys.user_suffixes())
            .arg(names::members(name));
        groups.push(vec![remove]);
        self.follow_up("user list", groups).await;
        Ok(GuardedChange::Done)
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
        let tags = self.tags().await?;
        // Each user's record and index are in the user's slot: one group per user.
        let groups = names
            .iter()
            .map(|name| {
                let tag = tags.tag(name);
                let mut get = redis::cmd("HMGET");
                get.arg(self.keys.user(&tag)).arg(&[
                    "roles",
                    "disabled",
                    "created",
                    LAST_LOGIN_FIELD,
                    "name",
                ]);
                let mut count = redis::cmd("ZCOUNT");
                count
                    .arg(self.keys.user_sessions(&tag))
                    .arg(now + 1)
                    .arg("+inf");
                vec![get, count]
            })
            .collect();
        let rows = self.run_groups(groups).await?;
        let mut items = Vec::with_capacity(names.len());
        for (name, pair) in names.iter().zip(rows.chunks_exact(2)) {
            let fields: Vec<Option<String>> =
                redis::from_redis_value_ref(&pair[0]).map_err(redis::RedisError::from)?;
            let live_sessions: u64 =
                redis::from_redis_value_ref(&pair[1]).map_err(redis::RedisError::from)?;
            if fields.get(4).cloned().flatten().as_deref() != Some(name) {
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
}

/// A user's entries in the name, name-substring and order indexes: one group per index key
/// (each its own slot on a cluster).
fn index_commands(keys: &Keys, name: &str, created: i64, last_login: i64) -> Vec<Vec<redis::Cmd>> {
    let mut add_name = redis::cmd("ZADD");
    add_name.arg(keys.users()).arg(0).arg(name);
    let mut add_suffixes = redis::cmd("ZADD");
    add_suffixes.arg(keys.user_suffixes());
    for member in names::members(name) {
        add_suffixes.arg(0).arg(member);
    }
    let mut add_newest = redis::cmd("ZADD");
    add_newest
        .arg(keys.users_newest())
        .arg(0)
        .arg(names::recent_member(created, name));
    let mut add_login = redis::cmd("ZADD");
    add_login
        .arg(keys.users_by_login())
        .arg(0)
        .arg(names::recent_member(last_login, name));
    vec![
        vec![add_name],
        vec![add_suffixes],
        vec![add_newest],
        vec![add_login],
    ]
}

/// `text` with SCAN's glob characters escaped.
fn glob_escape(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            escaped.push('\\');
        }
        escaped.push(c);
    }
    escaped
}

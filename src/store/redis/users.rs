//! User records and the user indexes: by name, by any part of a name, newest first, by
//! latest sign-in.

use super::*;

impl RedisStore {
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
            .arg(if crate::store::is_admin(&user.roles) {
                "1"
            } else {
                "0"
            })
            .arg(names::members(&user.name));
        let created: Result<i64, StoreError> = self
            .run(|mut conn| async move { invocation.invoke_async(&mut conn).await })
            .await;
        self.evict_user(&user.name);
        let created = created?;
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
        let updated: Result<i64, StoreError> = self
            .run(|mut conn| async move { invocation.invoke_async(&mut conn).await })
            .await;
        self.fence(updated.is_ok()).await;
        self.evict_user(name);
        let updated = updated?;
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
            .arg(flag(crate::store::is_admin(roles)))
            .arg(flag(protect_last_admin))
            .arg(self.clock.now())
            .arg(self.policy.marker_secs);
        let outcome: Result<i64, StoreError> = self
            .run(|mut conn| async move { invocation.invoke_async(&mut conn).await })
            .await;
        self.fence(outcome.is_ok()).await;
        self.evict_user(name);
        let outcome = outcome?;
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
        let outcome: Result<i64, StoreError> = self
            .run(|mut conn| async move { invocation.invoke_async(&mut conn).await })
            .await;
        self.fence(outcome.is_ok()).await;
        self.evict_user(name);
        let outcome = outcome?;
        Ok(guarded(outcome))
    }

    pub async fn set_password(&self, name: &str, phc: &str) -> Result<bool, StoreError> {
        self.set_user_field(name, "phc", phc).await
    }

    pub async fn note_login(&self, name: &str, at: i64) -> Result<(), StoreError> {
        let mut invocation = self.scripts.note_login.key(self.keys.user(name));
        invocation.key(self.keys.users_by_login()).arg(name).arg(at);
        let result = self
            .run(|mut conn| async move { invocation.invoke_async::<i64>(&mut conn).await })
            .await
            .map(|_| ());
        self.evict_user(name);
        result
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
        let outcome: Result<i64, StoreError> = self
            .run(|mut conn| async move { invocation.invoke_async(&mut conn).await })
            .await;
        self.fence(outcome.is_ok()).await;
        self.evict_user(name);
        let outcome = outcome?;
        Ok(guarded(outcome))
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
}

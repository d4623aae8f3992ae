//! The embedded store: everything in one process, gone on restart. It follows the same rules
//! as the Redis store so the behaviour suite can hold both to one standard.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Mutex, MutexGuard};

use super::keys::UserTags;
use super::{
    ACTION_AUDIT_CAP, AUDIT_CAP, AuditEntry, AuditFilter, CREATED_FIELD, Counter, DEVICE_FIELD,
    Ending, GuardedChange, HANDLE_FIELD, IP_FIELD, Page, REFRESH_FIELD, ROLES_FIELD,
    RefreshOutcome, SEEN_FIELD, STATS_RETENTION_SECS, SessionInfo, SessionPolicy, Stat, StoreError,
    UID_FIELD, UserOrder, UserRecord, UserSummary, is_admin, minute_of, names,
};
use crate::clock::Clock;

pub struct MemoryStore {
    tags: UserTags,
    clock: Clock,
    policy: SessionPolicy,
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    sessions: HashMap<String, MemorySession>,
    /// user -> (sid_hash -> expires at): the per-user index.
    user_sessions: HashMap<String, HashMap<String, i64>>,
    /// (created, sequence, sid_hash) of authenticated sessions, oldest first.
    recent: VecDeque<(i64, u64, String)>,
    sequence: u64,
    users: BTreeMap<String, UserRecord>,
    counters: HashMap<String, (u64, i64)>,
    secrets: HashMap<String, String>,
    /// One-time messages: token hash -> (value, until when).
    flashes: HashMap<String, (String, i64)>,
    audit: VecDeque<AuditEntry>,
    stats: HashMap<(&'static str, i64), u64>,
    /// JWT deny-list: refresh family (handle) -> until when.
    denied: HashMap<String, i64>,
    /// Why sessions ended early: sid_hash -> (ending, until when).
    gone: HashMap<String, (Ending, i64)>,
    /// JWT per-user "not before": user -> (second, until when).
    not_before: HashMap<String, (i64, i64)>,
}

struct MemorySession {
    uid: Option<String>,
    fields: HashMap<String, String>,
    created: i64,
    seen: i64,
}

impl MemorySession {
    fn info(&self, handle: &str) -> Option<SessionInfo> {
        let text = |field: &str| {
            self.fields
                .get(field)
                .and_then(|raw| serde_json::from_str::<String>(raw).ok())
                .unwrap_or_default()
        };
        Some(SessionInfo {
            handle: handle.to_owned(),
            user: self.uid.clone()?,
            created: self.created,
            last_seen: self.seen,
            ip: text(IP_FIELD),
            device: text(DEVICE_FIELD),
        })
    }
}

impl MemoryStore {
    pub fn new(clock: Clock, policy: SessionPolicy) -> MemoryStore {
        MemoryStore {
            clock,
            policy,
            inner: Mutex::new(Inner::default()),
            // Nothing outlives the process here, so the tags' key need not either.
            tags: UserTags::new(&rand::random::<[u8; 32]>()),
        }
    }

    pub async fn user_tag(&self, user: &str) -> Result<String, StoreError> {
        Ok(self.tags.tag(user))
    }

    // A panic while holding the lock cannot leave the maps half-written in a way later calls
    // would trip over (every mutation is a single insert/remove), so a poisoned lock is reused.
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub async fn ping(&self) -> Result<(), StoreError> {
        Ok(())
    }

    pub async fn durability_warnings(&self) -> Result<Vec<String>, StoreError> {
        Ok(vec![
            "The embedded memory store keeps sessions and users in this process only: a restart \
             signs everyone out and loses every user. Use Redis (store.url) beyond a trial."
                .to_owned(),
        ])
    }

    pub async fn load_session(
        &self,
        sid_hash: &str,
    ) -> Result<Option<HashMap<String, String>>, StoreError> {
        let now = self.clock.now();
        let mut inner = self.lock();
        let Some(session) = inner.sessions.get(sid_hash) else {
            return Ok(None);
        };
        let expires = self.policy.expires_at(session.created, session.seen);
        let owner = session.uid.clone();
        let roles = match &owner {
            Some(uid) => match inner.users.get(uid) {
                Some(user) if !user.disabled => Some(user.roles.join(",")),
                _ => None,
            },
            None => Some(String::new()),
        };
        let (Some(roles), true) = (roles, now < expires) else {
            inner.remove_session(sid_hash);
            return Ok(None);
        };
        if now - session.seen >= self.policy.touch_secs {
            let created = session.created;
            if let Some(session) = inner.sessions.get_mut(sid_hash) {
                session.seen = now;
            }
            if let Some(uid) = &owner {
                inner
                    .user_sessions
                    .entry(uid.clone())
                    .or_default()
                    .insert(sid_hash.to_owned(), self.policy.expires_at(created, now));
            }
        }
        let Some(session) = inner.sessions.get(sid_hash) else {
            return Ok(None);
        };
        let mut state = session.fields.clone();
        state.insert(CREATED_FIELD.into(), session.created.to_string());
        state.insert(SEEN_FIELD.into(), session.seen.to_string());
        state.insert(ROLES_FIELD.into(), roles);
        state.insert(HANDLE_FIELD.into(), sid_hash.to_owned());
        Ok(Some(state))
    }

    pub async fn create_session(
        &self,
        sid_hash: &str,
        uid: Option<&str>,
        fields: Vec<(String, String)>,
    ) -> Result<(), StoreError> {
        let now = self.clock.now();
        let mut inner = self.lock();
        if let Some(uid) = uid {
            let index = inner.user_sessions.entry(uid.to_owned()).or_default();
            index.retain(|_, expires| *expires > now);
            index.insert(sid_hash.to_owned(), self.policy.expires_at(now, now));
            inner.sequence += 1;
            let sequence = inner.sequence;
            inner.recent.push_back((now, sequence, sid_hash.to_owned()));
            let oldest_live = now - self.policy.absolute_secs;
            while inner
                .recent
                .front()
                .is_some_and(|(c, _, _)| *c <= oldest_live)
            {
                inner.recent.pop_front();
            }
        }
        inner.sessions.insert(
            sid_hash.to_owned(),
            MemorySession {
                uid: uid.map(str::to_owned),
                fields: fields.into_iter().collect(),
                created: now,
                seen: now,
            },
        );
        Ok(())
    }

    pub async fn update_session(
        &self,
        sid_hash: &str,
        fields: Vec<(String, String)>,
    ) -> Result<(), StoreError> {
        let mut inner = self.lock();
        if let Some(session) = inner.sessions.get_mut(sid_hash) {
            let uid = session.fields.remove(UID_FIELD);
            session.fields = fields.into_iter().collect();
            // The owner is fixed when the session is created; only a new session changes it.
            session.fields.remove(UID_FIELD);
            if let Some(uid) = uid {
                session.fields.insert(UID_FIELD.into(), uid);
            }
        }
        Ok(())
    }

    pub async fn delete_session(&self, sid_hash: &str) -> Result<(), StoreError> {
        let now = self.clock.now();
        let mut inner = self.lock();
        let removed = inner.remove_session(sid_hash);
        self.deny(&mut inner, sid_hash, removed.as_ref(), now);
        self.note_ending(
            &mut inner,
            sid_hash,
            removed.as_ref(),
            Ending::SignedOut,
            now,
        );
        Ok(())
    }

    /// Remembers why an authenticated session ended, for as long as it had left to live.
    fn note_ending(
        &self,
        inner: &mut Inner,
        sid_hash: &str,
        removed: Option<&MemorySession>,
        ending: Ending,
        now: i64,
    ) {
        let Some(session) = removed.filter(|s| s.uid.is_some()) else {
            return;
        };
        let until = self.policy.expires_at(session.created, session.seen);
        if until > now {
            if inner.gone.len() >= 4096 {
                inner.gone.retain(|_, (_, until)| *until > now);
            }
            inner.gone.insert(sid_hash.to_owned(), (ending, until));
        }
    }

    pub async fn session_ending(&self, sid_hash: &str) -> Result<Option<Ending>, StoreError> {
        let now = self.clock.now();
        Ok(self
            .lock()
            .gone
            .get(sid_hash)
            .filter(|(_, until)| *until > now)
            .map(|(ending, _)| *ending))
    }

    /// JWT mode: puts a removed family on the deny-list, refusing every access token minted
    /// for it.
    fn deny(&self, inner: &mut Inner, family: &str, removed: Option<&MemorySession>, now: i64) {
        if self.policy.marker_secs > 0 && removed.is_some_and(|s| s.uid.is_some()) {
            inner
                .denied
                .insert(family.to_owned(), now + self.policy.marker_secs);
        }
    }

    fn mark_not_before(&self, inner: &mut Inner, user: &str, now: i64) {
        if self.policy.marker_secs > 0 {
            inner
                .not_before
                .insert(user.to_owned(), (now, now + self.policy.marker_secs));
        }
    }

    pub async fn rotate_refresh(
        &self,
        family: &str,
        presented_hash: &str,
        new_hash: &str,
    ) -> Result<RefreshOutcome, StoreError> {
        let now = self.clock.now();
        let mut inner = self.lock();
        let Some(session) = inner.sessions.get(family) else {
            return Ok(RefreshOutcome::Gone);
        };
        let Some(uid) = session.uid.clone() else {
            return Ok(RefreshOutcome::Gone);
        };
        let alive = now < self.policy.expires_at(session.created, session.seen);
        let roles = match inner.users.get(&uid) {
            Some(user) if !user.disabled => Some(user.roles.clone()),
            _ => None,
        };
        let (true, Some(roles)) = (alive, roles) else {
            let removed = inner.remove_session(family);
            self.deny(&mut inner, family, removed.as_ref(), now);
            return Ok(RefreshOutcome::Gone);
        };
        let field = |name: &str| session.fields.get(name).cloned().unwrap_or_default();
        if field(REFRESH_FIELD) == presented_hash {
            let auth_at = field(super::AUTH_AT_FIELD).parse().unwrap_or(0);
            let created = session.created;
            if let Some(session) = inner.sessions.get_mut(family) {
                session
                    .fields
                    .insert(REFRESH_FIELD.into(), new_hash.to_owned());
                session
                    .fields
                    .insert("prt".into(), presented_hash.to_owned());
                session.fields.insert("rot".into(), now.to_string());
                session.seen = now;
            }
            inner
                .user_sessions
                .entry(uid.clone())
                .or_default()
                .insert(family.to_owned(), self.policy.expires_at(created, now));
            return Ok(RefreshOutcome::Rotated {
                user: uid,
                roles,
                auth_at,
                created,
            });
        }
        let rotated_at: i64 = field("rot").parse().unwrap_or(0);
        if field("prt") == presented_hash && now - rotated_at <= self.policy.refresh_grace_secs {
            return Ok(RefreshOutcome::Raced);
        }
        let removed = inner.remove_session(family);
        self.deny(&mut inner, family, removed.as_ref(), now);
        self.note_ending(&mut inner, family, removed.as_ref(), Ending::Ended, now);
        Ok(RefreshOutcome::Reused { user: uid })
    }

    pub async fn set_session_field(
        &self,
        sid_hash: &str,
        field: &str,
        value: &str,
    ) -> Result<bool, StoreError> {
        Ok(match self.lock().sessions.get_mut(sid_hash) {
            Some(session) => {
                session.fields.insert(field.to_owned(), value.to_owned());
                true
            }
            None => false,
        })
    }

    pub async fn is_revoked(
        &self,
        family: &str,
        user: &str,
        issued_at: i64,
    ) -> Result<bool, StoreError> {
        let now = self.clock.now();
        let inner = self.lock();
        let denied = inner.denied.get(family).is_some_and(|until| *until > now);
        let before = inner
            .not_before
            .get(user)
            .is_some_and(|(nbf, until)| *until > now && issued_at <= *nbf);
        Ok(denied || before)
    }

    pub async fn revoke_all_for_user(
        &self,
        user: &str,
        keep: Option<&str>,
    ) -> Result<u64, StoreError> {
        let mut inner = self.lock();
        let hashes: Vec<String> = inner
            .user_sessions
            .get(user)
            .map(|index| index.keys().cloned().collect())
            .unwrap_or_default();
        let now = self.clock.now();
        let mut live = 0;
        for hash in hashes.iter().filter(|h| Some(h.as_str()) != keep) {
            let removed = inner.remove_session(hash);
            if removed.is_some() {
                live += 1;
            }
            self.deny(&mut inner, hash, removed.as_ref(), now);
            self.note_ending(&mut inner, hash, removed.as_ref(), Ending::Ended, now);
        }
        if keep.is_none() {
            self.mark_not_before(&mut inner, user, now);
        }
        Ok(live)
    }

    pub async fn revoke_session(&self, user: &str, handle: &str) -> Result<bool, StoreError> {
        let mut inner = self.lock();
        let owned = inner
            .sessions
            .get(handle)
            .is_some_and(|s| s.uid.as_deref() == Some(user));
        if owned {
            let now = self.clock.now();
            let removed = inner.remove_session(handle);
            self.deny(&mut inner, handle, removed.as_ref(), now);
            self.note_ending(&mut inner, handle, removed.as_ref(), Ending::Ended, now);
        }
        Ok(owned)
    }

    pub async fn user_session_hashes(&self, user: &str) -> Result<Vec<String>, StoreError> {
        let now = self.clock.now();
        let mut inner = self.lock();
        let Inner {
            user_sessions,
            sessions,
            ..
        } = &mut *inner;
        let Some(index) = user_sessions.get_mut(user) else {
            return Ok(Vec::new());
        };
        index.retain(|hash, expires| *expires > now && sessions.contains_key(hash));
        let mut hashes: Vec<(String, i64)> = index.iter().map(|(h, e)| (h.clone(), *e)).collect();
        hashes.sort_by_key(|(_, expires)| std::cmp::Reverse(*expires));
        Ok(hashes.into_iter().map(|(h, _)| h).collect())
    }

    pub async fn session_infos(
        &self,
        hashes: &[String],
    ) -> Result<Vec<Option<SessionInfo>>, StoreError> {
        let now = self.clock.now();
        let inner = self.lock();
        Ok(hashes
            .iter()
            .map(|hash| {
                inner
                    .sessions
                    .get(hash)
                    .filter(|s| now < self.policy.expires_at(s.created, s.seen))
                    .and_then(|s| s.info(hash))
            })
            .collect())
    }

    pub async fn recent_sessions(
        &self,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Page<SessionInfo>, StoreError> {
        let now = self.clock.now();
        let inner = self.lock();
        let after: Option<u64> = after.and_then(sequence_of);
        let mut live = inner
            .recent
            .iter()
            .rev()
            .filter(|(_, sequence, _)| after.is_none_or(|a| *sequence < a))
            .filter_map(|(_, sequence, hash)| {
                let session = inner.sessions.get(hash)?;
                (now < self.policy.expires_at(session.created, session.seen))
                    .then(|| session.info(hash))
                    .flatten()
                    .map(|info| (*sequence, info))
            });
        let page: Vec<(u64, SessionInfo)> = live.by_ref().take(limit).collect();
        let next = if live.next().is_some() {
            page.last()
                .map(|(sequence, info)| stream_id(info.created, *sequence))
        } else {
            None
        };
        Ok(Page {
            items: page.into_iter().map(|(_, info)| info).collect(),
            next,
        })
    }

    pub async fn active_sessions(&self) -> Result<u64, StoreError> {
        let now = self.clock.now();
        let inner = self.lock();
        Ok(inner
            .sessions
            .values()
            .filter(|s| s.uid.is_some() && now < self.policy.expires_at(s.created, s.seen))
            .count() as u64)
    }

    pub async fn user(&self, name: &str) -> Result<Option<UserRecord>, StoreError> {
        Ok(self.lock().users.get(name).cloned())
    }

    pub async fn create_user(&self, user: &UserRecord) -> Result<bool, StoreError> {
        let mut inner = self.lock();
        if inner.users.contains_key(&user.name) {
            return Ok(false);
        }
        inner.users.insert(user.name.clone(), user.clone());
        Ok(true)
    }

    /// The same listing as Redis's, cursors included: by name for everyone; for a search,
    /// the matching names ordered by their name-index member (see `names.rs`), found here by
    /// looking at every name (this store is for trying the app, not for a million users).
    pub async fn list_users(
        &self,
        text: &str,
        order: UserOrder,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Page<UserSummary>, StoreError> {
        let now = self.clock.now();
        let inner = self.lock();
        let mut rows: Vec<(String, &UserRecord)> = if text.is_empty() {
            let mut all: Vec<(String, &UserRecord)> = inner
                .users
                .iter()
                .map(|(name, user)| {
                    let cursor = match order {
                        UserOrder::Name => name.clone(),
                        UserOrder::Newest => names::recent_member(user.created, name),
                        UserOrder::RecentLogin => names::recent_member(user.last_login, name),
                    };
                    (cursor, user)
                })
                .filter(|(cursor, _)| after.is_none_or(|a| cursor.as_str() > a))
                .collect();
            all.sort_by(|a, b| a.0.cmp(&b.0));
            all.truncate(limit + 1);
            all
        } else {
            let mut found: Vec<(String, &UserRecord)> = inner
                .users
                .iter()
                .filter_map(|(name, user)| {
                    let at = name.find(text)?;
                    Some((format!("{}:{name}", &name[at..]), user))
                })
                .filter(|(member, _)| after.is_none_or(|a| member.as_str() > a))
                .collect();
            found.sort_by(|a, b| a.0.cmp(&b.0));
            found.truncate(limit + 1);
            found
        };
        let more = rows.len() > limit;
        rows.truncate(limit);
        let next = if more {
            rows.last().map(|(cursor, _)| cursor.clone())
        } else {
            None
        };
        let items = rows
            .into_iter()
            .map(|(_, user)| UserSummary {
                name: user.name.clone(),
                roles: user.roles.clone(),
                disabled: user.disabled,
                created: user.created,
                last_login: user.last_login,
                live_sessions: inner
                    .user_sessions
                    .get(&user.name)
                    .map(|index| {
                        index
                            .iter()
                            .filter(|(h, e)| **e > now && inner.sessions.contains_key(*h))
                            .count() as u64
                    })
                    .unwrap_or(0),
            })
            .collect();
        Ok(Page { items, next })
    }

    fn enabled_admins(inner: &Inner) -> usize {
        inner
            .users
            .values()
            .filter(|u| !u.disabled && is_admin(&u.roles))
            .count()
    }

    pub async fn set_roles(
        &self,
        name: &str,
        roles: &[String],
        protect_last_admin: bool,
    ) -> Result<GuardedChange, StoreError> {
        let mut inner = self.lock();
        let admins = Self::enabled_admins(&inner);
        let Some(user) = inner.users.get_mut(name) else {
            return Ok(GuardedChange::NoSuchUser);
        };
        let loses_admin = !user.disabled && is_admin(&user.roles) && !is_admin(roles);
        if protect_last_admin && loses_admin && admins <= 1 {
            return Ok(GuardedChange::LastAdmin);
        }
        user.roles = roles.to_vec();
        self.mark_not_before(&mut inner, name, self.clock.now());
        Ok(GuardedChange::Done)
    }

    pub async fn set_disabled(
        &self,
        name: &str,
        disabled: bool,
        protect_last_admin: bool,
    ) -> Result<GuardedChange, StoreError> {
        let mut inner = self.lock();
        let admins = Self::enabled_admins(&inner);
        let Some(user) = inner.users.get_mut(name) else {
            return Ok(GuardedChange::NoSuchUser);
        };
        let loses_admin = disabled && !user.disabled && is_admin(&user.roles);
        if protect_last_admin && loses_admin && admins <= 1 {
            return Ok(GuardedChange::LastAdmin);
        }
        user.disabled = disabled;
        self.mark_not_before(&mut inner, name, self.clock.now());
        Ok(GuardedChange::Done)
    }

    pub async fn delete_user(
        &self,
        name: &str,
        protect_last_admin: bool,
    ) -> Result<GuardedChange, StoreError> {
        let mut inner = self.lock();
        let admins = Self::enabled_admins(&inner);
        let Some(user) = inner.users.get(name) else {
            return Ok(GuardedChange::NoSuchUser);
        };
        if protect_last_admin && !user.disabled && is_admin(&user.roles) && admins <= 1 {
            return Ok(GuardedChange::LastAdmin);
        }
        inner.users.remove(name);
        self.mark_not_before(&mut inner, name, self.clock.now());
        Ok(GuardedChange::Done)
    }

    pub async fn set_password(&self, name: &str, phc: &str) -> Result<bool, StoreError> {
        Ok(match self.lock().users.get_mut(name) {
            Some(user) => {
                user.phc = phc.to_owned();
                true
            }
            None => false,
        })
    }

    pub async fn note_login(&self, name: &str, at: i64) -> Result<(), StoreError> {
        if let Some(user) = self.lock().users.get_mut(name) {
            user.last_login = at;
        }
        Ok(())
    }

    pub async fn user_count(&self) -> Result<u64, StoreError> {
        Ok(self.lock().users.len() as u64)
    }

    pub async fn counters(&self, keys: &[String]) -> Result<Vec<Counter>, StoreError> {
        let now = self.clock.now();
        let inner = self.lock();
        Ok(keys
            .iter()
            .map(|key| match inner.counters.get(key) {
                Some((count, resets_at)) if *resets_at > now => Counter {
                    count: *count,
                    resets_in_secs: resets_at - now,
                },
                _ => Counter {
                    count: 0,
                    resets_in_secs: 0,
                },
            })
            .collect())
    }

    pub async fn bump_counters(&self, keys: &[String], window_secs: i64) -> Result<(), StoreError> {
        let now = self.clock.now();
        let mut inner = self.lock();
        inner.counters.retain(|_, (_, resets_at)| *resets_at > now);
        for key in keys {
            let entry = inner
                .counters
                .entry(key.clone())
                .or_insert((0, now + window_secs));
            entry.0 += 1;
        }
        Ok(())
    }

    pub async fn reset_counters(&self, keys: &[String]) -> Result<(), StoreError> {
        let mut inner = self.lock();
        for key in keys {
            inner.counters.remove(key);
        }
        Ok(())
    }

    pub async fn put_flash(
        &self,
        token_hash: &str,
        value: &str,
        ttl_secs: u64,
    ) -> Result<(), StoreError> {
        let now = self.clock.now();
        let mut inner = self.lock();
        // Expired ones go on every write: the map holds at most a few minutes of forms.
        inner.flashes.retain(|_, (_, until)| *until > now);
        inner.flashes.insert(
            token_hash.to_owned(),
            (value.to_owned(), now + ttl_secs.max(1) as i64),
        );
        Ok(())
    }

    pub async fn take_flash(&self, token_hash: &str) -> Result<Option<String>, StoreError> {
        let now = self.clock.now();
        Ok(self
            .lock()
            .flashes
            .remove(token_hash)
            .filter(|(_, until)| *until > now)
            .map(|(value, _)| value))
    }

    pub async fn shared_secret(&self, name: &str, candidate: &str) -> Result<String, StoreError> {
        Ok(self
            .lock()
            .secrets
            .entry(name.to_owned())
            .or_insert_with(|| candidate.to_owned())
            .clone())
    }

    pub async fn record(
        &self,
        entry: &AuditEntry,
        stat: Option<(Stat, u64)>,
    ) -> Result<(), StoreError> {
        let now = self.clock.now();
        let mut inner = self.lock();
        inner.sequence += 1;
        let mut entry = entry.clone();
        entry.id = stream_id(now, inner.sequence);
        inner.audit.push_back(entry);
        while inner.audit.len() > AUDIT_CAP {
            inner.audit.pop_front();
        }
        if let Some((stat, amount)) = stat {
            *inner
                .stats
                .entry((stat.name(), minute_of(now)))
                .or_default() += amount;
            let oldest = minute_of(now - STATS_RETENTION_SECS);
            inner.stats.retain(|(_, minute), _| *minute >= oldest);
        }
        Ok(())
    }

    pub async fn audit(
        &self,
        filter: AuditFilter<'_>,
        before: Option<&str>,
        limit: usize,
    ) -> Result<Page<AuditEntry>, StoreError> {
        let inner = self.lock();
        let before: Option<u64> = before.and_then(sequence_of);
        let mut matching = inner
            .audit
            .iter()
            .rev()
            .filter(|e| filter.user.is_none_or(|u| e.actor == u || e.target == u))
            .filter(|e| filter.action.is_none_or(|a| e.action == a))
            // Redis keeps each action's entries in a stream of their own, capped: so here.
            .take(if filter.user.is_none() && filter.action.is_some() {
                ACTION_AUDIT_CAP
            } else {
                usize::MAX
            })
            .filter(|e| before.is_none_or(|b| sequence_of(&e.id).is_some_and(|id| id < b)));
        let items: Vec<AuditEntry> = matching.by_ref().take(limit).cloned().collect();
        let next = if matching.next().is_some() {
            items.last().map(|e| e.id.clone())
        } else {
            None
        };
        Ok(Page { items, next })
    }

    pub async fn stats(&self, stat: Stat, minutes: usize) -> Result<Vec<u64>, StoreError> {
        let current = minute_of(self.clock.now());
        let inner = self.lock();
        Ok((0..minutes as i64)
            .rev()
            .map(|ago| {
                inner
                    .stats
                    .get(&(stat.name(), current - ago))
                    .copied()
                    .unwrap_or(0)
            })
            .collect())
    }
}

impl Inner {
    fn remove_session(&mut self, sid_hash: &str) -> Option<MemorySession> {
        let session = self.sessions.remove(sid_hash)?;
        if let Some(uid) = &session.uid
            && let Some(index) = self.user_sessions.get_mut(uid)
        {
            index.remove(sid_hash);
        }
        Some(session)
    }
}

/// Cursors look like Redis stream IDs (`<milliseconds>-<sequence>`), so both stores hand out
/// and accept the same shape; here the sequence alone orders entries.
fn stream_id(unix_secs: i64, sequence: u64) -> String {
    format!("{}-{sequence}", unix_secs.max(0) * 1000)
}

fn sequence_of(id: &str) -> Option<u64> {
    id.split_once('-')?.1.parse().ok()
}

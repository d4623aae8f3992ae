//! The embedded store: everything in one process, gone on restart. It follows the same rules
//! as the Redis store so the behaviour suite can hold both to one standard.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Mutex, MutexGuard};

use super::{
    CREATED_FIELD, Counter, ROLES_FIELD, SEEN_FIELD, SessionPolicy, StoreError, UID_FIELD,
    UserRecord,
};
use crate::clock::Clock;

pub struct MemoryStore {
    clock: Clock,
    policy: SessionPolicy,
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    sessions: HashMap<String, MemorySession>,
    /// user -> (sid_hash -> expires at): the per-user index.
    user_sessions: HashMap<String, HashMap<String, i64>>,
    users: BTreeMap<String, UserRecord>,
    counters: HashMap<String, (u64, i64)>,
    secrets: HashMap<String, String>,
}

struct MemorySession {
    uid: Option<String>,
    fields: HashMap<String, String>,
    created: i64,
    seen: i64,
}

impl MemoryStore {
    pub fn new(clock: Clock, policy: SessionPolicy) -> MemoryStore {
        MemoryStore {
            clock,
            policy,
            inner: Mutex::new(Inner::default()),
        }
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
        let touch = now - session.seen >= self.policy.touch_secs;
        if touch {
            let new_expiry = self.policy.expires_at(session.created, now);
            if let Some(session) = inner.sessions.get_mut(sid_hash) {
                session.seen = now;
            }
            if let Some(uid) = &owner {
                inner
                    .user_sessions
                    .entry(uid.clone())
                    .or_default()
                    .insert(sid_hash.to_owned(), new_expiry);
            }
        }
        let Some(session) = inner.sessions.get(sid_hash) else {
            return Ok(None);
        };
        let mut state = session.fields.clone();
        state.insert(CREATED_FIELD.into(), session.created.to_string());
        state.insert(SEEN_FIELD.into(), session.seen.to_string());
        state.insert(ROLES_FIELD.into(), roles);
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
        self.lock().remove_session(sid_hash);
        Ok(())
    }

    pub async fn revoke_all_for_user(&self, user: &str) -> Result<u64, StoreError> {
        let mut inner = self.lock();
        let hashes = inner.user_sessions.remove(user).unwrap_or_default();
        let mut live = 0;
        for hash in hashes.keys() {
            if inner.sessions.remove(hash).is_some() {
                live += 1;
            }
        }
        Ok(live)
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

    pub async fn set_roles(&self, name: &str, roles: &[String]) -> Result<bool, StoreError> {
        Ok(match self.lock().users.get_mut(name) {
            Some(user) => {
                user.roles = roles.to_vec();
                true
            }
            None => false,
        })
    }

    pub async fn set_disabled(&self, name: &str, disabled: bool) -> Result<bool, StoreError> {
        Ok(match self.lock().users.get_mut(name) {
            Some(user) => {
                user.disabled = disabled;
                true
            }
            None => false,
        })
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

    pub async fn shared_secret(&self, name: &str, candidate: &str) -> Result<String, StoreError> {
        Ok(self
            .lock()
            .secrets
            .entry(name.to_owned())
            .or_insert_with(|| candidate.to_owned())
            .clone())
    }
}

impl Inner {
    fn remove_session(&mut self, sid_hash: &str) {
        if let Some(session) = self.sessions.remove(sid_hash)
            && let Some(uid) = session.uid
            && let Some(index) = self.user_sessions.get_mut(&uid)
        {
            index.remove(sid_hash);
        }
    }
}

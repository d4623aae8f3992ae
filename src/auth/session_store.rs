//! Our `actix_session::SessionStore`: actix-session handles the cookie (signing, attributes,
//! renewal on login, removal on logout); this type decides what an ID is and where it lives.

use std::sync::Arc;

use actix_session::storage::{LoadError, SaveError, SessionKey, SessionStore, UpdateError};
use actix_web::cookie::time::Duration;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};

use super::random::{RandomError, random_bytes, random_token};
use super::session_layer::{note_failure, note_missing};
use crate::store::keys::{TAG_LEN, random_tag};
use crate::store::{Store, UID_FIELD};

type SessionState = std::collections::HashMap<String, String>;

/// A session ID is its owner's tag (see `store::keys`: 64 keyed bits naming the user's Redis
/// slot, revealing nothing) followed by 32 bytes from the OS CSPRNG, all base64url without
/// padding: 11 + 43 characters.
pub const SESSION_ID_LEN: usize = TAG_LEN + 43;

#[derive(Clone)]
pub struct SessionBackend {
    store: Arc<Store>,
}

impl SessionBackend {
    pub fn new(store: Arc<Store>) -> SessionBackend {
        SessionBackend { store }
    }
}

/// What Redis stores in place of the ID, the session's *handle*: its tag, a dot, and base64url
/// of the first 128 bits of SHA-256(id). The tag routes the handle to its user's slot; the
/// hash means a leaked key names no usable cookie.
pub fn session_id_hash(session_id: &str) -> String {
    let id = session_id.strip_prefix(PRE_LOGIN).unwrap_or(session_id);
    let tag = id.get(..TAG_LEN).unwrap_or("!");
    let digest = URL_SAFE_NO_PAD.encode(&Sha256::digest(session_id.as_bytes())[..16]);
    format!("{tag}.{digest}")
}

/// Marks the ID of a pre-login session (the login form's CSRF token and nothing else), so a
/// missing one is never reported as "your session expired" to someone who never signed in.
const PRE_LOGIN: &str = "p.";

/// The hash of a presented ID, or `None` when it cannot be one we issued; such a value is
/// treated as no session at all, without asking the store.
fn presented_hash(key: &SessionKey) -> Option<String> {
    let id: &str = key.as_ref();
    let random = id.strip_prefix(PRE_LOGIN).unwrap_or(id);
    let well_formed = random.len() == SESSION_ID_LEN
        && random
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    well_formed.then(|| session_id_hash(id))
}

fn is_pre_login(key: &SessionKey) -> bool {
    key.as_ref().starts_with(PRE_LOGIN)
}

/// The fields the application owns; `_`-prefixed ones are computed or managed by the store.
fn application_fields(state: SessionState) -> Vec<(String, String)> {
    state
        .into_iter()
        .filter(|(key, _)| !key.starts_with('_'))
        .collect()
}

/// A new session ID for a session of the user whose tag is `tag`.
pub fn new_session_id(tag: &str) -> Result<String, RandomError> {
    Ok(format!("{tag}{}", random_token()?))
}

/// The tag of a session that has no user yet: random, so pre-login sessions spread over the
/// cluster like everything else.
pub fn anonymous_tag() -> Result<String, RandomError> {
    random_bytes::<8>().map(random_tag)
}

/// Stores a new session with ID `id` holding `state` (its owner, if any, from the `uid`
/// field): what a login's first save does. The benchmark creates its sessions here too.
pub async fn store_new_session(
    store: &Store,
    id: &str,
    state: SessionState,
) -> Result<(), crate::store::StoreError> {
    let uid = crate::store::session_owner(&state);
    store
        .create_session(
            &session_id_hash(id),
            uid.as_deref(),
            application_fields(state),
        )
        .await
}

impl SessionStore for SessionBackend {
    async fn load(&self, key: &SessionKey) -> Result<Option<SessionState>, LoadError> {
        let Some(hash) = presented_hash(key) else {
            return Ok(None);
        };
        let state = self
            .store
            .load_session(&hash)
            .await
            .map_err(|e| LoadError::Other(note_failure(e)))?;
        if state.is_none() && !is_pre_login(key) {
            note_missing(hash);
        }
        Ok(state)
    }

    async fn save(&self, state: SessionState, _ttl: &Duration) -> Result<SessionKey, SaveError> {
        let tag = match crate::store::session_owner(&state) {
            Some(uid) => self
                .store
                .user_tag(&uid)
                .await
                .map_err(|e| SaveError::Other(note_failure(e)))?,
            None => anonymous_tag().map_err(|e| SaveError::Other(e.into()))?,
        };
        let mut id = new_session_id(&tag).map_err(|e| SaveError::Other(e.into()))?;
        if !state.contains_key(UID_FIELD) {
            id.insert_str(0, PRE_LOGIN);
        }
        store_new_session(&self.store, &id, state)
            .await
            .map_err(|e| SaveError::Other(note_failure(e)))?;
        SessionKey::try_from(id).map_err(|e| SaveError::Other(e.into()))
    }

    async fn update(
        &self,
        key: SessionKey,
        state: SessionState,
        _ttl: &Duration,
    ) -> Result<SessionKey, UpdateError> {
        if let Some(hash) = presented_hash(&key) {
            self.store
                .update_session(&hash, application_fields(state))
                .await
                .map_err(|e| UpdateError::Other(note_failure(e)))?;
        }
        Ok(key)
    }

    async fn update_ttl(&self, _key: &SessionKey, _ttl: &Duration) -> Result<(), anyhow::Error> {
        // Expiry slides inside `load` (one round trip); the middleware is configured never to
        // call this, and if it did there would be nothing left to do.
        Ok(())
    }

    async fn delete(&self, key: &SessionKey) -> Result<(), anyhow::Error> {
        if let Some(hash) = presented_hash(key) {
            self.store
                .delete_session(&hash)
                .await
                .map_err(note_failure)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_ids_are_a_tag_and_256_random_bits_in_base64url() {
        let a = new_session_id("annAAAAAAAA").unwrap();
        let b = new_session_id("annAAAAAAAA").unwrap();
        assert_eq!(a.len(), SESSION_ID_LEN);
        assert_ne!(a, b);
        assert!(a.starts_with("annAAAAAAAA"));
        assert_eq!(URL_SAFE_NO_PAD.decode(&a[TAG_LEN..]).unwrap().len(), 32);
        assert_ne!(anonymous_tag().unwrap(), anonymous_tag().unwrap());
    }

    #[test]
    fn a_handle_carries_the_tag_and_a_hash_of_the_whole_id() {
        let id = new_session_id("annAAAAAAAA").unwrap();
        let handle = session_id_hash(&id);
        let pre = session_id_hash(&format!("p.{id}"));
        assert!(handle.starts_with("annAAAAAAAA."), "{handle}");
        assert!(pre.starts_with("annAAAAAAAA."), "{pre}");
        assert_ne!(handle, pre, "the prefix is part of what is hashed");
        assert_eq!(crate::store::keys::handle_tag(&handle), Some("annAAAAAAAA"));
    }

    #[test]
    fn only_well_formed_ids_reach_the_store() {
        let id = new_session_id("annAAAAAAAA").unwrap();
        let key = SessionKey::try_from(id.clone()).unwrap();
        assert_eq!(presented_hash(&key), Some(session_id_hash(&id)));
        let pre_login = SessionKey::try_from(format!("p.{id}")).unwrap();
        assert_eq!(
            presented_hash(&pre_login),
            Some(session_id_hash(&format!("p.{id}")))
        );
        assert!(is_pre_login(&pre_login) && !is_pre_login(&key));
        for bad in [
            "short",
            &"A".repeat(55),
            &"A".repeat(43),
            &format!("{}!", &id[..53]),
            &format!("q.{id}"),
        ] {
            let key = SessionKey::try_from(bad.to_owned()).unwrap();
            assert_eq!(presented_hash(&key), None, "{bad:?}");
        }
    }

    proptest::proptest! {
        /// Whatever a cookie carries, the backend either refuses it without asking the store
        /// or hashes exactly an ID of the shape it issues.
        #[test]
        fn only_issued_shapes_are_ever_looked_up(
            raw in proptest::prop_oneof![
                proptest::prelude::any::<String>(),
                "[A-Za-z0-9_-]{54}",
                "[A-Za-z0-9_+/=.-]{50,58}",
            ],
            pre in proptest::prelude::any::<bool>(),
        ) {
            let raw = if pre { format!("p.{raw}") } else { raw };
            let Ok(key) = SessionKey::try_from(raw.clone()) else {
                return Ok(());
            };
            if let Some(hash) = presented_hash(&key) {
                let id = raw.strip_prefix(PRE_LOGIN).unwrap_or(&raw);
                proptest::prop_assert_eq!(id.len(), SESSION_ID_LEN);
                proptest::prop_assert!(id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
                proptest::prop_assert_eq!(hash, session_id_hash(&raw));
            }
        }
    }

    #[test]
    fn the_stored_hash_is_not_the_id() {
        let id = new_session_id("annAAAAAAAA").unwrap();
        let hash = session_id_hash(&id);
        assert!(!hash.contains(&id[TAG_LEN..]));
        assert_eq!(
            hash.len(),
            TAG_LEN + 1 + 22,
            "the tag, a dot, base64url of 128 bits of a SHA-256 digest"
        );
    }
}

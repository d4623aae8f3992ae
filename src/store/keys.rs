//! The Redis key schema, in one place. `{p}` is `store.key_prefix` (default `sd:`).
//!
//! | key | type | TTL | holds |
//! |---|---|---|---|
//! | `{p}s:{sid_hash}` | hash | sliding: min(last seen + idle, created + absolute) | one session: `uid`, `csrf`, `auth_at`, `ip`, `ua` (JSON values written by actix-session), `_created`, `_seen` (Unix seconds, store-managed) |
//! | `{p}us:{user}` | sorted set | absolute timeout, renewed on login | the user's live sessions: member `sid_hash`, score = when that session expires |
//! | `{p}u:{user}` | hash | none | one user: `phc` (argon2id PHC string), `roles` (comma-separated), `disabled` (`0`/`1`), `created` |
//! | `{p}users` | sorted set | none | every user name, score 0, so names list in order with `ZRANGEBYLEX` |
//! | `{p}t:{scope}:{id}` | string (counter) | the throttle window | failed logins per account (`acct`) or per client IP (`ip`) |
//! | `{p}secret:{name}` | string | none | shared secrets generated once for all instances (`cookie_key`) |
//!
//! `sid_hash` is base64url(SHA-256(session ID)): Redis never holds a usable session ID, so a
//! leaked dump or a `MONITOR` feed cannot be replayed as a cookie.

#[derive(Clone, Debug)]
pub struct Keys {
    prefix: String,
}

impl Keys {
    pub fn new(prefix: &str) -> Keys {
        Keys {
            prefix: prefix.to_owned(),
        }
    }

    pub fn session(&self, sid_hash: &str) -> String {
        format!("{}s:{sid_hash}", self.prefix)
    }

    pub fn session_prefix(&self) -> String {
        format!("{}s:", self.prefix)
    }

    pub fn user_sessions(&self, user: &str) -> String {
        format!("{}us:{user}", self.prefix)
    }

    pub fn user_sessions_prefix(&self) -> String {
        format!("{}us:", self.prefix)
    }

    pub fn user(&self, user: &str) -> String {
        format!("{}u:{user}", self.prefix)
    }

    pub fn user_prefix(&self) -> String {
        format!("{}u:", self.prefix)
    }

    pub fn users(&self) -> String {
        format!("{}users", self.prefix)
    }

    /// `counter` is `acct:{user}` or `ip:{address}`.
    pub fn throttle(&self, counter: &str) -> String {
        format!("{}t:{counter}", self.prefix)
    }

    pub fn secret(&self, name: &str) -> String {
        format!("{}secret:{name}", self.prefix)
    }
}

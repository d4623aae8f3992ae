//! The Redis key schema, in one place. `{p}` is `store.key_prefix` (default `sd:`).
//!
//! | key | type | TTL | holds |
//! |---|---|---|---|
//! | `{p}s:{sid_hash}` | hash | sliding: min(last seen + idle, created + absolute) | one session: `uid`, `csrf`, `at` (last password entry), `ip`, `dev` (browser and OS) as JSON values written by actix-session; `_c` created, `_s` last seen (Unix seconds, store-managed) |
//! | `{p}us:{user}` | sorted set | absolute timeout, renewed on login | the user's live sessions: member `sid_hash`, score = when that session expires |
//! | `{p}sessions` | stream | trimmed to the absolute timeout | every authenticated session created, newest last (`h` = sid_hash): the "all sessions" listing |
//! | `{p}active:{minute}` | HyperLogLog | idle timeout + 2 min | sessions seen in that minute (the "active sessions" estimate) |
//! | `{p}u:{user}` | hash | none | one user: `phc` (argon2id PHC string), `roles` (comma-separated), `disabled` (`0`/`1`), `created`, `last_login` |
//! | `{p}users` | sorted set | none | every user name, score 0, so names list in order with `ZRANGEBYLEX` |
//! | `{p}users:sfx` | sorted set | none | every suffix of every user name as `suffix:name`, score 0: names containing a text with one `ZRANGEBYLEX` (see `names.rs`) |
//! | `{p}users:new`, `{p}users:login` | sorted set | none | one member per user, `{9999999999 - time}:name` (10 digits), score 0: users newest first, and by most recent sign-in (never last), paged with `ZRANGEBYLEX` |
//! | `{p}users:indexes:v1` | string | none | set once users from before the three indexes above were entered in them (at start-up, in the background) |
//! | `{p}admins` | set | none | enabled users with role `admin`, kept by the same scripts that change roles and the disabled flag, for the last-admin guard |
//! | `{p}t:{scope}:{id}` | string (counter) | the throttle window | failed logins per account (`acct`) or per client IP (`ip`) |
//! | `{p}audit`, `{p}audit:u:{user}`, `{p}audit:a:{action}` | stream | capped (~10,000 / ~500 / ~1,000 entries) | the audit log, globally, per user named in an entry, and per action (the filters read these, never the whole log) |
//! | `{p}stat:{kind}:{minute}` | string (counter) | 48 h | logins, failed logins and revocations per minute, for the dashboard chart |
//! | `{p}f:{token_hash}` | string | 2 min | a one-time message for the page after a form (POST-redirect-GET): who it is for and what it says, a generated password included; read and deleted in one `GETDEL` |
//! | `{p}gone:{sid_hash}` | string | what the session had left to live | why a session ended before its time: `e` revoked, `o` signed out; read only when a cookie names a missing session, so the login page can say why |
//! | `{p}secret:{name}` | string | none | shared secrets generated once for all instances (`cookie_key`) |
//! | `{p}deny:{sid_hash}` | string | the access-token lifetime | JWT mode: a refresh family ended before its access tokens expired (logout, revoke, revoke-all, refresh-token reuse): every access token minted for it is refused |
//! | `{p}nbf:{user}` | string | the access-token lifetime | JWT mode: tokens of this user issued at or before this second are refused (revoke-all, disable, role or password change) |
//!
//! In JWT mode a refresh family is stored exactly like a session (so every listing and
//! revocation applies to it), with three more fields: `rt` (hash of the current refresh
//! token), `prt`/`rot` (the previous one and when it was rotated).
//!
//! `sid_hash` is base64url of the first 128 bits of SHA-256(session ID): Redis never holds a
//! usable session ID, so a leaked dump or a `MONITOR` feed cannot be replayed as a cookie, and
//! 128 bits keep keys short (memory per session is a benchmark target) while leaving neither
//! collisions nor preimages within reach. The same value is the session's public handle.

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

    pub fn sessions_stream(&self) -> String {
        format!("{}sessions", self.prefix)
    }

    pub fn active_prefix(&self) -> String {
        format!("{}active:", self.prefix)
    }

    pub fn active(&self, minute: i64) -> String {
        format!("{}active:{minute}", self.prefix)
    }

    pub fn admins(&self) -> String {
        format!("{}admins", self.prefix)
    }

    pub fn audit(&self, user: Option<&str>) -> String {
        match user {
            Some(user) => format!("{}audit:u:{user}", self.prefix),
            None => format!("{}audit", self.prefix),
        }
    }

    pub fn audit_action(&self, action: &str) -> String {
        format!("{}audit:a:{action}", self.prefix)
    }

    pub fn stat(&self, kind: &str, minute: i64) -> String {
        format!("{}stat:{kind}:{minute}", self.prefix)
    }

    pub fn deny_prefix(&self) -> String {
        format!("{}deny:", self.prefix)
    }

    pub fn not_before_prefix(&self) -> String {
        format!("{}nbf:", self.prefix)
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

    pub fn user_suffixes(&self) -> String {
        format!("{}users:sfx", self.prefix)
    }

    pub fn users_newest(&self) -> String {
        format!("{}users:new", self.prefix)
    }

    pub fn users_by_login(&self) -> String {
        format!("{}users:login", self.prefix)
    }

    /// Set once every user from before the indexes existed has been entered in them.
    pub fn user_indexes_built(&self) -> String {
        format!("{}users:indexes:v1", self.prefix)
    }

    /// `counter` is `acct:{user}` or `ip:{address}`.
    pub fn throttle(&self, counter: &str) -> String {
        format!("{}t:{counter}", self.prefix)
    }

    pub fn flash(&self, token_hash: &str) -> String {
        format!("{}f:{token_hash}", self.prefix)
    }

    pub fn gone(&self, sid_hash: &str) -> String {
        format!("{}gone:{sid_hash}", self.prefix)
    }

    pub fn gone_prefix(&self) -> String {
        format!("{}gone:", self.prefix)
    }

    pub fn secret(&self, name: &str) -> String {
        format!("{}secret:{name}", self.prefix)
    }
}

//! The Redis key schema, in one place. `{p}` is `store.key_prefix` (default `sd:`); `{T}` is a
//! user's *tag* (below), written between braces so Redis Cluster places every key of one user
//! in one hash slot.
//!
//! | key | type | TTL | holds |
//! |---|---|---|---|
//! | `{p}{T}s:{h}` | hash | sliding: min(last seen + idle, created + absolute) | one session (handle `T.h`): `uid`, `csrf`, `at` (last password entry), `ip`, `dev` (browser and OS) as JSON values written by actix-session; `_c` created, `_s` last seen (Unix seconds, store-managed) |
//! | `{p}{T}us` | sorted set | absolute timeout, renewed on login | the user's live sessions: member the handle, score = when that session expires |
//! | `{p}{T}u` | hash | none | one user: `name`, `phc` (argon2id PHC string), `roles` (comma-separated), `disabled` (`0`/`1`), `created`, `last_login` |
//! | `{p}{T}g:{h}` | string | what the session had left to live | why a session ended before its time: `e` revoked, `o` signed out; read only when a cookie names a missing session, so the login page can say why |
//! | `{p}{T}d:{h}` | string | the access-token lifetime | JWT mode: a refresh family ended before its access tokens expired (logout, revoke, revoke-all, refresh-token reuse): every access token minted for it is refused |
//! | `{p}{T}nbf` | string | the access-token lifetime | JWT mode: the user's tokens issued at or before this second are refused (revoke-all, disable, role or password change) |
//! | `{p}sessions` | stream | trimmed to the absolute timeout | every authenticated session created, newest last (`h` = handle): the "all sessions" listing |
//! | `{p}{a}active:{minute}` | HyperLogLog | idle timeout + 2 min | sessions seen in that minute (the "active sessions" estimate; one tag, so one `PFCOUNT` unions the window) |
//! | `{p}users` | sorted set | none | every user name, score 0, so names list in order with `ZRANGEBYLEX` |
//! | `{p}users:sfx` | sorted set | none | every suffix of every user name as `suffix:name`, score 0: names containing a text with one `ZRANGEBYLEX` (see `names.rs`) |
//! | `{p}users:new`, `{p}users:login` | sorted set | none | one member per user, `{9999999999 - time}:name` (10 digits), score 0: users newest first, and by most recent sign-in (never last), paged with `ZRANGEBYLEX` |
//! | `{p}users:indexes:v1` | string | none | set once users from before the three indexes above were entered in them (at start-up, in the background) |
//! | `{p}users:tagged:v2` | string | none | set once user records from before the tagged keys (`{p}u:{name}`) were moved to them (`sessiond migrate`, or the first start on a standalone Redis) |
//! | `{p}admins` | set | none | enabled users with role `admin`, for the last-admin guard |
//! | `{p}t:{scope}:{id}` | string (counter) | the throttle window | failed logins per account (`acct`) or per client IP (`ip`) |
//! | `{p}audit`, `{p}audit:u:{user}`, `{p}audit:a:{action}` | stream | capped (~10,000 / ~500 / ~1,000 entries) | the audit log, globally, per user named in an entry, and per action (the filters read these, never the whole log) |
//! | `{p}{st}stat:{kind}:{minute}` | string (counter) | 48 h | logins, failed logins and revocations per minute, for the dashboard chart (one tag: the chart's window is one `MGET`) |
//! | `{p}f:{token_hash}` | string | 2 min | a one-time message for the page after a form (POST-redirect-GET): who it is for and what it says, a generated password included; read and deleted in one `GETDEL` |
//! | `{p}secret:{name}` | string | none | shared secrets generated once for all instances (`cookie_key`, `user_tag_key`) |
//!
//! In JWT mode a refresh family is stored exactly like a session (so every listing and
//! revocation applies to it), with three more fields: `rt` (hash of the current refresh
//! token), `prt`/`rot` (the previous one and when it was rotated).
//!
//! **Tags and slots.** A user's tag is `HMAC-SHA256(user_tag_key, name)`, its first 64 bits in
//! base64url (11 characters). Every session ID and refresh-family ID a user is issued starts
//! with it (`T` + 43 random characters), so the server finds the slot of the session, the
//! user's record and their index from the cookie alone, with no lookup: the load path and every
//! per-user change (revoke-all, disable, role change) stay one atomic script on one node. The
//! tag is keyed, so a cookie or a handle does not reveal whose it is (an unkeyed hash of a name
//! falls to a dictionary). The user record's key is the tag alone, so it names its user (`name`
//! field, checked on every load); two names with one tag (about 1 in 10^8 at a million users)
//! cannot both exist: the second is refused as taken. A pre-login session gets a random tag.
//! Global views (the user list, the admin set, the "all sessions" stream, activity, audit,
//! stats, throttles) live in keys of their own and are written by separate commands after the
//! per-user script: what is atomic and what is best-effort is said at each write.
//!
//! A session's handle is `T.h`, where `h` is base64url of the first 128 bits of SHA-256(session
//! ID): Redis never holds a usable session ID, so a leaked dump or a `MONITOR` feed cannot be
//! replayed as a cookie, and 128 bits keep keys short (memory per session is a benchmark target)
//! while leaving neither collisions nor preimages within reach. The handle is also the session's
//! public name in the dashboards.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// Characters in a tag: 64 bits of base64url.
pub const TAG_LEN: usize = 11;

/// Computes users' tags. The key is shared by every instance (`{p}secret:user_tag_key`) and
/// must never change: a user's keys are named by it.
#[derive(Clone)]
pub struct UserTags {
    key: aws_lc_rs::hmac::Key,
}

impl std::fmt::Debug for UserTags {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("UserTags([redacted])")
    }
}

impl UserTags {
    pub fn new(secret: &[u8]) -> UserTags {
        UserTags {
            key: aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, secret),
        }
    }

    pub fn tag(&self, user: &str) -> String {
        let mac = aws_lc_rs::hmac::sign(&self.key, format!("user-tag:{user}").as_bytes());
        URL_SAFE_NO_PAD.encode(&mac.as_ref()[..8])
    }
}

/// A random tag, for a session that has no user yet.
pub fn random_tag(bytes: [u8; 8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Whether `tag` has the shape of a tag (what a cookie or a handle must start with).
pub fn is_tag(tag: &str) -> bool {
    tag.len() == TAG_LEN
        && tag
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// The tag a handle (`T.h`) carries, if it has one.
pub fn handle_tag(handle: &str) -> Option<&str> {
    let (tag, _) = handle.split_once('.')?;
    is_tag(tag).then_some(tag)
}

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

    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// `{p}{T}{kind}` for a per-user key of `tag`.
    fn tagged(&self, tag: &str, kind: &str) -> String {
        format!("{}{{{tag}}}{kind}", self.prefix)
    }

    /// `{p}{T}{kind}:{h}` for a per-session key of `handle` (`T.h`). A handle without a tag
    /// (never issued: typed into a form) names a key that cannot exist.
    fn per_session(&self, handle: &str, kind: &str) -> String {
        match handle.split_once('.') {
            Some((tag, h)) if is_tag(tag) => format!("{}{{{tag}}}{kind}:{h}", self.prefix),
            _ => format!("{}{{!}}{kind}:{handle}", self.prefix),
        }
    }

    pub fn session(&self, handle: &str) -> String {
        self.per_session(handle, "s")
    }

    pub fn gone(&self, handle: &str) -> String {
        self.per_session(handle, "g")
    }

    pub fn deny(&self, handle: &str) -> String {
        self.per_session(handle, "d")
    }

    pub fn user(&self, tag: &str) -> String {
        self.tagged(tag, "u")
    }

    pub fn user_sessions(&self, tag: &str) -> String {
        self.tagged(tag, "us")
    }

    pub fn not_before(&self, tag: &str) -> String {
        self.tagged(tag, "nbf")
    }

    /// The prefix of every per-user and per-session key: what a near-cache's tracking watches.
    pub fn tagged_prefix(&self) -> String {
        format!("{}{{", self.prefix)
    }

    /// What an invalidated key names: a session (by handle) or a user (by tag).
    pub fn parse_tagged(&self, key: &str) -> Option<Tagged> {
        let rest = key.strip_prefix(&self.prefix)?.strip_prefix('{')?;
        let (tag, kind) = rest.split_once('}')?;
        if !is_tag(tag) {
            return None;
        }
        if kind == "u" {
            return Some(Tagged::User(tag.to_owned()));
        }
        let h = kind.strip_prefix("s:")?;
        Some(Tagged::Session(format!("{tag}.{h}")))
    }

    pub fn sessions_stream(&self) -> String {
        format!("{}sessions", self.prefix)
    }

    pub fn active(&self, minute: i64) -> String {
        format!("{}{{a}}active:{minute}", self.prefix)
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

    /// One tag for every stat counter, so the chart's window is one `MGET` on a cluster too.
    pub fn stat(&self, kind: &str, minute: i64) -> String {
        format!("{}{{st}}stat:{kind}:{minute}", self.prefix)
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

    /// Set once user records from before the tagged key schema have been moved (`sessiond
    /// migrate`, or the first start of this version on a standalone Redis).
    pub fn users_tagged(&self) -> String {
        format!("{}users:tagged:v2", self.prefix)
    }

    /// `counter` is `acct:{user}` or `ip:{address}`.
    pub fn throttle(&self, counter: &str) -> String {
        format!("{}t:{counter}", self.prefix)
    }

    pub fn flash(&self, token_hash: &str) -> String {
        format!("{}f:{token_hash}", self.prefix)
    }

    pub fn secret(&self, name: &str) -> String {
        format!("{}secret:{name}", self.prefix)
    }

    /// A user record as versions before the cluster key schema kept it (`{p}u:{name}`), for
    /// `sessiond migrate`.
    pub fn legacy_user_prefix(&self) -> String {
        format!("{}u:", self.prefix)
    }
}

/// A per-user or per-session key, read back from its name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Tagged {
    Session(String),
    User(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_users_keys_and_sessions_share_one_hash_tag() {
        let tags = UserTags::new(b"k");
        let keys = Keys::new("sd:");
        let tag = tags.tag("alice");
        let handle = format!("{tag}.abc");
        for key in [
            keys.session(&handle),
            keys.gone(&handle),
            keys.deny(&handle),
            keys.user(&tag),
            keys.user_sessions(&tag),
            keys.not_before(&tag),
        ] {
            assert!(key.starts_with(&format!("sd:{{{tag}}}")), "{key}");
        }
        assert_eq!(
            keys.parse_tagged(&keys.session(&handle)),
            Some(Tagged::Session(handle.clone()))
        );
        assert_eq!(
            keys.parse_tagged(&keys.user(&tag)),
            Some(Tagged::User(tag.clone()))
        );
        assert_eq!(keys.parse_tagged(&keys.user_sessions(&tag)), None);
    }

    #[test]
    fn tags_are_keyed_and_shaped() {
        let a = UserTags::new(b"one").tag("alice");
        assert!(is_tag(&a));
        assert_ne!(
            a,
            UserTags::new(b"two").tag("alice"),
            "the key changes the tag"
        );
        assert_ne!(a, UserTags::new(b"one").tag("bob"));
        assert_eq!(handle_tag(&format!("{a}.xyz")), Some(a.as_str()));
        for bad in ["", "nodot", ".x", "short.x", "{evil}aaaaa.x"] {
            assert_eq!(handle_tag(bad), None, "{bad}");
        }
        assert!(Keys::new("sd:").session("nodot").starts_with("sd:{!}"));
    }
}

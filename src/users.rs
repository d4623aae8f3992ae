//! Users: creation with validated names and roles, role changes, disabling. Anything that
//! must end a user's sessions does so here, next to the write, so the two cannot drift apart.

use crate::audit::{self, Action};
use crate::auth::password::{self, PasswordError, WeakPassword};
use crate::auth::random::{RandomError, random_token};
use crate::clock::Clock;
use crate::metrics::Metrics;
use crate::store::{GuardedChange, Store, StoreError, UserRecord};

#[derive(Debug, thiserror::Error)]
pub enum UserError {
    #[error(
        "A user name is 1-64 characters of a-z, 0-9, '.', '_' and '-', starting with a letter or digit."
    )]
    BadName,
    #[error("A role is 1-32 characters of a-z, 0-9, '_' and '-', starting with a letter.")]
    BadRole,
    #[error("There is no role named {role}. The roles are: {known}.")]
    UnknownRole { role: String, known: String },
    #[error("{0}")]
    WeakPassword(#[from] WeakPassword),
    #[error("That would leave no enabled admin.")]
    LastAdmin,
    #[error("The current password is not right.")]
    WrongPassword,
    #[error("A user named {0} already exists.")]
    Exists(String),
    #[error("There is no user named {0}.")]
    NotFound(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Password(#[from] PasswordError),
    #[error(transparent)]
    Random(#[from] RandomError),
}

/// User names compare case-insensitively: they are stored lower-case.
pub fn normalize_name(name: &str) -> Result<String, UserError> {
    let name = name.trim().to_ascii_lowercase();
    if crate::store::names::is_user_name(&name) {
        Ok(name)
    } else {
        Err(UserError::BadName)
    }
}

/// A "filter by user" parameter: blank or absent means everyone.
pub fn optional_name(raw: Option<&str>) -> Result<Option<String>, UserError> {
    raw.filter(|name| !name.trim().is_empty())
        .map(normalize_name)
        .transpose()
}

pub fn validate_roles(roles: &[String]) -> Result<Vec<String>, UserError> {
    let mut valid: Vec<String> = Vec::with_capacity(roles.len());
    for role in roles {
        if !crate::store::names::is_role_name(role) {
            return Err(UserError::BadRole);
        }
        if !valid.contains(role) {
            valid.push(role.clone());
        }
    }
    Ok(valid)
}

/// Who performs a change, from where: every change below is audited in the same function
/// that makes it, so the log cannot miss one.
pub struct Operator<'a> {
    pub store: &'a Store,
    pub clock: &'a Clock,
    pub metrics: &'a Metrics,
    pub name: &'a str,
    pub ip: &'a str,
    /// The roles that can be given besides `admin` (`auth.roles`).
    pub known_roles: &'a [String],
}

impl Operator<'_> {
    pub async fn audit(
        &self,
        action: Action,
        target: &str,
        detail: &str,
    ) -> Result<(), StoreError> {
        self.audit_ended(action, target, detail, 1).await
    }

    /// An action that ended `ended` sessions: the revocation counters add that many.
    pub async fn audit_ended(
        &self,
        action: Action,
        target: &str,
        detail: &str,
        ended: u64,
    ) -> Result<(), StoreError> {
        let event = audit::Event {
            action,
            actor: self.name,
            target,
            detail,
            ip: self.ip,
            ended,
        };
        audit::record(self.store, self.metrics, self.clock.now(), event).await
    }

    /// `roles` if each is one that can be given, or one the user already has (a role taken off
    /// `auth.roles` stays until someone removes it, without blocking other changes).
    fn known(&self, roles: Vec<String>, has: &[String]) -> Result<Vec<String>, UserError> {
        let known = |role: &String| {
            role == "admin" || self.known_roles.contains(role) || has.contains(role)
        };
        match roles.iter().find(|role| !known(role)) {
            Some(role) => Err(UserError::UnknownRole {
                role: role.clone(),
                known: crate::config::with_admin(self.known_roles).join(", "),
            }),
            None => Ok(roles),
        }
    }

    fn guard_result(&self, name: &str, change: GuardedChange) -> Result<(), UserError> {
        match change {
            GuardedChange::Done => Ok(()),
            GuardedChange::NoSuchUser => Err(UserError::NotFound(name.to_owned())),
            GuardedChange::LastAdmin => Err(UserError::LastAdmin),
        }
    }

    /// Creates a user. `check_strength` is off only for the bootstrap admin, whose password is
    /// 256 random bits.
    pub async fn create_user(
        &self,
        name: &str,
        password: &str,
        roles: &[String],
    ) -> Result<UserRecord, UserError> {
        let name = normalize_name(name)?;
        let roles = self.known(validate_roles(roles)?, &[])?;
        password::check_strength(password, &name)?;
        let user = insert_user(self.store, self.clock, &name, password, &roles).await?;
        self.audit(
            Action::UserCreated,
            &name,
            &format!("roles: {}", roles.join(",")),
        )
        .await?;
        Ok(user)
    }

    /// Takes effect on the next request of every live session: sessions read roles on each
    /// load. With `protect_last_admin`, refuses to leave the deployment without an admin.
    pub async fn set_roles(
        &self,
        name: &str,
        roles: &[String],
        protect_last_admin: bool,
    ) -> Result<(), UserError> {
        let name = normalize_name(name)?;
        let roles = validate_roles(roles)?;
        let before = self
            .store
            .user(&name)
            .await?
            .ok_or_else(|| UserError::NotFound(name.clone()))?
            .roles;
        let roles = self.known(roles, &before)?;
        let change = self
            .store
            .set_roles(&name, &roles, protect_last_admin)
            .await?;
        self.guard_result(&name, change)?;
        let detail = format!("{} -> {}", before.join(","), roles.join(","));
        self.audit(Action::RolesChanged, &name, &detail).await?;
        Ok(())
    }

    /// Disabling also deletes the user's sessions, so nothing of them outlives the flag being
    /// cleared again later. Returns how many live sessions were ended.
    pub async fn set_disabled(
        &self,
        name: &str,
        disabled: bool,
        protect_last_admin: bool,
    ) -> Result<u64, UserError> {
        let name = normalize_name(name)?;
        let change = self
            .store
            .set_disabled(&name, disabled, protect_last_admin)
            .await?;
        self.guard_result(&name, change)?;
        if disabled {
            let ended = self.store.revoke_all_for_user(&name, None).await?;
            self.audit_ended(
                Action::UserDisabled,
                &name,
                &format!("ended {ended} session(s)"),
                ended,
            )
            .await?;
            Ok(ended)
        } else {
            self.audit(Action::UserEnabled, &name, "").await?;
            Ok(0)
        }
    }

    /// Deletes `name`: the record goes first (from then on no session of theirs loads), then
    /// every session ends; the audit trail stays. Returns how many sessions ended.
    pub async fn delete_user(
        &self,
        name: &str,
        protect_last_admin: bool,
    ) -> Result<u64, UserError> {
        let name = normalize_name(name)?;
        let change = self.store.delete_user(&name, protect_last_admin).await?;
        self.guard_result(&name, change)?;
        let ended = self.store.revoke_all_for_user(&name, None).await?;
        self.audit_ended(
            Action::UserDeleted,
            &name,
            &format!("ended {ended} session(s)"),
            ended,
        )
        .await?;
        Ok(ended)
    }

    /// Clears the account's failed-login counter, so a throttled account can sign in again at
    /// once (the per-IP counters stay: they are about where guesses come from, not whom).
    pub async fn unlock(&self, name: &str) -> Result<(), UserError> {
        let name = normalize_name(name)?;
        if self.store.user(&name).await?.is_none() {
            return Err(UserError::NotFound(name));
        }
        self.store
            .reset_counters(&[crate::auth::throttle::account_counter(&name)])
            .await?;
        self.audit(Action::UserUnlocked, &name, "").await?;
        Ok(())
    }

    /// Ends one session of `user`, named by its handle; false when `user` has no such session.
    pub async fn revoke_session(&self, user: &str, handle: &str) -> Result<bool, UserError> {
        let revoked = self.store.revoke_session(user, handle).await?;
        if revoked {
            self.audit(Action::SessionRevoked, user, &format!("session {handle}"))
                .await?;
        }
        Ok(revoked)
    }

    /// Makes room for one more session of `user` under `session.max_per_user` (`cap`; 0 = no
    /// limit): ends their oldest sessions (by creation), each audited as revoked, the detail
    /// saying why. Runs just before a sign-in creates its session, so two sign-ins of the same
    /// person at the same instant can leave one session over the cap until the next sign-in.
    pub async fn make_room_for_session(&self, user: &str, cap: usize) -> Result<u64, UserError> {
        if cap == 0 {
            return Ok(0);
        }
        let mut live = self.store.sessions_of(user).await?;
        // Oldest first; sessions begun in the same second by last use, then by handle.
        live.sort_by(|a, b| {
            (a.created, a.last_seen, &a.handle).cmp(&(b.created, b.last_seen, &b.handle))
        });
        let over = (live.len() + 1).saturating_sub(cap);
        let mut ended = 0;
        for oldest in live.iter().take(over) {
            if self.store.revoke_session(user, &oldest.handle).await? {
                let detail = format!(
                    "session {}: over session.max_per_user ({cap}), ended by a new sign-in",
                    oldest.handle
                );
                self.audit(Action::SessionRevoked, user, &detail).await?;
                ended += 1;
            }
        }
        Ok(ended)
    }

    /// Ends every session of `user` except `keep` (a handle).
    pub async fn revoke_all(&self, user: &str, keep: Option<&str>) -> Result<u64, UserError> {
        let ended = self.store.revoke_all_for_user(user, keep).await?;
        let detail = match keep {
            Some(_) => format!("ended {ended} other session(s)"),
            None => format!("ended {ended} session(s)"),
        };
        self.audit_ended(Action::AllSessionsRevoked, user, &detail, ended)
            .await?;
        Ok(ended)
    }

    /// Sets a new password and ends every session of the user. The caller decides what proves
    /// the right to do so (the current password, or the admin role).
    pub async fn set_password(
        &self,
        name: &str,
        new_password: &str,
        action: Action,
    ) -> Result<u64, UserError> {
        let name = normalize_name(name)?;
        password::check_strength(new_password, &name)?;
        let phc = password::hash_password(new_password.to_owned()).await?;
        if !self.store.set_password(&name, &phc).await? {
            return Err(UserError::NotFound(name));
        }
        let ended = self.store.revoke_all_for_user(&name, None).await?;
        self.audit_ended(action, &name, &format!("ended {ended} session(s)"), ended)
            .await?;
        Ok(ended)
    }

    /// An admin's reset: a random password, returned once to show to the admin.
    pub async fn reset_password(&self, name: &str) -> Result<String, UserError> {
        let password = random_token()?;
        self.set_password(name, &password, Action::PasswordReset)
            .await?;
        Ok(password)
    }
}

async fn insert_user(
    store: &Store,
    clock: &Clock,
    name: &str,
    password: &str,
    roles: &[String],
) -> Result<UserRecord, UserError> {
    let phc = password::hash_password(password.to_owned()).await?;
    let user = UserRecord {
        name: name.to_owned(),
        phc,
        roles: roles.to_vec(),
        disabled: false,
        last_login: 0,
        created: clock.now(),
    };
    if store.create_user(&user).await? {
        Ok(user)
    } else {
        Err(UserError::Exists(name.to_owned()))
    }
}

/// With no users at all, creates `admin` with a random password and returns that password,
/// so a fresh install can be logged into; `None` when users exist.
pub async fn bootstrap_admin(
    store: &Store,
    clock: &Clock,
    metrics: &Metrics,
) -> Result<Option<String>, UserError> {
    if store.user_count().await? > 0 {
        return Ok(None);
    }
    let password = random_token()?;
    match insert_user(store, clock, "admin", &password, &["admin".to_owned()]).await {
        Ok(_) => {
            let event = audit::Event {
                action: Action::UserCreated,
                actor: "system",
                target: "admin",
                detail: "bootstrap",
                ip: "",
                ended: 0,
            };
            audit::record(store, metrics, clock.now(), event).await?;
            Ok(Some(password))
        }
        // Another instance bootstrapped first.
        Err(UserError::Exists(_)) => Ok(None),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_lowercased_and_limited() {
        assert_eq!(normalize_name(" Alice ").unwrap(), "alice");
        assert_eq!(normalize_name("a.b_c-d9").unwrap(), "a.b_c-d9");
        for bad in ["", "-x", "a b", "a:b", "ä", &"a".repeat(65)] {
            assert!(normalize_name(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn roles_are_validated_and_deduplicated() {
        let roles = validate_roles(&["admin".into(), "editor".into(), "admin".into()]).unwrap();
        assert_eq!(roles, ["admin", "editor"]);
        for bad in ["", "Admin", "1st", "a,b", "a b"] {
            assert!(validate_roles(&[bad.to_owned()]).is_err(), "{bad:?}");
        }
    }
}

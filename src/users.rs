//! Users: creation with validated names and roles, role changes, disabling. Anything that
//! must end a user's sessions does so here, next to the write, so the two cannot drift apart.

use crate::auth::password::{self, MAX_PASSWORD_LEN, MIN_PASSWORD_LEN, PasswordError};
use crate::auth::random::{RandomError, random_token};
use crate::clock::Clock;
use crate::store::{Store, StoreError, UserRecord};

#[derive(Debug, thiserror::Error)]
pub enum UserError {
    #[error(
        "user names are 1-64 characters of a-z, 0-9, '.', '_' and '-', starting with a letter or digit"
    )]
    BadName,
    #[error("roles are 1-32 characters of a-z, 0-9, '_' and '-', starting with a letter")]
    BadRole,
    #[error("passwords are {MIN_PASSWORD_LEN} to {MAX_PASSWORD_LEN} characters")]
    BadPassword,
    #[error("user {0:?} already exists")]
    Exists(String),
    #[error("no user {0:?}")]
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
    let mut chars = name.chars();
    let first_ok = chars.next().is_some_and(|c| c.is_ascii_alphanumeric());
    let rest_ok = chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if first_ok && rest_ok && name.len() <= 64 {
        Ok(name)
    } else {
        Err(UserError::BadName)
    }
}

pub fn validate_roles(roles: &[String]) -> Result<Vec<String>, UserError> {
    let mut valid: Vec<String> = Vec::with_capacity(roles.len());
    for role in roles {
        let mut chars = role.chars();
        let first_ok = chars.next().is_some_and(|c| c.is_ascii_lowercase());
        let rest_ok =
            chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '_' | '-'));
        if !(first_ok && rest_ok && role.len() <= 32) {
            return Err(UserError::BadRole);
        }
        if !valid.contains(role) {
            valid.push(role.clone());
        }
    }
    Ok(valid)
}

pub async fn create_user(
    store: &Store,
    clock: &Clock,
    name: &str,
    password: &str,
    roles: &[String],
) -> Result<UserRecord, UserError> {
    let name = normalize_name(name)?;
    let roles = validate_roles(roles)?;
    let length = password.chars().count();
    if !(MIN_PASSWORD_LEN..=MAX_PASSWORD_LEN).contains(&length) {
        return Err(UserError::BadPassword);
    }
    let phc = password::hash_password(password.to_owned()).await?;
    let user = UserRecord {
        name: name.clone(),
        phc,
        roles,
        disabled: false,
        created: clock.now(),
    };
    if store.create_user(&user).await? {
        Ok(user)
    } else {
        Err(UserError::Exists(name))
    }
}

/// Takes effect on the next request of every live session: sessions read roles on each load.
pub async fn set_roles(store: &Store, name: &str, roles: &[String]) -> Result<(), UserError> {
    let name = normalize_name(name)?;
    let roles = validate_roles(roles)?;
    if store.set_roles(&name, &roles).await? {
        Ok(())
    } else {
        Err(UserError::NotFound(name))
    }
}

/// Disabling also deletes the user's sessions, so nothing of them outlives the flag being
/// cleared again later. Returns how many live sessions were ended.
pub async fn set_disabled(store: &Store, name: &str, disabled: bool) -> Result<u64, UserError> {
    let name = normalize_name(name)?;
    if !store.set_disabled(&name, disabled).await? {
        return Err(UserError::NotFound(name));
    }
    if disabled {
        Ok(store.revoke_all_for_user(&name).await?)
    } else {
        Ok(0)
    }
}

/// With no users at all, creates `admin` with a random password and returns that password,
/// so a fresh install can be logged into; `None` when users exist.
pub async fn bootstrap_admin(store: &Store, clock: &Clock) -> Result<Option<String>, UserError> {
    if store.user_count().await? > 0 {
        return Ok(None);
    }
    let password = random_token()?;
    match create_user(store, clock, "admin", &password, &["admin".to_owned()]).await {
        Ok(_) => Ok(Some(password)),
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

//! argon2id password hashes (PHC strings), computed on the blocking pool: one verification is
//! ~20 ms of CPU, which on an async worker would stall every request sharing that thread.

use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use argon2::{Algorithm, Argon2, Params, Version};

use crate::metrics::Metrics;

/// OWASP's minimum for argon2id: 19 MiB, two passes, one lane.
const MEMORY_KIB: u32 = 19_456;
const PASSES: u32 = 2;
const LANES: u32 = 1;

pub const MIN_PASSWORD_LEN: usize = 8;
/// Longer inputs are refused before hashing so nobody can make us hash megabytes.
pub const MAX_PASSWORD_LEN: usize = 1024;

#[derive(Debug, thiserror::Error)]
pub enum PasswordError {
    #[error("password hashing failed: {0}")]
    Hash(String),
    #[error("the stored password hash is not a valid PHC string")]
    BadStoredHash,
    #[error("the password task did not finish")]
    Join(#[from] tokio::task::JoinError),
}

/// Why a new password was refused, in words for the person choosing it.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct WeakPassword(pub String);

/// Length limits, then zxcvbn (which ships frequency lists of common passwords, names and
/// words): anything it scores below 3 of 4 ("safely unguessable") is refused, as is a password
/// built from the user's own name.
pub fn check_strength(password: &str, user_name: &str) -> Result<(), WeakPassword> {
    let length = password.chars().count();
    if length < MIN_PASSWORD_LEN {
        return Err(WeakPassword(format!(
            "Use at least {MIN_PASSWORD_LEN} characters."
        )));
    }
    if length > MAX_PASSWORD_LEN {
        return Err(WeakPassword(format!(
            "Use at most {MAX_PASSWORD_LEN} characters."
        )));
    }
    let known = [user_name, "sessiond"];
    // zxcvbn counts the name as one cheap word but still rates `alice2024alice` safe: the
    // password must stand without the name in it (a phrase that merely mentions it is fine).
    let lowered = password.to_lowercase();
    if !user_name.is_empty() && lowered.contains(&user_name.to_lowercase()) {
        let rest = lowered.replace(&user_name.to_lowercase(), "");
        if u8::from(zxcvbn::zxcvbn(&rest, &known).score()) < 3 {
            return Err(WeakPassword(
                "This password is built from the user name. Try a longer phrase of several unrelated words."
                    .to_owned(),
            ));
        }
    }
    let estimate = zxcvbn::zxcvbn(password, &known);
    if u8::from(estimate.score()) >= 3 {
        return Ok(());
    }
    let advice = estimate
        .feedback()
        .and_then(|f| f.warning().map(|w| w.to_string()))
        .unwrap_or_else(|| "This password is too easy to guess.".to_owned());
    Err(WeakPassword(format!(
        "{advice} Try a longer phrase of several unrelated words."
    )))
}

fn hasher() -> Result<Argon2<'static>, PasswordError> {
    let params = Params::new(MEMORY_KIB, PASSES, LANES, None)
        .map_err(|e| PasswordError::Hash(e.to_string()))?;
    Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, params))
}

pub fn hash_password_blocking(password: &str) -> Result<String, PasswordError> {
    hasher()?
        .hash_password(password.as_bytes())
        .map(|hash| hash.to_string())
        .map_err(|e| PasswordError::Hash(e.to_string()))
}

/// Whether `password` matches `phc`. Parameters come from the PHC string itself, so hashes made
/// with stronger settings later keep verifying.
pub fn verify_password_blocking(phc: &str, password: &str) -> Result<bool, PasswordError> {
    let parsed = PasswordHash::new(phc).map_err(|_| PasswordError::BadStoredHash)?;
    Ok(hasher()?
        .verify_password(password.as_bytes(), &parsed)
        .is_ok())
}

/// At most this many argon2 computations run at once: all cores but one, so a login storm
/// (an attacker's or a crowd's) queues for CPU instead of starving every other request.
fn password_slots() -> &'static tokio::sync::Semaphore {
    static SLOTS: std::sync::OnceLock<tokio::sync::Semaphore> = std::sync::OnceLock::new();
    SLOTS.get_or_init(|| {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        tokio::sync::Semaphore::new(cores.saturating_sub(1).max(1))
    })
}

/// Runs `f` on the blocking pool inside the caller's tracing span, within a password slot.
async fn off_the_reactor<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, PasswordError> {
    let _slot = password_slots()
        .acquire()
        .await
        .map_err(|_| PasswordError::Hash("the password slots are closed".into()))?;
    let span = tracing::Span::current();
    Ok(tokio::task::spawn_blocking(move || span.in_scope(f)).await?)
}

pub async fn hash_password(password: String) -> Result<String, PasswordError> {
    off_the_reactor(move || hash_password_blocking(&password)).await?
}

/// Counts each verification actually run in `metrics`, so tests can prove that a login for an
/// unknown user still paid for one.
pub async fn verify_password(
    phc: String,
    password: String,
    metrics: &Metrics,
) -> Result<bool, PasswordError> {
    let matched = off_the_reactor(move || verify_password_blocking(&phc, &password)).await??;
    metrics.password_verifications.inc();
    Ok(matched)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_are_argon2id_with_at_least_owasp_parameters() {
        let phc = hash_password_blocking("correct horse").unwrap();
        assert!(phc.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{phc}");
        assert!(verify_password_blocking(&phc, "correct horse").unwrap());
        assert!(!verify_password_blocking(&phc, "wrong horse").unwrap());
    }

    #[test]
    fn common_and_short_passwords_are_refused() {
        for weak in [
            "password",
            "password123",
            "qwertyuiop",
            "letmein1",
            "alice2024!",
            "short",
        ] {
            assert!(check_strength(weak, "alice").is_err(), "{weak:?}");
        }
        assert!(check_strength("correct horse battery staple", "alice").is_ok());
        assert!(check_strength(&"x".repeat(MAX_PASSWORD_LEN + 1), "alice").is_err());
    }

    #[test]
    fn passwords_built_from_the_user_name_are_refused() {
        for (weak, name) in [
            ("alice2024alice", "alice"),
            ("dave2024dave", "dave"),
            ("Alice2024Alice!", "alice"),
            ("bob.bob.bob.bob", "bob"),
        ] {
            let refused = check_strength(weak, name).expect_err(weak);
            assert!(refused.0.contains("user name"), "{weak:?}: {refused}");
        }
        // Mentioning the name in an otherwise strong phrase is not building on it.
        assert!(check_strength("alice keeps purple elephants dancing", "alice").is_ok());
    }

    #[test]
    fn a_corrupt_stored_hash_is_an_error_not_a_match() {
        assert!(matches!(
            verify_password_blocking("not a phc string", "x"),
            Err(PasswordError::BadStoredHash)
        ));
    }
}

//! argon2id password hashes (PHC strings), computed on the blocking pool: one verification is
//! ~20 ms of CPU, which on an async worker would stall every request sharing that thread.

use argon2::password_hash::phc::{Output, ParamsString, PasswordHash, Salt};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use std::sync::Arc;
use subtle::ConstantTimeEq;

use crate::auth::random::random_bytes;

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

fn params() -> Result<Params, PasswordError> {
    Params::new(MEMORY_KIB, PASSES, LANES, None).map_err(|e| PasswordError::Hash(e.to_string()))
}

/// argon2's working memory (19 MiB a computation), kept for the next computation. Allocated
/// per login, the freed 19 MiB blocks stayed in the malloc arena of every blocking thread that
/// had hashed: the soak measured instances at ~240 MiB resident once warm, ~280 MiB two
/// minutes later. Computations run inside a password slot, so there are about as many buffers
/// as slots.
static WORKING_MEMORY: std::sync::Mutex<Vec<Vec<Block>>> = std::sync::Mutex::new(Vec::new());

fn with_working_memory<T>(params: &Params, f: impl FnOnce(&mut [Block]) -> T) -> T {
    let blocks = params.block_count();
    let pool = || WORKING_MEMORY.lock().unwrap_or_else(|p| p.into_inner());
    let mut memory = pool().pop().unwrap_or_default();
    if memory.len() < blocks {
        memory.resize(blocks, Block::default());
    }
    let result = f(&mut memory[..blocks]);
    // A stored hash made with a higher cost leaves no bigger buffer behind.
    let ours = MEMORY_KIB as usize;
    if memory.len() > ours {
        memory.truncate(ours);
        memory.shrink_to_fit();
    }
    pool().push(memory);
    result
}

pub fn hash_password_blocking(password: &str) -> Result<String, PasswordError> {
    let hash_error = |e: &dyn std::fmt::Display| PasswordError::Hash(e.to_string());
    let params = params()?;
    let salt = Salt::new(&random_bytes::<16>().map_err(|e| hash_error(&e))?)
        .map_err(|e| hash_error(&e))?;
    let mut output = [0u8; Params::DEFAULT_OUTPUT_LEN];
    let argon2 = Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone());
    with_working_memory(&params, |memory| {
        argon2.hash_password_into_with_memory(password.as_bytes(), &salt, &mut output, memory)
    })
    .map_err(|e| hash_error(&e))?;
    let phc = PasswordHash {
        algorithm: Algorithm::Argon2id.ident(),
        version: Some(Version::V0x13.into()),
        params: ParamsString::try_from(&params).map_err(|e| hash_error(&e))?,
        salt: Some(salt),
        hash: Some(Output::new(&output).map_err(|e| hash_error(&e))?),
    };
    Ok(phc.to_string())
}

/// Whether `password` matches `phc`. Parameters come from the PHC string itself, so hashes made
/// with stronger settings later keep verifying.
pub fn verify_password_blocking(phc: &str, password: &str) -> Result<bool, PasswordError> {
    let bad = |_| PasswordError::BadStoredHash;
    let parsed = PasswordHash::new(phc).map_err(|_| PasswordError::BadStoredHash)?;
    let algorithm = Algorithm::try_from(parsed.algorithm.as_str()).map_err(bad)?;
    let version = match parsed.version {
        Some(v) => Version::try_from(v).map_err(|_| PasswordError::BadStoredHash)?,
        None => Version::default(),
    };
    let params = Params::try_from(&parsed).map_err(bad)?;
    let (Some(salt), Some(expected)) = (&parsed.salt, &parsed.hash) else {
        return Err(PasswordError::BadStoredHash);
    };
    let mut output = vec![0u8; expected.len()];
    let argon2 = Argon2::new(algorithm, version, params.clone());
    let computed = with_working_memory(&params, |memory| {
        argon2.hash_password_into_with_memory(password.as_bytes(), salt, &mut output, memory)
    });
    // An input argon2 refuses matches nothing, as before.
    Ok(computed.is_ok() && bool::from(output.ct_eq(expected.as_bytes())))
}

/// At most this many argon2 computations run at once: all cores but one, so a login storm
/// (an attacker's or a crowd's) queues for CPU instead of starving every other request.
fn password_slots() -> &'static Arc<tokio::sync::Semaphore> {
    static SLOTS: std::sync::OnceLock<Arc<tokio::sync::Semaphore>> = std::sync::OnceLock::new();
    SLOTS.get_or_init(|| {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        Arc::new(tokio::sync::Semaphore::new(cores.saturating_sub(1).max(1)))
    })
}

/// Runs `f` on the blocking pool inside the caller's tracing span, within a password slot.
/// The slot goes with the computation, not with the caller: a login whose client hangs up
/// drops its future, but the computation runs on, and must keep its slot until it ends, or
/// logins abandoned in a loop would run any number of computations at once (found by the
/// soak: a second 19 MiB working memory appeared after Redis was killed under load).
async fn off_the_reactor<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, PasswordError> {
    let slot = password_slots()
        .clone()
        .acquire_owned()
        .await
        .map_err(|_| PasswordError::Hash("the password slots are closed".into()))?;
    let span = tracing::Span::current();
    Ok(tokio::task::spawn_blocking(move || {
        let _slot = slot;
        span.in_scope(f)
    })
    .await?)
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
    fn hashes_interoperate_with_the_argon2_crates_own_phc_code() {
        // Arrange: hashes stored before the working memory was pooled came from the crate's
        // own code, some with other costs.
        use argon2::password_hash::{PasswordHasher, PasswordVerifier};
        let cheaper = Params::new(8192, 1, 1, None).unwrap();
        let theirs = Argon2::new(Algorithm::Argon2id, Version::V0x13, cheaper)
            .hash_password(b"correct horse")
            .unwrap()
            .to_string();

        // Act
        let ours = hash_password_blocking("correct horse").unwrap();

        // Assert
        assert!(verify_password_blocking(&theirs, "correct horse").unwrap());
        assert!(!verify_password_blocking(&theirs, "correct horsf").unwrap());
        let parsed = PasswordHash::new(&ours).unwrap();
        assert!(
            Argon2::default()
                .verify_password(b"correct horse", &parsed)
                .is_ok()
        );
        assert!(
            Argon2::default()
                .verify_password(b"correct horsf", &parsed)
                .is_err()
        );
    }

    #[test]
    fn a_costlier_stored_hash_leaves_no_bigger_working_memory_behind() {
        // Arrange
        use argon2::password_hash::PasswordHasher;
        let costlier = Params::new(2 * MEMORY_KIB, 1, 1, None).unwrap();
        let phc = Argon2::new(Algorithm::Argon2id, Version::V0x13, costlier)
            .hash_password(b"correct horse")
            .unwrap()
            .to_string();

        // Act
        assert!(verify_password_blocking(&phc, "correct horse").unwrap());

        // Assert
        let pool = WORKING_MEMORY.lock().unwrap();
        assert!(!pool.is_empty(), "the buffer is kept for the next login");
        assert!(pool.iter().all(|m| m.len() <= MEMORY_KIB as usize));
    }

    #[tokio::test]
    async fn a_computation_keeps_its_slot_after_its_caller_gives_up() {
        // Arrange: a computation that runs until the test lets it end.
        let slots = password_slots().available_permits();
        let (release, wait) = std::sync::mpsc::channel::<()>();
        let (started, on_start) = tokio::sync::oneshot::channel();
        let computation = off_the_reactor(move || {
            let _ = started.send(());
            let _ = wait.recv();
        });

        // Act: the caller gives up once it is running (a client hanging up mid-login).
        let mut computation = Box::pin(computation);
        tokio::select! {
            _ = &mut computation => panic!("it cannot end before it is released"),
            _ = on_start => {}
        }
        drop(computation);

        // Assert
        assert_eq!(
            password_slots().available_permits(),
            slots - 1,
            "the slot stays taken while the computation runs"
        );
        release.send(()).unwrap();
        while password_slots().available_permits() != slots {
            tokio::task::yield_now().await;
        }
    }

    #[test]
    fn a_corrupt_stored_hash_is_an_error_not_a_match() {
        assert!(matches!(
            verify_password_blocking("not a phc string", "x"),
            Err(PasswordError::BadStoredHash)
        ));
    }
}

//! Synchronizer CSRF tokens: one random token per session (the anonymous pre-login session
//! included), rendered into every form and compared on every state-changing POST.

use actix_session::Session;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use super::random::{RandomError, random_bytes};
use crate::store::CSRF_FIELD;

#[derive(Debug, thiserror::Error)]
pub enum CsrfError {
    #[error("the form's CSRF token is missing or does not belong to this session")]
    Mismatch,
    #[error(transparent)]
    Random(#[from] RandomError),
    #[error("the session could not hold the CSRF token")]
    Session(String),
}

/// The session's token, created (and the session with it) if there is none yet.
pub fn token(session: &Session) -> Result<String, CsrfError> {
    if let Ok(Some(token)) = session.get::<String>(CSRF_FIELD) {
        return Ok(token);
    }
    rotate(session)
}

/// Replaces the token; called at login so a token seen before authentication is worthless after.
pub fn rotate(session: &Session) -> Result<String, CsrfError> {
    // 128 bits, as OWASP asks of CSRF tokens; it is stored once per session.
    let token = URL_SAFE_NO_PAD.encode(random_bytes::<16>()?);
    session
        .insert(CSRF_FIELD, &token)
        .map_err(|e| CsrfError::Session(e.to_string()))?;
    Ok(token)
}

pub fn verify(session: &Session, submitted: Option<&str>) -> Result<(), CsrfError> {
    let expected = session
        .get::<String>(CSRF_FIELD)
        .ok()
        .flatten()
        .ok_or(CsrfError::Mismatch)?;
    compare(&expected, submitted)
}

/// Whether `submitted` is `expected`, in constant time.
pub fn compare(expected: &str, submitted: Option<&str>) -> Result<(), CsrfError> {
    let submitted = submitted.ok_or(CsrfError::Mismatch)?;
    if expected.is_empty() {
        return Err(CsrfError::Mismatch);
    }
    // Comparing digests keeps the comparison's length and timing independent of the token.
    let equal = Sha256::digest(expected.as_bytes()).ct_eq(&Sha256::digest(submitted.as_bytes()));
    if bool::from(equal) {
        Ok(())
    } else {
        Err(CsrfError::Mismatch)
    }
}

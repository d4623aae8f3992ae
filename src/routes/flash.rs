//! One-time messages between a form's POST and the page it redirects to (POST-redirect-GET).
//!
//! Every state-changing form answers 303 to a GET page, so a reload shows the page again
//! instead of repeating the action. What the action has to say ("Roles saved.", or a generated
//! password that must be shown exactly once) waits in the store under a random token, and the
//! browser holds only the token, in a short-lived `__Host-` cookie: the message never travels
//! in a URL (history, logs, `Referer`), is read once (`GETDEL`), only by the person who caused
//! it, and expires on its own after two minutes if never read.

use actix_web::cookie::{Cookie, SameSite, time::Duration};
use actix_web::{HttpRequest, HttpResponse};
use serde::{Deserialize, Serialize};

use crate::auth::Identity;
use crate::auth::random::random_token;
use crate::error::PageError;
use crate::routes::see_other;
use crate::state::AppState;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};

pub const COOKIE: &str = "__Host-flash";
const TTL_SECS: u64 = 120;

/// What the next page shows once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Flash {
    Notice {
        text: String,
    },
    NewPassword {
        user: String,
        password: String,
    },
    /// A roles form a step-up interrupted, to show again as it was sent.
    ResumeRoles {
        user: String,
        roles: Vec<String>,
    },
    /// A create-user form a step-up interrupted (never its password).
    ResumeCreate {
        name: String,
        roles: Vec<String>,
    },
}

impl Flash {
    pub fn notice(text: impl Into<String>) -> Flash {
        Flash::Notice { text: text.into() }
    }
}

#[derive(Serialize, Deserialize)]
struct Stored {
    /// Whose page may show it: a cookie carried to another account's session shows nothing.
    owner: String,
    flash: Flash,
}

/// 303 to `location`, with `flash` waiting for the next page this person loads.
pub async fn redirect(
    state: &AppState,
    identity: &Identity,
    location: &str,
    flash: Flash,
) -> Result<HttpResponse, PageError> {
    let token = random_token()?;
    let stored = serde_json::to_string(&Stored {
        owner: identity.username.clone(),
        flash,
    })
    .map_err(|e| PageError::SessionState(e.to_string()))?;
    state
        .store
        .put_flash(&key(&identity.username, &token), &stored, TTL_SECS)
        .await?;
    let mut response = see_other(location);
    response
        .add_cookie(&cookie(token, Duration::seconds(TTL_SECS as i64)))
        .map_err(|e| PageError::SessionState(e.to_string()))?;
    Ok(response)
}

/// The message waiting for this browser, if any, deleted as it is read. A malformed,
/// expired, already read or someone else's token is simply no message.
pub async fn take(
    req: &HttpRequest,
    state: &AppState,
    identity: &Identity,
) -> Result<Option<Flash>, PageError> {
    let Some(cookie) = req.cookie(COOKIE) else {
        return Ok(None);
    };
    let token = cookie.value();
    let well_formed = token.len() == 43
        && token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if !well_formed {
        return Ok(None);
    }
    let Some(raw) = state
        .store
        .take_flash(&key(&identity.username, token))
        .await?
    else {
        return Ok(None);
    };
    Ok(serde_json::from_str::<Stored>(&raw)
        .ok()
        .filter(|stored| stored.owner == identity.username)
        .map(|stored| stored.flash))
}

/// The store key names the owner as well as the token: someone else's browser replaying the
/// cookie looks up another key, and cannot even spend the message.
fn key(owner: &str, token: &str) -> String {
    let digest = Sha256::digest(format!("{owner}\n{token}").as_bytes());
    URL_SAFE_NO_PAD.encode(&digest[..16])
}

/// The waiting notice, if the message is one: what list pages show.
pub async fn take_notice(
    req: &HttpRequest,
    state: &AppState,
    identity: &Identity,
) -> Result<Option<String>, PageError> {
    Ok(match take(req, state, identity).await? {
        Some(Flash::Notice { text }) => Some(text),
        _ => None,
    })
}

/// Drops the spent token from the browser, when it sent one.
pub fn clear(req: &HttpRequest, response: &mut HttpResponse) {
    if req.cookie(COOKIE).is_some() {
        let _ = response.add_cookie(&cookie(String::new(), Duration::ZERO));
    }
}

fn cookie(value: String, max_age: Duration) -> Cookie<'static> {
    Cookie::build(COOKIE, value)
        .path("/")
        .secure(true)
        .http_only(true)
        .same_site(SameSite::Strict)
        .max_age(max_age)
        .finish()
}

//! `/account/...`: what any signed-in person can do about their own account.

pub mod password;
pub mod reauth;
pub mod sessions;

use actix_web::{HttpRequest, HttpResponse};

use crate::auth::Identity;
use crate::routes::{encode_query_value, see_other};
use crate::state::AppState;

/// Sends the person to confirm their password when they last typed it too long ago; `None`
/// when it is fresh enough for a sensitive action.
pub fn require_step_up(
    identity: &Identity,
    state: &AppState,
    back_to: &str,
) -> Option<HttpResponse> {
    if stepped_up(identity, state) {
        None
    } else {
        Some(see_other(&step_up_location(back_to)))
    }
}

/// Whether the password was typed recently enough for a sensitive action.
pub fn stepped_up(identity: &Identity, state: &AppState) -> bool {
    let window = state.settings.auth.step_up_window_secs as i64;
    identity.recently_authenticated(state.clock.now(), window)
}

/// The step-up page, sending the person to `back_to` once the password is typed.
pub fn step_up_location(back_to: &str) -> String {
    format!("/account/reauth?next={}", encode_query_value(back_to))
}

pub fn operator<'a>(
    state: &'a AppState,
    identity: &'a Identity,
    ip: &'a str,
) -> crate::users::Operator<'a> {
    crate::users::Operator {
        store: &state.store,
        clock: &state.clock,
        metrics: &state.metrics,
        name: &identity.username,
        ip,
        known_roles: &state.settings.auth.roles,
    }
}

pub fn ip(req: &HttpRequest, state: &AppState) -> String {
    crate::routes::client_ip(req, &state.settings)
}

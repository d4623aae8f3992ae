//! `/admin/...`: the dashboard. Every handler's first line checks the `admin` role.

pub mod audit;
mod chart;
pub mod sessions;
pub mod users;

use actix_web::{HttpRequest, HttpResponse, http::StatusCode, web};
use askama::Template;

use crate::auth::{AuthError, Identity};
use crate::error::PageError;
use crate::routes::{Nav, format_time, html, sessions_count};
use crate::state::AppState;
use crate::store::{AuditEntry, Stat, UserOrder};
use chart::Chart;

pub fn require_admin(identity: &Identity, req: &HttpRequest) -> Result<(), AuthError> {
    identity.require_role("admin", req)
}

/// What a "user" filter box on the sessions and audit pages resolved to. It matches like the
/// users list (names containing the text, through the name index): the text names one user
/// when it is a user's whole name or matches exactly one; several matches are offered as links.
#[derive(Default)]
pub struct UserFilter {
    /// The text as typed (lower-cased).
    pub text: String,
    /// The user the listing is filtered by.
    pub chosen: Option<String>,
    /// Other users whose name contains the text, at most `FILTER_MATCHES`.
    pub others: Vec<String>,
    /// `chosen` is no user now, only a name the audit log may still hold (a deleted user).
    pub gone: bool,
}

const FILTER_MATCHES: usize = 10;

impl UserFilter {
    pub async fn resolve(state: &AppState, raw: Option<&str>) -> Result<UserFilter, PageError> {
        let text = crate::routes::paging::search_text("user", raw)?;
        if text.is_empty() {
            return Ok(UserFilter::default());
        }
        let matches: Vec<String> = state
            .store
            .list_users(&text, UserOrder::Name, None, FILTER_MATCHES)
            .await?
            .items
            .into_iter()
            .map(|u| u.name)
            .collect();
        let whole_name = crate::users::normalize_name(&text).ok();
        let exists = match &whole_name {
            // The whole name among the matches needs no second look.
            Some(name) if matches.contains(name) => true,
            Some(name) => state.store.user(name).await?.is_some(),
            None => false,
        };
        let chosen = match (&whole_name, exists, matches.as_slice()) {
            (Some(name), true, _) => Some(name.clone()),
            (_, _, [only]) => Some(only.clone()),
            // Nobody by that name now: a deleted user's audit trail is still there.
            (Some(name), false, []) => Some(name.clone()),
            _ => None,
        };
        let gone = chosen.is_some() && !exists && matches.is_empty();
        let others = matches
            .into_iter()
            .filter(|name| Some(name) != chosen.as_ref())
            .collect();
        Ok(UserFilter {
            text,
            chosen,
            others,
            gone,
        })
    }

    /// Several users match and none was picked.
    pub fn ambiguous(&self) -> bool {
        self.chosen.is_none() && !self.others.is_empty()
    }

    /// Text typed that matches no current user.
    pub fn no_match(&self) -> bool {
        !self.text.is_empty() && (self.chosen.is_none() || self.gone) && self.others.is_empty()
    }
}

pub struct AuditRow {
    pub when: String,
    /// What happened, as a sentence ("boss changed alice's roles from viewer to editor").
    pub sentence: String,
    /// The raw action code, as the API and the logs give it.
    pub action: String,
    pub target: String,
    pub ip: String,
}

impl From<AuditEntry> for AuditRow {
    fn from(entry: AuditEntry) -> Self {
        AuditRow {
            when: format_time(entry.at),
            sentence: audit_sentence(&entry),
            action: entry.action,
            target: entry.target,
            ip: entry.ip,
        }
    }
}

/// An audit entry in words. Unknown codes (from a newer version sharing the store) still read.
pub fn audit_sentence(entry: &AuditEntry) -> String {
    let (actor, target, detail) = (&entry.actor, &entry.target, &entry.detail);
    let whose = |name: &str| {
        if name == actor {
            "their own".to_owned()
        } else {
            format!("{name}'s")
        }
    };
    // "ended 3 session(s)" -> "3 sessions"
    let ended = || {
        sessions_count(
            detail
                .split_whitespace()
                .nth(1)
                .and_then(|n| n.parse().ok())
                .unwrap_or(0),
        )
    };
    let roles = |list: &str| {
        if list.trim().is_empty() {
            "no role".to_owned()
        } else {
            list.split(',').collect::<Vec<_>>().join(", ")
        }
    };
    match entry.action.as_str() {
        "login" => format!("{target} signed in"),
        "login_failed" if detail == "account disabled" => {
            format!("A sign-in as {target} was refused: the account is disabled")
        }
        "login_failed" => format!("A sign-in as {target} failed"),
        "login_throttled" => {
            format!("Sign-ins as {target} were slowed down after repeated failures")
        }
        "logout" => format!("{actor} signed out"),
        "session_revoked" if target == actor => format!("{actor} ended one of their own sessions"),
        "session_revoked" => format!("{actor} ended a session of {target}"),
        "all_sessions_revoked" if target == actor => {
            format!("{actor} signed out of {} elsewhere", ended())
        }
        "all_sessions_revoked" => format!("{actor} ended {} of {target}", ended()),
        "roles_changed" => {
            let (before, after) = detail.split_once(" -> ").unwrap_or(("", detail));
            format!(
                "{actor} changed {} roles from {} to {}",
                whose(target),
                roles(before),
                roles(after)
            )
        }
        "user_disabled" => format!("{actor} disabled {target}, ending {}", ended()),
        "user_enabled" => format!("{actor} enabled {target}"),
        "user_created" => {
            let list = detail.strip_prefix("roles: ").unwrap_or_default();
            match list.split(',').filter(|r| !r.is_empty()).count() {
                0 => format!("{actor} created {target}, with no role"),
                1 => format!("{actor} created {target}, with role {list}"),
                _ => format!("{actor} created {target}, with roles {}", roles(list)),
            }
        }
        "user_unlocked" => format!("{actor} unlocked {target} after failed sign-ins"),
        "user_deleted" => format!("{actor} deleted {target}, ending {}", ended()),
        "password_changed" => format!("{actor} changed their password"),
        "password_reset" => format!("{actor} reset {} password", whose(target)),
        "step_up" => format!("{actor} confirmed their password"),
        "refresh_token_reused" => {
            format!("A refresh token of {target} was used twice; that sign-in was ended")
        }
        other => format!("{actor} {other} {target} {detail}")
            .trim()
            .to_owned(),
    }
}

#[derive(Template)]
#[template(path = "admin.html")]
struct OverviewPage<'a> {
    nav: Option<Nav>,
    username: &'a str,
    store_kind: &'a str,
    mode: &'a str,
    active_sessions: u64,
    user_count: u64,
    logins_hour: u64,
    failed_hour: u64,
    revocations_hour: u64,
    /// "97.1 % of 10,482 loads", when the near-cache runs.
    near_cache: Option<String>,
    chart: Chart,
    audit: Vec<AuditRow>,
}

const CHART_HOURS: usize = 3;

/// `GET /admin`: the overview.
#[tracing::instrument(name = "admin overview", skip_all, fields(username = %identity.username))]
pub async fn get(
    req: HttpRequest,
    identity: Identity,
    state: web::Data<AppState>,
) -> Result<HttpResponse, PageError> {
    require_admin(&identity, &req)?;
    let store = &state.store;
    let minutes = CHART_HOURS * 60;
    let logins = store.stats(Stat::Login, minutes).await?;
    let failed = store.stats(Stat::LoginFailed, minutes).await?;
    let revocations = store.stats(Stat::Revocation, 60).await?;
    let last_hour = |series: &[u64]| series[series.len().saturating_sub(60)..].iter().sum();
    let page = OverviewPage {
        nav: Some(Nav::for_identity(&identity)?),
        username: &identity.username,
        store_kind: store.kind(),
        mode: state.settings.auth.mode.as_str(),
        active_sessions: store.active_sessions().await?,
        user_count: store.user_count().await?,
        logins_hour: last_hour(&logins),
        failed_hour: last_hour(&failed),
        revocations_hour: revocations.iter().sum(),
        near_cache: state.settings.near_cache_on().then(|| {
            let near = &state.metrics.near_cache;
            match near.hit_ratio() {
                Some(ratio) => format!(
                    "{:.1} % of {} loads",
                    ratio * 100.0,
                    near.hits.get() + near.misses.get()
                ),
                None => "no loads yet".to_owned(),
            }
        }),
        chart: Chart::new(&logins, &failed, CHART_HOURS, state.clock.now()),
        audit: store
            .audit(crate::store::AuditFilter::default(), None, 10)
            .await?
            .items
            .into_iter()
            .map(AuditRow::from)
            .collect(),
    };
    html(StatusCode::OK, &page)
}

/// Shown next to every revoke button: what revoking does to a credential already issued.
/// Empty where revocation is immediate (sessions, JWT with the deny-list).
pub fn revoke_note(state: &AppState) -> String {
    let settings = &state.settings;
    if settings.auth.mode != crate::config::AuthMode::Jwt || settings.jwt.denylist {
        return String::new();
    }
    let minutes = settings.jwt.access_ttl_secs.div_ceil(60);
    format!(
        " Stops working within {minutes} minute{}: an access token already issued stays valid \
         until it expires.",
        if minutes == 1 { "" } else { "s" }
    )
}

#[cfg(test)]
mod tests {
    use super::audit_sentence;
    use crate::store::AuditEntry;

    fn entry(action: &str, actor: &str, target: &str, detail: &str) -> AuditEntry {
        AuditEntry {
            id: String::new(),
            at: 0,
            action: action.into(),
            actor: actor.into(),
            target: target.into(),
            detail: detail.into(),
            ip: String::new(),
        }
    }

    #[test]
    fn audit_entries_read_as_sentences() {
        for (e, sentence) in [
            (
                entry("roles_changed", "admin", "bob", "viewer -> editor,admin"),
                "admin changed bob's roles from viewer to editor, admin",
            ),
            (
                entry("roles_changed", "boss", "boss", "admin -> "),
                "boss changed their own roles from admin to no role",
            ),
            (
                entry(
                    "all_sessions_revoked",
                    "boss",
                    "alice",
                    "ended 2 session(s)",
                ),
                "boss ended 2 sessions of alice",
            ),
            (
                entry(
                    "all_sessions_revoked",
                    "alice",
                    "alice",
                    "ended 1 other session(s)",
                ),
                "alice signed out of 1 session elsewhere",
            ),
            (
                entry("user_created", "system", "admin", "roles: admin"),
                "system created admin, with role admin",
            ),
            (
                entry("password_reset", "boss", "gina", "ended 0 session(s)"),
                "boss reset gina's password",
            ),
            (
                entry("login_failed", "", "carl", ""),
                "A sign-in as carl failed",
            ),
            (entry("something_new", "x", "y", ""), "x something_new y"),
        ] {
            assert_eq!(audit_sentence(&e), sentence);
        }
    }
}

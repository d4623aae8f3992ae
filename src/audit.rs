//! The audit log: who did what to whom, from where. Written to the store (a capped Redis
//! stream, globally and per user) and emitted as a structured tracing event. Entries never
//! hold a password, a token or a session ID: sessions appear by their public handle.

use crate::metrics::{KindLabels, Metrics, OutcomeLabels};
use crate::store::{AuditEntry, Stat, Store, StoreError};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    LoginSucceeded,
    LoginFailed,
    LoginThrottled,
    Logout,
    SessionRevoked,
    AllSessionsRevoked,
    RolesChanged,
    UserDisabled,
    UserEnabled,
    UserCreated,
    UserDeleted,
    UserUnlocked,
    PasswordChanged,
    PasswordReset,
    StepUp,
    RefreshReuse,
}

impl Action {
    /// Every action, in the order the audit filter offers them.
    pub const ALL: [Action; 16] = [
        Action::LoginSucceeded,
        Action::LoginFailed,
        Action::LoginThrottled,
        Action::Logout,
        Action::SessionRevoked,
        Action::AllSessionsRevoked,
        Action::RolesChanged,
        Action::UserDisabled,
        Action::UserEnabled,
        Action::UserCreated,
        Action::UserDeleted,
        Action::UserUnlocked,
        Action::PasswordChanged,
        Action::PasswordReset,
        Action::StepUp,
        Action::RefreshReuse,
    ];

    pub fn from_code(code: &str) -> Option<Action> {
        Action::ALL.into_iter().find(|a| a.as_str() == code)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Action::LoginSucceeded => "login",
            Action::LoginFailed => "login_failed",
            Action::LoginThrottled => "login_throttled",
            Action::Logout => "logout",
            Action::SessionRevoked => "session_revoked",
            Action::AllSessionsRevoked => "all_sessions_revoked",
            Action::RolesChanged => "roles_changed",
            Action::UserDisabled => "user_disabled",
            Action::UserEnabled => "user_enabled",
            Action::UserCreated => "user_created",
            Action::UserDeleted => "user_deleted",
            Action::UserUnlocked => "user_unlocked",
            Action::PasswordChanged => "password_changed",
            Action::PasswordReset => "password_reset",
            Action::StepUp => "step_up",
            Action::RefreshReuse => "refresh_token_reused",
        }
    }

    /// `ended`: sessions the action ended, which is what the revocation counter adds.
    fn count(self, metrics: &Metrics, ended: u64) {
        let outcome = match self {
            Action::LoginSucceeded => Some("success"),
            Action::LoginFailed => Some("failure"),
            Action::LoginThrottled => Some("throttled"),
            _ => None,
        };
        if let Some(outcome) = outcome {
            metrics
                .logins
                .get_or_create(&OutcomeLabels { outcome })
                .inc();
        }
        let kind = match self {
            Action::Logout => Some("logout"),
            Action::SessionRevoked => Some("revoke"),
            Action::AllSessionsRevoked => Some("revoke_all"),
            Action::UserDisabled => Some("disable"),
            Action::UserDeleted => Some("delete"),
            Action::PasswordChanged | Action::PasswordReset => Some("password"),
            Action::RefreshReuse => Some("refresh_reuse"),
            _ => None,
        };
        if let Some(kind) = kind
            && ended > 0
        {
            metrics
                .revocations
                .get_or_create(&KindLabels { kind })
                .inc_by(ended);
        }
    }

    /// The dashboard's per-minute counter this action feeds, if any.
    fn stat(self) -> Option<Stat> {
        match self {
            Action::LoginSucceeded => Some(Stat::Login),
            Action::LoginFailed => Some(Stat::LoginFailed),
            Action::Logout
            | Action::SessionRevoked
            | Action::AllSessionsRevoked
            | Action::UserDisabled
            | Action::UserDeleted
            | Action::PasswordChanged
            | Action::PasswordReset
            | Action::RefreshReuse => Some(Stat::Revocation),
            _ => None,
        }
    }
}

/// One thing that happened: `actor` did `action` to `target` from `ip`.
pub struct Event<'a> {
    pub action: Action,
    pub actor: &'a str,
    pub target: &'a str,
    pub detail: &'a str,
    pub ip: &'a str,
    /// Sessions (or refresh families) the action ended: the revocation counters count these,
    /// so an action that ended none adds nothing.
    pub ended: u64,
}

pub async fn record(
    store: &Store,
    metrics: &Metrics,
    now: i64,
    event: Event<'_>,
) -> Result<(), StoreError> {
    let Event {
        action,
        actor,
        target,
        detail,
        ip,
        ended,
    } = event;
    action.count(metrics, ended);
    tracing::info!(
        target: "audit",
        action = action.as_str(),
        actor,
        subject = target,
        detail,
        ip,
        "audit"
    );
    let entry = AuditEntry {
        id: String::new(),
        at: now,
        action: action.as_str().to_owned(),
        actor: actor.to_owned(),
        target: target.to_owned(),
        detail: detail.to_owned(),
        ip: ip.to_owned(),
    };
    // Revocations count the sessions ended (none, nothing); the other stats count events.
    let stat = action
        .stat()
        .map(|stat| (stat, if stat == Stat::Revocation { ended } else { 1 }))
        .filter(|(_, amount)| *amount > 0);
    store.record(&entry, stat).await
}

//! Login throttling, per account and per client IP, counted in the store so that every
//! instance sharing it enforces one limit. Only failures count: a user who types the password
//! right is never locked out by their own success, and an attacker's guesses all count.

use crate::config::ThrottleSettings;
use crate::store::{Store, StoreError};

pub struct LoginThrottle<'a> {
    store: &'a Store,
    settings: &'a ThrottleSettings,
    counters: [String; 2],
}

/// The failed-login counter of one account.
pub fn account_counter(username: &str) -> String {
    format!("acct:{username}")
}

/// Whether `failures` in the current window refuse further logins: the one rule `check`
/// applies and the dashboards show ("throttled").
pub fn over_limit(failures: u64, limit: u64) -> bool {
    failures >= limit
}

/// Each account's failed logins in its current window (one store round trip).
pub async fn account_failures(store: &Store, users: &[&str]) -> Result<Vec<u64>, StoreError> {
    if users.is_empty() {
        return Ok(Vec::new());
    }
    let keys: Vec<String> = users.iter().map(|name| account_counter(name)).collect();
    Ok(store
        .counters(&keys)
        .await?
        .into_iter()
        .map(|counter| counter.count)
        .collect())
}

/// The login may go ahead, or must wait this many seconds.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    Allowed,
    Throttled { retry_after_secs: i64 },
}

impl<'a> LoginThrottle<'a> {
    pub fn new(
        store: &'a Store,
        settings: &'a ThrottleSettings,
        username: &str,
        client_ip: &str,
    ) -> Self {
        LoginThrottle {
            store,
            settings,
            counters: [account_counter(username), format!("ip:{client_ip}")],
        }
    }

    pub async fn check(&self) -> Result<Verdict, StoreError> {
        let counters = self.store.counters(&self.counters).await?;
        let limits = [
            self.settings.max_failures_per_account,
            self.settings.max_failures_per_ip,
        ];
        let retry_after_secs = counters
            .iter()
            .zip(limits)
            .filter(|(counter, limit)| over_limit(counter.count, *limit))
            .map(|(counter, _)| counter.resets_in_secs.max(1))
            .max();
        Ok(match retry_after_secs {
            Some(retry_after_secs) => Verdict::Throttled { retry_after_secs },
            None => Verdict::Allowed,
        })
    }

    pub async fn record_failure(&self) -> Result<(), StoreError> {
        self.store
            .bump_counters(&self.counters, self.settings.window_secs as i64)
            .await
    }
}

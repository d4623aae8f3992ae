//! What every handler can reach: the store, the settings, the clock and the metrics. Below
//! routes and auth, so both read it without importing each other (the authenticator, which
//! is auth's own, is app data of its own: `web::Data<Authenticator>`).

use std::sync::Arc;

use crate::clock::Clock;
use crate::config::Settings;
use crate::metrics::Metrics;
use crate::store::{Store, StoreError};

/// What every handler can reach.
pub struct AppState {
    pub store: Arc<Store>,
    pub settings: Arc<Settings>,
    pub clock: Clock,
    /// Verified against when the user does not exist, so that case costs the same time.
    pub dummy_phc: Arc<str>,
    pub metrics: Arc<Metrics>,
}

impl AppState {
    pub async fn audit(
        &self,
        action: crate::audit::Action,
        actor: &str,
        target: &str,
        detail: &str,
        ip: &str,
    ) -> Result<(), StoreError> {
        let event = crate::audit::Event {
            action,
            actor,
            target,
            detail,
            ip,
            // Logout and refresh-token reuse end one session (family) each.
            ended: 1,
        };
        crate::audit::record(&self.store, &self.metrics, self.clock.now(), event).await
    }
}

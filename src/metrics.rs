//! Prometheus metrics (prometheus-client), served at `GET /metrics`. Tests also read them to
//! prove that work happened (an unknown user still costs a password verification) without
//! timing anything.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabels {
    pub outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabels {
    pub kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ClassLabels {
    pub class: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct HttpLabels {
    pub route: String,
    pub status: u16,
}

pub struct Metrics {
    registry: Registry,
    pub password_verifications: Counter,
    pub logins: Family<OutcomeLabels, Counter>,
    pub revocations: Family<KindLabels, Counter>,
    pub active_sessions: Gauge,
    pub store_round_trip: Histogram,
    pub store_errors: Family<ClassLabels, Counter>,
    pub http_requests: Family<HttpLabels, Histogram>,
}

impl Default for Metrics {
    fn default() -> Self {
        let password_verifications = Counter::default();
        let logins = Family::<OutcomeLabels, Counter>::default();
        let revocations = Family::<KindLabels, Counter>::default();
        let active_sessions = Gauge::default();
        // 20 us .. ~1.3 s: loopback Redis sits at the bottom, a struggling one at the top.
        let store_round_trip = Histogram::new(exponential_buckets(0.000_02, 2.0, 17));
        let store_errors = Family::<ClassLabels, Counter>::default();
        let http_requests = Family::<HttpLabels, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.000_05, 2.0, 18))
        });
        let mut registry = Registry::with_prefix("sessiond");
        registry.register(
            "password_verifications",
            "argon2id verifications run (logins, step-ups, password changes)",
            password_verifications.clone(),
        );
        registry.register("logins", "Login attempts by outcome", logins.clone());
        registry.register(
            "revocations",
            "Sessions ended by kind (logout, revoke, revoke_all, disable, password)",
            revocations.clone(),
        );
        registry.register(
            "active_sessions",
            "Authenticated sessions seen within the idle timeout (estimated in Redis)",
            active_sessions.clone(),
        );
        registry.register(
            "store_round_trip_seconds",
            "Duration of one Redis exchange",
            store_round_trip.clone(),
        );
        registry.register(
            "store_errors",
            "Failed Redis exchanges by class: unreachable (answered 503) or bug (a command \
             Redis refused, answered 500)",
            store_errors.clone(),
        );
        registry.register(
            "http_request_duration_seconds",
            "HTTP request durations by route pattern and status",
            http_requests.clone(),
        );
        Metrics {
            registry,
            password_verifications,
            logins,
            revocations,
            active_sessions,
            store_round_trip,
            store_errors,
            http_requests,
        }
    }
}

impl Metrics {
    /// The Prometheus text exposition of every metric.
    pub fn encode(&self) -> Result<String, std::fmt::Error> {
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &self.registry)?;
        Ok(text)
    }
}

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
    pub near_cache: NearCacheMetrics,
}

/// The near-cache (`store.near_cache`): how often the hot path was served without Redis.
#[derive(Default)]
pub struct NearCacheMetrics {
    /// Requests answered from the cache, with no Redis round trip.
    pub hits: Counter,
    /// Requests that loaded from Redis through the tracking connection (and filled the cache).
    pub misses: Counter,
    /// Keys Redis said changed (a flush counts one).
    pub invalidations: Counter,
    /// Requests that loaded the normal way: the tracking connection down or its heartbeat late,
    /// bytes on the tracking socket not handled yet, or another request loading the session.
    pub fallbacks: Counter,
    pub entries: Gauge,
}

impl NearCacheMetrics {
    /// Hits over hits and misses, when there were any.
    pub fn hit_ratio(&self) -> Option<f64> {
        let hits = self.hits.get() as f64;
        let total = hits + self.misses.get() as f64;
        (total > 0.0).then(|| hits / total)
    }
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
        let near_cache = NearCacheMetrics::default();
        registry.register(
            "near_cache_hits",
            "Authenticated requests served from the near-cache, without Redis",
            near_cache.hits.clone(),
        );
        registry.register(
            "near_cache_misses",
            "Session loads through the near-cache's tracking connection",
            near_cache.misses.clone(),
        );
        registry.register(
            "near_cache_invalidations",
            "Keys Redis reported changed to the near-cache (a flush counts one)",
            near_cache.invalidations.clone(),
        );
        registry.register(
            "near_cache_fallbacks",
            "Session loads that bypassed the near-cache: tracking connection down or heartbeat late, \
             an invalidation possibly on its way, or the session being loaded by another request",
            near_cache.fallbacks.clone(),
        );
        registry.register(
            "near_cache_entries",
            "Sessions held in the near-cache",
            near_cache.entries.clone(),
        );
        Metrics {
            registry,
            near_cache,
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

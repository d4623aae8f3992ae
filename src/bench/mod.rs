//! `sessiond bench`: sessions and JWTs side by side on one machine, measured the same way, with
//! a report a skeptical reader can check (`bench/report.md`, `report.json`, SVG charts).
//!
//! Every mode runs as two instances of the real app (in this process, sharing one
//! redis-server, one cookie key and one JWT key, as instances behind a load balancer do). The
//! load (`wrk`, one process per instance) spreads over many live credentials picked at random
//! per request. Modes run interleaved in rounds, and each figure is the median of its rounds
//! with the min-max spread. Revocation windows are measured across instances: the action on
//! instance A, a stolen copy of the credential hammered on instance B.

mod cost;
mod fleet;
mod probe;
mod redis_process;
pub mod report;
mod revocation;
mod scale;
pub mod stats;
mod wrk;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};
use serde::{Deserialize, Serialize};

use crate::config::{JwtAlgorithm, Settings};
use cost::{PageView, RequestCost, used_memory};
use fleet::{
    Issuer, RunningApp, SharedKeys, add_user, add_users, issue_many, owners, settings_for,
    write_lines,
};
use probe::Client;
pub use probe::form_value;
pub use report::Report;
pub use revocation::Windows;
pub use scale::ScaleResult;
use stats::Spread;
use wrk::{Background, Load};

#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    #[error("`{0}` was not found: install it (apt-get install {1})")]
    Missing(&'static str, &'static str),
    #[error("benchmark set-up failed: {0}")]
    Setup(String),
    #[error(transparent)]
    Io(#[from] std::io::Error),
    #[error("the app did not start")]
    Startup(#[from] crate::startup::StartupError),
    #[error("store error")]
    Store(#[from] crate::store::StoreError),
    #[error("redis error")]
    Redis(#[from] redis::RedisError),
    #[error("could not write the report")]
    Report(#[from] askama::Error),
}

/// What to run; `None` takes the quick or full run's default.
#[derive(Debug, Clone, Default)]
pub struct BenchOptions {
    pub quick: bool,
    pub redis_url: Option<String>,
    /// The Redis Cluster of the `session (Redis Cluster)` mode (`redis+cluster://…`) instead
    /// of the three masters the benchmark starts.
    pub store_url: Option<String>,
    pub out: PathBuf,
    /// Live credentials the load spreads over (default 10,000).
    pub sessions: Option<usize>,
    /// Interleaved rounds of every mode (default 3).
    pub rounds: Option<usize>,
    /// Revocation trials per mode and action (default 200).
    pub trials: Option<usize>,
    /// Users of the scale test, with 10 sessions each (default 100,000; 0 skips it).
    pub scale_users: Option<usize>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Kind {
    NoAuth,
    SessionRedis,
    /// Session on a three-master Redis Cluster (`--store-url`, or one the benchmark starts).
    SessionCluster,
    /// Session on Redis with the near-cache (`store.near_cache`).
    SessionNearCache,
    /// Session on Redis, asked through `/api/authz/forward-auth` as a reverse proxy asks.
    ForwardAuth,
    SessionMemory,
    Jwt {
        algorithm: JwtAlgorithm,
        denylist: bool,
    },
}

/// The protected app forward auth is asked about, and its admin area (role rule).
pub const FORWARD_AUTH_HOST: &str = "app.bench.test";

impl Kind {
    /// What the load and the probes ask: `/api/me`, or forward auth's endpoint.
    pub fn request_path(self) -> &'static str {
        match self {
            Kind::ForwardAuth => "/api/authz/forward-auth",
            _ => "/api/me",
        }
    }

    /// The headers a reverse proxy adds when it asks about `uri` (none for the other modes).
    pub fn proxy_headers(self, uri: &str) -> Vec<(String, String)> {
        match self {
            Kind::ForwardAuth => vec![
                ("X-Forwarded-Proto".into(), "https".into()),
                ("X-Forwarded-Host".into(), FORWARD_AUTH_HOST.into()),
                ("X-Forwarded-Uri".into(), uri.into()),
                ("X-Forwarded-Method".into(), "GET".into()),
            ],
            _ => Vec::new(),
        }
    }

    fn uses_redis(self) -> bool {
        !matches!(self, Kind::NoAuth | Kind::SessionMemory)
    }

    /// Plain JWT: a revoked access token works until it expires.
    pub fn revokes_at_expiry(self) -> bool {
        matches!(
            self,
            Kind::Jwt {
                denylist: false,
                ..
            }
        )
    }
}

pub const MODES: [(&str, &str, Kind); 11] = [
    ("no-auth", "no auth (ceiling)", Kind::NoAuth),
    ("session-redis", "session (Redis)", Kind::SessionRedis),
    (
        "session-cluster",
        "session (Redis Cluster)",
        Kind::SessionCluster,
    ),
    (
        "session-near-cache",
        "session (Redis + near-cache)",
        Kind::SessionNearCache,
    ),
    (
        "forward-auth",
        "forward auth (session, Redis)",
        Kind::ForwardAuth,
    ),
    ("session-memory", "session (memory)", Kind::SessionMemory),
    (
        "jwt-hs256",
        "JWT HS256",
        Kind::Jwt {
            algorithm: JwtAlgorithm::HS256,
            denylist: false,
        },
    ),
    (
        "jwt-eddsa",
        "JWT EdDSA",
        Kind::Jwt {
            algorithm: JwtAlgorithm::EdDSA,
            denylist: false,
        },
    ),
    (
        "jwt-es256",
        "JWT ES256",
        Kind::Jwt {
            algorithm: JwtAlgorithm::ES256,
            denylist: false,
        },
    ),
    (
        "jwt-rs256",
        "JWT RS256",
        Kind::Jwt {
            algorithm: JwtAlgorithm::RS256,
            denylist: false,
        },
    ),
    (
        "jwt-eddsa-denylist",
        "JWT EdDSA + deny-list",
        Kind::Jwt {
            algorithm: JwtAlgorithm::EdDSA,
            denylist: true,
        },
    ),
];

const PASSWORD: &str = "benchmark horse battery staple";

/// Figures for one mode.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ModeResult {
    pub id: String,
    pub label: String,
    pub kind: Kind,
    /// The credential cookies a signed-in browser holds: (name, bytes of `name=value`).
    pub credential_cookies: Vec<(String, usize)>,
    /// Bytes of the `Cookie` header value sent with every request.
    pub cookie_bytes: usize,
    /// Bytes of the request wrk sends (request line and headers).
    pub request_bytes: usize,
    /// Bytes of the `Set-Cookie` headers of the login response.
    pub set_cookie_bytes: usize,
    /// `GET /api/me` over many credentials, both instances together, per round.
    pub requests_per_sec: Spread,
    pub p50_ms: Spread,
    pub p99_ms: Spread,
    pub p999_ms: Spread,
    /// The same load with one credential for every request (the old benchmark's figure).
    pub one_cookie_requests_per_sec: Spread,
    /// Non-2xx answers and socket errors over all measured loads (must be 0).
    pub load_errors: u64,
    /// Redis round trips (one command each) per request over the many-credential loads,
    /// both instances, heartbeats aside: the steady state the near-cache is judged by.
    #[serde(default)]
    pub load_commands_per_request: Option<f64>,
    /// The near-cache's counters after the rounds, both instances (near-cache mode only).
    #[serde(default)]
    pub near_cache: Option<cost::NearCacheCounts>,
    pub redis: Option<RequestCost>,
    /// Redis memory per live session (or refresh family), index included.
    pub redis_bytes_per_session: Option<f64>,
    pub page_view: PageView,
    pub revocation: Vec<Windows>,
    /// The access-token lifetime the revocation trials ran with (plain JWT modes).
    pub revocation_access_ttl_secs: Option<u64>,
    /// Whether the probe ran on the other instance (the memory store is per process).
    pub revocation_cross_instance: bool,
}

/// Login cost, measured in session (Redis) mode.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LoginCost {
    pub logins_per_sec: f64,
    pub p99_without_storm_us: u64,
    pub p99_during_storm_us: u64,
}

/// How long and how much of everything a run does.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Plan {
    pub warmup_secs: u64,
    pub measure_secs: u64,
    pub one_cookie_secs: u64,
    /// wrk connections per instance.
    pub connections: usize,
    pub sessions: usize,
    pub rounds: usize,
    pub trials: usize,
    /// Instant-revocation modes: trials in flight, probers per trial.
    pub trial_concurrency: usize,
    pub probers: usize,
    /// Plain JWT trials last the token's lifetime: many run at once, fewer probers each.
    pub jwt_trial_concurrency: usize,
    #[serde(default = "one")]
    pub jwt_probers: usize,
    pub jwt_ttl_for_revocation: u64,
    pub scale_users: usize,
    pub scale_sessions_per_user: usize,
    pub page_samples: usize,
    pub login_samples: usize,
}

fn one() -> usize {
    1
}

impl Plan {
    fn new(options: &BenchOptions) -> Plan {
        let mut plan = if options.quick {
            Plan {
                warmup_secs: 0,
                measure_secs: 1,
                one_cookie_secs: 1,
                connections: 4,
                sessions: 200,
                rounds: 1,
                trials: 2,
                trial_concurrency: 2,
                probers: 2,
                jwt_trial_concurrency: 20,
                jwt_probers: 1,
                jwt_ttl_for_revocation: 2,
                scale_users: 200,
                scale_sessions_per_user: 10,
                page_samples: 2,
                login_samples: 1,
            }
        } else {
            Plan {
                warmup_secs: 1,
                measure_secs: 5,
                one_cookie_secs: 2,
                connections: 32,
                sessions: 10_000,
                rounds: 3,
                trials: 200,
                trial_concurrency: 4,
                probers: 4,
                jwt_trial_concurrency: 100,
                jwt_probers: 2,
                jwt_ttl_for_revocation: 2,
                scale_users: 100_000,
                scale_sessions_per_user: 10,
                page_samples: 50,
                login_samples: 10,
            }
        };
        if let Some(n) = options.sessions {
            plan.sessions = n.max(1);
        }
        if let Some(n) = options.rounds {
            plan.rounds = n.max(1);
        }
        if let Some(n) = options.trials {
            plan.trials = n.max(1);
        }
        if let Some(n) = options.scale_users {
            plan.scale_users = n;
        }
        plan
    }

    fn load(&self, secs: u64) -> Load {
        Load {
            url: String::new(),
            threads: 1,
            connections: self.connections,
            duration: Duration::from_secs(secs),
            cookie_file: None,
            form: None,
            headers: Vec::new(),
        }
    }
}

/// One mode, deployed: two instances and the credentials its load uses.
struct Deployed {
    id: &'static str,
    label: &'static str,
    kind: Kind,
    a: RunningApp,
    b: RunningApp,
    issuer: Option<Issuer>,
    /// Cookie lines per instance (the memory store is per instance; Redis modes share one).
    many: [PathBuf; 2],
    one: [PathBuf; 2],
    /// A credential valid on instance A.
    sample_cookie: String,
    credential_cookies: Vec<(String, usize)>,
    set_cookie_bytes: usize,
    redis_bytes_per_session: Option<f64>,
}

impl Deployed {
    fn loads(&self, files: &[PathBuf; 2], template: Load) -> Vec<Load> {
        [&self.a, &self.b]
            .iter()
            .zip(files)
            .map(|(app, file)| Load {
                url: format!("{}{}", app.base, self.kind.request_path()),
                cookie_file: Some(file.clone()),
                headers: self.kind.proxy_headers("/docs"),
                ..template.clone()
            })
            .collect()
    }

    async fn stop(self) {
        self.a.stop().await;
        self.b.stop().await;
        for file in self.many.iter().chain(&self.one) {
            let _ = std::fs::remove_file(file);
        }
    }
}

struct Context {
    redis_url: String,
    redis: cost::Redis,
    /// The cluster mode's store, and its masters asked directly.
    cluster_url: String,
    cluster: cost::Redis,
    keys: SharedKeys,
    phc: String,
    workers: usize,
    run_id: String,
    plan: Plan,
}

impl Context {
    fn store_url(&self, kind: Kind) -> &str {
        if kind == Kind::SessionCluster {
            &self.cluster_url
        } else {
            &self.redis_url
        }
    }

    /// The servers that hold `kind`'s data, for counting their work and memory.
    fn redis_for(&mut self, kind: Kind) -> &mut cost::Redis {
        if kind == Kind::SessionCluster {
            &mut self.cluster
        } else {
            &mut self.redis
        }
    }

    fn file(&self, name: &str) -> PathBuf {
        std::env::temp_dir().join(format!("sessiond-bench-{}-{name}", self.run_id))
    }
}

/// Starts both instances of a mode, signs in once to size the cookies, and issues the
/// credentials the load spreads over.
async fn deploy(
    ctx: &mut Context,
    index: usize,
    (id, label, kind): (&'static str, &'static str, Kind),
    prefix: &str,
    adjust: impl Fn(&mut Settings),
    credentials: usize,
) -> Result<Deployed, BenchError> {
    let mut settings = settings_for(kind, ctx.store_url(kind), prefix, &ctx.keys, ctx.workers);
    adjust(&mut settings);
    let a = RunningApp::start(settings.clone()).await?;
    let b = RunningApp::start(settings.clone()).await?;
    add_user(&a.store, "bench", &["admin"], &ctx.phc).await?;
    if kind == Kind::SessionMemory {
        add_user(&b.store, "bench", &["admin"], &ctx.phc).await?;
    }
    let files = |tag: &str| {
        [
            ctx.file(&format!("{index}{tag}-a")),
            ctx.file(&format!("{index}{tag}-b")),
        ]
    };
    let (many, one) = (files("many"), files("one"));
    let mut deployed = Deployed {
        id,
        label,
        kind,
        a,
        b,
        issuer: None,
        many,
        one,
        sample_cookie: String::new(),
        credential_cookies: Vec::new(),
        set_cookie_bytes: 0,
        redis_bytes_per_session: None,
    };
    if kind == Kind::NoAuth {
        for file in deployed.many.iter().chain(&deployed.one) {
            write_lines(file, &[String::new()])?;
        }
        return Ok(deployed);
    }
    // One real login: what a browser is given, byte for byte.
    let browser = Client::new(&deployed.a.base)?;
    let login = browser.login("bench", PASSWORD).await?;
    deployed.credential_cookies = login
        .set_cookies
        .iter()
        .filter_map(|raw| actix_web::cookie::Cookie::parse(raw.clone()).ok())
        .filter(|c| !c.value().is_empty())
        .map(|c| (c.name().to_owned(), c.name().len() + 1 + c.value().len()))
        .collect();
    deployed.set_cookie_bytes = login
        .set_cookies
        .iter()
        .map(|v| "Set-Cookie: ".len() + v.len() + 2)
        .sum();

    let issuer = Issuer::new(&deployed.a, &settings, &ctx.keys, "bench").await?;
    // Users exist before the memory is measured: the figure is what sessions add.
    let users = owners(credentials);
    add_users(&deployed.a.store, &users, &ctx.phc).await?;
    let before = used_memory(ctx.redis_for(kind)).await?;
    let lines_a = issue_many(&issuer, &deployed.a.store, credentials, &users).await?;
    if kind.uses_redis() {
        let after = used_memory(ctx.redis_for(kind)).await?;
        deployed.redis_bytes_per_session = Some((after - before) as f64 / credentials as f64);
    }
    let lines_b = if kind == Kind::SessionMemory {
        add_users(&deployed.b.store, &users, &ctx.phc).await?;
        issue_many(&issuer, &deployed.b.store, credentials, &users).await?
    } else {
        lines_a.clone()
    };
    write_lines(&deployed.many[0], &lines_a)?;
    write_lines(&deployed.many[1], &lines_b)?;
    write_lines(&deployed.one[0], &lines_a[..1])?;
    write_lines(&deployed.one[1], &lines_b[..1])?;
    deployed.sample_cookie = lines_a[0].clone();
    deployed.issuer = Some(issuer);
    Ok(deployed)
}

/// Per-round figures of one mode.
#[derive(Default)]
struct Rounds {
    rps: Vec<f64>,
    p50: Vec<f64>,
    p99: Vec<f64>,
    p999: Vec<f64>,
    one_rps: Vec<f64>,
    errors: u64,
    /// Round trips the instances made to Redis during the many-credential loads (their own
    /// counters: every command they sent, heartbeats aside), and requests served.
    commands: u64,
    requests: u64,
}

pub async fn run(options: BenchOptions) -> Result<Report, BenchError> {
    wrk::require()?;
    let started = Instant::now();
    let activity = report::Activity::start();
    let plan = Plan::new(&options);
    let own_redis = match &options.redis_url {
        Some(_) => None,
        None => Some(redis_process::RedisProcess::start()?),
    };
    let redis_url = options
        .redis_url
        .clone()
        .or_else(|| own_redis.as_ref().map(|r| r.url.clone()))
        .unwrap_or_default();
    let redis = cost::Redis::connect(std::slice::from_ref(&redis_url)).await?;
    let own_cluster = match &options.store_url {
        Some(_) => None,
        None => Some(redis_process::ClusterProcess::start().await?),
    };
    let cluster_url = options
        .store_url
        .clone()
        .or_else(|| own_cluster.as_ref().map(|c| c.url()))
        .unwrap_or_default();
    let cluster = cost::Redis::connect(&cluster_masters(&cluster_url).await?).await?;
    // Two instances share the machine the way one instance would: half the cores each.
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    let phc = crate::auth::password::hash_password(PASSWORD.to_owned())
        .await
        .map_err(|e| BenchError::Setup(e.to_string()))?;
    let run_id = crate::auth::random::random_token()
        .map_err(|e| BenchError::Setup(e.to_string()))?[..6]
        .to_owned();
    let mut ctx = Context {
        redis_url,
        redis,
        cluster_url,
        cluster,
        keys: SharedKeys::new()?,
        phc,
        workers: (cores / 2).max(1),
        run_id,
        plan: plan.clone(),
    };

    let credential_modes = MODES.iter().filter(|m| m.2 != Kind::NoAuth).count();
    let steps = MODES.len() + plan.rounds * MODES.len() + MODES.len() + credential_modes + 2;
    let progress = ProgressBar::new(steps as u64);
    progress.set_style(
        ProgressStyle::with_template("{elapsed_precise} [{bar:30}] {pos}/{len} {msg}")
            .map_err(|e| BenchError::Setup(e.to_string()))?
            .progress_chars("=> "),
    );

    let mut phases = Phases::new(progress.is_hidden());

    // Deploy every mode up front: rounds interleave them.
    let mut fleet = Vec::new();
    for (index, mode) in MODES.iter().enumerate() {
        progress.set_message(format!("{}: starting, issuing credentials", mode.1));
        // Short, like the production default `sd:`: key length is part of the memory figure.
        let prefix = format!("b{}{index}:", &ctx.run_id[..2]);
        fleet.push(deploy(&mut ctx, index, *mode, &prefix, |_| {}, plan.sessions).await?);
        progress.inc(1);
    }
    phases.done("deploying every mode, issuing credentials");

    let mut rounds: Vec<Rounds> = fleet.iter().map(|_| Rounds::default()).collect();
    for round in 0..plan.rounds {
        for (mode, figures) in fleet.iter().zip(rounds.iter_mut()) {
            progress.set_message(format!(
                "round {} of {}: {}",
                round + 1,
                plan.rounds,
                mode.label
            ));
            if plan.warmup_secs > 0 {
                wrk::run_all(&mode.loads(&mode.many, plan.load(plan.warmup_secs))).await?;
            }
            let trips_before = if mode.kind.uses_redis() {
                Some(cost::round_trips(&mode.a).await? + cost::round_trips(&mode.b).await?)
            } else {
                None
            };
            let many = wrk::run_all(&mode.loads(&mode.many, plan.load(plan.measure_secs))).await?;
            if let Some(before) = trips_before {
                let after = cost::round_trips(&mode.a).await? + cost::round_trips(&mode.b).await?;
                figures.commands += after.saturating_sub(before);
                figures.requests += many.requests;
            }
            let one = wrk::run_all(&mode.loads(&mode.one, plan.load(plan.one_cookie_secs))).await?;
            figures.rps.push(many.requests_per_sec());
            figures.p50.push(many.p50_us as f64 / 1000.0);
            figures.p99.push(many.p99_us as f64 / 1000.0);
            figures.p999.push(many.p999_us as f64 / 1000.0);
            figures.one_rps.push(one.requests_per_sec());
            figures.errors +=
                many.status_errors + many.socket_errors + one.status_errors + one.socket_errors;
            progress.inc(1);
        }
    }
    phases.done("interleaved rounds");

    let mut results = Vec::new();
    for (mode, figures) in fleet.iter().zip(rounds) {
        progress.set_message(format!("{}: Redis cost, page view", mode.label));
        let redis_cost = if mode.kind.uses_redis() {
            Some(cost::per_request(&mode.a, ctx.redis_for(mode.kind), &mode.sample_cookie).await?)
        } else {
            None
        };
        let near_cache = if mode.kind == Kind::SessionNearCache {
            Some(cost::near_cache_counts([&mode.a, &mode.b]).await?)
        } else {
            None
        };
        let page_view = cost::page_view(
            &mode.a,
            mode.kind.uses_redis().then_some(ctx.redis_for(mode.kind)),
            &mode.sample_cookie,
        )
        .await?;
        results.push(ModeResult {
            id: mode.id.into(),
            label: mode.label.into(),
            kind: mode.kind,
            cookie_bytes: login_cookie_bytes(&mode.credential_cookies),
            request_bytes: wrk_request_bytes(&mode.a, login_cookie_bytes(&mode.credential_cookies)),
            set_cookie_bytes: mode.set_cookie_bytes,
            credential_cookies: mode.credential_cookies.clone(),
            requests_per_sec: Spread::of(figures.rps),
            p50_ms: Spread::of(figures.p50),
            p99_ms: Spread::of(figures.p99),
            p999_ms: Spread::of(figures.p999),
            one_cookie_requests_per_sec: Spread::of(figures.one_rps),
            load_errors: figures.errors,
            near_cache,
            load_commands_per_request: (figures.requests > 0)
                .then(|| figures.commands as f64 / figures.requests as f64),
            redis: redis_cost,
            redis_bytes_per_session: mode.redis_bytes_per_session,
            page_view,
            revocation: Vec::new(),
            revocation_access_ttl_secs: None,
            revocation_cross_instance: mode.kind != Kind::SessionMemory,
        });
        progress.inc(1);
    }
    phases.done("Redis cost and page view");

    progress.set_message("session (Redis): login storm");
    let login_cost = match fleet.iter().find(|m| m.kind == Kind::SessionRedis) {
        Some(mode) => Some(login_storm(mode, &plan).await?),
        None => None,
    };
    phases.done("login storm");
    progress.inc(1);

    // The scale test reuses session (Redis)'s key material on a prefix of its own.
    let scale = if plan.scale_users > 0 {
        progress.set_message("scale: issuing sessions");
        let prefix = format!("b{}S:", &ctx.run_id[..2]);
        let mode = MODES
            .iter()
            .find(|m| m.2 == Kind::SessionRedis)
            .copied()
            .ok_or_else(|| BenchError::Setup("no session mode".into()))?;
        let scaled = deploy(&mut ctx, 90, mode, &prefix, |_| {}, 1).await?;
        let scale_plan = scale::ScalePlan {
            users: plan.scale_users,
            sessions_per_user: plan.scale_sessions_per_user,
            sample: plan.sessions,
            page_samples: plan.page_samples,
            login_samples: plan.login_samples,
            rounds: plan.rounds,
            load: plan.load(plan.measure_secs),
        };
        let issuer = scaled
            .issuer
            .as_ref()
            .ok_or_else(|| BenchError::Setup("no issuer".into()))?;
        let result = scale::run(
            &scaled.a,
            &scaled.b,
            issuer,
            &mut ctx.redis,
            &ctx.phc,
            &scale_plan,
            &progress,
        )
        .await?;
        scaled.stop().await;
        Some(result)
    } else {
        None
    };
    phases.done("scale");
    progress.inc(1);

    // Revocation: every mode on a pair of its own (plain JWT with a short access-token
    // lifetime so a trial ends), under background load. Instant modes one after the other;
    // plain JWT modes, whose trials mostly wait for expiry, all at once.
    for mode in fleet.drain(..) {
        mode.stop().await;
    }
    let mut instant = Vec::new();
    let mut at_expiry = Vec::new();
    for (index, mode) in MODES.iter().enumerate() {
        if mode.2 == Kind::NoAuth {
            continue;
        }
        progress.set_message(format!("{}: revocation trials, starting", mode.1));
        let prefix = format!("b{}{index}r:", &ctx.run_id[..2]);
        let ttl = plan.jwt_ttl_for_revocation;
        let deployed = deploy(
            &mut ctx,
            50 + index,
            *mode,
            &prefix,
            |s| {
                if mode.2.revokes_at_expiry() {
                    s.jwt.access_ttl_secs = ttl;
                    s.jwt.leeway_secs = 0;
                }
            },
            // Background load over a few credentials (plain JWT's expire during the trials
            // and are then refused, after full verification).
            (plan.connections * 4).min(plan.sessions).max(1),
        )
        .await?;
        if mode.2.revokes_at_expiry() {
            at_expiry.push(deployed);
        } else {
            instant.push(deployed);
        }
    }
    phases.done("revocation: deploying every mode");
    // One mode at a time: modes run side by side would share the cores, and each prober's
    // count would say more about the scheduler than about the mode.
    let mut windows: Vec<(&'static str, Vec<Windows>)> = Vec::new();
    for (mode, at_expiry) in instant
        .iter()
        .map(|m| (m, false))
        .chain(at_expiry.iter().map(|m| (m, true)))
    {
        progress.set_message(format!("{}: revocation trials", mode.label));
        windows.push((mode.id, revocation_trials(mode, &ctx, at_expiry).await?));
        phases.done(&format!("revocation trials: {}", mode.label));
        progress.inc(1);
    }
    for mode in instant.into_iter().chain(at_expiry) {
        mode.stop().await;
    }
    for (id, list) in windows {
        if let Some(result) = results.iter_mut().find(|r| r.id == id) {
            result.revocation = list;
            if result.kind.revokes_at_expiry() {
                result.revocation_access_ttl_secs = Some(plan.jwt_ttl_for_revocation);
            }
        }
    }

    progress.set_message("writing the report");
    drop(own_cluster);
    let machine = report::Machine::read(
        &mut ctx.redis,
        options.quick,
        activity.finish(),
        started.elapsed(),
        phases.list,
    )
    .await?;
    let report = Report::new(machine, plan, results, login_cost, scale);
    report.write(&options.out)?;
    progress.inc(1);
    progress.finish_with_message(format!("report in {}", options.out.display()));
    Ok(report)
}

/// The masters of the cluster `url` (`redis+cluster://h:p,…`) names, as `redis://` URLs: asked
/// of its first node (`CLUSTER NODES`), so replicas listed in the URL are not counted twice.
async fn cluster_masters(url: &str) -> Result<Vec<String>, BenchError> {
    let first = url
        .split_once("://")
        .map(|(_, rest)| rest)
        .and_then(|rest| rest.split(',').next())
        .filter(|first| !first.is_empty())
        .ok_or_else(|| BenchError::Setup(format!("not a redis+cluster:// URL: {url}")))?;
    let scheme = if url.starts_with("rediss") {
        "rediss"
    } else {
        "redis"
    };
    let mut conn = redis::Client::open(format!("{scheme}://{first}"))?
        .get_multiplexed_async_connection()
        .await?;
    let nodes: String = redis::cmd("CLUSTER")
        .arg("NODES")
        .query_async(&mut conn)
        .await?;
    // `<id> <ip:port@cport[,hostname]> <flags> …`
    let masters: Vec<String> = nodes
        .lines()
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            let address = fields.nth(1)?;
            let flags = fields.next()?;
            let is_master = flags.split(',').any(|f| f == "master")
                && !flags.split(',').any(|f| f == "fail" || f == "noaddr");
            let host_port = address.split('@').next()?;
            is_master.then(|| format!("{scheme}://{host_port}"))
        })
        .collect();
    if masters.is_empty() {
        return Err(BenchError::Setup(format!("no master in {url}")));
    }
    Ok(masters)
}

/// How long each phase of the run took: printed as it ends when there is no progress bar, and
/// kept in the report, so a long run can be planned (and a slow phase found).
struct Phases {
    list: Vec<report::Phase>,
    since: Instant,
    print: bool,
}

impl Phases {
    fn new(print: bool) -> Phases {
        Phases {
            list: Vec::new(),
            since: Instant::now(),
            print,
        }
    }

    fn done(&mut self, name: &str) {
        let secs = self.since.elapsed().as_secs_f64();
        self.since = Instant::now();
        if self.print {
            eprintln!("bench: {name}: {secs:.0} s");
        }
        self.list.push(report::Phase {
            name: name.to_owned(),
            secs,
        });
    }
}

/// The `Cookie` header value a browser sends with the cookies of a real login (the load's
/// cloned credentials belong to other users, whose names and roles differ in length).
fn login_cookie_bytes(cookies: &[(String, usize)]) -> usize {
    cookies.iter().map(|(_, b)| b).sum::<usize>() + 2 * cookies.len().saturating_sub(1)
}

/// The request wrk sends: request line, Host and the credential.
fn wrk_request_bytes(app: &RunningApp, cookie_bytes: usize) -> usize {
    let request = format!("GET /api/me HTTP/1.1\r\nHost: {}\r\n\r\n", app.host());
    request.len()
        + if cookie_bytes > 0 {
            "Cookie: \r\n".len() + cookie_bytes
        } else {
            0
        }
}

async fn revocation_trials(
    mode: &Deployed,
    ctx: &Context,
    at_expiry: bool,
) -> Result<Vec<Windows>, BenchError> {
    let plan = &ctx.plan;
    let issuer = mode
        .issuer
        .as_ref()
        .ok_or_else(|| BenchError::Setup("no issuer".into()))?;
    // The memory store is per process: there, the probe can only ask instance A.
    let b = if mode.kind == Kind::SessionMemory {
        &mode.a
    } else {
        &mode.b
    };
    let background = Background::start(&mode.loads(&mode.many, {
        let mut load = plan.load(3600);
        load.connections = 2;
        load
    }))?;
    let stage = revocation::Stage {
        a: &mode.a,
        b,
        issuer,
        phc: &ctx.phc,
        tag: "v",
        kind: mode.kind,
    };
    let trial_plan = if at_expiry {
        revocation::TrialPlan {
            trials: plan.trials,
            concurrency: plan.jwt_trial_concurrency,
            probers: plan.jwt_probers,
            limit: Duration::from_secs(plan.jwt_ttl_for_revocation + 5),
        }
    } else {
        revocation::TrialPlan {
            trials: plan.trials,
            concurrency: plan.trial_concurrency,
            probers: plan.probers,
            limit: Duration::from_secs(5),
        }
    };
    let windows = revocation::measure(&stage, &trial_plan).await;
    drop(background);
    windows
}

/// Failed logins as fast as wrk can send them (each one a full argon2 verification, as a
/// credential-stuffing attack would cost), while a second wrk measures the authenticated p99.
async fn login_storm(mode: &Deployed, plan: &Plan) -> Result<LoginCost, BenchError> {
    let attacker = Client::new(&mode.a.base)?;
    let form = attacker.get("/login").await?;
    let csrf = probe::form_value(&form.body, "csrf").unwrap_or_default();
    let storm = Load {
        url: format!("{}/login", mode.a.base),
        threads: 1,
        connections: 8,
        duration: Duration::from_secs(plan.measure_secs),
        cookie_file: None,
        headers: Vec::new(),
        form: Some((
            format!("username=bench&password=wrong+password&csrf={csrf}"),
            vec![("Cookie".to_owned(), attacker.cookie_header())],
        )),
    };
    let measure = mode.loads(&mode.many, plan.load(plan.measure_secs));
    let quiet = wrk::run_all(&measure).await?;
    let (during, stormed) = tokio::join!(wrk::run_all(&measure), wrk::run(&storm));
    let (during, stormed) = (during?, stormed?);
    Ok(LoginCost {
        logins_per_sec: stormed.requests_per_sec(),
        p99_without_storm_us: quiet.p99_us,
        p99_during_storm_us: during.p99_us,
    })
}

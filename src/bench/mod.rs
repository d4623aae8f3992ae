//! `sessiond bench`: sessions and JWTs side by side on one machine, measured the same way, with
//! a report people can read (`bench/report.md`, `report.json`, SVG charts).
//!
//! Every mode runs the real app in this process against its own redis-server; wrk drives
//! `GET /api/me`; revocation windows are measured by revoking and polling with a stolen copy of
//! the credential.

mod probe;
mod redis_process;
pub mod report;
mod wrk;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};
use reqwest::Method;
use serde::{Deserialize, Serialize};

use crate::clock::Clock;
use crate::config::{AuthMode, JwtAlgorithm, Settings};
use crate::startup::Application;
use crate::store::{Store, UserRecord};
use probe::{Client, Window, poll_until_refused};
pub use report::Report;
use wrk::{Load, WrkResult};

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

pub struct BenchOptions {
    pub quick: bool,
    pub redis_url: Option<String>,
    pub out: PathBuf,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Kind {
    NoAuth,
    SessionRedis,
    SessionMemory,
    Jwt {
        algorithm: JwtAlgorithm,
        denylist: bool,
    },
}

impl Kind {
    fn uses_redis(self) -> bool {
        !matches!(self, Kind::NoAuth | Kind::SessionMemory)
    }
}

pub const MODES: [(&str, &str, Kind); 8] = [
    ("no-auth", "no auth (ceiling)", Kind::NoAuth),
    ("session-redis", "session (Redis)", Kind::SessionRedis),
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
const SCENARIOS: [&str; 4] = ["logout", "admin revoke", "role demotion", "user disabled"];

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
    /// Bytes of the whole request wrk sends (request line and headers).
    pub request_bytes: usize,
    /// Bytes of the `Set-Cookie` headers of the login response.
    pub set_cookie_bytes: usize,
    pub load: WrkResult,
    pub requests_per_sec: f64,
    pub redis_commands_per_request: Option<f64>,
    pub redis_round_trips_per_request: Option<f64>,
    /// Redis's own CPU time per request, microseconds (`INFO commandstats` usec).
    #[serde(default)]
    pub redis_server_usec_per_request: Option<f64>,
    pub redis_bytes_per_session: Option<f64>,
    /// (scenario, window) for each revoking action.
    pub revocation: Vec<(String, Window)>,
    /// The access-token lifetime used for the revocation runs (JWT modes).
    pub revocation_access_ttl_secs: Option<u64>,
}

/// Login cost, measured in session (Redis) mode.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LoginCost {
    pub logins_per_sec: f64,
    pub p99_without_storm_us: u64,
    pub p99_during_storm_us: u64,
}

struct Plan {
    warmup: Duration,
    measure: Duration,
    connections: usize,
    memory_sessions: usize,
    jwt_ttl_for_revocation: u64,
    poll_interval: Duration,
}

impl Plan {
    fn new(quick: bool) -> Plan {
        if quick {
            Plan {
                warmup: Duration::from_secs(1),
                measure: Duration::from_secs(1),
                connections: 16,
                memory_sessions: 400,
                jwt_ttl_for_revocation: 1,
                poll_interval: Duration::from_millis(20),
            }
        } else {
            Plan {
                warmup: Duration::from_secs(3),
                measure: Duration::from_secs(10),
                connections: 64,
                memory_sessions: 10_000,
                jwt_ttl_for_revocation: 3,
                poll_interval: Duration::from_millis(20),
            }
        }
    }
}

fn settings_for(kind: Kind, redis_url: &str, prefix: &str, workers: usize) -> Settings {
    let mut s = Settings::default();
    s.server.bind = "127.0.0.1:0".into();
    s.server.workers = workers;
    s.store.key_prefix = prefix.to_owned();
    // No background store calls: the Redis cost counts the requests' calls alone.
    s.server.active_sessions_refresh_secs = 0;
    s.store.url = if kind.uses_redis() {
        redis_url.to_owned()
    } else {
        "memory://".into()
    };
    // The login storm must measure argon2, not the throttle.
    s.throttle.max_failures_per_account = u64::MAX / 2;
    s.throttle.max_failures_per_ip = u64::MAX / 2;
    if let Kind::Jwt {
        algorithm,
        denylist,
    } = kind
    {
        s.auth.mode = AuthMode::Jwt;
        s.jwt.algorithm = algorithm;
        s.jwt.denylist = denylist;
    }
    s
}

struct RunningApp {
    base: String,
    store: Arc<Store>,
    handle: actix_web::dev::ServerHandle,
}

impl RunningApp {
    async fn start(settings: Settings) -> Result<RunningApp, BenchError> {
        let app = Application::build_with_clock(settings, Clock::system()).await?;
        let running = RunningApp {
            base: format!("http://127.0.0.1:{}", app.port()),
            store: app.store(),
            handle: app.handle(),
        };
        actix_web::rt::spawn(app.run_until_stopped());
        Ok(running)
    }

    async fn add_user(&self, name: &str, roles: &[&str], phc: &str) -> Result<(), BenchError> {
        let user = UserRecord {
            name: name.to_owned(),
            phc: phc.to_owned(),
            roles: roles.iter().map(|r| r.to_string()).collect(),
            disabled: false,
            created: 0,
        };
        self.store.create_user(&user).await?;
        Ok(())
    }

    async fn stop(self) {
        self.handle.stop(true).await;
    }
}

async fn command_calls(
    redis: &mut redis::aio::MultiplexedConnection,
) -> Result<std::collections::HashMap<String, u64>, BenchError> {
    command_stat(redis, "calls=").await
}

/// One field of `INFO commandstats` per command (`calls=` or `usec=`).
async fn command_stat(
    redis: &mut redis::aio::MultiplexedConnection,
    field: &str,
) -> Result<std::collections::HashMap<String, u64>, BenchError> {
    let info: String = redis::cmd("INFO")
        .arg("commandstats")
        .query_async(redis)
        .await?;
    Ok(info
        .lines()
        .filter_map(|line| {
            let (name, rest) = line.strip_prefix("cmdstat_")?.split_once(':')?;
            let value = rest.split(',').find_map(|kv| kv.strip_prefix(field))?;
            Some((name.to_owned(), value.parse().ok()?))
        })
        .collect())
}

async fn used_memory(redis: &mut redis::aio::MultiplexedConnection) -> Result<i64, BenchError> {
    let info: String = redis::cmd("INFO").arg("memory").query_async(redis).await?;
    info.lines()
        .find_map(|l| l.strip_prefix("used_memory:"))
        .and_then(|v| v.trim().parse().ok())
        .ok_or_else(|| BenchError::Setup("INFO memory has no used_memory".into()))
}

/// Round trips the app has made to Redis so far (its own counter, from `/metrics`, whose scrape
/// costs none).
async fn round_trips(client: &Client) -> Result<u64, BenchError> {
    // Without the session cookie: the scrape must not load a session of its own.
    let text = client
        .http
        .get(format!("{}/metrics", client.base))
        .send()
        .await
        .map_err(|e| BenchError::Setup(e.to_string()))?
        .text()
        .await
        .map_err(|e| BenchError::Setup(e.to_string()))?;
    Ok(text
        .lines()
        .find_map(|l| l.strip_prefix("sessiond_store_round_trip_seconds_count "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0))
}

/// Redis commands and round trips per authenticated request, counted exactly over a fixed
/// number of sequential requests (no load: counts, not speed).
async fn redis_cost(
    client: &Client,
    redis: &mut redis::aio::MultiplexedConnection,
    url: &str,
    cookie: &str,
) -> Result<RedisCost, BenchError> {
    const REQUESTS: u64 = 200;
    // Requests the load run left in flight finish their own Redis calls after wrk exits; wait
    // until the app's counter stands still, or they land in this count.
    let mut settled = round_trips(client).await?;
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let now = round_trips(client).await?;
        if now == settled {
            break;
        }
        settled = now;
    }
    let usec_before = command_stat(redis, "usec=").await?;
    let calls_before = command_calls(redis).await?;
    let trips_before = round_trips(client).await?;
    for _ in 0..REQUESTS {
        let status = client
            .http
            .get(url)
            .header("cookie", cookie)
            .send()
            .await
            .map(|r| r.status().as_u16())
            .map_err(|e| BenchError::Setup(e.to_string()))?;
        if status != 200 {
            return Err(BenchError::Setup(format!(
                "authenticated request answered {status}"
            )));
        }
    }
    let trips_after = round_trips(client).await?;
    let calls_after = command_calls(redis).await?;
    let usec_after = command_stat(redis, "usec=").await?;
    // Redis's own CPU time for the requests' top-level commands: a script's time already
    // includes the commands it runs, which INFO lists again on their own.
    const INSIDE_SCRIPTS: [&str; 7] = [
        "hgetall", "hmget", "hset", "expireat", "zadd", "pfadd", "expire",
    ];
    let scripted = usec_after.contains_key("evalsha");
    let usec: u64 = usec_after
        .iter()
        .filter(|(name, _)| name.as_str() != "info")
        .filter(|(name, _)| !(scripted && INSIDE_SCRIPTS.contains(&name.as_str())))
        .map(|(name, usec)| usec - usec_before.get(name).unwrap_or(&0))
        .sum();
    // A /metrics scrape costs no store call (the benchmark's apps never refresh the
    // active-session gauge), so the window holds the requests' calls and nothing else.
    let trips = trips_after.saturating_sub(trips_before);
    let commands: u64 = calls_after
        .iter()
        .filter(|(name, _)| name.as_str() != "info")
        .map(|(name, calls)| calls - calls_before.get(name).unwrap_or(&0))
        .sum::<u64>();
    Ok(RedisCost {
        commands: commands as f64 / REQUESTS as f64,
        round_trips: trips as f64 / REQUESTS as f64,
        server_usec: usec as f64 / REQUESTS as f64,
    })
}

struct RedisCost {
    commands: f64,
    round_trips: f64,
    /// Redis CPU time per request, from `INFO commandstats`.
    server_usec: f64,
}

pub async fn run(options: BenchOptions) -> Result<Report, BenchError> {
    wrk::require()?;
    let plan = Plan::new(options.quick);
    let own_redis = match &options.redis_url {
        Some(_) => None,
        None => Some(redis_process::RedisProcess::start()?),
    };
    let redis_url = options
        .redis_url
        .clone()
        .or_else(|| own_redis.as_ref().map(|r| r.url.clone()))
        .unwrap_or_default();
    let mut redis = redis::Client::open(redis_url.as_str())?
        .get_multiplexed_async_connection()
        .await?;
    let workers = std::thread::available_parallelism().map_or(2, |n| n.get());
    let phc = crate::auth::password::hash_password(PASSWORD.to_owned())
        .await
        .map_err(|e| BenchError::Setup(e.to_string()))?;

    let progress = ProgressBar::new((MODES.len() * 4 + 2) as u64);
    progress.set_style(
        ProgressStyle::with_template("{elapsed_precise} [{bar:30}] {pos}/{len} {msg}")
            .map_err(|e| BenchError::Setup(e.to_string()))?
            .progress_chars("=> "),
    );
    let run_id = crate::auth::random::random_token()
        .map_err(|e| BenchError::Setup(e.to_string()))?[..6]
        .to_owned();

    let mut results = Vec::new();
    let mut login_cost = None;
    for (index, (id, label, kind)) in MODES.iter().enumerate() {
        // Short, like the production default `sd:`: key length is part of the memory figure.
        let prefix = format!("b{}{index}:", &run_id[..2]);
        progress.set_message(format!("{label}: load"));
        let app = RunningApp::start(settings_for(*kind, &redis_url, &prefix, workers)).await?;
        app.add_user("bench", &["admin"], &phc).await?;
        let user = Client::new(&app.base)?;
        let (set_cookie_bytes, credential_cookies) = if *kind == Kind::NoAuth {
            (0, Vec::new())
        } else {
            let login = user.login("bench", PASSWORD).await?;
            let issued: Vec<(String, usize)> = login
                .set_cookies
                .iter()
                .filter_map(|raw| actix_web::cookie::Cookie::parse(raw.clone()).ok())
                .filter(|c| !c.value().is_empty())
                .map(|c| (c.name().to_owned(), c.name().len() + 1 + c.value().len()))
                .collect();
            let bytes = login
                .set_cookies
                .iter()
                .map(|v| "Set-Cookie: ".len() + v.len() + 2)
                .sum();
            (bytes, issued)
        };
        let cookie = user.cookie_header();
        let host = app.base.trim_start_matches("http://").to_owned();
        let mut request = format!("GET /api/me HTTP/1.1\r\nHost: {host}\r\n");
        if !cookie.is_empty() {
            request.push_str(&format!("Cookie: {cookie}\r\n"));
        }
        request.push_str("\r\n");
        let headers = if cookie.is_empty() {
            Vec::new()
        } else {
            vec![("Cookie".to_owned(), cookie.clone())]
        };
        let url = format!("{}/api/me", app.base);
        let load = |duration| Load {
            url: &url,
            threads: 2,
            connections: plan.connections,
            duration,
            headers: headers.clone(),
            form_body: None,
        };
        wrk::run(load(plan.warmup)).await?;
        let measured = wrk::run(load(plan.measure)).await?;
        let (commands, trips, server_usec) = if kind.uses_redis() {
            let cost = redis_cost(&user, &mut redis, &url, &cookie).await?;
            (
                Some(cost.commands),
                Some(cost.round_trips),
                Some(cost.server_usec),
            )
        } else {
            (None, None, None)
        };
        progress.inc(1);

        if *kind == Kind::SessionRedis {
            progress.set_message(format!("{label}: login storm"));
            login_cost = Some(login_storm(&app, &url, &headers, &plan).await?);
        }
        progress.inc(1);

        progress.set_message(format!("{label}: memory per session"));
        let memory = if kind.uses_redis() {
            Some(memory_per_session(&app, &mut redis, &prefix, &phc, plan.memory_sessions).await?)
        } else {
            None
        };
        progress.inc(1);
        app.stop().await;

        progress.set_message(format!("{label}: revocation windows"));
        let (revocation, ttl) = if *kind == Kind::NoAuth {
            (Vec::new(), None)
        } else {
            let mut settings = settings_for(*kind, &redis_url, &format!("{prefix}r:"), workers);
            settings.jwt.access_ttl_secs = plan.jwt_ttl_for_revocation;
            settings.jwt.leeway_secs = 0;
            let app = RunningApp::start(settings).await?;
            app.add_user("bench", &["admin"], &phc).await?;
            let windows = revocation_windows(&app, &phc, &plan).await?;
            app.stop().await;
            let ttl = matches!(kind, Kind::Jwt { .. }).then_some(plan.jwt_ttl_for_revocation);
            (windows, ttl)
        };
        progress.inc(1);

        results.push(ModeResult {
            id: id.to_string(),
            label: label.to_string(),
            kind: *kind,
            cookie_bytes: cookie.len(),
            request_bytes: request.len(),
            set_cookie_bytes,
            credential_cookies,
            requests_per_sec: measured.requests_per_sec(),
            load: measured,
            redis_commands_per_request: commands,
            redis_round_trips_per_request: trips,
            redis_server_usec_per_request: server_usec,
            redis_bytes_per_session: memory,
            revocation,
            revocation_access_ttl_secs: ttl,
        });
    }
    progress.set_message("writing the report");
    let machine = report::Machine::read(&mut redis, options.quick).await?;
    let report = Report::new(machine, results, login_cost, options.quick);
    report.write(&options.out)?;
    progress.inc(2);
    progress.finish_with_message(format!("report in {}", options.out.display()));
    Ok(report)
}

/// Failed logins as fast as wrk can send them (each one a full argon2 verification, as a
/// credential-stuffing attack would cost), while a second wrk measures the authenticated p99.
async fn login_storm(
    app: &RunningApp,
    url: &str,
    headers: &[(String, String)],
    plan: &Plan,
) -> Result<LoginCost, BenchError> {
    let attacker = Client::new(&app.base)?;
    let form = attacker.get("/login").await?;
    let csrf = probe::form_value(&form.body, "csrf").unwrap_or_default();
    let login_url = format!("{}/login", app.base);
    let storm = Load {
        url: &login_url,
        threads: 1,
        connections: 8,
        duration: plan.measure,
        headers: vec![("Cookie".to_owned(), attacker.cookie_header())],
        form_body: Some(format!(
            "username=bench&password=wrong+password&csrf={csrf}"
        )),
    };
    let measure = |duration| Load {
        url,
        threads: 1,
        connections: plan.connections,
        duration,
        headers: headers.to_vec(),
        form_body: None,
    };
    let quiet = wrk::run(measure(plan.measure)).await?;
    let (during, stormed) = tokio::join!(wrk::run(measure(plan.measure)), wrk::run(storm));
    let (during, stormed) = (during?, stormed?);
    Ok(LoginCost {
        logins_per_sec: stormed.requests_per_sec(),
        p99_without_storm_us: quiet.p99_us,
        p99_during_storm_us: during.p99_us,
    })
}

/// Redis memory per live session, index included: one real login shows what a session (or
/// refresh family) stores; that exact shape is then created `n` times through the store.
async fn memory_per_session(
    app: &RunningApp,
    redis: &mut redis::aio::MultiplexedConnection,
    prefix: &str,
    phc: &str,
    n: usize,
) -> Result<f64, BenchError> {
    let sample = Client::new(&app.base)?;
    app.add_user("sample", &[], phc).await?;
    sample.login("sample", PASSWORD).await?;
    let hashes = app.store.user_session_hashes("sample").await?;
    let hash = hashes
        .first()
        .ok_or_else(|| BenchError::Setup("the sample login left no session".into()))?;
    let stored: Vec<(String, String)> = redis::cmd("HGETALL")
        .arg(format!("{prefix}s:{hash}"))
        .query_async(redis)
        .await?;
    let fields: Vec<(String, String)> = stored
        .into_iter()
        .filter(|(k, _)| !k.starts_with('_'))
        .collect();
    // Two sessions per user (a laptop and a phone); users exist before measuring.
    let users = n.div_ceil(2);
    for u in 0..users {
        app.add_user(&format!("m{u}"), &[], phc).await?;
    }
    let before = used_memory(redis).await?;
    for i in 0..n {
        let user = format!("m{}", i / 2);
        let mut own = fields.clone();
        for (k, v) in own.iter_mut() {
            if k == crate::store::UID_FIELD {
                *v = serde_json::to_string(&user).unwrap_or_default();
            }
        }
        let handle = crate::auth::session_store::session_id_hash(
            &crate::auth::random::random_token().map_err(|e| BenchError::Setup(e.to_string()))?,
        );
        app.store.create_session(&handle, Some(&user), own).await?;
    }
    let after = used_memory(redis).await?;
    Ok((after - before) as f64 / n as f64)
}

/// For each revoking action: a victim signs in, a thief copies the cookies, the victim types
/// the password again (step-up, which in JWT mode mints a new access token the thief does not
/// have), the action runs, and the thief's copy is polled until it is refused.
async fn revocation_windows(
    app: &RunningApp,
    phc: &str,
    plan: &Plan,
) -> Result<Vec<(String, Window)>, BenchError> {
    let admin = Client::new(&app.base)?;
    admin.login("bench", PASSWORD).await?;
    let limit = Duration::from_secs(plan.jwt_ttl_for_revocation + 5);
    let mut windows = Vec::new();
    for (i, scenario) in SCENARIOS.iter().enumerate() {
        let name = format!("victim{i}");
        app.add_user(&name, &["admin"], phc).await?;
        let victim = Client::new(&app.base)?;
        victim.login(&name, PASSWORD).await?;
        let stolen = victim.cookie_header();
        let step_up = victim
            .api(
                Method::POST,
                "/api/reauth",
                Some(serde_json::json!({"password": PASSWORD})),
            )
            .await?;
        if step_up.status != 204 {
            return Err(BenchError::Setup(format!(
                "step-up answered {}",
                step_up.status
            )));
        }
        // A demoted admin is refused by an admin-only endpoint; the rest, by any endpoint.
        let probe_path = if *scenario == "role demotion" {
            "/api/admin/users"
        } else {
            "/api/me"
        };
        let reply = match *scenario {
            "logout" => victim.logout().await?,
            "admin revoke" => {
                let sessions: serde_json::Value = serde_json::from_str(
                    &admin
                        .get(&format!("/api/admin/users/{name}/sessions"))
                        .await?
                        .body,
                )
                .map_err(|e| BenchError::Setup(e.to_string()))?;
                let handle = sessions[0]["handle"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned();
                admin
                    .api(
                        Method::DELETE,
                        &format!("/api/admin/users/{name}/sessions/{handle}"),
                        None,
                    )
                    .await?
            }
            "role demotion" => {
                admin
                    .api(
                        Method::PUT,
                        &format!("/api/admin/users/{name}/roles"),
                        Some(serde_json::json!({"roles": ["editor"]})),
                    )
                    .await?
            }
            _ => {
                admin
                    .api(
                        Method::PUT,
                        &format!("/api/admin/users/{name}/disabled"),
                        Some(serde_json::json!({"disabled": true})),
                    )
                    .await?
            }
        };
        if reply.status >= 400 {
            return Err(BenchError::Setup(format!(
                "{scenario} answered {}",
                reply.status
            )));
        }
        let window = poll_until_refused(
            &admin.http,
            &format!("{}{probe_path}", app.base),
            &stolen,
            limit,
            plan.poll_interval,
        )
        .await;
        windows.push((scenario.to_string(), window));
    }
    Ok(windows)
}

//! Scale: a million live sessions over a hundred thousand users, loaded through the store's
//! own write path (concurrent calls, pipelined on its connection), then what they cost: Redis
//! memory per session, `GET /api/me` throughput, and the latency and Redis work of the admin
//! pages and of a login.

use std::time::Instant;

use futures_util::StreamExt;
use reqwest::Method;
use serde::{Deserialize, Serialize};

use super::cost::{Redis, RedisWork, Snapshot, used_memory};
use super::fleet::{Issuer, RunningApp, add_users, write_lines};
use super::probe::{Client, form_value};
use super::stats::{Spread, percentile};
use super::wrk::{self, Load};
use super::{BenchError, PASSWORD};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ScaleResult {
    pub sessions: usize,
    pub users: usize,
    pub load_secs: f64,
    pub redis_bytes_per_session: f64,
    pub requests_per_sec: Spread,
    pub p99_ms: Spread,
    pub pages: Vec<PageLatency>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PageLatency {
    pub name: String,
    pub path: String,
    pub samples: usize,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub redis_commands: f64,
    pub redis_usec: f64,
    /// Keyspace or whole-collection walks per view (must be 0).
    pub scans: f64,
    pub status: u16,
}

impl PageLatency {
    /// Latency percentiles of `times` (ms) and `work` spread over the samples.
    fn of(name: &str, path: &str, times: &[f64], work: &RedisWork, status: u16) -> PageLatency {
        let per_view = |total: u64| total as f64 / times.len().max(1) as f64;
        PageLatency {
            name: name.into(),
            path: path.into(),
            samples: times.len(),
            p50_ms: percentile(times, 50.0),
            p99_ms: percentile(times, 99.0),
            redis_commands: per_view(work.commands),
            redis_usec: per_view(work.server_usec),
            scans: per_view(work.scans),
            status,
        }
    }

    /// A page scans when it walks the keyspace, or when its Redis work is more than a page's
    /// worth of commands.
    pub fn scans(&self) -> bool {
        self.scans > 0.0 || self.redis_commands > 200.0
    }
}

pub struct ScalePlan {
    pub users: usize,
    pub sessions_per_user: usize,
    pub sample: usize,
    pub page_samples: usize,
    pub login_samples: usize,
    pub rounds: usize,
    pub load: Load,
}

pub async fn run(
    a: &RunningApp,
    b: &RunningApp,
    issuer: &Issuer,
    redis: &mut Redis,
    phc: &str,
    plan: &ScalePlan,
    progress: &indicatif::ProgressBar,
) -> Result<ScaleResult, BenchError> {
    let started = Instant::now();
    let users: Vec<String> = (0..plan.users).map(|u| format!("u{u:06}")).collect();
    add_users(&a.store, &users, phc).await?;
    let before = used_memory(redis).await?;
    let sessions = plan.users * plan.sessions_per_user;
    // Every `step`-th credential is kept for the load: a random-enough sample of all users.
    let step = (sessions / plan.sample.max(1)).max(1);
    let users = &users;
    let mut kept = Vec::new();
    let mut issued = futures_util::stream::iter(0..sessions)
        .map(|i| async move {
            let credential = issuer.issue(&a.store, &users[i % users.len()], &[]).await?;
            Ok::<_, BenchError>((i, credential.cookie))
        })
        .buffer_unordered(512);
    let mut done = 0usize;
    while let Some(result) = issued.next().await {
        let (i, cookie) = result?;
        if i.is_multiple_of(step) {
            kept.push(cookie);
        }
        done += 1;
        if done.is_multiple_of(50_000) {
            progress.set_message(format!("scale: {done} of {sessions} sessions"));
        }
    }
    drop(issued);
    let after = used_memory(redis).await?;
    let load_secs = started.elapsed().as_secs_f64();

    let file = std::env::temp_dir().join(format!("sessiond-bench-scale-{}", std::process::id()));
    write_lines(&file, &kept)?;
    progress.set_message("scale: load");
    let mut rps = Vec::new();
    let mut p99 = Vec::new();
    for _ in 0..plan.rounds {
        let loads: Vec<Load> = [a, b]
            .iter()
            .map(|app| Load {
                url: format!("{}/api/me", app.base),
                cookie_file: Some(file.clone()),
                ..plan.load.clone()
            })
            .collect();
        let result = wrk::run_all(&loads).await?;
        rps.push(result.requests_per_sec());
        p99.push(result.p99_us as f64 / 1000.0);
    }
    let _ = std::fs::remove_file(&file);

    progress.set_message("scale: admin pages");
    let admin = Client::new(&a.base)?;
    admin.login("bench", PASSWORD).await?;
    let middle = &users[users.len() / 2];
    let pages = [
        ("overview", "/admin".to_owned()),
        ("users, first page", "/admin/users".to_owned()),
        (
            "users, a middle page",
            format!("/admin/users?after={middle}"),
        ),
        (
            "a user with 10 sessions",
            format!("/admin/users/{}", users[42 % users.len()]),
        ),
        ("all sessions", "/admin/sessions".to_owned()),
        ("audit log", "/admin/audit".to_owned()),
    ];
    let mut latencies = Vec::new();
    for (name, path) in pages {
        latencies.push(page_latency(a, &admin, redis, name, &path, plan.page_samples).await?);
    }
    latencies.push(login_latency(a, redis, plan.login_samples).await?);
    Ok(ScaleResult {
        sessions,
        users: plan.users,
        load_secs,
        redis_bytes_per_session: (after - before) as f64 / sessions as f64,
        requests_per_sec: Spread::of(rps),
        p99_ms: Spread::of(p99),
        pages: latencies,
    })
}

async fn page_latency(
    app: &RunningApp,
    admin: &Client,
    redis: &mut Redis,
    name: &str,
    path: &str,
    samples: usize,
) -> Result<PageLatency, BenchError> {
    let before = Snapshot::take(redis, app).await?;
    let mut times = Vec::new();
    let mut status = 0;
    for _ in 0..samples {
        let started = Instant::now();
        status = admin.get(path).await?.status;
        times.push(started.elapsed().as_secs_f64() * 1000.0);
    }
    let work = Snapshot::take(redis, app).await?.since(&before);
    Ok(PageLatency::of(name, path, &times, &work, status))
}

/// A real login (argon2 included) of a user who already has ten sessions.
async fn login_latency(
    app: &RunningApp,
    redis: &mut Redis,
    samples: usize,
) -> Result<PageLatency, BenchError> {
    let mut times = Vec::new();
    let mut work = RedisWork::default();
    let mut status = 0;
    for _ in 0..samples {
        let client = Client::new(&app.base)?;
        let form = client.get("/login").await?;
        let csrf = form_value(&form.body, "csrf").unwrap_or_default();
        let before = Snapshot::take(redis, app).await?;
        let started = Instant::now();
        let reply = client
            .send(Method::POST, "/login", |r| {
                r.form(&[
                    ("username", "bench"),
                    ("password", PASSWORD),
                    ("csrf", csrf.as_str()),
                ])
            })
            .await?;
        times.push(started.elapsed().as_secs_f64() * 1000.0);
        let one = Snapshot::take(redis, app).await?.since(&before);
        work.commands += one.commands;
        work.server_usec += one.server_usec;
        work.scans += one.scans;
        status = reply.status;
    }
    Ok(PageLatency::of(
        "login (POST /login, argon2)",
        "/login",
        &times,
        &work,
        status,
    ))
}

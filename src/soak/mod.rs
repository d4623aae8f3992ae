//! `sessiond soak`: the app under faults, with figures. Two instances (this binary's `serve`,
//! as child processes) share one redis-server started from the shipped `deploy/redis.conf`
//! (AOF on), behind a simulated load balancer, under a steady mixed load (see `load`). Every
//! `fault_every` a fault, in turn: Redis `kill -9` and restarted from its AOF, Redis frozen
//! with SIGSTOP for 3 s, `CLIENT KILL` of the apps' connections, and instance B redeployed
//! (taken out of the balancer, SIGTERM with requests in flight, started again, put back).
//! Instance A is never restarted, so its memory at the start and the end says whether
//! anything grows.
//!
//! Everything the clients were told goes into a ledger (`ledger`), and is checked during the
//! run and once more at the end against every session: acknowledged logins never refused
//! without an acknowledged end, acknowledged ends never undone, acknowledged role changes
//! never reverted. The report counts answers by status, 5xx other than 503, requests left
//! unanswered, panics in the instances' logs, and per fault the 503s, their longest stretch and
//! the time from the fault's end to the first 2xx.

mod ledger;
mod load;
mod processes;
pub mod report;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix_web::cookie::Key;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use futures_util::StreamExt;
use reqwest::Method;
use serde::{Deserialize, Serialize};

use crate::auth::random::random_bytes;
use crate::clock::Clock;
use crate::config::Settings;
use crate::metrics::Metrics;
use crate::store::Store;
use crate::users::{Operator, UserError};
use ledger::Ledger;
use load::{Counts, Outcome, Shared, Slot};
use processes::{App, Redis, rss_kib};
pub use report::{FaultRecord, Rss, SoakReport};

#[derive(Debug, thiserror::Error)]
pub enum SoakError {
    #[error("`{0}` was not found: install it (apt-get install {1})")]
    Missing(&'static str, &'static str),
    #[error("soak set-up failed: {0}")]
    Setup(String),
    #[error(transparent)]
    Io(#[from] std::io::Error),
    #[error("store error")]
    Store(#[from] crate::store::StoreError),
    #[error("redis error")]
    Redis(#[from] redis::RedisError),
    #[error("could not create the soak's users")]
    User(#[from] UserError),
    #[error("could not write the report")]
    Json(#[from] serde_json::Error),
}

/// Redis's `appendfsync`: `always` acknowledges a write only once it is on disk;
/// `everysec` may lose the last second of writes to a crash.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Fsync {
    Always,
    Everysec,
}

impl Fsync {
    pub fn as_str(self) -> &'static str {
        match self {
            Fsync::Always => "always",
            Fsync::Everysec => "everysec",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FaultKind {
    /// `kill -9` of Redis, down for a second, restarted from its AOF.
    RedisKilled,
    /// SIGSTOP of Redis for 3 s, then SIGCONT.
    RedisStalled,
    /// `CLIENT KILL TYPE normal`: every connection of the apps dropped by Redis.
    ConnectionsKilled,
    /// Instance B out of the balancer, SIGTERM, started again, back in.
    Redeploy,
}

impl FaultKind {
    const CYCLE: [FaultKind; 4] = [
        FaultKind::RedisKilled,
        FaultKind::RedisStalled,
        FaultKind::ConnectionsKilled,
        FaultKind::Redeploy,
    ];

    pub fn label(self) -> &'static str {
        match self {
            FaultKind::RedisKilled => "Redis kill -9, restarted from its AOF after 1 s",
            FaultKind::RedisStalled => "Redis SIGSTOP for 3 s",
            FaultKind::ConnectionsKilled => "CLIENT KILL of the apps' connections",
            FaultKind::Redeploy => "instance B: SIGTERM, started again",
        }
    }
}

#[derive(Debug, Clone)]
pub struct SoakOptions {
    pub duration: Duration,
    pub fault_every: Duration,
    pub fsync: Fsync,
    /// Clients of the load, each pausing `pace` between steps.
    pub concurrency: usize,
    pub pace: Duration,
    pub users: usize,
    pub out: PathBuf,
    /// The `sessiond` binary the instances run (this one, normally).
    pub binary: PathBuf,
}

const STALL: Duration = Duration::from_secs(3);
const REDIS_DOWN: Duration = Duration::from_secs(1);
const ADMIN: &str = "soak-admin";

pub async fn run(options: SoakOptions) -> Result<SoakReport, SoakError> {
    let work = std::env::temp_dir().join(format!("sessiond-soak-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&work);
    let logs = options.out.join("logs");
    let _ = std::fs::remove_dir_all(&logs);
    std::fs::create_dir_all(&logs)?;
    let result = soak(&options, &work, &logs).await;
    let _ = std::fs::remove_dir_all(&work);
    let report = result?;
    report.write(&options.out)?;
    Ok(report)
}

async fn soak(options: &SoakOptions, work: &Path, logs: &Path) -> Result<SoakReport, SoakError> {
    let mut redis = Redis::start(&work.join("redis"), options.fsync).await?;
    let password = format!(
        "soak-{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(random_bytes::<18>().map_err(|e| SoakError::Setup(e.to_string()))?)
    );
    let names: Vec<String> = (0..options.users).map(|i| format!("soak-{i:04}")).collect();
    let settings = create_users(&redis.url(), &names, &password).await?;

    let key = random_bytes::<64>().map_err(|e| SoakError::Setup(e.to_string()))?;
    // Sessions must not expire by themselves during the run: every refusal is then a finding.
    let lifetime = (options.duration.as_secs() * 2).max(3600).to_string();
    let env: Vec<(String, String)> = [
        ("SESSIOND__STORE__URL", redis.url()),
        ("SESSIOND__SESSION__COOKIE_KEY", STANDARD.encode(key)),
        ("SESSIOND__SESSION__IDLE_TIMEOUT_SECS", lifetime.clone()),
        ("SESSIOND__SESSION__ABSOLUTE_TIMEOUT_SECS", lifetime),
        ("SESSIOND__SERVER__WORKERS", "1".into()),
        // Every client is 127.0.0.1: the per-IP throttle would end the good logins too.
        (
            "SESSIOND__THROTTLE__MAX_FAILURES_PER_IP",
            "1000000000".into(),
        ),
        ("RUST_LOG", "warn".into()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    let mut a = App::start("a", &options.binary, env.clone(), logs).await?;
    let mut b = App::start("b", &options.binary, env, logs).await?;

    let shared = Arc::new(Shared {
        slots: vec![Slot::new(a.base()), Slot::new(b.base())],
        ledger: Mutex::new(Ledger::new(&names, &["viewer".to_owned()])),
        counts: Mutex::new(Counts::default()),
        events: Mutex::new(Vec::new()),
        started: Instant::now(),
        stop: AtomicBool::new(false),
        cookie_name: settings.session.effective_cookie_name(),
        cookie_key: Key::from(&key),
        password,
        admin: Mutex::new(None),
        admin_name: ADMIN.to_owned(),
        role_choices: [vec!["viewer".to_owned()], vec!["editor".to_owned()]],
    });

    let workers: Vec<_> = (0..options.concurrency)
        .map(|i| {
            let seed = u64::from_le_bytes(random_bytes::<8>().unwrap_or([i as u8; 8]));
            tokio::spawn(load::worker(shared.clone(), seed, options.pace))
        })
        .collect();

    // Memory once the load has warmed the instances up.
    tokio::time::sleep(Duration::from_secs(2).min(options.fault_every / 2)).await;
    let rss_start = [a.pid().and_then(rss_kib), b.pid().and_then(rss_kib)];

    let mut faults = Vec::new();
    let end = shared.started + options.duration;
    for kind in FaultKind::CYCLE.iter().cycle() {
        let at = shared.started + options.fault_every * (faults.len() as u32 + 1);
        if at >= end {
            break;
        }
        tokio::time::sleep_until(at.into()).await;
        let rss_a = a.pid().and_then(rss_kib);
        let mut fault = inject(*kind, &shared, &mut redis, &mut b).await?;
        fault.rss_a_kib = rss_a;
        faults.push(fault);
    }
    tokio::time::sleep_until(end.into()).await;
    shared.stop.store(true, Ordering::SeqCst);
    for worker in workers {
        let _ = worker.await;
    }
    let ran_for = shared.seconds();
    let events = std::mem::take(&mut *shared.events.lock().unwrap_or_else(|p| p.into_inner()));

    let final_check = final_check(&shared).await;
    let rss_end = [a.pid().and_then(rss_kib), b.pid().and_then(rss_kib)];
    let exits = [
        a.terminate(Duration::from_secs(35)).await?,
        b.terminate(Duration::from_secs(35)).await?,
    ];
    let mut panics = a.panics()?;
    panics.extend(b.panics()?);

    let counts = shared
        .counts
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clone();
    Ok(SoakReport::new(
        options,
        ran_for,
        counts,
        report::measure(faults, &events, ran_for),
        final_check,
        panics,
        vec![
            Rss::new("a", a.starts, rss_start[0], rss_end[0], exits[0]),
            Rss::new("b", b.starts, rss_start[1], rss_end[1], exits[1]),
        ],
    ))
}

/// The admin and the users the load signs in as, created through the same code as
/// `sessiond user add`; the settings the instances share.
async fn create_users(url: &str, names: &[String], password: &str) -> Result<Settings, SoakError> {
    let mut settings = Settings::default();
    settings.store.url = url.to_owned();
    let clock = Clock::system();
    let metrics = Arc::new(Metrics::default());
    let store = Store::open(&settings, clock.clone(), metrics.clone())?;
    let operator = Operator {
        store: &store,
        clock: &clock,
        metrics: &metrics,
        name: "soak",
        ip: "local",
        known_roles: &settings.auth.roles,
    };
    operator
        .create_user(ADMIN, password, &["admin".to_owned()])
        .await?;
    operator
        .create_user("soak-decoy", password, &["viewer".to_owned()])
        .await?;
    for name in names {
        operator
            .create_user(name, password, &["viewer".to_owned()])
            .await?;
    }
    Ok(settings)
}

async fn inject(
    kind: FaultKind,
    shared: &Shared,
    redis: &mut Redis,
    b: &mut App,
) -> Result<FaultRecord, SoakError> {
    let at = shared.seconds();
    let mut detail = String::new();
    let mut redeploy = (None, None);
    match kind {
        FaultKind::RedisKilled => {
            redis.kill().await?;
            tokio::time::sleep(REDIS_DOWN).await;
            redis.restart().await?;
        }
        FaultKind::RedisStalled => redis.stall(STALL).await?,
        FaultKind::ConnectionsKilled => {
            let killed = redis.kill_clients().await?;
            detail = format!("{killed} connections killed");
        }
        FaultKind::Redeploy => {
            let slot = &shared.slots[1];
            slot.take_out();
            let in_flight = slot.in_flight.load(Ordering::SeqCst);
            let clean = b.terminate(Duration::from_secs(35)).await?;
            b.spawn().await?;
            slot.put_back();
            detail = format!(
                "{in_flight} requests in flight at SIGTERM; exit {}",
                if clean { "0" } else { "NOT clean" }
            );
            redeploy = (Some(in_flight), Some(clean));
        }
    }
    Ok(FaultRecord {
        kind,
        at,
        back: shared.seconds(),
        detail,
        in_flight_at_sigterm: redeploy.0,
        clean_exit: redeploy.1,
        ..FaultRecord::default()
    })
}

/// What the ledger holds, checked once more on every session, with Redis up and no fault:
/// every live session accepted with its roles, every ended one refused.
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub struct FinalCheck {
    pub live_checked: u64,
    pub live_refused: u64,
    pub ended_checked: u64,
    pub ended_accepted: u64,
    pub roles_checked: u64,
    pub roles_wrong: u64,
    /// Sessions that got no 200/401 in 20 tries.
    pub undecided: u64,
}

/// A session of the ledger, whether it is live there, and how `/api/me` finally answered.
type Settled = (usize, bool, Option<(u16, String)>);

async fn final_check(shared: &Shared) -> FinalCheck {
    let (live, ended) = {
        let ledger = shared.ledger.lock().unwrap_or_else(|p| p.into_inner());
        (ledger.live_ids(), ledger.ended_ids())
    };
    let checks = live
        .into_iter()
        .map(|id| (id, true))
        .chain(ended.into_iter().map(|id| (id, false)));
    let results: Vec<Settled> = futures_util::stream::iter(checks)
        .map(|(id, live)| async move { (id, live, me_settled(shared, id).await) })
        .buffer_unordered(16)
        .collect()
        .await;
    let mut check = FinalCheck::default();
    let ledger = shared.ledger.lock().unwrap_or_else(|p| p.into_inner());
    for (id, live, answer) in results {
        let Some((status, body)) = answer else {
            check.undecided += 1;
            continue;
        };
        if live {
            check.live_checked += 1;
            if status != 200 {
                check.live_refused += 1;
                continue;
            }
            let session = &ledger.sessions[id];
            if let Some(expected) = &ledger.users[session.user].roles {
                check.roles_checked += 1;
                if &load::served_roles(&body) != expected {
                    check.roles_wrong += 1;
                }
            }
        } else {
            check.ended_checked += 1;
            if status == 200 {
                check.ended_accepted += 1;
            }
        }
    }
    check
}

/// `GET /api/me` on instance A until it answers 200 or 401 (the faults are over, but a
/// connection may still be on its way back).
async fn me_settled(shared: &Shared, id: usize) -> Option<(u16, String)> {
    let cookie = shared
        .ledger
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .sessions[id]
        .cookie
        .clone();
    for _ in 0..20 {
        if let Outcome::Answered(reply) = shared
            .send(0, Method::GET, "/api/me", Some(&cookie), |r| r)
            .await
            && matches!(reply.status, 200 | 401)
        {
            return Some((reply.status, reply.body));
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    None
}

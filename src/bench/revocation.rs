//! Revocation windows across instances: the action runs on instance A while probers hammer
//! instance B with a stolen copy of the credential, under background load. A window counts the
//! requests that were *sent after the action's response arrived* and still accepted, and the
//! time from that response to the first refusal.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use reqwest::Method;
use serde::{Deserialize, Serialize};
use tokio::sync::OnceCell;

use super::fleet::{Issuer, RunningApp, add_user};
use super::probe::Client;
use super::stats::percentile;
use super::{BenchError, Kind, PASSWORD};

/// The revoking actions, each done plainly and right after a step-up re-authentication.
pub const ACTIONS: [Action; 5] = [
    Action::Logout,
    Action::AdminRevoke,
    Action::RoleDemotion,
    Action::Disable,
    Action::PasswordChange,
];

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Action {
    Logout,
    AdminRevoke,
    RoleDemotion,
    Disable,
    PasswordChange,
}

impl Action {
    pub fn label(self) -> &'static str {
        match self {
            Action::Logout => "logout",
            Action::AdminRevoke => "admin revoke",
            Action::RoleDemotion => "role demotion",
            Action::Disable => "user disabled",
            Action::PasswordChange => "password change",
        }
    }

    /// A demoted admin is refused by an admin-only endpoint; the rest by any endpoint. Through
    /// forward auth: the protected app's admin area, or any page of it.
    fn probe(self, kind: Kind) -> (&'static str, Vec<(String, String)>) {
        match (kind, self) {
            (Kind::ForwardAuth, Action::RoleDemotion) => {
                (kind.request_path(), kind.proxy_headers("/admin/users"))
            }
            (Kind::ForwardAuth, _) => (kind.request_path(), kind.proxy_headers("/docs")),
            (_, Action::RoleDemotion) => ("/api/admin/users?limit=1", Vec::new()),
            _ => ("/api/me", Vec::new()),
        }
    }
}

/// One trial: what the stolen copy got after the action was acknowledged.
#[derive(Debug, Clone, Copy)]
pub struct Trial {
    /// Requests sent after the action's response arrived and answered 2xx.
    pub accepted: u64,
    /// From the action's response to the first refusal (0 when refused before it arrived).
    pub until_refused_ms: f64,
    pub refused: bool,
    /// Tries that measured nothing and were done again with a fresh victim.
    pub redone: usize,
}

/// Many trials of one action in one mode, summarised.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Windows {
    pub action: String,
    pub step_up: bool,
    pub trials: usize,
    /// Trials that saw a refusal before the limit (all of them, unless the credential outlived
    /// the probe).
    pub refused: usize,
    pub worst_accepted: u64,
    pub median_accepted: f64,
    pub median_until_refused_ms: f64,
    pub worst_until_refused_ms: f64,
    /// Tries done again because the stolen credential had expired by itself before the
    /// action was acknowledged (they would have read as "refused at once").
    #[serde(default)]
    pub redone: usize,
}

impl Windows {
    pub fn name(&self) -> String {
        if self.step_up {
            format!("{} after step-up", self.action)
        } else {
            self.action.clone()
        }
    }

    fn of(action: Action, step_up: bool, trials: &[Trial]) -> Windows {
        let accepted: Vec<f64> = trials.iter().map(|t| t.accepted as f64).collect();
        let until: Vec<f64> = trials.iter().map(|t| t.until_refused_ms).collect();
        Windows {
            action: action.label().into(),
            step_up,
            trials: trials.len(),
            refused: trials.iter().filter(|t| t.refused).count(),
            worst_accepted: trials.iter().map(|t| t.accepted).max().unwrap_or(0),
            median_accepted: percentile(&accepted, 50.0),
            median_until_refused_ms: percentile(&until, 50.0),
            worst_until_refused_ms: until.iter().copied().fold(0.0, f64::max),
            redone: trials.iter().map(|t| t.redone).sum(),
        }
    }
}

/// Password-change trials in flight at most: with argon2 on one core, 16 changes queue for
/// about a second, well inside a 2 s token; fewer would leave the run waiting on lifetimes.
pub const PASSWORD_CHANGES_IN_FLIGHT: usize = 16;

/// How one mode's trials run.
pub struct TrialPlan {
    pub trials: usize,
    /// Trials in flight at once.
    pub concurrency: usize,
    /// Prober connections per trial.
    pub probers: usize,
    /// Give up on a trial this long after the action (the credential outlived the probe).
    pub limit: Duration,
}

/// Everything a trial needs from its mode.
pub struct Stage<'a> {
    pub a: &'a RunningApp,
    pub b: &'a RunningApp,
    pub issuer: &'a Issuer,
    pub phc: &'a str,
    /// Unique per mode: victims' names start with it.
    pub tag: &'a str,
    pub kind: Kind,
}

pub async fn measure(stage: &Stage<'_>, plan: &TrialPlan) -> Result<Vec<Windows>, BenchError> {
    let mut windows = Vec::new();
    for step_up in [false, true] {
        for action in ACTIONS {
            // A password change costs two argon2 runs: fewer in flight, so a queue of them
            // does not eat a short-lived token's lifetime before the action lands (a trial
            // whose token dies first is redone, which costs a whole lifetime).
            let concurrency = if action == Action::PasswordChange {
                plan.concurrency.min(PASSWORD_CHANGES_IN_FLIGHT)
            } else {
                plan.concurrency
            };
            let results: Vec<Result<Trial, BenchError>> =
                futures_util::stream::iter(0..plan.trials)
                    .map(|i| trial(stage, plan, action, step_up, i))
                    .buffer_unordered(concurrency.max(1))
                    .collect()
                    .await;
            let trials = results.into_iter().collect::<Result<Vec<_>, _>>()?;
            windows.push(Windows::of(action, step_up, &trials));
        }
    }
    Ok(windows)
}

/// Attempts per trial before the run gives up: a trial only counts when the stolen credential
/// was still alive when the action was acknowledged.
const ATTEMPTS: usize = 5;

async fn trial(
    stage: &Stage<'_>,
    plan: &TrialPlan,
    action: Action,
    step_up: bool,
    index: usize,
) -> Result<Trial, BenchError> {
    for attempt in 0..ATTEMPTS {
        if let Some(trial) = attempt_trial(stage, plan, action, step_up, index, attempt).await? {
            return Ok(Trial {
                redone: attempt,
                ..trial
            });
        }
    }
    Err(BenchError::Setup(format!(
        "{} trial {index}: the stolen credential was dead before the action {ATTEMPTS} times",
        action.label()
    )))
}

/// One try; `None` when it measured nothing: a plain JWT that expired by itself before the
/// action was acknowledged (its step-up or password change queued for argon2 too long)
/// would count as "refused at once", flattering the mode.
async fn attempt_trial(
    stage: &Stage<'_>,
    plan: &TrialPlan,
    action: Action,
    step_up: bool,
    index: usize,
    attempt: usize,
) -> Result<Option<Trial>, BenchError> {
    // A fresh victim (an admin, so a demotion shows) signed in through the login's own
    // issuing code, on instance A.
    let name = format!(
        "{}{}{}{index}a{attempt}",
        stage.tag,
        action as u8,
        if step_up { "s" } else { "p" }
    );
    add_user(&stage.a.store, &name, &["admin"], stage.phc).await?;
    let credential = stage
        .issuer
        .issue(&stage.a.store, &name, &["admin".to_owned()])
        .await?;
    let victim = Client::holding(&stage.a.base, &credential.cookie)?;
    // The admin acting in this trial, with a credential of its own: concurrent trials never
    // share a cookie jar (a JWT refresh rotates it, and the CSRF token with it).
    let admin = stage
        .issuer
        .issue(&stage.a.store, "bench", &["admin".to_owned()])
        .await?;
    let admin = Client::holding(&stage.a.base, &admin.cookie)?;
    if step_up {
        let reply = victim
            .api(
                Method::POST,
                "/api/reauth",
                Some(serde_json::json!({"password": PASSWORD})),
            )
            .await?;
        if reply.status != 204 {
            return Err(BenchError::Setup(format!(
                "step-up answered {}",
                reply.status
            )));
        }
    }
    // A step-up's new access token keeps the old one's expiry; when little of it is left
    // (the step-up queued for argon2), the browser's next request refreshes it, as a
    // browser's would once it expires: the thief then copies a token with its whole life.
    if step_up
        && let Some(exp) = access_token_expiry(&stage.issuer.stolen(&victim.cookie_header()))
        && exp - unix_now() < 1.0
    {
        let wait = (exp - unix_now()).max(0.0) + 1.05;
        tokio::time::sleep(Duration::from_secs_f64(wait)).await;
        victim.get("/api/me").await?;
    }
    // The thief copies the credential the browser now holds (after a step-up in JWT mode,
    // the freshest access token: the worst case) and replays it on instance B.
    let stolen = stage.issuer.stolen(&victim.cookie_header());
    let expires = access_token_expiry(&stolen);
    let (path, headers) = action.probe(stage.kind);
    let url = format!("{}{path}", stage.b.base);
    let hammer = Hammer::start(&url, &stolen, &headers, plan.probers)?;
    if !hammer.wait_until_accepted().await {
        hammer.abandon().await;
        return Ok(None);
    }

    let reply = match action {
        Action::Logout => victim.logout().await?,
        Action::AdminRevoke => {
            admin
                .api(
                    Method::DELETE,
                    &format!("/api/admin/users/{name}/sessions/{}", credential.handle),
                    None,
                )
                .await?
        }
        Action::RoleDemotion => {
            admin
                .api(
                    Method::PUT,
                    &format!("/api/admin/users/{name}/roles"),
                    Some(serde_json::json!({"roles": ["editor"]})),
                )
                .await?
        }
        Action::Disable => {
            admin
                .api(
                    Method::PUT,
                    &format!("/api/admin/users/{name}/disabled"),
                    Some(serde_json::json!({"disabled": true})),
                )
                .await?
        }
        Action::PasswordChange => {
            let token: serde_json::Value =
                serde_json::from_str(&victim.get("/api/csrf").await?.body)
                    .map_err(|e| BenchError::Setup(e.to_string()))?;
            let csrf = token["csrf"].as_str().unwrap_or_default().to_owned();
            let new = format!("{PASSWORD} {index} renewed");
            victim
                .send(Method::POST, "/account/password", |r| {
                    r.form(&[
                        ("current", PASSWORD),
                        ("new", new.as_str()),
                        ("confirm", new.as_str()),
                        ("csrf", csrf.as_str()),
                    ])
                })
                .await?
        }
    };
    let acknowledged = hammer.acknowledge();
    let alive_at_ack = expires.is_none_or(|exp| unix_now() < exp);
    if reply.status >= 400 {
        return Err(BenchError::Setup(format!(
            "{} answered {}: {}",
            action.label(),
            reply.status,
            reply.body.chars().take(200).collect::<String>()
        )));
    }
    let trial = hammer.finish(acknowledged, plan.limit).await;
    Ok(alive_at_ack.then_some(trial))
}

fn unix_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// The `exp` of the JWT in a `Cookie` header, if it holds one (session cookies have none).
/// The thief's copy is read, not trusted: no signature check is needed to learn its expiry.
fn access_token_expiry(cookie_header: &str) -> Option<f64> {
    cookie_header.split("; ").find_map(|pair| {
        let (_, value) = pair.split_once('=')?;
        let token = jsonwebtoken::dangerous::insecure_decode::<serde_json::Value>(value).ok()?;
        token.claims["exp"].as_f64()
    })
}

/// Prober connections replaying a stolen credential as fast as they can.
struct Hammer {
    state: Arc<HammerState>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

struct HammerState {
    acknowledged: OnceCell<Instant>,
    accepted_after: AtomicU64,
    accepted_total: AtomicU64,
    refused_at: OnceCell<Instant>,
    stop: AtomicBool,
}

impl Hammer {
    fn start(
        url: &str,
        cookie: &str,
        headers: &[(String, String)],
        probers: usize,
    ) -> Result<Hammer, BenchError> {
        let state = Arc::new(HammerState {
            acknowledged: OnceCell::new(),
            accepted_after: AtomicU64::new(0),
            accepted_total: AtomicU64::new(0),
            refused_at: OnceCell::new(),
            stop: AtomicBool::new(false),
        });
        let mut tasks = Vec::new();
        for _ in 0..probers.max(1) {
            // One client per prober: its own keep-alive connection.
            let http = reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .pool_max_idle_per_host(1)
                .build()
                .map_err(|e| BenchError::Setup(e.to_string()))?;
            let state = state.clone();
            let url = url.to_owned();
            let cookie = cookie.to_owned();
            let headers = headers.to_vec();
            tasks.push(tokio::spawn(async move {
                while !state.stop.load(Ordering::Relaxed) {
                    let sent_after_ack = state.acknowledged.initialized();
                    let mut request = http.get(&url).header("cookie", &cookie);
                    for (name, value) in &headers {
                        request = request.header(name, value);
                    }
                    let status = request
                        .send()
                        .await
                        .map(|r| r.status().as_u16())
                        .unwrap_or(0);
                    match status {
                        200..=299 => {
                            state.accepted_total.fetch_add(1, Ordering::Relaxed);
                            if sent_after_ack {
                                state.accepted_after.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                        401 | 403 => {
                            let _ = state.refused_at.set(Instant::now());
                            state.stop.store(true, Ordering::Relaxed);
                        }
                        _ => tokio::task::yield_now().await,
                    }
                }
            }));
        }
        Ok(Hammer { state, tasks })
    }

    /// Waits until the stolen copy has worked once: the probe is live before the action.
    /// False when it never did (refused already, or not within 5 s).
    async fn wait_until_accepted(&self) -> bool {
        let deadline = Instant::now() + Duration::from_secs(5);
        while self.state.accepted_total.load(Ordering::Relaxed) == 0
            && !self.state.stop.load(Ordering::Relaxed)
            && Instant::now() < deadline
        {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        self.state.accepted_total.load(Ordering::Relaxed) > 0
            && self.state.refused_at.get().is_none()
    }

    async fn abandon(self) {
        self.state.stop.store(true, Ordering::Relaxed);
        for task in self.tasks {
            let _ = task.await;
        }
    }

    /// The action's response has arrived: from now on an accepted request counts.
    fn acknowledge(&self) -> Instant {
        let now = Instant::now();
        let _ = self.state.acknowledged.set(now);
        now
    }

    async fn finish(self, acknowledged: Instant, limit: Duration) -> Trial {
        while !self.state.stop.load(Ordering::Relaxed) && acknowledged.elapsed() < limit {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        self.state.stop.store(true, Ordering::Relaxed);
        for task in self.tasks {
            let _ = task.await;
        }
        let refused_at = self.state.refused_at.get().copied();
        Trial {
            accepted: self.state.accepted_after.load(Ordering::Relaxed),
            until_refused_ms: refused_at
                .map(|at| at.saturating_duration_since(acknowledged).as_secs_f64() * 1000.0)
                .unwrap_or(limit.as_secs_f64() * 1000.0),
            refused: refused_at.is_some(),
            redone: 0,
        }
    }
}

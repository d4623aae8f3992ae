//! The benchmark's report: the machine and what else ran on it, one table of figures per mode
//! (medians of interleaved rounds with their min-max spread), the targets as met, missed or
//! inconclusive, the revocation windows across instances, the scale test, and SVG charts.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::Path;
use std::time::Duration;

use askama::Template;
use serde::{Deserialize, Serialize};

use super::stats::{Spread, Verdict};
use super::{BenchError, LoginCost, ModeResult, Plan, ScaleResult};

/// What else ran on the machine while the benchmark did: load average and the CPU time of
/// processes that are not the benchmark's own.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Activity {
    pub load_before: [f64; 3],
    pub load_after: [f64; 3],
    /// Other processes that used more than a second of CPU during the run: (name, seconds).
    pub others: Vec<(String, f64)>,
    #[serde(skip)]
    start: HashMap<u32, (String, f64)>,
}

fn load_average() -> [f64; 3] {
    let text = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let mut values = text
        .split_whitespace()
        .map(|v| v.parse().unwrap_or(f64::NAN));
    [
        values.next().unwrap_or(f64::NAN),
        values.next().unwrap_or(f64::NAN),
        values.next().unwrap_or(f64::NAN),
    ]
}

/// CPU seconds of every process but this one and its children: pid -> (name, seconds).
fn cpu_by_process() -> HashMap<u32, (String, f64)> {
    let own = std::process::id();
    let mut out = HashMap::new();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return out;
    };
    for entry in dir.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else {
            continue;
        };
        let name = stat[open + 1..close].to_owned();
        let fields: Vec<&str> = stat[close + 1..].split_whitespace().collect();
        let ppid = fields.get(1).and_then(|v| v.parse::<u32>().ok());
        if pid == own || ppid == Some(own) {
            continue;
        }
        // utime and stime, in clock ticks (100 per second on Linux).
        let ticks: f64 = [11, 12]
            .iter()
            .filter_map(|i| fields.get(*i).and_then(|v| v.parse::<f64>().ok()))
            .sum();
        out.insert(pid, (name, ticks / 100.0));
    }
    out
}

impl Activity {
    pub fn start() -> Activity {
        Activity {
            load_before: load_average(),
            start: cpu_by_process(),
            ..Activity::default()
        }
    }

    pub fn finish(mut self) -> Activity {
        self.load_after = load_average();
        let mut others: HashMap<String, f64> = HashMap::new();
        for (pid, (name, secs)) in cpu_by_process() {
            let before = self.start.get(&pid).map_or(0.0, |(_, s)| *s);
            *others.entry(name).or_default() += secs - before;
        }
        self.others = others.into_iter().filter(|(_, s)| *s > 1.0).collect();
        self.others.sort_by(|a, b| b.1.total_cmp(&a.1));
        self
    }

    /// Busy: the machine was loaded before we started, or other processes took more than 5%
    /// of the CPU time the run had.
    pub fn busy(&self, cores: usize, run_secs: f64) -> bool {
        let others: f64 = self.others.iter().map(|(_, s)| s).sum();
        self.load_before[0] > 0.5 * cores as f64 || others > 0.05 * run_secs * cores as f64
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Machine {
    pub cores: usize,
    pub cpu_model: String,
    pub redis_version: String,
    pub build_profile: String,
    pub date: String,
    pub quick: bool,
    pub run_secs: f64,
    pub activity: Activity,
    /// Absent from reports written before it was recorded.
    #[serde(default)]
    pub phases: Vec<Phase>,
}

/// One phase of the run and its wall-clock time.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Phase {
    pub name: String,
    pub secs: f64,
}

impl Machine {
    pub async fn read(
        redis: &mut super::cost::Redis,
        quick: bool,
        activity: Activity,
        elapsed: Duration,
        phases: Vec<Phase>,
    ) -> Result<Machine, BenchError> {
        let info: String = redis::cmd("INFO")
            .arg("server")
            .query_async(redis.first())
            .await?;
        let redis_version = info
            .lines()
            .find_map(|l| l.strip_prefix("redis_version:"))
            .unwrap_or("unknown")
            .trim()
            .to_owned();
        let cpu_model = std::fs::read_to_string("/proc/cpuinfo")
            .ok()
            .and_then(|text| {
                text.lines()
                    .find_map(|l| l.strip_prefix("model name"))
                    .map(|l| l.trim_start_matches([' ', '\t', ':']).trim().to_owned())
            })
            .unwrap_or_else(|| "unknown".into());
        let format = time::macros::format_description!("[year]-[month]-[day] [hour]:[minute] UTC");
        Ok(Machine {
            cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
            cpu_model,
            redis_version,
            build_profile: if cfg!(debug_assertions) {
                "debug"
            } else {
                "release"
            }
            .into(),
            date: time::OffsetDateTime::now_utc()
                .format(&format)
                .unwrap_or_default(),
            quick,
            run_secs: elapsed.as_secs_f64(),
            activity,
            phases,
        })
    }

    pub fn busy(&self) -> bool {
        self.activity.busy(self.cores, self.run_secs)
    }
}

/// A target from the issues, and what this run says about it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Target {
    pub name: String,
    pub goal: String,
    pub measured: String,
    pub verdict: Verdict,
}

/// The JWT defaults a deployment gets, for the computed windows.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct JwtDefaults {
    pub access_ttl_secs: u64,
    pub leeway_secs: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Report {
    pub machine: Machine,
    pub plan: Plan,
    pub modes: Vec<ModeResult>,
    pub login: Option<LoginCost>,
    pub scale: Option<ScaleResult>,
    pub jwt_defaults: JwtDefaults,
    pub targets: Vec<Target>,
}

impl Report {
    pub fn new(
        machine: Machine,
        plan: Plan,
        modes: Vec<ModeResult>,
        login: Option<LoginCost>,
        scale: Option<ScaleResult>,
    ) -> Report {
        let defaults = crate::config::Settings::default().jwt;
        let mut report = Report {
            machine,
            plan,
            modes,
            login,
            scale,
            jwt_defaults: JwtDefaults {
                access_ttl_secs: defaults.access_ttl_secs,
                leeway_secs: defaults.leeway_secs,
            },
            targets: Vec::new(),
        };
        report.targets = report.evaluate();
        report
    }

    /// Reads a report.json and writes the report (targets judged again) to `dir`.
    pub fn rerender(json: &Path, dir: &Path) -> Result<Report, BenchError> {
        let text = std::fs::read_to_string(json)?;
        let saved: Report =
            serde_json::from_str(&text).map_err(|e| BenchError::Setup(e.to_string()))?;
        let report = Report::new(
            saved.machine,
            saved.plan,
            saved.modes,
            saved.login,
            saved.scale,
        );
        report.write(dir)?;
        Ok(report)
    }

    pub fn mode(&self, id: &str) -> Option<&ModeResult> {
        self.modes.iter().find(|m| m.id == id)
    }

    /// Per-round ratio of two modes' throughput.
    pub fn throughput_ratio(&self, a: &str, b: &str) -> Spread {
        match (self.mode(a), self.mode(b)) {
            (Some(a), Some(b)) => Spread::ratio(&a.requests_per_sec, &b.requests_per_sec),
            _ => Spread::of(Vec::new()),
        }
    }

    /// The most requests a revoked credential got through in any trial of any action.
    pub fn worst_accepted(mode: &ModeResult) -> Option<u64> {
        mode.revocation.iter().map(|w| w.worst_accepted).max()
    }

    fn evaluate(&self) -> Vec<Target> {
        let mut targets = Vec::new();
        let mut judge = |name: &str, goal: &str, measured: String, verdict: Verdict| {
            targets.push(Target {
                name: name.into(),
                goal: goal.into(),
                measured,
                verdict,
            });
        };
        let rounds = self.plan.rounds;
        for (other, label, goal) in [
            ("jwt-hs256", "JWT HS256", 0.9),
            ("jwt-eddsa", "JWT EdDSA", 1.0),
            ("no-auth", "the no-auth ceiling", 0.7),
        ] {
            let r = self.throughput_ratio("session-redis", other);
            judge(
                &format!("Session (Redis) vs {label}, many sessions"),
                &format!(">= {goal:.1}x"),
                format!("{} over {rounds} rounds", r.show(2, "x")),
                Verdict::at_least(&r, goal),
            );
        }
        if self.mode("session-near-cache").is_some() {
            for (other, label, goal) in [
                ("jwt-hs256", "JWT HS256", 1.0),
                ("no-auth", "the no-auth ceiling", 0.9),
            ] {
                let r = self.throughput_ratio("session-near-cache", other);
                judge(
                    &format!("Session (Redis + near-cache) vs {label}, many sessions"),
                    &format!(">= {goal:.1}x"),
                    format!("{} over {rounds} rounds", r.show(2, "x")),
                    Verdict::at_least(&r, goal),
                );
            }
            let commands = self
                .mode("session-near-cache")
                .and_then(|m| m.load_commands_per_request)
                .unwrap_or(f64::NAN);
            judge(
                "Redis commands per request under load, near-cache (heartbeat PINGs aside)",
                "<= 0.02",
                format!("{commands:.4}"),
                Verdict::of(commands <= 0.02),
            );
            if let Some(c) = self
                .mode("session-near-cache")
                .and_then(|m| m.near_cache.as_ref())
            {
                let total = (c.hits + c.misses + c.fallbacks).max(1) as f64;
                let share = |n: u64| 100.0 * n as f64 / total;
                judge(
                    "Near-cache loads over the whole run (both instances)",
                    "reported",
                    format!(
                        "{:.1}% hits, {:.1}% misses, {:.1}% fallbacks of {total:.0}; {} keys invalidated",
                        share(c.hits),
                        share(c.misses),
                        share(c.fallbacks),
                        c.invalidations
                    ),
                    Verdict::Reported,
                );
            }
        }
        let session_cookie = self.mode("session-redis").map_or(0, |m| m.cookie_bytes);
        let eddsa_access = self
            .mode("jwt-eddsa")
            .and_then(|m| {
                m.credential_cookies
                    .iter()
                    .find(|(n, _)| n.contains("access"))
            })
            .map_or(0, |(_, b)| *b);
        let r = ratio(session_cookie as f64, eddsa_access as f64);
        judge(
            "Session cookie vs EdDSA access cookie",
            "<= 1/5 (0.20x)",
            format!("{session_cookie} B vs {eddsa_access} B = {r:.2}x"),
            Verdict::of(r <= 0.2),
        );
        let trips = self
            .mode("session-redis")
            .and_then(|m| m.redis.as_ref())
            .map_or(f64::NAN, |c| c.round_trips);
        judge(
            "Redis round trips per session request",
            "<= 1",
            format!("{trips:.2}"),
            Verdict::of(trips <= 1.0),
        );
        let memory = self
            .mode("session-redis")
            .and_then(|m| m.redis_bytes_per_session)
            .unwrap_or(f64::NAN);
        judge(
            &format!(
                "Redis memory per live session ({} sessions, index included)",
                self.plan.sessions
            ),
            "<= 400 B",
            format!("{memory:.0} B"),
            Verdict::of(memory <= 400.0),
        );
        for mode in &self.modes {
            if mode.revocation.is_empty() {
                continue;
            }
            let trials: usize = mode.revocation.iter().map(|w| w.trials).sum();
            let refused: usize = mode.revocation.iter().map(|w| w.refused).sum();
            let worst = Self::worst_accepted(mode).unwrap_or(u64::MAX);
            let where_ = if mode.revocation_cross_instance {
                "on the other instance"
            } else {
                "on the same instance (memory store)"
            };
            if mode.kind.revokes_at_expiry() {
                let until = mode
                    .revocation
                    .iter()
                    .map(|w| w.worst_until_refused_ms)
                    .fold(0.0, f64::max);
                judge(
                    &format!("Revocation window, {}", mode.label),
                    "reported",
                    format!(
                        "up to {worst} requests / {until:.0} ms {where_} ({trials} trials, access token lifetime {} s)",
                        mode.revocation_access_ttl_secs.unwrap_or(0)
                    ),
                    Verdict::Reported,
                );
            } else {
                judge(
                    &format!("Revocation window, {}", mode.label),
                    "0 requests in every trial",
                    format!(
                        "worst {worst} requests {where_} over {trials} trials of {} actions, {refused} refused",
                        mode.revocation.len()
                    ),
                    Verdict::of(worst == 0 && refused == trials),
                );
            }
        }
        if let Some(login) = &self.login {
            let r = ratio(
                login.p99_during_storm_us as f64,
                login.p99_without_storm_us as f64,
            );
            judge(
                "Authenticated p99 during a login storm",
                "<= 2x without",
                format!(
                    "{:.1} ms vs {:.1} ms = {r:.2}x ({:.0} login attempts/s)",
                    login.p99_during_storm_us as f64 / 1000.0,
                    login.p99_without_storm_us as f64 / 1000.0,
                    login.logins_per_sec
                ),
                Verdict::of(r <= 2.0),
            );
        }
        if let Some(scale) = &self.scale {
            let scanning: Vec<&str> = scale
                .pages
                .iter()
                .filter(|p| p.scans())
                .map(|p| p.name.as_str())
                .collect();
            judge(
                &format!("Admin pages at {} sessions do not scan", scale.sessions),
                "0 scans",
                if scanning.is_empty() {
                    "none scans".into()
                } else {
                    format!("scanning: {}", scanning.join(", "))
                },
                Verdict::of(scanning.is_empty()),
            );
            if let Some(small) = self.mode("session-redis") {
                let r = Spread::ratio(&scale.requests_per_sec, &small.requests_per_sec);
                judge(
                    &format!(
                        "GET /api/me at {} vs {} sessions",
                        scale.sessions, self.plan.sessions
                    ),
                    "reported",
                    r.show(2, "x"),
                    Verdict::Reported,
                );
            }
        }
        targets
    }

    /// The main comparison table (also pasted into the README).
    pub fn table(&self) -> String {
        let mut out = String::from(
            "| mode | req/s | p50 ms | p99 ms | credential bytes | Redis round trips / req | Redis B / session | page view: round trips, bytes up / down | revoked credential, other instance |\n|---|---|---|---|---|---|---|---|---|\n",
        );
        for m in &self.modes {
            let one = &m.one_cookie_requests_per_sec;
            let rps = if one.differs_from(&m.requests_per_sec) {
                format!(
                    "{} (one cookie: {})",
                    m.requests_per_sec.show(0, ""),
                    one.show(0, "")
                )
            } else {
                m.requests_per_sec.show(0, "")
            };
            let window = match Self::worst_accepted(m) {
                None => "-".to_owned(),
                Some(worst) if m.kind.revokes_at_expiry() => format!(
                    "up to {worst} req, until expiry (default: {} s)",
                    self.jwt_defaults.access_ttl_secs + self.jwt_defaults.leeway_secs
                ),
                Some(worst) => format!(
                    "{worst} req (worst of {} trials)",
                    m.revocation.iter().map(|w| w.trials).sum::<usize>()
                ),
            };
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} | {} | {} | {:.0}, {} / {} | {} |",
                m.label,
                rps,
                m.p50_ms.show(2, ""),
                m.p99_ms.show(2, ""),
                m.cookie_bytes,
                m.redis
                    .as_ref()
                    .map_or("-".into(), |c| format!("{:.2}", c.round_trips)),
                m.redis_bytes_per_session
                    .map_or("-".into(), |b| format!("{b:.0}")),
                m.page_view.redis_round_trips,
                m.page_view.request_bytes,
                m.page_view.response_bytes,
                window,
            );
        }
        out
    }

    pub fn targets_table(&self) -> String {
        let mut out = String::from("| target | goal | measured | |\n|---|---|---|---|\n");
        for t in &self.targets {
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} |",
                t.name,
                t.goal,
                t.measured,
                t.verdict.text()
            );
        }
        out
    }

    fn header(&self) -> String {
        let m = &self.machine;
        let p = &self.plan;
        let a = &m.activity;
        let mut out = format!(
            "# sessiond benchmark: sessions vs JWTs\n\n{} · {} cores ({}) · Redis {} · {} build · {:.0} s{}\n\n",
            m.date,
            m.cores,
            m.cpu_model,
            m.redis_version,
            m.build_profile,
            m.run_secs,
            if m.quick {
                " · **quick run** (smoke test: short, few connections, few trials; do not quote)"
            } else {
                ""
            },
        );
        let _ = writeln!(
            out,
            "Load average {:.2} / {:.2} / {:.2} before, {:.2} / {:.2} / {:.2} after (the benchmark's own load included). Other processes during the run: {}.\n",
            a.load_before[0],
            a.load_before[1],
            a.load_before[2],
            a.load_after[0],
            a.load_after[1],
            a.load_after[2],
            if a.others.is_empty() {
                "none above 1 s of CPU".to_owned()
            } else {
                a.others
                    .iter()
                    .take(5)
                    .map(|(name, secs)| format!("`{name}` {secs:.1} s of CPU"))
                    .collect::<Vec<_>>()
                    .join(", ")
            }
        );
        if !m.phases.is_empty() {
            let _ = writeln!(
                out,
                "Time by phase: {}.\n",
                m.phases
                    .iter()
                    .map(|p| format!("{} {:.0} s", p.name, p.secs))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
        if m.busy() {
            out.push_str("> **Warning: the machine was busy** (load before the start, or other processes using more than 5% of the CPU): these figures are noisier than usual. Run again on a quiet machine before quoting them.\n\n");
        }
        let _ = writeln!(
            out,
            "**How it was measured.** Every mode runs as two instances of the real app (each with {} worker thread(s), in one process) sharing one redis-server, one cookie key and one JWT signing key, as instances behind a load balancer do. One `wrk` per instance ({} connections each) sends `GET /api/me` with a credential picked at random per request from {} live ones. Modes run interleaved in {} round(s) of {} s warm-up, {} s over many credentials and {} s with one credential; each figure is the median of its rounds with the min-max spread in brackets, each ratio the median of per-round ratios. A ratio whose spread crosses its target is *inconclusive*. Load generator, app and Redis share the same cores, so absolute numbers are low and ratios are what matter; latency is the worse of the two instances.\n",
            (m.cores / 2).max(1),
            p.connections,
            p.sessions,
            p.rounds,
            p.warmup_secs,
            p.measure_secs,
            p.one_cookie_secs,
        );
        out.push_str("**The credentials are real.** One real login per mode (argon2 and all) shows what a browser receives. The load's sessions are clones of that login's stored state, each with a new ID (its owner's tag and 256 random bits), its own owner (two sessions per user) and its own CSRF token, stored through the session backend's own `store_new_session`; their cookies are signed with the instances' cookie key exactly as actix-session signs them. JWT credentials come from `JwtMode::issue`, the login's own code after the password check: a refresh family in Redis and an access token signed with the instances' key. The app verifies every one of them the normal way; no argon2 is spent on them.\n\n");
        out
    }

    fn revocation_section(&self) -> String {
        let p = &self.plan;
        let mut out = format!(
            "\n## Revocation windows across instances\n\nA victim holds a real credential on instance A; a thief copies the credential (the session cookie; in JWT mode the access token, since replaying the refresh cookie would set off refresh-token reuse detection once the token expires; copied after the step-up when there is one, so in JWT mode the freshest token there is) and replays it on instance B from {} prober connection(s) as fast as they go, with no sleeps, while background load (2 connections per instance) runs. The action runs on A; *accepted* counts the thief's requests **sent after the action's response arrived** that still got a 2xx; *until refused* runs from that response to the first 401/403. {} trials per mode and action ({} in flight at once; plain JWT: {} in flight with {} prober(s) each, with a {} s access-token lifetime and no leeway so each trial ends; password changes, which queue for argon2, at most {} in flight). Modes run one at a time. Session (memory) is probed on instance A: its store is per process. A trial counts only when the stolen credential worked before the action and had not expired by itself when the action was acknowledged; otherwise it is done again with a fresh victim (*redone*), so a token that died of old age while its step-up or password change queued for argon2 never reads as \"refused at once\". After a step-up whose token has less than a second left, the victim's browser refreshes it first, as it would on its next request.\n\n| mode | action | trials | accepted: worst | accepted: median | until refused: median | until refused: worst | refused | redone |\n|---|---|---|---|---|---|---|---|---|\n",
            p.probers,
            p.trials,
            p.trial_concurrency,
            p.jwt_trial_concurrency,
            p.jwt_probers,
            p.jwt_ttl_for_revocation,
            super::revocation::PASSWORD_CHANGES_IN_FLIGHT,
        );
        for mode in &self.modes {
            for w in &mode.revocation {
                let _ = writeln!(
                    out,
                    "| {} | {} | {} | {} | {:.0} | {:.1} ms | {:.1} ms | {} of {} | {} |",
                    mode.label,
                    w.name(),
                    w.trials,
                    w.worst_accepted,
                    w.median_accepted,
                    w.median_until_refused_ms,
                    w.worst_until_refused_ms,
                    w.refused,
                    w.trials,
                    w.redone,
                );
            }
        }
        let d = &self.jwt_defaults;
        let _ = writeln!(
            out,
            "\n**Plain JWT with the defaults (computed, not measured):** `access_ttl_secs = {}` and `leeway_secs = {}`, so a revoked access token keeps working for up to **{} s** after the action, and for {} s on average when the action falls at a random moment of the token's life; every request in that time is accepted (at this machine's HS256 rate, millions). The deny-list closes the window at the cost of one Redis round trip per request.",
            d.access_ttl_secs,
            d.leeway_secs,
            d.access_ttl_secs + d.leeway_secs,
            d.access_ttl_secs / 2 + d.leeway_secs,
        );
        out
    }

    fn detail_sections(&self) -> String {
        let mut out = String::from(
            "\n## Per-round figures\n\n| mode | req/s per round | p99 ms per round | one cookie req/s per round | load errors |\n|---|---|---|---|---|\n",
        );
        let list = |s: &Spread, digits: usize| {
            s.values
                .iter()
                .map(|v| format!("{v:.digits$}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        for m in &self.modes {
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} |",
                m.label,
                list(&m.requests_per_sec, 0),
                list(&m.p99_ms, 2),
                list(&m.one_cookie_requests_per_sec, 0),
                m.load_errors
            );
        }
        out.push_str("\nLoad errors count answers other than 2xx/3xx and socket errors; the ceiling sends no credential, so its answers are 401s by design (the whole stack runs, nothing is verified). The one-cookie figure appears in the main table only when its range does not overlap the many-sessions range.\n");
        out.push_str("\n## Cost per request and per page view\n\nRedis cost is counted over 200 sequential authenticated requests (`INFO commandstats` and the app's own round-trip counter). A page view is `GET /` and its stylesheet with the headers Chromium sends and the credential cookies, each on a fresh connection; bytes are what went over the socket.\n\n| mode | Redis commands / req | round trips / req | Redis CPU us / req | page view: Redis commands | page view: round trips | page view: bytes sent | page view: bytes received | Set-Cookie bytes at login |\n|---|---|---|---|---|---|---|---|---|\n");
        for m in &self.modes {
            let (commands, trips, usec) = match &m.redis {
                Some(c) => (
                    format!("{:.2}", c.commands),
                    format!("{:.2}", c.round_trips),
                    format!("{:.1}", c.server_usec),
                ),
                None => ("-".into(), "-".into(), "-".into()),
            };
            let _ = writeln!(
                out,
                "| {} | {commands} | {trips} | {usec} | {:.1} | {:.1} | {} | {} | {} |",
                m.label,
                m.page_view.redis_commands,
                m.page_view.redis_round_trips,
                m.page_view.request_bytes,
                m.page_view.response_bytes,
                m.set_cookie_bytes,
            );
        }
        if let Some(scale) = &self.scale {
            let small = self.mode("session-redis");
            let _ = write!(
                out,
                "\n## Scale: {} live sessions over {} users\n\nLoaded through the store's own write path (concurrent calls pipelined on its connection) in {:.0} s. Redis memory per session at that size: **{:.0} B** ({} B at {} sessions). `GET /api/me` over {} of them at random: {} req/s, p99 {} ms ({} req/s and {} ms at {} sessions).\n\n| page | samples | p50 ms | p99 ms | Redis commands / view | Redis CPU us / view | scans | status |\n|---|---|---|---|---|---|---|---|\n",
                scale.sessions,
                scale.users,
                scale.load_secs,
                scale.redis_bytes_per_session,
                small
                    .and_then(|m| m.redis_bytes_per_session)
                    .map_or("-".into(), |b| format!("{b:.0}")),
                self.plan.sessions,
                self.plan.sessions,
                scale.requests_per_sec.show(0, ""),
                scale.p99_ms.show(2, ""),
                small.map_or("-".into(), |m| m.requests_per_sec.show(0, "")),
                small.map_or("-".into(), |m| m.p99_ms.show(2, "")),
                self.plan.sessions,
            );
            for page in &scale.pages {
                let _ = writeln!(
                    out,
                    "| {} (`{}`) | {} | {:.2} | {:.2} | {:.1} | {:.0} | {} | {} |",
                    page.name,
                    page.path,
                    page.samples,
                    page.p50_ms,
                    page.p99_ms,
                    page.redis_commands,
                    page.redis_usec,
                    if page.scans() { "**yes**" } else { "no" },
                    page.status,
                );
            }
        }
        out.push_str(
            "\n## Credentials\n\n| mode | cookies held by a signed-in browser |\n|---|---|\n",
        );
        for mode in &self.modes {
            let cookies: Vec<String> = mode
                .credential_cookies
                .iter()
                .map(|(n, b)| format!("`{n}` {b} B"))
                .collect();
            let _ = writeln!(
                out,
                "| {} | {} |",
                mode.label,
                if cookies.is_empty() {
                    "none".into()
                } else {
                    cookies.join(", ")
                }
            );
        }
        out
    }

    pub fn markdown(&self) -> String {
        let mut out = self.header();
        out.push_str(&self.table());
        out.push_str("\n## Targets\n\n");
        out.push_str(&self.targets_table());
        out.push_str(&self.limits());
        out.push_str(&self.revocation_section());
        out.push_str(&self.detail_sections());
        out.push_str(
            "\nCharts: `throughput.svg`, `latency.svg` (min-max error bars), `credential.svg`, `revocation.svg` (log scale).\n",
        );
        out
    }

    /// What limits each target that was not met, from this run's own figures.
    fn limits(&self) -> String {
        let not_met = |prefix: &str| {
            self.targets.iter().any(|t| {
                t.name.starts_with(prefix)
                    && matches!(t.verdict, Verdict::Missed | Verdict::Inconclusive)
            })
        };
        let rps = |id: &str| {
            self.mode(id)
                .map_or(f64::NAN, |m| m.requests_per_sec.median)
        };
        let mut out = String::new();
        if not_met("Session (Redis) vs") {
            let cost = self.mode("session-redis").and_then(|m| m.redis.as_ref());
            let _ = write!(
                out,
                "\n**Throughput.** Session (memory) runs the same session code without the Redis hop at {:.0} req/s ({:.2}x the ceiling, {:.2}x JWT HS256); session (Redis) at {:.0}. The gap is the round trip to redis-server, which shares these {} cores with the app and with wrk: each request costs one EVALSHA ({:.1} commands, {:.1} us of Redis CPU by its own count) plus a write, a read and the context switches on both sides, where HS256 verification is a few microseconds in-process. The near-cache row closes it from the other side: the hot path served in-process, kept honest by Redis (RESP3 client tracking).\n",
                rps("session-memory"),
                ratio(rps("session-memory"), rps("no-auth")),
                ratio(rps("session-memory"), rps("jwt-hs256")),
                rps("session-redis"),
                self.machine.cores,
                cost.map_or(0.0, |c| c.commands),
                cost.map_or(0.0, |c| c.server_usec),
            );
        }
        if not_met("Session (Redis + near-cache)")
            || not_met("Redis commands per request under load")
        {
            let near = self.mode("session-near-cache");
            let counts = near.and_then(|m| m.near_cache.clone()).unwrap_or_default();
            let total = (counts.hits + counts.misses + counts.fallbacks).max(1) as f64;
            let share = |n: u64| 100.0 * n as f64 / total;
            let per_session =
                total / (2.0 * self.plan.sessions as f64 * self.plan.rounds.max(1) as f64);
            let _ = write!(
                out,
                "\n**Near-cache.** Session (Redis + near-cache) serves {:.0} req/s: {:.2}x session (Redis), {:.2}x session (memory), which runs the same session code with no Redis at all. Over the run {:.1}% of its loads were hits, {:.1}% misses and {:.1}% fallbacks to Redis ({} keys invalidated). What still separates it from session (memory): every hit peeks at the tracking socket (one `recv(MSG_PEEK)` system call), takes the cache's lock and copies the session's fields; every miss costs two round trips (the load script, then the owner's record); and here every session is touched once per round, since the rounds run more than `session.touch_interval_secs` apart: the first request for a session in a round slides its expiry (a load and the owner's record: two commands) and invalidates the other instance's entry (two more there), while each session is asked only about {per_session:.0} times per round on each instance. The cache's own thread also shares the {} cores with the app, Redis and wrk; when it is late to read its socket, hits become fallbacks to Redis rather than risk a stale answer. The Redis commands per request ({:.3} against 0.02) are mostly those touches: a session asked N times per touch interval on each instance costs about 2/N commands per request. What would close it: keeping \"last seen\" out of the cached hash, so that sliding the expiry invalidates nothing (a key-schema change, for the cluster redesign).\n",
                rps("session-near-cache"),
                ratio(rps("session-near-cache"), rps("session-redis")),
                ratio(rps("session-near-cache"), rps("session-memory")),
                share(counts.hits),
                share(counts.misses),
                share(counts.fallbacks),
                counts.invalidations,
                self.machine.cores,
                near.and_then(|m| m.load_commands_per_request)
                    .unwrap_or(f64::NAN),
            );
        }
        if not_met("Session cookie") {
            let bytes = self.mode("session-redis").map_or(0, |m| m.cookie_bytes);
            let _ = write!(
                out,
                "\n**Cookie size.** The session cookie is {bytes} B: `__Host-sid=` (11 B), actix-session's HMAC-SHA256 signature (44 B of base64, its `=` percent-encoded as `%3D`, plus any `+`/`/` it needs encoded) and the 54-byte ID (the owner's 11-character tag, which names the Redis Cluster slot, and 256 random bits). actix-session always signs or encrypts its cookie; without the signature the cookie would be 65 B. The signature adds no security to a 256-bit random ID (it does let forged cookies be dropped without a Redis lookup); meeting this target means replacing actix-session's middleware with our own.\n"
            );
        }
        if not_met("Redis memory") {
            out.push_str("\n**Memory.** Per session: the session hash, its expiry, its entry in the user's index (a small sorted set per user) and in the global stream of sessions. The per-user index key dominates when users have one or two sessions.\n");
        }
        if not_met("Authenticated p99") {
            out.push_str("\n**Login storm.** argon2 is limited to all cores but one; on this machine that is one core for a storm, and the authenticated requests share the other with wrk and Redis.\n");
        }
        if out.is_empty() {
            out
        } else {
            format!("\n## What limits the targets not met\n{out}")
        }
    }

    pub fn write(&self, dir: &Path) -> Result<(), BenchError> {
        std::fs::create_dir_all(dir)?;
        std::fs::write(dir.join("report.md"), self.markdown())?;
        let json =
            serde_json::to_string_pretty(self).map_err(|e| BenchError::Setup(e.to_string()))?;
        std::fs::write(dir.join("report.json"), json)?;
        let modes = &self.modes;
        let spread_bar = |m: &ModeResult, s: &Spread, digits: usize, unit: &str| ChartValue {
            label: m.label.clone(),
            value: s.median,
            range: Some((s.min, s.max)),
            text: s.show(digits, unit),
        };
        std::fs::write(
            dir.join("throughput.svg"),
            BarChart::linear(
                "Throughput, GET /api/me over many sessions, two instances",
                "requests per second, median of rounds with min-max (higher is better)",
                modes
                    .iter()
                    .map(|m| spread_bar(m, &m.requests_per_sec, 0, "/s"))
                    .collect(),
            )
            .render()?,
        )?;
        std::fs::write(
            dir.join("latency.svg"),
            BarChart::linear(
                "Latency p99, worse of the two instances",
                "milliseconds, median of rounds with min-max (lower is better)",
                modes
                    .iter()
                    .map(|m| spread_bar(m, &m.p99_ms, 2, " ms"))
                    .collect(),
            )
            .render()?,
        )?;
        std::fs::write(
            dir.join("credential.svg"),
            BarChart::linear(
                "Credential bytes per request",
                "Cookie header bytes sent with every request",
                modes
                    .iter()
                    .map(|m| ChartValue {
                        label: m.label.clone(),
                        value: m.cookie_bytes as f64,
                        range: None,
                        text: format!("{} B", m.cookie_bytes),
                    })
                    .collect(),
            )
            .render()?,
        )?;
        let mut windows: Vec<ChartValue> = modes
            .iter()
            .filter(|m| !m.revocation.is_empty())
            .map(|m| {
                let worst = m
                    .revocation
                    .iter()
                    .map(|w| w.worst_until_refused_ms)
                    .fold(0.0, f64::max);
                let median = super::stats::percentile(
                    &m.revocation
                        .iter()
                        .map(|w| w.median_until_refused_ms)
                        .collect::<Vec<_>>(),
                    50.0,
                );
                let accepted = Self::worst_accepted(m).unwrap_or(0);
                // A window with nothing accepted is zero, whatever the refusal took.
                let (value, range) = if accepted == 0 {
                    (0.0, None)
                } else {
                    (median, Some((median, worst)))
                };
                ChartValue {
                    label: m.label.clone(),
                    value,
                    range,
                    text: if accepted == 0 {
                        "0 requests".into()
                    } else {
                        format!("up to {accepted} req, {:.1} s", worst / 1000.0)
                    },
                }
            })
            .collect();
        if modes.iter().any(|m| m.kind.revokes_at_expiry()) {
            let d = &self.jwt_defaults;
            windows.push(ChartValue {
                label: "plain JWT, default TTL".into(),
                value: (d.access_ttl_secs / 2 + d.leeway_secs) as f64 * 1000.0,
                range: Some((
                    d.leeway_secs as f64 * 1000.0,
                    (d.access_ttl_secs + d.leeway_secs) as f64 * 1000.0,
                )),
                text: format!("up to {} s (computed)", d.access_ttl_secs + d.leeway_secs),
            });
        }
        std::fs::write(
            dir.join("revocation.svg"),
            BarChart::log_ms(
                "How long a revoked credential keeps working on the other instance",
                "time from the action's response to the first refusal, log scale (0 = nothing accepted)",
                windows,
            )
            .render()?,
        )?;
        Ok(())
    }
}

fn ratio(a: f64, b: f64) -> f64 {
    if b == 0.0 { f64::NAN } else { a / b }
}

/// One bar: the value, an optional min-max range drawn as an error bar, and its text.
pub struct ChartValue {
    pub label: String,
    pub value: f64,
    pub range: Option<(f64, f64)>,
    pub text: String,
}

pub struct Bar {
    pub label: String,
    pub value: String,
    pub width: u32,
    pub y: u32,
    pub color: &'static str,
    /// The error bar's ends, in pixels from the plot's left edge (equal when there is none).
    pub low: u32,
    pub high: u32,
    /// Where the value's text starts: past the bar and its error bar.
    pub text_x: u32,
}

pub struct Tick {
    pub x: u32,
    pub label: String,
}

#[derive(Template)]
#[template(path = "bench/bars.svg", escape = "html")]
pub struct BarChart {
    pub title: String,
    pub subtitle: String,
    pub width: u32,
    pub height: u32,
    pub label_width: u32,
    pub bars: Vec<Bar>,
    pub ticks: Vec<Tick>,
    pub axis_y: u32,
}

const LABEL_WIDTH: u32 = 190;
const PLOT: f64 = 420.0;

impl BarChart {
    fn build(
        title: &str,
        subtitle: &str,
        values: Vec<ChartValue>,
        scale: impl Fn(f64) -> f64,
        ticks: Vec<Tick>,
    ) -> BarChart {
        let px = |v: f64| -> u32 {
            if v.is_finite() {
                (scale(v) * PLOT).round().clamp(0.0, PLOT) as u32
            } else {
                0
            }
        };
        let bars = values
            .into_iter()
            .enumerate()
            .map(|(i, v)| {
                let (low, high) = v
                    .range
                    .map_or((px(v.value), px(v.value)), |(lo, hi)| (px(lo), px(hi)));
                Bar {
                    color: if v.label.starts_with("session") {
                        "#0a7d2c"
                    } else if v.label.contains("JWT") {
                        "#0645ad"
                    } else {
                        "#888888"
                    },
                    width: px(v.value).max(1),
                    y: 56 + 28 * i as u32,
                    text_x: LABEL_WIDTH + px(v.value).max(1).max(high) + 6,
                    low,
                    high,
                    label: v.label,
                    value: v.text,
                }
            })
            .collect::<Vec<_>>();
        let axis_y = 60 + 28 * bars.len() as u32;
        BarChart {
            title: title.into(),
            subtitle: subtitle.into(),
            width: LABEL_WIDTH + PLOT as u32 + 170,
            height: axis_y + if ticks.is_empty() { 6 } else { 24 },
            label_width: LABEL_WIDTH,
            bars,
            ticks,
            axis_y,
        }
    }

    fn linear(title: &str, subtitle: &str, values: Vec<ChartValue>) -> BarChart {
        let max = values
            .iter()
            .map(|v| v.range.map_or(v.value, |(_, hi)| hi.max(v.value)))
            .filter(|v| v.is_finite())
            .fold(0.0_f64, f64::max);
        let scale = move |v: f64| if max > 0.0 { v / max } else { 0.0 };
        BarChart::build(title, subtitle, values, scale, Vec::new())
    }

    /// Milliseconds on a log scale from 0 (log10(1 + ms)) up to 1,000 s.
    fn log_ms(title: &str, subtitle: &str, values: Vec<ChartValue>) -> BarChart {
        let top = (1.0 + 1_000_000.0_f64).log10();
        let scale = move |ms: f64| (1.0 + ms.max(0.0)).log10() / top;
        let ticks = [
            (0.0, "0"),
            (1.0, "1 ms"),
            (100.0, "100 ms"),
            (10_000.0, "10 s"),
            (1_000_000.0, "1000 s"),
        ]
        .iter()
        .map(|(ms, label)| Tick {
            x: LABEL_WIDTH + (scale(*ms) * PLOT).round() as u32,
            label: label.to_string(),
        })
        .collect();
        BarChart::build(title, subtitle, values, scale, ticks)
    }
}

//! The benchmark's report: the machine, one table of figures per mode, the targets as met or
//! not met, and SVG charts.

use std::fmt::Write as _;
use std::path::Path;

use askama::Template;
use serde::{Deserialize, Serialize};

use super::{BenchError, LoginCost, ModeResult};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Machine {
    pub cores: usize,
    pub cpu_model: String,
    pub redis_version: String,
    pub build_profile: String,
    pub date: String,
    pub quick: bool,
}

impl Machine {
    pub async fn read(
        redis: &mut redis::aio::MultiplexedConnection,
        quick: bool,
    ) -> Result<Machine, BenchError> {
        let info: String = redis::cmd("INFO").arg("server").query_async(redis).await?;
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
        })
    }
}

/// A target from the issue, and whether this run met it (`None`: reported, not judged).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Target {
    pub name: String,
    pub goal: String,
    pub measured: String,
    pub met: Option<bool>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Report {
    pub machine: Machine,
    pub modes: Vec<ModeResult>,
    pub login: Option<LoginCost>,
    pub targets: Vec<Target>,
}

fn ratio(a: f64, b: f64) -> f64 {
    if b == 0.0 { 0.0 } else { a / b }
}

impl Report {
    pub fn new(
        machine: Machine,
        modes: Vec<ModeResult>,
        login: Option<LoginCost>,
        _quick: bool,
    ) -> Report {
        let mut report = Report {
            machine,
            modes,
            login,
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
        let report = Report::new(saved.machine, saved.modes, saved.login, false);
        report.write(dir)?;
        Ok(report)
    }

    pub fn mode(&self, id: &str) -> Option<&ModeResult> {
        self.modes.iter().find(|m| m.id == id)
    }

    /// The worst window (most requests accepted) of a mode's revocation scenarios.
    pub fn worst_window(mode: &ModeResult) -> Option<&super::Window> {
        mode.revocation
            .iter()
            .map(|(_, w)| w)
            .max_by(|a, b| a.accepted_requests.cmp(&b.accepted_requests))
    }

    fn evaluate(&self) -> Vec<Target> {
        let mut targets = Vec::new();
        let rps = |id: &str| self.mode(id).map_or(0.0, |m| m.requests_per_sec);
        let session = rps("session-redis");
        let mut judge = |name: &str, goal: &str, measured: String, met: Option<bool>| {
            targets.push(Target {
                name: name.into(),
                goal: goal.into(),
                measured,
                met,
            });
        };
        let r = ratio(session, rps("jwt-hs256"));
        judge(
            "Session vs JWT HS256 throughput",
            ">= 0.9x",
            format!("{r:.2}x"),
            Some(r >= 0.9),
        );
        let r = ratio(session, rps("jwt-eddsa"));
        judge(
            "Session vs JWT EdDSA throughput",
            ">= 1.0x",
            format!("{r:.2}x"),
            Some(r >= 1.0),
        );
        let r = ratio(session, rps("no-auth"));
        judge(
            "Session vs no-auth ceiling throughput",
            ">= 0.7x",
            format!("{r:.2}x"),
            Some(r >= 0.7),
        );
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
            Some(r <= 0.2),
        );
        let trips = self
            .mode("session-redis")
            .and_then(|m| m.redis_round_trips_per_request)
            .unwrap_or(f64::NAN);
        judge(
            "Redis round trips per session request",
            "<= 1",
            format!("{trips:.2}"),
            Some(trips <= 1.0),
        );
        let memory = self
            .mode("session-redis")
            .and_then(|m| m.redis_bytes_per_session)
            .unwrap_or(f64::NAN);
        judge(
            "Redis memory per live session (index included)",
            "<= 400 B",
            format!("{memory:.0} B"),
            Some(memory <= 400.0),
        );
        for id in ["session-redis", "session-memory", "jwt-eddsa-denylist"] {
            if let Some(mode) = self.mode(id) {
                let worst = Self::worst_window(mode);
                let accepted = worst.map_or(u64::MAX, |w| w.accepted_requests);
                let refused = mode.revocation.iter().all(|(_, w)| w.refused);
                judge(
                    &format!("Revocation window, {}", mode.label),
                    "0 requests",
                    format!(
                        "{accepted} requests (worst of {} actions)",
                        mode.revocation.len()
                    ),
                    Some(accepted == 0 && refused),
                );
            }
        }
        for id in ["jwt-hs256", "jwt-eddsa", "jwt-es256", "jwt-rs256"] {
            if let Some(mode) = self.mode(id)
                && let Some(worst) = Self::worst_window(mode)
            {
                judge(
                    &format!("Revocation window, {}", mode.label),
                    "reported",
                    format!(
                        "up to {} requests / {:.0} ms (access token lifetime {} s)",
                        worst.accepted_requests,
                        worst.window_ms,
                        mode.revocation_access_ttl_secs.unwrap_or(0)
                    ),
                    None,
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
                Some(r <= 2.0),
            );
        }
        targets
    }

    /// The main comparison table (also pasted into the README).
    pub fn table(&self) -> String {
        let mut out = String::from(
            "| mode | req/s | p50 ms | p99 ms | p99.9 ms | credential bytes | request bytes | Set-Cookie bytes at login | Redis cmds / req | round trips / req | Redis B / session | revoked credential still accepted |\n|---|---|---|---|---|---|---|---|---|---|---|---|\n",
        );
        for m in &self.modes {
            let opt = |v: Option<f64>, digits: usize| match v {
                Some(v) => format!("{v:.digits$}"),
                None => "-".into(),
            };
            let window = match Self::worst_window(m) {
                None => "-".to_owned(),
                Some(w) if m.revocation_access_ttl_secs.is_some() && w.accepted_requests > 0 => {
                    format!("{} req / {:.0} ms", w.accepted_requests, w.window_ms)
                }
                Some(w) => format!("{} req", w.accepted_requests),
            };
            let _ = writeln!(
                out,
                "| {} | {:.0} | {:.2} | {:.2} | {:.2} | {} | {} | {} | {} | {} | {} | {} |",
                m.label,
                m.requests_per_sec,
                m.load.p50_us as f64 / 1000.0,
                m.load.p99_us as f64 / 1000.0,
                m.load.p999_us as f64 / 1000.0,
                m.cookie_bytes,
                m.request_bytes,
                m.set_cookie_bytes,
                opt(m.redis_commands_per_request, 2),
                opt(m.redis_round_trips_per_request, 2),
                opt(m.redis_bytes_per_session, 0),
                window,
            );
        }
        out
    }

    pub fn targets_table(&self) -> String {
        let mut out = String::from("| target | goal | measured | |\n|---|---|---|---|\n");
        for t in &self.targets {
            let verdict = match t.met {
                Some(true) => "met",
                Some(false) => "**not met**",
                None => "reported",
            };
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} |",
                t.name, t.goal, t.measured, verdict
            );
        }
        out
    }

    pub fn markdown(&self) -> String {
        let m = &self.machine;
        let mut out = format!(
            "# sessiond benchmark: sessions vs JWTs\n\n{} · {} cores ({}) · Redis {} · {} build{}\n\n",
            m.date,
            m.cores,
            m.cpu_model,
            m.redis_version,
            m.build_profile,
            if m.quick {
                " · **quick run** (smoke test: short, few connections; do not quote)"
            } else {
                ""
            },
        );
        out.push_str("Every mode serves the same endpoint (`GET /api/me`) in this process on all cores, loaded by `wrk -t2` on the same machine (load generator and server share the cores, so absolute numbers are low and ratios are what matter). \"No auth\" is the same request without a credential: the whole stack runs, nothing is verified. JWT modes keep refresh families in Redis but verify access tokens without it, except with the deny-list.\n\n");
        out.push_str(&self.table());
        out.push_str("\n## Targets\n\n");
        out.push_str(&self.targets_table());
        out.push_str(&self.limits());
        out.push_str("\n## Revocation windows, by action\n\nA victim signs in, a thief copies every cookie, the victim types the password again (step-up: in JWT mode a new access token the thief does not hold), the action runs, and the thief's copy is polled every 20 ms until refused. JWT modes run this with a short access-token lifetime so it finishes (shown); with the default 5 minutes the plain-JWT windows scale accordingly.\n\n| mode | action | accepted after the action | until refused | refused |\n|---|---|---|---|---|\n");
        for mode in &self.modes {
            for (scenario, w) in &mode.revocation {
                let _ = writeln!(
                    out,
                    "| {} | {} | {} | {:.0} ms | {} |",
                    mode.label,
                    scenario,
                    w.accepted_requests,
                    w.window_ms,
                    if w.refused { "yes" } else { "no (gave up)" }
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
        out.push_str(
            "\nCharts: `throughput.svg`, `latency.svg`, `credential.svg`, `revocation.svg`.\n",
        );
        out
    }

    /// What limits each missed target, from this run's own figures.
    fn limits(&self) -> String {
        let missed = |prefix: &str| {
            self.targets
                .iter()
                .any(|t| t.name.starts_with(prefix) && t.met == Some(false))
        };
        let rps = |id: &str| self.mode(id).map_or(0.0, |m| m.requests_per_sec);
        let mut out = String::new();
        if missed("Session vs") {
            let _ = write!(
                out,
                "\n**Throughput.** Session (memory) runs the same session code without the Redis hop at {:.0} req/s ({:.2}x the ceiling, {:.2}x JWT HS256); session (Redis) at {:.0}. The gap is the round trip to redis-server, which shares these {} cores with the app and with wrk: each request costs one EVALSHA (Lua, HGETALL, HMGET: {:.1} commands, {:.1} us of Redis CPU by its own count) plus a write, a read and the context switches on both sides, where HS256 verification is a few microseconds in-process. Already ours and done: one round trip, no pool checkout, one multiplexed connection per worker thread, a leaner load script. Most of that Redis CPU is the script itself (EVALSHA's fixed cost), which buys reading the owner's current roles in the same round trip. What would close the gap: copying roles and the disabled flag into each session hash (the role-change and disable scripts would update them through the per-user index) so the hot path becomes a plain HGETALL; Redis on a core or host of its own; or a client-side cache of user records with Redis invalidation (RESP3 tracking, experimental in redis-rs).\n",
                rps("session-memory"),
                ratio(rps("session-memory"), rps("no-auth")),
                ratio(rps("session-memory"), rps("jwt-hs256")),
                rps("session-redis"),
                self.machine.cores,
                self.mode("session-redis")
                    .and_then(|m| m.redis_commands_per_request)
                    .unwrap_or(0.0),
                self.mode("session-redis")
                    .and_then(|m| m.redis_server_usec_per_request)
                    .unwrap_or(0.0),
            );
        }
        if missed("Session cookie") {
            let bytes = self.mode("session-redis").map_or(0, |m| m.cookie_bytes);
            let _ = write!(
                out,
                "\n**Cookie size.** The session cookie is {bytes} B: `__Host-sid=` (11 B), actix-session's HMAC-SHA256 signature (44 B of base64, its `=` percent-encoded as `%3D`, plus any `+`/`/` it needs encoded) and the 43-byte ID. actix-session always signs or encrypts its cookie; without the signature the cookie would be 54 B (0.13x the EdDSA access cookie). The signature adds no security to a 256-bit random ID (it does let forged cookies be dropped without a Redis lookup); meeting this target means replacing actix-session's middleware with our own.\n"
            );
        }
        if missed("Redis memory") {
            out.push_str("\n**Memory.** Per session: the session hash (about 200 B in Redis's allocator), its expiry entry, its entry in the user's index (a small sorted set per user) and in the global stream. The per-user index key dominates when users have one or two sessions.\n");
        }
        if missed("Authenticated p99") {
            out.push_str("\n**Login storm.** argon2 is limited to all cores but one; on this machine that is one core for a storm, and the authenticated requests share the other with wrk and Redis.\n");
        }
        if out.is_empty() {
            out
        } else {
            format!("\n## What limits the missed targets\n{out}")
        }
    }

    pub fn write(&self, dir: &Path) -> Result<(), BenchError> {
        std::fs::create_dir_all(dir)?;
        std::fs::write(dir.join("report.md"), self.markdown())?;
        let json =
            serde_json::to_string_pretty(self).map_err(|e| BenchError::Setup(e.to_string()))?;
        std::fs::write(dir.join("report.json"), json)?;
        let chart = |title: &str, subtitle: &str, values: Vec<(String, f64, String)>| {
            BarChart::new(title, subtitle, values).render()
        };
        let modes = &self.modes;
        std::fs::write(
            dir.join("throughput.svg"),
            chart(
                "Throughput, GET /api/me",
                "requests per second (higher is better)",
                modes
                    .iter()
                    .map(|m| {
                        (
                            m.label.clone(),
                            m.requests_per_sec,
                            format!("{:.0}/s", m.requests_per_sec),
                        )
                    })
                    .collect(),
            )?,
        )?;
        std::fs::write(
            dir.join("latency.svg"),
            chart(
                "Latency p99",
                "milliseconds (lower is better)",
                modes
                    .iter()
                    .map(|m| {
                        (
                            m.label.clone(),
                            m.load.p99_us as f64 / 1000.0,
                            format!("{:.2} ms", m.load.p99_us as f64 / 1000.0),
                        )
                    })
                    .collect(),
            )?,
        )?;
        std::fs::write(
            dir.join("credential.svg"),
            chart(
                "Credential bytes per request",
                "Cookie header bytes sent with every request",
                modes
                    .iter()
                    .map(|m| {
                        (
                            m.label.clone(),
                            m.cookie_bytes as f64,
                            format!("{} B", m.cookie_bytes),
                        )
                    })
                    .collect(),
            )?,
        )?;
        std::fs::write(
            dir.join("revocation.svg"),
            chart(
                "How long a revoked credential keeps working",
                "worst of logout, admin revoke, demotion, disable: milliseconds until refused",
                modes
                    .iter()
                    .filter_map(|m| {
                        let w = Self::worst_window(m)?;
                        let value = if w.accepted_requests == 0 {
                            0.0
                        } else {
                            w.window_ms
                        };
                        Some((
                            m.label.clone(),
                            value,
                            format!("{} req / {:.0} ms", w.accepted_requests, value),
                        ))
                    })
                    .collect(),
            )?,
        )?;
        Ok(())
    }
}

pub struct Bar {
    pub label: String,
    pub value: String,
    pub width: u32,
    pub y: u32,
    pub color: &'static str,
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
}

impl BarChart {
    fn new(title: &str, subtitle: &str, values: Vec<(String, f64, String)>) -> BarChart {
        let label_width = 190;
        let plot = 420.0;
        let max = values.iter().map(|(_, v, _)| *v).fold(0.0_f64, f64::max);
        let bars = values
            .into_iter()
            .enumerate()
            .map(|(i, (label, value, text))| Bar {
                color: if label.starts_with("session") {
                    "#0a7d2c"
                } else if label.starts_with("JWT") {
                    "#0645ad"
                } else {
                    "#888888"
                },
                width: if max > 0.0 {
                    ((value / max) * plot).round().max(1.0) as u32
                } else {
                    1
                },
                y: 56 + 28 * i as u32,
                label,
                value: text,
            })
            .collect::<Vec<_>>();
        BarChart {
            title: title.into(),
            subtitle: subtitle.into(),
            width: label_width + plot as u32 + 140,
            height: 66 + 28 * bars.len() as u32,
            label_width,
            bars,
        }
    }
}

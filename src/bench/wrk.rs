//! Load from `wrk` (Debian's package): fixed connections, fixed duration, HdrHistogram
//! latencies. A Lua `request()` picks a credential at random from a file for every request,
//! and a `done` hook prints the figures we keep as one JSON line.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::BenchError;

/// Every thread reads the credential file once; every request picks a line at random (an
/// empty line sends no `Cookie` header). Each thread seeds its own generator.
const RANDOM_COOKIE: &str = r#"
local cookies = {}
init = function(args)
  for line in io.lines(COOKIE_FILE) do cookies[#cookies + 1] = line end
  if #cookies == 0 then cookies[1] = "" end
  math.randomseed(os.time() + tonumber(tostring({}):match("0x(%x+)") or "0", 16) % 100000)
end
request = function()
  local cookie = cookies[math.random(#cookies)]
  if cookie == "" then
    return wrk.format(METHOD, PATH)
  end
  -- wrk.format takes these headers instead of wrk.headers, so the load's own go in too.
  local headers = { ["Cookie"] = cookie }
  for name, value in pairs(EXTRA) do headers[name] = value end
  return wrk.format(METHOD, PATH, headers)
end
"#;

const REPORT_HOOK: &str = r#"
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '\n{"requests":%d,"duration_us":%d,"bytes":%d,"status_errors":%d,"socket_errors":%d,' ..
    '"p50_us":%d,"p99_us":%d,"p999_us":%d,"mean_us":%.1f,"max_us":%d}\n',
    summary.requests, summary.duration, summary.bytes, e.status,
    e.connect + e.read + e.write + e.timeout,
    latency:percentile(50), latency:percentile(99), latency:percentile(99.9),
    latency.mean, latency.max))
end
"#;

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct WrkResult {
    pub requests: u64,
    pub duration_us: u64,
    pub bytes: u64,
    /// Responses that were not 2xx/3xx.
    pub status_errors: u64,
    pub socket_errors: u64,
    pub p50_us: u64,
    pub p99_us: u64,
    pub p999_us: u64,
    pub mean_us: f64,
    pub max_us: u64,
}

impl WrkResult {
    pub fn requests_per_sec(&self) -> f64 {
        self.requests as f64 / (self.duration_us.max(1) as f64 / 1e6)
    }

    /// Two wrk processes run side by side (one per instance): their throughputs add up, and
    /// each latency percentile is the worse of the two (HdrHistograms cannot be merged from a
    /// summary; the worse one is the honest bound).
    pub fn combine(results: &[WrkResult]) -> WrkResult {
        let max = |f: fn(&WrkResult) -> u64| results.iter().map(f).max().unwrap_or(0);
        let duration_us = max(|r| r.duration_us);
        // Requests per second add up; express the sum over the longest duration.
        let rps: f64 = results.iter().map(WrkResult::requests_per_sec).sum();
        WrkResult {
            requests: (rps * duration_us as f64 / 1e6).round() as u64,
            duration_us,
            bytes: results.iter().map(|r| r.bytes).sum(),
            status_errors: results.iter().map(|r| r.status_errors).sum(),
            socket_errors: results.iter().map(|r| r.socket_errors).sum(),
            p50_us: max(|r| r.p50_us),
            p99_us: max(|r| r.p99_us),
            p999_us: max(|r| r.p999_us),
            mean_us: results.iter().map(|r| r.mean_us).fold(0.0, f64::max),
            max_us: max(|r| r.max_us),
        }
    }
}

/// One wrk process: `connections` over `threads` against `url`, each request with a random
/// line of `cookie_file` as its `Cookie` header.
#[derive(Clone)]
pub struct Load {
    pub url: String,
    pub threads: usize,
    pub connections: usize,
    pub duration: Duration,
    pub cookie_file: Option<PathBuf>,
    /// A POST body (form-encoded) with these extra headers; GET when `None`.
    pub form: Option<(String, Vec<(String, String)>)>,
    /// Headers every request carries (forward auth's `X-Forwarded-*`).
    pub headers: Vec<(String, String)>,
}

pub fn require() -> Result<(), BenchError> {
    Command::new("wrk")
        .arg("--version")
        .output()
        .map(|_| ())
        .map_err(|_| BenchError::Missing("wrk", "wrk"))
}

fn lua_string(text: &str) -> String {
    format!("{text:?}")
}

fn script(load: &Load, path_and_query: &str) -> String {
    let mut script = String::new();
    if let Some((body, headers)) = &load.form {
        script.push_str(&format!(
            "wrk.method = \"POST\"\nwrk.body = {}\nwrk.headers[\"Content-Type\"] = \"application/x-www-form-urlencoded\"\n",
            lua_string(body)
        ));
        for (name, value) in headers {
            script.push_str(&format!(
                "wrk.headers[{}] = {}\n",
                lua_string(name),
                lua_string(value)
            ));
        }
    }
    script.push_str("local EXTRA = {}\n");
    for (name, value) in &load.headers {
        script.push_str(&format!(
            "wrk.headers[{name}] = {value}\nEXTRA[{name}] = {value}\n",
            name = lua_string(name),
            value = lua_string(value)
        ));
    }
    if let Some(file) = &load.cookie_file {
        script.push_str(&format!(
            "local COOKIE_FILE = {}\nlocal PATH = {}\nlocal METHOD = {}\n",
            lua_string(&file.to_string_lossy()),
            lua_string(path_and_query),
            lua_string(if load.form.is_some() { "POST" } else { "GET" }),
        ));
        script.push_str(RANDOM_COOKIE);
    }
    script.push_str(REPORT_HOOK);
    script
}

fn command(load: &Load, script_path: &Path, duration: Duration) -> tokio::process::Command {
    let mut command = tokio::process::Command::new("wrk");
    command
        .arg(format!("-t{}", load.threads))
        .arg(format!("-c{}", load.connections.max(load.threads)))
        .arg(format!("-d{}s", duration.as_secs().max(1)))
        .arg("--timeout")
        .arg("5s")
        .arg("-s")
        .arg(script_path)
        .arg(&load.url)
        .kill_on_drop(true)
        .stdin(std::process::Stdio::null());
    command
}

fn script_file(load: &Load) -> Result<PathBuf, BenchError> {
    let path_and_query = load
        .url
        .split_once("://")
        .and_then(|(_, rest)| rest.find('/').map(|i| rest[i..].to_owned()))
        .unwrap_or_else(|| "/".into());
    let path = std::env::temp_dir().join(format!(
        "sessiond-wrk-{}-{}.lua",
        std::process::id(),
        crate::auth::random::random_token().map_err(|e| BenchError::Setup(e.to_string()))?
    ));
    std::fs::write(&path, script(load, &path_and_query))?;
    Ok(path)
}

/// Runs wrk to completion and returns its figures.
pub async fn run(load: &Load) -> Result<WrkResult, BenchError> {
    let path = script_file(load)?;
    let output = command(load, &path, load.duration)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .output()
        .await;
    let _ = std::fs::remove_file(&path);
    let output = output.map_err(|_| BenchError::Missing("wrk", "wrk"))?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let line = stdout
        .lines()
        .rev()
        .find(|l| l.starts_with('{'))
        .ok_or_else(|| {
            BenchError::Setup(format!(
                "wrk printed no report: {stdout} {}",
                String::from_utf8_lossy(&output.stderr)
            ))
        })?;
    serde_json::from_str(line).map_err(|e| BenchError::Setup(format!("wrk report {line:?}: {e}")))
}

/// Runs several loads at once (one per instance) and combines them.
pub async fn run_all(loads: &[Load]) -> Result<WrkResult, BenchError> {
    let results = futures_util::future::join_all(loads.iter().map(run)).await;
    let results = results.into_iter().collect::<Result<Vec<_>, _>>()?;
    Ok(WrkResult::combine(&results))
}

/// Load that runs until dropped: the background traffic of the revocation trials.
pub struct Background {
    children: Vec<tokio::process::Child>,
    scripts: Vec<PathBuf>,
}

impl Background {
    pub fn start(loads: &[Load]) -> Result<Background, BenchError> {
        let mut background = Background {
            children: Vec::new(),
            scripts: Vec::new(),
        };
        for load in loads {
            let path = script_file(load)?;
            background.scripts.push(path.clone());
            let child = command(load, &path, Duration::from_secs(3600))
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .spawn()
                .map_err(|_| BenchError::Missing("wrk", "wrk"))?;
            background.children.push(child);
        }
        Ok(background)
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.start_kill();
        }
        for path in &self.scripts {
            let _ = std::fs::remove_file(path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_instances_add_their_throughput_and_keep_the_worse_latency() {
        let a = WrkResult {
            requests: 1000,
            duration_us: 1_000_000,
            p99_us: 500,
            ..WrkResult::default()
        };
        let b = WrkResult {
            requests: 3000,
            duration_us: 1_000_000,
            p99_us: 900,
            ..WrkResult::default()
        };
        let both = WrkResult::combine(&[a, b]);
        assert_eq!(both.requests_per_sec(), 4000.0);
        assert_eq!(both.p99_us, 900);
    }

    #[test]
    fn the_script_picks_a_random_cookie_for_the_path() {
        let load = Load {
            url: "http://127.0.0.1:1/api/me?x=1".into(),
            threads: 1,
            connections: 1,
            duration: Duration::from_secs(1),
            cookie_file: Some("/tmp/c\"ookies".into()),
            form: None,
            headers: vec![("X-Forwarded-Host".into(), "app.bench.test".into())],
        };
        let s = script(&load, "/api/me?x=1");
        assert!(s.contains(r#"local COOKIE_FILE = "/tmp/c\"ookies""#), "{s}");
        assert!(s.contains(r#"local PATH = "/api/me?x=1""#));
        assert!(s.contains("math.random(#cookies)"));
        assert!(
            s.contains(r#"wrk.headers["X-Forwarded-Host"] = "app.bench.test""#),
            "{s}"
        );
        assert!(
            s.contains(r#"EXTRA["X-Forwarded-Host"] = "app.bench.test""#),
            "{s}"
        );
    }
}

//! Load from `wrk` (Debian's package): fixed connections, fixed duration, HdrHistogram
//! latencies. A Lua `done` hook prints the figures we keep as one JSON line.

use std::process::Command;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::BenchError;

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

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
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
}

pub struct Load<'a> {
    pub url: &'a str,
    pub threads: usize,
    pub connections: usize,
    pub duration: Duration,
    pub headers: Vec<(String, String)>,
    /// A POST body (form-encoded); GET when `None`.
    pub form_body: Option<String>,
}

pub fn require() -> Result<(), BenchError> {
    Command::new("wrk")
        .arg("--version")
        .output()
        .map(|_| ())
        .map_err(|_| BenchError::Missing("wrk", "wrk"))
}

/// Runs wrk to completion and returns its figures.
pub async fn run(load: Load<'_>) -> Result<WrkResult, BenchError> {
    let mut script = String::new();
    if let Some(body) = &load.form_body {
        script.push_str(&format!(
            "wrk.method = \"POST\"\nwrk.body = {body:?}\nwrk.headers[\"Content-Type\"] = \"application/x-www-form-urlencoded\"\n"
        ));
    }
    script.push_str(REPORT_HOOK);
    let path = std::env::temp_dir().join(format!(
        "sessiond-wrk-{}-{}.lua",
        std::process::id(),
        crate::auth::random::random_token().map_err(|e| BenchError::Setup(e.to_string()))?
    ));
    std::fs::write(&path, script)?;
    let mut command = tokio::process::Command::new("wrk");
    command
        .arg(format!("-t{}", load.threads))
        .arg(format!("-c{}", load.connections))
        .arg(format!("-d{}s", load.duration.as_secs().max(1)))
        .arg("--timeout")
        .arg("5s")
        .arg("-s")
        .arg(&path);
    for (name, value) in &load.headers {
        command.arg("-H").arg(format!("{name}: {value}"));
    }
    command.arg(load.url);
    let output = command.output().await;
    let _ = std::fs::remove_file(&path);
    let output = output.map_err(|_| BenchError::Missing("wrk", "wrk"))?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let line = stdout
        .lines()
        .rev()
        .find(|l| l.starts_with('{'))
        .ok_or_else(|| BenchError::Setup(format!("wrk printed no report: {stdout}")))?;
    serde_json::from_str(line).map_err(|e| BenchError::Setup(format!("wrk report {line:?}: {e}")))
}

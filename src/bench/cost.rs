//! Counted costs (not speed): Redis commands, round trips and server CPU per request, bytes on
//! the wire of a browser's page view, Redis memory.

use std::collections::HashMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::BenchError;
use super::fleet::RunningApp;

/// The Redis servers a mode's store is made of, each asked directly: one, or every master of
/// a cluster. Counts and memory are their sums.
pub struct Redis {
    nodes: Vec<redis::aio::MultiplexedConnection>,
}

impl Redis {
    /// `urls`: one `redis://` URL per server.
    pub async fn connect(urls: &[String]) -> Result<Redis, BenchError> {
        let mut nodes = Vec::with_capacity(urls.len());
        for url in urls {
            nodes.push(
                redis::Client::open(url.as_str())?
                    .get_multiplexed_async_connection()
                    .await?,
            );
        }
        if nodes.is_empty() {
            return Err(BenchError::Setup("no Redis server to measure".into()));
        }
        Ok(Redis { nodes })
    }

    /// The first server, for what any one of them can tell (its version).
    pub fn first(&mut self) -> &mut redis::aio::MultiplexedConnection {
        &mut self.nodes[0]
    }

    async fn info(&mut self, section: &str) -> Result<Vec<String>, BenchError> {
        let mut sections = Vec::with_capacity(self.nodes.len());
        for node in &mut self.nodes {
            sections.push(redis::cmd("INFO").arg(section).query_async(node).await?);
        }
        Ok(sections)
    }
}

/// One field of `INFO commandstats` per command (`calls=` or `usec=`), summed over the servers.
pub async fn command_stat(
    redis: &mut Redis,
    field: &str,
) -> Result<HashMap<String, u64>, BenchError> {
    let mut total = HashMap::new();
    for info in redis.info("commandstats").await? {
        for line in info.lines() {
            let Some((name, rest)) = line
                .strip_prefix("cmdstat_")
                .and_then(|l| l.split_once(':'))
            else {
                continue;
            };
            let Some(value) = rest
                .split(',')
                .find_map(|kv| kv.strip_prefix(field))
                .and_then(|v| v.parse::<u64>().ok())
            else {
                continue;
            };
            *total.entry(name.to_owned()).or_insert(0) += value;
        }
    }
    Ok(total)
}

/// `used_memory`, summed over the servers.
pub async fn used_memory(redis: &mut Redis) -> Result<i64, BenchError> {
    let mut total = 0;
    for info in redis.info("memory").await? {
        total += info
            .lines()
            .find_map(|l| l.strip_prefix("used_memory:"))
            .and_then(|v| v.trim().parse::<i64>().ok())
            .ok_or_else(|| BenchError::Setup("INFO memory has no used_memory".into()))?;
    }
    Ok(total)
}

/// Round trips `app` has made to Redis so far (its own counter, from `/metrics`, whose scrape
/// costs none).
pub async fn round_trips(app: &RunningApp) -> Result<u64, BenchError> {
    metric(app, "sessiond_store_round_trip_seconds_count").await
}

/// One unlabelled counter or gauge of `app`'s `/metrics` (0 when absent).
pub async fn metric(app: &RunningApp, name: &str) -> Result<u64, BenchError> {
    let text = reqwest::get(format!("{}/metrics", app.base))
        .await
        .map_err(|e| BenchError::Setup(e.to_string()))?
        .text()
        .await
        .map_err(|e| BenchError::Setup(e.to_string()))?;
    Ok(text
        .lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .map_or(0, |v| v as u64))
}

/// What the near-cache did over the whole run so far, both instances together.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct NearCacheCounts {
    pub hits: u64,
    pub misses: u64,
    pub fallbacks: u64,
    pub invalidations: u64,
}

pub async fn near_cache_counts(apps: [&RunningApp; 2]) -> Result<NearCacheCounts, BenchError> {
    let mut counts = NearCacheCounts::default();
    for app in apps {
        counts.hits += metric(app, "sessiond_near_cache_hits_total").await?;
        counts.misses += metric(app, "sessiond_near_cache_misses_total").await?;
        counts.fallbacks += metric(app, "sessiond_near_cache_fallbacks_total").await?;
        counts.invalidations += metric(app, "sessiond_near_cache_invalidations_total").await?;
    }
    Ok(counts)
}

/// Waits until requests a load left in flight have made their Redis calls, so they do not
/// land in a count that follows.
pub async fn settle(app: &RunningApp) -> Result<(), BenchError> {
    let mut settled = round_trips(app).await?;
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let now = round_trips(app).await?;
        if now == settled {
            break;
        }
        settled = now;
    }
    Ok(())
}

/// Commands that only run inside our scripts: a script's time already includes them.
const INSIDE_SCRIPTS: [&str; 8] = [
    "hgetall", "hmget", "hset", "expireat", "zadd", "pfadd", "expire", "exists",
];

/// Redis work between two snapshots.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct RedisWork {
    pub commands: u64,
    pub round_trips: u64,
    pub server_usec: u64,
    /// Commands that walk the keyspace or a whole collection (a page must not scan).
    pub scans: u64,
}

pub struct Snapshot {
    calls: HashMap<String, u64>,
    usec: HashMap<String, u64>,
    trips: u64,
}

impl Snapshot {
    pub async fn take(redis: &mut Redis, app: &RunningApp) -> Result<Snapshot, BenchError> {
        Ok(Snapshot {
            trips: round_trips(app).await?,
            usec: command_stat(redis, "usec=").await?,
            calls: command_stat(redis, "calls=").await?,
        })
    }

    pub fn since(&self, before: &Snapshot) -> RedisWork {
        let delta = |after: &HashMap<String, u64>, before: &HashMap<String, u64>, name: &str| {
            after
                .get(name)
                .unwrap_or(&0)
                .saturating_sub(*before.get(name).unwrap_or(&0))
        };
        // INFO is our own snapshot; everything else is the app's.
        let counted = |name: &&String| name.as_str() != "info";
        let commands = self
            .calls
            .keys()
            .filter(counted)
            .map(|n| delta(&self.calls, &before.calls, n))
            .sum();
        let scripted = self.usec.contains_key("evalsha");
        let server_usec = self
            .usec
            .keys()
            .filter(counted)
            .filter(|n| !(scripted && INSIDE_SCRIPTS.contains(&n.as_str())))
            .map(|n| delta(&self.usec, &before.usec, n))
            .sum();
        let scans = [
            "scan", "keys", "hscan", "sscan", "zscan", "smembers", "hkeys",
        ]
        .iter()
        .map(|n| delta(&self.calls, &before.calls, n))
        .sum();
        RedisWork {
            commands,
            round_trips: self.trips.saturating_sub(before.trips),
            server_usec,
            scans,
        }
    }
}

/// Redis cost per authenticated `GET /api/me`, counted exactly over sequential requests.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RequestCost {
    pub commands: f64,
    pub round_trips: f64,
    /// Redis's own CPU time per request, microseconds (`INFO commandstats` usec).
    pub server_usec: f64,
}

pub async fn per_request(
    app: &RunningApp,
    redis: &mut Redis,
    cookie: &str,
) -> Result<RequestCost, BenchError> {
    const REQUESTS: u64 = 200;
    settle(app).await?;
    let http = reqwest::Client::new();
    let before = Snapshot::take(redis, app).await?;
    for _ in 0..REQUESTS {
        let status = http
            .get(format!("{}/api/me", app.base))
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
    let work = Snapshot::take(redis, app).await?.since(&before);
    Ok(RequestCost {
        commands: work.commands as f64 / REQUESTS as f64,
        round_trips: work.round_trips as f64 / REQUESTS as f64,
        server_usec: work.server_usec as f64 / REQUESTS as f64,
    })
}

/// A browser's page view: the HTML page and its stylesheet, each with the headers Chromium
/// sends and the credential cookies.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PageView {
    pub redis_commands: f64,
    pub redis_round_trips: f64,
    pub request_bytes: u64,
    pub response_bytes: u64,
    /// The HTML page's status (200 when the credential is accepted).
    pub status: u16,
}

const USER_AGENT: &str = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36";

fn browser_request(host: &str, path: &str, accept: &str, cookie: &str) -> String {
    let mut request = format!(
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\nUser-Agent: {USER_AGENT}\r\nAccept: {accept}\r\nAccept-Encoding: gzip, deflate, br, zstd\r\nAccept-Language: en-US,en;q=0.9\r\n"
    );
    if path != "/" {
        request.push_str(&format!("Referer: http://{host}/\r\n"));
    }
    if !cookie.is_empty() {
        request.push_str(&format!("Cookie: {cookie}\r\n"));
    }
    request.push_str("\r\n");
    request
}

/// Sends `request` raw and reads the whole response: (status, bytes received).
async fn exchange(host: &str, request: &str) -> Result<(u16, u64), BenchError> {
    let mut socket = tokio::net::TcpStream::connect(host).await?;
    socket.write_all(request.as_bytes()).await?;
    let mut response = Vec::new();
    socket.read_to_end(&mut response).await?;
    let status = std::str::from_utf8(&response[..response.len().min(12)])
        .ok()
        .and_then(|line| line.get(9..12))
        .and_then(|code| code.parse().ok())
        .unwrap_or(0);
    Ok((status, response.len() as u64))
}

pub async fn page_view(
    app: &RunningApp,
    redis: Option<&mut Redis>,
    cookie: &str,
) -> Result<PageView, BenchError> {
    const VIEWS: u64 = 20;
    let page = browser_request(
        app.host(),
        "/",
        "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,*/*;q=0.8",
        cookie,
    );
    let style = browser_request(
        app.host(),
        "/static/style.css",
        "text/css,*/*;q=0.1",
        cookie,
    );
    let mut redis = redis;
    let before = match redis.as_deref_mut() {
        Some(redis) => {
            settle(app).await?;
            Some(Snapshot::take(redis, app).await?)
        }
        None => None,
    };
    let (mut received, mut status) = (0, 0);
    for _ in 0..VIEWS {
        let (page_status, page_bytes) = exchange(app.host(), &page).await?;
        let (_, style_bytes) = exchange(app.host(), &style).await?;
        received += page_bytes + style_bytes;
        status = page_status;
    }
    let work = match (redis, before) {
        (Some(redis), Some(before)) => Snapshot::take(redis, app).await?.since(&before),
        _ => RedisWork::default(),
    };
    Ok(PageView {
        redis_commands: work.commands as f64 / VIEWS as f64,
        redis_round_trips: work.round_trips as f64 / VIEWS as f64,
        request_bytes: (page.len() + style.len()) as u64,
        response_bytes: received / VIEWS,
        status,
    })
}

//! What `store.url` names: one Redis, a Redis Cluster, or a master found through Sentinel; and
//! the one connection type every exchange runs on, whichever it is.
//!
//! | URL | topology |
//! |---|---|
//! | `redis://[user:pass@]host:port[/db]`, `rediss://...` | one Redis (or a primary whose replicas only copy it) |
//! | `redis+cluster://[user:pass@]h1:p1,h2:p2[,...]`, `rediss+cluster://...` | Redis Cluster: any reachable nodes; the slot map is discovered |
//! | `redis+sentinel://[user:pass@]s1:p1,s2:p2[,...]/MASTER_NAME[/db]`, `rediss+sentinel://...` | the master Sentinel names; credentials and TLS are the master's (and TLS the sentinels' too) |

use redis::aio::MultiplexedConnection;
use redis::cluster_async::ClusterConnection;
use redis::{Cmd, Pipeline, RedisFuture, Value};

/// A parsed `store.url`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Topology {
    Standalone(String),
    /// One `redis://` (or `rediss://`) URL per seed node.
    Cluster(Vec<String>),
    Sentinel(SentinelTarget),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SentinelTarget {
    /// `redis://host:port` (or `rediss://`) of each sentinel.
    pub sentinels: Vec<String>,
    pub master_name: String,
    /// `redis://` or `rediss://`.
    pub scheme: &'static str,
    /// `user:pass@`, or empty.
    pub userinfo: String,
    pub db: i64,
}

impl SentinelTarget {
    /// The URL of the master at `host:port`.
    pub fn master_url(&self, host: &str, port: u16) -> String {
        format!("{}{}{host}:{port}/{}", self.scheme, self.userinfo, self.db)
    }
}

impl Topology {
    /// `None` when the URL is not one of the forms above.
    pub fn parse(url: &str) -> Option<Topology> {
        if url.starts_with("redis://") || url.starts_with("rediss://") {
            redis::parse_redis_url(url)?;
            return Some(Topology::Standalone(url.to_owned()));
        }
        let (scheme, rest, sentinel) = if let Some(rest) = url.strip_prefix("redis+cluster://") {
            ("redis://", rest, false)
        } else if let Some(rest) = url.strip_prefix("rediss+cluster://") {
            ("rediss://", rest, false)
        } else if let Some(rest) = url.strip_prefix("redis+sentinel://") {
            ("redis://", rest, true)
        } else if let Some(rest) = url.strip_prefix("rediss+sentinel://") {
            ("rediss://", rest, true)
        } else {
            return None;
        };
        // Query options (TLS settings) apply to every node alike.
        let (rest, query) = match rest.split_once('?') {
            Some((rest, query)) => (rest, format!("?{query}")),
            None => (rest, String::new()),
        };
        let (userinfo, rest) = match rest.rsplit_once('@') {
            Some((userinfo, rest)) => (format!("{userinfo}@"), rest),
            None => (String::new(), rest),
        };
        let (hosts, path) = rest.split_once('/').unwrap_or((rest, ""));
        let hosts: Vec<&str> = hosts.split(',').filter(|h| !h.is_empty()).collect();
        if hosts.is_empty() || hosts.iter().any(|h| !is_host_port(h)) {
            return None;
        }
        if sentinel {
            let mut parts = path.split('/');
            let master_name = parts.next().filter(|n| !n.is_empty())?.to_owned();
            let db = match parts.next() {
                Some(db) if !db.is_empty() => db.parse().ok()?,
                _ => 0,
            };
            return Some(Topology::Sentinel(SentinelTarget {
                sentinels: hosts
                    .iter()
                    .map(|h| format!("{scheme}{h}{query}"))
                    .collect(),
                master_name,
                scheme: if scheme == "rediss://" {
                    "rediss://"
                } else {
                    "redis://"
                },
                userinfo,
                db,
            }));
        }
        if !path.is_empty() {
            // A cluster has one database.
            return None;
        }
        let nodes: Vec<String> = hosts
            .iter()
            .map(|h| format!("{scheme}{userinfo}{h}{query}"))
            .collect();
        nodes
            .iter()
            .all(|n| redis::parse_redis_url(n).is_some())
            .then_some(Topology::Cluster(nodes))
    }
}

fn is_host_port(h: &str) -> bool {
    match h.rsplit_once(':') {
        Some((host, port)) => !host.is_empty() && port.parse::<u16>().is_ok(),
        None => false,
    }
}

/// A connection of either kind. Both are multiplexed and cheap to clone: one is kept per worker
/// thread and every request's commands share it (no pool checkout per request).
#[derive(Clone)]
pub enum Conn {
    Single(MultiplexedConnection),
    Cluster(ClusterConnection),
}

impl redis::aio::ConnectionLike for Conn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Conn::Single(c) => c.req_packed_command(cmd),
            Conn::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Conn::Single(c) => c.req_packed_commands(pipeline, offset, count),
            Conn::Cluster(c) => c.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Conn::Single(c) => c.get_db(),
            Conn::Cluster(c) => c.get_db(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_documented_url_form_parses() {
        assert_eq!(
            Topology::parse("redis://127.0.0.1:6380/2"),
            Some(Topology::Standalone("redis://127.0.0.1:6380/2".into()))
        );
        assert_eq!(
            Topology::parse("rediss+cluster://u:p@a:1,b:2"),
            Some(Topology::Cluster(vec![
                "rediss://u:p@a:1".into(),
                "rediss://u:p@b:2".into()
            ]))
        );
        let Some(Topology::Sentinel(target)) =
            Topology::parse("redis+sentinel://:secret@s1:26379,s2:26380/mymaster/3")
        else {
            panic!("sentinel URL refused");
        };
        assert_eq!(target.sentinels, ["redis://s1:26379", "redis://s2:26380"]);
        assert_eq!(target.master_name, "mymaster");
        assert_eq!(
            target.master_url("10.0.0.5", 6379),
            "redis://:secret@10.0.0.5:6379/3"
        );
    }

    #[test]
    fn malformed_urls_are_refused() {
        for bad in [
            "redis+cluster://",
            "redis+cluster://a",
            "redis+cluster://a:1/0",
            "redis+cluster://a:x",
            "redis+sentinel://s:1",
            "redis+sentinel://s:1/",
            "redis+sentinel://s:1/m/x",
            "postgres://a:1",
            "http://a:1",
        ] {
            assert_eq!(Topology::parse(bad), None, "{bad}");
        }
    }
}

//! The benchmark's own redis-server, and its own three-master Redis Cluster, on free ports,
//! gone when the benchmark ends.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::BenchError;

pub struct RedisProcess {
    pub url: String,
    port: u16,
    child: Child,
    dir: std::path::PathBuf,
}

impl RedisProcess {
    pub fn start() -> Result<RedisProcess, BenchError> {
        RedisProcess::start_with(&[])
    }

    /// A redis-server with more arguments (cluster mode).
    fn start_with(args: &[&str]) -> Result<RedisProcess, BenchError> {
        let port = loop {
            let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
            if port != 6379 {
                break port;
            }
        };
        let dir = std::env::temp_dir().join(format!("sessiond-bench-redis-{port}"));
        std::fs::create_dir_all(&dir)?;
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(&dir)
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|_| BenchError::Missing("redis-server", "redis-server"))?;
        let url = format!("redis://127.0.0.1:{port}/0");
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if Instant::now() > deadline {
                return Err(BenchError::Setup("redis-server did not start".into()));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(RedisProcess {
            url,
            port,
            child,
            dir,
        })
    }
}

/// Three masters sharing the 16,384 slots evenly, no replicas: the store of the
/// `session (Redis Cluster)` mode unless `--store-url` names one.
pub struct ClusterProcess {
    pub nodes: Vec<RedisProcess>,
}

impl ClusterProcess {
    pub async fn start() -> Result<ClusterProcess, BenchError> {
        const MASTERS: usize = 3;
        let nodes = (0..MASTERS)
            .map(|_| {
                RedisProcess::start_with(&[
                    "--cluster-enabled",
                    "yes",
                    "--cluster-config-file",
                    "nodes.conf",
                ])
            })
            .collect::<Result<Vec<_>, _>>()?;
        let mut conns = Vec::new();
        for node in &nodes {
            conns.push(
                redis::Client::open(node.url.as_str())?
                    .get_multiplexed_async_connection()
                    .await?,
            );
        }
        // Slots by hand, as `redis-cli --cluster create` does, then every node meets the first.
        for (i, conn) in conns.iter_mut().enumerate() {
            redis::cmd("CLUSTER")
                .arg("ADDSLOTSRANGE")
                .arg(i * 16384 / MASTERS)
                .arg((i + 1) * 16384 / MASTERS - 1)
                .query_async::<()>(conn)
                .await?;
        }
        let first = nodes[0].port;
        for conn in &mut conns[1..] {
            redis::cmd("CLUSTER")
                .arg("MEET")
                .arg("127.0.0.1")
                .arg(first)
                .query_async::<()>(conn)
                .await?;
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let mut ready = true;
            for conn in &mut conns {
                let info: String = redis::cmd("CLUSTER").arg("INFO").query_async(conn).await?;
                ready &= info.contains("cluster_state:ok")
                    && info.contains(&format!("cluster_known_nodes:{MASTERS}"));
            }
            if ready {
                return Ok(ClusterProcess { nodes });
            }
            if Instant::now() > deadline {
                return Err(BenchError::Setup("the Redis Cluster did not form".into()));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// `redis+cluster://…`, as `store.url` takes it.
    pub fn url(&self) -> String {
        let nodes: Vec<String> = self
            .nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.port))
            .collect();
        format!("redis+cluster://{}", nodes.join(","))
    }
}

impl Drop for RedisProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

//! Distributed Redis for the tests, started on free ports like `RedisServer`: a Redis Cluster
//! (three masters, optionally a replica each) and a Sentinel group (a master, a replica and
//! three sentinels). Both are torn down with the test.

use std::collections::HashMap;
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::redis_server::{Certificates, RedisServer, free_port, process_id, require_binary};

const CLUSTER_ARGS: &[&str] = &[
    "--cluster-enabled",
    "yes",
    "--cluster-config-file",
    "nodes.conf",
    // Failover after one second without a master, as in the scenario.
    "--cluster-node-timeout",
    "1000",
    // A replica's first sync starts at once (the default waits 5 s for more replicas), and
    // a replica that never synced is not allowed to take over.
    "--repl-diskless-sync-delay",
    "0",
];

/// A master without a connected replica refuses writes (`NOREPLICAS`), as the README asks of a
/// replicated deployment: a demoted master, cut off from the replica that took its place,
/// accepts none. (`store.min_replicas_acked` alone only stops sessiond acknowledging them.)
const FENCED: &[&str] = &["--min-replicas-to-write", "1"];

/// TLS on every port: clients, the cluster bus, replication; clients must present a
/// certificate (Redis's default).
const TLS_CLUSTER_ARGS: &[&str] = &[
    "--tls-cluster",
    "yes",
    "--tls-replication",
    "yes",
    "--tls-auth-clients",
    "yes",
];

pub struct RedisCluster {
    /// Masters first, then (when asked for) one replica per master in the same order.
    pub nodes: Vec<RedisServer>,
    pub masters: usize,
    /// Set for a TLS cluster: the certificates its nodes and clients use.
    pub certs: Option<Certificates>,
}

impl RedisCluster {
    /// Three masters sharing the 16,384 slots evenly, and `replicas` replicas of each.
    pub fn start(replicas: usize) -> RedisCluster {
        RedisCluster::start_with(replicas, None)
    }

    /// Three masters speaking only TLS (`rediss+cluster://`), asking clients for a certificate.
    pub fn start_tls() -> RedisCluster {
        RedisCluster::start_with(0, Some(Certificates::new()))
    }

    fn start_with(replicas: usize, certs: Option<Certificates>) -> RedisCluster {
        const MASTERS: usize = 3;
        let mut args = CLUSTER_ARGS.to_vec();
        if replicas > 0 {
            args.extend(FENCED);
        }
        let nodes: Vec<RedisServer> = (0..MASTERS * (1 + replicas))
            .map(|_| match &certs {
                Some(certs) => {
                    RedisServer::start_tls_with_args(&[&args, TLS_CLUSTER_ARGS].concat(), certs)
                }
                None => RedisServer::start_with_args(&args),
            })
            .collect();
        let cluster = RedisCluster {
            nodes,
            masters: MASTERS,
            certs,
        };
        // Slots by hand (what `redis-cli --cluster create` does, without its one-second
        // sleeps): ranges, then every node meets the first, then replicas follow their master.
        for (i, node) in cluster.nodes[..MASTERS].iter().enumerate() {
            let first = i * 16384 / MASTERS;
            let last = (i + 1) * 16384 / MASTERS - 1;
            let _: () = redis::cmd("CLUSTER")
                .arg("ADDSLOTSRANGE")
                .arg(first)
                .arg(last)
                .query(&mut node.connection().unwrap())
                .expect("CLUSTER ADDSLOTSRANGE");
        }
        let first_port = cluster.nodes[0].port();
        for node in &cluster.nodes[1..] {
            let _: () = redis::cmd("CLUSTER")
                .arg("MEET")
                .arg("127.0.0.1")
                .arg(first_port)
                .query(&mut node.connection().unwrap())
                .expect("CLUSTER MEET");
        }
        let ids = cluster.ids();
        for (i, replica) in cluster.nodes[MASTERS..].iter().enumerate() {
            let master = &ids[i % MASTERS];
            wait_for(
                Duration::from_secs(10),
                "a replica to learn its master",
                || {
                    redis::cmd("CLUSTER")
                        .arg("REPLICATE")
                        .arg(master)
                        .query::<()>(&mut replica.connection().unwrap())
                        .is_ok()
                },
            );
        }
        cluster.wait_until_ok();
        for replica in &cluster.nodes[MASTERS..] {
            wait_for(Duration::from_secs(20), "a replica's first sync", || {
                redis::cmd("INFO")
                    .arg("replication")
                    .query::<String>(&mut replica.connection().unwrap())
                    .is_ok_and(|info| info.contains("master_link_status:up"))
            });
        }
        cluster
    }

    /// Waits until every live node says `cluster_state:ok` and knows every other.
    pub fn wait_until_ok(&self) {
        wait_for(Duration::from_secs(20), "cluster_state:ok", || {
            self.nodes.iter().all(|node| {
                let Ok(mut conn) = node.connection() else {
                    return true; // killed on purpose
                };
                let info: String = redis::cmd("CLUSTER")
                    .arg("INFO")
                    .query(&mut conn)
                    .unwrap_or_default();
                info.contains("cluster_state:ok")
                    && info.contains(&format!("cluster_known_nodes:{}", self.nodes.len()))
            })
        });
    }

    /// `redis+cluster://h:p,h:p,...`: every node, as `store.url` takes it.
    pub fn url(&self) -> String {
        let nodes: Vec<String> = self
            .nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.port()))
            .collect();
        let scheme = if self.certs.is_some() {
            "rediss"
        } else {
            "redis"
        };
        format!("{scheme}+cluster://{}", nodes.join(","))
    }

    /// A cluster-aware client connection, for tests that look at keys directly.
    pub fn connection(&self) -> redis::cluster::ClusterConnection {
        let nodes: Vec<String> = self
            .nodes
            .iter()
            .map(|n| format!("redis://127.0.0.1:{}", n.port()))
            .collect();
        redis::cluster::ClusterClient::new(nodes)
            .unwrap()
            .get_connection()
            .expect("a cluster connection")
    }

    /// The node ID of each node, in `nodes` order.
    pub fn ids(&self) -> Vec<String> {
        self.nodes
            .iter()
            .map(|node| {
                redis::cmd("CLUSTER")
                    .arg("MYID")
                    .query(&mut node.connection().unwrap())
                    .unwrap()
            })
            .collect()
    }

    /// Which master (an index into `nodes`) serves `slot` now, as `CLUSTER SLOTS` says.
    pub fn owner(&self, slot: u16) -> usize {
        let ranges: Vec<(u16, u16, (String, u16))> = redis::cmd("CLUSTER")
            .arg("SLOTS")
            .query::<Vec<Vec<redis::Value>>>(&mut self.nodes[0].connection().unwrap())
            .unwrap()
            .into_iter()
            .map(|range| {
                let number = |v: &redis::Value| redis::from_redis_value::<u16>(v.clone()).unwrap();
                let master: Vec<redis::Value> = redis::from_redis_value(range[2].clone()).unwrap();
                let host: String = redis::from_redis_value(master[0].clone()).unwrap();
                (
                    number(&range[0]),
                    number(&range[1]),
                    (host, number(&master[1])),
                )
            })
            .collect();
        let (_, _, (_, port)) = ranges
            .iter()
            .find(|(first, last, _)| (*first..=*last).contains(&slot))
            .expect("every slot is served");
        self.nodes.iter().position(|n| n.port() == *port).unwrap()
    }

    /// The slots that hold at least one key.
    pub fn used_slots(&self) -> std::collections::BTreeSet<u16> {
        let mut slots = std::collections::BTreeSet::new();
        for node in &self.nodes[..self.masters] {
            let mut conn = node.connection().unwrap();
            let keys: Vec<String> = redis::cmd("KEYS").arg("*").query(&mut conn).unwrap();
            for key in keys {
                slots.insert(
                    redis::cmd("CLUSTER")
                        .arg("KEYSLOT")
                        .arg(&key)
                        .query(&mut conn)
                        .unwrap(),
                );
            }
        }
        slots
    }

    /// Moves `slot` to master `to` while clients use it, key by key as `redis-cli --cluster
    /// reshard` does (one key per `MIGRATE`, so a script whose keys are split between the two
    /// masters meets `TRYAGAIN`): clients are sent `ASK` while it runs and `MOVED` after.
    /// Returns how many keys moved.
    pub fn migrate_slot(&self, slot: u16, to: usize, ids: &[String]) -> usize {
        let from = self.owner(slot);
        if from == to {
            return 0;
        }
        let setslot = |node: usize, state: &str, id: &str| {
            let mut command = redis::cmd("CLUSTER");
            command.arg("SETSLOT").arg(slot).arg(state).arg(id);
            let _: () = command
                .query(&mut self.nodes[node].connection().unwrap())
                .unwrap_or_else(|e| panic!("CLUSTER SETSLOT {slot} {state}: {e}"));
        };
        setslot(to, "IMPORTING", &ids[from]);
        setslot(from, "MIGRATING", &ids[to]);
        let mut source = self.nodes[from].connection().unwrap();
        let mut moved = 0;
        loop {
            let keys: Vec<String> = redis::cmd("CLUSTER")
                .arg("GETKEYSINSLOT")
                .arg(slot)
                .arg(1)
                .query(&mut source)
                .unwrap();
            let Some(key) = keys.first() else { break };
            let _: redis::Value = redis::cmd("MIGRATE")
                .arg("127.0.0.1")
                .arg(self.nodes[to].port())
                .arg("")
                .arg(0)
                .arg(5000)
                .arg("KEYS")
                .arg(key)
                .query(&mut source)
                .unwrap_or_else(|e| panic!("MIGRATE {key}: {e}"));
            moved += 1;
        }
        // The new owner first, then the old one, then everyone else (as redis-cli does).
        setslot(to, "NODE", &ids[to]);
        setslot(from, "NODE", &ids[to]);
        for other in (0..self.masters).filter(|n| *n != to && *n != from) {
            setslot(other, "NODE", &ids[to]);
        }
        moved
    }

    /// `calls` per command, summed over every node.
    pub fn command_calls(&self) -> HashMap<String, u64> {
        let mut total = HashMap::new();
        for node in &self.nodes {
            for (command, calls) in node.command_calls() {
                *total.entry(command).or_insert(0) += calls;
            }
        }
        total
    }
}

/// A Sentinel group: one master, one replica, three sentinels watching them as `mymaster`,
/// `down-after-milliseconds 1000`.
pub struct SentinelGroup {
    /// The first master and its replica; which is master changes with failovers.
    pub servers: Vec<RedisServer>,
    sentinels: Vec<Sentinel>,
    /// Set for a TLS group (`rediss+sentinel://`): sentinels, servers and replication.
    pub certs: Option<Certificates>,
}

struct Sentinel {
    port: u16,
    dir: std::path::PathBuf,
    child: Mutex<Option<Child>>,
}

impl Sentinel {
    fn kill(&self) {
        if let Some(mut child) = self.child.lock().unwrap().take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Sentinel {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

pub const MASTER_NAME: &str = "mymaster";

impl SentinelGroup {
    pub fn start() -> SentinelGroup {
        SentinelGroup::start_with(None)
    }

    /// Every port TLS only; clients need not present a certificate.
    pub fn start_tls() -> SentinelGroup {
        SentinelGroup::start_with(Some(Certificates::new()))
    }

    fn start_with(certs: Option<Certificates>) -> SentinelGroup {
        require_binary("redis-server", "redis-server");
        // As deploy/redis.conf runs Redis: every write in the append-only file before it is
        // answered, so a killed master comes back with its data, as in production (without
        // it, a master restarted empty and promoted again by a second failover loses
        // everything, whatever sessiond does). Syncs start at once (the default waits 5 s).
        const DURABLE: &[&str] = &[
            "--appendonly",
            "yes",
            "--appendfsync",
            "always",
            "--repl-diskless-sync-delay",
            "0",
        ];
        let durable = [DURABLE, FENCED].concat();
        let start = |args: &[&str]| match &certs {
            Some(certs) => RedisServer::start_tls_with_args(
                &[args, &["--tls-replication", "yes"][..]].concat(),
                certs,
            ),
            None => RedisServer::start_with_args(args),
        };
        let master = start(&durable);
        let replicaof = master.port().to_string();
        let replica = start(
            &[
                &["--replicaof", "127.0.0.1", replicaof.as_str()],
                &durable[..],
            ]
            .concat(),
        );
        wait_for(Duration::from_secs(10), "the replica to sync", || {
            let info: String = redis::cmd("INFO")
                .arg("replication")
                .query(&mut replica.connection().unwrap())
                .unwrap_or_default();
            info.contains("master_link_status:up")
        });
        let sentinels = (0..3)
            .map(|_| start_sentinel(certs.as_ref(), master.port()))
            .collect();
        let group = SentinelGroup {
            servers: vec![master, replica],
            sentinels,
            certs,
        };
        // Ready when every sentinel knows the replica and the other two sentinels.
        wait_for(Duration::from_secs(20), "the sentinels to agree", || {
            (0..group.sentinels.len()).all(|s| {
                let Ok(mut conn) = group.connection(s) else {
                    return false;
                };
                let master: Vec<(String, String)> = redis::cmd("SENTINEL")
                    .arg("MASTER")
                    .arg(MASTER_NAME)
                    .query::<Vec<String>>(&mut conn)
                    .map(|flat| {
                        flat.chunks(2)
                            .map(|kv| (kv[0].clone(), kv.get(1).cloned().unwrap_or_default()))
                            .collect()
                    })
                    .unwrap_or_default();
                let field = |name: &str| {
                    master
                        .iter()
                        .find(|(k, _)| k == name)
                        .map(|(_, v)| v.clone())
                        .unwrap_or_default()
                };
                field("num-slaves") == "1" && field("num-other-sentinels") == "2"
            })
        });
        group
    }

    /// `redis+sentinel://s1,s2,s3/mymaster`.
    pub fn url(&self) -> String {
        let sentinels: Vec<String> = self
            .sentinels
            .iter()
            .map(|s| format!("127.0.0.1:{}", s.port))
            .collect();
        let scheme = if self.certs.is_some() {
            "rediss"
        } else {
            "redis"
        };
        format!("{scheme}+sentinel://{}/{MASTER_NAME}", sentinels.join(","))
    }

    /// The port the sentinels name as master now.
    pub fn master_port(&self) -> u16 {
        self.try_master_port()
            .expect("the first sentinel names a master")
    }

    /// The port the first sentinel names as master, if it answers.
    pub fn try_master_port(&self) -> Option<u16> {
        let mut conn = self.connection(0).ok()?;
        let (_, port): (String, u16) = redis::cmd("SENTINEL")
            .arg("GET-MASTER-ADDR-BY-NAME")
            .arg(MASTER_NAME)
            .query(&mut conn)
            .ok()?;
        Some(port)
    }

    /// The server listening on `port`.
    pub fn server(&self, port: u16) -> &RedisServer {
        self.servers.iter().find(|s| s.port() == port).unwrap()
    }

    /// The server not listening on `port`.
    pub fn other_server(&self, port: u16) -> &RedisServer {
        self.servers.iter().find(|s| s.port() != port).unwrap()
    }

    /// `SENTINEL FAILOVER`: a graceful switch; the old master lives on as a replica.
    pub fn failover(&self) {
        let mut conn = self.connection(0).unwrap();
        let _: () = redis::cmd("SENTINEL")
            .arg("FAILOVER")
            .arg(MASTER_NAME)
            .query(&mut conn)
            .expect("SENTINEL FAILOVER");
    }

    /// Waits until the sentinels name a master other than `old` and it says it is one.
    pub fn wait_for_new_master(&self, old: u16) -> u16 {
        let mut new = old;
        wait_for(Duration::from_secs(30), "a new master", || {
            new = self.master_port();
            new != old
                && self
                    .servers
                    .iter()
                    .find(|s| s.port() == new)
                    .and_then(|s| s.connection().ok())
                    .and_then(|mut c| {
                        redis::cmd("INFO")
                            .arg("replication")
                            .query::<String>(&mut c)
                            .ok()
                    })
                    .is_some_and(|info| info.contains("role:master"))
        });
        new
    }

    /// Every sentinel stops (`kill -9`): the app is cut off from them.
    pub fn kill_sentinels(&self) {
        for sentinel in &self.sentinels {
            sentinel.kill();
        }
    }

    /// A connection to sentinel number `sentinel`.
    fn connection(&self, sentinel: usize) -> redis::RedisResult<redis::Connection> {
        sentinel_connection(self.certs.as_ref(), self.sentinels[sentinel].port)
    }
}

/// A connection to the sentinel on `port`, over TLS with `certs`.
fn sentinel_connection(
    certs: Option<&Certificates>,
    port: u16,
) -> redis::RedisResult<redis::Connection> {
    match certs {
        Some(certs) => {
            redis::Client::build_with_tls(format!("rediss://127.0.0.1:{port}"), certs.client())?
                .get_connection()
        }
        None => redis::Client::open(format!("redis://127.0.0.1:{port}"))?.get_connection(),
    }
}

/// A sentinel watching the master on `master_port`, on a free port (another if the one picked
/// was taken in between and it exits at once).
fn start_sentinel(certs: Option<&Certificates>, master_port: u16) -> Sentinel {
    for _ in 0..5 {
        let port = free_port();
        let dir =
            std::env::temp_dir().join(format!("sessiond-sentinel-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let config = dir.join("sentinel.conf");
        let listen = match certs {
            Some(certs) => format!(
                "port 0\ntls-port {port}\ntls-replication yes\ntls-auth-clients no\n\
                 tls-cert-file {}\ntls-key-file {}\ntls-ca-cert-file {}\n",
                certs.path("server.crt").display(),
                certs.path("server.key").display(),
                certs.path("ca.crt").display()
            ),
            None => format!("port {port}\n"),
        };
        std::fs::write(
            &config,
            format!(
                "{listen}bind 127.0.0.1\ndir {}\n\
                 sentinel monitor {MASTER_NAME} 127.0.0.1 {master_port} 2\n\
                 sentinel down-after-milliseconds {MASTER_NAME} 1000\n\
                 sentinel failover-timeout {MASTER_NAME} 4000\n\
                 sentinel parallel-syncs {MASTER_NAME} 1\n",
                dir.display(),
            ),
        )
        .unwrap();
        let mut child = Command::new("redis-server")
            .arg(&config)
            .arg("--sentinel")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server --sentinel starts");
        // Answering as itself (or gone, or another server there: the port was taken).
        let pid = child.id();
        let answering = || process_id(&mut sentinel_connection(certs, port).ok()?);
        let deadline = Instant::now() + Duration::from_secs(10);
        let listening = loop {
            if child.try_wait().is_ok_and(|status| status.is_some()) {
                break false;
            }
            if let Some(answering) = answering() {
                break answering == pid;
            }
            assert!(Instant::now() < deadline, "a sentinel did not listen");
            std::thread::sleep(Duration::from_millis(20));
        };
        let sentinel = Sentinel {
            port,
            dir,
            child: Mutex::new(Some(child)),
        };
        if listening {
            return sentinel;
        }
    }
    panic!("redis-server --sentinel exited at once on five free ports in a row");
}

pub fn wait_for(limit: Duration, what: &str, mut ready: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !ready() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

//! A real `redis-server` per test, on a free port of its own (never 6379), in a scratch
//! directory, killed when the test ends.

use std::collections::HashMap;
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

pub struct RedisServer {
    port: u16,
    dir: PathBuf,
    child: Mutex<Option<Child>>,
    tls: bool,
    /// A configuration file to start from (port, bind and dir are still the test's own).
    config: Option<PathBuf>,
    /// More `redis-server` arguments (cluster mode, `--replicaof`).
    args: Vec<String>,
}

/// A port nothing listens on now (never 6379), whose cluster bus port (+10000) is free too.
pub fn free_port() -> u16 {
    loop {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("no free local port")
            .port();
        let bus_free = port
            .checked_add(10000)
            .is_some_and(|bus| TcpListener::bind(("127.0.0.1", bus)).is_ok());
        if port != 6379 && bus_free {
            return port;
        }
    }
}

/// `calls` per command in an `INFO commandstats` reply.
fn calls_per_command(info: &str) -> HashMap<String, u64> {
    info.lines()
        .filter_map(|line| {
            let (name, rest) = line.strip_prefix("cmdstat_")?.split_once(':')?;
            let calls = rest.split(',').find_map(|kv| kv.strip_prefix("calls="))?;
            Some((name.to_owned(), calls.parse().ok()?))
        })
        .collect()
}

/// The process that answers on `conn` (`INFO server`), to tell a server from another test's
/// that took its port.
pub fn process_id(conn: &mut redis::Connection) -> Option<u32> {
    let info: String = redis::cmd("INFO").arg("server").query(conn).ok()?;
    info.lines()
        .find_map(|line| line.strip_prefix("process_id:"))
        .and_then(|id| id.trim().parse().ok())
}

/// Fails the test, saying what to install, when a binary it needs is missing.
pub fn require_binary(binary: &str, package: &str) {
    if Command::new(binary)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_err()
    {
        panic!(
            "`{binary}` was not found on PATH. Install it with `apt-get install {package}` \
             (./scripts/test.sh does this when run as root)."
        );
    }
}

impl RedisServer {
    pub fn start() -> RedisServer {
        RedisServer::start_with_args(&[])
    }

    /// A server with more `redis-server` arguments, on a free port of its own.
    pub fn start_with_args(args: &[&str]) -> RedisServer {
        RedisServer::launch("redis", None, None, args)
    }

    /// A server started from a configuration file (the shipped `deploy/redis.conf`), on a
    /// free port and in a scratch directory of its own.
    pub fn start_with_config(config: PathBuf) -> RedisServer {
        RedisServer::launch("redis-conf", None, Some(config), &[])
    }

    /// Starts a server on a free port, and on another if the one picked was taken in between
    /// (by another test's server, or a cluster node's bus port): it then exits at once.
    fn launch(
        kind: &str,
        certs: Option<&Certificates>,
        config: Option<PathBuf>,
        args: &[&str],
    ) -> RedisServer {
        require_binary("redis-server", "redis-server");
        static ATTEMPTS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        for _ in 0..5 {
            let port = free_port();
            // A directory of its own per attempt: two attempts that picked one port must not
            // share (and then remove) one directory.
            let attempt = ATTEMPTS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let dir = std::env::temp_dir().join(format!(
                "sessiond-{kind}-{}-{port}-{attempt}",
                std::process::id()
            ));
            std::fs::create_dir_all(&dir).expect("scratch directory for redis");
            if let Some(certs) = certs {
                for file in Certificates::FILES {
                    std::fs::copy(certs.dir.join(file), dir.join(file))
                        .expect("certificate copied");
                }
            }
            let server = RedisServer {
                port,
                dir,
                child: Mutex::new(None),
                tls: certs.is_some(),
                config: config.clone(),
                args: args.iter().map(|a| a.to_string()).collect(),
            };
            if server.try_spawn() {
                return server;
            }
        }
        panic!("redis-server exited at once on five free ports in a row");
    }

    /// `kill -9`: no shutdown, no save; what survives is what was on disk.
    pub fn kill(&self) {
        if let Some(mut child) = self.child.lock().unwrap().take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// A TLS-only server (`--port 0`) with a certificate for 127.0.0.1 signed by a scratch CA;
    /// returns the server and the CA certificate's path.
    pub fn start_tls() -> (RedisServer, PathBuf) {
        let certs = Certificates::new();
        let server = RedisServer::start_tls_with_args(&[], &certs);
        let ca = server.dir.join("ca.crt");
        (server, ca)
    }

    /// A TLS-only server whose certificates come from `certs` (copied into its directory, with
    /// the client's, which its own test connections present), with more arguments.
    pub fn start_tls_with_args(args: &[&str], certs: &Certificates) -> RedisServer {
        RedisServer::launch("redis-tls", Some(certs), None, args)
    }

    /// Starts the server again on its own port (after `kill` or `stop`).
    fn spawn(&self) {
        assert!(
            self.try_spawn(),
            "redis-server exited at once on port {} (taken?)",
            self.port
        );
    }

    /// Starts the server and waits until it answers: false if it exited first.
    fn try_spawn(&self) -> bool {
        let mut command = Command::new("redis-server");
        if let Some(config) = &self.config {
            command.arg(config);
        }
        if self.tls {
            command
                .args(["--port", "0", "--tls-port", &self.port.to_string()])
                .args([
                    "--tls-cert-file",
                    "server.crt",
                    "--tls-key-file",
                    "server.key",
                ])
                .args(["--tls-ca-cert-file", "ca.crt", "--tls-auth-clients", "no"]);
        } else {
            command.args(["--port", &self.port.to_string()]);
        }
        command
            .current_dir(&self.dir)
            .args(["--bind", "127.0.0.1"])
            .arg("--dir")
            .arg(&self.dir);
        if self.config.is_none() {
            // No background snapshots; `stop` saves explicitly so a restart keeps the data.
            command.args(["--save", "", "--appendonly", "no"]);
        }
        command.args(&self.args);
        let child = command
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server failed to start");
        *self.child.lock().unwrap() = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        let pid = self.child.lock().unwrap().as_ref().map(Child::id);
        loop {
            if let Some(child) = self.child.lock().unwrap().as_mut()
                && child.try_wait().is_ok_and(|status| status.is_some())
            {
                return false;
            }
            // Ready (PING answers once the data set is loaded), and answered by our own
            // process, not by another test's server on a port it took.
            if let Some(answering) = self.connection().ok().and_then(|mut c| {
                redis::cmd("PING").query::<String>(&mut c).ok()?;
                process_id(&mut c)
            }) {
                if Some(answering) == pid {
                    return true;
                }
                // Ours cannot bind the port: it exits; the caller picks another.
                self.kill();
                return false;
            }
            assert!(
                Instant::now() < deadline,
                "redis-server did not answer on port {}",
                self.port
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn url(&self) -> String {
        let scheme = if self.tls { "rediss" } else { "redis" };
        format!("{scheme}://127.0.0.1:{}/0", self.port)
    }

    pub fn connection(&self) -> redis::RedisResult<redis::Connection> {
        if self.tls {
            let certs = Certificates::at(&self.dir);
            return redis::Client::build_with_tls(self.url(), certs.client())?.get_connection();
        }
        redis::Client::open(self.url())?.get_connection()
    }

    /// Shuts the server down, saving its data so `start_again` brings the same sessions back.
    pub fn stop(&self) {
        if let Ok(mut conn) = self.connection() {
            let _ = redis::cmd("SHUTDOWN").arg("SAVE").query::<()>(&mut conn);
        }
        if let Some(mut child) = self.child.lock().unwrap().take() {
            let _ = child.wait();
        }
    }

    pub fn start_again(&self) {
        self.spawn();
    }

    /// `calls` per command from `INFO commandstats`.
    pub fn command_calls(&self) -> HashMap<String, u64> {
        let mut conn = self.connection().expect("redis connection");
        let info: String = redis::cmd("INFO")
            .arg("commandstats")
            .query(&mut conn)
            .unwrap();
        calls_per_command(&info)
    }

    /// Error replies sent, per error code (`INFO errorstats`: redirections such as `MOVED`
    /// and `ASK` included).
    pub fn error_counts(&self) -> HashMap<String, u64> {
        let mut conn = self.connection().expect("redis connection");
        let info: String = redis::cmd("INFO")
            .arg("errorstats")
            .query(&mut conn)
            .unwrap();
        info.lines()
            .filter_map(|line| {
                let (code, count) = line.strip_prefix("errorstat_")?.split_once(":count=")?;
                Some((code.to_owned(), count.trim().parse().ok()?))
            })
            .collect()
    }

    /// Whether the server says it is a master, and how many write commands it has executed,
    /// read in one `INFO` so the two agree. Commands a script runs count as its own (a script
    /// that only reads writes nothing). Refused commands (`NOREPLICAS`, `READONLY`) are not
    /// executed and not counted; commands a replica applies from its master are, so only a
    /// master's count means "writes it accepted". `None` while the server does not answer.
    pub fn role_and_writes(&self) -> Option<(bool, u64)> {
        let mut conn = self.connection().ok()?;
        let writes: Vec<String> = redis::cmd("COMMAND")
            .arg("LIST")
            .arg("FILTERBY")
            .arg("ACLCAT")
            .arg("write")
            .query(&mut conn)
            .ok()?;
        let info: String = redis::cmd("INFO")
            .arg("replication")
            .arg("commandstats")
            .query(&mut conn)
            .ok()?;
        let master = info.lines().any(|line| line.trim() == "role:master");
        let executed = calls_per_command(&info)
            .into_iter()
            .filter(|(name, _)| writes.contains(name))
            .map(|(_, calls)| calls)
            .sum();
        Some((master, executed))
    }
}

/// A scratch CA, a server certificate for 127.0.0.1 and localhost, and a client certificate,
/// made with `openssl` in a directory that goes with the value.
pub struct Certificates {
    pub dir: PathBuf,
    owned: bool,
}

impl Certificates {
    const FILES: [&str; 5] = [
        "ca.crt",
        "server.crt",
        "server.key",
        "client.crt",
        "client.key",
    ];

    pub fn new() -> Certificates {
        require_binary("openssl", "openssl");
        let dir = std::env::temp_dir().join(format!(
            "sessiond-certs-{}-{}",
            std::process::id(),
            free_port()
        ));
        std::fs::create_dir_all(&dir).expect("scratch directory for certificates");
        let openssl = |args: &[&str]| {
            let status = Command::new("openssl")
                .args(args)
                .current_dir(&dir)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .expect("openssl runs");
            assert!(status.success(), "openssl {args:?} failed");
        };
        let rsa = ["-newkey", "rsa:2048", "-nodes"];
        openssl(
            &[
                &["req", "-x509"][..],
                &rsa,
                &[
                    "-days",
                    "1",
                    "-subj",
                    "/CN=test CA",
                    "-keyout",
                    "ca.key",
                    "-out",
                    "ca.crt",
                ],
            ]
            .concat(),
        );
        for (name, subject, extensions) in [
            (
                "server",
                "/CN=127.0.0.1",
                "subjectAltName=IP:127.0.0.1,DNS:localhost\n",
            ),
            ("client", "/CN=sessiond", "extendedKeyUsage=clientAuth\n"),
        ] {
            let (key, csr, crt, ext) = (
                format!("{name}.key"),
                format!("{name}.csr"),
                format!("{name}.crt"),
                format!("{name}.ext"),
            );
            std::fs::write(dir.join(&ext), extensions).unwrap();
            openssl(
                &[
                    &["req"],
                    &rsa[..],
                    &["-subj", subject, "-keyout", &key, "-out", &csr],
                ]
                .concat(),
            );
            openssl(&[
                "x509",
                "-req",
                "-in",
                &csr,
                "-CA",
                "ca.crt",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-days",
                "1",
                "-extfile",
                &ext,
                "-out",
                &crt,
            ]);
        }
        Certificates { dir, owned: true }
    }

    /// The certificates copied into a server's directory (not removed with this value).
    fn at(dir: &std::path::Path) -> Certificates {
        Certificates {
            dir: dir.to_owned(),
            owned: false,
        }
    }

    pub fn path(&self, file: &str) -> PathBuf {
        self.dir.join(file)
    }

    /// What a client trusting the scratch CA and presenting the client certificate uses.
    pub fn client(&self) -> redis::TlsCertificates {
        let read = |file: &str| std::fs::read(self.dir.join(file)).expect("certificate file");
        redis::TlsCertificates {
            client_tls: Some(redis::ClientTlsConfig {
                client_cert: read("client.crt"),
                client_key: read("client.key"),
            }),
            root_cert: Some(read("ca.crt")),
        }
    }
}

impl Drop for Certificates {
    fn drop(&mut self) {
        if self.owned {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.lock().unwrap().take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

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

pub fn free_port() -> u16 {
    loop {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("no free local port")
            .port();
        if port != 6379 {
            return port;
        }
    }
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
        require_binary("redis-server", "redis-server");
        let port = free_port();
        let dir =
            std::env::temp_dir().join(format!("sessiond-redis-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("scratch directory for redis");
        let server = RedisServer {
            port,
            dir,
            child: Mutex::new(None),
            tls: false,
            config: None,
            args: args.iter().map(|a| a.to_string()).collect(),
        };
        server.spawn();
        server
    }

    /// A server started from a configuration file (the shipped `deploy/redis.conf`), on a
    /// free port and in a scratch directory of its own.
    pub fn start_with_config(config: PathBuf) -> RedisServer {
        require_binary("redis-server", "redis-server");
        let port = free_port();
        let dir =
            std::env::temp_dir().join(format!("sessiond-redis-conf-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("scratch directory for redis");
        let server = RedisServer {
            port,
            dir,
            child: Mutex::new(None),
            tls: false,
            config: Some(config),
            args: Vec::new(),
        };
        server.spawn();
        server
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
        require_binary("redis-server", "redis-server");
        require_binary("openssl", "openssl");
        let port = free_port();
        let dir =
            std::env::temp_dir().join(format!("sessiond-redis-tls-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("scratch directory for redis");
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
        openssl(&[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=test CA",
            "-keyout",
            "ca.key",
            "-out",
            "ca.crt",
        ]);
        openssl(&[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            "/CN=127.0.0.1",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
        ]);
        std::fs::write(
            dir.join("san.ext"),
            "subjectAltName=IP:127.0.0.1,DNS:localhost\n",
        )
        .unwrap();
        openssl(&[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "1",
            "-extfile",
            "san.ext",
            "-out",
            "server.crt",
        ]);
        let server = RedisServer {
            port,
            dir: dir.clone(),
            child: Mutex::new(None),
            tls: true,
            config: None,
            args: Vec::new(),
        };
        server.spawn();
        (server, dir.join("ca.crt"))
    }

    fn spawn(&self) {
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
        if self.tls {
            // Our test client has no CA configured; wait for the port instead.
            while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
                assert!(
                    Instant::now() < deadline,
                    "redis-server (TLS) did not listen"
                );
                std::thread::sleep(Duration::from_millis(20));
            }
            return;
        }
        loop {
            if self
                .connection()
                .is_ok_and(|mut c| redis::cmd("PING").query::<String>(&mut c).is_ok())
            {
                return;
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
        info.lines()
            .filter_map(|line| {
                let (name, rest) = line.strip_prefix("cmdstat_")?.split_once(':')?;
                let calls = rest.split(',').find_map(|kv| kv.strip_prefix("calls="))?;
                Some((name.to_owned(), calls.parse().ok()?))
            })
            .collect()
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

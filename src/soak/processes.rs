//! The soak's real processes: a redis-server started from the shipped `deploy/redis.conf`, and
//! instances of this very binary serving on ports of their own. Signals go through the shell's
//! `kill` (present on every Debian, unlike procps' binary), so no libc bindings are needed.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::process::{Child, Command};

use super::{Fsync, SoakError};

/// The production configuration the soak runs Redis with (its port, directory and
/// `appendfsync` are the soak's own).
const REDIS_CONF: &str = include_str!("../../deploy/redis.conf");

pub fn free_port() -> Result<u16, SoakError> {
    loop {
        let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        if port != 6379 {
            return Ok(port);
        }
    }
}

/// Sends `signal` (TERM, KILL, STOP, CONT) to `pid`.
pub async fn signal(pid: u32, signal: &str) -> Result<(), SoakError> {
    let status = Command::new("sh")
        .args(["-c", &format!("kill -{signal} {pid}")])
        .status()
        .await?;
    if status.success() {
        Ok(())
    } else {
        Err(SoakError::Setup(format!("kill -{signal} {pid} failed")))
    }
}

/// Resident memory of `pid` in KiB, from `/proc`.
pub fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

pub struct Redis {
    pub port: u16,
    dir: PathBuf,
    fsync: Fsync,
    child: Option<Child>,
}

impl Redis {
    pub async fn start(dir: &Path, fsync: Fsync) -> Result<Redis, SoakError> {
        std::fs::create_dir_all(dir)?;
        std::fs::write(dir.join("redis.conf"), REDIS_CONF)?;
        let mut redis = Redis {
            port: free_port()?,
            dir: dir.to_owned(),
            fsync,
            child: None,
        };
        redis.spawn().await?;
        Ok(redis)
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().and_then(Child::id)
    }

    async fn spawn(&mut self) -> Result<(), SoakError> {
        let child = Command::new("redis-server")
            .arg(self.dir.join("redis.conf"))
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .arg("--dir")
            .arg(&self.dir)
            .args(["--appendfsync", self.fsync.as_str()])
            .current_dir(&self.dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .map_err(|_| SoakError::Missing("redis-server", "redis-server"))?;
        self.child = Some(child);
        self.wait_until_serving().await
    }

    /// Until Redis answers PING with PONG: listening is not enough, it answers LOADING while
    /// it replays its AOF.
    async fn wait_until_serving(&self) -> Result<(), SoakError> {
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(mut stream) = tokio::net::TcpStream::connect(("127.0.0.1", self.port)).await {
                let mut reply = [0u8; 7];
                if stream.write_all(b"PING\r\n").await.is_ok()
                    && stream.read_exact(&mut reply).await.is_ok()
                    && &reply == b"+PONG\r\n"
                {
                    return Ok(());
                }
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        Err(SoakError::Setup("redis-server did not start".into()))
    }

    /// `kill -9`: no shutdown, no save; what comes back is what was on disk.
    pub async fn kill(&mut self) -> Result<(), SoakError> {
        if let Some(mut child) = self.child.take() {
            child.kill().await?;
        }
        Ok(())
    }

    /// Starts Redis again on the same port and directory; returns once it serves.
    pub async fn restart(&mut self) -> Result<(), SoakError> {
        self.spawn().await
    }

    /// A stall, not a crash: the process is frozen (connections stay open) for `pause`.
    pub async fn stall(&self, pause: Duration) -> Result<(), SoakError> {
        let pid = self
            .pid()
            .ok_or(SoakError::Setup("redis is not running".into()))?;
        signal(pid, "STOP").await?;
        tokio::time::sleep(pause).await;
        signal(pid, "CONT").await
    }

    /// `CLIENT KILL` of every normal client but the one asking: the apps' connections.
    pub async fn kill_clients(&self) -> Result<u64, SoakError> {
        let client = redis::Client::open(self.url())?;
        let mut connection = client.get_multiplexed_async_connection().await?;
        let killed: u64 = redis::cmd("CLIENT")
            .arg(&["KILL", "TYPE", "normal", "SKIPME", "yes"])
            .query_async(&mut connection)
            .await?;
        Ok(killed)
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        if let Some(pid) = self.pid() {
            // A stalled Redis ignores SIGKILL's reaping until continued; make sure it ends.
            let _ = std::process::Command::new("sh")
                .args(["-c", &format!("kill -CONT {pid}; kill -KILL {pid}")])
                .status();
        }
    }
}

/// One instance of the app: this binary's `serve`, configured through the environment.
pub struct App {
    pub name: &'static str,
    pub port: u16,
    binary: PathBuf,
    env: Vec<(String, String)>,
    log_dir: PathBuf,
    child: Option<Child>,
    /// How many times it has been started (the log file of each start is its own).
    pub starts: u32,
}

impl App {
    pub async fn start(
        name: &'static str,
        binary: &Path,
        env: Vec<(String, String)>,
        log_dir: &Path,
    ) -> Result<App, SoakError> {
        let mut app = App {
            name,
            port: free_port()?,
            binary: binary.to_owned(),
            env,
            log_dir: log_dir.to_owned(),
            child: None,
            starts: 0,
        };
        app.spawn().await?;
        Ok(app)
    }

    pub fn base(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().and_then(Child::id)
    }

    /// Starts the process (again, after a stop) and waits until `/readyz` answers 200.
    pub async fn spawn(&mut self) -> Result<(), SoakError> {
        self.starts += 1;
        let log = std::fs::File::create(
            self.log_dir
                .join(format!("{}-{}.log", self.name, self.starts)),
        )?;
        let mut command = Command::new(&self.binary);
        command
            .args(["--config", "/nonexistent/sessiond-soak.toml", "serve"])
            .env("SESSIOND__SERVER__BIND", format!("127.0.0.1:{}", self.port))
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdout(log.try_clone()?)
            .stderr(log)
            .kill_on_drop(true);
        self.child = Some(command.spawn()?);
        let ready = format!("{}/readyz", self.base());
        let http = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if let Ok(reply) = http.get(&ready).send().await
                && reply.status().is_success()
            {
                return Ok(());
            }
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                return Err(SoakError::Setup(format!(
                    "instance {} exited at start ({status}); see its log in {}",
                    self.name,
                    self.log_dir.display()
                )));
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        Err(SoakError::Setup(format!(
            "instance {} did not become ready",
            self.name
        )))
    }

    /// SIGTERM, then waits for the exit; true when it exited 0 within `limit`.
    pub async fn terminate(&mut self, limit: Duration) -> Result<bool, SoakError> {
        let Some(mut child) = self.child.take() else {
            return Ok(false);
        };
        if let Some(pid) = child.id() {
            signal(pid, "TERM").await?;
        }
        match tokio::time::timeout(limit, child.wait()).await {
            Ok(status) => Ok(status?.success()),
            Err(_) => {
                child.kill().await?;
                Ok(false)
            }
        }
    }

    /// Lines of every log of this instance that report a panic.
    pub fn panics(&self) -> Result<Vec<String>, SoakError> {
        let mut found = Vec::new();
        for start in 1..=self.starts {
            let path = self.log_dir.join(format!("{}-{start}.log", self.name));
            let text = std::fs::read(&path)?;
            found.extend(
                String::from_utf8_lossy(&text)
                    .lines()
                    .filter(|l| l.contains("panicked"))
                    .map(|l| format!("{}: {l}", path.display())),
            );
        }
        Ok(found)
    }
}

//! The benchmark's own redis-server, on a free port, gone when the benchmark ends.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::BenchError;

pub struct RedisProcess {
    pub url: String,
    child: Child,
    dir: std::path::PathBuf,
}

impl RedisProcess {
    pub fn start() -> Result<RedisProcess, BenchError> {
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
        Ok(RedisProcess { url, child, dir })
    }
}

impl Drop for RedisProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

//! An HTTP fuzzer against the real binary on a real Redis: every route and method, random and
//! mutated headers (huge, repeated, non-UTF-8, many cookies, real cookies altered), bodies of
//! random bytes and sizes, truncated requests. `FUZZ_REQUESTS` sets how many (2,000 by
//! default; the README's long mode runs 20,000); the seed is printed, and `FUZZ_SEED` replays.

use std::collections::BTreeMap;
use std::process::{Command, Stdio};
use std::time::Duration;

use proptest::prelude::RngExt;
use proptest::test_runner::{RngAlgorithm, TestRng};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::helpers::Browser;
use super::redis_server::{RedisServer, free_port};

const ROUTES: &[&str] = &[
    "/",
    "/login",
    "/logout",
    "/account/sessions",
    "/account/sessions/revoke-others",
    "/account/sessions/{handle}/revoke",
    "/account/password",
    "/account/reauth",
    "/admin",
    "/admin/users",
    "/admin/users/{name}",
    "/admin/users/{name}/roles",
    "/admin/users/{name}/unlock",
    "/admin/users/{name}/password-reset",
    "/admin/users/{name}/sessions/revoke-all",
    "/admin/users/{name}/sessions/{handle}/revoke",
    "/admin/users/{name}/disable",
    "/admin/users/{name}/enable",
    "/admin/users/{name}/delete",
    "/admin/sessions",
    "/admin/audit",
    "/api/me",
    "/api/csrf",
    "/api/reauth",
    "/api/admin/users",
    "/api/admin/users/{name}",
    "/api/admin/users/{name}/sessions",
    "/api/admin/users/{name}/sessions/{handle}",
    "/api/admin/users/{name}/roles",
    "/api/admin/users/{name}/disabled",
    "/api/admin/users/{name}/unlock",
    "/api/admin/sessions",
    "/api/admin/audit",
    "/healthz",
    "/readyz",
    "/metrics",
    "/.well-known/jwks.json",
    "/static/style.css",
    "/no/such/route",
];

const METHODS: &[&str] = &[
    "GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS", "TRACE", "CONNECT", "BREW",
];

const QUERY_KEYS: &[&str] = &[
    "q", "after", "before", "limit", "user", "action", "sort", "next", "why", "resume", "handle",
];

const FORM_KEYS: &[&str] = &[
    "username",
    "password",
    "csrf",
    "next",
    "name",
    "roles",
    "role:admin",
    "role:editor",
    "confirm",
    "back",
    "current_password",
    "new_password",
    "new_password_again",
];

struct Fuzzer {
    rng: TestRng,
    cookies: Vec<(String, String)>,
    csrf: String,
}

impl Fuzzer {
    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.rng.random_range(0..items.len())]
    }

    fn chance(&mut self, percent: u32) -> bool {
        self.rng.random_range(0..100) < percent
    }

    fn bytes(&mut self, max: usize) -> Vec<u8> {
        let mut bytes = vec![0u8; self.rng.random_range(0..=max)];
        self.rng.fill(&mut bytes[..]);
        bytes
    }

    /// A value parsers will find interesting: text, numbers, cursors, escapes or noise.
    fn value(&mut self) -> String {
        match self.rng.random_range(0..8) {
            0 => String::new(),
            1 => "a".repeat(self.rng.random_range(1..5000)),
            2 => format!("{}-{}", self.rng.random::<u64>(), self.rng.random::<u64>()),
            3 => "%00%ff%zz%".to_owned(),
            4 => self.csrf.clone(),
            5 => "//evil.example/%2e%2e\\\\x".to_owned(),
            6 => format!("{}", self.rng.random::<u32>() as i64 - 1_000_000),
            _ => percent(&self.bytes(40)),
        }
    }

    fn path(&mut self) -> String {
        let route = self.pick(ROUTES).to_owned();
        let name = match self.rng.random_range(0..4) {
            0 => "fuzzer".to_owned(),
            1 => "nobody".to_owned(),
            2 => percent(&self.bytes(30)),
            _ => "A".repeat(self.rng.random_range(1..300)),
        };
        let handle = percent(&self.bytes(30));
        let mut path = route.replace("{name}", &name).replace("{handle}", &handle);
        if self.chance(60) {
            let mut pairs = Vec::new();
            for _ in 0..self.rng.random_range(1..6) {
                let key = self.pick(QUERY_KEYS);
                pairs.push(format!("{key}={}", percent(self.value().as_bytes())));
            }
            path.push('?');
            path.push_str(&pairs.join("&"));
        }
        path
    }

    fn body(&mut self) -> (Option<&'static str>, Vec<u8>) {
        match self.rng.random_range(0..5) {
            0 => (None, Vec::new()),
            1 => (Some("application/json"), self.bytes(2000)),
            2 => {
                let json = format!(
                    r#"{{"name":"{}","password":"{}","roles":["{}"],"disabled":{}}}"#,
                    self.value().replace('"', ""),
                    self.value().replace('"', ""),
                    self.value().replace('"', ""),
                    self.chance(50)
                );
                (Some("application/json"), json.into_bytes())
            }
            3 => {
                let mut pairs = vec![format!("csrf={}", self.csrf)];
                for _ in 0..self.rng.random_range(0..8) {
                    let key = self.pick(FORM_KEYS);
                    pairs.push(format!(
                        "{}={}",
                        percent(key.as_bytes()),
                        percent(self.value().as_bytes())
                    ));
                }
                (
                    Some("application/x-www-form-urlencoded"),
                    pairs.join("&").into_bytes(),
                )
            }
            _ => (Some("application/x-www-form-urlencoded"), self.bytes(9000)),
        }
    }

    fn cookie_header(&mut self) -> Option<Vec<u8>> {
        let real: Vec<String> = self
            .cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        match self.rng.random_range(0..6) {
            0 => None,
            1 => Some(real.join("; ").into_bytes()),
            2 => {
                // A real cookie with one byte changed.
                let mut altered = real.join("; ").into_bytes();
                if !altered.is_empty() {
                    let at = self.rng.random_range(0..altered.len());
                    altered[at] = self.rng.random();
                }
                Some(altered)
            }
            3 => Some(
                (0..self.rng.random_range(1..300))
                    .map(|i| format!("c{i}=v{i}"))
                    .collect::<Vec<_>>()
                    .join("; ")
                    .into_bytes(),
            ),
            4 => Some(
                format!("__Host-sid={}", "x".repeat(self.rng.random_range(1..6000))).into_bytes(),
            ),
            _ => Some(self.bytes(200)),
        }
    }

    /// One request's bytes, and whether it is cut short on purpose.
    fn request(&mut self) -> (Vec<u8>, bool) {
        let method = if self.chance(5) {
            String::from_utf8_lossy(&self.bytes(10)).into_owned()
        } else {
            self.pick(METHODS).to_owned()
        };
        let mut out = format!(
            "{method} {} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n",
            self.path()
        )
        .into_bytes();
        if let Some(cookie) = self.cookie_header() {
            out.extend_from_slice(b"Cookie: ");
            out.extend_from_slice(&cookie);
            out.extend_from_slice(b"\r\n");
        }
        if self.chance(30) {
            out.extend_from_slice(format!("X-CSRF-Token: {}\r\n", self.csrf).as_bytes());
        }
        for _ in 0..self.rng.random_range(0..4) {
            let name = self.pick(&[
                "Accept",
                "X-Forwarded-For",
                "User-Agent",
                "Origin",
                "Sec-Fetch-Site",
                "Referer",
                "Authorization",
                "Accept",
                "X-Junk",
            ]);
            out.extend_from_slice(name.as_bytes());
            out.extend_from_slice(b": ");
            let value = match self.rng.random_range(0..4) {
                0 => self.bytes(100),
                1 => vec![b'v'; self.rng.random_range(1..10_000)],
                2 => b"Bearer eyJhbGciOiJub25lIn0.e30.".to_vec(),
                _ => self.value().into_bytes(),
            };
            // A raw CR or LF would end the header early: noise, but not this test's noise.
            out.extend(value.into_iter().filter(|b| *b != b'\r' && *b != b'\n'));
            out.extend_from_slice(b"\r\n");
        }
        let (content_type, body) = self.body();
        if let Some(content_type) = content_type {
            out.extend_from_slice(format!("Content-Type: {content_type}\r\n").as_bytes());
        }
        let truncated = self.chance(10);
        let declared = if truncated {
            body.len() + 100
        } else {
            body.len()
        };
        out.extend_from_slice(format!("Content-Length: {declared}\r\n\r\n").as_bytes());
        out.extend_from_slice(&body);
        if truncated && self.chance(50) {
            // Cut inside the headers instead.
            let at = self.rng.random_range(0..out.len().min(60));
            out.truncate(at);
        }
        (out, truncated)
    }
}

fn percent(bytes: &[u8]) -> String {
    percent_encoding::percent_encode(bytes, percent_encoding::NON_ALPHANUMERIC).to_string()
}

/// Sends one request; the status, 0 when the server closed without answering, 1 when a whole
/// request got no answer within 10 s, 2 when a request cut short got none (as it may).
async fn send(port: u16, request: &[u8], truncated: bool) -> u16 {
    let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)).await else {
        return 0;
    };
    let _ = stream.write_all(request).await;
    if truncated {
        let _ = stream.shutdown().await;
    }
    // A request cut short may rightly wait for bytes that never come: the client gives up on
    // it soon (status 2). A whole request must be answered. The status line is all we need;
    // reading on would wait for the server to see us close.
    let wait = if truncated {
        Duration::from_millis(300)
    } else {
        Duration::from_secs(10)
    };
    let mut answer = Vec::new();
    let read_status_line = async {
        let mut chunk = [0u8; 1024];
        while answer.len() < 12 {
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => break,
                Ok(n) => answer.extend_from_slice(&chunk[..n]),
            }
        }
    };
    if tokio::time::timeout(wait, read_status_line).await.is_err() {
        return if truncated { 2 } else { 1 };
    }
    let head = String::from_utf8_lossy(&answer[..answer.len().min(20)]).into_owned();
    head.strip_prefix("HTTP/1.1 ")
        .and_then(|rest| rest.get(..3))
        .and_then(|code| code.parse().ok())
        .unwrap_or(0)
}

#[actix_web::test]
async fn random_and_mutated_requests_get_no_500_and_no_panic() {
    // Arrange: the binary on a real Redis, logging to a file; an admin to fuzz as.
    let redis = RedisServer::start();
    let port = free_port();
    let log_path = std::env::temp_dir().join(format!("sessiond-fuzz-{port}.log"));
    let env = [
        ("SESSIOND__STORE__URL", redis.url()),
        ("SESSIOND__STORE__KEY_PREFIX", "fuzz:".to_owned()),
        ("SESSIOND__SERVER__BIND", format!("127.0.0.1:{port}")),
        ("SESSIOND__SERVER__WORKERS", "2".to_owned()),
        (
            "SESSIOND__SERVER__REQUEST_HEADER_TIMEOUT_MS",
            "1000".to_owned(),
        ),
        ("RUST_LOG", "warn".to_owned()),
    ];
    let mut add = Command::new(env!("CARGO_BIN_EXE_sessiond"))
        .args([
            "--config",
            "/nonexistent/sessiond.toml",
            "user",
            "add",
            "fuzzer",
            "--role",
            "admin",
            "--password-stdin",
        ])
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    {
        use std::io::Write;
        add.stdin
            .take()
            .unwrap()
            .write_all(b"amber river quietly folds\n")
            .unwrap();
    }
    assert!(add.wait().unwrap().success());
    let log = std::fs::File::create(&log_path).unwrap();
    let mut server = Command::new(env!("CARGO_BIN_EXE_sessiond"))
        .args(["--config", "/nonexistent/sessiond.toml", "serve"])
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap();
    let base = format!("http://127.0.0.1:{port}");
    for _ in 0..400 {
        if TcpStream::connect(("127.0.0.1", port)).await.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let admin = Browser::new(&base);
    assert_eq!(
        admin
            .login("fuzzer", "amber river quietly folds")
            .await
            .status,
        303
    );
    let csrf = admin.csrf().await;
    let requests: usize = std::env::var("FUZZ_REQUESTS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(2_000);
    let seed: u64 = std::env::var("FUZZ_SEED")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
        });
    println!("fuzz seed {seed} (FUZZ_SEED={seed} replays it), {requests} requests");
    let mut seed_bytes = [0u8; 32];
    seed_bytes[..8].copy_from_slice(&seed.to_le_bytes());
    let mut fuzzer = Fuzzer {
        rng: TestRng::from_seed(RngAlgorithm::ChaCha, &seed_bytes),
        cookies: admin.jar().into_iter().collect(),
        csrf,
    };

    // Act
    let mut statuses: BTreeMap<u16, usize> = BTreeMap::new();
    let mut examples: BTreeMap<u16, String> = BTreeMap::new();
    for _ in 0..requests {
        let (request, truncated) = fuzzer.request();
        let status = match send(port, &request, truncated).await {
            // A whole request closed without an answer is as bad as no answer.
            0 if !truncated => 1,
            status => status,
        };
        *statuses.entry(status).or_default() += 1;
        examples.entry(status).or_insert_with(|| {
            String::from_utf8_lossy(&request[..request.len().min(300)]).into_owned()
        });
    }
    let health = Browser::new(&base).get("/healthz").await.status;
    let login = Browser::new(&base)
        .login("fuzzer", "amber river quietly folds")
        .await
        .status;
    let _ = server.kill();
    let _ = server.wait();
    let log = std::fs::read_to_string(&log_path).unwrap_or_default();
    let _ = std::fs::remove_file(&log_path);

    // Assert
    println!("statuses: {statuses:?}");
    let server_errors: Vec<(&u16, &String)> = examples
        .iter()
        .filter(|(status, _)| (500..600).contains(*status) && **status != 503)
        .collect();
    assert!(
        server_errors.is_empty(),
        "5xx other than 503 (seed {seed}): {server_errors:#?}"
    );
    assert!(
        !statuses.contains_key(&1),
        "a whole request got no answer (seed {seed}): {:?}",
        examples.get(&1)
    );
    assert!(!log.contains("panicked"), "a panic (seed {seed}):\n{log}");
    assert_eq!(health, 200);
    assert!(
        login == 303 || login == 429,
        "the server still signs people in: {login}"
    );
}

//! The process under operations: a redeploy's SIGTERM, slow clients. The real binary, started
//! on a port of its own.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::helpers::Browser;
use super::redis_server::free_port;

/// The `sessiond` binary serving on the memory store, with `env` settings, once it answers.
async fn serve(env: &[(&str, &str)]) -> (Child, u16) {
    let port = free_port();
    let mut command = Command::new(env!("CARGO_BIN_EXE_sessiond"));
    command
        .args(["--config", "/nonexistent/sessiond.toml", "serve"])
        .env("SESSIOND__STORE__URL", "memory://")
        .env("SESSIOND__SERVER__BIND", format!("127.0.0.1:{port}"))
        .env("SESSIOND__SERVER__WORKERS", "1")
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    for (key, value) in env {
        command.env(key, value);
    }
    let mut child = command.spawn().expect("the sessiond binary runs");
    for _ in 0..400 {
        if TcpStream::connect(("127.0.0.1", port)).await.is_ok() {
            return (child, port);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let _ = child.kill();
    let _ = child.wait();
    panic!("sessiond did not listen on {port}");
}

/// Reads until the server closes the connection.
async fn read_to_close(stream: &mut TcpStream) -> String {
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer).await;
    String::from_utf8_lossy(&answer).into_owned()
}

#[actix_web::test]
async fn sigterm_lets_a_request_in_flight_finish_and_takes_no_new_one() {
    // Arrange: a login form's cookie and CSRF token, and a connection the server has
    // certainly accepted (it answered a first request on it).
    let (mut server, port) = serve(&[("SESSIOND__SERVER__SHUTDOWN_TIMEOUT_SECS", "30")]).await;
    let base = format!("http://127.0.0.1:{port}");
    let browser = Browser::new(&base);
    let csrf = browser.get("/login").await.csrf();
    let cookies: Vec<String> = browser
        .jar()
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    let mut stream = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut first = [0u8; 512];
    let n = stream.read(&mut first).await.unwrap();
    assert!(first[..n].starts_with(b"HTTP/1.1 200"));
    // A login whose body is only half sent: in flight.
    let body = format!("username=nobody&password=wrong+guess&csrf={csrf}");
    let (head, tail) = body.split_at(body.len() / 2);
    let request = format!(
        "POST /login HTTP/1.1\r\nHost: x\r\nConnection: close\r\nCookie: {}\r\n\
         Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{head}",
        cookies.join("; "),
        body.len()
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    // Arrangement, not a measurement: let the server read the headers before the signal.
    tokio::time::sleep(Duration::from_millis(300)).await;

    // Act: the redeploy's signal, then the rest of the request.
    // The shell's own `kill`: present on every Debian, unlike procps' binary.
    let status = Command::new("sh")
        .args(["-c", &format!("kill -TERM {}", server.id())])
        .status()
        .unwrap();
    assert!(status.success());
    tokio::time::sleep(Duration::from_millis(300)).await;
    let newcomer = match TcpStream::connect(("127.0.0.1", port)).await {
        Err(_) => String::new(),
        Ok(mut late) => {
            let _ = late
                .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
                .await;
            read_to_close(&mut late).await
        }
    };
    stream.write_all(tail.as_bytes()).await.unwrap();
    let answer = read_to_close(&mut stream).await;
    let mut exit = None;
    for _ in 0..400 {
        if let Some(status) = server.try_wait().unwrap() {
            exit = Some(status);
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // Assert: the request in flight got its whole answer; no new one was served; the
    // process then exited cleanly on its own.
    assert!(
        answer.starts_with("HTTP/1.1 401"),
        "the login in flight was answered: {answer:?}"
    );
    assert!(answer.contains("Invalid user name or password."));
    assert!(
        newcomer.is_empty(),
        "a connection after SIGTERM was served: {newcomer:?}"
    );
    let exit = exit.unwrap_or_else(|| {
        let _ = server.kill();
        panic!("sessiond did not exit after draining")
    });
    assert!(exit.success(), "{exit:?}");
}

#[actix_web::test]
async fn clients_trickling_headers_are_cut_off_and_others_are_served() {
    // Arrange: a short header deadline; twenty connections that send a header byte at a time.
    let (mut server, port) =
        serve(&[("SESSIOND__SERVER__REQUEST_HEADER_TIMEOUT_MS", "1000")]).await;
    let mut slow = Vec::new();
    for _ in 0..20 {
        let mut stream = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
        stream
            .write_all(b"GET / HTTP/1.1\r\nX-Slow: ")
            .await
            .unwrap();
        slow.push(stream);
    }

    // Act: keep trickling while a normal client makes fifty requests.
    let normal = Browser::new(&format!("http://127.0.0.1:{port}"));
    let mut statuses = Vec::new();
    for round in 0..50 {
        for stream in &mut slow {
            let _ = stream.write_all(b"a").await;
        }
        statuses.push(normal.get("/login").await.status);
        if round % 10 == 0 {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    // Then keep trickling until the server gives up on each of them.
    let mut cut_off = 0;
    for stream in &mut slow {
        let mut closed = false;
        for _ in 0..100 {
            if stream.write_all(b"a").await.is_err() {
                closed = true;
                break;
            }
            let mut byte = [0u8; 512];
            match tokio::time::timeout(Duration::from_millis(50), stream.read(&mut byte)).await {
                Ok(Ok(0)) | Ok(Err(_)) => {
                    closed = true;
                    break;
                }
                Ok(Ok(n)) => {
                    assert!(
                        byte[..n].starts_with(b"HTTP/1.1 408"),
                        "{:?}",
                        String::from_utf8_lossy(&byte[..n])
                    );
                    closed = true;
                    break;
                }
                Err(_) => {} // nothing yet: keep trickling
            }
        }
        cut_off += usize::from(closed);
    }
    let _ = server.kill();
    let _ = server.wait();

    // Assert
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
    assert_eq!(
        cut_off, 20,
        "every header-trickling connection was closed by the server"
    );
}

//! `sessiond user ...` against a real Redis, seen through a running app.

use std::io::Write;
use std::process::{Command, Output, Stdio};
use std::sync::Arc;

use super::helpers::spawn_app_on;
use super::redis_server::RedisServer;

fn sessiond(store_url: &str, prefix: &str, args: &[&str], stdin: &str) -> Output {
    sessiond_with(
        Command::new(env!("CARGO_BIN_EXE_sessiond")),
        store_url,
        prefix,
        args,
        stdin,
    )
}

fn sessiond_with(
    mut command: Command,
    store_url: &str,
    prefix: &str,
    args: &[&str],
    stdin: &str,
) -> Output {
    let mut child = command
        .args(["--config", "/nonexistent/sessiond.toml"])
        .args(args)
        .env("SESSIOND__STORE__URL", store_url)
        .env("SESSIOND__STORE__KEY_PREFIX", prefix)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the sessiond binary runs");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

#[actix_web::test]
async fn user_commands_take_effect_on_live_sessions() {
    // Arrange
    let redis = Arc::new(RedisServer::start());
    let url = redis.url();
    let app = spawn_app_on(Some(redis.clone()), |s| s.store.key_prefix = "cli:".into()).await;
    let add = sessiond(
        &url,
        "cli:",
        &["user", "add", "Bob", "--role", "editor", "--password-stdin"],
        "a long password\n",
    );
    assert!(
        add.status.success(),
        "{}",
        String::from_utf8_lossy(&add.stderr)
    );
    let bob = app.browser();
    assert_eq!(bob.login("bob", "a long password").await.status, 303);
    assert_eq!(bob.get("/admin").await.status, 403);

    // Act + Assert: each command applies to the live session on its next request.
    let promote = sessiond(&url, "cli:", &["user", "set-roles", "bob", "admin"], "");
    assert!(promote.status.success());
    assert_eq!(bob.get("/admin").await.status, 200);

    let disable = sessiond(&url, "cli:", &["user", "disable", "bob"], "");
    assert!(disable.status.success());
    assert!(String::from_utf8_lossy(&disable.stdout).contains("ended 1 live session"));
    assert_eq!(bob.me_status().await, 401);
    assert_eq!(
        app.browser().login("bob", "a long password").await.status,
        403,
        "the right password for a disabled account: 'This account is disabled'"
    );

    let enable = sessiond(&url, "cli:", &["user", "enable", "bob"], "");
    assert!(enable.status.success());
    assert_eq!(
        app.browser().login("bob", "a long password").await.status,
        303
    );
}

#[actix_web::test]
async fn user_commands_refuse_bad_input() {
    let redis = RedisServer::start();
    let url = redis.url();

    let no_stdin_flag = sessiond(&url, "x:", &["user", "add", "carol"], "");
    let short_password = sessiond(
        &url,
        "x:",
        &["user", "add", "carol", "--password-stdin"],
        "short\n",
    );
    let bad_name = sessiond(
        &url,
        "x:",
        &["user", "add", "no spaces", "--password-stdin"],
        "a long password\n",
    );
    let unknown = sessiond(&url, "x:", &["user", "disable", "nobody"], "");
    let memory = sessiond("memory://", "x:", &["user", "disable", "nobody"], "");

    for output in [
        &no_stdin_flag,
        &short_password,
        &bad_name,
        &unknown,
        &memory,
    ] {
        assert!(!output.status.success());
    }
    assert!(String::from_utf8_lossy(&no_stdin_flag.stderr).contains("--password-stdin"));
    assert!(
        String::from_utf8_lossy(&memory.stderr).contains("memory store lives inside the server")
    );
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("no user"));
}

#[actix_web::test]
async fn rediss_urls_talk_tls_and_verify_the_server_certificate() {
    // Arrange: a TLS-only Redis whose certificate is signed by a CA of our own.
    let (redis, ca) = RedisServer::start_tls();
    let url = redis.url();
    assert!(url.starts_with("rediss://"));
    let trusting = || {
        let mut command = Command::new(env!("CARGO_BIN_EXE_sessiond"));
        command.env("SSL_CERT_FILE", &ca);
        command
    };

    // Act
    let add = sessiond_with(
        trusting(),
        &url,
        "tls:",
        &["user", "add", "dana", "--password-stdin"],
        "a long password\n",
    );
    let disable = sessiond_with(trusting(), &url, "tls:", &["user", "disable", "dana"], "");
    let untrusting = sessiond_with(
        {
            let mut command = Command::new(env!("CARGO_BIN_EXE_sessiond"));
            command
                .env("SSL_CERT_FILE", "/nonexistent/ca.crt")
                .env("SSL_CERT_DIR", "/nonexistent");
            command
        },
        &url,
        "tls:",
        &["user", "disable", "dana"],
        "",
    );

    // Assert: the store works over TLS, and a server the client cannot verify is refused.
    assert!(
        add.status.success(),
        "{}",
        String::from_utf8_lossy(&add.stderr)
    );
    assert!(
        disable.status.success(),
        "{}",
        String::from_utf8_lossy(&disable.stderr)
    );
    assert!(!untrusting.status.success());
}

#[actix_web::test]
async fn expected_flows_are_not_logged_as_errors() {
    // Arrange: the real binary, logging at DEBUG, on a port of its own.
    let port = super::redis_server::free_port();
    let mut server = Command::new(env!("CARGO_BIN_EXE_sessiond"))
        .args(["--config", "/nonexistent/sessiond.toml", "serve"])
        .env("SESSIOND__STORE__URL", "memory://")
        .env("SESSIOND__SERVER__BIND", format!("127.0.0.1:{port}"))
        .env("RUST_LOG", "debug,actix_server=info,h2=info,hyper=info")
        .env("NO_COLOR", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the sessiond binary runs");
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while http.get(format!("{base}/healthz")).send().await.is_err() {
        assert!(
            std::time::Instant::now() < deadline,
            "the server did not start"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }

    // Act: what anonymous visitors do all day.
    let page = http.get(format!("{base}/admin")).send().await.unwrap();
    let api = http.get(format!("{base}/api/me")).send().await.unwrap();
    let unknown = http
        .get(format!("{base}/api/nothing"))
        .send()
        .await
        .unwrap();
    server.kill().unwrap();
    let output = server.wait_with_output().unwrap();
    let log = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );

    // Assert: answered as usual, never logged as errors (nor as the framework's "error
    // encountered" warnings), yet logged at DEBUG.
    assert_eq!(page.status(), 303);
    assert_eq!(api.status(), 401);
    assert_eq!(unknown.status(), 404);
    let loud: Vec<&str> = log
        .lines()
        .filter(|l| l.contains(" ERROR ") || l.contains("Error encountered"))
        .collect();
    assert!(loud.is_empty(), "{loud:#?}");
    assert!(
        log.lines()
            .any(|l| l.contains(" DEBUG ") && l.contains("not signed in")),
        "{log}"
    );
}

/// Puts `name` back the way versions before the tagged key schema kept a user: the record at
/// `{p}u:{name}` without a `name` field, on a store not yet migrated.
async fn downgrade(app: &super::helpers::TestApp, conn: &mut redis::Connection, name: &str) {
    let prefix = &app.settings.store.key_prefix;
    let tag = app.store.user_tag(name).await.unwrap();
    let _: () = redis::cmd("RENAME")
        .arg(format!("{prefix}{{{tag}}}u"))
        .arg(format!("{prefix}u:{name}"))
        .query(conn)
        .unwrap();
    let _: () = redis::cmd("HDEL")
        .arg(format!("{prefix}u:{name}"))
        .arg("name")
        .query(conn)
        .unwrap();
    let _: () = redis::cmd("DEL")
        .arg(format!("{prefix}users:tagged:v2"))
        .arg(format!("{prefix}admins"))
        .query(conn)
        .unwrap();
}

#[actix_web::test]
async fn migrate_moves_user_records_to_their_tagged_keys() {
    // Arrange: bob (an admin) and carol as the previous key schema kept them; carol's new key
    // is held by another name, as a tag collision would leave it.
    let redis = Arc::new(RedisServer::start());
    let url = redis.url();
    let app = spawn_app_on(Some(redis.clone()), |s| s.store.key_prefix = "mig:".into()).await;
    app.create_user("bob", &["admin"]).await;
    app.create_user("carol", &[]).await;
    let mut conn = redis.connection().unwrap();
    downgrade(&app, &mut conn, "bob").await;
    downgrade(&app, &mut conn, "carol").await;
    let carol_tag = app.store.user_tag("carol").await.unwrap();
    let _: () = redis::cmd("HSET")
        .arg(format!("mig:{{{carol_tag}}}u"))
        .arg("name")
        .arg("zed")
        .query(&mut conn)
        .unwrap();
    let _: String = redis::cmd("PING").query(&mut conn).unwrap();
    assert_ne!(
        app.browser()
            .login("bob", super::helpers::PASSWORD)
            .await
            .status,
        303,
        "before the migration bob's record is where this version does not look"
    );

    // Act
    let first = sessiond(&url, "mig:", &["migrate"], "");
    let again = sessiond(&url, "mig:", &["migrate"], "");

    // Assert
    let out = String::from_utf8_lossy(&first.stdout);
    assert!(
        first.status.success(),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    assert!(out.contains("moved 1 user record(s)"), "{out}");
    assert!(out.contains("carol"), "the collision is named: {out}");
    assert!(
        String::from_utf8_lossy(&again.stdout).contains("moved 0 user record(s)"),
        "idempotent"
    );
    let bob = app.browser();
    assert_eq!(bob.login("bob", super::helpers::PASSWORD).await.status, 303);
    assert_eq!(
        bob.get("/admin").await.status,
        200,
        "roles and the admin set kept"
    );
    let legacy: bool = redis::cmd("EXISTS")
        .arg("mig:u:bob")
        .query(&mut conn)
        .unwrap();
    assert!(!legacy, "the old copy is gone");
    let kept: bool = redis::cmd("EXISTS")
        .arg("mig:u:carol")
        .query(&mut conn)
        .unwrap();
    assert!(kept, "a record that could not move stays where it was");
}

#[actix_web::test]
async fn the_first_start_on_an_unmigrated_store_migrates_it() {
    // Arrange
    let redis = Arc::new(RedisServer::start());
    let old = spawn_app_on(Some(redis.clone()), |s| s.store.key_prefix = "up:".into()).await;
    old.create_user("dora", &[]).await;
    let mut conn = redis.connection().unwrap();
    downgrade(&old, &mut conn, "dora").await;

    // Act: the upgraded version starts on the same store.
    let new = spawn_app_on(Some(redis.clone()), |s| s.store.key_prefix = "up:".into()).await;

    // Assert: no command was needed.
    assert_eq!(
        new.browser()
            .login("dora", super::helpers::PASSWORD)
            .await
            .status,
        303
    );
}

//! sessiond as the forward-auth portal of another app, through the real proxies: Caddy
//! (`forward_auth`) and nginx (`auth_request`), run from Debian's packages with the very
//! snippets in `deploy/`, in front of a tiny app that shows the `Remote-User` it is given, and
//! a headless Chromium that maps `*.sessiond.test` to this machine. An anonymous visit lands on
//! sessiond's login, comes back signed in, and the app sees who; an admin's revoke sends the
//! next page view to the login again; a demoted user gets 403 on the next request; a client
//! cannot pass its own `Remote-User` to the app.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use fantoccini::Locator;

use super::browser::{ChromeDriver, click};
use super::helpers::{Backend, PASSWORD, TestApp, spawn_app_with};
use super::redis_server::{free_port, require_binary};
use sessiond::config::{PolicySetting, RuleSetting};

const DOMAIN: &str = "sessiond.test";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ProxyKind {
    Caddy,
    Nginx,
}

/// The app behind the proxy: says who the proxy told it is signed in.
async fn start_upstream() -> u16 {
    async fn page(req: HttpRequest) -> HttpResponse {
        let header = |name| {
            req.headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .filter(|v| !v.is_empty())
                .unwrap_or("nobody")
                .to_owned()
        };
        HttpResponse::Ok().content_type("text/html").body(format!(
            "<!doctype html><title>app</title><p id=\"who\">hello {}</p><p id=\"groups\">{}</p><p id=\"path\">{}</p>",
            header("remote-user"),
            header("remote-groups"),
            req.path()
        ))
    }
    let port = free_port();
    let server = HttpServer::new(|| App::new().default_service(web::to(page)))
        .workers(1)
        .bind(("127.0.0.1", port))
        .expect("the upstream app binds")
        .run();
    actix_web::rt::spawn(server);
    port
}

struct Proxy {
    child: Child,
    dir: PathBuf,
}

impl Drop for Proxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn deploy_file(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("deploy")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The shipped snippet with this test's hosts and ports.
fn localize(snippet: &str, port: u16, sessiond: u16, upstream: u16) -> String {
    snippet
        .replace("127.0.0.1:8080", &format!("127.0.0.1:{sessiond}"))
        .replace("127.0.0.1:3000", &format!("127.0.0.1:{upstream}"))
        .replace("listen 443 ssl;", &format!("listen 127.0.0.1:{port} ssl;"))
        .replace(
            "auth.example.com {",
            &format!("https://auth.{DOMAIN}:{port} {{"),
        )
        .replace(
            "app.example.com {",
            &format!("https://app.{DOMAIN}:{port} {{"),
        )
        .replace("example.com", DOMAIN)
}

/// Starts the proxy and waits until it listens, without blocking the test's runtime (the app's
/// first Redis connection lives on it).
async fn start_proxy(kind: ProxyKind, port: u16, sessiond: u16, upstream: u16) -> Proxy {
    let dir = std::env::temp_dir().join(format!("sessiond-proxy-{}-{port}", std::process::id()));
    std::fs::create_dir_all(dir.join("tmp")).unwrap();
    let child = match kind {
        ProxyKind::Caddy => {
            require_binary("caddy", "caddy");
            let global = format!(
                "{{\n\tadmin off\n\tauto_https disable_redirects\n\tlocal_certs\n\tskip_install_trust\n\
                 \thttp_port {}\n\thttps_port {port}\n}}\n\n",
                free_port()
            );
            let config = global + &localize(&deploy_file("Caddyfile"), port, sessiond, upstream);
            std::fs::write(dir.join("Caddyfile"), config).unwrap();
            Command::new("caddy")
                .args(["run", "--adapter", "caddyfile", "--config"])
                .arg(dir.join("Caddyfile"))
                .env("HOME", &dir)
                .env("XDG_DATA_HOME", &dir)
                .env("XDG_CONFIG_HOME", &dir)
                .stdout(Stdio::null())
                .stderr(std::fs::File::create(dir.join("caddy.log")).unwrap())
                .spawn()
                .expect("caddy starts")
        }
        ProxyKind::Nginx => {
            require_binary("nginx", "nginx");
            require_binary("openssl", "openssl");
            let status = Command::new("openssl")
                .args([
                    "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                ])
                .args(["-subj", &format!("/CN={DOMAIN}")])
                .args(["-addext", &format!("subjectAltName=DNS:*.{DOMAIN}")])
                .args(["-keyout", "privkey.pem", "-out", "fullchain.pem"])
                .current_dir(&dir)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .expect("openssl runs");
            assert!(status.success(), "openssl could not make a certificate");
            let servers = localize(
                &deploy_file("nginx-sessiond.conf"),
                port,
                sessiond,
                upstream,
            )
            .replace(
                &format!("/etc/ssl/{DOMAIN}/"),
                &format!("{}/", dir.display()),
            );
            let d = dir.display();
            let config = format!(
                "worker_processes 1;\npid {d}/nginx.pid;\nerror_log {d}/error.log;\n\
                 events {{ worker_connections 128; }}\n\
                 http {{\n  access_log {d}/access.log;\n\
                 client_body_temp_path {d}/tmp/body;\n  proxy_temp_path {d}/tmp/proxy;\n\
                 fastcgi_temp_path {d}/tmp/fastcgi;\n  uwsgi_temp_path {d}/tmp/uwsgi;\n\
                 scgi_temp_path {d}/tmp/scgi;\n{servers}\n}}\n"
            );
            std::fs::write(dir.join("nginx.conf"), config).unwrap();
            Command::new("nginx")
                .args(["-e", &format!("{d}/error.log"), "-g", "daemon off;", "-p"])
                .arg(&dir)
                .arg("-c")
                .arg(dir.join("nginx.conf"))
                .stdout(Stdio::null())
                .stderr(std::fs::File::create(dir.join("nginx.log")).unwrap())
                .spawn()
                .expect("nginx starts")
        }
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    while tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .is_err()
    {
        assert!(
            Instant::now() < deadline,
            "{kind:?} did not listen; its log is in {}",
            dir.display()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Proxy { child, dir }
}

fn rule(resources: &[&str], policy: PolicySetting) -> RuleSetting {
    RuleSetting {
        domain: vec![format!("app.{DOMAIN}")],
        resources: resources.iter().map(|r| r.to_string()).collect(),
        methods: Vec::new(),
        policy,
    }
}

/// sessiond, the app and the proxy, on ports of their own.
async fn portal(kind: ProxyKind) -> (TestApp, Proxy, u16) {
    let port = free_port();
    let app = spawn_app_with(Backend::Redis, |s| {
        s.server.public_url = format!("https://auth.{DOMAIN}:{port}");
        s.session.cookie_domain = DOMAIN.into();
        s.authz.rules = vec![
            rule(&["^/public/"], PolicySetting::Named("bypass".into())),
            rule(&["^/admin/"], PolicySetting::Roles(vec!["admin".into()])),
            rule(&[], PolicySetting::Named("authenticated".into())),
            RuleSetting {
                domain: vec![format!("*.{DOMAIN}")],
                resources: Vec::new(),
                methods: Vec::new(),
                policy: PolicySetting::Named("authenticated".into()),
            },
        ];
    })
    .await;
    let sessiond: u16 = app.address.rsplit(':').next().unwrap().parse().unwrap();
    let upstream = start_upstream().await;
    let proxy = start_proxy(kind, port, sessiond, upstream).await;
    (app, proxy, port)
}

async fn text(browser: &fantoccini::Client, id: &str) -> String {
    let found = browser
        .wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::Id(id))
        .await;
    match found {
        Ok(element) => element.text().await.unwrap(),
        Err(e) => panic!(
            "no #{id} ({e}) at {}:\n{}",
            browser.current_url().await.unwrap(),
            browser.source().await.unwrap_or_default()
        ),
    }
}

async fn sign_in(browser: &fantoccini::Client, name: &str) {
    let field = browser
        .wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::Id("username"))
        .await
        .expect("the login form");
    field.send_keys(name).await.unwrap();
    browser
        .find(Locator::Id("password"))
        .await
        .unwrap()
        .send_keys(PASSWORD)
        .await
        .unwrap();
    click(browser, Locator::Css("button[type=submit]")).await;
}

async fn the_browser_flow(kind: ProxyKind) {
    // Arrange
    let (app, proxy, port) = portal(kind).await;
    app.create_user("alice", &["admin", "viewer"]).await;
    let driver = ChromeDriver::start();
    let browser = driver
        .browser_with(&[
            format!("--host-resolver-rules=MAP *.{DOMAIN} 127.0.0.1"),
            "--ignore-certificate-errors".into(),
        ])
        .await;
    let app_url = |path: &str| format!("https://app.{DOMAIN}:{port}{path}");

    // Act: an anonymous visit to the app.
    browser.goto(&app_url("/docs?page=2")).await.unwrap();

    // Assert: on sessiond's login page, which names the app.
    let url = browser.current_url().await.unwrap();
    assert_eq!(
        url.host_str(),
        Some(format!("auth.{DOMAIN}").as_str()),
        "{kind:?}: {url}"
    );
    assert_eq!(url.path(), "/login");
    let source = browser.source().await.unwrap();
    assert!(source.contains(&format!(
        "Sign in to continue to <strong>app.{DOMAIN}</strong>"
    )));

    // Act: sign in.
    sign_in(&browser, "alice").await;

    // Assert: back on the page asked for, and the app knows who.
    assert_eq!(text(&browser, "who").await, "hello alice", "{kind:?}");
    assert_eq!(text(&browser, "groups").await, "admin,viewer");
    let url = browser.current_url().await.unwrap();
    assert_eq!((url.path(), url.query()), ("/docs", Some("page=2")));
    browser.goto(&app_url("/admin/panel")).await.unwrap();
    assert_eq!(text(&browser, "path").await, "/admin/panel");

    // Act + Assert: demoted, the next request to the admin area is refused, not redirected.
    app.set_roles("alice", &["viewer"]).await;
    browser.goto(&app_url("/admin/panel")).await.unwrap();
    let source = browser.source().await.unwrap();
    assert!(!source.contains("hello alice"), "{kind:?}: {source}");
    assert!(
        source.to_lowercase().contains("forbidden"),
        "{kind:?}: {source}"
    );
    assert_eq!(
        browser.current_url().await.unwrap().host_str(),
        Some(format!("app.{DOMAIN}").as_str())
    );

    // Act + Assert: an admin ends her sessions; the next page view lands on the login again.
    browser.goto(&app_url("/docs")).await.unwrap();
    assert_eq!(text(&browser, "who").await, "hello alice");
    app.operator().revoke_all("alice", None).await.unwrap();
    browser.goto(&app_url("/docs")).await.unwrap();
    let url = browser.current_url().await.unwrap();
    assert_eq!(
        url.host_str(),
        Some(format!("auth.{DOMAIN}").as_str()),
        "{kind:?}: {url}"
    );
    assert_eq!(url.path(), "/login");

    browser.close().await.unwrap();
    drop(proxy);
}

/// A client's own `Remote-User` never reaches the app, even where sessiond lets anyone in.
async fn spoofing_is_stripped(kind: ProxyKind, port: u16) {
    require_binary("curl", "curl");
    let output = tokio::process::Command::new("curl")
        .args(["--max-time", "20"])
        .args([
            "-sk",
            "--resolve",
            &format!("app.{DOMAIN}:{port}:127.0.0.1"),
        ])
        .args(["-H", "Remote-User: admin", "-H", "Remote-Groups: admin"])
        .arg(format!("https://app.{DOMAIN}:{port}/public/page"))
        .output()
        .await
        .expect("curl runs");
    let body = String::from_utf8_lossy(&output.stdout);
    assert!(body.contains("hello nobody"), "{kind:?}: {body}");
    assert!(!body.contains("admin"), "{kind:?}: {body}");
}

#[actix_web::test]
async fn caddy_forward_auth_signs_in_passes_the_user_and_applies_revocation_at_once() {
    the_browser_flow(ProxyKind::Caddy).await;
}

#[actix_web::test]
async fn nginx_auth_request_signs_in_passes_the_user_and_applies_revocation_at_once() {
    the_browser_flow(ProxyKind::Nginx).await;
}

/// A signed-in viewer asks for the app's admin area with the absolute request line naming the
/// app and a `Host` header naming another host where any signed-in person may go: the proxy
/// serves the app, so sessiond must judge the app's rules, not the `Host` header's.
async fn host_confusion_is_judged_on_the_served_host(kind: ProxyKind, app: &TestApp, port: u16) {
    app.create_user("bob", &["viewer"]).await;
    let bob = app.browser();
    assert_eq!(bob.login("bob", PASSWORD).await.status, 303);
    let cookie = bob
        .jar()
        .get("__Secure-sid")
        .cloned()
        .expect("bob's session cookie");
    let output = tokio::process::Command::new("curl")
        .args(["-sk", "--max-time", "20", "-w", "\n%{http_code}"])
        .args(["--resolve", &format!("app.{DOMAIN}:{port}:127.0.0.1")])
        .args([
            "--request-target",
            &format!("https://app.{DOMAIN}:{port}/admin/x"),
        ])
        .args(["-H", &format!("Host: wiki.{DOMAIN}:{port}")])
        .args(["-H", &format!("Cookie: __Secure-sid={cookie}")])
        .arg(format!("https://app.{DOMAIN}:{port}/"))
        .output()
        .await
        .expect("curl runs");
    let answer = String::from_utf8_lossy(&output.stdout).to_string();
    eprintln!("{kind:?} host confusion: {answer:?}");
    // Refused (403), or not served at all: never the app's admin page.
    assert!(
        !answer.contains("hello bob"),
        "{kind:?}: a viewer reached the admin area: {answer}"
    );
}

#[actix_web::test]
async fn neither_proxy_lets_a_client_send_its_own_remote_user_or_confuse_the_host() {
    for kind in [ProxyKind::Caddy, ProxyKind::Nginx] {
        let (app, proxy, port) = portal(kind).await;
        spoofing_is_stripped(kind, port).await;
        host_confusion_is_judged_on_the_served_host(kind, &app, port).await;
        drop(proxy);
    }
}

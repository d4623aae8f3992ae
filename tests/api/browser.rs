//! A real headless Chromium, driven through chromedriver, logs in and out through the forms.

use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;

use super::helpers::{Backend, PASSWORD, spawn_app};
use super::redis_server::{free_port, require_binary};

pub struct ChromeDriver {
    port: u16,
    child: Child,
    profile: std::path::PathBuf,
    browsers: std::sync::atomic::AtomicUsize,
}

impl ChromeDriver {
    pub fn start() -> ChromeDriver {
        require_binary("chromium", "chromium");
        require_binary("chromedriver", "chromium-driver");
        let port = free_port();
        let child = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver starts");
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "chromedriver did not listen");
            std::thread::sleep(Duration::from_millis(50));
        }
        let profile = std::env::temp_dir().join(format!("sessiond-chromium-{port}"));
        ChromeDriver {
            port,
            child,
            profile,
            browsers: std::sync::atomic::AtomicUsize::new(0),
        }
    }

    /// A new Chromium with a fresh profile of its own: no cookies shared with the others.
    async fn browser(&self) -> fantoccini::Client {
        self.browser_with(&[]).await
    }

    /// The same, with more command-line switches (host mapping, certificates).
    pub async fn browser_with(&self, extra: &[String]) -> fantoccini::Client {
        let n = self
            .browsers
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let profile = self.profile.join(n.to_string());
        let mut args: Vec<String> = [
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            "--disable-quic",
        ]
        .map(str::to_owned)
        .to_vec();
        args.push(format!("--user-data-dir={}", profile.display()));
        args.extend(extra.iter().cloned());
        let mut capabilities = serde_json::Map::new();
        capabilities.insert(
            "goog:chromeOptions".into(),
            serde_json::json!({ "binary": "/usr/bin/chromium", "args": args }),
        );
        ClientBuilder::new(HttpConnector::new())
            .capabilities(capabilities)
            .connect(&format!("http://127.0.0.1:{}", self.port))
            .await
            .expect("a Chromium session")
    }
}

impl Drop for ChromeDriver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        // A test that failed before closing its browser leaves Chromium running on its own.
        let _ = Command::new("pkill")
            .arg("-f")
            .arg(self.profile.display().to_string())
            .status();
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}

#[actix_web::test]
async fn a_person_logs_in_sees_their_name_logs_out_and_cannot_go_back() {
    // Arrange
    let app = spawn_app(Backend::Redis).await;
    app.create_user("alice", &["admin"]).await;
    let driver = ChromeDriver::start();
    let browser = driver.browser().await;

    // Act: open a protected page, get sent to the form, log in.
    browser
        .goto(&format!("{}/admin", app.address))
        .await
        .unwrap();
    assert_eq!(browser.current_url().await.unwrap().path(), "/login");
    browser
        .find(Locator::Id("username"))
        .await
        .unwrap()
        .send_keys("alice")
        .await
        .unwrap();
    browser
        .find(Locator::Id("password"))
        .await
        .unwrap()
        .send_keys(PASSWORD)
        .await
        .unwrap();
    click(&browser, Locator::Css("button[type=submit]")).await;

    // Assert: back on the page asked for, signed in; the Secure cookie works on loopback HTTP.
    browser
        .wait()
        .for_element(Locator::Id("admin-user"))
        .await
        .unwrap();
    assert_eq!(browser.current_url().await.unwrap().path(), "/admin");
    let cookie = browser
        .get_named_cookie("__Host-sid")
        .await
        .expect("session cookie");
    assert_eq!(cookie.secure(), Some(true));
    assert_eq!(cookie.http_only(), Some(true));
    browser.goto(&format!("{}/", app.address)).await.unwrap();
    let name = browser
        .find(Locator::Id("username"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(name, "alice");

    // Act: log out from the admin page, then press Back.
    browser
        .goto(&format!("{}/admin", app.address))
        .await
        .unwrap();
    click(&browser, Locator::Id("nav-logout")).await;
    browser
        .wait()
        .for_element(Locator::Id("password"))
        .await
        .unwrap();
    assert_eq!(browser.current_url().await.unwrap().path(), "/login");
    browser.back().await.unwrap();

    // Assert: the protected page is not shown from cache; the browser lands on the login form.
    let url = browser.current_url().await.unwrap();
    assert_eq!(url.path(), "/login");
    assert_eq!(url.query(), Some("next=%2Fadmin"));
    assert!(browser.find(Locator::Id("password")).await.is_ok());
    browser.close().await.unwrap();
}

#[actix_web::test]
async fn an_admin_revokes_and_demotes_a_user_in_another_browser() {
    // Arrange: two independent Chromium sessions, an admin and a user with role "admin" too
    // (so that removing it has a page to lose), both signed in through the form.
    let app = spawn_app(Backend::Redis).await;
    app.create_user("boss", &["admin"]).await;
    app.create_user("alice", &["admin", "editor"]).await;
    let driver = ChromeDriver::start();
    let admin = driver.browser().await;
    let user = driver.browser().await;
    for (browser, name) in [(&admin, "boss"), (&user, "alice")] {
        sign_in(browser, &app.address, name).await;
    }

    // Act: the admin removes alice's admin role on her page.
    admin
        .goto(&format!("{}/admin/users/alice", app.address))
        .await
        .unwrap();
    assert!(is_checked(&admin, "role-admin").await);
    assert!(is_checked(&admin, "role-editor").await);
    click(&admin, Locator::Id("role-admin")).await;
    click(&admin, Locator::Id("save-roles")).await;
    admin
        .wait()
        .for_element(Locator::Css(".notice"))
        .await
        .unwrap();
    let saved = admin
        .find(Locator::Id("roles"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(saved, "editor");

    // Assert: alice's next visit to the admin area is refused.
    user.goto(&format!("{}/admin", app.address)).await.unwrap();
    let heading = user
        .find(Locator::Css("h1"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(heading, "Forbidden");

    // Act: the admin revokes alice's session from the dashboard.
    admin
        .goto(&format!("{}/admin/users/alice", app.address))
        .await
        .unwrap();
    click(&admin, Locator::Css("button[data-handle]")).await;
    let notice = wait_for_text(&admin, Locator::Css(".notice")).await;
    assert_eq!(notice, "Ended a session of alice.");

    // Assert: alice's next page load lands on the login page.
    user.goto(&format!("{}/account/sessions", app.address))
        .await
        .unwrap();
    assert_eq!(user.current_url().await.unwrap().path(), "/login");
    assert!(user.find(Locator::Id("password")).await.is_ok());
    admin.close().await.unwrap();
    user.close().await.unwrap();
}

/// Signs in through the login form, as a person would, and waits for the home page.
#[actix_web::test]
async fn the_login_page_says_why_you_are_there() {
    // Arrange: alice and an admin, each in a browser of their own.
    let app = spawn_app(Backend::Redis).await;
    app.create_user("boss", &["admin"]).await;
    app.create_user("alice", &[]).await;
    let driver = ChromeDriver::start();
    let admin = driver.browser().await;
    let alice = driver.browser().await;
    sign_in(&admin, &app.address, "boss").await;
    sign_in(&alice, &app.address, "alice").await;
    let alice_page = format!("{}/admin/users/alice", app.address);

    // Act: the admin ends all of alice's sessions (a confirmed action); alice opens a page.
    admin.goto(&alice_page).await.unwrap();
    click(&admin, Locator::Id("revoke-all")).await;
    wait_for_text(&admin, Locator::Id("confirm-question")).await;
    click(&admin, Locator::Id("confirm")).await;
    wait_for_text(&admin, Locator::Css(".notice")).await;
    alice
        .goto(&format!("{}/account/sessions", app.address))
        .await
        .unwrap();
    let ended = wait_for_text(&alice, Locator::Css(".notice")).await;

    // Assert: told why, and signing in goes where she was going.
    assert_eq!(ended, "Your session was ended. Sign in again to continue.");
    assert_eq!(alice.current_url().await.unwrap().path(), "/login");
    fill(&alice, "username", "alice").await;
    fill(&alice, "password", PASSWORD).await;
    click(&alice, Locator::Css("button[type=submit]")).await;
    alice
        .wait()
        .for_element(Locator::Id("nav-logout"))
        .await
        .unwrap();
    assert_eq!(
        alice.current_url().await.unwrap().path(),
        "/account/sessions"
    );

    // Act + Assert: signing out says so.
    click(&alice, Locator::Id("nav-logout")).await;
    let signed_out = wait_for_text(&alice, Locator::Css(".notice")).await;
    assert_eq!(signed_out, "You signed out.");

    // Act: the admin disables alice; she tries her (right) password.
    admin.goto(&alice_page).await.unwrap();
    click(&admin, Locator::Id("toggle-disabled")).await;
    wait_for_text(&admin, Locator::Id("confirm-question")).await;
    click(&admin, Locator::Id("confirm")).await;
    wait_for_text(&admin, Locator::Css(".notice")).await;
    fill(&alice, "username", "alice").await;
    fill(&alice, "password", PASSWORD).await;
    click(&alice, Locator::Css("button[type=submit]")).await;
    let refused = wait_for_text(&alice, Locator::Css(".error")).await;

    // Assert: only the right password learns the account is disabled.
    assert_eq!(
        refused,
        "This account is disabled. Ask an administrator to enable it."
    );
    fill(&alice, "password", "not her password").await;
    click(&alice, Locator::Css("button[type=submit]")).await;
    // The page before had an error too: wait for the new page's text.
    let wrong = wait_for_exact_text(&alice, ".error", "Invalid user name or password.").await;
    assert_eq!(wrong, "Invalid user name or password.");
    admin.close().await.unwrap();
    alice.close().await.unwrap();
}

async fn sign_in(browser: &fantoccini::Client, address: &str, name: &str) {
    browser.goto(&format!("{address}/login")).await.unwrap();
    fill(browser, "username", name).await;
    fill(browser, "password", PASSWORD).await;
    click(browser, Locator::Css("button[type=submit]")).await;
    browser
        .wait()
        .for_element(Locator::Id("nav-logout"))
        .await
        .unwrap();
    assert_eq!(browser.current_url().await.unwrap().path(), "/");
}

async fn fill(browser: &fantoccini::Client, id: &str, text: &str) {
    let field = browser.find(Locator::Id(id)).await.unwrap();
    field.clear().await.unwrap();
    field.send_keys(text).await.unwrap();
}

async fn value_of(browser: &fantoccini::Client, id: &str) -> String {
    browser
        .find(Locator::Id(id))
        .await
        .unwrap()
        .prop("value")
        .await
        .unwrap()
        .unwrap_or_default()
}

#[actix_web::test]
async fn destructive_actions_ask_first_reloading_repeats_nothing_and_refused_forms_keep_fields() {
    // Arrange
    let app = spawn_app(Backend::Redis).await;
    app.create_user("boss", &["admin"]).await;
    app.create_user("gina", &["editor"]).await;
    let driver = ChromeDriver::start();
    let admin = driver.browser().await;
    sign_in(&admin, &app.address, "boss").await;

    // Act: start disabling gina, then think better of it.
    admin
        .goto(&format!("{}/admin/users/gina", app.address))
        .await
        .unwrap();
    click(&admin, Locator::Id("toggle-disabled")).await;
    let question = wait_for_text(&admin, Locator::Id("confirm-question")).await;
    click(&admin, Locator::Id("cancel")).await;
    let status = wait_for_text(&admin, Locator::Id("status")).await;

    // Assert: asked first, and Cancel changed nothing.
    assert!(question.starts_with("Disable gina?"), "{question}");
    assert_eq!(status, "active");
    assert_eq!(
        admin.current_url().await.unwrap().path(),
        "/admin/users/gina"
    );

    // Act: reset gina's password (confirmed), read it, reload the page.
    admin
        .goto(&format!("{}/admin/users/gina", app.address))
        .await
        .unwrap();
    click(&admin, Locator::Id("reset-password")).await;
    let question = wait_for_text(&admin, Locator::Id("confirm-question")).await;
    assert!(
        question.starts_with("Reset the password of gina?"),
        "{question}"
    );
    click(&admin, Locator::Id("confirm")).await;
    let password = wait_for_text(&admin, Locator::Id("new-password")).await;
    let shown_at = admin.current_url().await.unwrap();
    admin.refresh().await.unwrap();
    admin
        .wait()
        .for_element(Locator::Id("status"))
        .await
        .unwrap();
    let reloaded = admin.source().await.unwrap();

    // Assert: the password was shown on a GET page, once; the reload reset nothing, so the
    // password shown still works.
    assert_eq!(shown_at.path(), "/admin/users/gina");
    assert_eq!(shown_at.query(), None);
    assert!(!reloaded.contains("id=\"new-password\""));
    assert!(!reloaded.contains(&password));
    assert_eq!(
        reloaded.matches("password_reset").count(),
        1,
        "one reset in the audit trail"
    );
    let gina = app.browser();
    assert_eq!(gina.login("gina", &password).await.status, 303);

    // Act: create a user whose name is taken.
    admin
        .goto(&format!("{}/admin/users", app.address))
        .await
        .unwrap();
    fill(&admin, "name", "gina").await;
    fill(&admin, "password", "violet harbour lantern mist").await;
    click(&admin, Locator::Id("role-editor")).await;
    click(&admin, Locator::Id("role-viewer")).await;
    click(
        &admin,
        Locator::Css("form[action='/admin/users'][method='post'] button"),
    )
    .await;
    let error = wait_for_text(&admin, Locator::Id("name-error")).await;

    // Assert: the same form, filled in but the password, the reason by its field, and the
    // navigation still there.
    assert_eq!(error, "A user named gina already exists.");
    assert_eq!(value_of(&admin, "name").await, "gina");
    assert!(is_checked(&admin, "role-editor").await);
    assert!(is_checked(&admin, "role-viewer").await);
    assert!(!is_checked(&admin, "role-admin").await);
    assert_eq!(value_of(&admin, "password").await, "");
    assert!(admin.find(Locator::Id("nav-logout")).await.is_ok());
    admin.close().await.unwrap();
}

async fn is_checked(browser: &fantoccini::Client, id: &str) -> bool {
    browser
        .find(Locator::Id(id))
        .await
        .unwrap()
        .prop("checked")
        .await
        .unwrap()
        .as_deref()
        == Some("true")
}

pub async fn click(browser: &fantoccini::Client, locator: Locator<'_>) {
    browser.find(locator).await.unwrap().click().await.unwrap();
}

/// Waits for an element to appear and returns its text.
/// Waits until the element under `css` reads `expected` (a page may still be loading);
/// returns what it read last.
async fn wait_for_exact_text(browser: &fantoccini::Client, css: &str, expected: &str) -> String {
    let mut last = String::new();
    for _ in 0..200 {
        if let Ok(element) = browser.find(Locator::Css(css)).await
            && let Ok(text) = element.text().await
        {
            if text == expected {
                return text;
            }
            last = text;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    last
}

async fn wait_for_text(browser: &fantoccini::Client, locator: Locator<'_>) -> String {
    browser
        .wait()
        .for_element(locator)
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

/// Sets the size of the page's viewport (not of the window around it).
async fn viewport(browser: &fantoccini::Client, width: u32, height: u32) {
    browser.set_window_size(width, height).await.unwrap();
    let inner = browser
        .execute("return [window.innerWidth, window.innerHeight];", vec![])
        .await
        .unwrap();
    let dw = width as i64 - inner[0].as_i64().unwrap();
    let dh = height as i64 - inner[1].as_i64().unwrap();
    if dw != 0 || dh != 0 {
        browser
            .set_window_size((width as i64 + dw) as u32, (height as i64 + dh) as u32)
            .await
            .unwrap();
    }
}

/// (document width, viewport width) of the page on screen.
async fn widths(browser: &fantoccini::Client) -> (i64, i64) {
    let both = browser
        .execute(
            "return [document.documentElement.scrollWidth, window.innerWidth];",
            vec![],
        )
        .await
        .unwrap();
    (both[0].as_i64().unwrap(), both[1].as_i64().unwrap())
}

/// The pages whose screenshots the README shows, at both sizes.
const SCREENSHOTS: [&str; 5] = ["overview", "users", "user", "sessions", "account"];

#[actix_web::test]
async fn every_page_fits_a_phone_screen() {
    // Arrange: a deployment with some life in it.
    let app = spawn_app(Backend::Redis).await;
    app.create_user("boss", &["admin"]).await;
    app.create_user("alice", &["editor", "viewer"]).await;
    for i in 0..8 {
        app.create_user(&format!("user{i}"), &["viewer"]).await;
    }
    for agent in [
        "Mozilla/5.0 (iPhone; CPU iPhone OS 18_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.0 Mobile/15E148 Safari/604.1",
        "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/156.0 Safari/537.36",
    ] {
        let device = app.browser();
        device
            .send(
                device
                    .request(reqwest::Method::GET, "/login")
                    .header("user-agent", agent),
            )
            .await;
        device.login("alice", PASSWORD).await;
    }
    app.browser().login("alice", "a wrong guess").await;
    for _ in 0..app.settings.throttle.max_failures_per_account {
        app.browser().login("user3", "a wrong guess").await;
    }
    let driver = ChromeDriver::start();
    let admin = driver.browser().await;
    let anonymous = driver.browser().await;
    sign_in(&admin, &app.address, "boss").await;
    let pages = [
        ("overview", "/admin"),
        ("users", "/admin/users"),
        ("users-search", "/admin/users?q=ser"),
        ("user", "/admin/users/alice"),
        ("throttled-user", "/admin/users/user3"),
        ("sessions", "/admin/sessions"),
        ("sessions-several", "/admin/sessions?user=user"),
        ("audit", "/admin/audit"),
        ("audit-filtered", "/admin/audit?user=alice&action=login"),
        ("account", "/account/sessions"),
        ("home", "/"),
        ("reauth", "/account/reauth?next=/account/sessions"),
        ("not-found", "/no/such/page"),
    ];
    let save = std::env::var_os("UPDATE_SCREENSHOTS").is_some();
    let shots = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/screenshots");

    for (width, height) in [(1280, 900), (390, 844)] {
        viewport(&admin, width, height).await;
        viewport(&anonymous, width, height).await;
        // Act + Assert: no page is wider than the screen.
        for (name, path) in pages {
            admin.goto(&format!("{}{path}", app.address)).await.unwrap();
            let (page, screen) = widths(&admin).await;
            assert!(page <= screen, "{path} at {width} px: {page} > {screen}");
            if save && SCREENSHOTS.contains(&name) {
                std::fs::create_dir_all(&shots).unwrap();
                let png = admin.screenshot().await.unwrap();
                std::fs::write(shots.join(format!("{name}-{width}.png")), png).unwrap();
            }
        }
        // The confirmation page, and the login form as a stranger sees it.
        admin
            .goto(&format!("{}/admin/users/alice", app.address))
            .await
            .unwrap();
        click(&admin, Locator::Id("revoke-all")).await;
        wait_for_text(&admin, Locator::Id("confirm-question")).await;
        let (page, screen) = widths(&admin).await;
        assert!(
            page <= screen,
            "confirmation at {width} px: {page} > {screen}"
        );
        anonymous
            .goto(&format!("{}/login?next=%2Fadmin&why=ended", app.address))
            .await
            .unwrap();
        let (page, screen) = widths(&anonymous).await;
        assert!(page <= screen, "login at {width} px: {page} > {screen}");
        assert_eq!(screen, width as i64, "the viewport is the size asked for");
        let focused = anonymous
            .execute("return document.activeElement.id;", vec![])
            .await
            .unwrap();
        assert_eq!(focused, "username", "the login field has focus on load");
    }
    admin.close().await.unwrap();
    anonymous.close().await.unwrap();
}

//! Forward auth (`/api/authz/forward-auth` for Caddy and Traefik, `/api/authz/auth-request`
//! for nginx), asked directly as a proxy would ask: rules, answers, headers, trust, and the
//! login's way back (`rd`). The real proxies in front of a real app are in `proxies`.

use sessiond::auth::access::AccessRules;
use sessiond::config::{PolicySetting, RuleSetting, Settings};
use sessiond::startup::{Application, StartupError};

use super::helpers::{Backend, Browser, PASSWORD, Response, TestApp, spawn_app_with};

const APP: &str = "app.example.com";

fn rule(domain: &str, resources: &[&str], policy: PolicySetting) -> RuleSetting {
    RuleSetting {
        domain: vec![domain.into()],
        resources: resources.iter().map(|r| r.to_string()).collect(),
        methods: Vec::new(),
        policy,
    }
}

fn named(policy: &str) -> PolicySetting {
    PolicySetting::Named(policy.into())
}

/// `app.example.com`: `/public/` for anyone, `/admin/` for admins, the rest for anyone signed
/// in; `closed.example.com` for nobody; sessiond itself at `auth.example.com`.
fn portal(settings: &mut Settings) {
    settings.server.public_url = "https://auth.example.com".into();
    settings.session.cookie_domain = "example.com".into();
    settings.authz.rules = vec![
        rule(APP, &["^/public/"], named("bypass")),
        rule(
            APP,
            &["^/admin/"],
            PolicySetting::Roles(vec!["admin".into()]),
        ),
        rule(APP, &[], named("authenticated")),
        rule("closed.example.com", &[], named("deny")),
    ];
}

async fn portal_app(backend: Backend) -> TestApp {
    spawn_app_with(backend, portal).await
}

/// Caddy's and Traefik's question: may this browser have `method https://host uri`?
async fn forward_auth(
    browser: &Browser,
    method: &str,
    host: &str,
    uri: &str,
    html: bool,
) -> Response {
    let request = browser
        .request(reqwest::Method::GET, "/api/authz/forward-auth")
        .header("x-forwarded-proto", "https")
        .header("x-forwarded-host", host)
        .header("x-forwarded-uri", uri)
        .header("x-forwarded-method", method)
        .header(
            "accept",
            if html {
                "text/html,application/xhtml+xml"
            } else {
                "application/json"
            },
        );
    browser.send(request).await
}

/// What a browser ends up with: asked, and when sent to sign in, the login page visited (in
/// JWT mode it refreshes the tokens on sessiond's own host and sends the browser straight
/// back, as after a role change), then asked again.
async fn as_a_browser(browser: &Browser, host: &str, uri: &str) -> Response {
    let answer = forward_auth(browser, "GET", host, uri, true).await;
    let Some(login) = answer
        .header("location")
        .and_then(|l| l.strip_prefix("https://auth.example.com"))
        .map(str::to_owned)
    else {
        return answer;
    };
    let page = browser.get(&login).await;
    if page.status == 303 {
        forward_auth(browser, "GET", host, uri, true).await
    } else {
        answer
    }
}

/// nginx's question, from its `auth_request` subrequest.
async fn auth_request(browser: &Browser, url: &str) -> Response {
    let request = browser
        .request(reqwest::Method::GET, "/api/authz/auth-request")
        .header("x-original-url", url)
        .header("x-original-method", "GET")
        .header("accept", "text/html");
    browser.send(request).await
}

#[actix_web::test]
async fn anonymous_browsers_are_sent_to_sign_in_and_scripts_get_401() {
    for backend in [Backend::Memory, Backend::Redis] {
        // Arrange
        let app = portal_app(backend).await;
        let visitor = app.browser();
        let login =
            "https://auth.example.com/login?rd=https%3A%2F%2Fapp%2Eexample%2Ecom%2Fdocs%3Fpage%3D2";

        // Act
        let page = forward_auth(&visitor, "GET", APP, "/docs?page=2", true).await;
        let form_post = forward_auth(&visitor, "POST", APP, "/docs", true).await;
        let script = forward_auth(&visitor, "GET", APP, "/docs", false).await;
        let nginx = auth_request(&visitor, "https://app.example.com/docs?page=2").await;
        let public = forward_auth(&visitor, "GET", APP, "/public/logo.png", true).await;

        // Assert
        assert_eq!(page.status, 302, "{backend:?}");
        assert_eq!(page.header("location"), Some(login));
        assert_eq!(form_post.status, 303, "the browser must GET the login page");
        assert_eq!(script.status, 401);
        assert!(script.header("location").is_none());
        assert_eq!(
            nginx.status, 401,
            "nginx takes only 2xx, 401 and 403 from a subrequest"
        );
        assert_eq!(nginx.header("location"), Some(login));
        assert_eq!(public.status, 200);
        assert_eq!(
            public.header("remote-user"),
            Some(""),
            "bypass: nobody, said explicitly"
        );
    }
}

#[actix_web::test]
async fn signed_in_people_pass_with_who_they_are_and_roles_decide_the_rest() {
    for backend in [Backend::Memory, Backend::Redis, Backend::JwtDenylist] {
        // Arrange
        let app = portal_app(backend).await;
        let alice = app.logged_in("alice", &["editor", "viewer"]).await;

        // Act
        let page = forward_auth(&alice, "GET", APP, "/docs", true).await;
        let nginx = auth_request(&alice, "https://app.example.com/docs").await;
        let admin_only = forward_auth(&alice, "GET", APP, "/admin/users", true).await;
        let closed = forward_auth(&alice, "GET", "closed.example.com", "/", true).await;
        let unknown = forward_auth(&alice, "GET", "other.example.org", "/", true).await;

        // Assert
        assert_eq!(page.status, 200, "{backend:?}: {}", page.body);
        assert_eq!(page.header("remote-user"), Some("alice"));
        assert_eq!(page.header("remote-groups"), Some("editor,viewer"));
        assert_eq!(page.header("remote-name"), Some("alice"));
        assert_eq!(page.header("remote-email"), Some(""));
        assert_eq!(nginx.status, 200);
        assert_eq!(nginx.header("remote-user"), Some("alice"));
        assert_eq!(
            admin_only.status, 403,
            "signed in but not allowed: never a redirect"
        );
        assert!(admin_only.header("location").is_none());
        assert_eq!(closed.status, 403);
        assert_eq!(unknown.status, 403, "the default policy is deny");
    }
}

#[actix_web::test]
async fn revocation_role_changes_and_disabling_apply_to_the_apps_on_the_next_request() {
    for backend in [Backend::Memory, Backend::Redis, Backend::JwtDenylist] {
        // Arrange
        let app = portal_app(backend).await;
        let bob = app.logged_in("bob", &["viewer"]).await;
        let carol = app.logged_in("carol", &["viewer"]).await;
        assert_eq!(
            forward_auth(&bob, "GET", APP, "/admin/", true).await.status,
            403
        );

        // Act + Assert: a promotion lets bob in at once, a demotion shuts him out at once.
        app.set_roles("bob", &["viewer", "admin"]).await;
        // JWT mode refuses tokens issued in the second of a role change (the deny-list's
        // resolution); the browser's refresh comes a moment later.
        app.clock.advance(1);
        let promoted = as_a_browser(&bob, APP, "/admin/").await;
        assert_eq!(promoted.status, 200, "{backend:?}");
        assert_eq!(promoted.header("remote-groups"), Some("viewer,admin"));
        app.set_roles("bob", &["viewer"]).await;
        app.clock.advance(1);
        assert_eq!(as_a_browser(&bob, APP, "/admin/").await.status, 403);

        // Act + Assert: revoke-all and disable send them to sign in on the next request.
        app.operator().revoke_all("bob", None).await.unwrap();
        assert_eq!(
            forward_auth(&bob, "GET", APP, "/docs", true).await.status,
            302
        );
        app.set_disabled("carol", true).await;
        assert_eq!(
            forward_auth(&carol, "GET", APP, "/docs", false)
                .await
                .status,
            401
        );
    }
}

#[actix_web::test]
async fn a_forward_auth_question_costs_one_store_round_trip_and_none_from_the_near_cache() {
    for near_cache in [false, true] {
        // Arrange
        let app = spawn_app_with(Backend::Redis, |s| {
            portal(s);
            s.store.near_cache = near_cache;
        })
        .await;
        let alice = app.logged_in("alice", &[]).await;
        // Warm: the script cached in Redis, the session in the near-cache.
        for _ in 0..200 {
            let hits = app.metrics.near_cache.hits.get();
            assert_eq!(
                forward_auth(&alice, "GET", APP, "/", true).await.status,
                200
            );
            if !near_cache || app.metrics.near_cache.hits.get() > hits {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        let before = app.redis.as_ref().unwrap().command_calls();
        let fallbacks = app.metrics.near_cache.fallbacks.get();

        // Act
        for _ in 0..10 {
            assert_eq!(
                forward_auth(&alice, "GET", APP, "/", true).await.status,
                200
            );
        }

        // Assert: one load per question; from a warm near-cache, none (a request that found
        // its heartbeat late on a busy machine loads the normal way and is counted as such).
        let after = app.redis.as_ref().unwrap().command_calls();
        let evalsha = after.get("evalsha").copied().unwrap_or(0)
            - before.get("evalsha").copied().unwrap_or(0);
        let expected = if near_cache {
            app.metrics.near_cache.fallbacks.get() - fallbacks
        } else {
            10
        };
        assert_eq!(evalsha, expected, "near-cache {near_cache}: {after:?}");
    }
}

#[actix_web::test]
async fn malformed_or_missing_forwarded_headers_get_400_naming_them() {
    // Arrange
    let app = portal_app(Backend::Memory).await;
    let alice = app.logged_in("alice", &[]).await;
    let ask = |headers: Vec<(&'static str, &'static str)>, path: &'static str| {
        let mut request = alice.request(reqwest::Method::GET, path);
        for (name, value) in headers {
            request = request.header(name, value);
        }
        alice.send(request)
    };
    let good = [
        ("x-forwarded-proto", "https"),
        ("x-forwarded-host", APP),
        ("x-forwarded-uri", "/"),
        ("x-forwarded-method", "GET"),
    ];
    let without = |name: &str| {
        good.iter()
            .copied()
            .filter(|(n, _)| *n != name)
            .collect::<Vec<_>>()
    };
    let replaced = |name: &'static str, value: &'static str| {
        good.iter()
            .map(|&(n, v)| if n == name { (n, value) } else { (n, v) })
            .collect::<Vec<_>>()
    };

    // Act + Assert
    assert_eq!(
        ask(good.to_vec(), "/api/authz/forward-auth").await.status,
        200
    );
    for name in [
        "x-forwarded-proto",
        "x-forwarded-host",
        "x-forwarded-uri",
        "x-forwarded-method",
    ] {
        let answer = ask(without(name), "/api/authz/forward-auth").await;
        assert_eq!(answer.status, 400, "{name}");
        assert!(
            answer.body.to_ascii_lowercase().contains(name),
            "{}",
            answer.body
        );
    }
    for (name, value) in [
        ("x-forwarded-proto", "ftp"),
        ("x-forwarded-uri", "docs"),
        ("x-forwarded-uri", "//evil.com/"),
        ("x-forwarded-host", "evil.com/x"),
        ("x-forwarded-host", "user@app.example.com"),
        ("x-forwarded-host", "bad host"),
        ("x-forwarded-method", "get it"),
    ] {
        let answer = ask(replaced(name, value), "/api/authz/forward-auth").await;
        assert_eq!(answer.status, 400, "{name}: {value}");
    }
    for url in [
        "/relative",
        "ftp://app.example.com/",
        "https://u:p@app.example.com/",
        "not a url",
    ] {
        let answer = ask(
            vec![("x-original-url", url), ("x-original-method", "GET")],
            "/api/authz/auth-request",
        )
        .await;
        assert_eq!(answer.status, 400, "{url}");
    }
    let no_method = ask(
        vec![("x-original-url", "https://app.example.com/")],
        "/api/authz/auth-request",
    )
    .await;
    assert_eq!(no_method.status, 400);
}

#[actix_web::test]
async fn forwarded_headers_from_a_peer_outside_trusted_proxies_are_refused_or_ignored() {
    // Arrange: only 10.0.0.0/8 is trusted; the test client is 127.0.0.1.
    let app = spawn_app_with(Backend::Redis, |s| {
        portal(s);
        s.server.trusted_proxies = vec!["10.0.0.0/8".into()];
        s.server.trust_forwarded_for = true;
    })
    .await;
    app.create_user("alice", &[]).await;
    let alice = app.browser();
    let csrf = alice.get("/login").await.csrf();
    let login = alice
        .request(reqwest::Method::POST, "/login")
        .header("x-forwarded-for", "203.0.113.9")
        .form(&[
            ("username", "alice"),
            ("password", PASSWORD),
            ("csrf", csrf.as_str()),
        ]);
    assert_eq!(alice.send(login).await.status, 303);

    // Act
    let answer = forward_auth(&alice, "GET", APP, "/", true).await;
    let sessions = app.store.sessions_of("alice").await.unwrap();

    // Assert
    assert_eq!(answer.status, 400);
    assert!(answer.body.contains("trusted_proxies"), "{}", answer.body);
    assert_eq!(
        sessions[0].ip, "127.0.0.1",
        "X-Forwarded-For from an untrusted peer is ignored"
    );
}

#[actix_web::test]
async fn a_rule_set_that_cannot_be_right_stops_the_start_naming_the_rule() {
    // Arrange
    let mut settings = super::helpers::test_settings();
    settings.authz.rules = vec![
        rule(APP, &[], named("bypass")),
        rule(APP, &["^/(unclosed"], named("bypass")),
    ];

    // Act
    let started = Application::build(settings).await;

    // Assert
    let Err(StartupError::Authz(message)) = started else {
        panic!("the start must fail on the rules");
    };
    assert!(
        message.contains("rule 1") && message.contains("regex"),
        "{message}"
    );
    assert!(AccessRules::compile(&named("deny"), &[]).is_ok());
}

#[actix_web::test]
async fn login_returns_to_the_app_only_when_rd_is_one_of_ours() {
    // Arrange
    let app = portal_app(Backend::Memory).await;
    app.create_user("alice", &[]).await;
    let alice = app.browser();

    // Act
    let form = alice
        .get("/login?rd=https%3A%2F%2Fapp.example.com%2Fdocs%3Fp%3D1")
        .await;
    let csrf = form.csrf();
    let back = alice
        .post_form(
            "/login",
            &[
                ("username", "alice"),
                ("password", PASSWORD),
                ("csrf", &csrf),
                ("rd", "https://app.example.com/docs?p=1"),
            ],
        )
        .await;
    let signed_in_again = alice
        .get("/login?rd=https%3A%2F%2Fwiki.example.com%2F")
        .await;

    // Assert
    assert!(
        form.body
            .contains("Sign in to continue to <strong>app.example.com</strong>"),
        "{}",
        form.body
    );
    let policy = form.header("content-security-policy").unwrap();
    assert!(
        policy.contains("form-action 'self' https://app.example.com;"),
        "browsers apply form-action to the redirect back: {policy}"
    );
    assert_eq!(back.status, 303);
    assert_eq!(
        back.header("location"),
        Some("https://app.example.com/docs?p=1")
    );
    let cookie = back
        .set_cookies()
        .into_iter()
        .find(|c| c.name() == "__Secure-sid")
        .expect("a domain cookie is __Secure-");
    assert_eq!(cookie.domain(), Some("example.com"));
    assert_eq!(cookie.http_only(), Some(true));
    assert_eq!(cookie.secure(), Some(true));
    assert_eq!(signed_in_again.status, 303);
    assert_eq!(
        signed_in_again.header("location"),
        Some("https://wiki.example.com/")
    );
}

#[actix_web::test]
async fn login_goes_home_when_rd_points_anywhere_else() {
    for evil in [
        "https://evil.com/",
        "//evil.com",
        "https://example.com@evil.com/",
        "https://app.example.com.evil.com/",
        "http://app.example.com/",
        "https:\\\\evil.com",
        "javascript:alert(1)",
    ] {
        // Arrange
        let app = portal_app(Backend::Memory).await;
        app.create_user("alice", &[]).await;
        let alice = app.browser();

        // Act
        let form = alice.get(&format!("/login?rd={}", urlencode(evil))).await;
        let csrf = form.csrf();
        let after = alice
            .post_form(
                "/login",
                &[
                    ("username", "alice"),
                    ("password", PASSWORD),
                    ("csrf", &csrf),
                    ("rd", evil),
                ],
            )
            .await;

        // Assert
        assert!(!form.body.contains("Sign in to continue"), "{evil}");
        assert!(!form.body.contains("name=\"rd\""), "{evil}");
        assert_eq!(after.header("location"), Some("/"), "{evil}");
    }
}

fn urlencode(value: &str) -> String {
    sessiond::web::request::encode_query_value(value)
}

#[actix_web::test]
async fn a_sign_in_beyond_max_per_user_ends_the_oldest_session_audited() {
    for backend in [Backend::Memory, Backend::Redis, Backend::JwtDenylist] {
        // Arrange: two sessions allowed; alice signs in on three devices in turn.
        let app = spawn_app_with(backend, |s| s.session.max_per_user = 2).await;
        let first = app.logged_in("alice", &[]).await;
        let (second, third) = (app.browser(), app.browser());
        app.clock.advance(5);
        assert_eq!(second.login("alice", PASSWORD).await.status, 303);
        assert_eq!(first.me_status().await, 200, "{backend:?}: two are allowed");
        app.clock.advance(5);

        // Act
        assert_eq!(third.login("alice", PASSWORD).await.status, 303);

        // Assert: the oldest is over, the other two live on, the audit says why.
        assert_eq!(first.me_status().await, 401, "{backend:?}");
        assert_eq!(second.me_status().await, 200);
        assert_eq!(third.me_status().await, 200);
        assert_eq!(app.store.sessions_of("alice").await.unwrap().len(), 2);
        let audit = app
            .store
            .audit(sessiond::store::AuditFilter::user("alice"), None, 20)
            .await
            .unwrap();
        assert!(
            audit.items.iter().any(|e| e.action == "session_revoked"
                && e.actor == "system"
                && e.detail.contains("max_per_user (2)")),
            "{backend:?}: {:?}",
            audit.items
        );
    }
}

/// `(Max-Age, value)` of the session cookie a response sets, if it sets one.
fn session_cookie_set(response: &Response) -> Option<(Option<i64>, String)> {
    response
        .set_cookies()
        .into_iter()
        .find(|c| c.name() == "__Host-sid")
        .map(|c| (c.max_age().map(|a| a.whole_seconds()), c.value().to_owned()))
}

#[actix_web::test]
async fn remember_me_makes_the_cookie_persistent_every_time_it_is_set() {
    for backend in [Backend::Memory, Backend::Redis] {
        // Arrange
        let app = spawn_app_with(backend, |s| s.session.remember_me_secs = 3600).await;
        app.create_user("alice", &[]).await;
        let (remembered, forgotten) = (app.browser(), app.browser());
        let form = remembered.get("/login").await;
        assert!(
            form.body.contains("name=\"remember\""),
            "{backend:?}: the checkbox"
        );

        // Act
        let csrf = form.csrf();
        let ticked = remembered
            .post_form(
                "/login",
                &[
                    ("username", "alice"),
                    ("password", PASSWORD),
                    ("csrf", &csrf),
                    ("remember", "on"),
                ],
            )
            .await;
        let plain = forgotten.login("alice", PASSWORD).await;
        let csrf = remembered.csrf().await;
        let step_up = remembered
            .post_form(
                "/account/reauth",
                &[("password", PASSWORD), ("csrf", &csrf)],
            )
            .await;

        // Assert
        let (max_age, _) = session_cookie_set(&ticked).expect("a session cookie");
        assert_eq!(max_age, Some(3600), "{backend:?}: remembered");
        let (max_age, _) = session_cookie_set(&plain).expect("a session cookie");
        assert_eq!(
            max_age, None,
            "{backend:?}: a browser-session cookie without the tick"
        );
        let (max_age, _) = session_cookie_set(&step_up).expect("a step-up sets the cookie again");
        assert_eq!(
            max_age,
            Some(3600),
            "{backend:?}: set again, still persistent"
        );
        assert_eq!(remembered.me_status().await, 200);
    }
}

#[actix_web::test]
async fn remember_me_is_not_offered_when_turned_off_or_in_jwt_mode() {
    for (backend, secs) in [(Backend::Memory, 0), (Backend::JwtDenylist, 3600)] {
        // Arrange
        let app = spawn_app_with(backend, |s| s.session.remember_me_secs = secs).await;
        app.create_user("alice", &[]).await;
        let browser = app.browser();
        let form = browser.get("/login").await;

        // Act: a forged tick.
        let csrf = form.csrf();
        let answer = browser
            .post_form(
                "/login",
                &[
                    ("username", "alice"),
                    ("password", PASSWORD),
                    ("csrf", &csrf),
                    ("remember", "on"),
                ],
            )
            .await;

        // Assert
        assert!(!form.body.contains("name=\"remember\""), "{backend:?}");
        assert_eq!(answer.status, 303);
        let persistent = answer
            .set_cookies()
            .into_iter()
            .filter(|c| !c.value().is_empty() && c.max_age().is_some())
            .count();
        assert_eq!(
            persistent, 0,
            "{backend:?}: removals aside, no cookie outlives the browser"
        );
    }
}

#[actix_web::test]
async fn with_a_cookie_domain_jwt_cookies_are_shared_across_it_too() {
    // Arrange
    let app = portal_app(Backend::JwtDenylist).await;
    app.create_user("alice", &[]).await;
    let alice = app.browser();

    // Act
    let login = alice.login("alice", PASSWORD).await;
    let page = forward_auth(&alice, "GET", APP, "/docs", true).await;

    // Assert
    for name in ["__Secure-access", "__Secure-refresh"] {
        let cookie = login
            .set_cookies()
            .into_iter()
            .find(|c| c.name() == name)
            .unwrap_or_else(|| panic!("no {name}: {:?}", login.set_cookies()));
        assert_eq!(cookie.domain(), Some("example.com"), "{name}");
        assert_eq!(cookie.secure(), Some(true), "{name}");
        assert_eq!(cookie.http_only(), Some(true), "{name}");
    }
    assert_eq!(page.status, 200);
    assert_eq!(page.header("remote-user"), Some("alice"));
}

#[actix_web::test]
async fn a_remembered_cookie_never_outlives_the_absolute_timeout() {
    // Arrange: remember for a day, but sessions end after an hour.
    let app = spawn_app_with(Backend::Memory, |s| {
        s.session.remember_me_secs = 86_400;
        s.session.idle_timeout_secs = 3600;
        s.session.absolute_timeout_secs = 3600;
    })
    .await;
    app.create_user("alice", &[]).await;
    let alice = app.browser();
    let csrf = alice.get("/login").await.csrf();

    // Act
    let login = alice
        .post_form(
            "/login",
            &[
                ("username", "alice"),
                ("password", PASSWORD),
                ("csrf", &csrf),
                ("remember", "on"),
            ],
        )
        .await;

    // Assert
    assert_eq!(session_cookie_set(&login).unwrap().0, Some(3600));
}

#[actix_web::test]
async fn rules_judge_the_path_and_host_the_app_will_see() {
    // Arrange
    let app = portal_app(Backend::Memory).await;
    let bob = app.logged_in("bob", &["viewer"]).await;

    // Act + Assert: the admin area, however it is spelled, is the admin area.
    for (host, uri) in [
        (APP, "/admin/users"),
        (APP, "/%61dmin/users"),
        ("app.example.com.", "/admin/users"),
        ("APP.example.com", "/admin/users"),
    ] {
        let answer = forward_auth(&bob, "GET", host, uri, true).await;
        assert_eq!(answer.status, 403, "{host}{uri}");
    }
    for uri in [
        "/public/..;/admin/users",
        "/public/%2e%2e;/admin",
        "/public%2Fadmin",
        "/public/%5c../admin",
    ] {
        let answer = forward_auth(&bob, "GET", APP, uri, true).await;
        assert_eq!(answer.status, 400, "{uri} is ambiguous: {}", answer.body);
    }
    let answer = forward_auth(&bob, "M-SEARCH", APP, "/docs", true).await;
    assert_eq!(answer.status, 200, "a method with a hyphen is a method");
}

#[actix_web::test]
async fn forward_auth_never_rotates_jwt_refresh_tokens_the_proxy_would_drop() {
    // Arrange: alice's access token has expired; her refresh token is good.
    let app = portal_app(Backend::JwtDenylist).await;
    let alice = app.logged_in("alice", &[]).await;
    app.expire_access_tokens();

    // Act
    let asked = forward_auth(&alice, "GET", APP, "/docs", true).await;
    let own_page = alice.get("/api/me").await;

    // Assert: sent to sign in, no cookie set (a proxy would drop it, and the next request
    // would replay the old refresh token: reuse, family revoked); on sessiond's own host the
    // refresh still works.
    assert_eq!(asked.status, 302);
    assert!(asked.set_cookies().is_empty(), "{:?}", asked.set_cookies());
    assert_eq!(own_page.status, 200);
}

#[actix_web::test]
async fn rules_without_a_public_url_stop_the_start() {
    // Arrange
    let mut settings = super::helpers::test_settings();
    settings.authz.rules = vec![rule(APP, &[], named("authenticated"))];

    // Act
    let started = Application::build(settings).await;

    // Assert
    let Err(StartupError::Authz(message)) = started else {
        panic!("rules without server.public_url must not start");
    };
    assert!(message.contains("server.public_url"), "{message}");
}

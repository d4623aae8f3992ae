//! The session-mode behaviour suite. Every test runs twice, against the memory store and
//! against a real Redis, through `all_modes!`.

use reqwest::Method;

use super::helpers::{
    Backend, Browser, PASSWORD, TestApp, all_modes, form_value, spawn_app, spawn_app_with,
};

all_modes!(
    login_form_has_fields_and_csrf_token,
    login_sets_host_cookie_with_strict_attributes,
    strict_same_site_is_configurable,
    login_issues_new_session_id_and_old_one_is_dead,
    login_redirects_to_safe_next_only,
    bad_credentials_get_one_uniform_answer,
    unknown_user_still_costs_a_password_verification,
    disabled_user_cannot_log_in,
    login_page_says_why_the_session_ended,
    unknown_forged_and_malformed_cookies_are_anonymous,
    logout_deletes_session_and_replay_is_refused,
    get_logout_is_method_not_allowed,
    logout_without_valid_csrf_is_refused_and_keeps_session,
    login_without_valid_csrf_is_refused,
    cross_site_posts_are_refused,
    idle_timeout_expires_session_and_activity_slides_it,
    absolute_timeout_ends_even_a_busy_session,
    role_change_applies_on_next_request,
    disable_applies_on_next_request,
    disabled_flag_alone_refuses_the_next_request,
    deleted_user_record_refuses_the_next_request,
    admin_requires_admin_role,
    api_me_answers_json,
    failed_logins_are_throttled_per_account,
    failed_logins_are_throttled_per_ip,
    html_responses_carry_security_headers,
    oversized_and_malformed_bodies_get_4xx,
    health_and_readiness,
    expired_sessions_leave_the_user_index,
    anonymous_pages_and_unknown_paths,
);

async fn login_form_has_fields_and_csrf_token(backend: Backend) {
    // Arrange
    let app = spawn_app(backend).await;
    // Act
    let page = app.browser().get("/login").await;
    // Assert
    assert_eq!(page.status, 200);
    assert!(
        page.body
            .contains(r#"<form method="post" action="/login">"#)
    );
    assert!(page.body.contains(r#"name="username""#));
    assert!(page.body.contains(r#"name="password" type="password""#));
    assert_eq!(page.csrf().len(), 22, "a 128-bit token");
}

async fn login_sets_host_cookie_with_strict_attributes(backend: Backend) {
    let app = spawn_app(backend).await;
    app.create_user("alice", &[]).await;
    let browser = app.browser();

    let response = browser.login("alice", PASSWORD).await;

    assert_eq!(response.status, 303);
    assert_eq!(response.header("cache-control"), Some("no-store"));
    let cookies = response.set_cookies();
    let issued: Vec<_> = cookies.iter().filter(|c| !c.value().is_empty()).collect();
    let expected_names: &[&str] = if backend.is_jwt() {
        // JWT mode: an access token and a refresh token; the pre-login session is cleared.
        let cleared = cookies
            .iter()
            .find(|c| c.name() == "__Host-sid")
            .expect("pre-login session cleared");
        assert!(cleared.value().is_empty());
        &["__Host-access", "__Host-refresh"]
    } else {
        &["__Host-sid"]
    };
    let names: Vec<&str> = issued.iter().map(|c| c.name()).collect();
    assert_eq!(names, expected_names);
    for cookie in issued {
        assert_eq!(cookie.http_only(), Some(true), "{}", cookie.name());
        assert_eq!(cookie.secure(), Some(true), "{}", cookie.name());
        assert_eq!(cookie.same_site(), Some(actix_web::cookie::SameSite::Lax));
        assert_eq!(cookie.path(), Some("/"));
        assert_eq!(cookie.domain(), None, "__Host- cookies carry no Domain");
        assert_eq!(
            cookie.max_age(),
            None,
            "the server decides when a session ends"
        );
    }
    if !backend.is_jwt() {
        // The ID is the user's 64-bit tag and 256 random bits, base64url (11 + 43 chars),
        // after actix-session's signature.
        let value = browser.cookie().unwrap();
        let id = value.rsplit("%3D").next().unwrap();
        assert_eq!(id.len(), 54, "cookie value {value}");
    }
}

async fn strict_same_site_is_configurable(backend: Backend) {
    let app = spawn_app_with(backend, |s| {
        s.session.same_site = sessiond::config::SameSitePolicy::Strict;
    })
    .await;

    let page = app.browser().get("/login").await;

    let cookie = page.session_cookie().expect("pre-login session cookie");
    assert_eq!(
        cookie.same_site(),
        Some(actix_web::cookie::SameSite::Strict)
    );
}

async fn login_issues_new_session_id_and_old_one_is_dead(backend: Backend) {
    let app = spawn_app(backend).await;
    app.create_user("alice", &[]).await;
    let browser = app.browser();
    let csrf = browser.get("/login").await.csrf();
    let before = browser.jar();
    assert!(
        before.contains_key("__Host-sid"),
        "a pre-login session holds the form's token"
    );

    let response = browser
        .post_form(
            "/login",
            &[
                ("username", "alice"),
                ("password", PASSWORD),
                ("csrf", &csrf),
            ],
        )
        .await;

    assert_eq!(response.status, 303);
    let after = browser.jar();
    assert!(
        after
            .iter()
            .all(|(name, value)| before.get(name) != Some(value)),
        "login must issue new credentials, keeping nothing from before"
    );
    assert_eq!(browser.me_status().await, 200);
    // An attacker who planted or saw the pre-login ID gets nothing from it.
    let attacker = Browser::new(&app.address);
    attacker.set_jar(before);
    assert_eq!(attacker.me_status().await, 401);
}

async fn login_redirects_to_safe_next_only(backend: Backend) {
    let app = spawn_app(backend).await;
    app.create_user("alice", &[]).await;
    let cases = [
        (Some("/admin?tab=users"), "/admin?tab=users"),
        (None, "/"),
        (Some("//evil.example/"), "/"),
        (Some("https://evil.example/"), "/"),
        (Some("/\\evil.example"), "/"),
        (Some("javascript:alert(1)"), "/"),
        (Some("/ok\r\nSet-Cookie: x=y"), "/"),
        (Some("evil.example"), "/"),
    ];
    for (next, expected) in cases {
        let browser = app.browser();

        let response = browser.login_next("alice", PASSWORD, next).await;

        assert_eq!(response.status, 303, "next={next:?}");
        assert_eq!(response.header("location"), Some(expected), "next={next:?}");
    }
}

/// Strips what legitimately differs between two login pages (token, echoed name).
fn page_shape(body: &str) -> String {
    let mut shape = body.to_owned();
    for field in ["csrf"] {
        if let Some(value) = form_value(body, field) {
            shape = shape.replace(&value, "");
        }
    }
    shape
        .replace("value=\"nobody\"", "")
        .replace("value=\"alice\"", "")
}

async fn bad_credentials_get_one_uniform_answer(backend: Backend) {
    let app = spawn_app(backend).await;
    app.create_user("alice", &[]).await;

    let wrong_password = app.browser().login("alice", "not the password").await;
    let unknown_user = app.browser().login("nobody", "not the password").await;

    assert_eq!(wrong_password.status, 401);
    assert_eq!(unknown_user.status, wrong_password.status);
    assert!(
        wrong_password
            .body
            .contains("Invalid user name or password.")
    );
    assert_eq!(
        page_shape(&unknown_user.body),
        page_shape(&wrong_password.body)
    );
}

async fn unknown_user_still_costs_a_password_verification(backend: Backend) {
    let app = spawn_app(backend).await;
    let before = app.metrics.password_verifications.get();

    let response = app.browser().login("nobody", "whatever password").await;

    assert_eq!(response.status, 401);
    let after = app.metrics.password_verifications.get();
    assert_eq!(after - before, 1, "the dummy hash must be verified");
}

async fn disabled_user_cannot_log_in(backend: Backend) {
    let app = spawn_app(backend).await;
    app.create_user("alice", &[]).await;
    app.set_disabled("alice", true).await;

    let right = app.browser().login("alice", PASSWORD).await;
    let wrong = app.browser().login("alice", "not the password").await;

    // Only someone who knows the password learns that the account is disabled.
    assert_eq!(right.status, 403);
    assert!(
        right.body.contains("This account is disabled."),
        "{}",
        right.body
    );
    assert!(!right.body.contains("Invalid user name or password."));
    assert_eq!(wrong.status, 401);
    assert!(wrong.body.contains("Invalid user name or password."));
    assert!(!wrong.body.contains("disabled"));
}

/// Where a dead credential sends a browser, and what the login page then says.
async fn sent_to_login(app: &TestApp, browser: &Browser) -> (String, String) {
    if app.backend == Backend::Jwt {
        // Plain JWT: the access token outlives a revocation; the refresh is what is refused.
        app.expire_access_tokens();
    }
    let page = browser.get("/account/sessions").await;
    assert_eq!(page.status, 303, "{}", page.body);
    let location = page.header("location").unwrap().to_owned();
    let login = app.browser().get(&location).await;
    assert_eq!(login.status, 200);
    (location, login.body)
}

async fn login_page_says_why_the_session_ended(backend: Backend) {
    let app = spawn_app_with(backend, |s| s.session.idle_timeout_secs = 3600).await;
    let revoked = app.logged_in("alice", &[]).await;
    let signed_out = app.logged_in("bob", &[]).await;
    let copy_of_signed_out = app.browser();
    copy_of_signed_out.set_jar(signed_out.jar());
    let idle = app.logged_in("carol", &[]).await;
    let visitor = app.browser();
    visitor.get("/login").await; // a pre-login session, never signed in

    // Act: one session revoked by an operator, one signed out (its copy comes back), and
    // one left idle past its timeout.
    app.operator().revoke_all("alice", None).await.unwrap();
    let logout = signed_out.logout().await;
    let (ended_at, ended_page) = sent_to_login(&app, &revoked).await;
    let (copy_at, copy_page) = sent_to_login(&app, &copy_of_signed_out).await;
    app.clock.advance(3601);
    let (expired_at, expired_page) = sent_to_login(&app, &idle).await;
    let visitor_later = visitor.get("/account/sessions").await;
    let anonymous = app.browser().get("/account/sessions").await;

    // Assert
    assert_eq!(logout.header("location"), Some("/login?why=signed-out"));
    assert_eq!(ended_at, "/login?next=%2Faccount%2Fsessions&why=ended");
    assert!(
        ended_page.contains("Your session was ended."),
        "{ended_page}"
    );
    assert_eq!(copy_at, "/login?next=%2Faccount%2Fsessions&why=signed-out");
    assert!(copy_page.contains("You signed out."));
    assert_eq!(expired_at, "/login?next=%2Faccount%2Fsessions&why=expired");
    assert!(expired_page.contains("Your session expired."));
    assert_eq!(
        anonymous.header("location"),
        Some("/login?next=%2Faccount%2Fsessions"),
        "no session named, nothing to explain"
    );
    assert_eq!(
        visitor_later.header("location"),
        Some("/login?next=%2Faccount%2Fsessions"),
        "someone who never signed in is not told a session expired"
    );
    let forged = app.browser().get("/login?why=%3Cscript%3E").await;
    assert_eq!(forged.status, 200);
    for sentence in ["was ended", "expired", "signed out", "script"] {
        assert!(!forged.body.contains(sentence), "{sentence}");
    }
}

async fn unknown_forged_and_malformed_cookies_are_anonymous(backend: Backend) {
    let app = spawn_app(backend).await;
    let alice = app.logged_in("alice", &[]).await;
    let mut cases = vec![
        "".to_owned(),
        "garbage".to_owned(),
        "%%%%".to_owned(),
        "a".repeat(4000),
        "\"quoted\" ;;; ===".to_owned(),
    ];
    // A copy of the real credential, altered: every variant must be anonymous.
    let (name, real) = if backend.is_jwt() {
        ("__Host-access", alice.jar()["__Host-access"].clone())
    } else {
        ("__Host-sid", alice.cookie().unwrap())
    };
    let (head, tail) = real.split_at(real.len() - 43);
    let mut flipped = tail.to_owned().into_bytes();
    flipped[0] = if flipped[0] == b'A' { b'B' } else { b'A' };
    cases.push(tail.to_owned()); // the last part alone
    cases.push(format!("{head}{}", String::from_utf8(flipped).unwrap())); // altered
    cases.push(format!("{head}{}", "A".repeat(43)));
    for value in cases {
        let browser = app.browser();
        browser.set_named_cookie(name, &value);
        if backend.is_jwt() {
            browser.set_named_cookie("__Host-refresh", &value);
        }

        let api = browser.get("/api/me").await;
        let page = browser.get("/").await;

        assert_eq!(api.status, 401, "cookie {value:?}");
        assert_eq!(page.status, 200, "cookie {value:?}");
        assert!(page.body.contains("Log in"), "cookie {value:?}");
    }
    assert_eq!(
        alice.me_status().await,
        200,
        "the real session is untouched"
    );
}

async fn logout_deletes_session_and_replay_is_refused(backend: Backend) {
    let app = spawn_app(backend).await;
    let alice = app.logged_in("alice", &["admin"]).await;
    let stolen = alice.jar();

    let response = alice.logout().await;

    assert_eq!(response.status, 303);
    assert_eq!(response.header("location"), Some("/login?why=signed-out"));
    let cleared: Vec<_> = response.set_cookies();
    assert!(!cleared.is_empty());
    for cookie in cleared {
        assert!(cookie.value().is_empty(), "{} cleared", cookie.name());
        assert!(cookie.max_age().is_some_and(|age| age.is_zero()));
    }
    assert!(alice.jar().is_empty());
    let replay = app.browser();
    replay.set_jar(stolen);
    app.assert_revoked(&[&replay]).await;
    let page = replay.get("/admin").await;
    assert_eq!(page.status, 303);
    assert!(
        page.header("location")
            .unwrap()
            .starts_with("/login?next=%2Fadmin"),
    );
    assert!(
        app.store
            .user_session_hashes("alice")
            .await
            .unwrap()
            .is_empty()
    );
}

async fn get_logout_is_method_not_allowed(backend: Backend) {
    let app = spawn_app(backend).await;
    let alice = app.logged_in("alice", &[]).await;

    let response = alice.get("/logout").await;

    assert_eq!(response.status, 405);
    assert_eq!(response.header("allow"), Some("POST"));
    assert_eq!(
        alice.me_status().await,
        200,
        "a GET must not log anyone out"
    );
}

async fn logout_without_valid_csrf_is_refused_and_keeps_session(backend: Backend) {
    let app = spawn_app(backend).await;
    let alice = app.logged_in("alice", &[]).await;
    let bob = app.logged_in("bob", &[]).await;
    let bobs_token = bob.csrf().await;

    let missing = alice.post_form("/logout", &[]).await;
    let wrong = alice
        .post_form("/logout", &[("csrf", "A".repeat(43).as_str())])
        .await;
    let other_sessions = alice.post_form("/logout", &[("csrf", &bobs_token)]).await;

    for response in [missing, wrong, other_sessions] {
        assert_eq!(response.status, 403);
        assert!(response.body.contains("Form expired"));
    }
    assert_eq!(alice.me_status().await, 200);
}

async fn login_without_valid_csrf_is_refused(backend: Backend) {
    let app = spawn_app(backend).await;
    app.create_user("alice", &[]).await;
    let other = app.browser();
    let others_token = other.get("/login").await.csrf();
    let browser = app.browser();
    browser.get("/login").await;

    for token in [None, Some("A".repeat(22)), Some(others_token)] {
        let mut form = vec![("username", "alice"), ("password", PASSWORD)];
        if let Some(token) = &token {
            form.push(("csrf", token));
        }

        let response = browser.post_form("/login", &form).await;

        assert_eq!(response.status, 403, "token {token:?}");
        assert_eq!(browser.me_status().await, 401, "no login happened");
    }
    // Without any session (no cookie at all) there is nothing a token could belong to.
    let cookieless = app.browser();
    let response = cookieless
        .post_form(
            "/login",
            &[("username", "alice"), ("password", PASSWORD), ("csrf", "x")],
        )
        .await;
    assert_eq!(response.status, 403);
}

async fn cross_site_posts_are_refused(backend: Backend) {
    let app = spawn_app(backend).await;
    let alice = app.logged_in("alice", &[]).await;
    let csrf = alice.csrf().await;
    let host = app.address.trim_start_matches("http://").to_owned();
    let refused = [
        ("sec-fetch-site", "cross-site".to_owned()),
        ("sec-fetch-site", "same-site".to_owned()),
        ("origin", "http://evil.example".to_owned()),
        ("origin", "null".to_owned()),
        ("origin", format!("http://{host}.evil.example")),
    ];
    for (header, value) in refused {
        let request = alice
            .request(Method::POST, "/logout")
            .header(header, value.as_str())
            .form(&[("csrf", csrf.as_str())]);

        let response = alice.send(request).await;

        assert_eq!(response.status, 403, "{header}: {value}");
        assert_eq!(alice.me_status().await, 200, "{header}: {value}");
    }
    let same_origin = alice
        .request(Method::POST, "/logout")
        .header("sec-fetch-site", "same-origin")
        .header("origin", format!("http://{host}"))
        .form(&[("csrf", csrf.as_str())]);
    assert_eq!(alice.send(same_origin).await.status, 303);
    assert_eq!(alice.me_status().await, 401);
}

async fn idle_timeout_expires_session_and_activity_slides_it(backend: Backend) {
    let app = spawn_app_with(backend, |s| {
        s.session.idle_timeout_secs = 600;
        s.session.touch_interval_secs = 60;
    })
    .await;
    let alice = app.logged_in("alice", &[]).await;

    // Activity every 500 s keeps a 600 s idle timeout from firing, well past 600 s in total.
    for _ in 0..3 {
        app.clock.advance(500);
        assert_eq!(alice.me_status().await, 200);
    }
    app.clock.advance(601);

    assert_eq!(alice.me_status().await, 401);
    assert!(
        app.store
            .user_session_hashes("alice")
            .await
            .unwrap()
            .is_empty()
    );
}

async fn absolute_timeout_ends_even_a_busy_session(backend: Backend) {
    let app = spawn_app_with(backend, |s| {
        s.session.idle_timeout_secs = 600;
        s.session.absolute_timeout_secs = 1000;
    })
    .await;
    let alice = app.logged_in("alice", &[]).await;
    // Margins of tens of seconds: the test clock moves with real time too.
    app.clock.advance(500);
    assert_eq!(alice.me_status().await, 200);
    app.clock.advance(450);
    assert_eq!(alice.me_status().await, 200);

    app.clock.advance(60);

    assert_eq!(alice.me_status().await, 401);
}

async fn role_change_applies_on_next_request(backend: Backend) {
    let app = spawn_app(backend).await;
    app.create_user("root", &["admin"]).await; // keeps an admin around
    let alice = app.logged_in("alice", &["admin"]).await;
    let bob = app.logged_in("bob", &["admin"]).await;
    assert_eq!(alice.get("/admin").await.status, 200);

    app.set_roles("alice", &["editor"]).await;

    app.assert_status_after_change(&[&alice], "/admin", 403)
        .await;
    let me: serde_json::Value = serde_json::from_str(&alice.get("/api/me").await.body).unwrap();
    assert_eq!(me["roles"], serde_json::json!(["editor"]));
    assert_eq!(
        bob.get("/admin").await.status,
        200,
        "other users are untouched"
    );
}

async fn disable_applies_on_next_request(backend: Backend) {
    let app = spawn_app(backend).await;
    let alice = app.logged_in("alice", &[]).await;
    let bob = app.logged_in("bob", &[]).await;

    let ended = app.set_disabled("alice", true).await;

    assert_eq!(ended, 1);
    app.assert_revoked(&[&alice]).await;
    assert_eq!(bob.me_status().await, 200);
    // Re-enabling lets alice log in again, but does not bring the old session back.
    app.set_disabled("alice", false).await;
    assert_eq!(alice.me_status().await, 401);
}

/// The flag is read with the session on every load, not only enforced by deleting sessions.
async fn disabled_flag_alone_refuses_the_next_request(backend: Backend) {
    let app = spawn_app(backend).await;
    let alice = app.logged_in("alice", &[]).await;

    app.store.set_disabled("alice", true, false).await.unwrap();

    app.assert_revoked(&[&alice]).await;
    app.store.set_disabled("alice", false, false).await.unwrap();
    assert_eq!(
        alice.me_status().await,
        401,
        "the refused session was deleted, not paused"
    );
}

async fn deleted_user_record_refuses_the_next_request(backend: Backend) {
    let app = spawn_app(backend).await;
    let alice = app.logged_in("alice", &[]).await;
    assert_eq!(alice.me_status().await, 200);

    let tag = app.store.user_tag("alice").await.unwrap();
    let key = format!("{}{{{tag}}}u", app.settings.store.key_prefix);
    match (&app.redis, &app.cluster) {
        (Some(redis), _) => {
            let mut conn = redis.connection().unwrap();
            ::redis::cmd("DEL").arg(key).query::<()>(&mut conn).unwrap();
            // As sessiond's own writers do (`RedisStore::fence`): once this PING is answered,
            // the near-cache's invalidation is in the app's socket.
            let _: String = ::redis::cmd("PING").query(&mut conn).unwrap();
        }
        (None, Some(cluster)) => {
            ::redis::cmd("DEL")
                .arg(key)
                .query::<()>(&mut cluster.connection())
                .unwrap();
        }
        // The memory store has no delete; disabling is its closest equivalent.
        (None, None) => {
            app.store.set_disabled("alice", true, false).await.unwrap();
        }
    }

    if backend.is_jwt() {
        // A record deleted behind the app's back writes no deny-list entry: even with the
        // deny-list, the issued access token works until it expires; the refresh then fails.
        assert_eq!(alice.me_status().await, 200);
        app.expire_access_tokens();
    }
    assert_eq!(alice.me_status().await, 401);
}

async fn admin_requires_admin_role(backend: Backend) {
    let app = spawn_app(backend).await;
    let alice = app.logged_in("alice", &["editor"]).await;
    let admin = app.logged_in("boss", &["admin"]).await;

    let forbidden = alice.get("/admin").await;
    let anonymous = app.browser().get("/admin").await;
    let allowed = admin.get("/admin").await;

    assert_eq!(forbidden.status, 403);
    assert!(forbidden.body.contains("Forbidden"));
    assert_eq!(anonymous.status, 303);
    assert_eq!(anonymous.header("location"), Some("/login?next=%2Fadmin"));
    assert_eq!(allowed.status, 200);
    assert!(allowed.body.contains("Admin"));
}

async fn api_me_answers_json(backend: Backend) {
    let app = spawn_app(backend).await;
    let alice = app.logged_in("alice", &["editor", "viewer"]).await;

    let me = alice.get("/api/me").await;
    let anonymous = app.browser().get("/api/me").await;

    assert_eq!(me.status, 200);
    let me: serde_json::Value = serde_json::from_str(&me.body).unwrap();
    assert_eq!(
        me,
        serde_json::json!({"username": "alice", "roles": ["editor", "viewer"], "mode": backend.mode()})
    );
    assert_eq!(anonymous.status, 401);
    assert!(
        anonymous
            .header("content-type")
            .unwrap()
            .starts_with("application/json")
    );
    let body: serde_json::Value = serde_json::from_str(&anonymous.body).unwrap();
    assert_eq!(body["error"], "unauthenticated");
}

async fn failed_logins_are_throttled_per_account(backend: Backend) {
    let app = spawn_app_with(backend, |s| s.throttle.max_failures_per_account = 3).await;
    app.create_user("alice", &[]).await;
    app.create_user("bob", &[]).await;
    for _ in 0..3 {
        assert_eq!(
            app.browser().login("alice", "wrong password").await.status,
            401
        );
    }

    let throttled = app.browser().login("alice", PASSWORD).await;

    assert_eq!(throttled.status, 429, "even the right password waits");
    let retry_after: i64 = throttled.header("retry-after").unwrap().parse().unwrap();
    assert!(retry_after > 0 && retry_after <= 900);
    assert!(throttled.body.contains("Too many failed logins"));
    assert_eq!(
        app.browser().login("bob", PASSWORD).await.status,
        303,
        "bob is not alice"
    );
}

async fn failed_logins_are_throttled_per_ip(backend: Backend) {
    let app = spawn_app_with(backend, |s| {
        s.throttle.max_failures_per_account = 100;
        s.throttle.max_failures_per_ip = 4;
    })
    .await;
    app.create_user("alice", &[]).await;
    for name in ["u1", "u2", "u3", "u4"] {
        assert_eq!(
            app.browser().login(name, "wrong password").await.status,
            401
        );
    }

    let throttled = app.browser().login("alice", PASSWORD).await;

    assert_eq!(throttled.status, 429);
    assert!(throttled.header("retry-after").is_some());
}

async fn html_responses_carry_security_headers(backend: Backend) {
    let app = spawn_app(backend).await;
    let alice = app.logged_in("alice", &[]).await;

    for response in [alice.get("/").await, app.browser().get("/login").await] {
        let csp = response.header("content-security-policy").unwrap();
        assert!(csp.contains("frame-ancestors 'none'"));
        assert!(!csp.contains("unsafe-inline"));
        assert!(csp.contains("default-src 'none'"));
        assert_eq!(response.header("x-frame-options"), Some("DENY"));
        assert_eq!(response.header("x-content-type-options"), Some("nosniff"));
        assert_eq!(response.header("referrer-policy"), Some("same-origin"));
        assert_eq!(response.header("cache-control"), Some("no-store"));
        assert!(!response.body.contains("<script"));
    }
}

async fn oversized_and_malformed_bodies_get_4xx(backend: Backend) {
    let app = spawn_app(backend).await;
    app.create_user("alice", &[]).await;
    let browser = app.browser();
    let csrf = browser.get("/login").await.csrf();
    let huge = "x".repeat(64 * 1024);

    let oversized = browser
        .post_form(
            "/login",
            &[("username", "alice"), ("password", &huge), ("csrf", &csrf)],
        )
        .await;
    let missing_fields = browser.post_form("/login", &[("csrf", &csrf)]).await;
    let not_a_form = browser
        .send(
            browser
                .request(Method::POST, "/login")
                .header("content-type", "application/x-www-form-urlencoded")
                .body("%zz=%%%&&=="),
        )
        .await;

    assert_eq!(oversized.status, 413);
    assert_eq!(missing_fields.status, 400);
    assert!(
        (400..500).contains(&not_a_form.status),
        "got {}",
        not_a_form.status
    );
}

async fn health_and_readiness(backend: Backend) {
    let app = spawn_app(backend).await;

    let health = app.browser().get("/healthz").await;
    let ready = app.browser().get("/readyz").await;

    assert_eq!(health.status, 200);
    assert_eq!(ready.status, 200);
}

async fn expired_sessions_leave_the_user_index(backend: Backend) {
    let app = spawn_app_with(backend, |s| s.session.idle_timeout_secs = 600).await;
    app.create_user("alice", &[]).await;
    let first = app.browser();
    first.login("alice", PASSWORD).await;
    app.clock.advance(601);

    // A new login prunes what expired; listing prunes too.
    let second = app.browser();
    second.login("alice", PASSWORD).await;

    let live = app.store.user_session_hashes("alice").await.unwrap();
    assert_eq!(live.len(), 1, "only the second session is indexed");
    assert_eq!(second.me_status().await, 200);
    assert_eq!(first.me_status().await, 401);
}

async fn anonymous_pages_and_unknown_paths(backend: Backend) {
    let app = spawn_app(backend).await;
    let browser = app.browser();

    let home = browser.get("/").await;
    let missing = browser.get("/no/such/page").await;
    let stylesheet = browser.get("/static/style.css").await;

    assert_eq!(home.status, 200);
    assert!(home.body.contains(r#"href="/login""#));
    assert!(
        home.session_cookie().is_none(),
        "no session for a visitor who only looks"
    );
    assert_eq!(missing.status, 404);
    assert_eq!(stylesheet.status, 200);
    assert!(
        stylesheet
            .header("content-type")
            .unwrap()
            .starts_with("text/css")
    );
}

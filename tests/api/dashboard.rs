//! "Your sessions" and the admin dashboard (pages and JSON API), on both stores.

use reqwest::Method;
use serde_json::{Value, json};
use sessiond::web::request::encode_query_value as encode;

use super::helpers::{
    Backend, Browser, PASSWORD, TestApp, all_modes, form_value, spawn_app, spawn_app_with,
};

all_modes!(
    own_sessions_are_listed_with_the_current_one_marked,
    ending_another_own_session_needs_a_recent_password,
    a_wrong_step_up_password_is_refused,
    sign_out_all_other_sessions_keeps_this_one,
    ending_the_current_session_is_a_logout,
    nobody_ends_someone_elses_session_by_handle,
    password_change_ends_other_sessions_and_rotates_this_one,
    weak_or_mismatched_new_passwords_are_refused,
    every_admin_page_and_api_refuses_non_admins,
    admin_revokes_one_session_from_the_dashboard,
    admin_revokes_all_disables_and_enables,
    admin_role_change_reaches_the_next_request,
    the_last_admin_cannot_be_demoted_or_disabled,
    granting_admin_needs_a_recent_password,
    admin_resets_a_password,
    a_one_time_message_is_shown_only_to_its_owner,
    admin_creates_users_and_refuses_weak_passwords,
    roles_come_from_the_configured_set,
    users_list_pages_and_searches,
    search_finds_names_containing_the_text,
    users_list_shows_sign_ins_throttling_and_unlock,
    session_and_audit_filters_match_names_and_actions,
    users_sort_by_name_newest_and_last_sign_in,
    all_sessions_list_pages_newest_first,
    api_mirrors_the_dashboard,
    every_action_writes_an_audit_entry_without_secrets,
    every_form_and_api_change_needs_its_csrf_token,
    overview_counts_and_charts_logins,
    revocation_counters_count_ended_sessions,
    metrics_are_served_in_prometheus_format,
    an_update_never_brings_a_deleted_session_back,
    a_search_that_matches_nobody_is_an_empty_page,
    malformed_paging_parameters_are_400_naming_the_parameter,
    api_errors_share_one_shape_and_the_documented_codes,
    destructive_actions_ask_first,
    admin_deletes_a_user_keeping_the_audit_trail,
    the_last_admin_cannot_be_deleted,
    session_lists_mark_this_session_and_read_relative_times,
);

/// The handle of the session a browser holds: its row is the one marked "this session".
async fn own_handle(browser: &Browser) -> String {
    let page = browser.get("/account/sessions").await;
    let row_start = page
        .body
        .find("(this session)")
        .expect("current session marked");
    let form_start = page.body[row_start..].find("/account/sessions/").unwrap() + row_start;
    let rest = &page.body[form_start + "/account/sessions/".len()..];
    rest[..rest.find('/').unwrap()].to_owned()
}

async fn admin_and_user(backend: Backend) -> (TestApp, Browser, Browser) {
    let app = spawn_app(backend).await;
    let admin = app.logged_in("boss", &["admin"]).await;
    let user = app.logged_in("alice", &["editor"]).await;
    (app, admin, user)
}

async fn own_sessions_are_listed_with_the_current_one_marked(backend: Backend) {
    let app = spawn_app(backend).await;
    let laptop = app.logged_in("alice", &[]).await;
    let phone = app.browser();
    phone
        .send(
            phone
                .request(Method::GET, "/login")
                .header("user-agent", "Mozilla/5.0 (iPhone; CPU iPhone OS 18_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.0 Mobile/15E148 Safari/604.1"),
        )
        .await;
    phone.login("alice", PASSWORD).await;

    let page = laptop.get("/account/sessions").await;

    assert_eq!(page.status, 200);
    assert_eq!(
        page.body.matches("/revoke\"").count(),
        2,
        "two sessions listed"
    );
    assert_eq!(page.body.matches("(this session)").count(), 1);
    assert!(page.body.contains("127.0.0.1"));
    assert!(page.body.contains("Sign out all other sessions"));
    let anonymous = app.browser().get("/account/sessions").await;
    assert_eq!(anonymous.status, 303);
}

async fn ending_another_own_session_needs_a_recent_password(backend: Backend) {
    // Arrange: two sessions; the password was typed more than 10 minutes ago.
    let app = spawn_app(backend).await;
    let laptop = app.logged_in("alice", &[]).await;
    let phone = app.browser();
    phone.login("alice", PASSWORD).await;
    let phone_handle = own_handle(&phone).await;
    app.clock.advance(601);
    let csrf = laptop.csrf().await;
    let path = format!("/account/sessions/{phone_handle}/revoke");

    // Act
    let stale = laptop.post_form(&path, &[("csrf", &csrf)]).await;

    // Assert: sent to confirm the password; nothing ended.
    assert_eq!(stale.status, 303);
    let back = format!(
        "/account/sessions?resume=revoke&handle={}",
        encode(&phone_handle)
    );
    assert_eq!(
        stale.header("location"),
        Some(format!("/account/reauth?next={}", encode(&back)).as_str())
    );
    assert_eq!(phone.me_status().await, 200);

    // Act: confirm the password; the step-up leads back to the action it interrupted.
    let form = laptop
        .get(&format!("/account/reauth?next={}", encode(&back)))
        .await;
    assert_eq!(form.status, 200);
    let confirmed = laptop
        .post_form(
            "/account/reauth",
            &[
                ("password", PASSWORD),
                ("csrf", &form.csrf()),
                ("next", &back),
            ],
        )
        .await;
    assert_eq!(confirmed.status, 303);
    assert_eq!(confirmed.header("location"), Some(back.as_str()));
    let resumed = laptop.get(&back).await;
    assert_eq!(resumed.status, 200);
    assert!(
        resumed.body.contains("End that session?"),
        "{}",
        resumed.body
    );
    assert!(resumed.body.contains(&format!(r#"action="{path}""#)));
    assert_eq!(
        phone.me_status().await,
        200,
        "nothing ends before the click"
    );
    let revoked = laptop
        .post_form_and_follow(&path, &[("csrf", &resumed.csrf()), ("confirm", "yes")])
        .await;

    // Assert
    assert_eq!(revoked.status, 200);
    assert!(revoked.body.contains("That session has ended."));
    app.assert_revoked(&[&phone]).await;
    assert_eq!(laptop.me_status().await, 200);
    // A handle that is not one of this user's other sessions is never offered.
    for foreign in [own_handle(&laptop).await, "nonsense\"><b>".to_owned()] {
        let page = laptop
            .get(&format!(
                "/account/sessions?resume=revoke&handle={}",
                encode(&foreign)
            ))
            .await;
        assert_eq!(page.status, 200);
        assert!(!page.body.contains("End that session?"));
    }
}

async fn a_wrong_step_up_password_is_refused(backend: Backend) {
    let app = spawn_app(backend).await;
    let alice = app.logged_in("alice", &[]).await;
    app.clock.advance(601);
    let form = alice.get("/account/reauth?next=/account/sessions").await;

    let wrong = alice
        .post_form(
            "/account/reauth",
            &[("password", "not it"), ("csrf", &form.csrf())],
        )
        .await;

    assert_eq!(wrong.status, 401);
    let csrf = alice.csrf().await;
    let still_stale = alice
        .post_form(
            "/account/sessions/revoke-others",
            &[("csrf", &csrf), ("confirm", "yes")],
        )
        .await;
    assert_eq!(
        still_stale.status, 303,
        "a wrong password does not count as step-up"
    );
}

async fn sign_out_all_other_sessions_keeps_this_one(backend: Backend) {
    let app = spawn_app(backend).await;
    let laptop = app.logged_in("alice", &[]).await;
    let others: Vec<Browser> = (0..3).map(|_| app.browser()).collect();
    for other in &others {
        other.login("alice", PASSWORD).await;
    }
    let bob = app.logged_in("bob", &[]).await;
    let csrf = laptop.csrf().await;

    let response = laptop
        .post_form_and_follow(
            "/account/sessions/revoke-others",
            &[("csrf", &csrf), ("confirm", "yes")],
        )
        .await;

    assert_eq!(response.status, 200);
    assert!(response.body.contains("Signed out of 3 other sessions."));
    let others: Vec<&Browser> = others.iter().collect();
    app.assert_revoked(&others).await;
    assert_eq!(laptop.me_status().await, 200);
    assert_eq!(bob.me_status().await, 200);
}

async fn ending_the_current_session_is_a_logout(backend: Backend) {
    let app = spawn_app(backend).await;
    let alice = app.logged_in("alice", &[]).await;
    let handle = own_handle(&alice).await;
    let csrf = alice.csrf().await;
    let stolen = alice.jar();

    let response = alice
        .post_form(
            &format!("/account/sessions/{handle}/revoke"),
            &[("csrf", &csrf)],
        )
        .await;

    assert_eq!(response.status, 303);
    assert_eq!(response.header("location"), Some("/login?why=signed-out"));
    let replay = app.browser();
    replay.set_jar(stolen);
    app.assert_revoked(&[&replay]).await;
}

async fn nobody_ends_someone_elses_session_by_handle(backend: Backend) {
    let app = spawn_app(backend).await;
    let alice = app.logged_in("alice", &[]).await;
    let bob = app.logged_in("bob", &[]).await;
    let bobs_handle = own_handle(&bob).await;
    let csrf = alice.csrf().await;

    let response = alice
        .post_form_and_follow(
            &format!("/account/sessions/{bobs_handle}/revoke"),
            &[("csrf", &csrf)],
        )
        .await;

    assert_eq!(response.status, 200);
    assert!(response.body.contains("That session had already ended."));
    assert_eq!(bob.me_status().await, 200);
}

async fn password_change_ends_other_sessions_and_rotates_this_one(backend: Backend) {
    let app = spawn_app(backend).await;
    let laptop = app.logged_in("alice", &[]).await;
    let phone = app.browser();
    phone.login("alice", PASSWORD).await;
    let old_cookies = laptop.jar();
    let csrf = laptop.csrf().await;
    let new_password = "purple elephant juggling seven teacups";

    let response = laptop
        .post_form(
            "/account/password",
            &[
                ("current", PASSWORD),
                ("new", new_password),
                ("confirm", new_password),
                ("csrf", &csrf),
            ],
        )
        .await;

    assert_eq!(response.status, 303);
    let new_cookies = laptop.jar();
    assert!(
        new_cookies
            .iter()
            .all(|(name, value)| old_cookies.get(name) != Some(value)),
        "this browser gets a new session ID (or token family)"
    );
    assert_eq!(laptop.me_status().await, 200);
    let replay = app.browser();
    replay.set_jar(old_cookies);
    // The phone and the pre-change credentials are dead (plain JWT: once their access tokens
    // expire).
    app.assert_revoked(&[&phone, &replay]).await;
    assert_eq!(
        laptop.me_status().await,
        200,
        "this browser stays signed in"
    );
    assert_eq!(app.browser().login("alice", PASSWORD).await.status, 401);
    assert_eq!(app.browser().login("alice", new_password).await.status, 303);
}

async fn weak_or_mismatched_new_passwords_are_refused(backend: Backend) {
    let app = spawn_app(backend).await;
    let alice = app.logged_in("alice", &[]).await;
    let csrf = alice.csrf().await;
    let attempt = |current: &'static str, new: &'static str, confirm: &'static str| {
        let csrf = csrf.clone();
        let alice = &alice;
        async move {
            alice
                .post_form(
                    "/account/password",
                    &[
                        ("current", current),
                        ("new", new),
                        ("confirm", confirm),
                        ("csrf", &csrf),
                    ],
                )
                .await
        }
    };

    let common = attempt(PASSWORD, "password123", "password123").await;
    let own_name = attempt(PASSWORD, "alice12345", "alice12345").await;
    let mismatch = attempt(
        PASSWORD,
        "purple elephant juggling",
        "purple elephant juggled",
    )
    .await;
    let wrong_current = attempt(
        "not it",
        "purple elephant juggling",
        "purple elephant juggling",
    )
    .await;

    // Each comes back as the same page, with navigation, the reason next to its field, and
    // no password echoed.
    assert_eq!(common.status, 400);
    assert!(common.body.contains("id=\"new-error\""));
    assert_eq!(own_name.status, 400);
    assert!(own_name.body.contains("built from the user name"));
    assert_eq!(mismatch.status, 400);
    assert!(mismatch.body.contains("id=\"confirm-error\""));
    assert!(mismatch.body.contains("The two new passwords differ."));
    assert_eq!(wrong_current.status, 403);
    assert!(wrong_current.body.contains("id=\"current-error\""));
    assert!(
        wrong_current
            .body
            .contains("The current password is not right.")
    );
    for page in [&common, &own_name, &mismatch, &wrong_current] {
        assert!(page.body.contains("action=\"/logout\""), "navigation kept");
        assert!(!page.body.contains("purple elephant"), "no password echoed");
        assert!(
            !page.body.contains("..<") && !page.body.contains(".. "),
            "no doubled full stop"
        );
    }
    assert_eq!(
        app.browser().login("alice", PASSWORD).await.status,
        303,
        "unchanged"
    );
}

const ADMIN_GETS: [&str; 6] = [
    "/admin",
    "/admin/users",
    "/admin/users/alice",
    "/admin/sessions",
    "/admin/audit",
    "/admin/users?q=a",
];

async fn every_admin_page_and_api_refuses_non_admins(backend: Backend) {
    let (app, admin, user) = admin_and_user(backend).await;
    let admin_handle = own_handle(&admin).await;
    let csrf = user.csrf().await;
    let posts = [
        "/admin/users".to_owned(),
        "/admin/users/boss/roles".to_owned(),
        "/admin/users/boss/disable".to_owned(),
        "/admin/users/boss/enable".to_owned(),
        "/admin/users/boss/password-reset".to_owned(),
        "/admin/users/boss/sessions/revoke-all".to_owned(),
        format!("/admin/users/boss/sessions/{admin_handle}/revoke"),
        "/admin/users/boss/delete".to_owned(),
    ];
    let api = [
        (Method::GET, "/api/admin/users".to_owned(), None),
        (
            Method::POST,
            "/api/admin/users".to_owned(),
            Some(json!({"name": "x", "password": PASSWORD})),
        ),
        (
            Method::GET,
            "/api/admin/users/boss/sessions".to_owned(),
            None,
        ),
        (
            Method::DELETE,
            "/api/admin/users/boss/sessions".to_owned(),
            None,
        ),
        (
            Method::DELETE,
            format!("/api/admin/users/boss/sessions/{admin_handle}"),
            None,
        ),
        (
            Method::PUT,
            "/api/admin/users/boss/roles".to_owned(),
            Some(json!({"roles": []})),
        ),
        (
            Method::PUT,
            "/api/admin/users/boss/disabled".to_owned(),
            Some(json!({"disabled": true})),
        ),
        (Method::DELETE, "/api/admin/users/boss".to_owned(), None),
        (Method::GET, "/api/admin/sessions".to_owned(), None),
        (Method::GET, "/api/admin/audit".to_owned(), None),
    ];

    for path in ADMIN_GETS {
        assert_eq!(user.get(path).await.status, 403, "GET {path}");
        assert_eq!(
            app.browser().get(path).await.status,
            303,
            "anonymous GET {path}"
        );
    }
    for path in &posts {
        let response = user
            .post_form(
                path,
                &[
                    ("csrf", &csrf),
                    ("roles", ""),
                    ("name", "x"),
                    ("password", PASSWORD),
                ],
            )
            .await;
        assert_eq!(response.status, 403, "POST {path}");
    }
    for (method, path, body) in api {
        let response = user.api(method.clone(), &path, body.clone()).await;
        assert_eq!(response.status, 403, "{method} {path}");
        let anonymous = app.browser().api(method.clone(), &path, body).await;
        assert_eq!(anonymous.status, 401, "anonymous {method} {path}");
    }
    // Nothing happened to the admin.
    assert_eq!(admin.get("/admin").await.status, 200);
}

async fn admin_revokes_one_session_from_the_dashboard(backend: Backend) {
    let (app, admin, user) = admin_and_user(backend).await;
    let other = app.logged_in("carol", &[]).await;
    let handle = own_handle(&user).await;
    let page = admin.get("/admin/users/alice").await;
    assert!(
        page.body.contains(&handle),
        "the user page lists the session by handle"
    );
    for secret in user.jar().values() {
        assert!(
            !page.body.contains(&secret[secret.len() - 20..]),
            "no credential on the page"
        );
    }

    let response = admin
        .post_form_and_follow(
            &format!("/admin/users/alice/sessions/{handle}/revoke"),
            &[("csrf", &page.csrf())],
        )
        .await;

    assert_eq!(response.status, 200);
    assert!(response.body.contains("Ended a session of alice."));
    app.assert_status_after_change(&[&user], "/account/sessions", 401)
        .await;
    let next_page = user.get("/account/sessions").await;
    assert_eq!(
        next_page.header("location"),
        Some(if backend.is_jwt() {
            // The refusal before cleared the refresh cookie: nothing left to explain.
            "/login?next=%2Faccount%2Fsessions"
        } else {
            "/login?next=%2Faccount%2Fsessions&why=ended"
        })
    );
    assert_eq!(other.me_status().await, 200);
    assert_eq!(admin.me_status().await, 200);
}

async fn admin_revokes_all_disables_and_enables(backend: Backend) {
    let (app, admin, user) = admin_and_user(backend).await;
    let second = app.browser();
    second.login("alice", PASSWORD).await;
    let csrf = admin.csrf().await;

    let revoke_all = admin
        .post_form_and_follow(
            "/admin/users/alice/sessions/revoke-all",
            &[("csrf", &csrf), ("confirm", "yes")],
        )
        .await;
    assert!(revoke_all.body.contains("Ended 2 sessions of alice."));
    app.assert_revoked(&[&user, &second]).await;

    let again = app.browser();
    again.login("alice", PASSWORD).await;
    let disable = admin
        .post_form_and_follow(
            "/admin/users/alice/disable",
            &[("csrf", &csrf), ("confirm", "yes")],
        )
        .await;
    assert!(disable.body.contains("Disabled alice; 1 session ended."));
    app.assert_revoked(&[&again]).await;
    assert_eq!(
        app.browser().login("alice", PASSWORD).await.status,
        403,
        "disabled"
    );

    let enable = admin
        .post_form_and_follow("/admin/users/alice/enable", &[("csrf", &csrf)])
        .await;
    assert!(enable.body.contains("Enabled alice."));
    assert_eq!(app.browser().login("alice", PASSWORD).await.status, 303);
}

async fn admin_role_change_reaches_the_next_request(backend: Backend) {
    let (app, admin, _) = admin_and_user(backend).await;
    let deputy = app.logged_in("deputy", &["admin", "editor"]).await;
    assert_eq!(deputy.get("/admin").await.status, 200);
    let csrf = admin.csrf().await;

    let response = admin
        .post_form_and_follow(
            "/admin/users/deputy/roles",
            &[("roles", "editor"), ("csrf", &csrf)],
        )
        .await;

    assert_eq!(response.status, 200);
    assert!(response.body.contains("Roles of deputy saved."));
    app.assert_status_after_change(&[&deputy], "/admin", 403)
        .await;
    assert_eq!(deputy.get("/api/admin/users").await.status, 403);
}

async fn the_last_admin_cannot_be_demoted_or_disabled(backend: Backend) {
    let app = spawn_app(backend).await;
    // The bootstrap admin exists too: disable it so "boss" is the last enabled admin.
    app.set_disabled("admin", true).await;
    let boss = app.logged_in("boss", &["admin"]).await;
    let csrf = boss.csrf().await;

    let demote = boss
        .post_form(
            "/admin/users/boss/roles",
            &[("roles", "editor"), ("csrf", &csrf)],
        )
        .await;
    let disable = boss
        .post_form(
            "/admin/users/boss/disable",
            &[("csrf", &csrf), ("confirm", "yes")],
        )
        .await;
    let api_demote = boss
        .api(
            Method::PUT,
            "/api/admin/users/boss/roles",
            Some(json!({"roles": []})),
        )
        .await;

    assert_eq!(demote.status, 409);
    assert!(demote.body.contains("That would leave no enabled admin."));
    assert_eq!(disable.status, 409);
    assert_eq!(api_demote.status, 409);
    assert_eq!(
        serde_json::from_str::<Value>(&api_demote.body).unwrap()["error"],
        "last_admin"
    );
    assert_eq!(boss.get("/admin").await.status, 200, "still an admin");
    // With a second admin, the first may step down.
    app.create_user("second", &["admin"]).await;
    let demote = boss
        .post_form(
            "/admin/users/boss/roles",
            &[("roles", "editor"), ("csrf", &csrf)],
        )
        .await;
    assert_eq!(demote.status, 303);
    app.assert_status_after_change(&[&boss], "/admin", 403)
        .await;
}

async fn granting_admin_needs_a_recent_password(backend: Backend) {
    let (app, admin, user) = admin_and_user(backend).await;
    app.clock.advance(601);
    let csrf = admin.csrf().await;

    let stale = admin
        .post_form(
            "/admin/users/alice/roles",
            &[("roles", "admin editor"), ("csrf", &csrf)],
        )
        .await;
    let stale_api = admin
        .api(
            Method::PUT,
            "/api/admin/users/alice/roles",
            Some(json!({"roles": ["admin"]})),
        )
        .await;

    assert_eq!(stale.status, 303);
    assert_eq!(
        stale.header("location"),
        Some(
            format!(
                "/account/reauth?next={}",
                encode("/admin/users/alice#roles-form")
            )
            .as_str()
        )
    );
    assert_eq!(stale_api.status, 403);
    // Back from the step-up, the roles form is as it was sent (kept server-side, never in the
    // address), not yet saved; a second visit shows the saved roles again.
    let resumed = admin.get("/admin/users/alice").await;
    assert!(
        resumed
            .body
            .contains("Your form is as you left it: press Save roles to finish.")
    );
    assert!(
        resumed.body.contains(r#"id="role-admin" checked"#),
        "{}",
        resumed.body
    );
    assert!(resumed.body.contains(r#"id="role-editor" checked"#));
    let again = admin.get("/admin/users/alice").await;
    assert!(!again.body.contains(r#"id="role-admin" checked"#));
    let crafted = admin.get("/admin/users/alice?roles=admin").await;
    assert!(
        !crafted.body.contains(r#"id="role-admin" checked"#),
        "an address fills in nothing"
    );
    let stale_create = admin
        .post_form(
            "/admin/users",
            &[
                ("name", "nadia"),
                ("password", "violet harbour lantern mist"),
                ("role:admin", "on"),
                ("csrf", &csrf),
            ],
        )
        .await;
    assert_eq!(
        stale_create.header("location"),
        Some(format!("/account/reauth?next={}", encode("/admin/users#create")).as_str())
    );
    let create_form = admin.get("/admin/users").await;
    assert!(create_form.body.contains(r#"value="nadia""#));
    assert!(create_form.body.contains(r#"id="role-admin" checked"#));
    assert!(
        !create_form.body.contains("violet harbour"),
        "never the password"
    );
    assert!(
        app.store.user("nadia").await.unwrap().is_none(),
        "not created"
    );
    assert!(!resumed.body.contains(r#"id="role-viewer" checked"#));
    assert_eq!(
        serde_json::from_str::<Value>(&stale_api.body).unwrap()["error"],
        "step_up_required"
    );
    assert_eq!(user.get("/admin").await.status, 403, "not granted");
    // Removing roles other than admin needs no step-up.
    let harmless = admin
        .post_form(
            "/admin/users/alice/roles",
            &[("roles", "viewer"), ("csrf", &csrf)],
        )
        .await;
    assert_eq!(harmless.status, 303);

    let reauth = admin
        .api(
            Method::POST,
            "/api/reauth",
            Some(json!({"password": PASSWORD})),
        )
        .await;
    assert_eq!(reauth.status, 204);
    let granted = admin
        .post_form(
            "/admin/users/alice/roles",
            &[("roles", "admin"), ("csrf", &csrf)],
        )
        .await;
    assert_eq!(granted.status, 303);
    app.assert_status_after_change(&[&user], "/admin", 200)
        .await;
}

async fn admin_resets_a_password(backend: Backend) {
    let (app, admin, user) = admin_and_user(backend).await;
    let csrf = admin.csrf().await;

    let reset = admin
        .post_form(
            "/admin/users/alice/password-reset",
            &[("csrf", &csrf), ("confirm", "yes")],
        )
        .await;
    let shown = admin.get(reset.header("location").unwrap()).await;
    let reloaded = admin.get(reset.header("location").unwrap()).await;

    // POST-redirect-GET: the password is on the page the POST redirects to, never in a URL,
    // and only once; reloading that page resets nothing.
    assert_eq!(reset.status, 303);
    assert_eq!(reset.header("location"), Some("/admin/users/alice"));
    assert_eq!(shown.status, 200);
    let start = shown.body.find("<code id=\"new-password\">").unwrap() + 24;
    let password = &shown.body[start..start + 43];
    assert_eq!(reloaded.status, 200);
    assert!(!reloaded.body.contains(password));
    assert!(!reloaded.body.contains("new-password"));
    let audit: Value =
        serde_json::from_str(&admin.get("/api/admin/audit?user=alice&limit=50").await.body)
            .unwrap();
    let resets = audit["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "password_reset")
        .count();
    assert_eq!(resets, 1);
    app.assert_revoked(&[&user]).await;
    assert_eq!(app.browser().login("alice", PASSWORD).await.status, 401);
    assert_eq!(app.browser().login("alice", password).await.status, 303);
}

async fn a_one_time_message_is_shown_only_to_its_owner(backend: Backend) {
    let (app, admin, _) = admin_and_user(backend).await;
    let other_admin = app.logged_in("deputy", &["admin"]).await;
    let csrf = admin.csrf().await;
    let reset = admin
        .post_form(
            "/admin/users/alice/password-reset",
            &[("csrf", &csrf), ("confirm", "yes")],
        )
        .await;
    let flash = reset
        .set_cookies()
        .into_iter()
        .find(|c| c.name() == "__Host-flash")
        .expect("a flash cookie");

    // Another admin's browser replays the flash cookie.
    other_admin.set_named_cookie("__Host-flash", flash.value());
    let seen_by_other = other_admin.get("/admin/users/alice").await;
    let seen_by_owner = admin.get("/admin/users/alice").await;

    // The cookie is HttpOnly, Secure, SameSite=Strict, short-lived; the message is for the
    // admin who caused it alone, and the other admin's try did not spend it.
    assert_eq!(flash.http_only(), Some(true));
    assert_eq!(flash.secure(), Some(true));
    assert_eq!(flash.same_site(), Some(actix_web::cookie::SameSite::Strict));
    assert!(
        flash
            .max_age()
            .is_some_and(|age| age.whole_seconds() <= 120)
    );
    assert_eq!(seen_by_other.status, 200);
    assert!(!seen_by_other.body.contains("id=\"new-password\""));
    assert!(seen_by_owner.body.contains("id=\"new-password\""));
}

async fn admin_creates_users_and_refuses_weak_passwords(backend: Backend) {
    let (app, admin, _) = admin_and_user(backend).await;
    let csrf = admin.csrf().await;

    let created = admin
        .post_form(
            "/admin/users",
            &[
                ("name", "Dora"),
                ("password", "violet harbour lantern mist"),
                ("roles", "editor, viewer"),
                ("csrf", &csrf),
            ],
        )
        .await;
    let weak = admin
        .post_form(
            "/admin/users",
            &[("name", "eve"), ("password", "12345678"), ("csrf", &csrf)],
        )
        .await;
    let duplicate = admin
        .post_form(
            "/admin/users",
            &[
                ("name", "dora"),
                ("password", "violet harbour lantern mist"),
                ("csrf", &csrf),
            ],
        )
        .await;

    let bad_role = admin
        .post_form(
            "/admin/users",
            &[
                ("name", "fred"),
                ("password", "violet harbour lantern mist"),
                ("roles", "Not A Role!"),
                ("csrf", &csrf),
            ],
        )
        .await;

    assert_eq!(created.status, 303);
    assert_eq!(created.header("location"), Some("/admin/users/dora"));
    // Refused forms come back filled in (never the password), the reason by its field.
    assert_eq!(weak.status, 400);
    assert!(weak.body.contains("id=\"password-error\""));
    assert!(weak.body.contains("value=\"eve\""));
    assert!(!weak.body.contains("12345678"));
    assert_eq!(duplicate.status, 409);
    assert!(duplicate.body.contains("id=\"name-error\""));
    assert!(duplicate.body.contains("A user named dora already exists."));
    assert!(!duplicate.body.contains("violet harbour"));
    assert_eq!(bad_role.status, 400);
    assert!(bad_role.body.contains("id=\"roles-error\""));
    assert!(bad_role.body.contains("value=\"fred\""));
    for page in [&weak, &duplicate, &bad_role] {
        assert!(page.body.contains("action=\"/logout\""), "navigation kept");
        assert!(
            !page.body.contains("..<") && !page.body.contains(".. "),
            "no doubled full stop"
        );
    }
    let dora = app.browser();
    assert_eq!(
        dora.login("dora", "violet harbour lantern mist")
            .await
            .status,
        303
    );
    let me: Value = serde_json::from_str(&dora.get("/api/me").await.body).unwrap();
    assert_eq!(me["roles"], json!(["editor", "viewer"]));
}

async fn roles_come_from_the_configured_set(backend: Backend) {
    let (app, admin, _) = admin_and_user(backend).await;
    app.create_user("olga", &["viewer"]).await;
    // A role given before it was taken off `auth.roles`.
    app.store
        .set_roles("olga", &["viewer".into(), "legacy".into()], false)
        .await
        .unwrap();
    let csrf = admin.csrf().await;

    // Act
    let page = admin.get("/admin/users/olga").await;
    let unknown_form = admin
        .post_form(
            "/admin/users/olga/roles",
            &[("role:auditor", "on"), ("csrf", &csrf)],
        )
        .await;
    let unknown_api = admin
        .api(
            Method::PUT,
            "/api/admin/users/olga/roles",
            Some(json!({"roles": ["editor", "auditor"]})),
        )
        .await;
    let unknown_create = admin
        .api(
            Method::POST,
            "/api/admin/users",
            Some(json!({"name": "pia", "password": "violet harbour lantern mist", "roles": ["auditor"]})),
        )
        .await;
    let kept = admin
        .post_form(
            "/admin/users/olga/roles",
            &[
                ("role:legacy", "on"),
                ("role:editor", "on"),
                ("csrf", &csrf),
            ],
        )
        .await;

    // Assert: checkboxes for admin and the configured roles, plus the one olga still has.
    for role in ["admin", "editor", "viewer", "legacy"] {
        assert!(
            page.body.contains(&format!(r#"name="role:{role}""#)),
            "{role}"
        );
    }
    assert!(page.body.contains(r#"id="role-viewer" checked"#));
    assert!(page.body.contains(r#"id="role-legacy" checked"#));
    assert!(page.body.contains("no longer offered"));
    let refusal = "There is no role named auditor. The roles are: admin, editor, viewer.";
    assert_eq!(unknown_form.status, 400);
    assert!(unknown_form.body.contains(refusal), "{}", unknown_form.body);
    for refused in [&unknown_api, &unknown_create] {
        assert_eq!(refused.status, 400, "{}", refused.body);
        let body: Value = serde_json::from_str(&refused.body).unwrap();
        assert_eq!(body["error"], "unknown_role");
        assert_eq!(body["message"], refusal);
    }
    assert_eq!(kept.status, 303, "a role olga has may stay: {}", kept.body);
    let olga = app.store.user("olga").await.unwrap().unwrap();
    assert_eq!(olga.roles, ["editor", "legacy"]);
    assert!(app.store.user("pia").await.unwrap().is_none());
}

async fn users_list_pages_and_searches(backend: Backend) {
    let (app, admin, _) = admin_and_user(backend).await;
    for i in 0..30 {
        app.create_user(&format!("user{i:02}"), &[]).await;
    }

    let first = admin.get("/admin/users?q=user").await;
    let next = form_value(
        &first.body.replace(
            "href=\"/admin/users?q=user&amp;sort=name&amp;after=",
            "name=\"next\" value=\"",
        ),
        "next",
    )
    .expect("a next-page link");
    let second = admin
        .get(&format!("/admin/users?q=user&after={next}"))
        .await;
    let api_page: Value =
        serde_json::from_str(&admin.get("/api/admin/users?q=user1&limit=4").await.body).unwrap();

    assert_eq!(first.body.matches("href=\"/admin/users/user").count(), 25);
    assert_eq!(second.body.matches("href=\"/admin/users/user").count(), 5);
    assert!(second.body.contains("user29"));
    assert!(!second.body.contains("id=\"next-page\""));
    let names: Vec<&str> = api_page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["user10", "user11", "user12", "user13"]);
    assert_eq!(api_page["next"], "user13:user13", "a search cursor");
    assert_eq!(api_page["items"][0]["live_sessions"], 0);
}

async fn search_finds_names_containing_the_text(backend: Backend) {
    let (app, admin, _) = admin_and_user(backend).await;
    for name in ["banana", "anna", "joanne", "bob", "user.an"] {
        app.create_user(name, &[]).await;
    }

    let page = admin.get("/admin/users?q=AN").await;
    let api = |query: &'static str| {
        let admin = &admin;
        async move {
            let page: Value =
                serde_json::from_str(&admin.get(&format!("/api/admin/users?{query}")).await.body)
                    .unwrap();
            page
        }
    };
    let first = api("q=an&limit=2").await;
    let second = api(Box::leak(
        format!(
            "q=an&limit=2&after={}",
            encode(first["next"].as_str().unwrap())
        )
        .into_boxed_str(),
    ))
    .await;

    // Assert: every name with "an" anywhere, once each, however often it occurs.
    let listed: Vec<&str> = page
        .body
        .match_indices("href=\"/admin/users/")
        .map(|(at, _)| {
            let rest = &page.body[at + "href=\"/admin/users/".len()..];
            &rest[..rest.find('"').unwrap()]
        })
        .collect();
    let mut sorted = listed.clone();
    sorted.sort();
    assert_eq!(
        sorted,
        ["anna", "banana", "joanne", "user.an"],
        "{listed:?}"
    );
    assert!(page.body.contains("names containing <strong>an</strong>"));
    let paged: Vec<&str> = first["items"]
        .as_array()
        .unwrap()
        .iter()
        .chain(second["items"].as_array().unwrap())
        .map(|u| u["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        paged, listed,
        "pages of two give the same names in the same order"
    );
    assert!(second["next"].is_null());
    let bad_cursor = admin.get("/admin/users?q=an&after=bob").await;
    assert_eq!(bad_cursor.status, 400, "a name is not a search cursor");
}

async fn session_and_audit_filters_match_names_and_actions(backend: Backend) {
    let (app, admin, _) = admin_and_user(backend).await;
    let dave = app.logged_in("dave", &[]).await;
    app.create_user("davey", &[]).await;
    app.create_user("gone", &[]).await;
    app.operator().delete_user("gone", false).await.unwrap();
    dave.logout().await;
    app.browser().login("dave", PASSWORD).await;

    // Act
    let one_match = admin.get("/admin/sessions?user=LIC").await;
    let several = admin.get("/admin/sessions?user=dav").await;
    let whole_name = admin.get("/admin/audit?user=dave").await;
    let nobody = admin.get("/admin/audit?user=zzz").await;
    let deleted = admin.get("/admin/audit?user=gone").await;
    let logins = admin.get("/admin/audit?action=login").await;
    let daves_logouts = admin.get("/admin/audit?user=dave&action=logout").await;
    let api_logins: Value = serde_json::from_str(
        &admin
            .get("/api/admin/audit?action=login&limit=200")
            .await
            .body,
    )
    .unwrap();
    let bad_action = admin.get("/admin/audit?action=drop_tables").await;
    let bad_api_action = admin.get("/api/admin/audit?action=nope").await;

    // Assert: one match is that user; several are offered as links; none says so.
    assert!(
        one_match.body.contains(r#"value="alice""#),
        "the filter names alice"
    );
    assert_eq!(
        one_match
            .body
            .matches("href=\"/admin/users/alice\"")
            .count(),
        1
    );
    assert!(several.body.contains(r#"id="filter-choices""#));
    assert!(several.body.contains(r#"href="/admin/sessions?user=dave""#));
    assert!(
        several
            .body
            .contains(r#"href="/admin/sessions?user=davey""#)
    );
    assert!(
        !several.body.contains("href=\"/admin/users/dave\""),
        "no listing yet"
    );
    assert!(whole_name.body.contains("dave signed out"));
    assert!(
        whole_name.body.contains("Also containing"),
        "davey offered too"
    );
    assert!(
        nobody
            .body
            .contains("No user has <strong>zzz</strong> in their name; below is")
    );
    let no_sessions = admin.get("/admin/sessions?user=zzz").await;
    assert!(
        no_sessions
            .body
            .contains("No user has <strong>zzz</strong> in their name.")
    );
    assert!(
        deleted.body.contains("deleted gone"),
        "a deleted user's trail stays findable"
    );
    let codes = |body: &str| -> Vec<String> {
        body.match_indices("<td><code>")
            .map(|(at, _)| {
                let rest = &body[at + "<td><code>".len()..];
                rest[..rest.find('<').unwrap()].to_owned()
            })
            .collect()
    };
    let login_codes = codes(&logins.body);
    assert!(login_codes.len() >= 4, "{login_codes:?}");
    assert!(login_codes.iter().all(|c| c == "login"), "{login_codes:?}");
    assert_eq!(codes(&daves_logouts.body), ["logout"]);
    let api_codes: Vec<&str> = api_logins["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(api_codes.len(), login_codes.len());
    assert!(api_codes.iter().all(|c| *c == "login"));
    assert_eq!(bad_action.status, 400);
    assert_eq!(bad_api_action.status, 400);
}

async fn users_sort_by_name_newest_and_last_sign_in(backend: Backend) {
    let (app, admin, _) = admin_and_user(backend).await;
    app.clock.advance(100);
    app.create_user("carol", &[]).await;
    app.clock.advance(100);
    // Three users created in the same second: paging must neither skip nor repeat them.
    let same_second = app.clock.now();
    for name in ["dan", "erin", "fay"] {
        let user = sessiond::store::UserRecord {
            name: name.to_owned(),
            phc: "unused".to_owned(),
            roles: Vec::new(),
            disabled: false,
            created: same_second,
            last_login: 0,
        };
        assert!(app.store.create_user(&user).await.unwrap());
    }
    app.clock.advance(100);
    app.browser().login("carol", PASSWORD).await;
    let names = |page: &Value| -> Vec<String> {
        page["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|u| u["name"].as_str().unwrap().to_owned())
            .collect()
    };
    let all = |sort: &'static str| {
        let admin = &admin;
        async move {
            let mut seen = Vec::new();
            let mut after = String::new();
            loop {
                let page: Value = serde_json::from_str(
                    &admin
                        .get(&format!(
                            "/api/admin/users?sort={sort}&limit=2&after={}",
                            encode(&after)
                        ))
                        .await
                        .body,
                )
                .unwrap();
                seen.extend(names(&page));
                match page["next"].as_str() {
                    Some(next) => after = next.to_owned(),
                    None => return seen,
                }
            }
        }
    };

    // Act
    let by_name = all("name").await;
    let newest = all("newest").await;
    let by_login = all("last-login").await;
    let page = admin.get("/admin/users?sort=newest").await;
    let bad = admin.get("/api/admin/users?sort=shoe-size").await;

    // Assert: every user once in each order.
    let mut expected = by_name.clone();
    expected.sort();
    assert_eq!(by_name, expected);
    assert_eq!(newest.len(), by_name.len(), "{newest:?}");
    assert_eq!(
        &newest[..4],
        ["dan", "erin", "fay", "carol"],
        "newest first, ties by name"
    );
    assert_eq!(by_login.len(), by_name.len(), "{by_login:?}");
    assert_eq!(by_login[0], "carol", "the latest sign-in first");
    assert_eq!(
        &by_login[by_login.len() - 4..],
        ["admin", "dan", "erin", "fay"],
        "never signed in: last"
    );
    assert!(
        page.body
            .contains(r#"aria-sort="descending"><a href="/admin/users?sort=newest""#)
    );
    assert!(page.body.contains("newest first"));
    assert_eq!(bad.status, 400);
}

async fn users_list_shows_sign_ins_throttling_and_unlock(backend: Backend) {
    let (app, admin, _) = admin_and_user(backend).await;
    app.create_user("carl", &[]).await;
    for _ in 0..app.settings.throttle.max_failures_per_account {
        app.browser().login("carl", "not the password").await;
    }
    let refused = app.browser().login("carl", PASSWORD).await;
    let total = app.store.user_count().await.unwrap();

    // Act
    let list = admin.get("/admin/users").await;
    let carl_page = admin.get("/admin/users/carl").await;
    let api_before: Value =
        serde_json::from_str(&admin.get("/api/admin/users?q=carl").await.body).unwrap();
    let csrf = admin.csrf().await;
    let unlocked = admin
        .post_form_and_follow(
            "/admin/users/carl/unlock",
            &[("csrf", &csrf), ("back", "list")],
        )
        .await;
    let signed_in = app.browser().login("carl", PASSWORD).await;
    let api_after: Value =
        serde_json::from_str(&admin.get("/api/admin/users?q=carl").await.body).unwrap();

    // Assert
    assert_eq!(refused.status, 429);
    let row = |body: &str, name: &str| {
        let start = body.find(&format!("id=\"user-{name}\"")).expect(name);
        body[start..start + body[start..].find("</tr>").unwrap()].to_owned()
    };
    let carl = row(&list.body, "carl");
    assert!(carl.contains("throttled (5 failed sign-ins)"), "{carl}");
    assert!(carl.contains("/admin/users/carl/unlock"));
    assert!(carl.contains("never"), "carl never signed in: {carl}");
    let alice = row(&list.body, "alice");
    assert!(
        alice.contains("active") && !alice.contains("never"),
        "{alice}"
    );
    assert!(alice.contains("<time datetime="));
    assert!(list.body.contains(&format!("{total} users in all")));
    assert!(carl_page.body.contains(r#"id="unlock""#));
    assert_eq!(api_before["items"][0]["throttled"], true);
    assert_eq!(api_before["items"][0]["failed_logins"], 5);
    assert_eq!(api_before["items"][0]["last_login"], 0);
    assert!(
        unlocked
            .body
            .contains("Unlocked carl: they can sign in again now.")
    );
    assert!(unlocked.body.contains("<h1>Users</h1>"), "back to the list");
    assert_eq!(signed_in.status, 303);
    assert_eq!(api_after["items"][0]["throttled"], false);
    assert!(api_after["items"][0]["last_login"].as_i64().unwrap() > 0);
    let audit = admin.get("/admin/audit").await;
    assert!(
        audit
            .body
            .contains("boss unlocked carl after failed sign-ins")
    );
}

async fn all_sessions_list_pages_newest_first(backend: Backend) {
    let (app, admin, _) = admin_and_user(backend).await;
    app.create_user("dave", &[]).await;
    let mut browsers = Vec::new();
    for _ in 0..4 {
        let browser = app.browser();
        browser.login("dave", PASSWORD).await;
        browsers.push(browser);
    }
    // One of them ends: it must not appear.
    browsers.remove(1).logout().await;

    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(after) => format!("/api/admin/sessions?limit=2&after={after}"),
            None => "/api/admin/sessions?limit=2".to_owned(),
        };
        let page: Value = serde_json::from_str(&admin.get(&path).await.body).unwrap();
        for item in page["items"].as_array().unwrap() {
            seen.push(item["user"].as_str().unwrap().to_owned());
        }
        match page["next"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => break,
        }
    }

    // 3 live dave sessions (newest first), then alice, then boss.
    assert_eq!(seen, ["dave", "dave", "dave", "alice", "boss"]);
    let html = admin.get("/admin/sessions").await;
    assert_eq!(html.body.matches("href=\"/admin/users/dave\"").count(), 3);
    let filtered = admin.get("/admin/sessions?user=alice").await;
    assert_eq!(filtered.body.matches("href=\"/admin/users/").count(), 1);
}

async fn api_mirrors_the_dashboard(backend: Backend) {
    let (app, admin, user) = admin_and_user(backend).await;

    let created = admin
        .api(Method::POST, "/api/admin/users", Some(json!({"name": "frank", "password": "amber river quietly folds", "roles": ["viewer"]})))
        .await;
    let sessions: Value =
        serde_json::from_str(&admin.get("/api/admin/users/alice/sessions").await.body).unwrap();
    let handle = sessions[0]["handle"].as_str().unwrap().to_owned();
    let revoke_one = admin
        .api(
            Method::DELETE,
            &format!("/api/admin/users/alice/sessions/{handle}"),
            None,
        )
        .await;
    let revoke_gone = admin
        .api(
            Method::DELETE,
            &format!("/api/admin/users/alice/sessions/{handle}"),
            None,
        )
        .await;
    let roles = admin
        .api(
            Method::PUT,
            "/api/admin/users/frank/roles",
            Some(json!({"roles": ["editor"]})),
        )
        .await;
    let disable = admin
        .api(
            Method::PUT,
            "/api/admin/users/frank/disabled",
            Some(json!({"disabled": true})),
        )
        .await;
    let audit: Value =
        serde_json::from_str(&admin.get("/api/admin/audit?user=frank").await.body).unwrap();

    assert_eq!(created.status, 201);
    assert_eq!(sessions.as_array().unwrap().len(), 1);
    assert_eq!(sessions[0]["ip"], "127.0.0.1");
    assert_eq!(revoke_one.status, 204);
    assert_eq!(revoke_gone.status, 404);
    app.assert_revoked(&[&user]).await;
    assert_eq!(roles.status, 204);
    assert_eq!(disable.status, 200);
    let actions: Vec<&str> = audit["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions, ["user_disabled", "roles_changed", "user_created"]);
    let frank = app.browser();
    assert_eq!(
        frank
            .login("frank", "amber river quietly folds")
            .await
            .status,
        403
    );
    let revoke_all = app.logged_in("gina", &[]).await;
    let all = admin
        .api(Method::DELETE, "/api/admin/users/gina/sessions", None)
        .await;
    assert_eq!(
        serde_json::from_str::<Value>(&all.body).unwrap()["revoked"],
        1
    );
    app.assert_revoked(&[&revoke_all]).await;
    let unknown = admin.get("/api/admin/users/nobody/sessions").await;
    assert_eq!(unknown.status, 404);
}

async fn every_action_writes_an_audit_entry_without_secrets(backend: Backend) {
    let app = spawn_app_with(backend, |s| s.throttle.max_failures_per_account = 2).await;
    let admin = app.logged_in("boss", &["admin"]).await;
    let alice = app.logged_in("alice", &[]).await;
    let alice_cookies = alice.jar();
    let new_password = "granite meadow whistles softly";
    let csrf = alice.csrf().await;
    alice
        .post_form(
            "/account/password",
            &[
                ("current", PASSWORD),
                ("new", new_password),
                ("confirm", new_password),
                ("csrf", &csrf),
            ],
        )
        .await;
    alice.logout().await;
    for _ in 0..3 {
        app.browser().login("carl", "wrong guess").await;
    }
    let admin_csrf = admin.csrf().await;
    let handle = {
        let s = app.browser();
        s.login("alice", new_password).await;
        own_handle(&s).await
    };
    for (path, form) in [
        (
            format!("/admin/users/alice/sessions/{handle}/revoke"),
            vec![],
        ),
        ("/admin/users/alice/sessions/revoke-all".to_owned(), vec![]),
        (
            "/admin/users/alice/roles".to_owned(),
            vec![("roles", "editor")],
        ),
        ("/admin/users/alice/disable".to_owned(), vec![]),
        ("/admin/users/alice/enable".to_owned(), vec![]),
        ("/admin/users/alice/password-reset".to_owned(), vec![]),
        ("/admin/users/alice/delete".to_owned(), vec![]),
    ] {
        let mut form = form;
        form.push(("csrf", &admin_csrf));
        form.push(("confirm", "yes"));
        admin.post_form(&path, &form).await;
    }

    let global: Value =
        serde_json::from_str(&admin.get("/api/admin/audit?limit=200").await.body).unwrap();
    let for_alice: Value = serde_json::from_str(
        &admin
            .get("/api/admin/audit?user=alice&limit=200")
            .await
            .body,
    )
    .unwrap();

    let actions: Vec<&str> = global["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    for expected in [
        "login",
        "login_failed",
        "login_throttled",
        "logout",
        "password_changed",
        "session_revoked",
        "all_sessions_revoked",
        "roles_changed",
        "user_disabled",
        "user_enabled",
        "password_reset",
        "user_deleted",
        "user_created",
    ] {
        assert!(
            actions.contains(&expected),
            "{expected} missing from {actions:?}"
        );
    }
    let revoke = global["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["action"] == "session_revoked")
        .unwrap();
    assert_eq!(revoke["actor"], "boss");
    assert_eq!(revoke["target"], "alice");
    assert!(
        for_alice["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["actor"] == "alice" || e["target"] == "alice")
    );
    let everything = global.to_string();
    let mut secrets: Vec<&str> = vec![PASSWORD, new_password, "wrong guess"];
    secrets.extend(alice_cookies.values().map(|v| &v[v.len() - 43..]));
    for secret in secrets {
        assert!(
            !everything.contains(secret),
            "the audit log holds a secret: {secret}"
        );
    }
    let page = admin.get("/admin/audit?user=alice").await;
    assert!(page.body.contains("session_revoked"));
}

async fn every_form_and_api_change_needs_its_csrf_token(backend: Backend) {
    let (_app, admin, user) = admin_and_user(backend).await;
    let handle = own_handle(&user).await;
    let admin_handle = own_handle(&admin).await;
    let forms = [
        (&user, format!("/account/sessions/{handle}/revoke")),
        (&user, "/account/sessions/revoke-others".to_owned()),
        (&user, "/account/password".to_owned()),
        (&user, "/account/reauth".to_owned()),
        (&admin, "/admin/users".to_owned()),
        (&admin, "/admin/users/alice/roles".to_owned()),
        (&admin, "/admin/users/alice/disable".to_owned()),
        (&admin, "/admin/users/alice/password-reset".to_owned()),
        (&admin, "/admin/users/alice/sessions/revoke-all".to_owned()),
        (&admin, "/admin/users/alice/delete".to_owned()),
        (
            &admin,
            format!("/admin/users/alice/sessions/{handle}/revoke"),
        ),
    ];
    for (browser, path) in forms {
        let form = [
            ("current", PASSWORD),
            ("new", "x y z w v u"),
            ("confirm", "x y z w v u"),
            ("password", PASSWORD),
            ("roles", ""),
            ("name", "zed"),
        ];
        let response = browser.post_form(&path, &form).await;
        assert_eq!(response.status, 403, "POST {path} without a token");
    }
    let calls = [
        (
            Method::POST,
            "/api/admin/users".to_owned(),
            json!({"name": "zed", "password": "amber river quietly folds"}),
        ),
        (
            Method::DELETE,
            "/api/admin/users/alice/sessions".to_owned(),
            json!({}),
        ),
        (
            Method::DELETE,
            format!("/api/admin/users/boss/sessions/{admin_handle}"),
            json!({}),
        ),
        (
            Method::PUT,
            "/api/admin/users/alice/roles".to_owned(),
            json!({"roles": []}),
        ),
        (
            Method::PUT,
            "/api/admin/users/alice/disabled".to_owned(),
            json!({"disabled": true}),
        ),
        (
            Method::DELETE,
            "/api/admin/users/alice".to_owned(),
            json!({}),
        ),
        (
            Method::POST,
            "/api/reauth".to_owned(),
            json!({"password": PASSWORD}),
        ),
    ];
    for (method, path, body) in calls {
        let without = admin
            .send(admin.request(method.clone(), &path).json(&body))
            .await;
        let wrong = admin
            .send(
                admin
                    .request(method.clone(), &path)
                    .header("x-csrf-token", "A".repeat(22))
                    .json(&body),
            )
            .await;
        assert_eq!(without.status, 403, "{method} {path} without a token");
        assert_eq!(wrong.status, 403, "{method} {path} with a wrong token");
    }
    // Nothing changed.
    assert_eq!(user.me_status().await, 200);
    assert_eq!(admin.get("/admin/users/zed").await.status, 404);
    let me: Value = serde_json::from_str(&user.get("/api/me").await.body).unwrap();
    assert_eq!(me["roles"], json!(["editor"]));
}

fn overview_number(page: &str, id: &str) -> u64 {
    let marker = format!("id=\"{id}\">");
    let start = page.find(&marker).unwrap() + marker.len();
    page[start..start + page[start..].find('<').unwrap()]
        .parse()
        .unwrap()
}

async fn overview_counts_and_charts_logins(backend: Backend) {
    // A second app whose admin stays signed in across the chart's three hours.
    let quiet = spawn_app_with(backend, |s| s.session.idle_timeout_secs = 4 * 3600).await;
    let first_admin = quiet.logged_in("boss", &["admin"]).await;
    let (app, admin, _) = admin_and_user(backend).await;
    app.browser().login("alice", "wrong guess").await;

    let page = admin.get("/admin").await;
    // Only boss's own login happened on the quiet app, three hours ago by now.
    quiet.clock.advance(3 * 3600 + 60);
    let empty = first_admin.get("/admin").await;

    assert_eq!(page.status, 200);
    let number = |id: &str| overview_number(&page.body, id);
    assert_eq!(number("logins-hour"), 2);
    assert_eq!(number("failed-hour"), 1);
    assert_eq!(number("active-sessions"), 2);
    assert!(number("user-count") >= 3);
    // Both series, a legend, time labels, and bars labelled for a screen reader.
    assert!(page.body.contains("<svg class=\"chart\""));
    assert!(page.body.contains("2 successful login(s)"), "{}", page.body);
    assert!(page.body.contains("1 failed login(s)"));
    assert!(page.body.contains(">successful</text>") && page.body.contains(">failed</text>"));
    assert!(page.body.contains(":00</text>") || page.body.contains(":30</text>"));
    assert!(!page.body.contains("id=\"chart-empty\""));
    assert!(!page.body.contains("<script"));
    assert_eq!(empty.status, 200, "{}", empty.body);
    assert!(empty.body.contains("id=\"chart-empty\""));
    assert!(empty.body.contains("No logins in the last 3 hours."));
}

async fn revocation_counters_count_ended_sessions(backend: Backend) {
    let (app, admin, _alice) = admin_and_user(backend).await;
    app.create_user("carol", &[]).await;
    let second = app.browser();
    second.login("alice", PASSWORD).await;
    let csrf = admin.csrf().await;
    let before = overview_number(&admin.get("/admin").await.body, "revocations-hour");

    // Act: one action that ends nothing, one that ends alice's two sessions.
    admin
        .post_form(
            "/admin/users/carol/sessions/revoke-all",
            &[("csrf", &csrf), ("confirm", "yes")],
        )
        .await;
    let after_none = overview_number(&admin.get("/admin").await.body, "revocations-hour");
    admin
        .post_form(
            "/admin/users/alice/sessions/revoke-all",
            &[("csrf", &csrf), ("confirm", "yes")],
        )
        .await;
    let after_two = overview_number(&admin.get("/admin").await.body, "revocations-hour");
    let metrics = admin.get("/metrics").await.body;

    assert_eq!(after_none, before, "nothing ended, nothing counted");
    assert_eq!(after_two, before + 2);
    assert!(
        metrics.contains("sessiond_revocations_total{kind=\"revoke_all\"} 2"),
        "{metrics}"
    );
}

async fn a_search_that_matches_nobody_is_an_empty_page(backend: Backend) {
    // Arrange
    let (_app, admin, _user) = admin_and_user(backend).await;

    // Act: no name contains "zzz", and "zzzz" sorts after the last user.
    let page = admin.get("/admin/users?q=zzz").await;
    let past_the_end = admin.get("/admin/users?after=zzzz").await;
    let api = admin.get("/api/admin/users?q=zzz").await;
    let api_past_the_end = admin.get("/api/admin/users?after=zzzz&limit=10").await;
    // A cursor that sorts before the search text does not widen the search.
    let api_cursor_before_prefix = admin.get("/api/admin/users?q=zzz&after=e%3Aalice").await;

    // Assert: "no users match", not "temporarily unavailable".
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(page.body.contains("No users match."));
    assert_eq!(past_the_end.status, 200);
    assert!(past_the_end.body.contains("No users match."));
    for response in [api, api_past_the_end, api_cursor_before_prefix] {
        assert_eq!(response.status, 200, "{}", response.body);
        let body: Value = serde_json::from_str(&response.body).unwrap();
        assert_eq!(body["items"], serde_json::json!([]));
        assert_eq!(body["next"], Value::Null);
    }
}

async fn malformed_paging_parameters_are_400_naming_the_parameter(backend: Backend) {
    // Arrange
    let (_app, admin, _user) = admin_and_user(backend).await;
    let huge = "1".repeat(27);

    // Act + Assert: each goes no further than the HTTP boundary.
    for (path, parameter) in [
        ("/admin/audit?before=-1".to_owned(), "before"),
        (format!("/admin/audit?before={huge}"), "before"),
        ("/admin/sessions?after=-1".to_owned(), "after"),
        (
            "/admin/sessions?after=100000000000000000000".to_owned(),
            "after",
        ),
        ("/admin/users?after=(bob".to_owned(), "after"),
        (format!("/admin/users?q={}", "a".repeat(65)), "q"),
    ] {
        let page = admin.get(&path).await;
        assert_eq!(page.status, 400, "{path}: {}", page.body);
        assert!(
            page.body.contains(&format!("`{parameter}`")),
            "{path}: {}",
            page.body
        );
    }
    for (path, parameter) in [
        ("/api/admin/audit?before=-1".to_owned(), "before"),
        (format!("/api/admin/audit?before={huge}"), "before"),
        ("/api/admin/sessions?after=-1".to_owned(), "after"),
        (
            "/api/admin/sessions?after=100000000000000000000".to_owned(),
            "after",
        ),
        ("/api/admin/users?after=(bob".to_owned(), "after"),
        ("/api/admin/users?limit=0".to_owned(), "limit"),
        ("/api/admin/audit?limit=100000".to_owned(), "limit"),
        ("/api/admin/sessions?limit=-1".to_owned(), "limit"),
    ] {
        let response = admin.get(&path).await;
        assert_eq!(response.status, 400, "{path}: {}", response.body);
        let body: Value = serde_json::from_str(&response.body).unwrap();
        assert_eq!(body["error"], "invalid", "{path}");
        assert!(
            body["message"].as_str().unwrap().contains(parameter),
            "{path}: {body}"
        );
    }
    // Cursors a previous page handed out still work, and so does the smallest one.
    assert_eq!(admin.get("/admin/audit?before=0-0").await.status, 200);
    assert_eq!(admin.get("/api/admin/sessions?after=0-0").await.status, 200);
    assert_eq!(
        admin
            .get("/admin/audit?before=99999999999999-0")
            .await
            .status,
        200
    );
    assert_eq!(
        admin
            .get("/api/admin/sessions?after=1-0&limit=5")
            .await
            .status,
        200
    );
}

async fn metrics_are_served_in_prometheus_format(backend: Backend) {
    let app = spawn_app_with(backend, |s| s.server.active_sessions_refresh_secs = 1).await;
    let admin = app.logged_in("boss", &["admin"]).await;
    let user = app.logged_in("alice", &["editor"]).await;
    app.browser().login("alice", "wrong guess").await;
    user.logout().await;
    admin.get("/admin").await;
    let expected_active = match backend {
        // Exact: only boss's session is live.
        Backend::Memory => 1,
        // An estimate of sessions *seen* within the idle window: alice's, ended a moment
        // ago, still counts until its minute leaves the window.
        _ => 2,
    };
    let active_in = |text: &str| -> u64 {
        text.lines()
            .find_map(|l| l.strip_prefix("sessiond_active_sessions "))
            .unwrap()
            .parse()
            .unwrap()
    };

    // Act: the gauge is refreshed in the background (every second here), not by the scrape.
    let mut metrics = app.browser().get("/metrics").await;
    for _ in 0..50 {
        if active_in(&metrics.body) == expected_active {
            break;
        }
        actix_web::rt::time::sleep(std::time::Duration::from_millis(200)).await;
        metrics = app.browser().get("/metrics").await;
    }

    assert_eq!(metrics.status, 200);
    for line in [
        "sessiond_logins_total{outcome=\"success\"} 2",
        "sessiond_logins_total{outcome=\"failure\"} 1",
        "sessiond_revocations_total{kind=\"logout\"} 1",
        "sessiond_http_request_duration_seconds_count{route=\"/admin\",status=\"200\"} 1",
    ] {
        assert!(
            metrics.body.contains(line),
            "missing {line:?} in\n{}",
            metrics.body
        );
    }
    assert_eq!(active_in(&metrics.body), expected_active);
    let round_trips = metrics
        .body
        .lines()
        .find(|l| l.starts_with("sessiond_store_round_trip_seconds_count"))
        .unwrap();
    let count: u64 = round_trips.rsplit(' ').next().unwrap().parse().unwrap();
    if backend != Backend::Memory {
        assert!(count > 0);
    } else {
        assert_eq!(count, 0, "the memory store makes no round trips");
    }
}

async fn an_update_never_brings_a_deleted_session_back(backend: Backend) {
    let app = spawn_app(backend).await;
    app.create_user("alice", &[]).await;
    let tag = app.store.user_tag("alice").await.unwrap();
    let handle = format!("{tag}.h1");
    let fields = vec![
        ("uid".to_owned(), "\"alice\"".to_owned()),
        ("csrf".to_owned(), "\"t\"".to_owned()),
    ];
    app.store
        .create_session(&handle, Some("alice"), fields.clone())
        .await
        .unwrap();
    assert!(app.store.load_session(&handle).await.unwrap().is_some());

    app.store.delete_session(&handle).await.unwrap();
    app.store.update_session(&handle, fields).await.unwrap();

    // Not even a half-written key (which would carry no TTL) may appear. Checked before
    // loading, since a load deletes what it finds expired.
    let key = format!("{}{{{tag}}}s:h1", app.settings.store.key_prefix);
    let mut exists = ::redis::cmd("EXISTS");
    exists.arg(key);
    if let Some(redis) = &app.redis {
        assert!(
            !exists
                .query::<bool>(&mut redis.connection().unwrap())
                .unwrap()
        );
    }
    if let Some(cluster) = &app.cluster {
        assert!(!exists.query::<bool>(&mut cluster.connection()).unwrap());
    }
    assert!(app.store.load_session(&handle).await.unwrap().is_none());
}

async fn api_errors_share_one_shape_and_the_documented_codes(backend: Backend) {
    let (_app, admin, _) = admin_and_user(backend).await;
    let csrf: Value = serde_json::from_str(&admin.get("/api/csrf").await.body).unwrap();
    let csrf = csrf["csrf"].as_str().unwrap().to_owned();

    // Act
    let unknown_user = admin.get("/api/admin/users/nobody/sessions").await;
    let bad_json = admin
        .send(
            admin
                .request(Method::POST, "/api/admin/users")
                .header("x-csrf-token", &csrf)
                .header("content-type", "application/json")
                .body("{\"name\": "),
        )
        .await;
    let weak = admin
        .api(
            Method::POST,
            "/api/admin/users",
            Some(json!({"name": "dave", "password": "dave2024dave"})),
        )
        .await;
    let exists = admin
        .api(
            Method::POST,
            "/api/admin/users",
            Some(json!({"name": "alice", "password": "violet harbour lantern mist"})),
        )
        .await;
    let bad_role = admin
        .api(
            Method::PUT,
            "/api/admin/users/alice/roles",
            Some(json!({"roles": ["No Such Role!"]})),
        )
        .await;
    let no_route = admin.get("/api/admin/nothing-here").await;

    // Assert: every error is {"error": code, "message": sentence}, codes as the README lists.
    for (response, status, code) in [
        (&unknown_user, 404, "not_found"),
        (&bad_json, 400, "invalid"),
        (&weak, 400, "weak_password"),
        (&exists, 409, "exists"),
        (&bad_role, 400, "invalid"),
        (&no_route, 404, "not_found"),
    ] {
        assert_eq!(response.status, status, "{}", response.body);
        let body: Value = serde_json::from_str(&response.body).expect(&response.body);
        let fields: Vec<&String> = body.as_object().unwrap().keys().collect();
        assert_eq!(fields, ["error", "message"], "{}", response.body);
        assert_eq!(body["error"], code, "{}", response.body);
        let message = body["message"].as_str().unwrap();
        assert!(
            message.ends_with('.') && !message.ends_with(".."),
            "{message}"
        );
    }
    let weak: Value = serde_json::from_str(&weak.body).unwrap();
    assert!(weak["message"].as_str().unwrap().contains("user name"));
}

async fn destructive_actions_ask_first(backend: Backend) {
    // Arrange
    let (app, admin, user) = admin_and_user(backend).await;
    let other = app.browser();
    other.login("alice", PASSWORD).await;
    let admin_elsewhere = app.browser();
    admin_elsewhere.login("boss", PASSWORD).await;
    let own_other_handle = {
        let page = admin_elsewhere.get("/account/sessions").await;
        let start = page.body.find("(this session)").unwrap();
        let form = page.body[start..].find("/account/sessions/").unwrap() + start;
        let rest = &page.body[form + "/account/sessions/".len()..];
        rest[..rest.find('/').unwrap()].to_owned()
    };
    let csrf = admin.csrf().await;
    let user_csrf = user.csrf().await;

    // Act: each form's first POST.
    let asked = [
        admin
            .post_form("/admin/users/alice/disable", &[("csrf", &csrf)])
            .await,
        admin
            .post_form("/admin/users/alice/sessions/revoke-all", &[("csrf", &csrf)])
            .await,
        admin
            .post_form("/admin/users/alice/password-reset", &[("csrf", &csrf)])
            .await,
        admin
            .post_form(
                &format!("/admin/users/boss/sessions/{own_other_handle}/revoke"),
                &[("csrf", &csrf), ("back", "sessions")],
            )
            .await,
        user.post_form("/account/sessions/revoke-others", &[("csrf", &user_csrf)])
            .await,
    ];

    // Assert: a page that says what will happen, the same form with confirm=yes, a way back;
    // nothing happened yet.
    for (page, question, cancel) in [
        (&asked[0], "Disable alice?", "/admin/users/alice"),
        (
            &asked[1],
            "End every session of alice?",
            "/admin/users/alice",
        ),
        (
            &asked[2],
            "Reset the password of alice?",
            "/admin/users/alice",
        ),
        (&asked[3], "one of your own sessions", "/admin/sessions"),
        (
            &asked[4],
            "Sign out of every other session?",
            "/account/sessions",
        ),
    ] {
        assert_eq!(page.status, 200, "{}", page.body);
        assert!(page.body.contains(question), "{}", page.body);
        assert!(page.body.contains("name=\"confirm\" value=\"yes\""));
        assert!(
            page.body
                .contains(&format!("href=\"{cancel}\" id=\"cancel\"")),
            "{}",
            page.body
        );
        assert!(page.body.contains("action=\"/logout\""), "navigation kept");
    }
    assert!(asked[3].body.contains("name=\"back\" value=\"sessions\""));
    assert_eq!(user.me_status().await, 200);
    assert_eq!(other.me_status().await, 200);
    assert_eq!(admin_elsewhere.me_status().await, 200);
    assert_eq!(app.browser().login("alice", PASSWORD).await.status, 303);

    // Act: confirmed.
    let ended = admin
        .post_form(
            &format!("/admin/users/boss/sessions/{own_other_handle}/revoke"),
            &[("csrf", &csrf), ("back", "sessions"), ("confirm", "yes")],
        )
        .await;

    // Assert: done, and back where the admin came from.
    assert_eq!(ended.status, 303);
    assert_eq!(ended.header("location"), Some("/admin/sessions"));
    app.assert_revoked(&[&admin_elsewhere]).await;
    assert_eq!(admin.me_status().await, 200);
}

async fn admin_deletes_a_user_keeping_the_audit_trail(backend: Backend) {
    // Arrange
    let (app, admin, user) = admin_and_user(backend).await;
    let second = app.browser();
    second.login("alice", PASSWORD).await;
    let csrf = admin.csrf().await;

    // Act
    let asked = admin
        .post_form("/admin/users/alice/delete", &[("csrf", &csrf)])
        .await;
    let still_there = user.me_status().await;
    let deleted = admin
        .post_form_and_follow(
            "/admin/users/alice/delete",
            &[("csrf", &csrf), ("confirm", "yes")],
        )
        .await;

    // Assert: asked first; then every session ended, the record gone, the trail kept.
    assert_eq!(asked.status, 200);
    assert!(asked.body.contains("Delete alice?"));
    assert_eq!(still_there, 200);
    assert_eq!(deleted.status, 200);
    assert!(
        deleted.body.contains("Deleted alice; 2 sessions ended."),
        "{}",
        deleted.body
    );
    app.assert_revoked(&[&user, &second]).await;
    assert_eq!(admin.get("/admin/users/alice").await.status, 404);
    assert!(!deleted.body.contains("href=\"/admin/users/alice\""));
    assert_eq!(app.browser().login("alice", PASSWORD).await.status, 401);
    let audit: Value =
        serde_json::from_str(&admin.get("/api/admin/audit?user=alice").await.body).unwrap();
    let actions: Vec<&str> = audit["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    // Newest first: the refused sign-in after the deletion, the deletion, and what came before.
    assert_eq!(
        actions[..2],
        ["login_failed", "user_deleted"],
        "{actions:?}"
    );
    assert!(actions.contains(&"login"), "{actions:?}");

    // Act: the API, for a user who does not exist and for one who does.
    let gone = admin
        .api(Method::DELETE, "/api/admin/users/alice", None)
        .await;
    let carol = app.logged_in("carol", &[]).await;
    let api = admin
        .api(Method::DELETE, "/api/admin/users/carol", None)
        .await;

    assert_eq!(gone.status, 404);
    assert_eq!(
        serde_json::from_str::<Value>(&gone.body).unwrap()["error"],
        "not_found"
    );
    assert_eq!(api.status, 200);
    assert_eq!(
        serde_json::from_str::<Value>(&api.body).unwrap()["ended_sessions"],
        1
    );
    app.assert_revoked(&[&carol]).await;
}

async fn the_last_admin_cannot_be_deleted(backend: Backend) {
    let app = spawn_app(backend).await;
    // The bootstrap admin exists too: disable it so "boss" is the last enabled admin.
    app.set_disabled("admin", true).await;
    let boss = app.logged_in("boss", &["admin"]).await;
    let csrf = boss.csrf().await;

    let page = boss
        .post_form(
            "/admin/users/boss/delete",
            &[("csrf", &csrf), ("confirm", "yes")],
        )
        .await;
    let api = boss
        .api(Method::DELETE, "/api/admin/users/boss", None)
        .await;

    assert_eq!(page.status, 409);
    assert!(page.body.contains("That would leave no enabled admin."));
    assert_eq!(api.status, 409);
    assert_eq!(
        serde_json::from_str::<Value>(&api.body).unwrap()["error"],
        "last_admin"
    );
    assert_eq!(
        boss.get("/admin").await.status,
        200,
        "still there, still an admin"
    );
}

async fn session_lists_mark_this_session_and_read_relative_times(backend: Backend) {
    let (app, admin, _user) = admin_and_user(backend).await;
    app.clock.advance(180);

    let own_page = admin.get("/admin/users/boss").await;
    let all = admin.get("/admin/sessions").await;
    let alices = admin.get("/admin/users/alice").await;

    for page in [&own_page, &all] {
        assert_eq!(
            page.body.matches("(this session)").count(),
            1,
            "{}",
            page.body
        );
        assert!(page.body.contains("3 min ago"), "{}", page.body);
        assert!(page.body.contains("<time datetime=\""));
        assert!(
            page.body
                .contains("Last seen is recorded at most once every 60 s.")
        );
    }
    assert!(
        !alices.body.contains("(this session)"),
        "not the admin's session"
    );
}

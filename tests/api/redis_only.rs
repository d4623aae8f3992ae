//! Properties only a shared Redis has: the cost per request, what Redis holds, several
//! instances, and surviving an outage.

use std::collections::HashSet;
use std::sync::Arc;

use super::helpers::{Backend, Browser, PASSWORD, spawn_app, spawn_app_on, spawn_app_with};
use super::redis_server::RedisServer;
use sessiond::store::UserOrder;

/// Commands Redis counts when our load script runs them; they cost no round trip.
const INSIDE_LOAD_SCRIPT: [&str; 7] = [
    "hgetall", "hmget", "hset", "expireat", "zadd", "exists", "info",
];

#[actix_web::test]
async fn an_authenticated_request_costs_one_round_trip() {
    // Arrange
    // The uncached path (the near-cache's own counts are in near_cache.rs).
    let app = spawn_app_with(Backend::Redis, |s| s.store.near_cache = false).await;
    let alice = app.logged_in("alice", &[]).await;
    assert_eq!(alice.me_status().await, 200); // the script is now cached in Redis
    let redis = app.redis.as_ref().unwrap();
    let before = redis.command_calls();

    // Act: 20 requests inside the touch interval, then one that writes "last seen".
    for _ in 0..20 {
        assert_eq!(alice.me_status().await, 200);
    }
    app.clock.advance(61);
    assert_eq!(alice.get("/").await.status, 200);

    // Assert
    let after = redis.command_calls();
    let delta = |name: &str| after.get(name).unwrap_or(&0) - before.get(name).unwrap_or(&0);
    let round_trips: u64 = after
        .keys()
        .filter(|name| !INSIDE_LOAD_SCRIPT.contains(&name.as_str()))
        .map(|name| delta(name))
        .sum();
    assert_eq!(delta("evalsha"), 21);
    assert_eq!(
        round_trips, 21,
        "one EVALSHA per request and nothing else: {after:?}"
    );
    assert_eq!(
        delta("hset"),
        1,
        "last seen is written at most once a minute"
    );
    assert_eq!(delta("ping"), 0, "no pool recycle check per request");
}

#[actix_web::test]
async fn sessions_seen_reach_the_activity_estimate_in_one_batch() {
    // Arrange: five signed-in users, their logins' activity written; then past the touch
    // interval, so each next request slides its session's expiry.
    let app = spawn_app_with(Backend::Redis, |s| s.store.near_cache = false).await;
    let mut users = Vec::new();
    for i in 0..5 {
        users.push(app.logged_in(&format!("active{i}"), &[]).await);
    }
    app.store.flush_activity().await;
    app.clock.advance(61);
    let redis = app.redis.as_ref().unwrap();
    let before = redis.command_calls();

    // Act
    for user in &users {
        assert_eq!(user.me_status().await, 200);
    }
    let after_requests = redis.command_calls();
    app.store.flush_activity().await;
    let after_flush = redis.command_calls();

    // Assert: the requests wrote no activity of their own; one PFADD carried all five.
    let delta =
        |from: &std::collections::HashMap<String, u64>,
         to: &std::collections::HashMap<String, u64>,
         name: &str| to.get(name).unwrap_or(&0) - from.get(name).unwrap_or(&0);
    assert_eq!(delta(&before, &after_requests, "evalsha"), 5);
    assert_eq!(delta(&before, &after_requests, "pfadd"), 0);
    assert_eq!(delta(&after_requests, &after_flush, "pfadd"), 1);
    assert_eq!(app.store.active_sessions().await.unwrap(), 5);
}

#[actix_web::test]
async fn routes_without_an_identity_cost_no_redis_commands_whatever_the_cookie() {
    for backend in [Backend::Redis, Backend::JwtDenylist] {
        // Arrange: a signed-in browser sends its cookies with every request, as browsers do.
        // The near-cache's heartbeat PINGs by the clock: off, so every command counts here.
        let app = spawn_app_with(backend, |s| s.store.near_cache = false).await;
        let alice = app.logged_in("alice", &[]).await;
        assert_eq!(alice.me_status().await, 200);
        let redis = app.redis.as_ref().unwrap();
        let before = redis.command_calls();

        // Act
        let statuses: Vec<(&str, u16)> = {
            let mut statuses = Vec::new();
            for path in [
                "/static/style.css",
                "/healthz",
                "/metrics",
                "/.well-known/jwks.json",
                "/no/such/page",
                "/admin/users/x/y/z/w",
            ] {
                statuses.push((path, alice.get(path).await.status));
            }
            statuses
        };

        // Assert
        let after = redis.command_calls();
        let spent: u64 = after
            .iter()
            .filter(|(name, _)| name.as_str() != "info")
            .map(|(name, calls)| calls - before.get(name).unwrap_or(&0))
            .sum();
        assert_eq!(spent, 0, "{backend:?}: {statuses:?} cost {after:?}");
        assert_eq!(statuses[0].1, 200);
        assert_eq!(statuses[1].1, 200);
        assert_eq!(statuses[2].1, 200);
        assert_eq!(statuses[4].1, 404);
        assert_eq!(statuses[5].1, 404);
    }
}

#[actix_web::test]
async fn a_page_view_with_its_stylesheet_costs_one_round_trip() {
    // Arrange
    // The uncached path (the near-cache's own counts are in near_cache.rs).
    let app = spawn_app_with(Backend::Redis, |s| s.store.near_cache = false).await;
    let alice = app.logged_in("alice", &[]).await;
    assert_eq!(alice.me_status().await, 200);
    let redis = app.redis.as_ref().unwrap();
    let before = redis.command_calls();

    // Act: what a browser fetches for one page.
    assert_eq!(alice.get("/").await.status, 200);
    assert_eq!(alice.get("/static/style.css").await.status, 200);

    // Assert: the page loads the session; the stylesheet costs nothing.
    let after = redis.command_calls();
    let delta = |name: &str| after.get(name).unwrap_or(&0) - before.get(name).unwrap_or(&0);
    let top_level: u64 = after
        .keys()
        .filter(|name| !INSIDE_LOAD_SCRIPT.contains(&name.as_str()))
        .map(|name| delta(name))
        .sum();
    assert_eq!(delta("evalsha"), 1);
    assert_eq!(top_level, 1, "{after:?}");
}

#[actix_web::test]
async fn a_command_redis_refuses_is_a_500_not_an_outage() {
    // Arrange: keys of the wrong type, as a bug in a command we build would meet them.
    let app = spawn_app(Backend::Redis).await;
    let admin = app.logged_in("boss", &["admin"]).await;
    let alice = app.logged_in("alice", &[]).await;
    let prefix = app.settings.store.key_prefix.clone();
    let mut conn = app.redis.as_ref().unwrap().connection().unwrap();
    let _: () = redis::cmd("SET")
        .arg(format!("{prefix}users"))
        .arg("not a sorted set")
        .query(&mut conn)
        .unwrap();
    let alice_tag = app.store.user_tag("alice").await.unwrap();
    let _: () = redis::cmd("SET")
        .arg(format!("{prefix}{{{alice_tag}}}u"))
        .arg("not a hash")
        .query(&mut conn)
        .unwrap();

    // Act: a listing command fails (WRONGTYPE), and so does alice's session load script.
    let page = admin.get("/admin/users").await;
    let api = admin.get("/api/admin/users").await;
    let load = alice.get("/").await;
    let load_api = alice.get("/api/me").await;

    // Assert: a bug, said as one; 503 is kept for "cannot be reached".
    assert_eq!(page.status, 500, "{}", page.body);
    assert!(page.body.contains("Something went wrong"));
    assert_eq!(api.status, 500, "{}", api.body);
    assert_eq!(
        api.body,
        r#"{"error":"internal","message":"The server could not complete this request."}"#
    );
    assert_eq!(load.status, 500, "{}", load.body);
    assert_eq!(load.header("x-frame-options"), Some("DENY"));
    assert_eq!(load_api.status, 500);
    assert!(alice.cookie().is_some(), "the cookie is kept");
    let metrics = app.browser().get("/metrics").await.body;
    let bugs: u64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("sessiond_store_errors_total{class=\"bug\"} "))
        .expect("store errors counted by class")
        .parse()
        .unwrap();
    assert_eq!(bugs, 4, "{metrics}");
    assert!(!metrics.contains("class=\"unreachable\""), "{metrics}");
}

#[actix_web::test]
async fn redis_holds_only_the_hash_of_a_session_id() {
    let app = spawn_app(Backend::Redis).await;
    let alice = app.logged_in("alice", &[]).await;
    let cookie = alice.cookie().unwrap();
    let id = cookie.rsplit("%3D").next().unwrap();
    let mut conn = app.redis.as_ref().unwrap().connection().unwrap();

    let keys: Vec<String> = redis::cmd("KEYS").arg("*").query(&mut conn).unwrap();
    let mut everything = keys.join("\n");
    for key in &keys {
        let kind: String = redis::cmd("TYPE").arg(key).query(&mut conn).unwrap();
        let dump: Vec<String> = match kind.as_str() {
            "hash" => redis::cmd("HGETALL").arg(key).query(&mut conn).unwrap(),
            "zset" => redis::cmd("ZRANGE")
                .arg(key)
                .arg(0)
                .arg(-1)
                .query(&mut conn)
                .unwrap(),
            "set" => redis::cmd("SMEMBERS").arg(key).query(&mut conn).unwrap(),
            // Counters and HyperLogLogs are strings too; the latter are binary.
            "string" => {
                let raw: Vec<u8> = redis::cmd("GET").arg(key).query(&mut conn).unwrap();
                vec![String::from_utf8_lossy(&raw).into_owned()]
            }
            "stream" => {
                let entries: Vec<(String, Vec<String>)> = redis::cmd("XRANGE")
                    .arg(key)
                    .arg("-")
                    .arg("+")
                    .query(&mut conn)
                    .unwrap();
                entries.into_iter().flat_map(|(_, fields)| fields).collect()
            }
            other => panic!("unexpected key type {other}"),
        };
        everything.push_str(&dump.join("\n"));
    }

    assert!(
        !everything.contains(id),
        "the raw session ID must never reach Redis"
    );
    let handle = sessiond::auth::session_store::session_id_hash(id);
    let (tag, hash) = handle.split_once('.').unwrap();
    assert!(
        keys.contains(&format!(
            "{}{{{tag}}}s:{hash}",
            app.settings.store.key_prefix
        )),
        "{handle} {keys:?}"
    );
}

#[actix_web::test]
async fn logout_on_one_instance_is_refused_on_the_other_at_once() {
    // Arrange: two instances of one deployment.
    let redis = Arc::new(RedisServer::start());
    let shared = |s: &mut sessiond::config::Settings| s.store.key_prefix = "shared:".into();
    let a = spawn_app_on(Some(redis.clone()), shared).await;
    let b = spawn_app_on(Some(redis.clone()), shared).await;
    let alice = a.logged_in("alice", &["admin"]).await;
    let same_cookie_on_b = Browser::new(&b.address);
    same_cookie_on_b.set_cookie(alice.cookie());
    assert_eq!(
        same_cookie_on_b.me_status().await,
        200,
        "B accepts A's session"
    );

    // Act
    b.set_roles("alice", &[]).await;
    let demoted_on_a = alice.get("/admin").await.status;
    alice.logout().await;

    // Assert
    assert_eq!(
        demoted_on_a, 403,
        "a role change made through B applies on A"
    );
    assert_eq!(same_cookie_on_b.me_status().await, 401);
}

#[actix_web::test]
async fn redis_outage_is_a_503_and_the_app_recovers_by_itself() {
    // Arrange
    let app = spawn_app(Backend::Redis).await;
    let alice = app.logged_in("alice", &[]).await;
    let redis = app.redis.as_ref().unwrap();

    // Act: Redis goes away.
    redis.stop();
    let page = alice.get("/").await;
    let api = alice.get("/api/me").await;
    let login_form = app.browser().get("/login").await;
    let health = app.browser().get("/healthz").await;
    // A browser (or a probe behind a proxy) sends its cookie to every path.
    let health_with_cookie = alice.get("/healthz").await;
    let stylesheet_with_cookie = alice.get("/static/style.css").await;
    let ready = app.browser().get("/readyz").await;

    // Assert: a clear 503, never a 500, never "logged out".
    assert_eq!(page.status, 503);
    assert!(page.body.contains("Temporarily unavailable"));
    assert!(page.body.contains("You have not been logged out"));
    assert!(page.session_cookie().is_none(), "the cookie is kept");
    assert_eq!(page.header("cache-control"), Some("no-store"));
    assert_eq!(page.header("x-frame-options"), Some("DENY"));
    assert_eq!(api.status, 503);
    assert!(api.body.contains("store unavailable"));
    assert_eq!(login_form.status, 503);
    assert_eq!(health.status, 200);
    assert_eq!(
        health_with_cookie.status, 200,
        "liveness does not depend on Redis"
    );
    assert_eq!(stylesheet_with_cookie.status, 200);
    assert_eq!(ready.status, 503);

    // Act: Redis is back, with its data.
    redis.start_again();

    // Assert: the same cookie works again, with nothing restarted on our side.
    assert_eq!(alice.me_status().await, 200);
    assert_eq!(app.browser().get("/readyz").await.status, 200);
    let again = app.browser();
    assert_eq!(again.login("alice", PASSWORD).await.status, 303);
}

#[actix_web::test]
async fn a_master_refusing_writes_serves_sessions_and_answers_writes_with_503() {
    // Arrange: a signed-in user; then the master takes writes only with a replica connected,
    // and has none (a new master right after a failover, before its replica is back).
    let app = spawn_app_with(Backend::Redis, |s| s.store.near_cache = false).await;
    let alice = app.logged_in("alice", &[]).await;
    let csrf = alice.csrf().await;
    let latecomer = app.browser();
    let form_csrf = latecomer.get("/login").await.csrf();
    let redis = app.redis.as_ref().unwrap();
    let fence = |replicas: u32| {
        let _: () = redis::cmd("CONFIG")
            .arg("SET")
            .arg("min-replicas-to-write")
            .arg(replicas)
            .query(&mut redis.connection().unwrap())
            .unwrap();
    };
    fence(1);
    // Past the touch interval: this load would slide the session's expiry.
    app.clock.advance(61);

    // Act
    let me = alice.me_status().await;
    let logout = alice.post_form("/logout", &[("csrf", &csrf)]).await;
    let me_after_the_refused_logout = alice.me_status().await;
    let login_form = app.browser().get("/login").await;
    let attempt = async |password: &str| {
        latecomer
            .post_form(
                "/login",
                &[
                    ("username", "alice"),
                    ("password", password),
                    ("csrf", &form_csrf),
                ],
            )
            .await
    };
    let login = attempt(PASSWORD).await;
    // A wrong password only counts a failure (throttle counters and the audit trail).
    let wrong_password = attempt("not the password").await;
    // Several writes in one pipeline (an audit entry: its streams and the minute's counter).
    let audit = app
        .store
        .record(
            &sessiond::store::AuditEntry {
                id: String::new(),
                at: 0,
                action: "login".into(),
                actor: "alice".into(),
                target: "bob".into(),
                detail: String::new(),
                ip: String::new(),
            },
            Some((sessiond::store::Stat::Login, 1)),
        )
        .await;
    fence(0);
    let logout_again = alice.logout().await;

    // Assert: reads are served, writes get a clear 503 and change nothing; once a replica is
    // back (the fence lifted), writes work again.
    assert_eq!(me, 200, "a session is read while writes wait for a replica");
    assert_eq!(logout.status, 503);
    assert_eq!(me_after_the_refused_logout, 200);
    assert_eq!(
        login_form.status, 503,
        "a login form is a write (its CSRF session)"
    );
    assert_eq!(login.status, 503, "{}", login.body);
    assert_eq!(wrong_password.status, 503, "{}", wrong_password.body);
    assert!(
        audit.as_ref().is_err_and(|e| e.is_unreachable()),
        "a refused pipeline is an outage, not a bug: {audit:?}"
    );
    assert_eq!(logout_again.status, 303);
    assert_eq!(alice.me_status().await, 401);
}

#[actix_web::test]
async fn instances_share_one_generated_cookie_key() {
    let redis = Arc::new(RedisServer::start());
    let a = spawn_app_on(Some(redis.clone()), |_| {}).await;
    let prefix = a.settings.store.key_prefix.clone();
    let b = spawn_app_on(Some(redis.clone()), move |s| s.store.key_prefix = prefix).await;
    let mut conn = redis.connection().unwrap();

    let secrets: HashSet<String> = redis::cmd("KEYS")
        .arg(format!("{}secret:*", a.settings.store.key_prefix))
        .query::<Vec<String>>(&mut conn)
        .unwrap()
        .into_iter()
        .collect();

    // One cookie key and one user-tag key, whichever instance generated them.
    assert_eq!(secrets.len(), 2, "{secrets:?}");
    let alice = a.logged_in("alice", &[]).await;
    let on_b = Browser::new(&b.address);
    on_b.set_cookie(alice.cookie());
    assert_eq!(on_b.me_status().await, 200);
}

/// A stand-in user record: the store's write path without an argon2 hash per user.
async fn add_user(app: &super::helpers::TestApp, name: &str) {
    let user = sessiond::store::UserRecord {
        name: name.to_owned(),
        phc: "unused".to_owned(),
        roles: Vec::new(),
        disabled: false,
        created: 0,
        last_login: 0,
    };
    assert!(app.store.create_user(&user).await.unwrap());
}

#[actix_web::test]
async fn a_user_search_reads_the_name_index_not_every_user() {
    // Arrange: 500 users, three of them with "zed" in the name.
    let app = spawn_app(Backend::Redis).await;
    let admin = app.logged_in("boss", &["admin"]).await;
    for i in 0..500 {
        add_user(&app, &format!("u{i:03}")).await;
    }
    for name in ["zed", "a.zed.b", "uzed"] {
        add_user(&app, name).await;
    }
    let redis = app.redis.as_ref().unwrap();
    let before = redis.command_calls();

    // Act
    let page = admin.get("/api/admin/users?q=zed").await;

    // Assert
    let after = redis.command_calls();
    let delta = |name: &str| after.get(name).unwrap_or(&0) - before.get(name).unwrap_or(&0);
    let body: serde_json::Value = serde_json::from_str(&page.body).unwrap();
    assert_eq!(body["items"].as_array().unwrap().len(), 3, "{body}");
    assert_eq!(delta("zrangebylex"), 1, "one bounded range read: {after:?}");
    for scan in ["scan", "keys", "zscan", "zrange", "sscan"] {
        assert_eq!(delta(scan), 0, "{scan}");
    }

    // A deleted user leaves nothing in any user index.
    app.operator().delete_user("a.zed.b", false).await.unwrap();
    let mut conn = redis.connection().unwrap();
    let prefix = &app.settings.store.key_prefix;
    for index in ["users", "users:sfx", "users:new", "users:login"] {
        let members: Vec<String> = redis::cmd("ZRANGE")
            .arg(format!("{prefix}{index}"))
            .arg(0)
            .arg(-1)
            .query(&mut conn)
            .unwrap();
        assert!(!members.iter().any(|m| m.contains("a.zed.b")), "{index}");
        assert!(members.iter().any(|m| m.ends_with("uzed")), "{index} kept");
    }
}

#[actix_web::test]
async fn users_created_before_the_name_index_are_entered_at_start_up() {
    // Arrange: users whose name-index entries are missing, as after an upgrade.
    let redis = Arc::new(RedisServer::start());
    let old = spawn_app_on(Some(redis.clone()), |_| {}).await;
    let prefix = old.settings.store.key_prefix.clone();
    for name in ["olivia", "oliver"] {
        add_user(&old, name).await;
    }
    let mut conn = redis.connection().unwrap();
    // The old instance's own start-up indexing (of no one) must be over, or its marker could
    // land after the DEL below.
    for _ in 0..200 {
        let done: bool = redis::cmd("EXISTS")
            .arg(format!("{prefix}users:indexes:v1"))
            .query(&mut conn)
            .unwrap();
        if done {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    let _: () = redis::cmd("DEL")
        .arg(format!("{prefix}users:sfx"))
        .arg(format!("{prefix}users:new"))
        .arg(format!("{prefix}users:login"))
        .arg(format!("{prefix}users:indexes:v1"))
        .query(&mut conn)
        .unwrap();
    assert!(
        old.store
            .list_users("ivi", UserOrder::Name, None, 10)
            .await
            .unwrap()
            .items
            .is_empty()
    );

    // Act: the upgraded version starts on the same store.
    let new = spawn_app_on(Some(redis.clone()), move |s| s.store.key_prefix = prefix).await;

    // Assert: the index is built in the background; wait for it (no timing asserted).
    let mut found = Vec::new();
    for _ in 0..100 {
        found = new
            .store
            .list_users("ivi", UserOrder::Name, None, 10)
            .await
            .unwrap()
            .items;
        if !found.is_empty() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let names: Vec<&str> = found.iter().map(|u| u.name.as_str()).collect();
    assert_eq!(names, ["olivia"]);
    let both = new
        .store
        .list_users("oliv", UserOrder::Name, None, 10)
        .await
        .unwrap()
        .items;
    assert_eq!(both.len(), 2);
    let newest = new
        .store
        .list_users("", UserOrder::Newest, None, 10)
        .await
        .unwrap()
        .items;
    assert_eq!(
        newest.len(),
        3,
        "admin, oliver, olivia in the order index too"
    );
}

fn shipped_redis_conf() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/redis.conf")
}

#[actix_web::test]
async fn readiness_names_what_could_lose_acknowledged_writes() {
    // Arrange: the test Redis keeps nothing on disk; the shipped configuration does.
    let bare = spawn_app(Backend::Redis).await;
    let shipped = Arc::new(RedisServer::start_with_config(shipped_redis_conf()));
    let durable = spawn_app_on(Some(shipped.clone()), |_| {}).await;

    // Act
    let bare_ready = bare.browser().get("/readyz").await;
    let mut conn = bare.redis.as_ref().unwrap().connection().unwrap();
    let _: () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("maxmemory-policy")
        .arg("allkeys-lru")
        .query(&mut conn)
        .unwrap();
    let evicting = bare.browser().get("/readyz").await;
    let durable_ready = durable.browser().get("/readyz").await;

    // Assert
    assert_eq!(bare_ready.status, 200);
    assert!(
        bare_ready
            .body
            .contains("warning: Redis keeps nothing on disk"),
        "{}",
        bare_ready.body
    );
    assert!(!bare_ready.body.contains("evict"));
    assert!(
        evicting
            .body
            .contains("may evict keys (maxmemory-policy allkeys-lru)")
    );
    assert_eq!(durable_ready.status, 200);
    assert_eq!(
        durable_ready.body, "ready\n",
        "deploy/redis.conf leaves nothing to warn of"
    );
}

#[actix_web::test]
async fn redis_killed_and_restarted_from_its_aof_keeps_everything_acknowledged() {
    // Arrange: Redis as shipped (AOF, fsync always); a user, sessions, a role, a revocation.
    let redis = Arc::new(RedisServer::start_with_config(shipped_redis_conf()));
    let app = spawn_app_on(Some(redis.clone()), |_| {}).await;
    let alice = app.logged_in("alice", &["editor"]).await;
    let bob = app.logged_in("bob", &[]).await;
    let revoked = Browser::new(&app.address);
    revoked.set_jar(bob.jar());
    app.operator().revoke_all("bob", None).await.unwrap();
    app.set_roles("alice", &["editor", "viewer"]).await;

    // Act: kill -9, no save; then start again from what is on disk.
    redis.kill();
    let during = alice.me_status().await;
    redis.start_again();
    // The app reconnects on its own; wait for it (no timing asserted).
    let mut status = 0;
    for _ in 0..100 {
        status = alice.me_status().await;
        if status != 503 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }

    // Assert: the session, the role change and the revocation all survived the crash.
    assert_eq!(during, 503);
    assert_eq!(status, 200, "alice's session is back");
    let me: serde_json::Value = serde_json::from_str(&alice.get("/api/me").await.body).unwrap();
    assert_eq!(me["roles"], serde_json::json!(["editor", "viewer"]));
    assert_eq!(
        revoked.me_status().await,
        401,
        "the revocation was not undone"
    );
    // This test's own store handle has connections of its own, which find Redis gone once
    // and reconnect on the next call: the same 503-then-recover as a request.
    let mut audit = None;
    for _ in 0..100 {
        if let Ok(page) = app
            .store
            .audit(sessiond::store::AuditFilter::default(), None, 50)
            .await
        {
            audit = Some(page);
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let audit = audit.expect("the store answers again");
    assert!(app.store.user("bob").await.unwrap().is_some());
    let actions: Vec<&str> = audit.items.iter().map(|e| e.action.as_str()).collect();
    assert!(actions.contains(&"all_sessions_revoked"), "{actions:?}");
    assert!(actions.contains(&"roles_changed"));
    assert_eq!(
        Browser::new(&app.address)
            .login("bob", PASSWORD)
            .await
            .status,
        303
    );
}

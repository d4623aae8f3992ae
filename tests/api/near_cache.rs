//! The near-cache (`store.near_cache`): hits cost no Redis command, and nothing it holds
//! outlives a change made anywhere. Every test runs real instances on a real redis-server.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use redis::AsyncCommands;
use sessiond::clock::Clock;
use sessiond::metrics::Metrics;
use sessiond::store::{Store, UserRecord};

use super::helpers::{Browser, TestApp, spawn_app_on, test_settings};
use super::redis_server::RedisServer;

static DEPLOYMENT: AtomicU64 = AtomicU64::new(0);

/// Two instances of one deployment (one Redis, one key prefix), each with its near-cache.
async fn two_instances(redis: &Arc<RedisServer>) -> (TestApp, TestApp) {
    let prefix = format!("nc{}:", DEPLOYMENT.fetch_add(1, Ordering::Relaxed));
    let instance = || {
        let prefix = prefix.clone();
        spawn_app_on(Some(redis.clone()), move |s| {
            s.store.key_prefix = prefix;
            s.store.near_cache = true;
        })
    };
    let a = instance().await;
    let b = instance().await;
    (a, b)
}

async fn one_instance(
    redis: &Arc<RedisServer>,
    tweak: impl FnOnce(&mut sessiond::config::Settings),
) -> TestApp {
    spawn_app_on(Some(redis.clone()), |s| {
        s.store.near_cache = true;
        tweak(s)
    })
    .await
}

/// Asks until the instance answers `path` from its cache (the tracking connection comes up in
/// the background): afterwards the entry is warm.
async fn warm(app: &TestApp, browser: &Browser, path: &str) {
    for _ in 0..200 {
        let hits = app.metrics.near_cache.hits.get();
        assert_eq!(
            browser.get(path).await.status,
            200,
            "{path} before the change"
        );
        if app.metrics.near_cache.hits.get() > hits {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("the near-cache never served {path}");
}

/// What sessiond's own writers do after a change (`RedisStore::fence`): one more round trip,
/// answered only once Redis has written the change's pushes to every tracking socket. A
/// change made from outside (redis-cli, this test) without it races its pushes by microseconds.
fn fence(conn: &mut redis::Connection) {
    let _: String = redis::cmd("PING").query(conn).unwrap();
}

fn thief(app: &TestApp, victim: &Browser) -> Browser {
    let thief = app.browser();
    thief.set_cookie(victim.cookie());
    thief
}

#[derive(Clone, Copy, Debug)]
enum Change {
    Logout,
    Revoke,
    RevokeAll,
    Demote,
    Disable,
    NewPassword,
    DeleteUser,
}

/// The victim signs in on A; copies of the cookie are warm in both caches; the change is made
/// on A; both copies are refused on their very next request.
async fn a_change_on_one_instance_refuses_warm_copies_on_both(change: Change) {
    // Arrange
    let redis = Arc::new(RedisServer::start());
    let (a, b) = two_instances(&redis).await;
    a.create_user("root", &["admin"]).await;
    let victim = a.logged_in("victim", &["admin"]).await;
    let probe = match change {
        Change::Demote => "/api/admin/users?limit=1",
        _ => "/api/me",
    };
    let on_a = thief(&a, &victim);
    let on_b = thief(&b, &victim);
    warm(&a, &on_a, probe).await;
    warm(&b, &on_b, probe).await;

    // Act
    let operator = a.operator();
    match change {
        Change::Logout => assert_eq!(victim.logout().await.status, 303),
        Change::Revoke => {
            let handles = a.store.user_session_hashes("victim").await.unwrap();
            assert!(
                operator
                    .revoke_session("victim", &handles[0])
                    .await
                    .unwrap()
            );
        }
        Change::RevokeAll => assert_eq!(operator.revoke_all("victim", None).await.unwrap(), 1),
        Change::Demote => a.set_roles("victim", &[]).await,
        Change::Disable => assert_eq!(a.set_disabled("victim", true).await, 1),
        Change::NewPassword => {
            let ended = operator
                .set_password(
                    "victim",
                    "a different horse staple battery",
                    sessiond::audit::Action::PasswordReset,
                )
                .await
                .unwrap();
            assert_eq!(ended, 1);
        }
        Change::DeleteUser => assert_eq!(operator.delete_user("victim", true).await.unwrap(), 1),
    }

    // Assert: the very next request on each instance.
    let refused = match change {
        Change::Demote => 403,
        _ => 401,
    };
    assert_eq!(
        on_b.get(probe).await.status,
        refused,
        "{change:?}: instance B"
    );
    assert_eq!(
        on_a.get(probe).await.status,
        refused,
        "{change:?}: instance A"
    );
}

mod refused_on_both_instances {
    use super::{Change, a_change_on_one_instance_refuses_warm_copies_on_both as check};

    #[actix_web::test]
    async fn after_logout() {
        check(Change::Logout).await
    }
    #[actix_web::test]
    async fn after_revoke() {
        check(Change::Revoke).await
    }
    #[actix_web::test]
    async fn after_revoke_all() {
        check(Change::RevokeAll).await
    }
    #[actix_web::test]
    async fn after_demotion() {
        check(Change::Demote).await
    }
    #[actix_web::test]
    async fn after_disable() {
        check(Change::Disable).await
    }
    #[actix_web::test]
    async fn after_password_change() {
        check(Change::NewPassword).await
    }
    #[actix_web::test]
    async fn after_user_deletion() {
        check(Change::DeleteUser).await
    }
}

fn redis_deltas(
    before: &HashMap<String, u64>,
    after: &HashMap<String, u64>,
) -> HashMap<String, u64> {
    after
        .iter()
        .map(|(name, calls)| (name.clone(), calls - before.get(name).unwrap_or(&0)))
        .filter(|(_, delta)| *delta > 0)
        .collect()
}

/// Every command but the heartbeat's PING and the test's own INFO.
fn commands(deltas: &HashMap<String, u64>) -> u64 {
    deltas
        .iter()
        .filter(|(name, _)| !matches!(name.as_str(), "ping" | "info"))
        .map(|(_, delta)| delta)
        .sum()
}

#[actix_web::test]
async fn a_warm_session_costs_no_redis_command_and_the_touch_costs_one_load() {
    // Arrange
    let redis = Arc::new(RedisServer::start());
    let app = one_instance(&redis, |_| {}).await;
    let alice = app.logged_in("alice", &[]).await;
    warm(&app, &alice, "/api/me").await;
    let before = redis.command_calls();
    let fallbacks = || app.metrics.near_cache.fallbacks.get();
    let fallbacks_before = fallbacks();

    // Act
    for _ in 0..100 {
        assert_eq!(alice.me_status().await, 200);
    }
    let warm_calls = redis.command_calls();
    let fallbacks_warm = fallbacks();
    // Past the touch interval: one load slides the expiry (a write to the session, which
    // Redis does not report back to the connection that made it: tracking is NOLOOP) and the
    // cache keeps the touched session.
    app.clock
        .advance(app.settings.session.touch_interval_secs as i64);
    for _ in 0..100 {
        assert_eq!(alice.me_status().await, 200);
    }
    let after = redis.command_calls();

    // Assert: nothing but the heartbeat. A request that found the heartbeat late (a busy
    // machine can delay the cache's thread past 300 ms) loads the normal way: it is counted
    // as a fallback, and only such requests may have cost a load.
    let warm_deltas = redis_deltas(&before, &warm_calls);
    let warm_fallbacks = fallbacks_warm - fallbacks_before;
    assert!(warm_fallbacks <= 5, "{warm_fallbacks} fallbacks");
    assert_eq!(
        commands(&warm_deltas),
        3 * warm_fallbacks, // EVALSHA, and the HGETALL and HMGET inside it
        "100 warm requests sent {warm_deltas:?}"
    );
    let touch_deltas = redis_deltas(&warm_calls, &after);
    let touch_fallbacks = fallbacks() - fallbacks_warm;
    assert_eq!(
        touch_deltas.get("evalsha").copied().unwrap_or(0),
        1 + touch_fallbacks,
        "the touch costs one load: {touch_deltas:?}"
    );
    assert_eq!(touch_deltas.get("hset"), Some(&1), "{touch_deltas:?}");
    // The touched session is still tracked: deleting it behind the app's back is seen.
    let mut conn = redis.connection().unwrap();
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{}{{*}}s:*", app.settings.store.key_prefix))
        .query(&mut conn)
        .unwrap();
    redis::cmd("DEL").arg(&keys).query::<()>(&mut conn).unwrap();
    fence(&mut conn);
    assert_eq!(alice.me_status().await, 401);
}

#[actix_web::test]
async fn a_cached_session_past_its_idle_deadline_is_refused_without_asking_redis() {
    // Arrange
    let redis = Arc::new(RedisServer::start());
    let app = one_instance(&redis, |_| {}).await;
    let alice = app.logged_in("alice", &[]).await;
    warm(&app, &alice, "/api/me").await;
    let before = redis.command_calls();

    // Act: Redis still holds the key (its TTL runs on Redis's own clock), the cache knows.
    app.clock
        .advance(app.settings.session.idle_timeout_secs as i64 + 1);
    let status = alice.me_status().await;

    // Assert
    assert_eq!(status, 401);
    let deltas = redis_deltas(&before, &redis.command_calls());
    assert_eq!(
        deltas.get("evalsha"),
        None,
        "the load went to Redis: {deltas:?}"
    );
}

#[actix_web::test]
async fn flushall_empties_the_cache() {
    // Arrange
    let redis = Arc::new(RedisServer::start());
    let app = one_instance(&redis, |_| {}).await;
    let alice = app.logged_in("alice", &[]).await;
    warm(&app, &alice, "/api/me").await;
    assert!(app.metrics.near_cache.entries.get() > 0);

    // Act
    let mut conn = redis.connection().unwrap();
    redis::cmd("FLUSHALL").query::<()>(&mut conn).unwrap();
    fence(&mut conn);
    let status = alice.me_status().await;

    // Assert: refused at once (the request may have found the push still unread and asked
    // Redis); the cache is empty once the push is handled.
    assert_eq!(status, 401);
    for _ in 0..100 {
        if app.metrics.near_cache.entries.get() == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(app.metrics.near_cache.entries.get(), 0);
}

#[actix_web::test]
async fn a_killed_tracking_connection_serves_no_stale_hit() {
    // Arrange
    let redis = Arc::new(RedisServer::start());
    let app = one_instance(&redis, |s| s.store.key_prefix = "kill:".into()).await;
    let alice = app.logged_in("alice", &[]).await;
    let tag = app.store.user_tag("alice").await.unwrap();
    warm(&app, &alice, "/api/me").await;
    let mut conn = redis.connection().unwrap();

    // Act: every connection of the app dies; then Alice is disabled behind its back, where
    // no invalidation can reach a connection that no longer exists.
    redis::cmd("CLIENT")
        .arg("KILL")
        .arg("TYPE")
        .arg("normal")
        .query::<()>(&mut conn)
        .unwrap();
    redis::cmd("HSET")
        .arg(format!("kill:{{{tag}}}u"))
        .arg("disabled")
        .arg("1")
        .query::<()>(&mut conn)
        .unwrap();
    fence(&mut conn);

    // Assert: the request that finds the app's own connection dead is a 503 (and replaces
    // it); never a 200.
    let mut statuses = vec![alice.me_status().await];
    while statuses.len() < 5 && statuses.last() == Some(&503) {
        statuses.push(alice.me_status().await);
    }
    assert_eq!(statuses.last(), Some(&401), "{statuses:?}");
}

#[actix_web::test]
async fn while_redis_is_down_no_hit_is_served_and_the_cache_comes_back_by_itself() {
    // Arrange
    let redis = Arc::new(RedisServer::start());
    let app = one_instance(&redis, |s| s.store.key_prefix = "down:".into()).await;
    let alice = app.logged_in("alice", &[]).await;
    let tag = app.store.user_tag("alice").await.unwrap();
    let bob = app.logged_in("bob", &[]).await;
    warm(&app, &alice, "/api/me").await;

    // Act 1: Redis stops (saving its data).
    redis.stop();
    let while_down = alice.me_status().await;

    // Act 2: it comes back with the same sessions; once the cache serves Bob again, Alice is
    // disabled behind the app's back. An entry kept from before the restart would let her in:
    // the new tracking connection never read her keys, so nothing would evict it.
    redis.start_again();
    let mut statuses = Vec::new();
    for _ in 0..300 {
        let hits = app.metrics.near_cache.hits.get();
        let status = bob.me_status().await;
        statuses.push(status);
        if status == 200 && app.metrics.near_cache.hits.get() > hits {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut conn = redis.connection().unwrap();
    redis::cmd("HSET")
        .arg(format!("down:{{{tag}}}u"))
        .arg("disabled")
        .arg("1")
        .query::<()>(&mut conn)
        .unwrap();
    fence(&mut conn);

    // Assert
    assert_eq!(while_down, 503, "a request while Redis is down");
    assert!(
        statuses.iter().all(|s| *s == 200 || *s == 503),
        "only 200 or 503 while recovering: {statuses:?}"
    );
    assert_eq!(
        statuses.last(),
        Some(&200),
        "the app never recovered: {statuses:?}"
    );
    assert_eq!(alice.me_status().await, 401);
}

#[actix_web::test]
async fn the_cache_holds_no_more_than_its_bound() {
    // Arrange
    let redis = Arc::new(RedisServer::start());
    let app = one_instance(&redis, |s| s.store.near_cache_entries = 2).await;
    let mut browsers = Vec::new();
    for name in ["ann", "ben", "cat"] {
        browsers.push(app.logged_in(name, &[]).await);
    }

    // Act
    for browser in &browsers {
        warm(&app, browser, "/api/me").await;
    }
    // Assert: the most recent is a hit; the least recently used went (a miss).
    assert_eq!(app.metrics.near_cache.entries.get(), 2);
    let (hits, misses) = (
        app.metrics.near_cache.hits.get(),
        app.metrics.near_cache.misses.get(),
    );
    assert_eq!(browsers[2].me_status().await, 200);
    assert_eq!(app.metrics.near_cache.hits.get(), hits + 1);
    assert_eq!(browsers[0].me_status().await, 200);
    assert_eq!(app.metrics.near_cache.misses.get(), misses + 1);
    assert_eq!(app.metrics.near_cache.entries.get(), 2);
}

#[actix_web::test]
async fn the_overview_shows_the_hit_ratio() {
    // Arrange
    let redis = Arc::new(RedisServer::start());
    let app = one_instance(&redis, |_| {}).await;
    let admin = app.logged_in("root", &["admin"]).await;
    warm(&app, &admin, "/api/me").await;

    // Act
    let page = admin.get("/admin").await;

    // Assert
    assert_eq!(page.status, 200);
    assert!(
        page.body.contains("id=\"near-cache-hits\""),
        "{}",
        page.body
    );
    assert!(page.body.contains("% of "), "{}", page.body);
}

/// Many readers load sessions through the cache while another client, on a thread of its own,
/// rewrites those sessions and their owners' roles; once the writes stop, everything the cache
/// serves equals Redis.
#[actix_web::test]
async fn concurrent_reads_and_writes_leave_no_stale_entry() {
    // Arrange
    const SESSIONS: usize = 200;
    let redis = Arc::new(RedisServer::start());
    let mut settings = test_settings();
    settings.store.url = redis.url();
    settings.store.near_cache = true;
    let prefix = settings.store.key_prefix.clone();
    let metrics = Arc::new(Metrics::default());
    let store = Arc::new(Store::open(&settings, Clock::system(), metrics.clone()).expect("store"));
    let now = Clock::system().now();
    let mut sids = Vec::new();
    for i in 0..SESSIONS {
        let user = format!("u{}", i % 20);
        if i < 20 {
            let record = UserRecord {
                name: user.clone(),
                phc: "x".into(),
                roles: vec!["viewer".into()],
                disabled: false,
                created: now,
                last_login: 0,
            };
            assert!(store.create_user(&record).await.unwrap());
        }
        let tag = store.user_tag(&user).await.unwrap();
        let sid = format!("{tag}.sid{i:04}");
        store
            .create_session(
                &sid,
                Some(&user),
                vec![
                    ("uid".into(), format!("\"{user}\"")),
                    ("n".into(), "0".into()),
                ],
            )
            .await
            .unwrap();
        sids.push((sid, tag));
    }
    for _ in 0..200 {
        store.load_session(&sids[0].0).await.unwrap();
        if metrics.near_cache.hits.get() > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let sids = Arc::new(sids);

    // Act: four readers, one writer, 3,000 writes.
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut readers = Vec::new();
    for r in 0..4 {
        let (store, sids, stop) = (store.clone(), sids.clone(), stop.clone());
        readers.push(tokio::spawn(async move {
            let mut i = r;
            while !stop.load(Ordering::Relaxed) {
                let (sid, _) = &sids[i % SESSIONS];
                store.load_session(sid).await.expect("load");
                i += 7;
            }
        }));
    }
    let writes = {
        let (url, prefix, sids) = (redis.url(), prefix.clone(), sids.clone());
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async move {
                let client = redis::Client::open(url).unwrap();
                let mut writer = client.get_multiplexed_async_connection().await.unwrap();
                for n in 1..=3000u64 {
                    let (sid, tag) = &sids[(n as usize * 13) % SESSIONS];
                    let h = &sid[sid.len() - 7..];
                    if n % 3 == 0 {
                        let _: () = writer
                            .hset(
                                format!("{prefix}{{{tag}}}u"),
                                "roles",
                                format!("viewer,r{n}"),
                            )
                            .await
                            .unwrap();
                    } else {
                        let _: () = writer
                            .hset(format!("{prefix}{{{tag}}}s:{h}"), "n", n.to_string())
                            .await
                            .unwrap();
                    }
                }
                // As sessiond's writers do: the last pushes are out when this returns.
                let _: String = redis::cmd("PING").query_async(&mut writer).await.unwrap();
            })
        })
    };
    while !writes.is_finished() {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    writes.join().unwrap();
    stop.store(true, Ordering::Relaxed);
    for reader in readers {
        reader.await.unwrap();
    }
    let during = (
        metrics.near_cache.hits.get(),
        metrics.near_cache.invalidations.get(),
    );

    let client = redis::Client::open(redis.url()).unwrap();
    let mut writer = client.get_multiplexed_async_connection().await.unwrap();

    // Assert: read twice (the first may fill, the second is then a hit) and compare.
    let hits_before_check = metrics.near_cache.hits.get();
    let mut stale = Vec::new();
    for (sid, tag) in sids.iter() {
        let h = &sid[sid.len() - 7..];
        let n: String = writer
            .hget(format!("{prefix}{{{tag}}}s:{h}"), "n")
            .await
            .unwrap();
        let roles: String = writer
            .hget(format!("{prefix}{{{tag}}}u"), "roles")
            .await
            .unwrap();
        for _ in 0..2 {
            let loaded = store.load_session(sid).await.unwrap().expect("session");
            if loaded["n"] != n || loaded["_roles"] != roles {
                stale.push((sid.clone(), loaded["n"].clone(), n.clone()));
            }
        }
    }
    assert_eq!(
        stale.len(),
        0,
        "stale entries: {:?}",
        &stale[..stale.len().min(5)]
    );
    // Not vacuous: the readers were served hits while entries were being invalidated, and
    // the check itself read from the cache.
    assert!(
        during.0 > 0 && during.1 > 0,
        "hits, invalidations: {during:?}"
    );
    assert!(metrics.near_cache.hits.get() > hits_before_check);
}

/// Every change to a session or user record is followed by one PING before it is reported
/// done: Redis may write the writer's answer before the pushes to other instances, and the
/// PING's answer comes after all of them. Counted on an instance without a cache of its own
/// (no heartbeat), which fences all the same: it protects the others.
#[actix_web::test]
async fn changes_are_fenced_even_by_an_instance_without_a_cache() {
    // Arrange
    let redis = Arc::new(RedisServer::start());
    let app = spawn_app_on(Some(redis.clone()), |s| s.store.near_cache = false).await;
    app.create_user("alice", &["editor"]).await;
    let before = redis.command_calls();

    // Act: a role change, then a revoke-all.
    app.set_roles("alice", &["viewer"]).await;
    app.operator().revoke_all("alice", None).await.unwrap();

    // Assert
    let deltas = redis_deltas(&before, &redis.command_calls());
    assert_eq!(deltas.get("ping"), Some(&2), "{deltas:?}");
}

//! sessiond on a Redis Cluster and behind Sentinel: where keys land, and failovers under a
//! write load that lose no acknowledged write. Recovery times are printed (run with
//! `--nocapture` to read them), never asserted: speed belongs to the benchmark.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use sessiond::store::UserRecord;

use super::helpers::{Browser, PASSWORD, TestApp, form_value, spawn_app_on, spawn_app_on_cluster};
use super::redis_cluster::{RedisCluster, SentinelGroup, wait_for};
use super::redis_server::Certificates;

#[actix_web::test]
async fn sessions_of_a_thousand_users_land_on_every_master() {
    // Arrange
    let cluster = Arc::new(RedisCluster::start(0));
    let app = spawn_app_on_cluster(cluster.clone(), |_| {}).await;
    let prefix = app.settings.store.key_prefix.clone();

    // Act: a thousand users, one session each, through the session backend's own path.
    for i in 0..1000 {
        let name = format!("user{i:04}");
        let record = UserRecord {
            name: name.clone(),
            phc: "unused".into(),
            roles: Vec::new(),
            disabled: false,
            created: 0,
            last_login: 0,
        };
        assert!(app.store.create_user(&record).await.unwrap());
        let tag = app.store.user_tag(&name).await.unwrap();
        let id = sessiond::auth::session_store::new_session_id(&tag).unwrap();
        let state = [("uid".to_owned(), format!("\"{name}\""))].into();
        sessiond::auth::session_store::store_new_session(&app.store, &id, state)
            .await
            .unwrap();
    }

    // Assert: every master holds 20-47% of the sessions.
    let per_master: Vec<usize> = cluster.nodes[..cluster.masters]
        .iter()
        .map(|node| {
            redis::cmd("KEYS")
                .arg(format!("{prefix}{{*}}s:*"))
                .query::<Vec<String>>(&mut node.connection().unwrap())
                .unwrap()
                .len()
        })
        .collect();
    assert_eq!(per_master.iter().sum::<usize>(), 1000, "{per_master:?}");
    for held in &per_master {
        assert!((200..=470).contains(held), "{per_master:?}");
    }
    // And the dashboards' global views still see all of them.
    assert_eq!(
        app.store.user_count().await.unwrap(),
        1001,
        "and the first admin"
    );
    assert_eq!(
        app.store.sessions_of("user0042").await.unwrap().len(),
        1,
        "a user's index lives in the user's slot"
    );
}

#[actix_web::test]
async fn an_authenticated_request_costs_one_command_on_a_cluster() {
    // Arrange: a signed-in user; the login's own writes are done.
    let cluster = Arc::new(RedisCluster::start(0));
    let app = spawn_app_on_cluster(cluster.clone(), |_| {}).await;
    let alice = app.logged_in("alice", &[]).await;
    assert_eq!(alice.me_status().await, 200);
    let round_trips = || async {
        let metrics = app.browser().get("/metrics").await.body;
        metrics
            .lines()
            .find(|l| l.starts_with("sessiond_store_round_trip_seconds_count"))
            .and_then(|l| l.rsplit(' ').next())
            .map(|n| n.parse::<u64>().unwrap())
            .unwrap()
    };
    let trips_before = round_trips().await;
    let before = cluster.command_calls();
    // Past the touch interval: the first request slides the session's expiry (the activity it
    // notes is written later, in a batch).
    app.clock.advance(61);

    // Act
    for _ in 0..10 {
        assert_eq!(alice.me_status().await, 200);
    }

    // Assert: ten requests, ten round trips, each the load script on the node holding alice
    // (its reads inside the script count as commands too).
    assert_eq!(round_trips().await - trips_before, 10);
    let after = cluster.command_calls();
    let delta =
        |command: &str| after.get(command).unwrap_or(&0) - before.get(command).unwrap_or(&0);
    assert_eq!(delta("evalsha"), 10);
}

/// What a load saw: HTTP statuses, and which sessions must be alive or dead at the end.
#[derive(Default)]
struct Ledger {
    statuses: BTreeMap<u16, u64>,
    /// Sessions whose login was acknowledged (303) and that nothing acknowledged ended.
    alive: Vec<Browser>,
    /// Sessions whose logout or revocation was acknowledged.
    dead: Vec<Browser>,
    acknowledged_revocations: u64,
    /// When each write was acknowledged (a login or logout answered 303), to find the first
    /// after a failover.
    acknowledged_at: Vec<Instant>,
}

impl Ledger {
    fn saw(&mut self, status: u16) {
        *self.statuses.entry(status).or_default() += 1;
    }

    fn acknowledged(&mut self, acks: &AtomicU64) {
        self.acknowledged_at.push(Instant::now());
        acks.fetch_add(1, Ordering::Relaxed);
    }
}

/// A signed-in reader asking `/api/me` every 20 ms until `stop`: when each read succeeded.
async fn reader_loop(
    reader: &Browser,
    stop: Arc<AtomicBool>,
) -> (BTreeMap<u16, u64>, Vec<Instant>) {
    let mut statuses = BTreeMap::new();
    let mut served = Vec::new();
    while !stop.load(Ordering::Relaxed) {
        let status = reader.me_status().await;
        *statuses.entry(status).or_default() += 1;
        if status == 200 {
            served.push(Instant::now());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    (statuses, served)
}

/// Asks `/api/me` until the answer is not 503 (the store unreachable is not a verdict).
async fn settled_status(browser: &Browser) -> u16 {
    for _ in 0..100 {
        let status = browser.me_status().await;
        if status != 503 {
            return status;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    503
}

/// One client's loop over its own user until `stop`: sign in, look at `/api/me`, then keep the
/// session, sign out, or (as an operator) revoke all of the user's sessions, in turn.
async fn client_loop(
    app: &TestApp,
    user: String,
    stop: Arc<AtomicBool>,
    acks: Arc<AtomicU64>,
) -> Ledger {
    let mut ledger = Ledger::default();
    let mut mine: Vec<Browser> = Vec::new();
    let mut turn = 0u64;
    while !stop.load(Ordering::Relaxed) {
        turn += 1;
        let browser = app.browser();
        let page = browser.get("/login").await;
        ledger.saw(page.status);
        let Some(csrf) = form_value(&page.body, "csrf") else {
            tokio::time::sleep(Duration::from_millis(20)).await;
            continue;
        };
        let login = browser
            .post_form(
                "/login",
                &[("username", &user), ("password", PASSWORD), ("csrf", &csrf)],
            )
            .await;
        ledger.saw(login.status);
        if login.status == 303 {
            ledger.acknowledged(&acks);
        } else {
            tokio::time::sleep(Duration::from_millis(20)).await;
            continue;
        }
        let me = browser.get("/api/me").await;
        ledger.saw(me.status);
        match turn % 3 {
            0 => mine.push(browser),
            1 => {
                let home = browser.get("/").await;
                ledger.saw(home.status);
                let Some(csrf) = form_value(&home.body, "csrf") else {
                    // Unknown whether it lives on: not counted either way.
                    continue;
                };
                let out = browser.post_form("/logout", &[("csrf", &csrf)]).await;
                ledger.saw(out.status);
                if out.status == 303 {
                    ledger.acknowledged(&acks);
                    ledger.dead.push(browser);
                    ledger.acknowledged_revocations += 1;
                }
            }
            _ => {
                mine.push(browser);
                if app.operator().revoke_all(&user, None).await.is_ok() {
                    ledger.dead.append(&mut mine);
                    ledger.acknowledged_revocations += 1;
                } else {
                    // Unacknowledged: those sessions may or may not have ended.
                    mine.clear();
                }
            }
        }
    }
    ledger.alive = mine;
    ledger
}

/// What a failover cost: the load's ledger, and how long after a master was reachable again
/// reads were served and writes acknowledged again.
struct Outcome {
    ledger: Ledger,
    reads_again: Duration,
    writes_again: Duration,
}

/// Runs `clients` loops and a reader while `fault` (on a thread of its own) breaks the store
/// and reports when a master is reachable again; then checks every acknowledged outcome.
async fn survive(
    app: &TestApp,
    clients: usize,
    fault: impl FnOnce() -> Instant + Send + 'static,
) -> Outcome {
    for i in 0..clients {
        app.create_user(&format!("load{i}"), &[]).await;
    }
    let reader = app.logged_in("reader", &[]).await;
    let stop = Arc::new(AtomicBool::new(false));
    let acks = Arc::new(AtomicU64::new(0));
    let loops = futures_util::future::join_all(
        (0..clients).map(|i| client_loop(app, format!("load{i}"), stop.clone(), acks.clone())),
    );
    let faults = {
        let (stop, acks) = (stop.clone(), acks.clone());
        tokio::task::spawn_blocking(move || {
            // The load stops however the fault ends, a failed wait included.
            let _stop = StopOnDrop(stop);
            std::thread::sleep(Duration::from_millis(500));
            let reachable = fault();
            // Keep the load on until writes are acknowledged again (or 20 s), and a while
            // after.
            let acked = acks.load(Ordering::Relaxed);
            let deadline = Instant::now() + Duration::from_secs(20);
            while acks.load(Ordering::Relaxed) == acked && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
            std::thread::sleep(Duration::from_secs(2));
            reachable
        })
    };
    let ((ledgers, (read_statuses, reads)), reachable) = futures_util::future::join(
        futures_util::future::join(loops, reader_loop(&reader, stop.clone())),
        faults,
    )
    .await;
    let reachable = reachable.unwrap();
    let mut total = Ledger::default();
    for ledger in ledgers {
        for (status, n) in ledger.statuses {
            *total.statuses.entry(status).or_default() += n;
        }
        total.alive.extend(ledger.alive);
        total.dead.extend(ledger.dead);
        total.acknowledged_revocations += ledger.acknowledged_revocations;
        total.acknowledged_at.extend(ledger.acknowledged_at);
    }
    for (status, n) in read_statuses {
        *total.statuses.entry(status).or_default() += n;
    }
    let first_after = |times: &[Instant], what: &str| {
        times
            .iter()
            .filter(|t| **t >= reachable)
            .min()
            .map(|t| t.duration_since(reachable))
            .unwrap_or_else(|| panic!("no {what} after the failover"))
    };
    let reads_again = first_after(&reads, "read served");
    let writes_again = first_after(&total.acknowledged_at, "write acknowledged");

    // Every status was a clear answer: success, a refusal, or 503 while no master answered.
    for status in total.statuses.keys() {
        assert!(
            *status < 500 || *status == 503,
            "status {status} during a failover: {:?}",
            total.statuses
        );
    }
    // Nothing acknowledged was lost: live sessions answer 200, ended ones 401.
    total.alive.push(reader);
    let mut lost_sessions: Vec<u16> = Vec::new();
    for browser in &total.alive {
        let status = settled_status(browser).await;
        if status != 200 {
            lost_sessions.push(status);
        }
    }
    let mut lost_revocations: Vec<u16> = Vec::new();
    for browser in &total.dead {
        let status = settled_status(browser).await;
        if status != 401 {
            lost_revocations.push(status);
        }
    }
    assert_eq!(
        lost_sessions,
        Vec::<u16>::new(),
        "acknowledged sessions lost (their statuses)"
    );
    assert_eq!(
        lost_revocations,
        Vec::<u16>::new(),
        "acknowledged revocations lost (their statuses)"
    );
    assert!(total.acknowledged_revocations > 0);
    Outcome {
        ledger: total,
        reads_again,
        writes_again,
    }
}

/// Watches a demoted master from the moment another node took its place until it answers as
/// a replica (or 30 s): the writes it executed in that time, beyond `baseline`. Every one of
/// them would be lost when it resyncs from the new master.
fn writes_accepted_while_demoted(
    node: impl Fn() -> Option<(bool, u64)> + Send + 'static,
    baseline: u64,
) -> std::thread::JoinHandle<u64> {
    std::thread::spawn(move || {
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut accepted = 0;
        while Instant::now() < deadline {
            match node() {
                Some((true, writes)) => accepted = writes.saturating_sub(baseline),
                Some((false, _)) => break,
                None => {}
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        accepted
    })
}

/// `role_and_writes` of the group's server on `old`, a master the sentinels replaced; it counts
/// as demoted (`(false, _)`, the watch ends) once they name it master again (a second
/// failover, say the new master too slow to answer on a loaded machine, promoted it back).
fn demoted_sentinel_server(
    group: Arc<SentinelGroup>,
    old: u16,
) -> impl Fn() -> Option<(bool, u64)> + Send + 'static {
    let named_another = AtomicBool::new(false);
    move || {
        match group.try_master_port() {
            Some(port) if port != old => named_another.store(true, Ordering::Relaxed),
            Some(_) if named_another.load(Ordering::Relaxed) => return Some((false, 0)),
            _ => {}
        }
        group.server(old).role_and_writes()
    }
}

/// Polls until `node` answers as a master, as soon as it does.
fn promoted(node: impl Fn() -> Option<(bool, u64)>) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !node().is_some_and(|(master, _)| master) {
        assert!(
            Instant::now() < deadline,
            "timed out waiting for a promotion"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
}

struct StopOnDrop(Arc<AtomicBool>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

fn report(what: &str, outcome: &Outcome, demoted_writes: Option<u64>) {
    let demoted = demoted_writes
        .map(|n| format!("; writes accepted by the demoted master: {n}"))
        .unwrap_or_default();
    println!(
        "{what}: statuses {:?}; {} acknowledged live sessions and {} acknowledged revocations \
         (logouts and revoke-alls), lost: 0; after a master was reachable again, reads served \
         in {:.2} s, writes acknowledged in {:.2} s{demoted}",
        outcome.ledger.statuses,
        outcome.ledger.alive.len(),
        outcome.ledger.acknowledged_revocations,
        outcome.reads_again.as_secs_f64(),
        outcome.writes_again.as_secs_f64()
    );
}

#[actix_web::test]
async fn a_cluster_master_killed_under_load_loses_no_acknowledged_write() {
    // Arrange: three masters with a replica each; writes wait for one replica.
    let cluster = Arc::new(RedisCluster::start(1));
    let app = spawn_app_on_cluster(cluster.clone(), |s| s.store.min_replicas_acked = 1).await;

    // Act: kill -9 the first master; its replica takes over; the old master comes back as a
    // replica (so writes can be replicated again).
    let faulty = cluster.clone();
    let (demoted_tx, demoted) = std::sync::mpsc::channel();
    let outcome = survive(&app, 6, move || {
        faulty.nodes[0].kill();
        let replica = &faulty.nodes[faulty.masters];
        wait_for(Duration::from_secs(30), "the replica's promotion", || {
            redis::cmd("INFO")
                .arg("replication")
                .query::<String>(&mut replica.connection().unwrap())
                .is_ok_and(|info| info.contains("role:master"))
        });
        let reachable = Instant::now();
        // It restarts believing it still masters its slots, until the cluster tells it.
        faulty.nodes[0].start_again();
        let watched = faulty.clone();
        demoted_tx
            .send(writes_accepted_while_demoted(
                move || watched.nodes[0].role_and_writes(),
                0,
            ))
            .unwrap();
        faulty.wait_until_ok();
        reachable
    })
    .await;

    // Assert (in `survive`), and the figures for the README.
    let demoted_writes = demoted.recv().unwrap().join().unwrap();
    report("cluster, master killed", &outcome, Some(demoted_writes));
    assert_eq!(demoted_writes, 0, "writes accepted by the demoted master");
}

#[actix_web::test]
async fn a_cluster_resharded_under_load_loses_no_acknowledged_write() {
    // Arrange
    let cluster = Arc::new(RedisCluster::start(0));
    let app = spawn_app_on_cluster(cluster.clone(), |_| {}).await;

    // Act: every slot holding a key moves to the next master, and then once more, key by key,
    // while six clients sign in, out and revoke and a reader reads (ASK, TRYAGAIN, then MOVED
    // for every user, the global views' keys included).
    let resharding = cluster.clone();
    let (moves_tx, moves) = std::sync::mpsc::channel();
    let outcome = survive(&app, 6, move || {
        let ids = resharding.ids();
        let (mut slots, mut keys) = (0, 0);
        for _ in 0..2 {
            for slot in resharding.used_slots() {
                let to = (resharding.owner(slot) + 1) % resharding.masters;
                keys += resharding.migrate_slot(slot, to, &ids);
                assert_eq!(resharding.owner(slot), to);
                slots += 1;
            }
        }
        resharding.wait_until_ok();
        moves_tx.send((slots, keys)).unwrap();
        Instant::now()
    })
    .await;

    // Assert (in `survive`), and the figures: the load was redirected, and the keys moved.
    let (slots, keys) = moves.recv().unwrap();
    let mut redirections: BTreeMap<String, u64> = BTreeMap::new();
    for node in &cluster.nodes {
        for (code, count) in node.error_counts() {
            *redirections.entry(code).or_default() += count;
        }
    }
    println!("resharded: {slots} slot moves, {keys} keys; error replies {redirections:?}");
    report("cluster, resharded", &outcome, None);
    assert!(keys > 100, "the load's keys moved: {keys}");
    assert!(
        redirections.get("MOVED").copied().unwrap_or(0) > 0,
        "the load met the moved slots: {redirections:?}"
    );
}

/// A Sentinel group and an app on it whose acknowledged writes wait for one replica.
async fn sentinel_app() -> (Arc<SentinelGroup>, TestApp) {
    let group = Arc::new(SentinelGroup::start());
    let url = group.url();
    let app = spawn_app_on(None, |s| {
        s.store.url = url;
        s.store.min_replicas_acked = 1;
    })
    .await;
    (group, app)
}

#[actix_web::test]
async fn a_master_refusing_writes_is_read_only_while_the_sentinels_name_it() {
    // Arrange: a signed-in user; the master refuses writes (as one cut off from its replica).
    let (group, app) = sentinel_app().await;
    let alice = app.logged_in("alice", &[]).await;
    let master = group.server(group.master_port());
    let _: () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("min-replicas-to-write")
        .arg(5)
        .query(&mut master.connection().unwrap())
        .unwrap();

    // Act: read while the sentinels answer; then with every sentinel gone (as for an
    // instance cut off with the old master from the sentinels, which may have promoted
    // another and revoked sessions there), once their last answer is too old.
    let named = alice.me_status().await;
    group.kill_sentinels();
    // Past the confirmation's window: a poll (1 s), store.timeout_ms (2 s) and a second.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let unconfirmed = alice.me_status().await;

    // Assert
    assert_eq!(named, 200, "read-only while a majority names this master");
    assert_eq!(
        unconfirmed, 503,
        "a master no sentinel vouches for is not read from"
    );
}

#[actix_web::test]
async fn a_sentinel_failover_under_load_loses_no_acknowledged_write() {
    // Arrange
    let (group, app) = sentinel_app().await;
    let old = group.master_port();

    // Act: `SENTINEL FAILOVER`: the replica is promoted, the old master demoted to replica.
    let faulty = group.clone();
    let (demoted_tx, demoted) = std::sync::mpsc::channel();
    let outcome = survive(&app, 6, move || {
        faulty.failover();
        // Demoted from the moment its replica answers as master; counted from then on.
        promoted(|| faulty.other_server(old).role_and_writes());
        let baseline = faulty.server(old).role_and_writes().map_or(0, |(_, w)| w);
        demoted_tx
            .send(writes_accepted_while_demoted(
                demoted_sentinel_server(faulty.clone(), old),
                baseline,
            ))
            .unwrap();
        faulty.wait_for_new_master(old);
        Instant::now()
    })
    .await;

    // Assert
    let demoted_writes = demoted.recv().unwrap().join().unwrap();
    report(
        "sentinel, SENTINEL FAILOVER",
        &outcome,
        Some(demoted_writes),
    );
    assert_ne!(group.master_port(), old);
    assert_eq!(demoted_writes, 0, "writes accepted by the demoted master");
}

#[actix_web::test]
async fn a_sentinel_master_killed_under_load_loses_no_acknowledged_write() {
    // Arrange
    let (group, app) = sentinel_app().await;
    let old = group.master_port();

    // Act: kill -9 the master; once the sentinels promote the replica, the old master comes
    // back (from its append-only file, a master again for a moment) and the sentinels make it
    // a replica of the new one.
    let faulty = group.clone();
    let (demoted_tx, demoted) = std::sync::mpsc::channel();
    let outcome = survive(&app, 6, move || {
        faulty.server(old).kill();
        faulty.wait_for_new_master(old);
        let reachable = Instant::now();
        // A restarted server's counters start at zero (loading its file executes nothing).
        faulty.server(old).start_again();
        demoted_tx
            .send(writes_accepted_while_demoted(
                demoted_sentinel_server(faulty.clone(), old),
                0,
            ))
            .unwrap();
        reachable
    })
    .await;

    // Assert
    let demoted_writes = demoted.recv().unwrap().join().unwrap();
    report("sentinel, master killed", &outcome, Some(demoted_writes));
    assert_ne!(group.master_port(), old);
    assert_eq!(demoted_writes, 0, "writes accepted by the demoted master");
}

/// The settings of an app that trusts `certs`' CA and presents its client certificate.
fn trusting(settings: &mut sessiond::config::Settings, certs: &Certificates) {
    settings.store.tls_ca_file = Some(certs.path("ca.crt"));
    settings.store.tls_cert_file = Some(certs.path("client.crt"));
    settings.store.tls_key_file = Some(certs.path("client.key"));
}

fn open_store(
    settings: &sessiond::config::Settings,
) -> Result<sessiond::store::Store, sessiond::store::StoreError> {
    sessiond::store::Store::open(
        settings,
        sessiond::clock::Clock::system(),
        Arc::new(sessiond::metrics::Metrics::default()),
    )
}

/// Whether a store opened with `settings` can read anything (it connects lazily).
async fn store_answers(settings: &sessiond::config::Settings) -> bool {
    open_store(settings).unwrap().user_count().await.is_ok()
}

#[actix_web::test]
async fn a_tls_cluster_that_asks_for_client_certificates_serves_sessions() {
    // Arrange: three masters on TLS ports only (bus included), verifying clients' certificates.
    let cluster = Arc::new(RedisCluster::start_tls());
    let certs = cluster.certs.as_ref().unwrap();
    let app = spawn_app_on_cluster(cluster.clone(), |s| trusting(s, certs)).await;
    assert!(app.settings.store.url.starts_with("rediss+cluster://"));

    // Act: users whose keys land on every master, signed in and out over TLS.
    let mut browsers = Vec::new();
    for i in 0..12 {
        browsers.push(app.logged_in(&format!("tls{i}"), &[]).await);
    }
    let me: Vec<u16> = futures_util::future::join_all(browsers.iter().map(|b| b.me_status())).await;
    let logout = browsers[0].logout().await;
    let untrusting = {
        let mut settings = app.settings.clone();
        settings.store.tls_ca_file = None; // the system's trust store: our scratch CA is not in it
        settings
    };
    let anonymous = {
        let mut settings = app.settings.clone();
        settings.store.tls_cert_file = None;
        settings.store.tls_key_file = None;
        settings
    };

    // Assert
    assert!(me.iter().all(|status| *status == 200), "{me:?}");
    assert_eq!(logout.status, 303);
    assert_eq!(browsers[0].me_status().await, 401);
    let per_master: Vec<u64> = cluster.nodes[..cluster.masters]
        .iter()
        .map(|node| node.command_calls().get("evalsha").copied().unwrap_or(0))
        .collect();
    assert!(per_master.iter().all(|calls| *calls > 0), "{per_master:?}");
    assert!(store_answers(&app.settings).await);
    assert!(
        !store_answers(&untrusting).await,
        "a server whose certificate we cannot verify is not used"
    );
    assert!(
        !store_answers(&anonymous).await,
        "without its client certificate the cluster refuses us"
    );
    let mut missing = app.settings.clone();
    missing.store.tls_ca_file = Some("/nonexistent/ca.crt".into());
    let refused = open_store(&missing)
        .err()
        .expect("a CA file that cannot be read stops the start");
    assert!(
        refused.to_string().contains("/nonexistent/ca.crt"),
        "{refused}"
    );
    let mut swapped = app.settings.clone();
    swapped.store.tls_cert_file = Some(certs.path("client.key"));
    let refused = open_store(&swapped)
        .err()
        .expect("a key where the certificate goes stops the start");
    assert!(refused.to_string().contains("client.key"), "{refused}");
}

#[actix_web::test]
async fn a_tls_sentinel_group_is_followed_across_a_failover() {
    // Arrange: sentinels, master and replica on TLS ports only.
    let group = Arc::new(SentinelGroup::start_tls());
    let url = group.url();
    assert!(url.starts_with("rediss+sentinel://"));
    let certs = group.certs.as_ref().unwrap();
    let app = spawn_app_on(None, |s| {
        s.store.url = url;
        trusting(s, certs);
    })
    .await;
    let alice = app.logged_in("alice", &[]).await;
    let old = group.master_port();

    // Act
    group.failover();
    group.wait_for_new_master(old);
    let after = settled_status(&alice).await;
    // Writes wait for the new master's replica: the old master, once Sentinel turns it into
    // one (over TLS too), about ten seconds on.
    let mut logout = alice.logout().await;
    for _ in 0..300 {
        if logout.status != 503 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        logout = alice.logout().await;
    }

    // Assert: the session lived through the switch, and the logout reached the new master.
    assert_eq!(after, 200);
    assert_eq!(logout.status, 303);
    assert_eq!(alice.me_status().await, 401);
    assert_ne!(group.master_port(), old);
}

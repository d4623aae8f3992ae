//! The chaos soak, short mode: two real instances of the binary on a redis-server started from
//! `deploy/redis.conf`, a mixed load, and each fault once (Redis `kill -9`, Redis stalled,
//! connections killed, a redeploy). Counts only, never times: the long mode
//! (`sessiond soak`, 5 minutes) reports the times.

use std::time::Duration;

use sessiond::soak::{FaultKind, Fsync, SoakOptions};

use super::redis_server::require_binary;

#[actix_web::test]
async fn under_faults_nothing_acknowledged_is_lost_and_nothing_but_503_fails() {
    // Arrange
    require_binary("redis-server", "redis-server");
    let out = std::env::temp_dir().join(format!("sessiond-soak-test-{}", std::process::id()));
    let seconds: u64 = std::env::var("SOAK_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(30);

    // Act
    let report = sessiond::soak::run(SoakOptions {
        duration: Duration::from_secs(seconds),
        fault_every: Duration::from_secs(seconds / 5),
        fsync: Fsync::Always,
        concurrency: 8,
        pace: Duration::from_millis(5),
        users: 40,
        out: out.clone(),
        binary: env!("CARGO_BIN_EXE_sessiond").into(),
    })
    .await
    .expect("the soak runs");
    println!("{}", report.markdown());

    // Assert: the promises.
    let c = &report.counts;
    assert_eq!(
        report.server_errors, 0,
        "5xx other than 503: {:?}",
        c.by_status
    );
    assert!(report.panics.is_empty(), "panics: {:?}", report.panics);
    assert_eq!(c.unanswered, 0, "{:?}", c.unanswered_examples);
    assert_eq!(report.sessions_lost(), 0, "acknowledged sessions refused");
    assert_eq!(report.revocations_undone(), 0, "acknowledged ends undone");
    assert_eq!(
        report.role_changes_undone(),
        0,
        "acknowledged role changes undone"
    );
    assert_eq!(c.bad_logins_accepted, 0);
    assert_eq!(c.good_logins_refused, 0);
    assert_eq!(report.final_check.undecided, 0);
    for rss in &report.rss {
        assert!(rss.clean_exit, "instance {} exit at the end", rss.instance);
    }
    assert!(
        report.broken_promises().is_empty(),
        "{:?}",
        report.broken_promises()
    );

    // Assert: every fault happened, bit, and was recovered from; nothing was checked vacuously.
    for kind in [
        FaultKind::RedisKilled,
        FaultKind::RedisStalled,
        FaultKind::ConnectionsKilled,
        FaultKind::Redeploy,
    ] {
        let fault = report.faults.iter().find(|f| f.kind == kind);
        let fault = fault.unwrap_or_else(|| panic!("no {kind:?} fault: {:?}", report.faults));
        assert!(fault.recovered_ms.is_some(), "no 2xx after {kind:?}");
    }
    let killed = report
        .faults
        .iter()
        .find(|f| f.kind == FaultKind::RedisKilled);
    assert!(killed.unwrap().answers_503 > 0, "Redis down, yet no 503");
    let redeploy = report.faults.iter().find(|f| f.kind == FaultKind::Redeploy);
    assert_eq!(redeploy.unwrap().clean_exit, Some(true));
    assert!(c.logins_acknowledged > 0 && c.logouts_acknowledged > 0);
    assert!(c.revokes_acknowledged > 0 && c.revoke_alls_acknowledged > 0);
    assert!(c.role_changes_acknowledged > 0 && c.role_checks > 0);
    assert!(c.ended_checks + report.final_check.ended_checked > 0);
    assert!(report.final_check.live_checked > 0);
    assert!(out.join("report.json").exists() && out.join("report.md").exists());
    let _ = std::fs::remove_dir_all(&out);
}

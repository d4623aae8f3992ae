//! The benchmark's measuring code, tested: a `--quick` run (both instances, every action,
//! rounds, page views, a small scale test) reports revocation windows of zero where revocation
//! is immediate and above zero for plain JWT, exact counts, and sizes that match the cookies a
//! login actually issues. Structure and invariants only, never speed.

use sessiond::bench::{BenchOptions, Kind, Report};
use sessiond::config::{AuthMode, JwtAlgorithm};

use super::helpers::{PASSWORD, spawn_app_on};
use super::redis_server::{RedisServer, require_binary};

#[actix_web::test]
async fn a_quick_benchmark_reports_what_it_measured() {
    // Arrange
    require_binary("wrk", "wrk");
    require_binary("redis-server", "redis-server");
    let out = std::env::temp_dir().join(format!("sessiond-bench-{}", std::process::id()));

    // Act
    let report = sessiond::bench::run(BenchOptions {
        quick: true,
        out: out.clone(),
        ..BenchOptions::default()
    })
    .await
    .expect("the quick benchmark runs");

    // Assert: revocation windows across instances, measured by acting, for every action
    // plainly and after a step-up.
    let plan = &report.plan;
    for mode in report.modes.iter().filter(|m| m.id != "no-auth") {
        let names: Vec<String> = mode.revocation.iter().map(|w| w.name()).collect();
        assert_eq!(names.len(), 10, "{}: {names:?}", mode.id);
        assert!(names.contains(&"password change after step-up".to_owned()));
        for w in &mode.revocation {
            assert_eq!(w.trials, plan.trials, "{} {}", mode.id, w.name());
            assert_eq!(
                w.refused,
                w.trials,
                "{} {}: every trial ends",
                mode.id,
                w.name()
            );
        }
        assert_eq!(
            mode.revocation_cross_instance,
            mode.id != "session-memory",
            "{}",
            mode.id
        );
    }
    for id in [
        "session-redis",
        "session-cluster",
        "session-near-cache",
        "forward-auth",
        "session-memory",
        "jwt-eddsa-denylist",
    ] {
        let mode = report.mode(id).unwrap();
        for w in &mode.revocation {
            assert_eq!(w.worst_accepted, 0, "{id} {}", w.name());
        }
    }
    for id in ["jwt-hs256", "jwt-eddsa", "jwt-es256", "jwt-rs256"] {
        let mode = report.mode(id).unwrap();
        let ttl = plan.jwt_ttl_for_revocation;
        assert_eq!(mode.revocation_access_ttl_secs, Some(ttl), "{id}");
        for w in &mode.revocation {
            assert!(
                w.worst_until_refused_ms <= (ttl * 1000 + 1500) as f64,
                "{id} {}: refused within the lifetime",
                w.name()
            );
            // Every counted trial saw the token outlive the action: a token that had expired
            // by itself before the action was acknowledged is redone, not read as "refused at
            // once".
            assert!(
                w.median_until_refused_ms > 0.0,
                "{id} {}: {} ms",
                w.name(),
                w.median_until_refused_ms
            );
        }
        assert!(
            Report::worst_accepted(mode) > Some(0),
            "{id}: a revoked JWT keeps working until it expires"
        );
    }

    // Assert: rounds, spreads and counts are there and consistent.
    for mode in &report.modes {
        assert_eq!(
            mode.requests_per_sec.values.len(),
            plan.rounds,
            "{}",
            mode.id
        );
        assert!(mode.requests_per_sec.median > 0.0, "{}", mode.id);
        assert!(mode.requests_per_sec.min <= mode.requests_per_sec.median);
        if mode.id != "no-auth" {
            // (The ceiling sends no credential: its answers are 401s by design.)
            assert_eq!(mode.load_errors, 0, "{}: all accepted", mode.id);
        }
        assert_eq!(mode.page_view.status, 200, "{}", mode.id);
        let cookies: usize = mode.credential_cookies.iter().map(|(_, b)| b).sum();
        let separators = 2 * mode.credential_cookies.len().saturating_sub(1);
        assert_eq!(mode.cookie_bytes, cookies + separators, "{}", mode.id);
    }
    let round_trips = |id: &str| report.mode(id).unwrap().redis.as_ref().unwrap().round_trips;
    assert_eq!(round_trips("session-redis"), 1.0);
    // On the cluster too: one round trip (the load script, on the user's node), its memory
    // counted over every master.
    assert_eq!(round_trips("session-cluster"), 1.0);
    assert!(
        report
            .mode("session-cluster")
            .unwrap()
            .redis_bytes_per_session
            .is_some_and(|b| b > 50.0)
    );
    assert_eq!(round_trips("jwt-eddsa-denylist"), 1.0);
    assert_eq!(round_trips("jwt-eddsa"), 0.0);
    // A page view: one round trip for the page, none for the stylesheet.
    assert_eq!(
        report
            .mode("session-redis")
            .unwrap()
            .page_view
            .redis_round_trips,
        1.0
    );
    assert_eq!(
        report
            .mode("jwt-hs256")
            .unwrap()
            .page_view
            .redis_round_trips,
        0.0
    );
    assert!(
        report
            .mode("session-redis")
            .unwrap()
            .redis_bytes_per_session
            .is_some_and(|b| b > 50.0)
    );
    let scale = report
        .scale
        .as_ref()
        .expect("the quick run has a small scale test");
    assert_eq!(
        scale.sessions,
        plan.scale_users * plan.scale_sessions_per_user
    );
    assert_eq!(scale.pages.len(), 7, "six admin pages and a login");
    for page in &scale.pages {
        let expected = if page.path == "/login" { 303 } else { 200 };
        assert_eq!(page.status, expected, "{}", page.name);
        assert!(!page.scans(), "{} scans", page.name);
    }
    for file in [
        "report.md",
        "report.json",
        "throughput.svg",
        "latency.svg",
        "credential.svg",
        "revocation.svg",
    ] {
        assert!(out.join(file).exists(), "{file}");
    }
    let markdown = std::fs::read_to_string(out.join("report.md")).unwrap();
    assert!(markdown.contains("| session (Redis) |"));
    assert!(markdown.contains("quick run"));
    assert!(markdown.contains("Load average"));
    let rerendered = Report::rerender(&out.join("report.json"), &out).unwrap();
    assert_eq!(rerendered.targets.len(), report.targets.len());

    // Assert: the sizes are those of cookies a login actually issues. JWTs for the same user
    // and roles are the same length every time; a session cookie varies by the few characters
    // its base64 signature needs percent-encoded.
    let redis = std::sync::Arc::new(RedisServer::start());
    for (id, mode, algorithm) in [
        ("session-redis", AuthMode::Session, JwtAlgorithm::EdDSA),
        ("jwt-eddsa", AuthMode::Jwt, JwtAlgorithm::EdDSA),
        ("jwt-hs256", AuthMode::Jwt, JwtAlgorithm::HS256),
        ("jwt-rs256", AuthMode::Jwt, JwtAlgorithm::RS256),
    ] {
        let app = spawn_app_on(Some(redis.clone()), |s| {
            s.auth.mode = mode;
            s.jwt.algorithm = algorithm;
        })
        .await;
        app.create_user("bench", &["admin"]).await;
        let browser = app.browser();
        let login = browser.login("bench", PASSWORD).await;
        let issued: Vec<(String, usize)> = login
            .set_cookies()
            .iter()
            .filter(|c| !c.value().is_empty())
            .map(|c| (c.name().to_owned(), c.name().len() + 1 + c.value().len()))
            .collect();
        let reported = &report.mode(id).unwrap().credential_cookies;
        assert_eq!(
            issued.iter().map(|(n, _)| n).collect::<Vec<_>>(),
            reported.iter().map(|(n, _)| n).collect::<Vec<_>>(),
            "{id}"
        );
        for ((name, actual), (_, measured)) in issued.iter().zip(reported) {
            if matches!(report.mode(id).unwrap().kind, Kind::Jwt { .. }) || name.contains("refresh")
            {
                assert_eq!(actual, measured, "{id} {name}");
            } else {
                assert!(
                    actual.abs_diff(*measured) <= 8,
                    "{id} {name}: {actual} vs {measured}"
                );
            }
        }
    }
    let _ = std::fs::remove_dir_all(out);
}

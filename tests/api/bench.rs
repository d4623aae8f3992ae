//! The benchmark's measuring code, tested: a `--quick` run reports revocation windows of zero
//! where revocation is immediate and above zero for plain JWT, and sizes that match the
//! cookies a login actually issues.

use sessiond::bench::{BenchOptions, Kind};
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
        redis_url: None,
        out: out.clone(),
    })
    .await
    .expect("the quick benchmark runs");

    // Assert: revocation windows, measured by acting.
    for id in ["session-redis", "session-memory", "jwt-eddsa-denylist"] {
        let mode = report.mode(id).unwrap();
        assert_eq!(mode.revocation.len(), 4, "{id}");
        for (action, window) in &mode.revocation {
            assert!(window.refused, "{id} {action}");
            assert_eq!(window.accepted_requests, 0, "{id} {action}");
        }
    }
    for id in ["jwt-hs256", "jwt-eddsa", "jwt-es256", "jwt-rs256"] {
        let mode = report.mode(id).unwrap();
        assert_eq!(mode.revocation_access_ttl_secs, Some(1), "{id}");
        for (action, window) in &mode.revocation {
            assert!(
                window.refused,
                "{id} {action}: refused once the token expired"
            );
            assert!(
                window.window_ms <= 1000.0 + 1500.0,
                "{id} {action}: within the lifetime"
            );
        }
        let worst = mode
            .revocation
            .iter()
            .map(|(_, w)| w.accepted_requests)
            .max();
        assert!(
            worst > Some(0),
            "{id}: a revoked JWT keeps working until it expires"
        );
    }
    // The figures the table is made of are there and consistent.
    let session = report.mode("session-redis").unwrap();
    assert_eq!(session.redis_round_trips_per_request, Some(1.0));
    assert!(session.load.requests > 0 && session.requests_per_sec > 0.0);
    assert!(session.redis_bytes_per_session.is_some_and(|b| b > 50.0));
    let eddsa_denylist = report.mode("jwt-eddsa-denylist").unwrap();
    assert_eq!(eddsa_denylist.redis_round_trips_per_request, Some(1.0));
    assert_eq!(
        report
            .mode("jwt-eddsa")
            .unwrap()
            .redis_round_trips_per_request,
        Some(0.0)
    );
    for mode in &report.modes {
        let cookies: usize = mode.credential_cookies.iter().map(|(_, b)| b).sum();
        let separators = 2 * mode.credential_cookies.len().saturating_sub(1);
        assert_eq!(mode.cookie_bytes, cookies + separators, "{}", mode.id);
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

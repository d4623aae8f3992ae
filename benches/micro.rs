//! Micro benchmarks (`cargo bench`): the single operations the modes are made of.

use std::process::{Command, Stdio};
use std::sync::Arc;

use criterion::{Criterion, criterion_group, criterion_main};
use sessiond::auth::jwt::JwtAuthority;
use sessiond::auth::password::{hash_password_blocking, verify_password_blocking};
use sessiond::auth::random::random_token;
use sessiond::auth::session_store::{new_session_id, session_id_hash};
use sessiond::clock::Clock;
use sessiond::config::{JwtAlgorithm, Settings};
use sessiond::metrics::Metrics;
use sessiond::store::{Store, UserRecord};

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime")
}

/// A store with one user and one live session; returns the session's hash.
fn store_with_session(rt: &tokio::runtime::Runtime, url: &str) -> (Store, String) {
    let mut settings = Settings::default();
    settings.store.url = url.to_owned();
    settings.store.key_prefix = "mb:".into();
    let store =
        Store::open(&settings, Clock::system(), Arc::new(Metrics::default())).expect("store");
    let tag = rt.block_on(store.user_tag("alice")).expect("a tag");
    // Issued as the session backend issues it: the owner's tag, then the random part.
    let hash = session_id_hash(&new_session_id(&tag).expect("random"));
    rt.block_on(async {
        let user = UserRecord {
            name: "alice".into(),
            phc: "unused".into(),
            roles: vec!["editor".into()],
            disabled: false,
            created: 0,
            last_login: 0,
        };
        store.create_user(&user).await.expect("user");
        let fields = vec![
            ("uid".to_owned(), "\"alice\"".to_owned()),
            ("csrf".to_owned(), "\"AAAAAAAAAAAAAAAAAAAAAA\"".to_owned()),
            ("ip".to_owned(), "\"127.0.0.1\"".to_owned()),
        ];
        store
            .create_session(&hash, Some("alice"), fields)
            .await
            .expect("session");
    });
    (store, hash)
}

fn session_validation(c: &mut Criterion) {
    let rt = runtime();
    let (memory, hash) = store_with_session(&rt, "memory://");
    c.bench_function("session load, memory store", |b| {
        b.iter(|| rt.block_on(memory.load_session(&hash)).expect("load"))
    });

    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let mut redis = Command::new("redis-server")
        .args([
            "--port",
            &port.to_string(),
            "--save",
            "",
            "--appendonly",
            "no",
        ])
        .stdout(Stdio::null())
        .spawn()
        .expect("redis-server (apt-get install redis-server)");
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let (redis_store, hash) = store_with_session(&rt, &format!("redis://127.0.0.1:{port}/0"));
    c.bench_function("session load, Redis on loopback (one EVALSHA)", |b| {
        b.iter(|| rt.block_on(redis_store.load_session(&hash)).expect("load"))
    });
    let _ = redis.kill();
    let _ = redis.wait();
}

fn jwt_verification(c: &mut Criterion) {
    for algorithm in [
        JwtAlgorithm::HS256,
        JwtAlgorithm::EdDSA,
        JwtAlgorithm::ES256,
        JwtAlgorithm::RS256,
    ] {
        let mut settings = Settings::default();
        settings.jwt.algorithm = algorithm;
        let (authority, _) = JwtAuthority::from_settings(&settings.jwt).expect("keys");
        let now = Clock::system().now();
        let claims = authority.claims(
            "alice",
            vec!["editor".into()],
            "sid",
            now,
            now,
            "jti".into(),
            now + 600,
        );
        let token = authority.mint(&claims).expect("a token");
        c.bench_function(&format!("JWT verify, {algorithm:?}"), |b| {
            b.iter(|| authority.verify(&token, now).expect("valid"))
        });
    }
}

fn passwords(c: &mut Criterion) {
    let phc = hash_password_blocking("correct horse battery staple").expect("hash");
    let mut group = c.benchmark_group("argon2id");
    group.sample_size(10);
    group.bench_function("verify (m=19456 KiB, t=2, p=1)", |b| {
        b.iter(|| verify_password_blocking(&phc, "correct horse battery staple").expect("verify"))
    });
    group.finish();
}

fn session_ids(c: &mut Criterion) {
    c.bench_function("session ID: 256 bits from the OS CSPRNG, base64url", |b| {
        b.iter(|| random_token().expect("random"))
    });
    let id = random_token().expect("random");
    c.bench_function("session ID hash (SHA-256, 128 bits kept)", |b| {
        b.iter(|| session_id_hash(&id))
    });
}

criterion_group!(
    benches,
    session_validation,
    jwt_verification,
    passwords,
    session_ids
);
criterion_main!(benches);

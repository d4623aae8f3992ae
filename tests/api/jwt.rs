//! JWT mode's own rules: hostile tokens, refresh rotation and reuse detection, keys and JWKS,
//! and what each request costs in Redis with and without the deny-list.

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{Ed25519KeyPair, KeyPair};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use reqwest::Method;
use serde_json::{Value, json};
use sessiond::config::{AuthMode, JwtAlgorithm, Settings};

use super::helpers::{Browser, PASSWORD, TestApp, spawn_app_on};
use super::redis_server::RedisServer;

const ACCESS: &str = "__Host-access";
const REFRESH: &str = "__Host-refresh";

fn b64(bytes: impl AsRef<[u8]>) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// An Ed25519 key of our own, written as PKCS#8 PEM: the app signs with it, and so can the
/// test, to build tokens that are correctly signed but wrong in every other way.
struct TestKey {
    pair: Ed25519KeyPair,
    path: std::path::PathBuf,
}

impl TestKey {
    fn new() -> TestKey {
        let pkcs8 = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new()).unwrap();
        let pair = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).unwrap();
        let pem = pem::encode(&pem::Pem::new("PRIVATE KEY", pkcs8.as_ref().to_vec()));
        let path = std::env::temp_dir().join(format!(
            "sessiond-test-key-{}-{}.pem",
            std::process::id(),
            b64(&pair.public_key().as_ref()[..6])
        ));
        std::fs::write(&path, pem).unwrap();
        TestKey { pair, path }
    }

    /// The key ID the app publishes for this key: the first 64 bits of SHA-256 of it.
    fn kid(&self) -> String {
        use sha2::{Digest, Sha256};
        b64(&Sha256::digest(self.pair.public_key().as_ref())[..8])
    }

    /// The header the app puts on its tokens.
    fn header(&self) -> String {
        format!(r#"{{"typ":"at+jwt","alg":"EdDSA","kid":"{}"}}"#, self.kid())
    }

    /// header.payload.signature from raw JSON texts, signed with this key.
    fn sign(&self, header: &str, payload: &str) -> String {
        let message = format!("{}.{}", b64(header), b64(payload));
        let signature = self.pair.sign(message.as_bytes());
        format!("{message}.{}", b64(signature.as_ref()))
    }
}

impl Drop for TestKey {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

async fn jwt_app(tweak: impl FnOnce(&mut Settings)) -> TestApp {
    let redis = std::sync::Arc::new(RedisServer::start());
    spawn_app_on(Some(redis), |s| {
        s.auth.mode = AuthMode::Jwt;
        tweak(s)
    })
    .await
}

fn claims(app: &TestApp, sub: &str, roles: &[&str]) -> Value {
    let now = app.clock.now();
    json!({
        "iss": "sessiond", "aud": "sessiond", "sub": sub,
        "exp": now + 300, "nbf": now, "iat": now,
        "jti": "dGVzdGp0aQ", "roles": roles, "sid": "c2lk", "auth_time": now,
    })
}

async fn bearer(
    app: &TestApp,
    method: Method,
    path: &str,
    token: &str,
    body: Option<Value>,
) -> u16 {
    let browser = app.browser();
    let mut request = browser
        .request(method, path)
        .header("authorization", format!("Bearer {token}"));
    if let Some(body) = body {
        request = request.json(&body);
    }
    browser.send(request).await.status
}

#[actix_web::test]
async fn a_well_formed_token_from_our_key_is_accepted_as_a_control() {
    // Arrange: the same construction the hostile cases below corrupt, left intact, including
    // an unregistered header parameter that nothing marks critical.
    let key = TestKey::new();
    let app = jwt_app(|s| s.jwt.private_key_file = key.path.display().to_string()).await;
    app.create_user("root", &["admin"]).await;
    let payload = claims(&app, "root", &["admin"]).to_string();
    let plain = key.sign(&key.header(), &payload);
    let extended = key.sign(
        &format!(
            r#"{{"typ":"at+jwt","alg":"EdDSA","kid":"{}","exp-ext":"v"}}"#,
            key.kid()
        ),
        &payload,
    );

    // Act + Assert
    for token in [plain, extended] {
        assert_eq!(
            bearer(&app, Method::GET, "/api/admin/users", &token, None).await,
            200
        );
    }
}

#[actix_web::test]
async fn hostile_tokens_are_refused_with_401_and_change_nothing() {
    // Arrange
    let key = TestKey::new();
    let app = jwt_app(|s| s.jwt.private_key_file = key.path.display().to_string()).await;
    app.create_user("root", &["admin"]).await;
    app.create_user("alice", &["editor"]).await;
    let good = claims(&app, "root", &["admin"]);
    let now = app.clock.now();
    let public = key.pair.public_key().as_ref().to_vec();
    let with = |field: &str, value: Value| {
        let mut c = good.clone();
        c[field] = value;
        c.to_string()
    };
    let without = |field: &str| {
        let mut c = good.clone();
        c.as_object_mut().unwrap().remove(field);
        c.to_string()
    };
    let kid = key.kid();
    let header = key.header();
    let signed = key.sign(&header, &good.to_string());
    let (signed_head, signed_sig) = signed.rsplit_once('.').unwrap();
    let hmac = |secret: &[u8], header: &str| {
        let message = format!("{}.{}", b64(header), b64(good.to_string()));
        let k = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, secret);
        format!(
            "{message}.{}",
            b64(aws_lc_rs::hmac::sign(&k, message.as_bytes()))
        )
    };
    let foreign = TestKey::new();
    let foreign_jwk =
        json!({"kty": "OKP", "crv": "Ed25519", "x": b64(foreign.pair.public_key().as_ref())});
    let jwks_json = app.browser().get("/.well-known/jwks.json").await.body;
    let mut flipped_sig = signed_sig.to_owned().into_bytes();
    flipped_sig[5] = if flipped_sig[5] == b'A' { b'B' } else { b'A' };
    let mut cases: Vec<(&str, String)> = vec![];
    for none in ["none", "None", "NONE", "nOnE"] {
        let none = format!(r#"{{"typ":"at+jwt","alg":"{none}","kid":"{kid}"}}"#);
        cases.push((
            "alg none, no signature",
            format!("{}.{}.", b64(&none), b64(good.to_string())),
        ));
        cases.push((
            "alg none, with signature",
            format!("{}.{}.{signed_sig}", b64(&none), b64(good.to_string())),
        ));
    }
    cases.extend([
        (
            "HS256 keyed with the public key",
            hmac(
                &public,
                &format!(r#"{{"typ":"at+jwt","alg":"HS256","kid":"{kid}"}}"#),
            ),
        ),
        (
            "HS256 keyed with the JWKS text",
            hmac(
                jwks_json.as_bytes(),
                &format!(r#"{{"typ":"at+jwt","alg":"HS256","kid":"{kid}"}}"#),
            ),
        ),
        ("signature stripped", format!("{signed_head}.")),
        ("signature stripped, no dot", signed_head.to_owned()),
        (
            "signature altered",
            format!("{signed_head}.{}", String::from_utf8(flipped_sig).unwrap()),
        ),
        ("payload altered", {
            let (h, rest) = signed.split_once('.').unwrap();
            let sig = rest.rsplit_once('.').unwrap().1;
            format!(
                "{h}.{}.{sig}",
                b64(with("roles", json!(["admin", "superuser"])))
            )
        }),
        ("foreign key", foreign.sign(&header, &good.to_string())),
        (
            "foreign key, embedded jwk",
            foreign.sign(
                &json!({"typ": "at+jwt", "alg": "EdDSA", "kid": kid, "jwk": foreign_jwk})
                    .to_string(),
                &good.to_string(),
            ),
        ),
        (
            "foreign key, jku",
            foreign.sign(
                &format!(
                    r#"{{"typ":"at+jwt","alg":"EdDSA","kid":"{kid}","jku":"https://evil.example/jwks.json"}}"#
                ),
                &good.to_string(),
            ),
        ),
        (
            "foreign key, x5u",
            foreign.sign(
                &format!(
                    r#"{{"typ":"at+jwt","alg":"EdDSA","kid":"{kid}","x5u":"https://evil.example/cert.pem"}}"#
                ),
                &good.to_string(),
            ),
        ),
        (
            "foreign key, kid",
            foreign.sign(
                r#"{"typ":"at+jwt","alg":"EdDSA","kid":"../../dev/null"}"#,
                &good.to_string(),
            ),
        ),
        ("expired", key.sign(&header, &with("exp", json!(now - 10)))),
        (
            "no kid",
            key.sign(r#"{"typ":"at+jwt","alg":"EdDSA"}"#, &good.to_string()),
        ),
        (
            "iat a minute ahead",
            key.sign(&header, &with("iat", json!(now + 60))),
        ),
        (
            "iat an hour ahead",
            key.sign(&header, &with("iat", json!(now + 3600))),
        ),
        (
            "iat a year ahead",
            key.sign(&header, &with("iat", json!(now + 365 * 86_400))),
        ),
        (
            "nbf in the future",
            key.sign(&header, &with("nbf", json!(now + 60))),
        ),
        (
            "wrong iss",
            key.sign(&header, &with("iss", json!("https://evil.example"))),
        ),
        ("missing iss", key.sign(&header, &without("iss"))),
        ("mistyped iss", key.sign(&header, &with("iss", json!(42)))),
        (
            "wrong aud",
            key.sign(&header, &with("aud", json!("another-service"))),
        ),
        ("missing aud", key.sign(&header, &without("aud"))),
        (
            "mistyped aud",
            key.sign(&header, &with("aud", json!({"sessiond": true}))),
        ),
        ("missing exp", key.sign(&header, &without("exp"))),
        (
            "mistyped exp",
            key.sign(&header, &with("exp", json!("tomorrow"))),
        ),
        ("missing sub", key.sign(&header, &without("sub"))),
        // The extension's value is a string so the header parses: only `crit` can refuse it.
        (
            "unknown crit",
            key.sign(
                &format!(
                    r#"{{"typ":"at+jwt","alg":"EdDSA","kid":"{kid}","crit":["exp-ext"],"exp-ext":"v"}}"#
                ),
                &good.to_string(),
            ),
        ),
        (
            "crit naming a registered claim",
            key.sign(
                &format!(r#"{{"typ":"at+jwt","alg":"EdDSA","kid":"{kid}","crit":["exp"]}}"#),
                &good.to_string(),
            ),
        ),
        (
            "other token type",
            key.sign(
                &format!(r#"{{"typ":"JWT","alg":"EdDSA","kid":"{kid}"}}"#),
                &good.to_string(),
            ),
        ),
        (
            "no token type",
            key.sign(
                &format!(r#"{{"alg":"EdDSA","kid":"{kid}"}}"#),
                &good.to_string(),
            ),
        ),
        (
            "unknown claim (another kind of token)",
            key.sign(&header, &with("nonce", json!("x"))),
        ),
        (
            "oversized",
            key.sign(&header, &with("roles", json!(vec!["admin"; 900]))),
        ),
        (
            "malformed base64",
            format!("{signed_head}.@@@not base64@@@"),
        ),
        ("malformed JSON", key.sign(&header, r#"{"sub":"root","#)),
        ("not three parts", "a.b.c.d".to_owned()),
        ("empty", String::new()),
    ]);
    // The same claim twice: serde refuses the duplicate rather than picking one.
    let duplicated =
        good.to_string()
            .replacen("\"sub\":\"root\"", "\"sub\":\"alice\",\"sub\":\"root\"", 1);
    assert!(duplicated.contains("\"sub\":\"alice\",\"sub\":\"root\""));
    cases.push(("duplicate claims", key.sign(&header, &duplicated)));

    for (name, token) in &cases {
        // Act
        let read = bearer(&app, Method::GET, "/api/admin/users", token, None).await;
        let write = bearer(
            &app,
            Method::PUT,
            "/api/admin/users/alice/roles",
            token,
            Some(json!({"roles": ["admin"]})),
        )
        .await;
        let as_cookie = app.browser();
        as_cookie.set_named_cookie(ACCESS, token);

        // Assert
        assert_eq!(read, 401, "{name}");
        assert_eq!(write, 401, "{name}");
        assert_eq!(as_cookie.me_status().await, 401, "{name} (cookie)");
    }
    // Nothing changed: alice is still only an editor.
    let alice = app.browser();
    alice.login("alice", PASSWORD).await;
    let me: Value = serde_json::from_str(&alice.get("/api/me").await.body).unwrap();
    assert_eq!(me["roles"], json!(["editor"]));
}

#[actix_web::test]
async fn a_refresh_token_is_not_an_access_token() {
    let app = jwt_app(|_| {}).await;
    app.create_user("alice", &[]).await;
    let browser = app.browser();
    browser.login("alice", PASSWORD).await;
    let refresh = browser.jar()[REFRESH].clone();

    let as_bearer = bearer(&app, Method::GET, "/api/me", &refresh, None).await;
    let as_access_cookie = app.browser();
    as_access_cookie.set_named_cookie(ACCESS, &refresh);

    assert_eq!(as_bearer, 401);
    assert_eq!(as_access_cookie.me_status().await, 401);
}

#[actix_web::test]
async fn bearer_tokens_work_for_api_clients_without_csrf() {
    let app = jwt_app(|_| {}).await;
    app.create_user("root", &["admin"]).await;
    let browser = app.browser();
    browser.login("root", PASSWORD).await;
    let token = browser.jar()[ACCESS].clone();

    let read = bearer(&app, Method::GET, "/api/me", &token, None).await;
    let write = bearer(
        &app,
        Method::POST,
        "/api/admin/users",
        &token,
        Some(json!({"name": "zoe", "password": "amber river quietly folds"})),
    )
    .await;

    assert_eq!(read, 200);
    assert_eq!(write, 201, "no ambient credential, so no CSRF token needed");
}

#[actix_web::test]
async fn an_expired_access_token_is_refreshed_on_the_same_request_with_rotation() {
    // Arrange
    let app = jwt_app(|_| {}).await;
    app.create_user("alice", &[]).await;
    let browser = app.browser();
    browser.login("alice", PASSWORD).await;
    let first = browser.jar();
    app.expire_access_tokens();

    // Act: a page load with an expired access token.
    let page = browser.get("/account/sessions").await;

    // Assert: no login page; a new pair of tokens.
    assert_eq!(page.status, 200);
    let second = browser.jar();
    assert_ne!(first[ACCESS], second[ACCESS]);
    assert_ne!(
        first[REFRESH], second[REFRESH],
        "the refresh token rotates on use"
    );
    let family = |jar: &super::helpers::Jar| jar[REFRESH].split('.').next().unwrap().to_owned();
    assert_eq!(
        family(&first),
        family(&second),
        "the same family (session) goes on"
    );
    // The rotated token is the one that works next time.
    app.expire_access_tokens();
    assert_eq!(browser.get("/account/sessions").await.status, 200);
    assert_ne!(browser.jar()[REFRESH], second[REFRESH]);
    // A bearer client with an expired token gets 401 (it refreshes on its own).
    assert_eq!(
        bearer(&app, Method::GET, "/api/me", &first[ACCESS], None).await,
        401
    );
}

#[actix_web::test]
async fn a_reused_refresh_token_revokes_its_whole_family() {
    // Arrange: the thief copied the cookies; the owner refreshes first.
    let app = jwt_app(|s| s.jwt.refresh_reuse_grace_secs = 2).await;
    let admin = {
        app.create_user("root", &["admin"]).await;
        let b = app.browser();
        b.login("root", PASSWORD).await;
        b
    };
    app.create_user("alice", &[]).await;
    let owner = app.browser();
    owner.login("alice", PASSWORD).await;
    let thief = app.browser();
    thief.set_jar(owner.jar());
    app.expire_access_tokens();
    assert_eq!(
        owner.me_status().await,
        200,
        "the owner's refresh rotates the token"
    );
    app.clock.advance(10); // past the race grace window

    // Act: the thief presents the already-used refresh token.
    let stolen = thief.me_status().await;

    // Assert: refused, and the family is dead for the owner too (RFC 9700 reuse detection).
    assert_eq!(stolen, 401);
    app.expire_access_tokens();
    assert_eq!(owner.me_status().await, 401);
    assert!(
        app.store
            .user_session_hashes("alice")
            .await
            .unwrap()
            .is_empty()
    );
    let audit: Value =
        serde_json::from_str(&admin.get("/api/admin/audit?user=alice").await.body).unwrap();
    assert!(
        audit["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["action"] == "refresh_token_reused")
    );
}

#[actix_web::test]
async fn two_concurrent_refreshes_with_one_token_exactly_one_wins() {
    // Arrange
    let app = jwt_app(|_| {}).await;
    app.create_user("alice", &[]).await;
    let first = app.browser();
    first.login("alice", PASSWORD).await;
    let second = app.browser();
    second.set_jar(first.jar());
    app.expire_access_tokens();

    // Act: both present the same expired access token and refresh token at once.
    let (a, b) = tokio::join!(first.get("/api/me"), second.get("/api/me"));

    // Assert: exactly one succeeds; within the grace window the loser does not kill the family,
    // so the winner carries on.
    let mut statuses = [a.status, b.status];
    statuses.sort();
    assert_eq!(statuses, [200, 401]);
    let winner = if a.status == 200 { &first } else { &second };
    assert_eq!(winner.me_status().await, 200);
    app.expire_access_tokens();
    assert_eq!(
        winner.me_status().await,
        200,
        "the family survived the race"
    );
}

/// Verifies `token` the way a standard JWKS client does: fetch the set, pick the key by the
/// token's `kid` (`JwkSet::find`), verify with it.
fn verify_with_jwks(
    jwks: &jsonwebtoken::jwk::JwkSet,
    token: &str,
) -> jsonwebtoken::TokenData<Value> {
    let header = jsonwebtoken::decode_header(token).unwrap();
    let kid = header.kid.expect("every token names its key");
    let jwk = jwks.find(&kid).expect("the JWKS publishes the token's key");
    let key = jsonwebtoken::DecodingKey::from_jwk(jwk).unwrap();
    let mut validation = jsonwebtoken::Validation::new(header.alg);
    validation.set_audience(&["sessiond"]);
    validation.set_issuer(&["sessiond"]);
    jsonwebtoken::decode::<Value>(token, &key, &validation).expect("verifies")
}

async fn jwks_of(app: &TestApp) -> jsonwebtoken::jwk::JwkSet {
    serde_json::from_str(&app.browser().get("/.well-known/jwks.json").await.body).unwrap()
}

#[actix_web::test]
async fn jwks_publishes_the_public_key_that_verifies_our_tokens() {
    for algorithm in [
        JwtAlgorithm::EdDSA,
        JwtAlgorithm::ES256,
        JwtAlgorithm::RS256,
    ] {
        // Arrange
        let app = jwt_app(|s| s.jwt.algorithm = algorithm).await;
        app.create_user("alice", &["editor"]).await;
        let browser = app.browser();
        browser.login("alice", PASSWORD).await;
        let token = browser.jar()[ACCESS].clone();

        // Act: another service verifies with nothing but the published JWKS.
        let jwks = jwks_of(&app).await;
        let data = verify_with_jwks(&jwks, &token);

        // Assert
        assert_eq!(jwks.keys.len(), 1, "{algorithm:?}");
        assert_eq!(data.claims["sub"], "alice", "{algorithm:?}");
        assert_eq!(data.claims["roles"], json!(["editor"]));
        assert_eq!(data.header.typ.as_deref(), Some("at+jwt"));
        assert_eq!(
            data.header.kid.as_deref(),
            jwks.keys[0].common.key_id.as_deref(),
            "{algorithm:?}"
        );
    }
}

/// A private key and its public half in PEM files, as an operator makes them with openssl.
struct KeyFiles {
    private: std::path::PathBuf,
    public: std::path::PathBuf,
}

impl KeyFiles {
    fn generate(dir: &std::path::Path, name: &str, algorithm: JwtAlgorithm) -> KeyFiles {
        super::redis_server::require_binary("openssl", "openssl");
        let private = dir.join(format!("{name}.pem"));
        let public = dir.join(format!("{name}.pub.pem"));
        let mut genpkey = std::process::Command::new("openssl");
        genpkey.arg("genpkey");
        match algorithm {
            JwtAlgorithm::EdDSA => genpkey.args(["-algorithm", "ed25519"]),
            JwtAlgorithm::ES256 => {
                genpkey.args(["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"])
            }
            JwtAlgorithm::RS256 => {
                genpkey.args(["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"])
            }
            JwtAlgorithm::HS256 => unreachable!("HS256 has no key pair"),
        };
        let made = genpkey.arg("-out").arg(&private).status().unwrap();
        assert!(made.success());
        let exported = std::process::Command::new("openssl")
            .args(["pkey", "-pubout", "-in"])
            .arg(&private)
            .arg("-out")
            .arg(&public)
            .status()
            .unwrap();
        assert!(exported.success());
        KeyFiles { private, public }
    }
}

#[actix_web::test]
async fn key_rotation_keeps_old_tokens_verifying_until_the_old_key_is_dropped() {
    for algorithm in [
        JwtAlgorithm::EdDSA,
        JwtAlgorithm::ES256,
        JwtAlgorithm::RS256,
    ] {
        // Arrange: a token signed with the old key.
        let dir = std::env::temp_dir().join(format!(
            "sessiond-rotation-{}-{algorithm:?}-{}",
            std::process::id(),
            super::redis_server::free_port()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let old = KeyFiles::generate(&dir, "old", algorithm);
        let new = KeyFiles::generate(&dir, "new", algorithm);
        let redis = std::sync::Arc::new(RedisServer::start());
        let path = |p: &std::path::PathBuf| p.display().to_string();
        let before = spawn_app_on(Some(redis.clone()), |s| {
            s.auth.mode = AuthMode::Jwt;
            s.jwt.algorithm = algorithm;
            s.jwt.private_key_file = path(&old.private);
        })
        .await;
        before.create_user("alice", &[]).await;
        let browser = before.browser();
        browser.login("alice", PASSWORD).await;
        let old_token = browser.jar()[ACCESS].clone();
        // The same deployment, restarted: same Redis, same keys in it.
        let prefix = before.settings.store.key_prefix.clone();
        let old_kid = jwks_of(&before).await.keys[0]
            .common
            .key_id
            .clone()
            .unwrap();

        // Act: restart with a new signing key, the old one still listed as previous.
        let rotated = spawn_app_on(Some(redis.clone()), |s| {
            s.auth.mode = AuthMode::Jwt;
            s.jwt.algorithm = algorithm;
            s.jwt.private_key_file = path(&new.private);
            s.store.key_prefix = prefix.clone();
            s.jwt.previous_public_key_files = vec![path(&old.public)];
        })
        .await;
        let after_login = rotated.browser();
        after_login.login("alice", PASSWORD).await;
        let new_token = after_login.jar()[ACCESS].clone();
        let jwks = jwks_of(&rotated).await;

        // Assert: both keys published, the new one first; the old token still verifies (at
        // the app and for a JWKS client); new tokens are signed with the new key only.
        let kids: Vec<String> = jwks
            .keys
            .iter()
            .filter_map(|k| k.common.key_id.clone())
            .collect();
        assert_eq!(kids.len(), 2, "{algorithm:?}");
        assert_eq!(
            kids[1], old_kid,
            "a key keeps its kid when it stops signing"
        );
        assert_eq!(
            bearer(&rotated, Method::GET, "/api/me", &old_token, None).await,
            200
        );
        verify_with_jwks(&jwks, &old_token);
        let new_kid = jsonwebtoken::decode_header(&new_token)
            .unwrap()
            .kid
            .unwrap();
        assert_eq!(new_kid, kids[0], "{algorithm:?}");
        verify_with_jwks(&jwks, &new_token);

        // Act: the old key is dropped.
        let dropped = spawn_app_on(Some(redis.clone()), |s| {
            s.auth.mode = AuthMode::Jwt;
            s.jwt.algorithm = algorithm;
            s.jwt.private_key_file = path(&new.private);
            s.store.key_prefix = prefix.clone();
        })
        .await;

        // Assert
        assert_eq!(
            bearer(&dropped, Method::GET, "/api/me", &old_token, None).await,
            401
        );
        assert_eq!(
            bearer(&dropped, Method::GET, "/api/me", &new_token, None).await,
            200
        );
        assert_eq!(jwks_of(&dropped).await.keys.len(), 1);
        let _ = std::fs::remove_dir_all(&dir);
    }
}

#[actix_web::test]
async fn a_previous_key_must_be_a_public_key_of_the_configured_algorithm() {
    let dir = std::env::temp_dir().join(format!(
        "sessiond-previous-{}-{}",
        std::process::id(),
        super::redis_server::free_port()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let ed = KeyFiles::generate(&dir, "ed", JwtAlgorithm::EdDSA);
    let ec = KeyFiles::generate(&dir, "ec", JwtAlgorithm::ES256);
    let path = |p: &std::path::PathBuf| p.display().to_string();
    for (previous, algorithm) in [
        (path(&ed.private), JwtAlgorithm::EdDSA),
        (path(&ec.public), JwtAlgorithm::EdDSA),
        (path(&ed.public), JwtAlgorithm::ES256),
        (path(&ed.public), JwtAlgorithm::HS256),
        (
            dir.join("missing.pem").display().to_string(),
            JwtAlgorithm::EdDSA,
        ),
    ] {
        let mut settings = Settings::default();
        settings.jwt.algorithm = algorithm;
        settings.jwt.previous_public_key_files = vec![previous.clone()];
        let refused = sessiond::auth::jwt::JwtAuthority::from_settings(&settings.jwt).is_err();
        assert!(refused, "{previous} as a previous {algorithm:?} key");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[actix_web::test]
async fn the_denylist_refuses_every_access_token_of_a_revoked_family() {
    for action in ["logout", "admin revoke"] {
        // Arrange: a thief copies the access token; then a step-up mints a newer one for the
        // same family, which the victim now holds.
        let app = jwt_app(|s| s.jwt.denylist = true).await;
        let admin = app.logged_in("boss", &["admin"]).await;
        let victim = app.logged_in("alice", &[]).await;
        let stolen = victim.jar()[ACCESS].clone();
        let step_up = victim
            .api(
                Method::POST,
                "/api/reauth",
                Some(json!({"password": PASSWORD})),
            )
            .await;
        assert_eq!(step_up.status, 204);
        assert_ne!(victim.jar()[ACCESS], stolen, "step-up minted a new token");
        assert_eq!(
            bearer(&app, Method::GET, "/api/me", &stolen, None).await,
            200
        );

        // Act
        match action {
            "logout" => assert_eq!(victim.logout().await.status, 303),
            _ => {
                let sessions: Value =
                    serde_json::from_str(&admin.get("/api/admin/users/alice/sessions").await.body)
                        .unwrap();
                let handle = sessions[0]["handle"].as_str().unwrap().to_owned();
                let revoked = admin
                    .api(
                        Method::DELETE,
                        &format!("/api/admin/users/alice/sessions/{handle}"),
                        None,
                    )
                    .await;
                assert_eq!(revoked.status, 204);
            }
        }

        // Assert: the older token of the family is refused on the very next request.
        assert_eq!(
            bearer(&app, Method::GET, "/api/me", &stolen, None).await,
            401,
            "{action}"
        );
    }
}

#[actix_web::test]
async fn hs256_needs_a_strong_secret_and_publishes_nothing() {
    let redis = std::sync::Arc::new(RedisServer::start());
    let mut settings = super::helpers::test_settings();
    settings.store.url = redis.url();
    settings.auth.mode = AuthMode::Jwt;
    settings.jwt.algorithm = JwtAlgorithm::HS256;
    for weak in [
        "c2hvcnQ=",
        "not base64 at all!",
        &base64::engine::general_purpose::STANDARD.encode([7u8; 31]),
    ] {
        settings.jwt.hs256_secret = weak.to_owned();
        let refused = sessiond::startup::Application::build(settings.clone()).await;
        let err = refused.err().expect("a weak secret is refused at start-up");
        assert!(format!("{:?}", err).contains("WeakSecret"), "{err:?}");
    }

    let strong = base64::engine::general_purpose::STANDARD.encode([42u8; 32]);
    let app = spawn_app_on(Some(redis), |s| {
        s.auth.mode = AuthMode::Jwt;
        s.jwt.algorithm = JwtAlgorithm::HS256;
        s.jwt.hs256_secret = strong;
    })
    .await;
    app.create_user("alice", &[]).await;
    let browser = app.browser();
    assert_eq!(browser.login("alice", PASSWORD).await.status, 303);
    assert_eq!(browser.me_status().await, 200);
    assert_eq!(
        app.browser().get("/.well-known/jwks.json").await.status,
        404
    );
}

#[actix_web::test]
async fn session_mode_publishes_no_keys() {
    let redis = std::sync::Arc::new(RedisServer::start());
    let app = spawn_app_on(Some(redis), |_| {}).await;
    assert_eq!(
        app.browser().get("/.well-known/jwks.json").await.status,
        404
    );
}

/// Redis commands one authenticated request costs: plain JWT none, deny-list one MGET.
async fn redis_calls_per_request(denylist: bool) -> std::collections::HashMap<String, u64> {
    let app = jwt_app(|s| s.jwt.denylist = denylist).await;
    app.create_user("alice", &[]).await;
    let browser = app.browser();
    browser.login("alice", PASSWORD).await;
    assert_eq!(browser.me_status().await, 200);
    let redis = app.redis.as_ref().unwrap();
    let before = redis.command_calls();
    for _ in 0..20 {
        assert_eq!(browser.me_status().await, 200);
    }
    let after = redis.command_calls();
    after
        .iter()
        .filter(|(name, _)| name.as_str() != "info")
        .map(|(name, calls)| (name.clone(), calls - before.get(name).unwrap_or(&0)))
        .filter(|(_, delta)| *delta > 0)
        .collect()
}

#[actix_web::test]
async fn plain_jwt_costs_no_redis_per_request_and_the_denylist_one_round_trip() {
    let plain = redis_calls_per_request(false).await;
    let denylist = redis_calls_per_request(true).await;

    assert!(plain.is_empty(), "plain JWT touched Redis: {plain:?}");
    assert_eq!(denylist.len(), 1, "{denylist:?}");
    assert_eq!(denylist.get("mget"), Some(&20));
}

#[actix_web::test]
async fn the_dashboard_says_how_long_a_revoked_token_keeps_working() {
    for (denylist, expected) in [(false, true), (true, false)] {
        let app = jwt_app(|s| s.jwt.denylist = denylist).await;
        app.create_user("root", &["admin"]).await;
        app.create_user("alice", &[]).await;
        let admin = app.browser();
        admin.login("root", PASSWORD).await;
        Browser::new(&app.address).login("alice", PASSWORD).await;

        let page = admin.get("/admin/users/alice").await;

        assert_eq!(
            page.body.contains("Stops working within 5 minutes"),
            expected,
            "deny-list {denylist}"
        );
    }
}
